"""Every event name the code logs is one of the documented names (daemon.log.EVENTS, the README table)."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.record import _EVENTS
from daemon.log import EVENTS

REPO = Path(__file__).resolve().parents[1]
CALL = re.compile(r"\b(?:log|logger|self\.log)\.(?:debug|info|warning|error|exception)\(\s*\"([^\"]+)\"")


def test_logged_event_names_are_documented() -> None:
    names = {m.group(1) for folder in ("daemon", "service") for path in (REPO / folder).rglob("*.py")
             for m in CALL.finditer(path.read_text())}
    names |= {event for _level, event in _EVENTS.values()}
    assert len(names) > 10, names  # the pattern still finds the calls
    assert sorted(n for n in names if n not in EVENTS) == []


def test_readme_documents_every_event() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name in EVENTS if f"`{name}`" not in readme]
    assert missing == []
