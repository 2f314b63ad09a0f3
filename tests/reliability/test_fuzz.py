"""Hostile input, fuzzed (issue 10): every agent's real transcript shapes, mutated every way a file goes bad.

Two levels. (a) The pure core, many cases: each plug-in's own parse function (`parse_line`,
`parse_session`, `v1_messages` / `v2_messages`) is called directly — `daemon.fold.fold` catches what a
plug-in raises and counts it as malformed, which would hide a bug that costs a good line — then the fold
and the renderer. Asserted: nothing escapes; every output line is strict JSON with a Codex timestamp;
the state survives the ledger's msgpack; a bad line is counted exactly once and dropping the bad lines
changes nothing else (good lines imported, each once); a fold split at any byte offsets gives the same
bytes and state. (b) End to end, few cases: the real `session-syncd import` over a tree of mutated
sessions of every agent, then the real `codex app-server` lists every thread.

Reproducible: hypothesis is derandomized (a fixed seed per test), without an example database. Each bug
the fuzzing found is kept below as an explicit regression example (`REGRESSIONS`).
"""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.codex.render import ThreadState, closing, render
from daemon.fold import FoldState, complete_end, fold, message_digest, state_decoder
from daemon.sources import SOURCES
from daemon.sources import claude, copilot, cursor, gemini, opencode, qwen
from daemon.sources.base import ParseContext
from daemon.transcript import Image, Message, Reasoning, Text, ToolCall, ToolResult, Unsupported
from hostile import (LINE_LIMIT, SQLITE, WRONG, check_rollout_lines, gemini_documents, hostile_lines, is_blank,
                     mutate, opencode_rows, pick, seed_lines, user_texts)

CTX = ParseContext(mtime_ms=1_780_488_000_500)
MIN_MS, MAX_MS = -62135596800000, 253402300799999  # years 1 to 9999: what a rollout timestamp and path can hold
SENTINEL = "sentinel: the one good line among bad ones"
PART_TYPES = (Text, ToolCall, ToolResult, Reasoning, Image, Unsupported)


def fuzz(n: int) -> settings:
    return settings(max_examples=n, derandomize=True, database=None, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


LOG = ("claude", "cursor", "copilot")
SEEDS = {k: seed_lines(k) for k in (*LOG, "qwen", "gemini")}
OC_MESSAGES, OC_PARTS, OC_V2 = opencode_rows()
OC_V2_DATA = [d for _, d in OC_V2]
LINES = {k: hostile_lines(v, 1, 10) for k, v in SEEDS.items()}
TAILS = {k: hostile_lines(v, 0, 3) for k, v in SEEDS.items()}


# ---------------------------------------------------------------- shared checks


def check_message(m: object) -> None:
    assert type(m) is Message, m
    assert m.role in ("user", "assistant")
    assert type(m.parts) is tuple and all(type(p) in PART_TYPES for p in m.parts), m.parts
    assert m.ts_ms is None or (type(m.ts_ms) is int and MIN_MS <= m.ts_ms <= MAX_MS), m.ts_ms


def check_state(kind: str, state: FoldState) -> None:
    """The ledger stores the state as msgpack: it must encode and come back equal."""
    start = state.source.start_ms
    assert start is None or MIN_MS <= start <= MAX_MS, start
    assert state_decoder(kind)(msgspec.msgpack.encode(state)) == state


def check_body(body: bytes, state: FoldState) -> None:
    check_rollout_lines(body)
    check_rollout_lines(closing(state.thread))


# ---------------------------------------------------------------- (a) log sources: parse_line, fold


def _bad_log_line(kind: str, line: bytes) -> int:
    """How many times the plug-in must count this (non-blank, not over-long) line as malformed."""
    if kind == "copilot":
        if copilot._decodes(line) is not None:
            return 0
        return 1 if line.find(b'{"type":', 1) < 0 else -1  # -1: glued pieces, judged by the split below
    try:
        (claude.SOURCE._decode if kind == "claude" else cursor.SOURCE._decode)(line)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return 1
    return 0


def _parse_directly(kind: str, lines: list[bytes]) -> None:
    source = SOURCES[kind]
    for line in lines:
        state = source.state_type()
        out = source.parse_line(state, memoryview(line), CTX)  # no exception may escape
        for m in out if type(out) is tuple else () if out is None else (out,):
            check_message(m)
        assert state.malformed <= (1 if kind != "copilot" else copilot.MAX_GLUED + 1)


def _fold_whole(kind: str, data: bytes) -> tuple[bytes, FoldState]:
    body, state = fold(SOURCES[kind], FoldState(source=SOURCES[kind].state_type()), data, CTX, LINE_LIMIT)
    return body, state


def _unsafe_cut(data: bytes, cut: int) -> bool:
    """A cut right after a whole JSON object whose line goes on: the fold takes the object as a finished
    last line, as it must for files that end without a newline; no reader can know more will follow on
    that line (the one case where a split changes the result, on purpose)."""
    start = data.rfind(b"\n", 0, cut) + 1
    end = data.find(b"\n", cut)
    rest = data[cut: end if end >= 0 else len(data)]
    return not is_blank(rest) and complete_end(data[start:cut]) == cut - start > 0


def _fold_split(kind: str, data: bytes, cuts: list[int]) -> tuple[bytes, FoldState]:
    """Fold as the engine does: from state.offset to each cut, the state through msgpack in between."""
    state = FoldState(source=SOURCES[kind].state_type())
    decode = state_decoder(kind)
    bodies = []
    for cut in [*sorted(cuts), len(data)]:
        if cut < state.offset:
            continue
        body, state = fold(SOURCES[kind], state, data[state.offset:cut], CTX, LINE_LIMIT)
        state = decode(msgspec.msgpack.encode(state))
        bodies.append(body)
    return b"".join(bodies), state


def _sentinel_line(kind: str) -> bytes:
    rec = {"claude": {"type": "user", "timestamp": "2026-06-03T12:30:00Z", "message": {"content": SENTINEL}},
           "cursor": {"role": "user", "message": {"content": SENTINEL}},
           "copilot": {"type": "user.message", "data": {"content": SENTINEL}, "timestamp": "2026-06-03T12:30:00Z"},
           }[kind]
    return json.dumps(rec).encode()


@st.composite
def log_file(draw: st.DrawFn, kind: str) -> tuple[bytes, list[int], int | None]:
    """(file bytes, cut offsets, where the sentinel line is or None)."""
    lines = draw(LINES[kind])
    sentinel = draw(st.one_of(st.none(), st.integers(0, len(lines))))
    if sentinel is not None:
        lines.insert(sentinel, _sentinel_line(kind))
    data = b"\n".join(lines) + draw(st.sampled_from([b"\n", b"\n", b"\r\n", b""]))
    cuts = [c for c in draw(st.lists(st.integers(0, len(data)), max_size=6)) if not _unsafe_cut(data, c)]
    return data, cuts, sentinel


def _expected_counts(kind: str, data: bytes, state: FoldState) -> tuple[int, int, list[bytes]]:
    """(malformed, long lines, the lines of good records only) as the contract says they must be."""
    lines = data.split(b"\n")
    if lines[-1] and complete_end(lines[-1]) == 0 and len(lines[-1]) <= LINE_LIMIT:
        lines.pop()  # an unfinished last line waits (not counted)
    elif not lines[-1]:
        lines.pop()
    malformed = longs = 0
    good: list[bytes] = []
    for line in lines:
        if len(line) > LINE_LIMIT:
            longs += 1
        elif is_blank(line):
            continue
        else:
            bad = _bad_log_line(kind, line)
            if bad < 0:  # glued copilot events: what its splitter counts; their good events stay
                pieces = copilot.decode_events(line)[1]
                malformed += pieces
                good.append(line)
                continue
            malformed += bad
            if not bad:
                good.append(line)
    return malformed, longs, good


def _check_log(kind: str, case: tuple[bytes, list[int], int | None]) -> None:
    data, cuts, sentinel = case
    _parse_directly(kind, data.split(b"\n"))
    body, state = _fold_whole(kind, data)
    check_body(body, state)
    check_state(kind, state)
    # a split anywhere (but after a whole object whose line goes on) gives the same bytes and state
    assert _fold_split(kind, data, cuts) == (body, state)
    # every bad line counted once; dropping the bad lines changes nothing but the counts
    malformed, longs, good = _expected_counts(kind, data, state)
    assert (state.source.malformed, state.long_lines) == (malformed, longs)
    good_body, good_state = _fold_whole(kind, b"".join(line + b"\n" for line in good))
    assert good_body == body
    assert msgspec.structs.replace(good_state.source, malformed=state.source.malformed) == state.source
    if sentinel is not None:
        assert user_texts(body + closing(state.thread)).count(SENTINEL) == 1


@pytest.mark.parametrize("kind", LOG)
def test_log_source_hostile_lines(kind: str) -> None:
    @fuzz(1700)
    @given(log_file(kind))
    def run(case):
        _check_log(kind, case)

    run()


# ---------------------------------------------------------------- (a) snapshot sources: parse_session


def _bad_qwen(line: bytes) -> bool:
    try:
        return qwen._record(line) is None
    except RecursionError:
        return True


def _bad_gemini(line: bytes) -> bool:
    try:
        gemini._decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return True
    return False


def digest(messages: list[Message]) -> None:
    """fold.message_digest: whatever the messages hold, it gives a digest (test_digest_of_a_huge_integer)."""
    assert len(message_digest(messages)) == 32


def _check_snapshot(kind: str, state, messages: list[Message]) -> None:
    for m in messages:
        check_message(m)
    body, thread = render(ThreadState(), messages)
    check_rollout_lines(body + closing(thread))
    digest(messages)  # what the engine compares an append against
    check_state(kind, FoldState(source=state, thread=thread, messages=len(messages)))


@st.composite
def snapshot_file(draw: st.DrawFn, kind: str) -> tuple[list[bytes], bool, bool]:
    """(lines, whether the last good line is the sentinel (only bad lines after it), terminated)."""
    lines = draw(LINES[kind])
    sentinel = draw(st.booleans())
    if sentinel:
        bad = _bad_qwen if kind == "qwen" else _bad_gemini
        uuids = [u for line in lines if (u := _uuid(line))] or [None]
        lines.append(_snapshot_sentinel(kind, draw(st.sampled_from(uuids))))
        lines += [b for b in draw(TAILS[kind]) if b"\n" not in b and bad(b)]
    return lines, sentinel, draw(st.booleans())


def _uuid(line: bytes) -> str | None:
    try:
        rec = msgspec.json.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return rec.get("uuid") if isinstance(rec, dict) and isinstance(rec.get("uuid"), str) else None


def _snapshot_sentinel(kind: str, parent: str | None) -> bytes:
    if kind == "qwen":
        rec = {"uuid": "sentinel-uuid", "parentUuid": parent, "sessionId": "s", "type": "user",
               "timestamp": "2026-06-03T12:30:00Z", "message": {"role": "user", "parts": [{"text": SENTINEL}]}}
    else:
        rec = {"id": "sentinel-id", "type": "user", "timestamp": "2026-06-03T12:30:00Z", "content": SENTINEL}
    return json.dumps(rec).encode()


def _parse_snapshot(kind: str, data: bytes):
    if kind == "qwen":
        return qwen.parse_session(data)
    parsed = gemini.parse_session(data, jsonl=True, mtime_ms=CTX.mtime_ms)
    assert parsed is not None  # a .jsonl is never "not yet whole"
    return parsed


def _check_snapshot_file(kind: str, case: tuple[list[bytes], bool, bool]) -> None:
    lines, sentinel, terminated = case
    data = b"\n".join(lines) + (b"\n" if terminated else b"")
    state, messages = _parse_snapshot(kind, data)  # no exception may escape
    _check_snapshot(kind, state, messages)
    bad = _bad_qwen if kind == "qwen" else _bad_gemini
    pieces = data.split(b"\n")
    last = len(pieces) - 1
    bad_lines = [i for i, p in enumerate(pieces) if not is_blank(p) and bad(p)]
    counted = [i for i in bad_lines if i < last]  # an unfinished last line is a write in progress
    good = b"".join(p + b"\n" for i, p in enumerate(pieces) if i not in bad_lines and not is_blank(p))
    if kind == "gemini":
        if gemini.load_legacy(good, gemini.GeminiState()):
            return  # the good lines alone are one whole document: Gemini reads that as a legacy session
        extra = state.malformed - len(counted)  # bad items of a `$set.messages` checkpoint count too
        assert extra >= 0
    else:
        extra = 0
    assert state.malformed == len(counted) + extra
    good_state, good_messages = _parse_snapshot(kind, good)
    assert good_messages == messages
    assert msgspec.structs.replace(good_state, malformed=state.malformed) == state
    if sentinel and not (kind == "gemini" and state.subagent):
        body, thread = render(ThreadState(), messages)
        assert user_texts(body).count(SENTINEL) == 1


@pytest.mark.parametrize("kind", ["qwen", "gemini"])
def test_snapshot_source_hostile_lines(kind: str) -> None:
    @fuzz(1700)
    @given(snapshot_file(kind))
    def run(case):
        _check_snapshot_file(kind, case)

    run()


@fuzz(600)
@given(hostile_lines(gemini_documents(), 1, 1), st.integers(0, 10**6))
def test_gemini_legacy_document_hostile(docs: list[bytes], cut: int) -> None:
    doc = docs[0]
    for data in (doc, doc[: cut % (len(doc) + 1)]):
        parsed = gemini.parse_session(data, jsonl=False, mtime_ms=CTX.mtime_ms)
        if parsed is not None:  # None: not whole JSON yet (the read retries, then is Incomplete)
            _check_snapshot("gemini", *parsed)


# ---------------------------------------------------------------- (a) OpenCode rows


def _as_column(draw: st.DrawFn, data: bytes) -> object:
    """A `data` column as sqlite3 hands it over: usually text, sometimes bytes (a BLOB), rarely NULL."""
    how = pick(draw, ["text", "text", "text", "bytes", "null"])
    return data.decode("utf-8", "replace") if how == "text" else data if how == "bytes" else None


@st.composite
def v1_rows(draw: st.DrawFn) -> list[tuple[str, object, object, list[tuple[str, object]]]]:
    rows = []
    for i in range(draw(st.integers(1, 6))):
        parts = [(f"prt_{j:03d}", _as_column(draw, mutate(draw, OC_PARTS)))
                 for j in range(draw(st.integers(0, 4)))]
        created = draw(st.one_of(st.none(), st.integers(0, 2**40), SQLITE))
        rows.append((f"msg_{i:03d}", created, _as_column(draw, mutate(draw, OC_MESSAGES)), parts))
    if draw(st.booleans()):
        rows.append(("msg_999", 1778300001000, '{"role":"user","time":{"created":1778300001000}}',
                     [("prt_000", json.dumps({"type": "text", "text": SENTINEL}))]))
    return rows


def _oc_read_parts(data: object) -> bool:
    """Whether the parts of a message are read at all: a user or assistant message, not a summary."""
    info = None if _oc_bad(opencode._message_decoder, data) else opencode._decode(opencode._message_decoder, data)
    return info is not None and (info.role == "user" or info.role == "assistant" and info.summary is not True)


def _oc_bad(decoder: msgspec.json.Decoder, data: object) -> bool:
    try:
        return opencode._decode(decoder, data) is None
    except RecursionError:
        return True


@fuzz(1200)
@given(v1_rows())
def test_opencode_v1_rows_hostile(rows) -> None:
    state = opencode.OpenCodeState()
    messages = opencode.v1_messages(state, rows)  # no exception may escape
    _check_snapshot("opencode", state, messages)
    bad = sum(_oc_bad(opencode._message_decoder, r[2]) for r in rows)
    bad += sum(_oc_bad(opencode._part_decoder, d) for r in rows if _oc_read_parts(r[2]) for _, d in r[3])
    assert state.malformed == bad
    good = [(mid, c, d, [p for p in parts if not _oc_bad(opencode._part_decoder, p[1])])
            for mid, c, d, parts in rows if not _oc_bad(opencode._message_decoder, d)]
    good_state = opencode.OpenCodeState()
    assert opencode.v1_messages(good_state, good) == messages
    assert msgspec.structs.replace(good_state, malformed=state.malformed) == state
    if rows[-1][0] == "msg_999":
        assert user_texts(render(ThreadState(), messages)[0]).count(SENTINEL) == 1


@st.composite
def v2_rows(draw: st.DrawFn) -> list[tuple[str, object, object, object]]:
    rows = []
    for i in range(draw(st.integers(1, 8))):
        kind, data = pick(draw, OC_V2)
        kind = draw(st.one_of(st.just(kind), st.sampled_from(["user", "assistant", "shell"]), SQLITE))
        rows.append((f"smg_{i:03d}", kind, draw(st.one_of(st.none(), st.integers(0, 2**40), SQLITE)),
                     _as_column(draw, mutate(draw, OC_V2_DATA))))
    return rows


@fuzz(800)
@given(v2_rows())
def test_opencode_v2_rows_hostile(rows) -> None:
    state = opencode.OpenCodeState()
    messages = opencode.v2_messages(state, rows)  # no exception may escape
    _check_snapshot("opencode", state, messages)
    bad = [r for r in rows if _oc_bad(opencode._v2_decoder, r[3])]
    assert state.malformed >= len(bad)  # (plus content items that are not objects, inside good rows)
    good_state = opencode.OpenCodeState()
    assert opencode.v2_messages(good_state, [r for r in rows if r not in bad]) == messages
    assert good_state.malformed == state.malformed - len(bad)


# ---------------------------------------------------------------- (a) the renderer on any message


_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["", " \n", "\x00", "\u2028x", "<user_query>a</user_query>",
                                                         "<command-name>/x</command-name>", "\U0001f600" * 50]))
_PART = st.one_of(
    _TEXT.map(Text),
    st.builds(ToolCall, st.one_of(st.none(), _TEXT), st.one_of(st.just(msgspec.UNSET), WRONG,
                                                                st.dictionaries(st.sampled_from(
                                                                    ["command", "description", "file_path", "file"]),
                                                                    st.one_of(_TEXT, WRONG), max_size=3))),
    st.builds(ToolResult, _TEXT, st.booleans()),
    st.builds(Reasoning, _TEXT), st.builds(Image, st.one_of(st.none(), _TEXT)), st.builds(Unsupported, _TEXT),
)
_MESSAGE = st.builds(Message, st.sampled_from(["user", "assistant"]), st.lists(_PART, max_size=4).map(tuple),
                     st.one_of(st.none(), st.integers(MIN_MS, MAX_MS)))


@fuzz(800)
@given(st.lists(_MESSAGE, max_size=8), st.integers(0, 8))
def test_render_any_messages(messages: list[Message], cut: int) -> None:
    body, thread = render(ThreadState(), messages)
    check_rollout_lines(body + closing(thread))
    head, mid = render(ThreadState(), messages[:cut])
    rest, end = render(msgspec.msgpack.decode(msgspec.msgpack.encode(mid), type=ThreadState), messages[cut:])
    assert (head + rest, end) == (body, thread)


# ---------------------------------------------------------------- regressions: each bug the fuzzing found


_NEST = b"[" * 1200 + b"]" * 1200
REGRESSIONS: list[tuple[str, bytes]] = [
    # RecursionError escaped Claude's parse_line (fold counted it; the plug-in must, as its contract says)
    ("claude", b'{"type":"user","message":{"content":' + _NEST + b'}}\n{"type":"user","message":{"content":"ok"}}\n'),
    # timestamp_ms past year 9999: the renderer's gmtime raised and failed the session; before 1970 (or an
    # RFC 3339 time whose offset moves it past year 9999) the start could not be a rollout path
    ("claude", b'{"type":"user","timestamp_ms":100000000000000000000,"message":{"content":"q"}}\n'),
    ("cursor", b'{"role":"user","timestamp_ms":-62135596800001,"message":{"content":"q"}}\n'),
    ("copilot", b'{"type":"user.message","data":{"content":"q"},"timestamp":"9999-12-31T23:59:59-23:59"}\n'),
    # a tool's JSON-text arguments decoded by json.loads let a lone surrogate through to the renderer
    ("copilot", b'{"type":"user.message","data":{"content":"q"}}\n{"type":"assistant.message","data":{"toolRequests":'
                b'[{"name":"t","arguments":"{\\"a\\":\\"\\\\ud800\\"}"}]}}\n'),
    # a `type` that is an object: unhashable in Qwen's name sets, the whole session failed
    ("qwen", b'{"uuid":"a","parentUuid":null,"sessionId":"s","type":"user","message":{"parts":[{"text":"q"}]}}\n'
             b'{"uuid":"b","parentUuid":"a","sessionId":"s","type":{"x":1}}\n'),
    ("qwen", b'{"uuid":"a","parentUuid":null,"sessionId":"s","type":"user","timestamp":"0001-01-01T00:00:00+23:00",'
             b'"message":{"parts":[{"text":"q"}]}}\n'),
    # RecursionError escaped Gemini's replay and legacy reader: the whole session failed
    ("gemini", b'{"sessionId":"s","projectHash":"h"}\n{"id":"u","type":"user","content":"q"}\n'
               b'{"id":"d","type":"user","content":' + _NEST + b"}\n"),
]


@pytest.mark.parametrize("kind,data", REGRESSIONS)
def test_regression(kind: str, data: bytes) -> None:
    if kind in LOG:
        _check_log(kind, (data, [], None))
        assert user_texts(_fold_whole(kind, data)[0])[0] in ("q", "ok")
    else:
        _check_snapshot_file(kind, (data.rstrip(b"\n").split(b"\n"), False, True))
        assert _parse_snapshot(kind, data)[1][0].parts == (Text("q"),)


def test_regression_gemini_legacy_nested_is_malformed_not_incomplete() -> None:
    """A whole legacy document nested past the limit raised RecursionError (and must not read as "half
    written", which retries forever): nothing to import, counted."""
    state, messages = gemini.parse_session(b'{"sessionId":"s","messages":' + _NEST + b"}", jsonl=False, mtime_ms=0)
    assert (messages, state.malformed) == ([], 1)


def test_regression_opencode_rows() -> None:
    """A part `type` that is a list (unhashable: TypeError) and a time that is infinite or past year 9999
    (OverflowError, or an impossible start) failed the whole session."""
    state = opencode.OpenCodeState()
    user = '{"role":"user","time":{"created":1778300001000}}'
    messages = opencode.v1_messages(state, [
        ("m1", float("inf"), user, [("p1", '{"type":["text"]}'), ("p2", '{"type":"text","text":"q"}')]),
        ("m2", 1e300, '{"role":"assistant","time":{"created":1e300}}', [("p3", '{"type":"text","text":"a"}')]),
    ])
    assert [m.parts for m in messages] == [(Text("a"),), (Text("q"),)]  # m2 has no time: first
    assert state.unknown == 1 and state.start_ms == 1778300001000
    _check_snapshot("opencode", state, messages)


def test_regression_opencode_invalid_utf8_row(tmp_path) -> None:
    """A TEXT value that is not UTF-8 made sqlite3 raise for the whole read (the session failed): it reads
    with U+FFFD in its place."""
    import sqlite3

    from daemon.sources.base import Identity

    db = tmp_path / "opencode.db"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE session (id TEXT PRIMARY KEY, parent_id TEXT, directory TEXT, title TEXT, time_created INTEGER);
        CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT, time_created INTEGER, data TEXT);
        CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT, data TEXT);
        INSERT INTO session VALUES ('ses_1', NULL, '/w', 'T', 1778300000000);
        INSERT INTO message VALUES ('msg_1', 'ses_1', 1778300001000, '{"role":"user"}');
        INSERT INTO part VALUES ('prt_1', 'msg_1', CAST(x'7b2274797065223a2274657874222c2274657874223a2271ff227d' AS TEXT));
    """)
    con.close()
    snap = opencode.SOURCE.read_snapshot(Identity("opencode", "ses_1", db / "ses_1"), CTX)
    assert [m.parts for m in snap.messages] == [(Text("q\ufffd"),)]


def test_digest_of_a_huge_integer() -> None:
    """A tool call whose input holds 2**64 (Gemini, Qwen and OpenCode keep inputs as decoded JSON)."""
    data = (b'{"sessionId":"s","projectHash":"h"}\n{"id":"u","type":"user","content":"q"}\n'
            b'{"id":"g","type":"gemini","content":"a","toolCalls":[{"name":"t","args":{"n":18446744073709551616}}]}\n')
    _, messages = gemini.parse_session(data, jsonl=True, mtime_ms=0)
    assert messages[-1].parts[-1] == ToolCall("t", {"n": 2**64})
    assert message_digest(messages) != message_digest(messages[:-1])  # no OverflowError (msgpack had one)
