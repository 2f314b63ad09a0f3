"""Deterministic thread ids (UUIDv7 shape) and rollout paths."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.codex.ids import rollout_relpath, thread_id

START = 1_780_488_001_250  # 2026-06-03T12:00:01.250Z


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["claude", "cursor"]), st.text(max_size=20), st.text(max_size=40),
       st.integers(0, 2**31), st.integers(0, 2**48 - 1))
def test_uuid7_shape(kind, session, path, generation, start_ms):
    value = thread_id(kind, session, path, generation, start_ms)
    u = uuid.UUID(value)
    assert str(u) == value  # canonical lower-case 8-4-4-4-12, as uuid formats it
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert u.int >> 80 == start_ms  # the 48 time bits are the start in ms
    assert value == thread_id(kind, session, path, generation, start_ms)  # deterministic


def test_known_shape_and_time_prefix():
    value = thread_id("claude", "s", "/p/s.jsonl", 0, START)
    assert value.startswith(f"{START:012x}"[:8] + "-" + f"{START:012x}"[8:] + "-7")
    assert value[19] in "89ab"


def test_ids_differ_by_every_input():
    base = ("claude", "sess", "/p/sess.jsonl", 0, START)
    ids = {thread_id(*base),
           thread_id("cursor", *base[1:]),
           thread_id(base[0], "sess2", *base[2:]),
           thread_id(*base[:2], "/q/sess.jsonl", *base[3:]),
           thread_id(*base[:3], 1, START),
           thread_id(*base[:4], START + 1)}
    assert len(ids) == 6
    # the random part (everything after the time bits) depends on identity and generation only
    a, b = uuid.UUID(thread_id(*base)), uuid.UUID(thread_id(*base[:4], START + 5000))
    assert a.int & (2**80 - 1) == b.int & (2**80 - 1)


def test_no_field_separator_collision():
    assert thread_id("claude", "ab", "c", 0, START) != thread_id("claude", "a", "bc", 0, START)


def test_non_utf8_path_surrogates_do_not_crash():
    assert uuid.UUID(thread_id("claude", "s", "/p/\udcff.jsonl", 0, START)).version == 7


@pytest.mark.parametrize("start_ms,expected", [
    (START, "sessions/2026/06/03/rollout-2026-06-03T12-00-01-ID.jsonl"),
    (1_780_531_199_999, "sessions/2026/06/03/rollout-2026-06-03T23-59-59-ID.jsonl"),
    (1_780_531_200_000, "sessions/2026/06/04/rollout-2026-06-04T00-00-00-ID.jsonl"),
    (0, "sessions/1970/01/01/rollout-1970-01-01T00-00-00-ID.jsonl"),
])
def test_rollout_relpath_utc(start_ms, expected, monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    import time
    time.tzset()
    try:
        assert rollout_relpath("ID", start_ms) == Path(expected)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@settings(max_examples=500, deadline=None)
@given(st.integers(-(2**41), 253402300799999))  # mtimes before 1970 to the last instant a source time may be
def test_rollout_relpath_equals_the_datetime_formatting(start_ms):
    t = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc)
    assert rollout_relpath("ID", start_ms) == Path(
        "sessions", f"{t:%Y}", f"{t:%m}", f"{t:%d}", f"rollout-{t:%Y-%m-%dT%H-%M-%S}-ID.jsonl")
