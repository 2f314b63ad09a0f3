"""Cursor agent CLI: `~/.cursor/projects/<encoded cwd>/agent-transcripts/**/<id>.jsonl`.

Claude-shaped `{role, message: {content}}` lines, usually without timestamps or cwd: the cwd is decoded
from the project folder name (lossy: `/` and other separators all became `-`, so we probe the disk for
the one existing directory it can mean), and a message without a timestamp gets the file's mtime, as
Codex's importer does. User text arrives wrapped as `<timestamp>…</timestamp><user_query>…</user_query>`;
we unwrap it and keep the first `<timestamp>` as the session's start. `subagents` folders are skipped.
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one again when
# a decoder of these Structs is built (~0.05 ms a decoder; built when first needed, not at import).

import functools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.codex.text import trim
from daemon.sources.base import (Identity, OneFile, ParseContext, SourceState, WatchSpec, project_dirs, record_ts_ms,
                                 rfc3339_ms)
from daemon.codex.notes import message_text, shows_anything
from daemon.sources.blocks import ConversationRecord, content_parts, read_record
from daemon.transcript import Message, Text, only_tool_results

MAX_PATH_PROBES = 128
_SEPARATORS = ("-", "_", ".", " ")
_CONTEXT_BLOCK = re.compile(r"\s*<(timestamp|cursor_commands)>(.*?)</\1>", re.S)


class Record(ConversationRecord):
    role: Any = None


def unwrap_query(text: str) -> tuple[str, int | None]:
    """Strip Cursor's leading context blocks and `<user_query>` wrapper; also return its `<timestamp>`."""
    t = trim(text)
    pos, stamp = 0, None
    while m := _CONTEXT_BLOCK.match(t, pos):
        if m.group(1) == "timestamp" and stamp is None:
            stamp = rfc3339_ms(trim(m.group(2)))
        pos = m.end()
    rest = trim(t[pos:])
    if rest.startswith("<user_query>") and rest.endswith("</user_query>"):
        inner = trim(rest[len("<user_query>"): -len("</user_query>")])
        if inner and "</user_query>" not in inner:
            return inner, stamp
    return text, stamp


def decode_project_dir(name: str, home: Path) -> str | None:
    """The existing directory an encoded project folder name stands for, or None if none or ambiguous.

    Each `-` was a `/` or a separator inside a name; try both, pruning prefixes that do not exist, with
    at most MAX_PATH_PROBES `is_dir` checks.
    """
    if name == "empty-window":
        return str(home)
    parts = name[1:].split("-") if name.startswith("-") else name.split("-")
    if any(p in ("", ".", "..") or any(c in p for c in "/\\:") for p in parts):
        return None
    found: list[str] = []
    probes = 0

    def walk(base: str, i: int) -> None:
        nonlocal probes
        if len(found) > 1 or probes >= MAX_PATH_PROBES:
            return
        # `segment` is the last path component being built from parts[i0..i]
        for j in range(i, len(parts)):
            for segment in _segments(parts[i: j + 1]):
                candidate = f"{base}/{segment}"
                probes += 1
                if probes > MAX_PATH_PROBES:
                    return
                if os.path.isdir(candidate):
                    if j == len(parts) - 1:
                        if candidate not in found:
                            found.append(candidate)
                    else:
                        walk(candidate, j + 1)

    walk("", 0)
    return found[0] if len(found) == 1 else None


def _segments(parts: list[str]) -> list[str]:
    if len(parts) == 1:
        return [parts[0]]
    if len(parts) > 4:
        return ["-".join(parts)]
    out = [""]
    for k, p in enumerate(parts):
        out = [o + p for o in out] if k == 0 else [o + sep + p for o in out for sep in _SEPARATORS]
    return out


class CursorSource(OneFile):
    kind = "cursor"
    shape: Literal["log"] = "log"
    state_type = SourceState
    watch = WatchSpec(suffixes=(".jsonl",), depth=3)

    def discover(self, root: Path) -> Iterator[Identity]:
        for project in project_dirs(root):
            transcripts = project / "agent-transcripts"
            paths: list[Path] = []
            for dirpath, dirnames, filenames in os.walk(transcripts):
                dirnames[:] = sorted(d for d in dirnames if d != "subagents")
                paths.extend(Path(dirpath) / f for f in filenames if f.endswith(".jsonl"))
            for path in sorted(paths):
                yield Identity(self.kind, path.stem, path)

    def identify(self, root: Path, path: Path) -> Identity | None:
        try:
            rel = path.relative_to(root).parts
        except ValueError:
            return None
        if path.suffix != ".jsonl" or len(rel) < 3 or rel[1] != "agent-transcripts" or "subagents" in rel:
            return None
        return Identity(self.kind, path.stem, path)

    def fallback_cwd(self, ident: Identity) -> str | None:
        """Decode `<root>/<encoded cwd>/agent-transcripts/…` (root = `<home>/.cursor/projects`)."""
        for folder in ident.path.parents:
            if folder.name == "agent-transcripts":
                project = folder.parent
                return decode_project_dir(project.name, project.parent.parent.parent)
        return None

    @functools.cached_property
    def _decode(self) -> "Callable[[bytes], Record]":
        """Built on the first line read (~0.25 ms): a command that only lists sessions never builds it."""
        return msgspec.json.Decoder(Record).decode

    def parse_line(self, state: SourceState, line: bytes, ctx: ParseContext) -> Message | None:
        rec = read_record(self._decode, state, line)
        if rec is None:
            return None
        role = rec.role
        if role != "user" and role != "assistant":
            return None
        if rec.injected():
            return None
        ts = record_ts_ms(rec.timestamp, rec.timestamp_ms)
        parts = content_parts(rec.content())
        if not shows_anything(parts):
            return None
        if role == "user" and not only_tool_results(parts):
            text = message_text(parts)
            unwrapped, stamp = unwrap_query(text)
            if unwrapped is not text:
                parts = (Text(unwrapped),)
            if state.start_ms is None:
                state.start_ms = ts if ts is not None else stamp
        if ts is None:
            ts = ctx.mtime_ms // 1000 * 1000
        return Message(role, parts, ts)


SOURCE = CursorSource()
