"""sd_notify end to end: a real daemon subprocess talks to a real AF_UNIX datagram socket.

READY=1 after the first reconcile, WATCHDOG=1 repeated at half of WATCHDOG_USEC, STATUS= with counts,
RELOADING=1 then READY=1 again on SIGHUP, STOPPING=1 on SIGTERM, and a clean exit.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from daemon_support import Session, toml_config
from notify_listener import NotifyListener
from support import Tree, cli_command, ledger_rows


def _count(listener: NotifyListener, key: str, value: str) -> int:
    return sum(1 for m in listener.drain() if m.fields.get(key) == value)


def test_daemon_speaks_sd_notify(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.home.mkdir()
    session = Session(tree.home / ".claude" / "projects", tmp_path / "repos" / "p")
    session.write_turns(("hello", "hi there"))
    config = tmp_path / "daemon.toml"
    config.write_text(toml_config())
    with NotifyListener() as listener:
        env = {**tree.env(), **listener.env, "WATCHDOG_USEC": "400000"}  # so a ping every 0.2 s
        proc = subprocess.Popen(cli_command("run", "--config", str(config)), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            assert listener.wait_for("READY", "1", timeout=60).pid in (None, proc.pid)
            assert "synced" in listener.wait_for("STATUS", timeout=30).fields["STATUS"]
            first = _count(listener, "WATCHDOG", "1")
            deadline = time.monotonic() + 20
            while _count(listener, "WATCHDOG", "1") < first + 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _count(listener, "WATCHDOG", "1") >= first + 3, "WATCHDOG=1 is not repeated"
            assert any(r["path"] == str(session.path) and r["thread_id"] for r in ledger_rows(tree))

            readies = _count(listener, "READY", "1")
            proc.send_signal(signal.SIGHUP)
            listener.wait_for("RELOADING", "1", timeout=30)
            deadline = time.monotonic() + 30
            while _count(listener, "READY", "1") == readies and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _count(listener, "READY", "1") == readies + 1, "no READY=1 after the reload"

            proc.send_signal(signal.SIGTERM)
            listener.wait_for("STOPPING", "1", timeout=30)
            code = proc.wait(timeout=30)
            assert code == 0, proc.stderr.read().decode() if proc.stderr else code
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()
