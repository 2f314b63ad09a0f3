"""The registry of agent sources: the one place a new plug-in is added."""

from __future__ import annotations

from daemon.sources import claude, cursor
from daemon.sources.base import Identity, ParseContext, Source, SourceState

SOURCES: dict[str, Source] = {s.kind: s for s in (claude.SOURCE, cursor.SOURCE)}

__all__ = ["SOURCES", "Identity", "ParseContext", "Source", "SourceState"]
