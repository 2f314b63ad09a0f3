"""The neutral transcript model every source plug-in produces and the Codex renderer consumes.

Owns: what a message is, independent of any agent's format or of Codex's. Pure data, no behaviour
beyond two questions every plug-in asks of its parts. A plug-in turns its agent's records into these
parts and never formats Codex's tool notes itself: `daemon/codex/notes.py` does, for every agent alike.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from daemon.codex.text import trim

Role = Literal["user", "assistant"]


class Text(msgspec.Struct, frozen=True, tag="text"):
    """Text as the agent showed it (kept verbatim; blank text is not shown)."""

    text: str


class ToolCall(msgspec.Struct, frozen=True, tag="tool_call"):
    """A tool the agent called: its name and its input as decoded JSON (UNSET when it had none)."""

    name: str | None
    input: Any = msgspec.UNSET


class ToolResult(msgspec.Struct, frozen=True, tag="tool_result"):
    """What a tool returned, as text."""

    output: str
    is_error: bool = False


class Reasoning(msgspec.Struct, frozen=True, tag="reasoning"):
    """The model's thinking or its summary: kept out of the thread, like Codex's importer does."""

    text: str = ""


class Image(msgspec.Struct, frozen=True, tag="image"):
    """An image the agent showed or was shown (Codex's importer notes it, without the pixels)."""

    media_type: str | None = None


class Unsupported(msgspec.Struct, frozen=True, tag="unsupported"):
    """A block of a kind the thread has no form for; noted by its kind."""

    kind: str


Part = Text | ToolCall | ToolResult | Reasoning | Image | Unsupported


class Message(msgspec.Struct, frozen=True, array_like=True):
    """One message: its role, its parts in order, and when it was written (ms since the epoch)."""

    role: Role
    parts: tuple[Part, ...]
    ts_ms: int | None = None


def only_tool_results(parts: tuple[Part, ...]) -> bool:
    """A user record made only of tool results is the tools talking, not the user (Codex shows it on
    the assistant side). Reasoning does not count either way."""
    seen = False
    for p in parts:
        if type(p) is ToolResult:
            seen = True
        elif type(p) is not Reasoning:
            return False
    return seen


def plain_text(parts: tuple[Part, ...]) -> str | None:
    """The message's text when it is made of text parts only (joined as the renderer joins them), else
    None: for a plug-in's own rules on what the user typed (unwrapping a query wrapper, a title)."""
    texts = []
    for p in parts:
        if type(p) is not Text:
            return None
        if trim(p.text):
            texts.append(p.text)
    return "\n\n".join(texts) if texts else None
