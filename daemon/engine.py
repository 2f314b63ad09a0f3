"""Sync one session: decide → read & hash → fold → write the thread → hand back the ledger row.

Owns the per-session decision procedure shared by `import` and the daemon (there is no second path):

1. `stat` equals the ledger's → unchanged, nothing read.
2. If the file grew and the part we folded last time (`consumed` bytes) is still there — same
   length-and-ends fingerprint (`prefix_fingerprint`) — only the bytes after it are read and folded
   (append: O(new bytes)), and the content hash is chained: blake3(previous hash ‖ the bytes added).
   Otherwise the whole file is read once, in chunks, hashed (blake3) and re-folded from the start
   (rewrite); the same hash, or a rendering identical to the thread we wrote, means only the stat
   changed (touched: nothing is written).
3. Write: a new thread is written atomically at its deterministic path; an append cuts our previous
   closing lines and appends; a rewrite replaces the file atomically. Before touching an existing
   rollout we take Codex's writer lock (held: deferred) and check it is still what we wrote (size +
   tail hash, plus the settings lines Codex appends when a thread is merely opened, which we keep):
   if Codex continued the thread, we leave it alone and write a new generation (a conflict copy).
4. Return the new ledger `Row`; the caller commits it (one transaction) — the rollout is already fsynced.

`sync_session` is a plain blocking function of picklable values, so it runs the same in a thread or in
a worker process. It never raises for bad input: every outcome, failures included, is a value.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import blake3
import msgspec

from daemon import faults
from daemon.codex import compat, ids, store
from daemon.codex.writer_lock import writer_lock
from daemon.codex.mirror import CODEX_KINDS
from daemon.config import Config, Paths, child_sessions
from daemon.codex.lines import GitInfo, SessionMeta, encode, is_codex_metadata, iso_ms
from daemon.codex.render import closing
from daemon.codex.title import choose
from daemon.codex.render import render
from daemon.fold import MAX_LINE, FoldState, fold, message_digest, new_fold_state
from daemon.gitinfo import git_info
from daemon.ledger import Ledger, LedgerError, Row, Superseded
from daemon.sources import SOURCES
from daemon.sources.base import Identity, Incomplete, ParseContext, shape_of

WINDOW = 64 << 10  # bytes at each end of the folded prefix that prefix_fingerprint checks
BLOCK = 256 << 10  # the folded prefix is also hashed in blocks of this size, one 16-byte digest each
# Read size: one block, so a chunk is still in the CPU cache when it is hashed and then decoded, and
# the worker reuses the same few buffers instead of faulting in fresh pages for each 8 MiB read
# (50-session import, 2026-12-02: CPU 1.26 → 1.12 s, page faults 71k → 36k). A multiple of BLOCK, so
# the block digests come from the fold's own reads.
CHUNK = BLOCK
MAX_READ = 8 << 20  # the most read at once, for a line longer than a chunk
ORIGINATOR = "session_syncd"
CLI_VERSION = "0.169.0"  # the Codex version whose rollout format we write

Kind = Literal["imported", "adopted", "appended", "rewritten", "conflict", "unchanged", "touched", "pending",
               "skipped", "tombstoned", "deferred", "failed"]


class Outcome(msgspec.Struct, kw_only=True):
    kind: Kind
    source: str
    path: str
    session_id: str
    row: Row | None = None  # to commit, when not None
    superseded: Superseded | None = None
    message: str | None = None  # the one-line reason for skipped / deferred / failed
    bytes_read: int = 0
    new_turns: int = 0
    malformed: int = 0  # lines skipped in this sync (not a JSON object, unparsable, over the limit)
    stat: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) the decision was made on
    waiting_for: str | None = None  # for a skip: the missing folder whose appearance lifts it
    settled: bool = False  # a failure caused by this version of the file: retried only once it changes
    duration_ms: float = 0.0
    sha256: str | None = None  # hex sha256 of the whole source at `stat`, when a whole read computed it
    index_unsynced: str | None = None  # Codex's title index, appended to: fsync it before committing `row`


class Job(msgspec.Struct, frozen=True):
    ident: Identity
    row: Row | None
    codex_home: Path
    ledger_path: Path  # for the write intent before an existing rollout is changed
    max_line: int = MAX_LINE  # longer source lines are skipped and counted
    codex_compatible: bool = False  # write what Codex's own importer writes (daemon/codex/compat.py)
    skip_missing_cwd: bool = False  # Codex's rule: no new thread for a session whose cwd is gone
    codex_import: tuple[str, str] | None = None  # (thread id, sha256): Codex's own import of this session
    child_sessions: bool = False  # `[sources.<kind>] child_sessions`: a child session is read as a thread
    sha256: bool = False  # a whole read also computes Codex's sha256 of the source (for the mirror)

    @classmethod
    def of(cls, ident: Identity, row: Row | None, cfg: Config, paths: Paths,
           codex_import: tuple[str, str] | None = None) -> Job:
        """The job for one session under this config (import and the daemon build it the same way)."""
        return cls(ident, row, paths.codex_home, paths.ledger, cfg.max_line_mb << 20,
                   codex_compatible=cfg.codex_compatible,
                   skip_missing_cwd=cfg.skip_missing_cwd or cfg.codex_compatible,
                   codex_import=codex_import if row is None else None,
                   child_sessions=child_sessions(cfg, ident.kind),
                   sha256=cfg.codex_ledger_mirror and ident.kind in CODEX_KINDS)

class _Skip(Exception):
    def __init__(self, message: str, waiting_for: str | None = None) -> None:
        super().__init__(message)
        self.waiting_for = waiting_for


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


_FP_VERSION = b"\x02"
_FP_HEAD = 1 + 32 + 8 + 4  # version, ends digest, ctime_ns, verification cursor; then the block digests


Held = tuple[int, Any]  # (offset, bytes-like): file bytes a read still holds, to take instead of reading them again


def _read(fd: int, offset: int, n: int, held: Held | None) -> Any:
    """Bytes [offset, offset + n) of the file: from `held` when it has them all, else read."""
    if held is not None and held[0] <= offset and offset + n <= held[0] + len(held[1]):
        return held[1][offset - held[0]:offset - held[0] + n]
    return os.pread(fd, n, offset)


def _ends_digest(fd: int, length: int, held: Held | None = None) -> bytes:
    """blake3 of the length, the first and the last WINDOW bytes of the first `length` bytes."""
    head_end = min(WINDOW, length)
    tail_start = max(head_end, length - WINDOW)
    hasher = blake3.blake3(length.to_bytes(8, "little"))
    hasher.update(_read(fd, 0, head_end, held))
    hasher.update(_read(fd, tail_start, length - tail_start, held))
    return hasher.digest()


def _block_digest(fd: int, index: int, length: int, held: Held | None = None) -> bytes:
    start = index * BLOCK
    return blake3.blake3(_read(fd, start, min(BLOCK, length - start), held)).digest(16)


def prefix_fingerprint(fd: int, length: int, *, ctime_ns: int | None = None, cursor: int = 0,
                       blocks: bytes = b"", held: Held | None = None) -> bytes:
    """What the ledger keeps (`prefix_hash`) about the first `length` bytes of a log file, to tell
    "only appended" from "rewritten" without reading what we already folded:

    - the ends digest (length, first and last WINDOW bytes): a rewrite (compaction, a tool rewriting
      the file) changes the length or bytes near an end, which every sync checks in O(1);
    - a 16-byte blake3 per BLOCK of the prefix (the last one partial): an edit in the middle (a
      redacted secret, same length) is invisible to the ends, so each append re-checks some blocks
      (`_prefix_intact`), and a changed block makes the sync a rewrite;
    - the file's st_ctime_ns at the read (`ctime_ns`, default: now): a rewrite that restores mtime and
      size (`cp -p`, rsync) still moves the ctime, so an equal stat with another ctime is read again;
    - the cursor: the next block `_prefix_intact` checks.

    `blocks`: the digests of leading blocks of the first `length` bytes already known, not read again —
    computed while the fold read them (`_Hashes.block_digests`), or kept from the fingerprint of a
    shorter prefix of this file that was just checked (`_known_blocks`: extending it over appended bytes
    reads only those and one block, O(new bytes)). `held`: bytes the caller still holds (the end of a
    whole read), taken instead of reading them again."""
    if ctime_ns is None:
        ctime_ns = os.fstat(fd).st_ctime_ns
    count = -(-length // BLOCK)
    kept = blocks[:count * 16]
    digests = [kept] + [_block_digest(fd, i, length, held) for i in range(len(kept) // 16, count)]
    return b"".join([_FP_VERSION, _ends_digest(fd, length, held), ctime_ns.to_bytes(8, "little", signed=True),
                     cursor.to_bytes(4, "little"), *digests])


def _known_blocks(fingerprint: bytes, length: int) -> bytes:
    """The digests of the full blocks a fingerprint of the first `length` bytes holds (none for a
    fingerprint from before block digests)."""
    if fingerprint[:1] != _FP_VERSION or length <= 0:
        return b""
    return fingerprint[_FP_HEAD:_FP_HEAD + (length // BLOCK) * 16]


def _fingerprint_ctime(fingerprint: bytes) -> int | None:
    """The ctime a fingerprint was taken at (None for a ledger row written before it was recorded)."""
    if fingerprint[:1] != _FP_VERSION or len(fingerprint) < _FP_HEAD:
        return None
    return int.from_bytes(fingerprint[33:41], "little", signed=True)


def _prefix_intact(fd: int, fingerprint: bytes, length: int, budget: int) -> int | None:
    """Whether the first `length` bytes are still those `fingerprint` was taken of: the ends, the last
    block (it is re-hashed when the fingerprint is extended, so it must be checked first), and blocks
    from the cursor on, round robin, until `budget` bytes (at least one block). Returns the next cursor,
    or None when something differs. Over successive appends every block is checked: an edit inside
    the folded part is found within (prefix size / max(BLOCK, bytes appended)) appends, and each append
    reads at most two blocks more than it grew."""
    if fingerprint[:1] != _FP_VERSION:  # a row from before block digests: the ends alone
        return 0 if len(fingerprint) == 32 and _ends_digest(fd, length) == fingerprint else None
    blocks = -(-length // BLOCK)
    digests = fingerprint[_FP_HEAD:]
    if len(digests) != blocks * 16 or fingerprint[1:33] != _ends_digest(fd, length):
        return None
    if not blocks:
        return 0
    last = blocks - 1
    if _block_digest(fd, last, length) != digests[last * 16:]:
        return None
    cursor = int.from_bytes(fingerprint[41:45], "little") % last if last else 0
    for _ in range(min(last, -(-max(budget, 1) // BLOCK))):  # blocks before the last, each at most once
        if _block_digest(fd, cursor, length) != digests[cursor * 16:(cursor + 1) * 16]:
            return None
        cursor = (cursor + 1) % last
    return cursor


class _Hashes(msgspec.Struct):
    """What is computed over the bytes while the fold reads them, so each byte is read once and hashed
    once: the content hash, and for a read from byte 0 the block digests of the prefix fingerprint and,
    when the mirror wants it (`Job.sha256`), Codex's sha256 of the whole file.

    The content hash of a read from byte 0 is a tree, as blake3 is inside: each full BLOCK's 32-byte
    blake3 (whose first 16 bytes are its fingerprint digest) goes into a hash of the digests, closed by
    the last partial block's digest and the length (`digest`). An append chains instead: blake3(the
    previous hash ‖ the bytes added), fed from `start`. Either is only ever compared with the hash of
    the same session's last reading (equal: the bytes did not change)."""

    content: blake3.blake3
    start: int = 0
    sha256: Any = None  # a hashlib sha256, fed only on a read from byte 0
    blocks: list[bytes] | None = None  # a read from byte 0: the 16-byte digests of its full BLOCKs, in order
    tail: Any = b""  # ... and the bytes after them (a view into the last chunk read)
    tail_digest: bytes = b""  # blake3 of `tail`, once asked for
    fed: int = 0  # the end of what was fed

    @classmethod
    def whole(cls, sha256: bool = False) -> _Hashes:
        return cls(blake3.blake3(), 0, hashlib.sha256() if sha256 else None, [])

    def feed(self, chunk: bytes, pos: int) -> None:
        """`chunk` holds bytes [pos, pos + len(chunk)) of the file, read after bytes [0, pos) for a read
        from byte 0; the bytes before `self.fed` are not fed again."""
        end = pos + len(chunk)
        if end <= self.fed:
            return
        if self.blocks is None:  # an append: the chain takes the bytes after `start`
            self.content.update(memoryview(chunk)[max(self.start, self.fed, pos) - pos:])
            self.fed = end
            return
        assert pos <= self.fed, "a read from byte 0 is fed in order"
        view = memoryview(chunk)[self.fed - pos:]
        if self.sha256 is not None:
            self.sha256.update(view)
        if self.tail:  # the chunk before did not end on a block boundary (a short read): complete that block
            need = BLOCK - len(self.tail)
            pending = self.tail if type(self.tail) is bytearray else bytearray(self.tail)
            pending += view[:need]
            view = view[need:]
            if len(pending) < BLOCK:
                self.tail, self.tail_digest, self.fed = pending, b"", end
                return
            self._block(pending)
        full = len(view) - len(view) % BLOCK
        for at in range(0, full, BLOCK):
            self._block(view[at:at + BLOCK])
        self.tail, self.tail_digest, self.fed = view[full:], b"", end

    def _block(self, data: Any) -> None:
        digest = blake3.blake3(data).digest()
        assert self.blocks is not None
        self.blocks.append(digest[:16])
        self.content.update(digest)

    def _tail32(self) -> bytes:
        if not self.tail_digest:
            self.tail_digest = blake3.blake3(self.tail).digest()
        return self.tail_digest

    def digest(self) -> bytes:
        if self.blocks is None:
            return self.content.digest()
        tree = self.content.copy()
        tree.update(self._tail32())
        tree.update(self.fed.to_bytes(8, "little"))
        return tree.digest()

    def block_digests(self, length: int) -> bytes:
        """The digests of the leading blocks of the file's first `length` bytes this read computed: its
        full blocks within them, and the partial last one when `length` is where the read ended."""
        blocks = self.blocks or []
        full = min(len(blocks), length // BLOCK)
        known = blocks[:full]
        if full == len(blocks) and length == self.fed and self.tail:
            known.append(self._tail32()[:16])  # blake3's digest(16) is the first 16 bytes of digest()
        return b"".join(known)

    def held(self) -> Held:
        """The bytes this read still holds (after its last full block), for `prefix_fingerprint`."""
        return (self.fed - len(self.tail), self.tail)

    def sha256_of(self, size: int) -> str | None:
        """The hex sha256 of the file's first `size` bytes, when every one of them was fed."""
        return self.sha256.hexdigest() if self.sha256 is not None and self.fed == size else None

    def fingerprint(self, fd: int, length: int, ctime_ns: int | None = None) -> bytes:
        """`prefix_fingerprint` of a read from byte 0, from what it computed and holds."""
        return prefix_fingerprint(fd, length, ctime_ns=ctime_ns, blocks=self.block_digests(length), held=self.held())


def _fold_file(fd: int, size: int, start: FoldState, kind: str, ctx: ParseContext, hashes: _Hashes,
               max_line: int) -> tuple[list[bytes], FoldState]:
    """Fold bytes [start.offset, size) in chunks (the source is never held whole), feeding each chunk
    to `hashes` as it is read. Returns the body parts and the new state.

    Each byte is read once: an incomplete last line is carried in front of the next chunk. The fold
    skips a line over `max_line` (and stops carrying it), so what is held is at most one read (≤ MAX_READ)
    plus one line under the limit, however long a line in the file is."""
    source = SOURCES[kind]
    state = start
    parts: list[bytes] = []
    pos = start.offset  # next byte to read; bytes [state.offset, pos) are carried in `carry`
    carry = b""
    while pos < size:
        # a line longer than a chunk: read as much again as is carried (up to MAX_READ), so its bytes
        # are not copied and scanned again for every chunk
        want = min(max(CHUNK, len(carry) // CHUNK * CHUNK), MAX_READ)
        chunk = os.pread(fd, min(want, size - pos), pos)
        if not chunk:
            break  # the file shrank while we read: fold what we have, the next event re-syncs
        end = pos + len(chunk)
        hashes.feed(chunk, pos)
        data = carry + chunk if carry else chunk
        body, state = fold(source, state, data, ctx, max_line)
        if body:
            parts.append(body)
        carry = data[len(data) - (end - state.offset):] if state.offset < end else b""
        pos = end
    return parts, state


def _meta_line(thread: str, state: FoldState, cwd: str, git: GitInfo | None) -> bytes:
    start = state.source.start_ms or 0
    meta = SessionMeta(id=thread, session_id=thread, timestamp=iso_ms(start), cwd=cwd, originator=ORIGINATOR,
                       cli_version=CLI_VERSION, source="cli", model_provider="openai", git=git)
    return encode(start, "session_meta", meta)


def sync_session(job: Job) -> Outcome:
    began = time.perf_counter()
    ident = job.ident
    out = Outcome(kind="failed", source=ident.kind, path=str(ident.path), session_id=ident.session_id)
    try:
        _sync(job, out)
    except _Skip as skip:
        out.kind, out.message, out.row, out.waiting_for = "skipped", str(skip), None, skip.waiting_for
    except store.Busy as busy:
        out.kind, out.message, out.row = "deferred", f"{busy}; will retry", None
    except Incomplete as exc:
        out.kind, out.row = "deferred", None
        out.message = f"{ident.path}: {exc or 'the agent was writing it'}; will retry"
    except store.StoreError as exc:
        out.kind, out.message, out.row = "failed", f"{ident.path}: {exc}", None
    except (sqlite3.Error, LedgerError) as exc:  # an intent or reservation could not be recorded: nothing written
        out.kind, out.row = "deferred", None
        out.message = (f"{ident.path}: cannot write to the ledger {job.ledger_path} ({exc}); will retry "
                       "(free space in the state dir if it is full)")
    except FileNotFoundError:
        out.kind, out.row = "skipped", None
        out.message = f"{ident.path}: the source file is gone; its thread is kept"
    except OSError as exc:
        out.kind, out.row = "failed", None
        out.message = f"cannot read {ident.path}: {exc.strerror or exc}; check that the file is readable"
    except Exception as exc:  # noqa: BLE001 — the never-raise contract: one session's content (or a bug
        # it triggers) fails that session only. Settled: not retried until the file changes.
        out.kind, out.row, out.settled = "failed", None, True
        out.message = (f"{ident.path}: could not be imported ({type(exc).__name__}: {_first_line(exc)}); "
                       "it is retried when the file changes — please report this with the file if it persists")
    out.duration_ms = (time.perf_counter() - began) * 1000
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else "no detail")


class _Read(msgspec.Struct):
    """What one reading of a session gave: how it relates to what we wrote, and the new fold."""

    mode: Literal["new", "append", "rewrite"]
    start: FoldState  # the state the new parts continue (the row's for an append, else fresh)
    parts: list[bytes]  # rendered body lines
    state: FoldState
    content_hash: bytes
    prefix_hash: bytes
    stat: tuple[int, int, int]  # the version the reading was made at
    ctx: ParseContext
    refold: Callable[[Row], tuple[list[bytes], FoldState]]  # the whole session again, from the start


def _sync(job: Job, out: Outcome) -> None:
    if job.row is not None and job.row.tombstoned_at is not None:
        out.kind = "unchanged"  # its thread was deleted in Codex: left alone until --restore
        return
    shape = shape_of(SOURCES[job.ident.kind], job.ident)  # one session id may change shape (base.py)
    if job.row is None and job.codex_import is not None and shape == "log":
        adopted = _adopt(job)
        if adopted is not None:  # from now on Codex's thread is this session's thread
            job = msgspec.structs.replace(job, row=adopted, codex_import=None)
            out.kind, out.row = "adopted", adopted
            out.message = f"{job.ident.path}: imported by Codex as thread {adopted.thread_id}; kept in sync there"
    read = _read_snapshot(job, out) if shape == "snapshot" else _read_log(job, out)
    if read is not None:
        _settle(job, out, read)  # an adopted session: "touched" (nothing new since Codex's import) or appended


def _find_rollout(codex_home: Path, thread_id: str) -> Path | None:
    """Codex's rollout of a thread it created (its name ends with the thread id), wherever it is now."""
    for pattern in (f"sessions/*/*/*/rollout-*-{thread_id}.jsonl", f"archived_sessions/rollout-*-{thread_id}.jsonl"):
        for found in codex_home.glob(pattern):
            if found.is_file():
                return found
    return None


def _adopt(job: Job) -> Row | None:
    """Link a session Codex's own importer already imported to Codex's thread, instead of a second thread.

    Codex's record has the sha256 of the bytes it imported: the line-boundary prefix of the source with
    that hash is where its import ends. We fold that prefix (our rendering of it equals Codex's, line for
    line but for time stamps) and describe Codex's rollout as if we had written it, so the engine appends
    the turns after the prefix to that thread, with the usual rules (writer lock, conflict detection).
    No prefix matches (the source was rewritten since): the row describes only the thread, so the engine
    rewrites it, or writes a conflict copy if the user continued it in Codex — never a silent second
    thread. None: Codex's thread is gone (import as usual)."""
    from daemon.codex import mirror

    assert job.codex_import is not None
    thread_id, sha256 = job.codex_import
    ident = job.ident
    rollout = _find_rollout(job.codex_home, thread_id)
    current = store.current_state(rollout) if rollout is not None else None
    if rollout is None or current is None:
        return None
    existing = store.read_range(rollout, 0, current[0])
    marker = existing.rfind(_MARKER_LINE)
    body_end = existing.rfind(b"\n", 0, marker) + 1 if marker >= 0 else -1
    ours_like = marker >= 0 and _earlier_copy_of_ours(rollout) is not None
    end = mirror.imported_prefix(ident.path, sha256)
    state, consumed, content_hash = new_fold_state(ident.kind), 0, b""
    if end is not None:
        fd = os.open(ident.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            hashes = _Hashes.whole()
            _, state = _fold_file(fd, end, state, ident.kind, ParseContext(mtime_ms=st.st_mtime_ns // 1_000_000),
                                  hashes, job.max_line)
            consumed, content_hash = state.offset, hashes.digest()
            prefix_hash = hashes.fingerprint(fd, consumed)
        finally:
            os.close(fd)
    else:
        prefix_hash = b""
    # Continued in Codex (native turns after its import): nothing of it is described as ours, so the
    # engine's owner check says "theirs" and the new version goes to a conflict copy.
    size_seen, tail_seen = current if ours_like else (-1, b"")
    body_end = max(body_end, 0)
    body_hash = store.tail_hash_at(rollout, body_end) if ours_like else None
    now = time.time()
    return Row(source=ident.kind, path=str(ident.path), session_id=ident.session_id, size=end or 0, mtime_ns=0,
               inode=0, content_hash=content_hash, consumed=consumed, prefix_hash=prefix_hash, fold_state=state,
               thread_id=thread_id, rollout_path=str(rollout), rollout_size=size_seen, rollout_tail_hash=tail_seen,
               rollout_body_end=body_end, rollout_body_hash=body_hash, first_imported_at=now, updated_at=now,
               synced_at=now)


def _read_log(job: Job, out: Outcome) -> _Read | None:
    """A log session: only the bytes appended since the last sync when the folded prefix is intact."""
    ident, row = job.ident, job.row
    path = ident.path
    try:  # a FIFO named *.jsonl must not block a worker; a symlink is not followed out of the roots
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise _Skip(f"{path}: is a symbolic link; only files inside the source folders are sessions") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Skip(f"{path}: not a regular file; only files are sessions")
        out.stat = _stat_key(st)
        beside = getattr(SOURCES[ident.kind], "beside_mtime_ns", None)
        if beside is not None:  # files beside the log (a title) count as part of its version
            out.stat = (st.st_size, max(st.st_mtime_ns, beside(ident)), st.st_ino)
        if row is not None and (row.size, row.mtime_ns, row.inode) == out.stat and row.path == str(path):
            if _fingerprint_ctime(row.prefix_hash) in (None, st.st_ctime_ns):
                out.kind = "unchanged"  # nothing read
                return None
            # The same stat, another ctime: rewritten with mtime and size put back (`cp -p`, rsync), or
            # only chmodded. Every block of the folded prefix is checked: intact → unchanged (and the new
            # ctime recorded, so it is read once); otherwise it is read whole below, as a rewrite.
            if _prefix_intact(fd, row.prefix_hash, row.consumed, row.consumed) is not None:
                out.kind, out.bytes_read = "unchanged", row.consumed
                fp = row.prefix_hash
                out.row = msgspec.structs.replace(
                    row, prefix_hash=fp[:33] + st.st_ctime_ns.to_bytes(8, "little", signed=True) + fp[41:])
                return None
        ctx = ParseContext(mtime_ms=st.st_mtime_ns // 1_000_000)
        size = st.st_size
        # Append only when the file grew (a same-size or smaller change is hashed whole) and the folded
        # prefix is intact (its ends, its last block and a few more, round robin: an edit in the middle
        # is found within a bounded number of appends), without an inode check: a writer that replaces
        # the file by rename keeps its bytes, not its inode.
        cursor = None
        if row is not None and size > row.size and row.consumed <= size:
            cursor = _prefix_intact(fd, row.prefix_hash, row.consumed, size - row.size)
        if row is not None and cursor is not None:
            mode, start = "append", row.fold_state
            hashes = _Hashes(blake3.blake3(row.content_hash), row.size)
        else:
            mode, start = ("new" if row is None else "rewrite"), new_fold_state(ident.kind)
            hashes = _Hashes.whole(job.sha256)
        parts, state = _fold_file(fd, size, start, ident.kind, ctx, hashes, job.max_line)
        faults.point("fold", path)
        if mode == "append":
            assert row is not None and cursor is not None
            prefix_hash = prefix_fingerprint(fd, state.offset, ctime_ns=st.st_ctime_ns, cursor=cursor,
                                             blocks=_known_blocks(row.prefix_hash, row.consumed))
        else:
            prefix_hash = hashes.fingerprint(fd, state.offset, st.st_ctime_ns)
            out.sha256 = hashes.sha256_of(size)
        content_hash = hashes.digest()
        out.bytes_read = size - start.offset
        out.malformed = (state.source.malformed - start.source.malformed
                         + state.long_lines - start.long_lines)
    finally:
        os.close(fd)
    return _Read(mode, start, parts, state, content_hash, prefix_hash, out.stat, ctx,
                 lambda new: _refold(job, ctx, new))


def _read_snapshot(job: Job, out: Outcome) -> _Read | None:
    """A snapshot session: read whole when its version changed, then synced at the turn level — the new
    messages are appended when the reading still starts with the messages we wrote (same count, same
    chained digest), otherwise the thread is rewritten."""
    ident, row = job.ident, job.row
    source = SOURCES[ident.kind]
    version = source.version(ident)
    out.stat = version.key()
    if row is not None and (row.size, row.mtime_ns, row.inode) == out.stat and row.path == str(ident.path):
        out.kind = "unchanged"
        return None
    ctx = ParseContext(mtime_ms=version.mtime_ns // 1_000_000, child_sessions=job.child_sessions)
    snap = source.read_snapshot(ident, ctx)
    faults.point("fold", ident.path)
    out.bytes_read = version.size
    out.malformed = snap.state.malformed
    messages = snap.messages
    fresh = new_fold_state(ident.kind)
    start = row.fold_state if row is not None else fresh
    written = start.messages
    if (row is not None and row.thread_id is not None and 0 < written < len(messages)
            and message_digest(messages[:written]) == start.digest):
        mode, base = "append", start
        body, thread = render(start.thread, messages[written:])
    else:
        mode, base = ("new" if row is None else "rewrite"), fresh
        body, thread = render(fresh.thread, messages)
    state = FoldState(source=snap.state, thread=thread, messages=len(messages), digest=message_digest(messages))

    def refold(new: Row) -> tuple[list[bytes], FoldState]:
        full, full_thread = render(fresh.thread, messages)
        again = FoldState(source=state.source, thread=full_thread, messages=state.messages, digest=state.digest)
        new.fold_state = again
        return ([full] if full else []), again

    return _Read(mode, base, [body] if body else [], state, snap.digest, b"", out.stat, ctx, refold)


def _settle(job: Job, out: Outcome, read: _Read) -> None:
    """Decide from a reading what to write, write it, and leave the row to commit in `out.row`."""
    ident, row = job.ident, job.row
    path = ident.path
    mode, start, parts, state, ctx = read.mode, read.start, read.parts, read.state, read.ctx
    content_hash, prefix_hash = read.content_hash, read.prefix_hash
    size, mtime_ns, inode = read.stat
    if row is not None and (content_hash == row.content_hash or mode == "append" and state == start):
        out.kind = "touched"  # same bytes, or no new complete line yet: remember the stat, write nothing
        # and the fingerprint just taken (of the same `consumed` bytes): it holds the new ctime, without
        # which the next triage would send the file back for a check of its whole prefix
        out.row = msgspec.structs.replace(row, path=str(path), size=size, mtime_ns=mtime_ns, inode=inode,
                                          content_hash=content_hash, prefix_hash=prefix_hash,
                                          synced_at=time.time(), last_error=None, error_count=0)
        if out.row.thread_id is not None and out.row.tombstoned_at is None:
            out.index_unsynced = _name(job.codex_home, out.row, out.row.fold_state, job.codex_compatible,
                                       _title_beside(job))
        return
    now = time.time()
    new = Row(source=ident.kind, path=str(path), session_id=ident.session_id, size=size,
              mtime_ns=mtime_ns, inode=inode, content_hash=content_hash, consumed=state.offset,
              prefix_hash=prefix_hash, fold_state=state, first_imported_at=row.first_imported_at if row else now,
              updated_at=row.updated_at if row else now, synced_at=now)
    if row is not None:
        new.thread_id, new.generation, new.title = row.thread_id, row.generation, row.title
        new.rollout_path, new.rollout_size = row.rollout_path, row.rollout_size
        new.rollout_tail_hash, new.rollout_body_end = row.rollout_tail_hash, row.rollout_body_end
        new.rollout_body_hash = row.rollout_body_hash
    out.row = new
    if mode == "rewrite" and _renders_the_same(row, parts, state):
        # Read whole (a same-size change, a touch after appends): the thread would not change. Remember
        # the new stat, fingerprint and state; a new title still goes to Codex.
        out.kind = "touched"
        out.index_unsynced = _name(job.codex_home, new, state, job.codex_compatible, _title_beside(job))
        return
    if not state.thread.turns:
        # No user message yet: remember what we read and write nothing. Unless this is a rewrite of a
        # session that already has a thread: then commit nothing, so the next change is again a full
        # rewrite of that thread (the old thread must not be extended from a state that lost its turns).
        out.kind, out.message = "pending", "no user message yet"
        if new.thread_id is not None:
            out.row = None
        return
    cwd = state.source.cwd or SOURCES[ident.kind].fallback_cwd(ident)
    if not cwd:
        raise _Skip(f"{path}: no working directory recorded in the session; nothing to import yet")
    if new.thread_id is None and job.skip_missing_cwd and not os.path.isdir(cwd):
        raise _Skip(f"{path}: its working directory {cwd} no longer exists; recreate it to import "
                    "(or set skip_missing_cwd = false)", cwd)
    if state.source.start_ms is None:
        known = row.fold_state.source.start_ms if row is not None else None
        state.source.start_ms = known or _reserve_start(job, ctx.mtime_ms)
    out.new_turns = state.thread.turns - (start.thread.turns if mode == "append" else 0)
    _write_thread(job, out, new, mode, parts, state, cwd, read.refold)


def _renders_the_same(row: Row, parts: list[bytes], state: FoldState) -> bool:
    """Whether the thread we wrote already holds exactly this rendering (body and closing lines)."""
    if row.rollout_path is None or row.rollout_body_end is None:
        return False
    if closing(row.fold_state.thread) != closing(state.thread):
        return False
    try:
        head = store.read_range(Path(row.rollout_path), 0, row.rollout_body_end)
    except store.StoreError:
        return False
    return head[head.find(b"\n") + 1:] == b"".join(parts)


def _write_thread(job: Job, out: Outcome, new: Row, mode: str, parts: list[bytes], state: FoldState,
                  cwd: str, refold: Callable[[Row], tuple[list[bytes], FoldState]]) -> None:
    ident, row, home = job.ident, job.row, job.codex_home
    if new.rollout_path is not None:
        assert row is not None and row.rollout_body_end is not None
        rollout = store.locate_rollout(home, Path(new.rollout_path))
        if rollout is None:  # the user deleted the thread in Codex: tombstone, never bring it back unasked
            out.kind, new.tombstoned_at = "tombstoned", time.time()
            out.message = (f"{ident.path}: its thread {row.thread_id} was deleted in Codex; not imported again "
                           f"(`session-syncd import --restore {ident.session_id}` brings it back)")
            return
        new.rollout_path = str(rollout)  # archived (or unarchived) in Codex: follow it, keep appending there
        with writer_lock(home, row.thread_id):  # Codex has the thread open → Busy → deferred
            owner, carried = _owner(rollout, row)
            if owner in ("ours", "interrupted"):
                if mode == "append" and owner == "ours":
                    tail = b"".join(parts) + closing(state.thread)
                    tail = (compat.restamp(tail, compat.now_ms()) if job.codex_compatible else tail) + carried
                    _intend(job, store.planned_append(rollout, row.rollout_body_end, tail))
                    old_tail = closing(row.fold_state.thread) + carried
                    new.rollout_size, new.rollout_tail_hash = store.append_after(
                        rollout, row.rollout_body_end, tail, restore=old_tail)
                    new.rollout_body_end = row.rollout_body_end + sum(map(len, parts))
                    new.rollout_body_hash = store.tail_hash_at(rollout, new.rollout_body_end)
                    out.kind = "appended"
                else:
                    if mode == "append":
                        parts, state = refold(new)
                    chunks = _full_chunks(new.thread_id, parts, state, cwd, carried, job.codex_compatible)
                    _intend(job, store.planned_state(chunks))
                    _write_full(new, rollout, chunks, len(carried))
                    out.kind = "rewritten"
                out.index_unsynced = _name(home, new, state, job.codex_compatible, _title_beside(job))
                new.updated_at = time.time()
                return
        # Someone else wrote to (or removed) the thread: leave it alone, start the next generation.
        reason = "rollout missing" if owner == "missing" else "thread continued in Codex"
        generation = new.generation + 1
        thread = ids.thread_id(ident.kind, ident.session_id, str(ident.path), generation, state.source.start_ms)
        out.superseded = Superseded(thread_id=row.thread_id, source=ident.kind, path=str(ident.path),
                                    generation=row.generation, rollout_path=row.rollout_path, next_thread=thread,
                                    reason=reason, at=time.time())
        if mode == "append":  # the new generation holds the whole session: fold it from the start
            parts, state = refold(new)
        new.generation, new.thread_id, new.title = generation, thread, None
        out.kind = "conflict"
        out.message = f"{ident.path}: {reason} ({row.thread_id}); wrote the new version as thread {thread}"
    else:
        if mode == "append":  # a restored session (its old thread was deleted): the whole session again
            parts, state = refold(new)
        new.thread_id = ids.thread_id(ident.kind, ident.session_id, str(ident.path), new.generation,
                                      state.source.start_ms)
        out.kind = "imported"
    while True:
        rollout = home / ids.rollout_relpath(new.thread_id, state.source.start_ms)
        chunks = _full_chunks(new.thread_id, parts, state, cwd, b"", job.codex_compatible)
        if not rollout.exists():
            # A new thread takes no writer lock: nobody can have it open (Codex opens a thread through its
            # rollout, the id is ours alone, and the home lock keeps any other session-syncd out).
            _write_full(new, rollout, chunks, 0)
            break
        with writer_lock(home, new.thread_id):
            carried = _earlier_copy_of_ours(rollout)
            if carried is not None:  # ours, from a run whose commit was lost
                chunks[-1] = carried
                _write_full(new, rollout, chunks, len(carried))
                break
        # A thread at our deterministic path that the ledger does not know and that was continued in
        # Codex (a lost or moved-aside ledger): keep it, use the next generation.
        generation = new.generation + 1
        thread = ids.thread_id(ident.kind, ident.session_id, str(ident.path), generation, state.source.start_ms)
        out.superseded = Superseded(thread_id=new.thread_id, source=ident.kind, path=str(ident.path),
                                    generation=new.generation, rollout_path=str(rollout), next_thread=thread,
                                    reason="thread continued in Codex", at=time.time())
        new.generation, new.thread_id, out.kind = generation, thread, "conflict"
        out.message = f"{ident.path}: {rollout} was continued in Codex; wrote the session as thread {thread}"
    out.index_unsynced = _name(home, new, state, job.codex_compatible, _title_beside(job))
    new.updated_at = time.time()


_MARKER_LINE = b'"type":"event_msg","payload":{"type":"agent_message","message":"<EXTERNAL SESSION IMPORTED>"'


def _earlier_copy_of_ours(rollout: Path) -> bytes | None:
    """For a rollout found at our path with no ledger row (its path holds our deterministic id, so we
    wrote it; the commit was lost): the Codex metadata lines to carry if it still ends with our three
    closing lines followed only by such lines, or None if someone continued the thread after them."""
    existing = store.read_range(rollout, 0, rollout.stat().st_size)
    old = existing[existing.find(b"\n") + 1:]
    marker = old.rfind(_MARKER_LINE)
    start = old.rfind(b"\n", 0, marker) + 1 if marker >= 0 else -1
    if start < 0:
        return None
    end = start
    for _ in range(3):  # marker, token_count, task_complete
        end = old.find(b"\n", end) + 1
        if end == 0:
            return None
    after = old[end:]
    return after if not after or is_codex_metadata(after) else None


Owner = Literal["ours", "interrupted", "theirs", "missing"]


def _owner(rollout: Path, row: Row) -> tuple[Owner, bytes]:
    """Who wrote the rollout last, and the Codex metadata lines to carry over when it is still ours.

    Ours: exactly what we committed, or that plus lines Codex appends when a thread is merely opened
    (`lines.is_codex_metadata`: settings, not conversation). Those lines, and any carried before, sit
    after our closing lines; we keep them, after our new closing lines. Interrupted (a crash of ours
    before the commit): exactly what the write intent announced, or (a kill in the middle of an append)
    a file whose body up to `rollout_body_end` is intact and whose rest is not; nothing is carried then.
    Theirs: anything else — Codex continued the thread by appending conversation after our lines.
    """
    current = store.current_state(rollout)
    if current is None:
        return "missing", b""
    size = current[0]
    ours_end = row.rollout_body_end + len(closing(row.fold_state.thread))
    if current == (row.rollout_size, row.rollout_tail_hash):
        carried = store.read_range(rollout, ours_end, size)
        return ("ours", carried) if not carried or is_codex_metadata(carried) else ("interrupted", b"")
    if current == (row.pending_size, row.pending_tail_hash):
        return "interrupted", b""
    if size > row.rollout_size and store.tail_hash_at(rollout, row.rollout_size) == row.rollout_tail_hash:
        if is_codex_metadata(store.read_range(rollout, row.rollout_size, size)):
            return "ours", store.read_range(rollout, ours_end, size)
        return "theirs", b""
    if row.rollout_body_hash is not None and store.tail_hash_at(rollout, row.rollout_body_end) == row.rollout_body_hash:
        return "interrupted", b""
    return "theirs", b""


def _reserve_start(job: Job, proposed_ms: int) -> int:
    """The start time of a session whose records carry none (it fixes the thread id and rollout path).

    The file's mtime is the best guess, but it moves as the file grows, so the first guess is
    reserved in the ledger before anything is written: a crash before the commit and a retry after
    the file grew then still land on the same thread id and path. Durable before that write (the
    ledger commits with synchronous=FULL): lost to a power cut, the retry would pick another start."""
    ledger = Ledger(job.ledger_path, migrate=False)
    try:
        start = ledger.reserve_start(job.ident.kind, job.ident.session_id, proposed_ms)
    finally:
        ledger.close()
    faults.point("intent", job.ident.path)
    return start


def _intend(job: Job, planned: tuple[int, bytes]) -> None:
    """Record what an existing rollout will look like after the write that follows, durably (FULL):
    after a crash or a power cut in between, the changed file is recognised as ours, not Codex's."""
    ledger = Ledger(job.ledger_path, migrate=False)
    try:
        ledger.set_intent(job.ident.kind, job.ident.session_id, *planned)
    finally:
        ledger.close()
    faults.point("intent", job.ident.path)


def _refold(job: Job, ctx: ParseContext, new: Row) -> tuple[list[bytes], FoldState]:
    """Fold the whole source again (for a full rewrite after an append-mode read) and update `new`."""
    ident = job.ident
    fd = os.open(ident.path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        hashes = _Hashes.whole()
        parts, state = _fold_file(fd, st.st_size, new_fold_state(ident.kind), ident.kind, ctx, hashes, job.max_line)
        prefix = hashes.fingerprint(fd, state.offset)
    finally:
        os.close(fd)
    if state.source.start_ms is None:
        state.source.start_ms = new.fold_state.source.start_ms or _reserve_start(job, ctx.mtime_ms)
    new.size, new.mtime_ns, new.inode = _stat_key(st)
    new.content_hash, new.prefix_hash, new.consumed, new.fold_state = hashes.digest(), prefix, state.offset, state
    return parts, state


def _full_chunks(thread: str, parts: list[bytes], state: FoldState, cwd: str, carried: bytes,
                 codex_compatible: bool = False) -> list[bytes]:
    """A whole rollout: session_meta, body, closing lines, then any Codex metadata lines we carry.
    Codex-compatible: Codex's session_meta and git (the cwd's HEAD), our lines stamped with the write time."""
    if codex_compatible:
        now = compat.now_ms()
        return [compat.meta_line(thread, cwd, git_info(cwd), CLI_VERSION, now),
                compat.restamp(b"".join(parts), now), compat.restamp(closing(state.thread), now), carried]
    meta = _meta_line(thread, state, cwd, git_info(cwd, state.source.git_branch))
    return [meta, *parts, closing(state.thread), carried]


def _write_full(new: Row, rollout: Path, chunks: list[bytes], carried: int) -> None:
    new.rollout_size, new.rollout_tail_hash = store.write_atomic(rollout, chunks)
    new.rollout_body_end = new.rollout_size - carried - len(chunks[-2])
    new.rollout_body_hash = store.planned_state(chunks[:-2])[1]
    new.rollout_path = str(rollout)


def _title_beside(job: Job) -> str | None:
    """A title the agent keeps beside the session (Copilot's workspace.yaml), if its plug-in reads one."""
    reader = getattr(SOURCES[job.ident.kind], "title_beside", None)
    return reader(job.ident) if reader is not None else None


def _name(home: Path, new: Row, state: FoldState, codex_compatible: bool = False,
          title_beside: str | None = None) -> str | None:
    """Set the thread's title on the row; a new one is appended to Codex's title index, unsynced: the
    path returned is fsynced by whoever commits the row, once for all the rows committed together."""
    s = state.source
    if codex_compatible:  # Codex's pick, recorded but not written: Codex's importer writes no session_index
        new.title = compat.title(s.custom_title, s.ai_title, state.thread.titles, state.thread.saw_user)
        return None
    title = choose(s.custom_title or title_beside, s.ai_title, state.thread.fallback_title, state.thread.saw_user)
    if title and title != new.title:
        path = store.append_session_index(home, new.thread_id, title)
        new.title = title
        return str(path)
    return None
