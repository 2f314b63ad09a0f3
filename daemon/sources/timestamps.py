"""Source timestamps a rollout can hold: the base parsers' results, bounded to 1970 … 9999 (UTC).

Owns one rule every plug-in applies to the times its records carry: a time outside that range is no time
at all (as an unparsable one is). A thread's start becomes its UUIDv7 (48 unsigned bits of ms) and its
rollout path (`sessions/YYYY/MM/DD`), and every line's timestamp is `YYYY-MM-DDTHH:MM:SS.mmmZ`; a hostile
`timestamp_ms` of 10**20, or `9999-12-31T23:59:59-23:59` (year 10000 in UTC), fits none of them and would
fail the whole session instead of one field. (The bound belongs in base.rfc3339_ms / record_ts_ms; until
it moves there, plug-ins import these.)
"""

from __future__ import annotations

from daemon.sources import base

MIN_MS = 0  # 1970-01-01T00:00:00.000Z: a UUIDv7's time is unsigned
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z: four-digit years


def bounded(ms: int | None) -> int | None:
    return ms if ms is not None and MIN_MS <= ms <= MAX_MS else None


def rfc3339_ms(value: object) -> int | None:
    """base.rfc3339_ms, None outside the range."""
    return bounded(base.rfc3339_ms(value))


def record_ts_ms(timestamp: object, timestamp_ms: object) -> int | None:
    """Codex's order: `timestamp` (RFC 3339), else integer `timestamp_ms`; each only within the range."""
    ms = rfc3339_ms(timestamp)
    if ms is None and type(timestamp_ms) is int:
        ms = bounded(timestamp_ms)
    return ms
