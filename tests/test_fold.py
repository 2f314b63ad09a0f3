"""The resumable fold: only complete lines are consumed, and any split of the bytes gives the same output.

The engine calls `fold(source, state, data[state.offset:end], ctx)` each time more bytes are there (the
unconsumed tail is re-sent with the new bytes) and stores the state (msgpack) in the ledger between
calls; the rollout on disk is `session_meta + body + closing(state.thread)`, and an append cuts the old
closing lines and writes the new body lines and a new closing.
"""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.codex.render import MARKER, closing
from daemon.fold import FoldState, complete_end, fold
from daemon.sources.base import ParseContext
from daemon.sources.claude import SOURCE as CLAUDE
from daemon.sources.cursor import SOURCE as CURSOR

CTX = ParseContext(mtime_ms=1_780_488_000_500)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fold_all(source, data: bytes) -> tuple[bytes, FoldState]:
    body, state = fold(source, FoldState(), data, CTX)
    return body, state


def fold_split(source, data: bytes, cuts: list[int], roundtrip: bool = False):
    """Fold as the engine does: each call gets the bytes from state.offset to the next cut."""
    state = FoldState()
    bodies: list[bytes] = []
    snapshots: list[tuple[bytes, FoldState]] = []
    for cut in [*sorted(cuts), len(data)]:
        if cut < state.offset:
            continue
        body, state = fold(source, state, data[state.offset:cut], CTX)
        if roundtrip:
            state = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=FoldState)
        bodies.append(body)
        snapshots.append((b"".join(bodies), state))
    return b"".join(bodies), state, snapshots


# ---------------------------------------------------------------- complete_end


@pytest.mark.parametrize("chunk,end", [
    (b"", 0),
    (b"abc", 0),
    (b"a\nb", 2),
    (b"a\nb\n", 4),
    (b'{"a":1}', 7),
    (b'{"a":1}  \r', 10),
    (b'  {"a":1}', 9),
    (b'{"a":', 0),
    (b'{"a":1}\n{"b":', 8),
    (b'x\n{"a":1}', 9),
    (b"  ", 0),
    (b"\n\n  ", 2),
    (b"[1]", 0),
    (b'"s"', 0),
    (b"42", 0),
    (b'{"a":1}{"b":2}', 0),
    (b'{"a":1} x', 0),
])
def test_complete_end(chunk: bytes, end: int):
    assert complete_end(chunk) == end


def _user(text: str, ts: str = "2026-06-03T12:00:00Z") -> bytes:
    return json.dumps({"type": "user", "cwd": "/w", "timestamp": ts, "message": {"content": text}}).encode()


def test_fold_tail_without_newline_waits_unless_whole_object():
    data = _user("one") + b"\n" + _user("two")[:-5]
    body, state = fold_all(CLAUDE, data)
    assert state.offset == len(_user("one")) + 1
    assert body.count(b'"user_message"') == 1
    # the whole last object without a newline is complete
    data = _user("one") + b"\n" + _user("two")
    body, state = fold_all(CLAUDE, data)
    assert state.offset == len(data) and body.count(b'"user_message"') == 2
    # and a newline added later is just an empty line
    more, state2 = fold(CLAUDE, state, b"\n", CTX)
    assert more == b"" and state2.offset == len(data) + 1 and state2.thread == state.thread


def test_fold_skips_blank_lines_counts_malformed():
    data = b"\n   \n\t\r\n\r\n" + _user("x") + b"\r\n{broken\n[1]\n\n"
    body, state = fold_all(CLAUDE, data)
    assert state.offset == len(data)
    assert state.source.malformed == 2
    assert body.count(b'"user_message"') == 1


def test_fold_does_not_mutate_input_state():
    s0 = FoldState()
    _, s1 = fold(CLAUDE, s0, _user("a") + b"\n", CTX)
    assert s0 == FoldState() and s1.offset > 0 and s1.source.cwd == "/w"
    _, s2 = fold(CLAUDE, s1, _user("b") + b"\n", CTX)
    assert s1.thread.turns == 1 and s2.thread.turns == 2


def test_fold_empty_chunk_is_identity():
    _, s1 = fold_all(CLAUDE, _user("a") + b"\n")
    body, s2 = fold(CLAUDE, s1, b"", CTX)
    assert body == b"" and s2 == s1


# ---------------------------------------------------------------- generated sessions

_TEXT_SAMPLES = ["hi", "  padded  ", "naïve café ☕", "日本語", "🎉 emoji", "line1\nline2", "tab\there", "\r\nx",
                 "<command-name>/x</command-name>\nreal", "<user_query>q</user_query>", "a\u2028b", "", "   ",
                 "\"quoted\" \\ back", "x" * 130]
texts = st.one_of(st.sampled_from(_TEXT_SAMPLES),
                  st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))

timestamps = st.one_of(
    st.none(),
    st.builds(lambda s, frac, off: f"2026-06-03T12:{s // 60:02d}:{s % 60:02d}{frac}{off}",
              st.integers(0, 3599), st.sampled_from(["", ".5", ".250", ".999999"]),
              st.sampled_from(["Z", "+02:00", "-05:30", "+00:00"])),
)
timestamp_ms = st.one_of(st.none(), st.integers(1_780_000_000_000, 1_790_000_000_000))

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), texts),
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.sampled_from(["a", "z", "k", "é"]), kids, max_size=3)),
    max_leaves=6,
)


@st.composite
def blocks(draw):
    kind = draw(st.sampled_from(["text", "text", "thinking", "tool_use", "tool_result", "image", "redacted_thinking"]))
    if kind == "text":
        return {"type": "text", "text": draw(texts)}
    if kind == "thinking":
        return {"type": "thinking", "thinking": draw(texts), "signature": "sig"}
    if kind == "tool_use":
        b = {"type": "tool_use", "id": "toolu_1", "name": draw(st.sampled_from(["Bash", "Read", "Edit", "Grep"]))}
        inp = draw(st.one_of(
            st.just(None),
            st.fixed_dictionaries({}, optional={"command": texts, "description": texts, "file_path": texts,
                                                "file": texts, "pattern": texts, "n": st.integers()}),
            json_values))
        if inp is not None:
            b["input"] = inp
        return b
    if kind == "tool_result":
        content = draw(st.one_of(texts, st.lists(st.one_of(
            st.builds(lambda t: {"type": "text", "text": t}, texts), st.just({"type": "image"})), max_size=3), st.none()))
        b = {"type": "tool_result", "tool_use_id": "toolu_1"}
        if content is not None:
            b["content"] = content
        if draw(st.booleans()):
            b["is_error"] = draw(st.booleans())
        return b
    return {"type": kind, "source": {"type": "base64", "data": "AA=="}}


contents = st.one_of(texts, st.lists(blocks(), max_size=4))


@st.composite
def claude_record(draw):
    kind = draw(st.sampled_from(["user"] * 6 + ["assistant"] * 5 + ["custom-title", "ai-title", "summary", "system",
                                                                   "progress", "file-history-snapshot"]))
    if kind == "custom-title":
        return {"type": kind, "customTitle": draw(texts), "sessionId": "s"}
    if kind == "ai-title":
        return {"type": kind, "aiTitle": draw(texts), "sessionId": "s"}
    if kind in ("summary", "system", "progress", "file-history-snapshot"):
        r = {"type": kind, "summary": "s", "subtype": "compact_boundary"}
        if draw(st.booleans()):
            r["cwd"] = draw(st.sampled_from(["/a", "/b"]))
        return r
    r = {"parentUuid": None, "isSidechain": draw(st.sampled_from([False, False, False, True])),
         "type": kind, "message": {"role": kind, "content": draw(contents)}, "uuid": "u",
         "gitBranch": draw(st.sampled_from(["main", "feature", "HEAD"]))}
    if draw(st.integers(0, 5)) == 0:
        r["isMeta"] = True
    if draw(st.booleans()):
        r["cwd"] = draw(st.sampled_from(["/work/p", "/work/q"]))
    ts = draw(timestamps)
    if ts is not None:
        r["timestamp"] = ts
    ms = draw(timestamp_ms)
    if ms is not None:
        r["timestamp_ms"] = ms
    return r


@st.composite
def cursor_record(draw):
    role = draw(st.sampled_from(["user", "user", "assistant", "assistant", None]))
    content = draw(contents)
    if role == "user" and isinstance(content, str) and draw(st.booleans()):
        content = f"<timestamp>{draw(timestamps) or 'Wed'}</timestamp>\n<user_query>\n{content}\n</user_query>\n"
    r: dict = {"role": role} if role else {"type": "assistant"}
    r["message"] = {"content": content}
    if draw(st.integers(0, 6)) == 0:
        r["isMeta"] = True
    ms = draw(timestamp_ms)
    if ms is not None and draw(st.booleans()):
        r["timestamp_ms"] = ms
    return r


@st.composite
def malformed_line(draw):
    """Lines that are not records. None starts with a complete JSON object (see complete_end)."""
    kind = draw(st.sampled_from(["trunc", "garbage", "array", "number"]))
    if kind == "trunc":
        full = json.dumps(draw(claude_record()), ensure_ascii=False)
        return full[: draw(st.integers(1, len(full) - 1))]
    return {"garbage": "{not json at all", "array": "[1, 2]", "number": "12"}[kind]


def session_file(record):
    @st.composite
    def build(draw):
        items = []
        for _ in range(draw(st.integers(0, 16))):
            pick = draw(st.integers(0, 11))  # mostly records, some malformed and blank lines
            if pick == 11:
                items.append(draw(malformed_line()))
            elif pick == 10:
                items.append(draw(st.sampled_from(["", "   ", "\t"])))
            else:
                items.append(json.dumps(draw(record), ensure_ascii=draw(st.booleans())))
        eols = [draw(st.sampled_from(["\n", "\n", "\r\n"])) for _ in items]
        if items and draw(st.booleans()):
            eols[-1] = ""  # the final line without a newline
        return "".join(i + e for i, e in zip(items, eols)).encode("utf-8")
    return build()


claude_files = session_file(claude_record())
cursor_files = session_file(cursor_record())


def _cuts(data_len: int):
    return st.lists(st.integers(0, data_len), max_size=8)


def _check_splits(source, data: bytes, cuts: list[int]):
    full_body, full_state = fold_all(source, data)
    expected = full_body + closing(full_state.thread)
    for roundtrip in (False, True):
        body, state, snapshots = fold_split(source, data, cuts, roundtrip=roundtrip)
        assert body + closing(state.thread) == expected
        assert state == full_state
        for so_far, snap in snapshots:
            # the append invariant: what was written before (closing cut off) is a prefix of the full body
            assert full_body.startswith(so_far)
            tail = closing(snap.thread)
            assert (tail == b"") == (snap.thread.turns == 0)
            if tail:
                assert json.loads(tail.split(b"\n")[0])["payload"]["message"] == MARKER
    # every rollout line is one compact JSON object
    for ln in expected.splitlines():
        assert json.loads(ln)["type"] in ("event_msg", "response_item")
    return full_body, full_state


@SETTINGS
@given(st.data())
def test_claude_any_split_same_bytes(data):
    raw = data.draw(claude_files)
    cuts = data.draw(_cuts(len(raw)))
    _check_splits(CLAUDE, raw, cuts)


@SETTINGS
@given(st.data())
def test_cursor_any_split_same_bytes(data):
    raw = data.draw(cursor_files)
    cuts = data.draw(_cuts(len(raw)))
    _check_splits(CURSOR, raw, cuts)


@settings(max_examples=60, deadline=None)
@given(claude_files)
def test_claude_byte_by_byte(raw):
    _check_splits(CLAUDE, raw, list(range(len(raw) + 1))[:400])


@settings(max_examples=80, deadline=None)
@given(claude_files, st.data())
def test_append_after_prefix_matches_fresh_fold(raw, data):
    """The engine's append: fold a prefix, store the state, later fold only the appended bytes."""
    cut = data.draw(st.integers(0, len(raw)))
    _, s1 = fold_all(CLAUDE, raw[:cut])
    s1 = msgspec.msgpack.decode(msgspec.msgpack.encode(s1), type=FoldState)
    b1, _ = fold_all(CLAUDE, raw[:cut])
    b2, s2 = fold(CLAUDE, s1, raw[s1.offset:], CTX)
    full_body, full_state = fold_all(CLAUDE, raw)
    assert b1 + b2 == full_body and s2 == full_state


@SETTINGS
@given(claude_files)
def test_offset_only_stops_before_an_incomplete_tail(raw):
    _, state = fold_all(CLAUDE, raw)
    tail = raw[state.offset:]
    assert b"\n" not in tail
    if tail.strip():
        assert complete_end(tail) == 0
    if raw.endswith(b"\n"):
        assert state.offset == len(raw)
