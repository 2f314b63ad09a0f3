"""Claude-style message content (`content` string or list of blocks) → neutral message parts.

Shared by every source whose records carry Anthropic-shaped content (Claude Code, Cursor): text, thinking,
tool_use, tool_result (its text: a string, or its text blocks joined by a newline), image, and any other
block by its type. What the parts look like in a thread is daemon/codex/notes.py's business. Pure
functions over decoded JSON values.
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one again when
# a decoder of these Structs is built, at the start of every command (~0.05 ms a decoder).

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from daemon.codex import notes
from daemon.codex.notes import compact_json, message_text
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


class HourStamps:
    """A plug-in's `record_ts_ms` (`slow`), faster for the canonical `YYYY-MM-DDTHH:MM:SS.mmmZ` every
    Claude Code line carries: the hour (`YYYY-MM-DDTHH:`) is parsed once, its day by `slow` so its
    rules and bounds apply, and the minutes and seconds are added (a session's lines mostly share
    their hour with the line before; a minute changes every few lines). Any other shape, or a day
    `slow` rejects, goes to `slow` whole. Equal to `slow` for every input: a canonical time of day
    (ASCII digits, hours < 24, minutes and seconds < 60) never changes whether or where its day parses,
    and a day within the bounds plus less than 24 h stays within them (9999-12-31 + 23:59:59.999 is
    the last instant allowed)."""

    __slots__ = ("_slow", "_hours")
    MAX_HOURS = 4096

    def __init__(self, slow: Callable[[object, object], int | None]) -> None:
        self._slow, self._hours = slow, {}

    def __call__(self, timestamp: object, timestamp_ms: object) -> int | None:
        t = timestamp
        if type(t) is str and len(t) == 24 and t[16] == ":" and t[19] == "." and t[23] == "Z":
            base = self._hours.get(t[:14], -1)
            if base == -1:
                base = self._hour(t)
            if base is not None:
                rest = t[14:16] + t[17:19] + t[20:23]  # MMSSmmm
                if rest.isascii() and rest.isdigit():
                    minutes, ms = divmod(int(rest), 100_000)
                    if minutes < 60 and ms < 60_000:
                        return base + minutes * 60_000 + ms
        return self._slow(timestamp, timestamp_ms)

    def _hour(self, t: str) -> int | None:
        """The ms of `t`'s hour, or None when that part is not canonical or its day is rejected."""
        base = None
        hh = t[11:13]
        if t[10] == "T" and t[13] == ":" and hh.isascii() and hh.isdigit() and (hours := int(hh)) < 24:
            day = self._slow(t[:10] + "T00:00:00.000Z", None)
            if day is not None:
                base = day + hours * 3_600_000
        if len(self._hours) >= self.MAX_HOURS:
            self._hours.clear()
        self._hours[t[:14]] = base
        return base


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
