"""Turn building and the exact rollout JSON (codex-importer.md §2.4, §2.5; tests/golden/README.md section A)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from daemon.codex import lines as L
from daemon.codex.render import MARKER, ThreadState, closing, render
from daemon.fold import FoldState, fold
from daemon.sources.base import ParseContext
from daemon.sources.claude import SOURCE as CLAUDE
from daemon.sources.cursor import SOURCE as CURSOR
from daemon.transcript import Message as _Message
from daemon.transcript import Text


def Message(role: str, text: str, ts_ms: int | None = None) -> _Message:  # noqa: N802 — reads like the type
    """A message of one text part, as most sources produce."""
    return _Message(role, (Text(text),), ts_ms)

S0 = 1_780_488_000  # 2026-06-03T12:00:00Z
MS = S0 * 1000
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def run(*msgs: Message, state: ThreadState | None = None) -> tuple[list[dict], ThreadState, bytes]:
    body, st = render(state or ThreadState(), msgs)
    out = body + closing(st)
    return [json.loads(x) for x in out.splitlines()], st, out


def payloads(lines: list[dict]) -> list[dict]:
    return [ln["payload"] for ln in lines]


def kinds(lines: list[dict]) -> list[str]:
    return [ln["payload"]["type"] if ln["type"] == "event_msg" else f"{ln['payload']['role']}_item" for ln in lines]


# ---------------------------------------------------------------- the worked example, byte for byte

WORKED = [
    ('2026-06-03T12:00:00.000Z', '{"type":"task_started","turn_id":"external-import-turn-1","started_at":1780488000,"model_context_window":null,"collaboration_mode_kind":"default"}', "event_msg"),
    ('2026-06-03T12:00:00.000Z', '{"type":"user_message","message":"first request","local_images":[],"local_audio":[],"text_elements":[]}', "event_msg"),
    ('2026-06-03T12:00:00.000Z', '{"type":"message","role":"user","content":[{"type":"input_text","text":"first request"}]}', "response_item"),
    ('2026-06-03T12:00:05.000Z', '{"type":"agent_message","message":"first answer","phase":null,"memory_citation":null}', "event_msg"),
    ('2026-06-03T12:00:05.000Z', '{"type":"message","role":"assistant","content":[{"type":"output_text","text":"first answer"}]}', "response_item"),
    ('2026-06-03T12:01:00.000Z', '{"type":"task_complete","turn_id":"external-import-turn-1","last_agent_message":null,"started_at":1780488000}', "event_msg"),
    ('2026-06-03T12:01:00.000Z', '{"type":"task_started","turn_id":"external-import-turn-2","started_at":1780488060,"model_context_window":null,"collaboration_mode_kind":"default"}', "event_msg"),
    ('2026-06-03T12:01:00.000Z', '{"type":"user_message","message":"second request","local_images":[],"local_audio":[],"text_elements":[]}', "event_msg"),
    ('2026-06-03T12:01:00.000Z', '{"type":"message","role":"user","content":[{"type":"input_text","text":"second request"}]}', "response_item"),
    ('2026-06-03T12:01:00.000Z', '{"type":"agent_message","message":"<EXTERNAL SESSION IMPORTED>","phase":null,"memory_citation":null}', "event_msg"),
    ('2026-06-03T12:01:00.000Z', '{"type":"token_count","info":{"total_token_usage":{"input_tokens":0,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":0,"reasoning_output_tokens":0,"total_tokens":7},"last_token_usage":{"input_tokens":0,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":0,"reasoning_output_tokens":0,"total_tokens":7},"model_context_window":null},"rate_limits":null}', "event_msg"),
    ('2026-06-03T12:01:00.000Z', '{"type":"task_complete","turn_id":"external-import-turn-2","last_agent_message":null,"started_at":1780488060,"completed_at":1780488060}', "event_msg"),
]
WORKED_BYTES = "".join(f'{{"timestamp":"{t}","type":"{k}","payload":{p}}}\n' for t, p, k in WORKED).encode()


def test_worked_example_exact_bytes_from_messages():
    _, _, out = run(Message("user", "first request", MS), Message("assistant", "first answer", MS + 5000),
                    Message("user", "second request", MS + 60_000))
    assert out == WORKED_BYTES


def test_worked_example_exact_bytes_from_claude_source():
    src = b"".join(json.dumps(r).encode() + b"\n" for r in [
        {"type": "user", "cwd": "/r", "timestamp": "2026-06-03T12:00:00Z", "message": {"role": "user", "content": "first request"}},
        {"type": "assistant", "cwd": "/r", "timestamp": "2026-06-03T12:00:05Z",
         "message": {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]}},
        {"type": "user", "cwd": "/r", "timestamp": "2026-06-03T12:01:00Z", "message": {"role": "user", "content": "second request"}},
    ])
    body, state = fold(CLAUDE, FoldState(), src, ParseContext(mtime_ms=0))
    assert body + closing(state.thread) == WORKED_BYTES
    assert state.source.cwd == "/r" and state.source.start_ms == MS


# ---------------------------------------------------------------- turns


def test_assistant_before_first_user_dropped_and_not_counted():
    lines, st, _ = run(Message("assistant", "early", MS - 1000), Message("assistant", "x" * 100, MS - 500),
                       Message("user", "abcd", MS), Message("assistant", "efgh", MS + 1))
    assert kinds(lines) == ["task_started", "user_message", "user_item", "agent_message", "assistant_item",
                            "agent_message", "token_count", "task_complete"]
    assert lines[-2]["payload"]["info"]["total_token_usage"]["total_tokens"] == 2  # (4 + 4) / 4
    assert st.turns == 1


def test_only_assistant_messages_give_nothing():
    body, st = render(ThreadState(), [Message("assistant", "a", MS)])
    assert body == b"" and closing(st) == b"" and st.turns == 0
    assert closing(ThreadState()) == b""


def test_turns_and_intermediate_task_complete():
    lines, st, _ = run(Message("user", "u1", MS), Message("assistant", "a1", MS + 1000),
                       Message("assistant", "a2", MS + 2000), Message("user", "u2", MS + 3000),
                       Message("user", "u3", MS + 4000))
    assert kinds(lines) == ["task_started", "user_message", "user_item", "agent_message", "assistant_item",
                            "agent_message", "assistant_item", "task_complete",
                            "task_started", "user_message", "user_item", "task_complete",
                            "task_started", "user_message", "user_item",
                            "agent_message", "token_count", "task_complete"]
    completes = [p for p in payloads(lines) if p["type"] == "task_complete"]
    assert [c["turn_id"] for c in completes] == [f"external-import-turn-{i}" for i in (1, 2, 3)]
    assert [c.get("completed_at") for c in completes] == [None, None, S0 + 4]
    assert all("completed_at" not in c for c in completes[:-1])
    assert [c["started_at"] for c in completes] == [S0, S0 + 3, S0 + 4]
    assert st.turns == 3


def test_closing_marker_is_an_event_only_inside_last_turn():
    lines, _, _ = run(Message("user", "u", MS), Message("assistant", "a", MS + 1000))
    marker_idx = [i for i, ln in enumerate(lines) if MARKER in json.dumps(ln)]
    assert len(marker_idx) == 1
    assert lines[marker_idx[0]] == {"timestamp": "2026-06-03T12:00:01.000Z", "type": "event_msg", "payload": {
        "type": "agent_message", "message": MARKER, "phase": None, "memory_citation": None}}
    assert [ln["type"] for ln in lines[marker_idx[0]:]] == ["event_msg"] * 3
    assert lines[-1]["payload"]["type"] == "task_complete"


@pytest.mark.parametrize("texts,tokens", [
    (["u"], 0),  # no assistant message
    (["abc", "d"], 1),
    (["abcd", "efgh"], 2),
    (["abcd", "efghi"], 3),
    (["é", "☕"], 2),  # 2 + 3 UTF-8 bytes
    (["🎉🎉", "x"], 3),  # 8 + 1
])
def test_token_count_ceil_of_utf8_bytes(texts, tokens):
    msgs = [Message("user" if i == 0 else "assistant", t, MS) for i, t in enumerate(texts)]
    lines, _, _ = run(*msgs)
    info = lines[-2]["payload"]["info"]
    assert info["total_token_usage"] == info["last_token_usage"] == {
        "input_tokens": 0, "cached_input_tokens": 0, "cache_write_input_tokens": 0, "output_tokens": 0,
        "reasoning_output_tokens": 0, "total_tokens": tokens}
    assert info["model_context_window"] is None and lines[-2]["payload"]["rate_limits"] is None


def test_token_count_stops_at_last_assistant_message():
    # user messages after the last assistant message are not counted
    lines, _, _ = run(Message("user", "aaaa", MS), Message("assistant", "bbbb", MS),
                      Message("user", "c" * 1000, MS), Message("user", "d" * 1000, MS))
    assert lines[-2]["payload"]["info"]["total_token_usage"]["total_tokens"] == 2
    # ... but they are once an assistant message follows
    lines, _, _ = run(Message("user", "aaaa", MS), Message("assistant", "bbbb", MS),
                      Message("user", "c" * 1000, MS), Message("assistant", "dddd", MS))
    assert lines[-2]["payload"]["info"]["total_token_usage"]["total_tokens"] == 253


def test_last_completed_at_is_last_message_any_role_truncated():
    lines, _, _ = run(Message("user", "u", MS + 60_750), Message("assistant", "a", MS - 7_110_001))
    last = lines[-1]["payload"]
    assert last["started_at"] == S0 + 60 and last["completed_at"] == S0 - 7111  # earlier than started_at is kept
    lines, _, _ = run(Message("user", "u", MS + 999))
    assert lines[-1]["payload"]["completed_at"] == S0


def test_missing_timestamps_omit_fields():
    lines, _, out = run(Message("user", "u", None), Message("assistant", "a", None), Message("user", "v", None))
    ps = payloads(lines)
    assert ps[0] == {"type": "task_started", "turn_id": "external-import-turn-1", "model_context_window": None,
                     "collaboration_mode_kind": "default"}
    assert ps[5] == {"type": "task_complete", "turn_id": "external-import-turn-1", "last_agent_message": None}
    assert ps[-1] == {"type": "task_complete", "turn_id": "external-import-turn-2", "last_agent_message": None}
    assert b'"timestamp":"1970-01-01T00:00:00.000Z"' in out


def test_last_message_without_timestamp_has_no_completed_at():
    lines, _, _ = run(Message("user", "u", MS), Message("assistant", "a", None))
    assert lines[-1]["payload"] == {"type": "task_complete", "turn_id": "external-import-turn-1",
                                    "last_agent_message": None, "started_at": S0}


def test_line_timestamps_are_source_times_and_monotone():
    lines, _, _ = run(Message("user", "u", MS + 5000), Message("assistant", "a", MS + 1234),
                      Message("assistant", "b", None), Message("user", "v", MS + 9876))
    stamps = [ln["timestamp"] for ln in lines]
    assert stamps[0] == "2026-06-03T12:00:05.000Z"
    assert stamps[-1] == "2026-06-03T12:00:09.876Z"
    assert stamps == sorted(stamps)


def test_texts_verbatim_and_json_escaping_like_serde():
    text = '  "q" \\ \x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f é ☕ \u2028 '
    _, _, out = run(Message("user", text, MS))
    first_user = out.split(b"\n")[1]
    assert first_user == ('{"timestamp":"2026-06-03T12:00:00.000Z","type":"event_msg","payload":{"type":"user_message",'
                          '"message":"  \\"q\\" \\\\ \\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\x7f é ☕ \u2028 ",'
                          '"local_images":[],"local_audio":[],"text_elements":[]}}').encode()


def test_render_is_pure_and_resumable():
    msgs = [Message("user", "u1", MS), Message("assistant", "a1", MS + 1), Message("user", "u2", MS + 2),
            Message("assistant", "a2", MS + 3)]
    whole, s_whole = render(ThreadState(), msgs)
    s0 = ThreadState()
    b1, s1 = render(s0, msgs[:3])
    assert s0 == ThreadState()
    s1 = msgspec.msgpack.decode(msgspec.msgpack.encode(s1), type=ThreadState)
    b2, s2 = render(s1, msgs[3:])
    assert b1 + b2 == whole and s2 == s_whole


def test_fallback_title_tracked():
    _, st, _ = run(Message("user", "<command-name>/clear</command-name>", MS), Message("user", "  \n Real title \n", MS),
                   Message("user", "later", MS))
    assert st.fallback_title == "Real title" and st.saw_user


def test_session_meta_line_shape():
    meta = L.SessionMeta(id="i", session_id="i", timestamp="2026-06-03T12:00:00.000Z", cwd="/r", originator="o",
                         cli_version="0.169.0", source="cli", model_provider="openai")
    assert L.encode(MS, "session_meta", meta) == (
        b'{"timestamp":"2026-06-03T12:00:00.000Z","type":"session_meta","payload":{"id":"i","session_id":"i",'
        b'"timestamp":"2026-06-03T12:00:00.000Z","cwd":"/r","originator":"o","cli_version":"0.169.0","source":"cli",'
        b'"model_provider":"openai","history_mode":"legacy"}}\n')
    meta = msgspec.structs.replace(meta, git=L.GitInfo(commit_hash="abc", branch=None, repository_url="u"))
    assert L.encode(MS, "session_meta", meta).endswith(b'"history_mode":"legacy","git":{"commit_hash":"abc","repository_url":"u"}}}\n')


@pytest.mark.parametrize("ms,iso", [(0, "1970-01-01T00:00:00.000Z"), (MS + 7, "2026-06-03T12:00:00.007Z"),
                                    (MS + 999, "2026-06-03T12:00:00.999Z"), (MS - 1, "2026-06-03T11:59:59.999Z")])
def test_iso_ms(ms, iso):
    assert L.iso_ms(ms) == iso


# ---------------------------------------------------------------- parity with the real binary's output


def _golden_cases():
    for src in sorted((GOLDEN / "sources").glob("*/*.jsonl")):
        yield pytest.param(src.parent.name, src.stem, id=f"{src.parent.name}-{src.stem}")


@pytest.mark.parametrize("agent,name", list(_golden_cases()))
def test_golden_rollout_bodies(agent: str, name: str):
    """Our body + closing lines equal Codex 0.169's rollout after session_meta (timestamps masked)."""
    import sys
    sys.path.insert(0, str(GOLDEN))
    try:
        from mask import mask_rollout
    finally:
        sys.path.remove(str(GOLDEN))
    cwd = "/tmp/golden-cwd"
    data = (GOLDEN / "sources" / agent / f"{name}.jsonl").read_bytes().replace(b"__CWD__", cwd.encode())
    source = CLAUDE if agent == "claude" else CURSOR
    body, state = fold(source, FoldState(), data, ParseContext(mtime_ms=1_780_488_000_000))
    ours = mask_rollout(body + closing(state.thread), cwd)
    golden = (GOLDEN / "codex" / f"{agent}-{name}.jsonl").read_text("utf-8").splitlines()[1:]
    assert ours == golden
