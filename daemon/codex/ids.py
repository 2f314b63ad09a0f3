"""Deterministic thread ids and rollout paths: the reason a re-run never makes a second thread.

A thread id is UUIDv7-shaped: its 48 time bits are the session's start (ms), its 74 "random" bits a
blake3 of the source identity (kind, session id, path) and the generation. The same session always maps
to the same id, and the rollout path is derived from the id and the start time alone (in UTC, so a
changed time zone cannot move it).
"""

from __future__ import annotations

import time
from pathlib import Path

import blake3


def thread_id(kind: str, session_id: str, path: str, generation: int, start_ms: int) -> str:
    digest = blake3.blake3(f"{kind}\0{session_id}\0{path}\0{generation}".encode("utf-8", "surrogatepass")).digest()
    rand = int.from_bytes(digest[:10], "big")  # 80 bits, of which 74 are used
    value = (start_ms & (2**48 - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & (2**62 - 1)  # rand_b: 62 bits
    h = f"{value:032x}"  # str(uuid.UUID(int=value)) without building one: 2.5 -> 0.9 µs
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def rollout_relpath(thread: str, start_ms: int) -> Path:
    """`sessions/YYYY/MM/DD/rollout-YYYY-MM-DDTHH-MM-SS-<id>.jsonl`, as Codex names its own (the start's
    UTC second; from `time.gmtime` and one string, where a datetime, six strftime calls and a five-part
    Path took 20.6 µs against 7.9 of every new thread's write)."""
    t = time.gmtime(start_ms // 1000)
    day = f"{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}"
    return Path(f"sessions/{day}/rollout-{day.replace('/', '-')}T{t.tm_hour:02d}-{t.tm_min:02d}-{t.tm_sec:02d}-"
                f"{thread}.jsonl")
