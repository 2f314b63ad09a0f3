"""A first start with a big backlog: READY=1 once it is *queued*, then it drains, as `status` shows.

Under systemd a `Type=notify` unit that does not say READY within its start timeout is killed and
restarted, and a first start on a machine with years of sessions would then never finish. So the
daemon must say READY once the startup reconcile has queued the backlog. A real daemon subprocess, a
real AF_UNIX notify socket (tests/service/notify_listener.py), a real backlog of 300 sessions.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from daemon import pidlock
from daemon_support import Session, toml_config, wait_until
from support import TESTS, Tree, cli_command, ledger_rows

sys.path.insert(0, str(TESTS / "service"))
from notify_listener import NotifyListener  # noqa: E402

BACKLOG = 300

pytestmark = pytest.mark.slow


def _backlog(tree: Tree, n: int) -> list[Session]:
    projects = tree.home / ".claude" / "projects"
    cwd = tree.root / "repos" / "p"
    out = []
    for i in range(n):
        s = Session(projects, cwd, project=f"-work-p{i % 20}", session_id=f"00000000-0000-4000-8000-{i:012d}")
        s.write_turns(*[(f"question {i}.{t} " + "x" * 200, f"answer {i}.{t} " + "y" * 400) for t in range(8)])
        out.append(s)
    return out


def _all_synced(tree: Tree, sessions: list[Session]) -> bool:
    """Every session's ledger row describes its file as it is, every byte consumed (one ledger read)."""
    if not tree.ledger_path.exists():
        return False
    rows = {r["path"]: r for r in ledger_rows(tree)}
    for s in sessions:
        row, st = rows.get(str(s.path)), s.path.stat()
        if not row or (row["size"], row["inode"], row["consumed"]) != (st.st_size, st.st_ino, st.st_size) \
                or not row["rollout_path"]:
            return False
    return True


def test_ready_while_the_backlog_is_queued_then_it_drains(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    tree.home.mkdir()
    sessions = _backlog(tree, BACKLOG)
    config = tmp_path / "daemon.toml"
    config.write_text(toml_config(workers=2))
    state_dir = tree.state / "session-syncd"
    with NotifyListener() as listener:
        err = (tmp_path / "stderr.txt").open("wb")  # a file, not a pipe: a full pipe would stall its logging
        proc = subprocess.Popen(cli_command("run", "--config", str(config)), env={**tree.env(), **listener.env},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        try:
            ready = listener.wait_for("READY", "1", timeout=120)
            # The daemon's own count at the moment it said READY: the backlog was queued, not synced.
            status = ready.fields.get("STATUS", "")
            match = re.fullmatch(r"ready: \d+ synced, (\d+) queued", status)
            assert match, ready.fields
            queued_at_ready = int(match.group(1))
            assert queued_at_ready > BACKLOG // 2, f"READY came after most of the backlog was synced: {status}"

            # `status` (the live status file) shows the backlog draining: some left, then none.
            seen: list[int] = []

            def done() -> bool:
                assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
                live = pidlock.read_live(state_dir)
                if live is not None and live.pid == proc.pid and (not seen or seen[-1] != live.queued):
                    seen.append(live.queued)
                return (bool(seen) and seen[-1] == 0 and live is not None and live.in_flight == 0
                        and _all_synced(tree, sessions))

            wait_until(done, timeout=240, what=f"all {BACKLOG} sessions synced and the live status drained")
            assert seen[0] > 0, f"the live status never showed the backlog queued: {seen}"
            assert len({r["thread_id"] for r in ledger_rows(tree)}) == BACKLOG
            assert len(tree.rollouts()) == BACKLOG

            # STATUS= for systemctl carries the queue too.
            assert any("queued" in m.fields.get("STATUS", "") and "synced" in m.fields.get("STATUS", "")
                       for m in listener.drain())
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err.close()
