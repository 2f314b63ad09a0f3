"""The registry of agent sources: the one place a new plug-in is added.

Everything that lists agents reads this: CLI flags (`--<kind>-root`), config sections
(`[sources.<kind>]`), the watcher's file filter, `status` rows and `doctor` checks.
"""

from __future__ import annotations

from daemon.sources import claude, copilot, cursor, gemini, opencode, qwen
from daemon.sources.base import Identity, Incomplete, ParseContext, Snapshot, Source, SourceState, Version, WatchSpec

SOURCES: dict[str, Source] = {s.kind: s for s in (claude.SOURCE, cursor.SOURCE, copilot.SOURCE, qwen.SOURCE,
                                                  gemini.SOURCE, opencode.SOURCE)}

__all__ = ["SOURCES", "Identity", "Incomplete", "ParseContext", "Snapshot", "Source", "SourceState", "Version",
           "WatchSpec"]
