"""Codex's per-thread writer locks, taken in Codex's own order (daemon/codex/writer_lock.py).

The other takers are played by this process with real flocks on real files (separate opens: separate
locks), doing what the real Codex does (strace of 0.169.0): hold `.coordination.lock` shared to open and
lock a thread's file, exclusive to remove one. tests/test_codex_open_thread.py meets the real binary.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from daemon.codex.store import Busy
from daemon.codex.writer_lock import COORDINATION, FOLDER, RELEASE_WAIT_S, writer_lock


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _try(fd: int, op: int) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _codex_takes(home: Path, thread_id: str) -> int | None:
    """Codex's taking: coordination shared, then the thread's file exclusive; its fd, or None if refused."""
    coordination = _open(home / FOLDER / COORDINATION)
    try:
        assert _try(coordination, fcntl.LOCK_SH), "the coordination lock is held exclusive"
        fd = _open(home / FOLDER / f"{thread_id}.lock")
        if _try(fd, fcntl.LOCK_EX):
            return fd
        os.close(fd)
        return None
    finally:
        os.close(coordination)


def test_while_we_hold_a_thread_codex_cannot_take_it_but_takes_others_and_may_sweep(tmp_path: Path) -> None:
    lock = tmp_path / FOLDER / "t-1.lock"
    with writer_lock(tmp_path, "t-1"):
        assert lock.is_file() and (lock.stat().st_mode & 0o777) == 0o600
        assert _codex_takes(tmp_path, "t-1") is None
        other = _codex_takes(tmp_path, "t-2")
        assert other is not None
        os.close(other)
        coordination = _open(tmp_path / FOLDER / COORDINATION)
        try:  # we hold no coordination lock while we write: Codex's removals go on
            assert _try(coordination, fcntl.LOCK_EX)
        finally:
            os.close(coordination)
    assert not lock.exists(), "let go, the file goes, as Codex removes its own"
    assert sorted(p.name for p in lock.parent.iterdir()) == [COORDINATION, "t-2.lock"]


def test_a_file_left_by_an_earlier_holder_is_taken_and_removed(tmp_path: Path) -> None:
    lock = tmp_path / FOLDER / "t-1.lock"
    os.close(_open(lock))  # an older session-syncd or a killed Codex left it, held by nobody
    with writer_lock(tmp_path, "t-1"):
        assert _codex_takes(tmp_path, "t-1") is None
    assert not lock.exists()


def test_we_wait_while_the_coordination_lock_is_held_exclusive_and_never_go_around_it(tmp_path: Path) -> None:
    """Codex holds it exclusive while it removes lock files: a file opened then could be removed under us."""
    coordination = _open(tmp_path / FOLDER / COORDINATION)
    fcntl.flock(coordination, fcntl.LOCK_EX)
    entered, failed = threading.Event(), []

    def take() -> None:
        try:
            with writer_lock(tmp_path, "t-1", wait_s=30):
                entered.set()
        except BaseException as exc:  # noqa: BLE001 — reported by the assertion below
            failed.append(exc)

    worker = threading.Thread(target=take)
    worker.start()
    try:
        time.sleep(0.3)
        assert not entered.is_set() and not (tmp_path / FOLDER / "t-1.lock").exists()
    finally:
        os.close(coordination)  # lets go
    worker.join(30)
    assert entered.is_set() and not failed, failed


def test_a_coordination_lock_held_too_long_defers_and_leaves_nothing(tmp_path: Path) -> None:
    coordination = _open(tmp_path / FOLDER / COORDINATION)
    fcntl.flock(coordination, fcntl.LOCK_EX)
    try:
        with pytest.raises(Busy, match="coordination.lock"), writer_lock(tmp_path, "t-1", wait_s=0.2):
            pytest.fail("entered while another process held the coordination lock")
        assert not (tmp_path / FOLDER / "t-1.lock").exists()
    finally:
        os.close(coordination)


def test_a_thread_codex_holds_is_busy(tmp_path: Path) -> None:
    held = _codex_takes(tmp_path, "t-1")
    assert held is not None
    try:
        with pytest.raises(Busy, match="Codex has thread t-1 open"), writer_lock(tmp_path, "t-1"):
            pytest.fail("entered a thread Codex holds")
        assert (tmp_path / FOLDER / "t-1.lock").exists(), "Codex's file is not ours to remove"
    finally:
        os.close(held)


def test_when_the_coordination_lock_stays_busy_at_release_the_file_is_left_unlocked(tmp_path: Path) -> None:
    lock = tmp_path / FOLDER / "t-1.lock"
    with writer_lock(tmp_path, "t-1"):
        coordination = _open(tmp_path / FOLDER / COORDINATION)
        assert _try(coordination, fcntl.LOCK_SH)  # Codex taking another thread, for longer than we wait
    try:
        assert lock.exists(), f"removed without the coordination lock (waited {RELEASE_WAIT_S} s)"
        taker = _codex_takes(tmp_path, "t-1")  # left to Codex's sweep, and free: we let go of it
        assert taker is not None
        os.close(taker)
    finally:
        os.close(coordination)
