"""Claude-style message content (`content` string or list of blocks) → neutral message parts.

Shared by every source whose records carry Anthropic-shaped content (Claude Code, Cursor): text, thinking,
tool_use, tool_result (its text: a string, or its text blocks joined by a newline), image, and any other
block by its type. What the parts look like in a thread is daemon/codex/notes.py's business. Pure
functions over decoded JSON values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from daemon.codex import notes
from daemon.codex.notes import TOOL_INPUT_MAX, TOOL_RESULT_MAX, compact_json, message_text
from daemon.codex.text import trim
from daemon.sources.base import SourceState
from daemon.transcript import Image, Part, Reasoning, Text, ToolCall, ToolResult, Unsupported, only_tool_results

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
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nesting past the limit
        state.malformed += 1
        return None
    if state.cwd is None and isinstance(rec.cwd, str) and rec.cwd:
        state.cwd = rec.cwd
    return rec


def tool_call(block: dict) -> ToolCall:
    name = block.get("name")
    return ToolCall(name if isinstance(name, str) else None, block["input"] if "input" in block else msgspec.UNSET)


def tool_result(block: dict) -> ToolResult:
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
    return ToolResult(text, block.get("is_error") is True)


def content_parts(content: object) -> tuple[Part, ...]:
    """Anthropic-shaped `content` (a string or a list of blocks) → neutral parts, in order."""
    if isinstance(content, str):
        return (Text(content),)
    if not isinstance(content, list):
        return ()
    parts: list[Part] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                parts.append(Text(text))
        elif kind == "tool_use":
            parts.append(tool_call(block))
        elif kind == "tool_result":
            parts.append(tool_result(block))
        elif kind == "thinking":
            parts.append(Reasoning())
        elif kind == "image":
            parts.append(Image())
        elif kind is not None:
            parts.append(Unsupported(kind if isinstance(kind, str) else compact_json(kind)))
    return tuple(parts)


def render_content(content: object) -> tuple[str | None, bool]:
    """(the thread text or None if nothing survives, whether the content was only tool results)."""
    parts = content_parts(content)
    return message_text(parts), only_tool_results(parts)


def tool_call_note(block: dict) -> str:
    return notes.tool_call_note(tool_call(block))


def tool_result_note(block: dict) -> str:
    return notes.tool_result_note(tool_result(block))


def unwrap_user_query(text: str) -> str:
    """`<user_query>X</user_query>` (whole trimmed text) → X trimmed, when X is not blank."""
    t = trim(text)
    if t.startswith("<user_query>") and t.endswith("</user_query>"):
        inner = trim(t[len("<user_query>"): -len("</user_query>")])
        if inner:
            return inner
    return text
