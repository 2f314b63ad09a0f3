"""One writer per Codex home: `import` and the daemon exclude each other per CODEX_HOME, whatever their
state dirs (two ledgers writing one Codex home would each import every session: duplicates).

The state dir's pid lock (pidlock.py) keeps one session-syncd per ledger; this lock sits beside Codex's
files, at `$CODEX_HOME/.session-syncd.lock` (0600; Codex ignores it), and is an exclusive `flock` held for
the life of the writer. The file holds the holder's pid, role and state dir, for the one-line error.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import msgspec

from daemon.private import make_dirs

NAME = ".session-syncd.lock"


class HomeBusy(Exception):
    """Another session-syncd writes to this Codex home; the message names it and the fix."""

    def __init__(self, message: str, role: str, pid: str) -> None:
        super().__init__(message)
        self.role, self.pid = role, pid


class HomeLock(msgspec.Struct):
    fd: int

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def acquire_if_possible(codex_home: Path, role: str, state_dir: Path) -> HomeLock:
    """As `acquire`; when the Codex home cannot be created or written at all, an empty lock: nothing can be
    written there anyway, and the caller's own check reports that in its one line."""
    try:
        return acquire(codex_home, role, state_dir)
    except OSError:
        return HomeLock(-1)


def acquire(codex_home: Path, role: str, state_dir: Path) -> HomeLock:
    """Take the Codex home's writer lock, or raise HomeBusy naming who holds it."""
    make_dirs(codex_home)
    path = codex_home / NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").split("\n")
        os.close(fd)
        pid, other_role, other_state = (holder + ["", "", ""])[:3]
        raise HomeBusy(f"another session-syncd ({other_role or 'unknown'}, pid {pid or '?'}, state dir "
                       f"{other_state or '?'}) writes to the Codex home {codex_home}; stop it first, or give "
                       "this one another CODEX_HOME", other_role, pid) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{role}\n{state_dir}\n".encode(), 0)
    return HomeLock(fd)
