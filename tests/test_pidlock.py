"""daemon.pidlock: the single-instance lock and the live status file. Real processes, real flock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon import pidlock
from daemon.pidlock import AlreadyRunning, Deferred, LiveStatus
from status_support import Holder


def test_second_acquire_in_another_process_fails_and_read_sees_the_holder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "INVOCATION_ID": "0123456789abcdef"}
    env.pop("NOTIFY_SOCKET", None)
    holder = Holder(state, env=env)
    try:
        assert holder.first_line == "ready"
        info = pidlock.read(state)
        assert info is not None
        assert info.pid == holder.pid
        assert info.manager == "systemd"
        assert abs(info.started_at - time.time()) < 60
        assert info.version == pidlock.package_version()

        with pytest.raises(AlreadyRunning) as caught:
            pidlock.acquire(state)
        assert caught.value.pid == holder.pid
        assert str(caught.value) == (
            f"another session-syncd (pid {holder.pid}) already runs with state dir {state}; "
            f"stop it first (systemctl --user stop session-syncd, or kill {holder.pid})")

        second = Holder(state)  # a third process fares no better
        assert second.first_line.startswith("busy another session-syncd")
        assert second.stop() == 3
    finally:
        assert holder.stop() == 0
    assert pidlock.read(state) is None  # released: blank file, no holder


def test_killed_holder_leaves_a_stale_file_that_read_ignores(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = Holder(state, live={"updated_at": 1.0, "in_flight": 2})
    assert holder.first_line == "ready"
    holder.kill()  # SIGKILL: no release, the description and the live status stay behind
    assert b'"pid":%d' % holder.pid in (state / pidlock.LOCK_NAME).read_bytes()
    assert pidlock.read_live(state) is not None
    assert pidlock.read(state) is None
    with pidlock.acquire(state, env={}) as lock:  # and a new daemon starts normally
        info = pidlock.read(state)
        assert info is not None and info.pid == os.getpid() == lock.info.pid
        assert info.manager == "foreground"


def test_acquire_and_read_in_one_process_and_release(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    lock = pidlock.acquire(state, env={"XPC_SERVICE_NAME": "dev.session-syncd.daemon"}, now=1234.5)
    try:
        assert oct(state.stat().st_mode & 0o777) == "0o700"
        assert oct((state / pidlock.LOCK_NAME).stat().st_mode & 0o777) == "0o600"
        info = pidlock.read(state)  # another open file description: the held lock is seen
        assert info == pidlock.DaemonInfo(pid=os.getpid(), started_at=1234.5, manager="launchd",
                                          version=pidlock.package_version())
        with pytest.raises(AlreadyRunning):
            pidlock.acquire(state)
        pidlock.write_live(state, LiveStatus(pid=os.getpid(), updated_at=1.0))
    finally:
        lock.release()
        lock.release()  # idempotent
    assert pidlock.read(state) is None
    assert (state / pidlock.LOCK_NAME).read_bytes() == b""
    assert pidlock.read_live(state) is None  # our live status goes with the lock


def test_read_creates_nothing(tmp_path: Path) -> None:
    assert pidlock.read(tmp_path / "missing") is None
    assert pidlock.read_live(tmp_path / "missing") is None
    assert not (tmp_path / "missing").exists()


def test_live_status_round_trip_is_atomic_and_tolerates_garbage(tmp_path: Path) -> None:
    live = LiveStatus(pid=42, updated_at=1700000000.5, in_flight=1, queued=3,
                      deferred=[Deferred(path="/p/a.jsonl", reason="Codex has thread t open; will retry")],
                      last_rescan_at=1699999999.0, watching=["/home/u/.claude/projects"])
    pidlock.write_live(tmp_path, live)
    assert pidlock.read_live(tmp_path) == live
    assert sorted(p.name for p in tmp_path.iterdir()) == [pidlock.LIVE_NAME]  # no temp file left
    (tmp_path / pidlock.LIVE_NAME).write_bytes(b'{"pid": 4')
    assert pidlock.read_live(tmp_path) is None


@pytest.mark.parametrize(("env", "manager"), [
    ({}, "foreground"),
    ({"INVOCATION_ID": "abc"}, "systemd"),
    ({"NOTIFY_SOCKET": "/run/user/1000/systemd/notify"}, "systemd"),
    ({"XPC_SERVICE_NAME": "dev.session-syncd.daemon"}, "launchd"),
    ({"XPC_SERVICE_NAME": "0"}, "foreground"),  # Terminal.app
    ({"XPC_SERVICE_NAME": "application.com.googlecode.iterm2.1234"}, "foreground"),
])
def test_detect_manager(env: dict[str, str], manager: str) -> None:
    assert pidlock.detect_manager(env) == manager


def test_an_import_holds_the_daemon_lock(tmp_path: Path) -> None:
    """While an import runs, a daemon cannot start (and is told why), and status shows no daemon."""
    with pidlock.acquire(tmp_path, {}, role="import") as held:
        assert pidlock.read(tmp_path).role == "import"
        script = ("import sys; from pathlib import Path; from daemon import pidlock\n"
                  "try:\n    pidlock.acquire(Path(sys.argv[1]), {})\n"
                  "except pidlock.AlreadyRunning as e:\n    print(e.role, e)\n")
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        assert done.stdout.strip() == (f"import a session-syncd import (pid {held.info.pid}) is running with "
                                       f"state dir {tmp_path}; wait for it to finish")
