"""The log file without structlog: what one-shot commands (`import`) log with.

Owns the pieces of the on-disk log format both writers share (file name, rotation sizes, the timestamp,
how odd values become strings) and `FileLog`, a logger that writes exactly the lines `log.configure`'s
file handler writes for our own events — `{"timestamp", "level", "event", ...fields}`, 0600, rotated at
the same size into the same `.1` … `.N` files — but imports nothing beyond the standard library's core
and msgspec. structlog pulls in asyncio and logging (~45 ms); an `import` with nothing to do is itself
only a few milliseconds of work. The daemon, with its console and library records, keeps `daemon.log`.
"""

from __future__ import annotations

import os
import stat
import time
from _thread import allocate_lock  # threading.Lock itself; `threading` would add ~0.6 ms to start-up
from pathlib import Path
from typing import Any

import msgspec

from daemon.private import make_dirs

LOG_FILE_NAME = "session-syncd.jsonl"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
LEVELS = ("debug", "info", "warning", "error", "critical")
_LEVEL_NUMBERS = {name: (i + 1) * 10 for i, name in enumerate(LEVELS)}  # logging's DEBUG=10 … CRITICAL=50


def to_str(obj: Any) -> str:
    """Last-resort encoding for values JSON can't hold (Path, exceptions, ...)."""
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}" if str(obj) else type(obj).__name__
    return str(obj)


def timestamp() -> str:
    """Now, as RFC 3339 UTC with milliseconds and `Z` (every line's first field)."""
    now = time.time()
    ms = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{ms:03d}Z"


def prepare_dir(log_dir: Path) -> None:
    """The log folder exists and is private (logs name the user's files and sessions)."""
    make_dirs(log_dir)
    if stat.S_IMODE(log_dir.stat().st_mode) & 0o077:
        os.chmod(log_dir, 0o700)


def open_private(path: str) -> int:
    """An O_APPEND descriptor on `path`, created 0600 (and made 0600 if it was not)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def rotate(base: str, backup_count: int) -> None:
    """`base.N-1` → `base.N` … `base` → `base.1`, as logging's RotatingFileHandler does."""
    if backup_count <= 0:
        return
    for i in range(backup_count - 1, 0, -1):
        src, dst = f"{base}.{i}", f"{base}.{i + 1}"
        if os.path.exists(src):
            if os.path.exists(dst):
                os.remove(dst)
            os.rename(src, dst)
    dst = f"{base}.1"
    if os.path.exists(dst):
        os.remove(dst)
    if os.path.exists(base):
        os.rename(base, dst)


class FileLog:
    """`log.debug/info/warning/error(event, **fields)` into `<log_dir>/session-syncd.jsonl`, nothing else.

    Each line is one write on an O_APPEND descriptor under a lock (never interleaved, on disk in the page
    cache when the call returns, like the stdlib handler's write + flush). The rotation check uses the
    real end of the file, so it stays right beside another writer."""

    def __init__(self, log_dir: Path, level: str, *, max_bytes: int = MAX_BYTES,
                 backup_count: int = BACKUP_COUNT) -> None:
        level = level.lower()
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
        prepare_dir(log_dir)
        self.path = str(log_dir / LOG_FILE_NAME)
        self._threshold = _LEVEL_NUMBERS[level]
        self._max_bytes, self._backup_count = max_bytes, backup_count
        self._encode = msgspec.json.Encoder(enc_hook=to_str).encode
        self._lock = allocate_lock()  # the import's pool threads log too
        self._fd: int | None = None

    def _log(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if _LEVEL_NUMBERS[level] < self._threshold:
            return
        line = self._encode({"timestamp": timestamp(), "level": level, "event": event, **fields}) + b"\n"
        with self._lock:
            if self._fd is None:
                self._fd = open_private(self.path)
            if self._max_bytes > 0 and os.lseek(self._fd, 0, os.SEEK_END) + len(line) >= self._max_bytes:
                os.close(self._fd)
                self._fd = None
                rotate(self.path, self._backup_count)
                self._fd = open_private(self.path)
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, fields)

    def critical(self, event: str, **fields: Any) -> None:
        self._log("critical", event, fields)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


__all__ = ["BACKUP_COUNT", "LEVELS", "LOG_FILE_NAME", "MAX_BYTES", "FileLog", "open_private", "prepare_dir",
           "rotate", "timestamp", "to_str"]
