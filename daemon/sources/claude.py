"""Claude Code: `$CLAUDE_CONFIG_DIR/projects` (else `~/.claude/projects`) `/<project>/<session>.jsonl`.

One append-only JSON record per line. Conversation records are `type: user|assistant` with
`message.content`; `isMeta` (injected context) and `isSidechain` (subagent) records are not turns.
Titles come from `custom-title` / `ai-title` records (the last one wins), the cwd from the first record
that has one, the branch from `gitBranch`. Subagent files (`agent-*.jsonl`, `<session>/subagents/`) are
not sessions of their own.
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one again when
# a decoder of these Structs is built (~0.05 ms a decoder; built when first needed, not at import).

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.codex.text import trim
from daemon.sources.base import (Identity, OneFile, ParseContext, SourceState, WatchSpec, child_maker, project_dirs,
                                 record_ts_ms)
from daemon.codex.notes import shows_anything
from daemon.sources.blocks import ConversationRecord, HourStamps, content_parts, read_record, unwrap_user_query
from daemon.transcript import Message, Text, plain_text


class Record(ConversationRecord):
    type: Any = None
    gitBranch: Any = None
    customTitle: Any = None
    aiTitle: Any = None


_ts_ms = HourStamps(record_ts_ms)


def _title(value: object) -> str | None:
    return (trim(value) or None) if isinstance(value, str) else None


class ClaudeSource(OneFile):
    kind = "claude"
    shape: Literal["log"] = "log"
    state_type = SourceState
    watch = WatchSpec(suffixes=(".jsonl",), depth=1)

    def discover(self, root: Path) -> Iterator[Identity]:
        for project in project_dirs(root):
            try:  # scandir: the entry's type comes with the listing (one stat per file, not two)
                with os.scandir(project) as it:
                    entries = sorted((e.name, e) for e in it if e.name.endswith(".jsonl") and e.name != ".jsonl"
                                     and not e.name.startswith("agent-"))
            except OSError:
                continue
            child = child_maker(project)
            for name, entry in entries:
                try:
                    is_file = entry.is_file()
                except OSError:
                    continue
                if is_file:  # the id is the stem: the name less its ".jsonl"
                    yield Identity(self.kind, name[:-6], child(name))

    def identify(self, root: Path, path: Path) -> Identity | None:
        if path.suffix != ".jsonl" or path.name.startswith("agent-") or path.parent.parent != root:
            return None
        return Identity(self.kind, path.stem, path)

    def fallback_cwd(self, ident: Identity) -> str | None:
        return None  # every conversation record carries its cwd

    @functools.cached_property
    def _decode(self) -> "Callable[[bytes], Record]":
        """Built on the first line read (~0.25 ms): a command that only lists sessions never builds it."""
        return msgspec.json.Decoder(Record).decode

    def parse_line(self, state: SourceState, line: bytes, ctx: ParseContext) -> Message | None:
        rec = read_record(self._decode, state, line)
        if rec is None:
            return None
        if isinstance(rec.gitBranch, str) and rec.gitBranch and rec.gitBranch != "HEAD":
            state.git_branch = rec.gitBranch
        kind = rec.type
        if kind == "custom-title":
            state.custom_title = _title(rec.customTitle) or state.custom_title
            return None
        if kind == "ai-title":
            state.ai_title = _title(rec.aiTitle) or state.ai_title
            return None
        if kind != "user" and kind != "assistant":
            return None
        if rec.injected():
            return None
        ts = _ts_ms(rec.timestamp, rec.timestamp_ms)
        if state.start_ms is None and ts is not None:
            state.start_ms = ts
        parts = content_parts(rec.content())
        if not shows_anything(parts):
            return None
        if kind == "user" and (text := plain_text(parts)) is not None:
            unwrapped = unwrap_user_query(text)
            if unwrapped is not text:
                parts = (Text(unwrapped),)
        return Message(kind, parts, ts)


SOURCE = ClaudeSource()
