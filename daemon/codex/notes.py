"""Neutral message parts → the one text Codex's importer puts in a thread message.

Owns Codex's note formats for every agent alike (`records_common.rs` in Codex's importer): text
verbatim, reasoning dropped, tool calls as `[external_agent_tool_call: NAME]` notes (their description,
command and file, else their input as compact JSON cut at 2000 characters), tool results as
`[external_agent_tool_result]` notes cut at 4000, images and other blocks as
`[external unsupported block: KIND]`; parts joined by a blank line. Pure functions.
"""

from __future__ import annotations

import msgspec

from daemon.codex.text import trim, truncate
from daemon.transcript import Image, Part, Reasoning, Text, ToolCall, ToolResult, Unsupported

TOOL_INPUT_MAX = 2000
TOOL_RESULT_MAX = 4000
_encode = msgspec.json.encode


def compact_json(value: object) -> str:
    return _encode(value).decode("utf-8", "surrogatepass")


def tool_call_note(call: ToolCall) -> str:
    lines = [f"[external_agent_tool_call: {call.name if isinstance(call.name, str) else 'unknown'}]"]
    inp = call.input
    if inp is not msgspec.UNSET:
        described = False
        if isinstance(inp, dict):
            for key in ("description", "command"):
                value = inp.get(key)
                if isinstance(value, str):
                    lines.append(f"{key}: {value}")
                    described = True
            file = inp["file_path"] if "file_path" in inp else inp.get("file")
            if isinstance(file, str):
                lines.append(f"file: {file}")
                described = True
        if not described:
            lines.append(f"input: {truncate(compact_json(inp), TOOL_INPUT_MAX)}")
    lines.append("[/external_agent_tool_call]")
    return "\n".join(lines)


def tool_result_note(result: ToolResult) -> str:
    label = "[external_agent_tool_result: error]" if result.is_error else "[external_agent_tool_result]"
    if not result.output:
        return f"{label}\n[/external_agent_tool_result]"
    return f"{label}\n{truncate(result.output, TOOL_RESULT_MAX)}\n[/external_agent_tool_result]"


def _part_text(part: Part) -> str | None:
    kind = type(part)
    if kind is Text:
        return part.text
    if kind is ToolCall:
        return tool_call_note(part)
    if kind is ToolResult:
        return tool_result_note(part)
    if kind is Reasoning:
        return None
    if kind is Image:
        return "[external unsupported block: image]"
    if kind is Unsupported:
        return f"[external unsupported block: {part.kind}]"
    return None


def shows_anything(parts: tuple[Part, ...]) -> bool:
    """Whether `message_text` would give text (cheap: no note is built)."""
    for p in parts:
        kind = type(p)
        if kind is Text:
            if trim(p.text):
                return True
        elif kind is not Reasoning:
            return True
    return False


def message_text(parts: tuple[Part, ...]) -> str | None:
    """The message's text in the thread, or None when nothing in it is shown."""
    if len(parts) == 1 and type(parts[0]) is Text:  # the common case, without building a list
        text = parts[0].text
        return text if trim(text) else None
    shown = [t for p in parts if (t := _part_text(p)) is not None and trim(t)]
    return "\n\n".join(shown) if shown else None
