"""Codex's per-thread writer locks (`$CODEX_HOME/thread-writer-locks/`), taken the way Codex takes them.

What Codex does (0.169.0 and 0.171.0, read off the real binaries with strace, 2026-12-04): while a thread
is live (started, resumed) and for the moment it creates, archives or deletes one, it holds an exclusive
`flock` on `<thread id>.lock`; another taker is refused ("thread … already has an active writer"). The
files come and go: Codex creates one when it takes the lock and removes it when it lets go, and the first
lock each Codex process takes sweeps away every `<thread id>.lock` that nobody holds. `.coordination.lock`
orders the two: a taker holds it shared while it opens and locks a thread's file (polling every 50 ms
while it is busy), a remover holds it exclusive.

So do we. A file opened outside that order can be removed between our open and our `flock`: we would
then hold a lock on a name that no longer exists while Codex creates the name again and takes it, and
both would write the thread. Letting go, we remove our file as Codex does, so the folder does not fill
with one file per thread we ever wrote (each Codex process would open and sweep them all).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from daemon.codex.store import Busy, StoreError
from daemon.durable import make_dirs_durable

FOLDER = "thread-writer-locks"
COORDINATION = ".coordination.lock"
POLL_S = 0.05  # as Codex polls a busy coordination lock
TAKE_WAIT_S = 2.0  # Codex waits 30 s; we defer the session sooner (it is retried)
RELEASE_WAIT_S = 0.5  # Codex tries once and leaves its file to a later sweep; we try a little longer


@contextmanager
def writer_lock(codex_home: Path, thread_id: str, wait_s: float = TAKE_WAIT_S) -> Iterator[None]:
    """Hold Codex's writer lock of `thread_id` while we change its rollout; Busy when Codex holds it (the
    thread is open there) or keeps the coordination lock for longer than `wait_s`."""
    lock = codex_home / FOLDER / f"{thread_id}.lock"
    coordination_path = lock.with_name(COORDINATION)
    coordination = _open(coordination_path)
    try:
        if not _flock_within(coordination, fcntl.LOCK_SH, wait_s):
            raise Busy(f"another process has held {coordination_path} for {wait_s:g} s")
        fd = _open(lock)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(f"Codex has thread {thread_id} open") from None
    finally:
        os.close(coordination)  # taken: the thread's own lock is what keeps others out now
    try:
        yield
    finally:
        _release(lock, fd)


def _release(lock: Path, fd: int) -> None:
    """Let go as Codex does: under the coordination lock held exclusive, close our file, then remove it.
    When that lock stays busy (or cannot be opened), only close: the file is left to Codex's sweep."""
    try:
        coordination = _open(lock.with_name(COORDINATION))
    except StoreError:
        os.close(fd)
        return
    try:
        if _flock_within(coordination, fcntl.LOCK_EX, RELEASE_WAIT_S):
            os.close(fd)
            fd = -1
            try:
                os.unlink(lock)
            except OSError:
                pass  # gone already, or a folder we may no longer change: nobody holds it either way
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(coordination)  # drops the coordination lock


def _flock_within(fd: int, op: int, wait_s: float) -> bool:
    """`flock(fd, op)`, polling while another process holds it, for at most `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)


def _open(path: Path) -> int:
    """`path`, opened read-write and created (0600) when missing, with its folder made durably."""
    try:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            make_dirs_durable(path.parent)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create Codex's writer lock {path}: {exc.strerror}; check that the Codex "
                         "home is writable") from None
