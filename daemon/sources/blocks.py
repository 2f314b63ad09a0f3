"""Claude-style message content (`content` string or list of blocks) → one message text.

Shared by every source whose records carry Anthropic-shaped content (Claude Code, Cursor). Follows
Codex's `records_common.rs`: text verbatim, thinking dropped, tool calls and results rendered as
`[external_agent_tool_call: …]` / `[external_agent_tool_result]` notes with the same truncation, other
block types as `[external unsupported block: TYPE]`. Pure functions over decoded JSON values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from daemon.codex.text import trim, truncate
from daemon.sources.base import SourceState

class ConversationRecord(msgspec.Struct):
    """Fields every Anthropic-shaped transcript line may carry; sources subclass it with their own.

    Typed `Any` on purpose: a wrong type in one field must not cost the whole line (Codex reads
    loosely too); unknown fields (usage, tool output copies, snapshots) are skipped unparsed.
    """

    cwd: Any = None
    timestamp: Any = None
    timestamp_ms: Any = None
    isMeta: Any = None
    isSidechain: Any = None
    message: Any = None

    def content(self) -> object:
        return self.message.get("content") if isinstance(self.message, dict) else None

    def injected(self) -> bool:
        """Meta (injected context) and sidechain (subagent) records are not conversation turns."""
        return self.isMeta is True or self.isSidechain is True


R = TypeVar("R", bound=ConversationRecord)


def read_record(decode: Callable[[bytes], R], state: SourceState, line: bytes) -> R | None:
    """Decode one line (a line that is not a JSON object is counted and skipped) and learn the cwd
    from the first record that carries one, whatever its type, as Codex does."""
    try:
        rec = decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        state.malformed += 1
        return None
    if state.cwd is None and isinstance(rec.cwd, str) and rec.cwd:
        state.cwd = rec.cwd
    return rec


TOOL_INPUT_MAX = 2000
TOOL_RESULT_MAX = 4000
_encode = msgspec.json.encode


def _compact_json(value: object) -> str:
    return _encode(value).decode("utf-8", "surrogatepass")


def tool_call_note(block: dict) -> str:
    name = block.get("name")
    lines = [f"[external_agent_tool_call: {name if isinstance(name, str) else 'unknown'}]"]
    if "input" in block:
        inp = block["input"]
        if isinstance(inp, dict):
            described = False
            for key, label in (("description", "description"), ("command", "command")):
                value = inp.get(key)
                if isinstance(value, str):
                    lines.append(f"{label}: {value}")
                    described = True
            file = inp["file_path"] if "file_path" in inp else inp.get("file")
            if isinstance(file, str):
                lines.append(f"file: {file}")
                described = True
            if not described:
                lines.append(f"input: {truncate(_compact_json(inp), TOOL_INPUT_MAX)}")
        else:
            lines.append(f"input: {truncate(_compact_json(inp), TOOL_INPUT_MAX)}")
    lines.append("[/external_agent_tool_call]")
    return "\n".join(lines)


def tool_result_note(block: dict) -> str:
    label = "[external_agent_tool_result: error]" if block.get("is_error") is True else "[external_agent_tool_result]"
    content = block.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(
            t for item in content
            if isinstance(item, dict) and isinstance(t := item.get("text"), str) and t
        )
    else:
        text = ""
    if not text:
        return f"{label}\n[/external_agent_tool_result]"
    return f"{label}\n{truncate(text, TOOL_RESULT_MAX)}\n[/external_agent_tool_result]"


def render_content(content: object) -> tuple[str | None, bool]:
    """(text or None if nothing survives, whether the content was only tool results)."""
    if isinstance(content, str):
        return (content if trim(content) else None), False
    if not isinstance(content, list):
        return None, False
    blocks = [b for b in content if isinstance(b, dict)]
    only_tool_result = bool(blocks)
    parts: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                parts.append(text)
                only_tool_result = False
        elif kind == "tool_use":
            parts.append(tool_call_note(block))
            only_tool_result = False
        elif kind == "tool_result":
            parts.append(tool_result_note(block))
        elif kind == "thinking" or kind is None:
            continue
        else:
            parts.append(f"[external unsupported block: {kind if isinstance(kind, str) else _compact_json(kind)}]")
            only_tool_result = False
    joined = "\n\n".join(p for p in parts if trim(p))
    return (joined or None), only_tool_result


def unwrap_user_query(text: str) -> str:
    """`<user_query>X</user_query>` (whole trimmed text) → X trimmed, when X is not blank."""
    t = trim(text)
    if t.startswith("<user_query>") and t.endswith("</user_query>"):
        inner = trim(t[len("<user_query>"): -len("</user_query>")])
        if inner:
            return inner
    return text
