"""The Claude plug-in's shortcuts (blocks.HourStamps: a canonical timestamp's hour parsed once) are
invisible: for any line, the message text, role, time and the source state (cwd, titles, branch, start,
malformed count) equal those of the plain reading (`record_ts_ms` on every line), line for line.

(A typed decoder for `message` was tried and dropped: it skips what it does not use without checking
its UTF-8, so a line with a bad byte in a block's key would be read where Codex rejects it; the last
example of test_lines_of_unexpected_shapes.)
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.codex.lines import iso_ms
from daemon.codex.notes import TOOL_RESULT_MAX, message_text, shows_anything
from daemon.sources import claude
from daemon.sources.base import ParseContext, SourceState
from daemon.sources.blocks import HourStamps, content_parts, read_record, unwrap_user_query
from daemon.sources.base import record_ts_ms
from daemon.transcript import Message, Text, plain_text

CTX = ParseContext(mtime_ms=0)
LONG = 4 * TOOL_RESULT_MAX  # tool results longer than their note shows


def _loose_parse(state: SourceState, line: bytes) -> Message | None:
    """ClaudeSource.parse_line as it reads with the loose record only (the reference)."""
    rec = read_record(claude.SOURCE._decode, state, line)
    if rec is None:
        return None
    if isinstance(rec.gitBranch, str) and rec.gitBranch and rec.gitBranch != "HEAD":
        state.git_branch = rec.gitBranch
    kind = rec.type
    if kind == "custom-title":
        state.custom_title = claude._title(rec.customTitle) or state.custom_title
        return None
    if kind == "ai-title":
        state.ai_title = claude._title(rec.aiTitle) or state.ai_title
        return None
    if kind not in ("user", "assistant") or rec.injected():
        return None
    ts = record_ts_ms(rec.timestamp, rec.timestamp_ms)
    if state.start_ms is None and ts is not None:
        state.start_ms = ts
    parts = content_parts(rec.content())
    if not shows_anything(parts):
        return None
    if kind == "user" and (text := plain_text(parts)) is not None:
        unwrapped = unwrap_user_query(text)
        if unwrapped is not text:
            parts = (Text(unwrapped),)
    return Message(kind, parts, ts)


def _seen(m: Message | None) -> tuple | None:
    return None if m is None else (m.role, m.ts_ms, message_text(m.parts))


def _same(lines: list[bytes]) -> None:
    fast, loose = SourceState(), SourceState()
    for line in lines:
        assert _seen(claude.SOURCE.parse_line(fast, line, CTX)) == _seen(_loose_parse(loose, line)), line[:300]
        assert fast == loose, line[:300]


def _line(content: object, **extra: object) -> bytes:
    rec = {"type": "user", "cwd": "/w", "timestamp": "2026-11-16T14:58:38.711Z",
           "message": {"role": "user", "content": content}}
    rec.update(extra)
    return json.dumps(rec, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _result(content: object) -> bytes:
    return _line([{"type": "tool_result", "tool_use_id": "t", "content": content}])


# ---------------------------------------------------------------- long tool results


def test_a_long_result() -> None:
    _same([_result("x" * (LONG * 3))])


def test_escapes_split_at_every_cut_point() -> None:
    # \n, \\, \" and \u escapes (a surrogate pair among them) straddling the prefix end at every offset
    for escape in ("\n", "\\", '"', "\u00e9", "\U0001f600", "\x01"):
        for shift in range(14):
            text = "a" * (LONG - 20 + shift) + escape * 8 + "b" * LONG
            _same([_result(text)])


def test_mostly_escapes_and_non_ascii_are_decoded_whole() -> None:
    _same([_result("\x01" * LONG), _result("é" * LONG * 2), _result("\n" * (LONG + 5))])


def test_invalid_utf8_past_the_prefix_still_rejects_the_line() -> None:
    good = _result("y" * (LONG * 2))
    last = good.rindex(b"y")
    bad = good[:last] + b"\xff" + good[last + 1:]  # far past the part that is decoded
    _same([bad, good])
    state = SourceState()
    assert claude.SOURCE.parse_line(state, bad, CTX) is None and state.malformed == 1 and state.cwd is None


def test_results_of_other_shapes() -> None:
    _same([_result([{"type": "text", "text": "z" * LONG}, {"type": "image"}, "loose", 5]),
           _result(None), _result(17), _result({"text": "a dict"}), _result("short"),
           _line([{"type": "tool_result", "content": "w" * (LONG + 1), "is_error": True}])])


# ---------------------------------------------------------------- records of unexpected shapes


def test_lines_of_unexpected_shapes() -> None:
    _same([_line(5), _line({"text": "content as an object"}), _line(["a string block", {"type": "text", "text": "t"}]),
           json.dumps({"type": "user", "cwd": "/w", "message": "a string"}).encode(),
           json.dumps({"type": "user", "cwd": 7, "message": [1]}).encode(),
           b'{"type":"user","message":{"content":[{"type":"text","text":"dup","type":"tool_use"}]}}',
           b'{"type":"assistant","message":{"content":[{"type":"tool_use","name":"n"},'
           b'{"type":"tool_use","name":"m","input":null}]}}',
           b'{"type":"user", "message": {"content": "\\ud800"}}', b"not json", b"[1]",
           b'{"type":"user","cwd":"/deep","message":{"content":[{"type":"tool_result","content":' + b"[" * 5000
           + b"]" * 5000 + b"}]}}",
           b'{"type":"assistant","cwd":"/w","message":{"content":[{"t\xc3ype":"text","text":"OK."}]}}'])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["type", "text", "content", "name",
                                                                                  "input", "is_error", "x"]),
                                                               inner, max_size=5),
    max_leaves=25)
# past the decoded prefix: a run of ASCII with anything around the cut, or a short text repeated
long_texts = (st.builds(lambda pad, mid, tail: "a" * pad + mid + tail, st.integers(LONG - 40, LONG + 5),
                        st.text(max_size=20), st.text(max_size=20))
              | st.text(min_size=1, max_size=8).map(lambda t: t * (LONG // len(t) + 2)))
blocks = st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_use", "tool_result", "thinking", "image",
                                                          "other"]) | json_values},
                               optional={"text": json_values, "name": json_values, "input": json_values,
                                         "content": json_values | long_texts,
                                         "is_error": json_values})
records = st.fixed_dictionaries(
    {"type": st.sampled_from(["user", "assistant", "custom-title", "ai-title", "summary"]) | json_values},
    optional={"cwd": st.sampled_from(["/a", ""]) | json_values, "gitBranch": st.sampled_from(["main", "HEAD"]),
              "customTitle": json_values, "aiTitle": json_values, "isMeta": json_values, "isSidechain": json_values,
              "timestamp": st.integers(-10**15, 3 * 10**14).map(lambda ms: iso_ms(ms) if 0 <= ms < 253402300800000
                                                                 else str(ms)) | json_values,
              "timestamp_ms": json_values,
              "message": st.fixed_dictionaries({}, optional={"content": st.text() | st.lists(blocks, max_size=4)
                                                             | json_values}) | json_values})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=6))
def test_any_record_reads_the_same_on_both_paths(recs: list[dict]) -> None:
    _same([json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass") for r in recs])


# ---------------------------------------------------------------- timestamps


@settings(max_examples=500, deadline=None)
@given(st.integers(-10**14, 3 * 10**14).map(iso_ms) | st.text(min_size=24, max_size=24)
       | st.from_regex(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ\Z"), st.none() | st.integers())
def test_hour_stamps_equal_the_parser(stamp: str, ms: int | None) -> None:
    assert HourStamps(record_ts_ms)(stamp, ms) == record_ts_ms(stamp, ms)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-10**11, 10**11).map(lambda ms: iso_ms(1_790_000_000_000 + ms))
                | st.sampled_from(["2026-11-16T23:60:00.000Z", "2026-02-29T10:00:00.000Z", "x" * 24]),
                min_size=1, max_size=40))
def test_hour_stamps_shared_across_lines_equal_the_parser(stamps: list[str]) -> None:
    """One instance across a session's lines (as the plug-in uses it): its cached hours, valid and
    rejected alike, never change an answer."""
    fast = HourStamps(record_ts_ms)
    for stamp in stamps + sorted(stamps):
        assert fast(stamp, 7) == record_ts_ms(stamp, 7), stamp


def test_hour_stamps_at_the_edges() -> None:
    stamps = HourStamps(record_ts_ms)
    for stamp in ("1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z",
                  "2026-02-29T10:00:00.000Z", "2028-02-29T10:00:00.000Z", "2026-11-16T24:00:00.000Z",
                  "2026-11-16T23:60:00.000Z", "2026-11-16T23:59:60.000Z", "2026-11-16T1\u0664:58:38.711Z"):
        assert stamps(stamp, 5) == record_ts_ms(stamp, 5), stamp
