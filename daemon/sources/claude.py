"""Claude Code: `$CLAUDE_CONFIG_DIR/projects` (else `~/.claude/projects`) `/<project>/<session>.jsonl`.

One append-only JSON record per line. Conversation records are `type: user|assistant` with
`message.content`; `isMeta` (injected context) and `isSidechain` (subagent) records are not turns.
Titles come from `custom-title` / `ai-title` records (the last one wins), the cwd from the first record
that has one, the branch from `gitBranch`. Subagent files (`agent-*.jsonl`, `<session>/subagents/`) are
not sessions of their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.codex.text import trim
from daemon.sources.base import Identity, ParseContext, SourceState, project_dirs, record_ts_ms
from daemon.sources.blocks import ConversationRecord, read_record, render_content, unwrap_user_query
from daemon.transcript import Message


class Record(ConversationRecord):
    type: Any = None
    gitBranch: Any = None
    customTitle: Any = None
    aiTitle: Any = None


_decode = msgspec.json.Decoder(Record).decode


def _title(value: object) -> str | None:
    return (trim(value) or None) if isinstance(value, str) else None


class ClaudeSource:
    kind = "claude"
    shape: Literal["log"] = "log"

    def default_roots(self, env: Mapping[str, str]) -> list[Path]:
        base = env.get("CLAUDE_CONFIG_DIR")
        home = Path(env.get("HOME") or Path.home())
        return [Path(base) / "projects" if base else home / ".claude" / "projects"]

    def discover(self, root: Path) -> Iterator[Identity]:
        for project in project_dirs(root):
            try:
                names = sorted(project.iterdir())
            except OSError:
                continue
            for path in names:
                ident = self.identify(root, path)
                if ident is not None and path.is_file():
                    yield ident

    def identify(self, root: Path, path: Path) -> Identity | None:
        if path.suffix != ".jsonl" or path.name.startswith("agent-") or path.parent.parent != root:
            return None
        return Identity(self.kind, path.stem, path)

    def fallback_cwd(self, ident: Identity) -> str | None:
        return None  # every conversation record carries its cwd

    def parse_line(self, state: SourceState, line: bytes, ctx: ParseContext) -> Message | None:
        rec = read_record(_decode, state, line)
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
        ts = record_ts_ms(rec.timestamp, rec.timestamp_ms)
        if state.start_ms is None and ts is not None:
            state.start_ms = ts
        text, only_tool_result = render_content(rec.content())
        if text is None:
            return None
        if kind == "assistant" or only_tool_result:
            return Message("assistant", text, ts)
        return Message("user", unwrap_user_query(text), ts)


SOURCE = ClaudeSource()
