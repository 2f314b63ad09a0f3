"""String rules Codex applies (Rust semantics), so our output matches its importer byte for byte.

Rust's `str::trim` strips Unicode White_Space; Python's `str.strip()` also strips U+001C..U+001F, which
Rust keeps. `truncate` counts Unicode scalar values, as `chars().count()` does.
"""

from __future__ import annotations

RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def trim(s: str) -> str:
    return s.strip(RUST_WHITESPACE)


def trim_start(s: str) -> str:
    return s.lstrip(RUST_WHITESPACE)


def truncate(s: str, limit: int) -> str:
    """Keep `limit - 3` characters and add `...` when `s` has more than `limit` characters."""
    if len(s) <= limit:
        return s
    return s[: limit - 3] + "..."


def rust_lines(s: str) -> list[str]:
    """`str::lines`: split on `\\n`, drop one trailing `\\r` per line, no final empty line."""
    if not s:
        return []
    parts = s.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def utf8_len(s: str) -> int:
    """Rust's `str::len` (UTF-8 bytes), cheap for the common ASCII case."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))
