"""Thread titles, as Codex's importer chooses them (custom > AI > first real user line).

Owns: the fallback title rule, including stripping the control wrappers Claude Code puts around
slash-command and IDE context. Pure functions.
"""

from __future__ import annotations

from daemon.codex.text import rust_lines, trim, trim_start, truncate

TITLE_MAX_LEN = 120
FALLBACK_TITLE = "Imported session"
_WRAPPERS = (
    "command-message", "command-name", "command-args", "local-command-caveat", "local-command-stderr",
    "local-command-stdout", "task-notification", "system-reminder", "ide_opened_file", "ide_selection",
)
_OPENING = tuple(f"<{t}>" for t in _WRAPPERS)
_CLOSING = tuple(f"</{t}>" for t in _WRAPPERS)


def _tag_at(text: str, pos: int, tags: tuple[str, ...]) -> tuple[int, int] | None:
    for index, tag in enumerate(tags):
        if text.startswith(tag, pos):
            return index, len(tag)
    return None


def _wrapper_end(text: str) -> int | None:
    """End of a balanced (possibly nested) leading wrapper, or None if it is not one."""
    first = _tag_at(text, 0, _OPENING)
    if first is None:
        return None
    stack = [first[0]]
    cursor = first[1]
    while stack:
        cursor = text.find("<", cursor)
        if cursor < 0:
            return None
        opening = _tag_at(text, cursor, _OPENING)
        if opening is not None:
            stack.append(opening[0])
            cursor += opening[1]
            continue
        closing = _tag_at(text, cursor, _CLOSING)
        if closing is not None:
            if stack[-1] != closing[0]:
                return None
            stack.pop()
            cursor += closing[1]
            continue
        cursor += 1
    return cursor


def fallback_title(user_text: str) -> str | None:
    """The first non-blank line after leading control wrappers, cut to 120 characters."""
    rest = trim_start(user_text)
    while (end := _wrapper_end(rest)) is not None:
        rest = trim_start(rest[end:])
    for line in rust_lines(rest):
        line = trim(line)
        if line:
            return truncate(line, TITLE_MAX_LEN)
    return None


def choose(custom: str | None, ai: str | None, fallback: str | None, saw_user: bool) -> str | None:
    title = custom or ai or fallback or (FALLBACK_TITLE if saw_user else None)
    return trim(title) or None if title else None
