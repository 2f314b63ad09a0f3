"""The one small interface every agent source implements, and the types it trades in.

A source plug-in knows three things about its agent and nothing else: where its sessions live
(`default_roots`, `discover`), which path is one of its sessions (`identify`, plus `fallback_cwd` for
agents whose records do not say where they ran), and how one complete record of a session becomes a
neutral `Message` (`parse_line`). It does no Codex rendering, no hashing
and no ledger work; `parse_line` is pure apart from updating the `SourceState` the fold hands it.

Shapes: this interface covers append-only logs (Claude Code, Cursor, Copilot CLI, Qwen Code): one
record per line, resumable at a byte offset. Snapshot sources (whole-file JSON, SQLite) will add a
`read_snapshot` entry point beside `parse_line` and set `shape = "snapshot"`; the engine picks the path
by `shape`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal, Protocol

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


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a session file is: enough to derive its thread id and to re-find it."""

    kind: str
    session_id: str
    path: Path


@dataclass(frozen=True, slots=True)
class ParseContext:
    mtime_ms: int  # the file's mtime: the timestamp of last resort (Cursor records carry none)


class Source(Protocol):
    kind: str
    shape: Literal["log"]

    def default_roots(self, env: Mapping[str, str]) -> list[Path]: ...

    def discover(self, root: Path) -> Iterator[Identity]: ...

    def identify(self, root: Path, path: Path) -> Identity | None:
        """Pure: decided from the path's shape alone (it runs on the daemon's event loop)."""
        ...

    def fallback_cwd(self, ident: Identity) -> str | None:
        """The cwd when the records carry none; may touch the disk (called in a worker)."""
        ...

    def parse_line(self, state: SourceState, line: bytes, ctx: ParseContext) -> Message | None: ...


def project_dirs(root: Path) -> list[Path]:
    """The sorted sub-folders of a source root (one per project for Claude Code and Cursor)."""
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def rfc3339_ms(value: object) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 timestamp with an offset; None if it is not one."""
    if not isinstance(value, str) or len(value) < 20:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return (dt - _EPOCH) // _MS


def record_ts_ms(timestamp: object, timestamp_ms: object) -> int | None:
    """Codex's order: `timestamp` (RFC 3339), else integer `timestamp_ms`."""
    ms = rfc3339_ms(timestamp)
    if ms is None and type(timestamp_ms) is int:
        ms = timestamp_ms
    return ms
