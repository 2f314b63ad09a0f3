"""Writing into `$CODEX_HOME`: rollout files and the thread-name index (Codex's writer locks are
writer_lock.py's).

Owns every byte we put into the Codex home and how it is made durable: new and rewritten rollouts go
through a temp file + fsync + rename (+ directory fsync), appends truncate our previous closing lines
and fsync. Every folder we create (a day folder, the Codex home) has its parent
fsynced, so a new rollout's name survives a power cut too. Files are 0600, folders 0700. It knows
nothing about sources or the ledger. Fault points (daemon/faults.py) sit between each write, fsync and
rename, so the kill tests can stop us at exactly those moments.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterable
from pathlib import Path

import blake3
import msgspec

from daemon import faults
from daemon.codex.lines import iso_ms
from daemon.durable import fsync_dir, make_dirs_durable

TAIL_BYTES = 4096


class StoreError(Exception):
    """A write into the Codex home failed; the message is one line naming the path and the fix."""


class Busy(Exception):
    """Codex holds the thread's writer lock (the thread is open there): try again later."""


SESSION_INDEX = "session_index.jsonl"  # the thread titles Codex reads (one JSON line per rename, last wins)


class SessionIndexEntry(msgspec.Struct):
    id: str
    thread_name: str
    updated_at: str


def write_fix(exc: OSError, unchanged: str = "nothing was changed") -> str:
    """What the user can do about a failed write into the Codex home (the end of a one-line error)."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return f"free some disk space; {unchanged} and it will be retried"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the Codex home writable (CODEX_HOME or codex_home in the config)"
    return "check the Codex home folder"


def _explain(exc: OSError, path: Path, doing: str) -> StoreError:
    return StoreError(f"cannot {doing} {path}: {exc.strerror or exc}; {write_fix(exc)}")


def tail_hash(f_or_path: Path | int, size: int) -> bytes:
    """blake3 of the last TAIL_BYTES bytes before `size`: cheap proof that a file is still what we wrote."""
    fd = os.open(f_or_path, os.O_RDONLY) if isinstance(f_or_path, Path) else f_or_path
    try:
        start = max(0, size - TAIL_BYTES)
        return blake3.blake3(os.pread(fd, size - start, start)).digest()
    finally:
        if isinstance(f_or_path, Path):
            os.close(fd)


def current_state(path: Path) -> tuple[int, bytes] | None:
    """(size, tail hash) of a rollout as it is now, or None if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        return size, tail_hash(fd, size)
    finally:
        os.close(fd)


def planned_state(chunks: list[bytes]) -> tuple[int, bytes]:
    """(size, tail hash) a file made of `chunks` will have."""
    size = sum(map(len, chunks))
    tail, need = [], TAIL_BYTES
    for chunk in reversed(chunks):
        if need <= 0:
            break
        tail.append(chunk[-need:])
        need -= len(tail[-1])
    return size, blake3.blake3(b"".join(reversed(tail))).digest()


def planned_append(path: Path, keep: int, data: bytes) -> tuple[int, bytes]:
    """(size, tail hash) `path` will have after `append_after(path, keep, data)`."""
    if len(data) >= TAIL_BYTES:
        return keep + len(data), planned_state([data])[1]
    start = max(0, keep - (TAIL_BYTES - len(data)))
    return keep + len(data), planned_state([read_range(path, start, keep), data])[1]


def read_range(path: Path, start: int, end: int) -> bytes:
    """Bytes [start, end) of `path` (what is there of them)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, max(0, end - start), start)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _explain(exc, path, "read") from None


def tail_hash_at(path: Path, size: int) -> bytes | None:
    """The tail hash of `path`'s first `size` bytes, or None if it is gone or shorter."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return tail_hash(fd, size) if os.fstat(fd).st_size >= size else None
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite until everything is written (a single call may write less)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


_IOV_MAX = 1024  # the most buffers one pwritev takes (IOV_MAX on Linux and macOS)


def _write_chunks(fd: int, chunks: list[bytes]) -> int:
    """Write `chunks` from offset 0 in as few calls as the kernel takes (pwritev: one, for a rollout of
    fewer than IOV_MAX pieces, where a pwrite per piece cost a syscall each); return the size."""
    if not hasattr(os, "pwritev"):  # a macOS build older than 11
        offset = 0
        for chunk in chunks:
            _write_all(fd, chunk, offset)
            offset += len(chunk)
        return offset
    views = [memoryview(c) for c in chunks if c]
    first, offset = 0, 0
    while first < len(views):
        n = os.pwritev(fd, views[first:first + _IOV_MAX], offset)
        offset += n
        while first < len(views) and n >= len(views[first]):
            n -= len(views[first])
            first += 1
        if n:
            views[first] = views[first][n:]
    return offset


def _open_temp(tmp: Path, path: Path) -> int:
    """The temp file `tmp`, locked by us and emptied. One name per thread, so a temp file a killed writer
    left is reused (and emptied) by the next write of that thread, and no write has to list the folder
    (a day's folder holds hundreds of rollouts) to find one. The lock keeps two writers out of one temp
    file; the inode check makes sure we locked the file that has the name now, not one another writer
    has since renamed into place (its rollout must not be truncated)."""
    while True:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(f"another process is writing {path}") from None
        st = os.fstat(fd)
        try:
            same = os.stat(tmp).st_ino == st.st_ino
        except FileNotFoundError:
            same = False
        if same:
            if st.st_size:  # left by a writer killed mid-write (a new one is empty: no journal op for it)
                os.ftruncate(fd, 0)
            if st.st_mode & 0o777 != 0o600:  # left by someone else: the rollout it becomes is private
                os.fchmod(fd, 0o600)
            return fd
        os.close(fd)  # renamed away under us: take the new one


def write_atomic(path: Path, chunks: Iterable[bytes]) -> tuple[int, bytes]:
    """Create or replace `path` with `chunks`, durably; return (size, tail hash)."""
    tmp = path.with_name(f".{path.name}.tmp")
    ours = False  # the temp file is ours to remove if the write fails
    try:
        make_dirs_durable(path.parent)
        fd = _open_temp(tmp, path)
        ours = True
        try:
            pieces = list(chunks)
            size = _write_chunks(fd, pieces)
            faults.point("store.written", path)
            os.fsync(fd)
            digest = planned_state(pieces)[1]  # what was just written, not read back
            faults.point("store.before_rename", path)
            os.replace(tmp, path)  # still locked: no other writer can have opened it as its temp file
            ours = False
        finally:
            os.close(fd)
        faults.point("store.renamed", path)
        fsync_dir(path.parent)
        faults.point("store.dir_synced", path)
        return size, digest
    except OSError as exc:
        if ours:
            try:
                tmp.unlink()
            except OSError:
                pass
        raise _explain(exc, path, "write") from None


def append_after(path: Path, keep: int, data: bytes, restore: bytes) -> tuple[int, bytes]:
    """Replace everything after the first `keep` bytes of `path` by `data`, durably; return (size, tail
    hash). If that fails (a full disk), put `restore` (what was there) back, so the thread stays whole."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise _explain(exc, path, "append to") from None
    try:
        try:
            _write_all(fd, data, keep)  # over our old closing lines, then past the end
            faults.point("append.written", path)
            os.ftruncate(fd, keep + len(data))
            faults.point("append.truncated", path)
            os.fsync(fd)
            faults.point("append.synced", path)
            size = keep + len(data)
            return size, tail_hash(fd, size)
        except OSError as exc:
            try:
                _write_all(fd, restore, keep)
                os.ftruncate(fd, keep + len(restore))
                os.fsync(fd)
            except OSError:
                pass  # the next run recognises our own torn write by the body hash and rewrites it
            raise _explain(exc, path, "append to") from None
    finally:
        os.close(fd)


def locate_rollout(codex_home: Path, rollout: Path) -> Path | None:
    """Where a thread's rollout is now: where we wrote it, in `archived_sessions/` (Codex moves a thread
    there when the user archives it, same file name), or back in its date folder (unarchive restores the
    original path); None when the user deleted it (nothing at all is left where we wrote it)."""
    name = rollout.name
    candidates = [rollout, codex_home / "archived_sessions" / name]
    parts = name.split("-")  # rollout-YYYY-MM-DDTHH-MM-SS-<id>.jsonl
    if len(parts) > 3 and name.startswith("rollout-"):
        candidates.append(codex_home / "sessions" / parts[1] / parts[2] / parts[3][:2] / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    # Something that is not a file where the rollout was is an error to report, not a deletion.
    return rollout if os.path.lexists(rollout) else None


_encode_entry = msgspec.json.Encoder().encode


def append_session_index(codex_home: Path, thread_id: str, title: str) -> Path:
    """Add a thread-name line to `session_index.jsonl`, the file Codex reads names from (last wins).
    Not synced: the caller syncs the path returned (`sync_file`) once for several lines, before it
    commits what records those titles (record.record_all)."""
    path = codex_home / SESSION_INDEX
    line = _encode_entry(SessionIndexEntry(thread_id, title, iso_ms(int(time.time() * 1000)))) + b"\n"
    try:
        make_dirs_durable(codex_home)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)  # one small O_APPEND write: never interleaved with Codex's own lines
        finally:
            os.close(fd)
    except OSError as exc:
        raise _explain(exc, path, "append to") from None
    return path


def sync_file(path: Path | str) -> None:
    """fsync a file written earlier without a sync (raises StoreError, one line)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _explain(exc, Path(path), "sync") from None
