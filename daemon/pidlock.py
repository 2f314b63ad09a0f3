"""One daemon per state dir: an `flock` on `<state_dir>/daemon.lock`, and the daemon's live counters.

Owns: the lock file and what it says (pid, start time, service manager, version), and the live status
file `<state_dir>/daemon.status.json` the daemon rewrites while it runs. `status` and `doctor` read both.

Theory of operation.  The daemon holds an exclusive `flock` on the lock file for its whole life; the
kernel drops it when the process dies, however it dies, so a crash never leaves a false "running".
The file's contents are only a description: `read` trusts them only while someone holds the lock, which
it tests by asking for a *shared* lock without blocking (granted → nobody holds the exclusive one → the
file is stale). flock locks belong to open file descriptions, so this also works inside the daemon's own
process. A reader's shared lock lasts microseconds; `acquire` retries briefly so that a `status` running
at the moment the daemon starts cannot make the start fail. The lock file is never unlinked (unlinking
a lock file lets two processes hold "the" lock on different inodes); on release it is truncated.

Must not: decide anything about syncing. Neither file is fsynced: after a crash nobody holds the lock,
so the lock file's description is ignored, and `status` ignores the live status file (written atomically:
temp file + rename) unless its pid holds the lock. A flush per start would cost every `import` a disk
round trip for nothing.
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one again when
# a decoder of these Structs is built (~0.05 ms a decoder; built when first needed, not at import).

import contextlib
import fcntl
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal

import msgspec

from daemon.private import make_dirs

LOCK_NAME = "daemon.lock"
LIVE_NAME = "daemon.status.json"
ACQUIRE_RETRY_S = 0.5  # how long a held lock is re-tried before AlreadyRunning (covers readers' probes)
LAUNCHD_LABEL = "dev.session-syncd.daemon"  # service.launchd.LABEL (not imported: daemon must not need service/)

Manager = Literal["systemd", "launchd", "foreground"]


class DaemonInfo(msgspec.Struct, kw_only=True):
    """What the running daemon wrote into its lock file."""

    pid: int
    started_at: float  # unix seconds
    manager: str  # Manager, or "unknown" when the holder has not written its description yet
    version: str
    role: str = "daemon"  # or "import": a one-shot import holds the same lock while it runs


class Deferred(msgspec.Struct, kw_only=True):
    path: str
    reason: str


class LiveStatus(msgspec.Struct, kw_only=True):
    """The daemon's counters, rewritten by the daemon when they change (at most every few seconds)."""

    pid: int
    updated_at: float  # unix seconds
    in_flight: int = 0  # sessions being synced right now
    queued: int = 0  # sessions waiting for a worker (debounced and due)
    deferred: list[Deferred] = []  # sessions held back for now (e.g. Codex holds the thread's writer lock)
    last_rescan_at: float | None = None  # last full reconcile of every root
    watching: list[str] = []  # root folders with an active watch


class AlreadyRunning(Exception):
    """Another live process holds the lock; the message is the one line the user sees."""

    def __init__(self, pid: int | None, state_dir: Path, role: str = "daemon") -> None:
        self.pid, self.state_dir, self.role = pid, state_dir, role
        who = f"pid {pid}" if pid else "pid unknown"
        if role == "import":
            super().__init__(f"a session-syncd import ({who}) is running with state dir {state_dir}; "
                             "wait for it to finish")
            return
        kill = f", or kill {pid}" if pid else ""
        super().__init__(f"another session-syncd ({who}) already runs with state dir {state_dir}; "
                         f"stop it first (systemctl --user stop session-syncd{kill})")


def detect_manager(env: Mapping[str, str]) -> Manager:
    """Who started us, from the variables the managers set: systemd (INVOCATION_ID, NOTIFY_SOCKET) or
    launchd (XPC_SERVICE_NAME; macOS terminals set it to "0" and apps to "application.…", so those
    count as foreground)."""
    if env.get("INVOCATION_ID") or env.get("NOTIFY_SOCKET"):
        return "systemd"
    xpc = env.get("XPC_SERVICE_NAME", "")
    if xpc == LAUNCHD_LABEL or (xpc and xpc != "0" and not xpc.startswith("application.")):
        return "launchd"
    return "foreground"


def package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("session-syncd")
    except metadata.PackageNotFoundError:
        return "unknown"


class PidLock:
    """The held lock; a context manager. `release()` (or leaving the `with`) gives it up."""

    def __init__(self, state_dir: Path, fd: int, info: DaemonInfo) -> None:
        self.state_dir, self.info = state_dir, info
        self._fd: int | None = fd
        # A forked child (an import's worker) inherits the descriptor, and with it the lock: were the
        # parent killed, its workers would keep the lock. Children close their copy at once (that never
        # releases the parent's lock, which lives while the parent holds its own descriptor).
        os.register_at_fork(after_in_child=self._forget_in_child)

    def _forget_in_child(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def path(self) -> Path:
        return self.state_dir / LOCK_NAME

    def release(self) -> None:
        """Remove our live status, blank the description, unlock. Idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / LIVE_NAME).unlink()
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> "PidLock":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def acquire(state_dir: Path, env: Mapping[str, str] | None = None, *, now: float | None = None,
            role: str = "daemon") -> PidLock:
    """Take the single-instance lock for `state_dir` (created 0700 if missing) and describe ourselves in it.

    Raises AlreadyRunning when a live process holds it, OSError when the state dir is unusable."""
    env = os.environ if env is None else env
    make_dirs(state_dir)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + ACQUIRE_RETRY_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _parse(_read_all(fd))
                    raise AlreadyRunning(holder.pid if holder else None, state_dir,
                                         holder.role if holder else "daemon") from None
                time.sleep(0.02)
        # The version is shown only for the daemon; finding it (importlib.metadata) costs a one-shot
        # `import` ~10 ms of start-up, so the other roles leave it out.
        version = package_version() if role == "daemon" else "unknown"
        info = DaemonInfo(pid=os.getpid(), started_at=time.time() if now is None else now,
                          manager=detect_manager(env), version=version, role=role)
        data = msgspec.json.encode(info) + b"\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)  # not fsynced (see the module doc)
    except BaseException:
        os.close(fd)
        raise
    return PidLock(state_dir, fd, info)


def read(state_dir: Path) -> DaemonInfo | None:
    """The running daemon's description, or None when no live process holds the lock (a file left by a
    crashed daemon is ignored). Never creates anything."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: someone is running
        else:
            return None  # nobody holds it: stale or blank (closing fd drops our shared lock)
        # The holder writes its description right after locking: give it a moment if we are early.
        for _ in range(25):
            info = _parse(_read_all(fd))
            if info is not None:
                return info
            time.sleep(0.01)
        return DaemonInfo(pid=0, started_at=0.0, manager="unknown", version="unknown")
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    return os.pread(fd, 64 << 10, 0)


def _parse(data: bytes) -> DaemonInfo | None:
    try:
        return msgspec.json.decode(data, type=DaemonInfo)  # no Decoder built at import: a held lock is rare
    except msgspec.DecodeError:
        return None


def write_live(state_dir: Path, status: LiveStatus) -> None:
    """Replace `<state_dir>/daemon.status.json` atomically (readers see the old or the new, never half)."""
    path = state_dir / LIVE_NAME
    tmp = state_dir / f".{LIVE_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, msgspec.json.encode(status) + b"\n")
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_live(state_dir: Path) -> LiveStatus | None:
    """The last live status written, or None if there is none (or it is unreadable). Callers check its
    pid against `read()`: a file from a crashed daemon is still there."""
    try:
        return msgspec.json.decode((state_dir / LIVE_NAME).read_bytes(), type=LiveStatus)
    except (OSError, msgspec.DecodeError):
        return None


__all__ = ["AlreadyRunning", "DaemonInfo", "Deferred", "LiveStatus", "PidLock", "acquire", "detect_manager",
           "read", "read_live", "write_live"]
