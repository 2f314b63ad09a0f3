"""The neutral transcript model every source plug-in produces and the Codex renderer consumes.

Owns: what a message is, independent of any agent's format or of Codex's. Pure data, no behaviour.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Role = Literal["user", "assistant"]


class Message(msgspec.Struct, frozen=True, array_like=True):
    """One rendered message: its role, its final text, and when it was written (ms since the epoch)."""

    role: Role
    text: str
    ts_ms: int | None = None
