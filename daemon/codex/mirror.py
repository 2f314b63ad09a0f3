"""The mirror: what we tell Codex's import ledger about a session we imported, and its sha256.

After we commit a session, its record in `$CODEX_HOME/external_agent_session_imports.json` (written by
codex_ledger.py) makes Codex's own importer treat it as imported: `externalAgentConfig/detect` skips a
source whose record has its current mtime (no hashing), or whose current sha256 a record has.

Owns (1) the record we write for a session, (2) keeping that sha256 — Codex wants the hex sha256 of the
whole source — O(new bytes) while a session grows, and (3) finding where an import Codex made ends in a
source that grew since (for adoption).

The sha256 choice: hashlib's state cannot be pickled or exported, so it cannot live in our SQLite ledger
beside the fold state. Sha256Tracker keeps it in memory in the process that mirrors (the daemon's main
process): the first mirror of a source after a start hashes the whole file once (27 MiB: ~28 ms from the
page cache on a SHA-NI x86 core, ~4x that without SHA extensions), every later one reads only the bytes
past where it stopped. So the mirror is updated right after each commit, with no lag, at O(new bytes)
per append plus one whole-file hash per session per process lifetime (bounded: `max_entries` states,
least recently used dropped, ~200 bytes each).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import msgspec

from daemon.codex import codex_ledger
from daemon.codex.codex_ledger import ImportRecord

#: Bytes before the resume point that must still be there for an append to be trusted (cheap guard
#: against a file that was rewritten to the same or a larger size). The engine does the real check.
TAIL_BYTES = 4096
CHUNK = 1 << 20


class SourceDigest(msgspec.Struct, frozen=True):
    """The sha256 of a source's first `size` bytes, and the mtime it had when we looked."""

    sha256: str
    size: int
    mtime_ns: int


class _State(msgspec.Struct):
    dev: int
    ino: int
    size: int
    hasher: Any  # hashlib sha256 object (not picklable: lives here only); None for a known digest
    tail: bytes  # the last TAIL_BYTES bytes before `size`
    known: SourceDigest | None = None  # a digest a worker computed while it read the file (`seed`)


class Sha256Tracker:
    """sha256 of growing files, O(new bytes) per call while this object lives (see the module doc)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self.bytes_hashed = 0  # for tests and benchmarks: how much was actually read and hashed
        self._states: OrderedDict[str, _State] = OrderedDict()

    def forget(self, path: Path | str) -> None:
        self._states.pop(str(path), None)

    def seed(self, path: Path | str, digest: SourceDigest, inode: int) -> None:
        """Remember a digest computed elsewhere (the worker that read the whole file hashed it in the same
        pass): while the file keeps that inode, size and mtime, `digest` returns it without reading. It
        has no hash state to resume, so a later growth hashes the file once from the start."""
        key = str(path)
        self._states[key] = _State(-1, inode, digest.size, None, b"", digest)
        self._states.move_to_end(key)
        self._trim()

    def reserve(self, entries: int) -> None:
        """Keep at least `entries` states from now on (the limit only grows: a caller that needs room for
        what it seeds must not have them evicted before it asks for them)."""
        self.max_entries = max(self.max_entries, entries)

    def _trim(self) -> None:
        while len(self._states) > self.max_entries:
            self._states.popitem(last=False)

    def digest(self, path: Path | str, *, rewritten: bool = False) -> SourceDigest:
        """The sha256 of the file as it is (its first st_size bytes at open time).

        Resumes from the last call when the file is the same inode, did not shrink and still has the
        bytes we stopped at; `rewritten=True` (the engine saw a rewrite) forces a whole-file hash.
        """
        key = str(path)
        state = None if rewritten else self._states.get(key)
        if state is not None and state.known is not None:
            st = os.stat(key)  # a stat, not an open: most files a flush asks about, a worker just hashed
            known = state.known
            if (st.st_ino, st.st_size, st.st_mtime_ns) == (state.ino, known.size, known.mtime_ns):
                return known
            state = None
        fd = os.open(key, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if state is not None and not _resumable(fd, st, state):
                state = None
            if state is None:
                state = _State(st.st_dev, st.st_ino, 0, hashlib.sha256(), b"")
            offset = state.size
            hasher = state.hasher.copy()
            tail = state.tail
            while offset < st.st_size:
                chunk = os.pread(fd, min(CHUNK, st.st_size - offset), offset)
                if not chunk:
                    break  # truncated while we read: hash what is there; the next commit re-checks
                hasher.update(chunk)
                offset += len(chunk)
                tail = chunk[-TAIL_BYTES:] if len(chunk) >= TAIL_BYTES else (tail + chunk)[-TAIL_BYTES:]
                self.bytes_hashed += len(chunk)
        finally:
            os.close(fd)
        self._states[key] = _State(st.st_dev, st.st_ino, offset, hasher, tail)
        self._states.move_to_end(key)
        self._trim()
        return SourceDigest(hasher.hexdigest(), offset, st.st_mtime_ns)


def _resumable(fd: int, st: os.stat_result, state: _State) -> bool:
    if (st.st_dev, st.st_ino) != (state.dev, state.ino) or st.st_size < state.size:
        return False
    if not state.tail:
        return True
    return os.pread(fd, len(state.tail), state.size - len(state.tail)) == state.tail


def mirror_record(source_path: str, thread_id: str, digest: SourceDigest, title: str | None,
                  imported_at: int) -> ImportRecord:
    """The record Codex's importer would have written for this import (pure).

    `source_path` must be canonical (codex_ledger.canonical). `connector_names` stays empty: Codex fills
    it from its own scan, and codex_ledger.merge keeps what it found.
    """
    return ImportRecord(source_path=source_path, content_sha256=digest.sha256, imported_thread_id=thread_id,
                        imported_at=imported_at, source_modified_at=digest.mtime_ns, connector_names=[],
                        title=title)


def mirror_session(codex_home: Path, tracker: Sha256Tracker, source: Path, thread_id: str,
                   title: str | None, *, rewritten: bool = False, now: float | None = None) -> ImportRecord:
    """Hash (O(new bytes)) and upsert the record for one committed session; return it.

    Call after the session's ledger commit. Raises codex_ledger.CodexLedgerError (one line) or OSError
    when the source is gone; neither should fail the session: the next commit or reconcile retries.
    """
    path = codex_ledger.canonical(source)
    digest = tracker.digest(path, rewritten=rewritten)
    record = mirror_record(path, thread_id, digest, title, int(time.time() if now is None else now))
    codex_ledger.upsert(codex_home, record)
    return record


def adoptable(records: list[ImportRecord]) -> ImportRecord | None:
    """The record Codex would append to (exactly one for the path), else None (none, or ambiguous)."""
    return records[0] if len(records) == 1 else None


def imported_prefix(source: Path, sha256: str) -> int | None:
    """Length of the line-boundary prefix of `source` whose sha256 is `sha256` (where Codex's import
    of it ends), or None when no prefix matches (the file was rewritten since). One pass over the
    file; a hash is finalised (on a copy) only at each newline and at the end."""
    hasher = hashlib.sha256()
    offset = 0
    with open(source, "rb") as f:
        while chunk := f.read(CHUNK):
            start = 0
            while (nl := chunk.find(b"\n", start)) != -1:
                hasher.update(chunk[start:nl + 1])
                start = nl + 1
                if hasher.copy().hexdigest() == sha256:
                    return offset + start
            hasher.update(chunk[start:])
            offset += len(chunk)
    if hasher.hexdigest() == sha256:
        return offset  # the whole file, last line without its newline
    return None


#: Codex's own importer detects only these agents; other sources are not mirrored.
CODEX_KINDS = frozenset({"claude", "cursor"})


def codex_imports(codex_home: Path) -> dict[str, tuple[str, str]]:
    """Canonical source path → (thread id, sha256) of each session Codex's importer imported exactly once
    (several records for one path are ambiguous to Codex too: not adopted). Raises CodexLedgerError."""
    by_path: dict[str, list[ImportRecord]] = {}
    for rec in codex_ledger.read(codex_home).ledger.records:
        by_path.setdefault(rec.source_path, []).append(rec)
    return {path: (rec.imported_thread_id, rec.content_sha256) for path, recs in by_path.items()
            if (rec := adoptable(recs)) is not None}


class MirrorQueue:
    """Committed sessions waiting to be told to Codex's import ledger, written in batches.

    One upsert rewrites the whole file, so per-session writes would make a large first import
    quadratic; the caller flushes every `interval_s` and at the end instead (import), or shortly after
    commits (the daemon). Until a flush, Codex's detect may offer a session we already imported: the
    lag is bounded by the flush interval. Lives in the process that commits (the tracker's hash states
    are in memory)."""

    def __init__(self, codex_home: Path, interval_s: float = 1.0, tracker: Sha256Tracker | None = None,
                 folders: dict[str, str] | None = None) -> None:
        self.codex_home, self.interval_s = codex_home, interval_s
        self.tracker = Sha256Tracker() if tracker is None else tracker
        self.flushed_at = 0.0
        self.folders = {} if folders is None else folders  # codex_ledger.canonical's memo
        self._pending: dict[str, tuple[str, str | None, bool]] = {}

    def canonical(self, path: Path | str) -> str:
        return codex_ledger.canonical(path, self.folders)

    def add(self, source: str, path: str, thread_id: str | None, title: str | None, rewritten: bool,
            known: tuple[SourceDigest, int] | None = None) -> None:
        """Queue one committed session. `known`: (its digest, its inode), computed by the worker that read
        it whole: the flush then reads nothing of it unless it changed since."""
        if source not in CODEX_KINDS or not thread_id:
            return
        earlier = self._pending.get(path)
        if known is not None:
            assert self.tracker is not None
            # Every digest a worker handed over must still be in the tracker at the flush, or the flush
            # reads and hashes the file again: room for twice what is queued (10,000 sessions imported,
            # ~4,300 queued between two flushes, 4,096 states: 0.35 s of the parent's CPU re-hashing).
            self.tracker.reserve(2 * (len(self._pending) + 1))
            self.tracker.seed(self.canonical(path), *known)
            rewritten, earlier = False, None  # the digest is of the rewritten file
        self._pending[path] = (thread_id, title, rewritten or bool(earlier and earlier[2]))

    def __len__(self) -> int:
        return len(self._pending)

    def due(self, now: float | None = None) -> bool:
        return bool(self._pending) and (now if now is not None else time.monotonic()) - self.flushed_at >= self.interval_s

    def take(self) -> dict[str, tuple[str, str | None, bool]]:
        """What a flush will write, handed over (so the next commits queue for the next flush)."""
        pending, self._pending = self._pending, {}
        self.flushed_at = time.monotonic()
        return pending

    def queue_missing(self, threads: list[tuple[str, str, str, str | None]]) -> list[str]:
        """Queue every (source, path, thread id, title) of ours that Codex's ledger does not have (after a
        crash before a flush, a ledger Codex rewrote from an old view, a mirror switched on later)."""
        try:
            have = {(r.source_path, r.imported_thread_id) for r in codex_ledger.read(self.codex_home).ledger.records}
        except codex_ledger.CodexLedgerError as exc:
            return [str(exc)]
        for source, path, thread_id, title in threads:
            if source in CODEX_KINDS and (self.canonical(path), thread_id) not in have:
                self.add(source, path, thread_id, title, False)
        return []

    def write(self, pending: dict[str, tuple[str, str | None, bool]]) -> list[str]:
        """Hash (O(new bytes)) and upsert these records in one write; one-line problems, never raises."""
        assert self.tracker is not None
        now = int(time.time())
        records, problems = [], []
        for path, (thread_id, title, rewritten) in pending.items():
            try:
                canonical = self.canonical(path)
                records.append(mirror_record(canonical, thread_id, self.tracker.digest(canonical, rewritten=rewritten),
                                             title, now))
            except OSError as exc:
                problems.append(f"cannot hash {path} for Codex's import ledger: {exc.strerror or exc}")
        if records:
            try:
                codex_ledger.upsert_all(self.codex_home, records)
            except (codex_ledger.CodexLedgerError, OSError) as exc:
                problems.append(str(exc))
        return problems
