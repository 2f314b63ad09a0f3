"""The one small interface every agent source implements, and the types it trades in.

A source plug-in knows its agent and nothing else: which sessions a folder holds (`discover`; the
folders an agent uses by default are its registry entry's, daemon/sources/__init__.py, so that they are
known without loading the plug-in), which changed path belongs to which session (`identify`, pure: it
runs on the daemon's event loop), what the watcher must see (`watch`), the cwd when the records carry
none (`fallback_cwd`), and how the agent's records become neutral `Message`s (daemon/transcript.py:
text, tool calls and results, reasoning, images). It does no Codex rendering, no hashing and no ledger
work.

A session is `Identity(kind, session_id, path)`: `session_id` is the agent's own id, `path` where the
session lives (the file a log is read from; for a session inside a database, `<db file>/<session id>`).

Two shapes, one registry (daemon/sources/__init__.py):
- **log** — records appended to one file, one per line, resumed at a byte offset: the plug-in's
  `parse_line(state, line, ctx)` turns one complete line into a Message or nothing, updating its
  `state` (a `SourceState` subclass the plug-in declares as `state_type`, persisted in the ledger).
- **snapshot** — a session re-read whole when its `version` changes (a JSON file rewritten, rows of a
  SQLite store, a folder of small files, a log whose later lines rewrite earlier messages):
  `read_snapshot(ident, ctx)` returns every message as of now. The engine still syncs at the turn
  level: it appends the new messages when the reading still starts with the ones it wrote.
A plug-in has one shape, or says per session (`shape_of`): one session id may move from a snapshot copy to
a log (Copilot migrates a legacy file when it is resumed) and stays one thread, the ledger key being
(kind, session id) whatever the path and shape.
A plug-in never raises for bad content: it skips and counts what it cannot read (`state.malformed`,
`state.unknown`); a snapshot read that caught a writer mid-write raises `Incomplete` (retried later).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar, Literal, Protocol, TypeVar

import msgspec

from daemon.transcript import Message

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


class SourceState(msgspec.Struct, kw_only=True):
    """What a source learns from records besides messages; persisted with the fold state."""

    cwd: str | None = None
    custom_title: str | None = None
    ai_title: str | None = None
    git_branch: str | None = None
    start_ms: int | None = None  # the session's first timestamp: fixes its thread id and rollout path
    malformed: int = 0  # lines that were not a JSON object (skipped, counted)
    unknown: int = 0  # records of a type the plug-in does not know (skipped, counted)


class Identity(msgspec.Struct, frozen=True):
    """Who a session file is: enough to derive its thread id and to re-find it."""

    kind: str
    session_id: str
    path: Path


class ParseContext(msgspec.Struct, frozen=True):
    mtime_ms: int  # the file's mtime: the timestamp of last resort (Cursor records carry none)
    # The user's `[sources.<kind>] child_sessions`: a plug-in whose agent keeps sub-agent runs as sessions
    # of their own (OpenCode) reads one as a thread when it is set, and as empty otherwise (so a live
    # change to a child's file never imports it unasked).
    child_sessions: bool = False


class Version(msgspec.Struct, frozen=True):
    """A cheap change token for a session, stored in the ledger: equal keys (`key()`) mean nothing to
    read. For one file its stat; for a session spanning several (a DB and its WAL) whatever changes with
    it. Compare keys, not Versions: `==` also compares the ctime, which is not part of the key."""

    size: int  # bytes the session spans (for progress and age/size ordering)
    mtime_ns: int
    inode: int
    # The file's st_ctime_ns, for a log: not part of the key (a chmod moves it), but a row whose
    # fingerprint recorded another one is read again (a `cp -p` or rsync rewrite keeps size and mtime).
    ctime_ns: int | None = None

    def key(self) -> tuple[int, int, int]:
        return self.size, self.mtime_ns, self.inode


def stat_version(path: Path) -> Version:
    """The version of a session that is one file: its stat (raises OSError if it is gone)."""
    return version_of(os.stat(path))


def version_of(st: os.stat_result) -> Version:
    return Version(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class OneFile:
    """Base of a plug-in whose session is its file (`ident.path`) and whose version is that file's stat:
    discovery then takes the version from the lstat it makes anyway (a link inside a root is not
    followed, so for what it keeps lstat is stat), one syscall per session instead of two."""

    def version(self, ident: Identity) -> Version:
        return stat_version(ident.path)


class WatchSpec(msgspec.Struct, frozen=True):
    """What the watcher must report for this source: file names ending in `suffixes` (or named one of
    `names`), at most `depth` folders below a root. `rescan_names`: files whose change can touch many
    sessions at once (a database and its WAL): a change to one queues a reconcile of every session."""

    suffixes: tuple[str, ...] = (".jsonl",)
    depth: int = 8
    names: tuple[str, ...] = ()
    rescan_names: tuple[str, ...] = ()

    def wants(self, name: str) -> bool:
        return name.endswith(self.suffixes) or name in self.names or name in self.rescan_names


class Snapshot(msgspec.Struct, kw_only=True):
    """A snapshot source's whole session as read now."""

    state: SourceState  # the plug-in's state_type: cwd, titles, start, counts
    messages: list[Message]
    digest: bytes  # blake3 of what was read (equal → nothing changed, whatever the version said)


class Incomplete(Exception):
    """A snapshot read found a half-written file (a writer that does not rename): retried later."""


class Source(Protocol):
    kind: str  # its key in the registry: the ledger, config sections and CLI flags use it (`--<kind>-root`)
    shape: Literal["log", "snapshot"]
    state_type: ClassVar[type[SourceState]]
    watch: WatchSpec

    def discover(self, root: Path) -> Iterator[Identity]:
        """Every session under `root` once (copies of one session id are deduplicated here)."""
        ...

    def identify(self, root: Path, path: Path) -> Identity | None:
        """Pure: decided from the path's shape alone (it runs on the daemon's event loop)."""
        ...

    def version(self, ident: Identity) -> Version:
        """The session's change token (raises OSError when it is gone). One file: base it on `OneFile`."""
        ...

    def fallback_cwd(self, ident: Identity) -> str | None:
        """The cwd when the records carry none; may touch the disk (called in a worker)."""
        ...

    # Optional, for agents whose sessions come in two shapes (Copilot's legacy whole-file JSON beside its
    # append-only logs): `shape_of(ident) -> "log" | "snapshot"`, pure, decided from the identity's path;
    # without it every session has the plug-in's `shape` (callers use `shape_of` below).
    #
    # Optional, for agents with child sessions (sub-agent runs) kept as sessions of their own:
    #   discover_children(root) -> Iterator[Identity]   those sessions, listed only when the user's config
    #                                                   sets `[sources.<kind>] child_sessions = true`
    #                                                   (config.py accepts the switch only for such plug-ins)
    #
    # Optional, for agents that keep metadata in a file beside the session (Copilot's workspace.yaml):
    #   title_beside(ident) -> str | None   the title kept there (read in the worker when naming a thread)
    #   beside_mtime_ns(ident) -> int       the newest mtime of those files, folded into the version
    #                                       (so renaming the session is a change); 0 when there are none

    # shape "log"
    def parse_line(self, state: SourceState, line: bytes, ctx: ParseContext) -> Message | tuple[Message, ...] | None:
        """One complete line → a message, several (a line that held several records), or nothing."""
        ...

    # shape "snapshot"
    def read_snapshot(self, ident: Identity, ctx: ParseContext) -> Snapshot: ...


def shape_of(source: Source, ident: Identity) -> Literal["log", "snapshot"]:
    """How this session is read: the plug-in's `shape_of(ident)` when it has one, else its `shape`."""
    per_session = getattr(source, "shape_of", None)
    return per_session(ident) if per_session is not None else source.shape


def sessions(source: Source, root: Path, *, children: bool = False) -> Iterator[Identity]:
    """`discover(root)`, then the child sessions when the user asked for them and the plug-in has some."""
    yield from source.discover(root)
    listed = getattr(source, "discover_children", None) if children else None
    if listed is not None:
        yield from listed(root)


T = TypeVar("T")
RETRY_DELAY_S = 0.05  # a file rewritten in place that does not parse is read once more after this ...
FRESH_WRITE_S = 60  # ... and, still not whole, is being written (Incomplete) if it is younger than this


def read_rewritten(path: Path, parse: Callable[[bytes], T | None], what: str) -> tuple[bytes, T | None]:
    """Read a file its agent rewrites in place, not by rename (Copilot's legacy sessions, OpenCode's JSON
    tree), and `parse` it (None: not whole). Not whole, it is read once more after RETRY_DELAY_S; still not,
    the read is `Incomplete` (`what` says why; retried later) when the file was written in the last
    FRESH_WRITE_S, else it is corrupt: (its bytes, None), for the caller to skip and count. OSError passes."""
    data = path.read_bytes()
    value = parse(data)
    if value is None:
        time.sleep(RETRY_DELAY_S)
        data = path.read_bytes()
        value = parse(data)
        if value is None and time.time() - os.stat(path).st_mtime < FRESH_WRITE_S:
            raise Incomplete(f"{path}{what}")
    return data, value


def child_maker(folder: Path) -> Callable[[str], Path]:
    """`folder / name` for names a listing of `folder` returned, without parsing each name again: pathlib's
    own listings (`iterdir`, `glob`) make their children so, 2 µs where `/` takes 6 (a no-change run lists
    every session: ~40 ms of one over 10,000 here). `/` where a Python has no such method."""
    return getattr(folder, "_make_child_relpath", folder.joinpath)


def project_dirs(root: Path) -> list[Path]:
    """The sorted sub-folders of a source root (one per project for Claude Code and Cursor)."""
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


# The times a rollout can hold: a thread's start becomes its UUIDv7 (48 unsigned bits of ms) and its
# `sessions/YYYY/MM/DD` path, every line is stamped `YYYY-MM-DDTHH:MM:SS.mmmZ`. A source time outside
# 1970 … 9999 (UTC) fits none of them, so it is no time at all, as an unparsable one is (a hostile
# `timestamp_ms` of 10**20 must cost that field, not the session).
MIN_MS = 0  # 1970-01-01T00:00:00.000Z
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def bounded(ms: int | None) -> int | None:
    return ms if ms is not None and MIN_MS <= ms <= MAX_MS else None


def rfc3339_ms(value: object) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 timestamp with an offset; None if it is not one (or
    lies outside what a rollout can hold)."""
    if not isinstance(value, str) or len(value) < 20:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return bounded((dt - _EPOCH) // _MS)


def record_ts_ms(timestamp: object, timestamp_ms: object) -> int | None:
    """Codex's order: `timestamp` (RFC 3339), else integer `timestamp_ms`; each only within the range."""
    ms = rfc3339_ms(timestamp)
    if ms is None and type(timestamp_ms) is int:
        ms = bounded(timestamp_ms)
    return ms
