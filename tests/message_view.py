"""A parsed message as the thread shows it: (role after Codex's tool-result rule, text, timestamp).

Source tests compare what a plug-in's parts *render to*, so they state the expected thread text plainly
and stay independent of how a plug-in splits a record into parts."""

from __future__ import annotations

from typing import NamedTuple

from daemon.codex.notes import message_text
from daemon.transcript import Message, only_tool_results


class View(NamedTuple):
    role: str
    text: str | None
    ts_ms: int | None = None


def view(m: Message | None) -> View | None:
    if m is None:
        return None
    role = "assistant" if m.role == "user" and only_tool_results(m.parts) else m.role
    return View(role, message_text(m.parts), m.ts_ms)
