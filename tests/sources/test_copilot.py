"""GitHub Copilot CLI source: events → messages, session state, glued lines, workspace.yaml, discovery."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sources import default_roots
from daemon.sources.base import Identity, Incomplete, ParseContext, shape_of
from daemon.sources.copilot import (SOURCE, CopilotState, decode_events, legacy_message, line_messages, one_message,
                                    parse_legacy, typed_text, workspace_value)
from daemon.transcript import Image, Message as Msg, Reasoning, Text, ToolCall, ToolResult
from message_view import View as Message, view

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "copilot" / "home" / ".copilot"
CTX = ParseContext(mtime_ms=1_780_488_000_000)
T0 = "2026-08-05T20:40:13.490Z"
T0_MS = 1_785_962_413_490
SID_A = "049410b4-c1df-44ee-87a5-caa1c349091e"
SID_B = "8b23eac7-b9d0-4c24-8e3c-90f5f8a8d02b"
SID_C = "e317ef84-75eb-4afe-a1c6-0bd44c47f978"
SID_FLAT = "f27af309-ccf3-41da-8f07-b3dcbffd4c90"
SID_BOTH = "5a5a5a5a-0000-4000-8000-00000000000e"


def ev(kind: str, data: object = None, **extra) -> dict:
    e = {"type": kind, "data": {} if data is None else data, "id": "e1", "timestamp": T0, "parentId": None}
    e.update(extra)
    return e


def enc(obj: object) -> bytes:
    if isinstance(obj, bytes):
        return obj
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def parse(*objs: object, state: CopilotState | None = None) -> tuple[list[Message], CopilotState]:
    s = state or CopilotState()
    out = [m for o in objs if (m := view(SOURCE.parse_line(s, memoryview(enc(o)), CTX))) is not None]
    return out, s


def one(obj: object) -> Message | None:
    msgs, _ = parse(obj)
    return msgs[0] if msgs else None


def parse_file(path: Path) -> tuple[list[Message], CopilotState]:
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    return parse(*lines)


# ---------------------------------------------------------------- conversation events


def test_user_message_is_content_never_transformed_content():
    m = one(ev("user.message", {"content": "  Fix the naïve café bug ☕ ", "attachments": [],
                                "transformedContent": "<current_datetime>x</current_datetime>\n\nFix"}))
    assert m == Message("user", "  Fix the naïve café bug ☕ ", T0_MS)
    assert one(ev("user.message", {"transformedContent": "only the wrapped copy"})) is None


def test_assistant_text_tool_requests_and_reasoning():
    m = SOURCE.parse_line(CopilotState(), enc(ev("assistant.message", {
        "messageId": "m", "content": "Reading it.", "reasoningText": "think",
        "toolRequests": [{"toolCallId": "c1", "name": "view", "arguments": {"path": "a.py"}, "type": "function"},
                         {"toolCallId": "c2", "name": "bash", "arguments": {"command": "ls"}}]})), CTX)
    assert m.role == "assistant"
    assert m.parts == (Reasoning("think"), Text("Reading it."), ToolCall("view", {"path": "a.py"}),
                       ToolCall("bash", {"command": "ls"}))
    assert view(m).text == ("Reading it.\n\n[external_agent_tool_call: view]\ninput: {\"path\":\"a.py\"}\n"
                            "[/external_agent_tool_call]\n\n[external_agent_tool_call: bash]\ncommand: ls\n"
                            "[/external_agent_tool_call]")


def test_empty_assistant_content_is_skipped_but_its_tool_calls_kept():
    m = SOURCE.parse_line(CopilotState(), enc(ev("assistant.message", {
        "content": "", "toolRequests": [{"name": "grep", "arguments": {"pattern": "x"}}]})), CTX)
    assert m.parts == (ToolCall("grep", {"pattern": "x"}),)


@pytest.mark.parametrize("req, call", [
    ({"name": "grep", "arguments": "{\"pattern\":\"TODO\"}"}, ToolCall("grep", {"pattern": "TODO"})),
    ({"name": "grep", "arguments": "not json"}, ToolCall("grep", "not json")),
    ({"name": "grep", "arguments": "[1]"}, ToolCall("grep", "[1]")),
    ({"name": "grep"}, ToolCall("grep")),
    ({"name": 7, "arguments": {}}, ToolCall(None, {})),
])
def test_tool_request_shapes(req, call):
    m = SOURCE.parse_line(CopilotState(), enc(ev("assistant.message", {"content": "", "toolRequests": [req]})), CTX)
    assert m.parts == (call,)


@pytest.mark.parametrize("data", [
    {"content": ""}, {"content": "", "toolRequests": []}, {"content": None, "toolRequests": "x"},
    {"content": "", "reasoningText": "only reasoning", "toolRequests": []}, {"content": 5},
    {"content": "", "toolRequests": [1, "x", None]},
])
def test_assistant_without_anything_shown_is_dropped(data):
    assert one(ev("assistant.message", data)) is None


@pytest.mark.parametrize("data, result", [
    ({"toolCallId": "c", "success": True, "result": {"content": "out", "detailedContent": "long"}},
     ToolResult("out", False)),
    ({"toolCallId": "c", "success": False, "error": {"message": "\"path\": Required", "code": "failure"}},
     ToolResult("\"path\": Required", True)),
    ({"success": False, "result": {"content": "partial"}, "error": {"message": "boom"}}, ToolResult("partial", True)),
    ({"success": True, "result": "plain string"}, ToolResult("plain string", False)),
    ({"success": True}, ToolResult("", False)),
    ({"error": {"message": "no success flag"}}, ToolResult("no success flag", True)),
    ({"error": "a string error"}, ToolResult("a string error", True)),
    ({"result": {"content": "no success flag"}}, ToolResult("no success flag", False)),
    ({"success": "yes", "result": {"content": 3}}, ToolResult("", False)),
])
def test_tool_execution_complete_is_a_tool_result_message(data, result):
    m = SOURCE.parse_line(CopilotState(), enc(ev("tool.execution_complete", data)), CTX)
    assert m == Msg("user", (result,), T0_MS)
    assert view(m).role == "assistant"  # the renderer shows tools talking on the assistant side


@pytest.mark.parametrize("obj", [
    ev("system.message", {"role": "system", "content": "You are the GitHub Copilot CLI"}),
    ev("session.start", {"context": {"cwd": "/w"}}), ev("session.resume", {}), ev("session.shutdown", {}),
    ev("session.model_change", {"newModel": "x"}), ev("session.info", {"message": "x"}),
    ev("session.task_complete", {"summary": "done"}), ev("session.compaction_complete", {"summaryContent": "s"}),
    ev("session.usage_record", {}), ev("hook.start", {"content": "x"}), ev("hook.end", {}),
    ev("assistant.turn_start", {"turnId": "0"}), ev("assistant.turn_end", {"turnId": "0"}),
    ev("assistant.reasoning", {"content": "thinking"}, ephemeral=True),
    ev("tool.execution_start", {"toolCallId": "c", "toolName": "view", "arguments": {}}),
    ev("subagent.started", {"toolCallId": "t"}), ev("subagent.completed", {}), ev("skill.invoked", {}),
    ev("abort", {"reason": "user"}),
])
def test_known_non_conversation_events_skipped_not_counted(obj):
    msgs, s = parse(obj)
    assert msgs == [] and s.unknown == 0 and s.malformed == 0


@pytest.mark.parametrize("obj", [
    ev("assistant.future_thing", {"content": "x"}), ev("User.Message", {"content": "case matters"}),
    {"type": 7, "data": {}}, {"data": {"content": "no type"}},
])
def test_unknown_types_counted(obj):
    msgs, s = parse(obj)
    assert msgs == [] and s.unknown == 1


@pytest.mark.parametrize("obj", [
    ev("assistant.message", {"content": "from a sub-agent", "parentToolCallId": "task-1"}),
    ev("tool.execution_complete", {"success": True, "result": {"content": "x"}, "parentToolCallId": "task-1"}),
    ev("tool.execution_start", {"toolName": "view", "parentToolCallId": "task-1"}),
    ev("user.message", {"content": "hand-off"}, agentId="sub-1"),
    ev("assistant.message", {"content": "also sub", "agentId": "sub-1"}),
])
def test_sub_agent_events_kept_out(obj):
    msgs, s = parse(obj)
    assert msgs == [] and s.subagent == 1


def test_empty_sub_agent_markers_do_not_count():
    assert one(ev("assistant.message", {"content": "main", "parentToolCallId": ""}, agentId=None)) is not None
    assert one(ev("assistant.message", {"content": "main", "parentToolCallId": None, "agentId": ""})) is not None


@pytest.mark.parametrize("source, kept", [
    (None, True), ("user", True), ("command-review", True), ("schedule-nightly", True), (7, True),
    ("system", False), ("skill-python", False), ("agent-explore", False),
])
def test_user_messages_copilot_sent_on_the_users_behalf(source, kept):
    data = {"content": "text"} if source is None else {"content": "text", "source": source}
    assert (one(ev("user.message", data)) is not None) is kept


@pytest.mark.parametrize("data", [{"content": ""}, {"content": " \n\t"}, {"content": None}, {"content": ["x"]},
                                  {}])
def test_blank_or_odd_user_content_dropped(data):
    assert one(ev("user.message", data)) is None


@pytest.mark.parametrize("line", [b"NOT JSON", b"[1, 2]", b'"string"', b"{", b'{"type":"user.message","data":[1]}',
                                  b'{"type":"user.message","data":"x"}'])
def test_malformed_lines_counted(line):
    msgs, s = parse(line)
    assert msgs == [] and s.malformed == 1 and s.unknown == 0


def test_null_or_missing_data():
    msgs, s = parse({"type": "user.message", "data": None}, {"type": "assistant.message"},
                    {"type": "tool.execution_complete"})
    assert msgs == [] and s.malformed == 0


def test_raw_line_separators_inside_a_line_are_text():
    # copilot-cli#2012: raw U+2028/U+2029 inside strings (valid JSON; only \n ends a line)
    text = "a\u2028b\u2029c"
    assert one(ev("user.message", {"content": text})).text == text


def test_timestamps_and_missing_ones():
    assert one(ev("user.message", {"content": "x"}, timestamp="2026-08-05T20:40:13+02:00")).ts_ms == T0_MS - 490 - 7_200_000
    assert one(ev("user.message", {"content": "x"}, timestamp="yesterday")).ts_ms is None
    assert one(ev("user.message", {"content": "x"}, timestamp=None)).ts_ms is None


# ---------------------------------------------------------------- session state


def test_session_start_gives_cwd_branch_and_start_time():
    _, s = parse(ev("session.start", {"sessionId": "x", "startTime": "2026-08-05T20:40:13.471Z",
                                      "context": {"cwd": "/work", "gitRoot": "/work", "branch": "master"}}),
                 ev("user.message", {"content": "x"}, timestamp="2026-08-05T20:50:00Z"))
    assert (s.cwd, s.git_branch, s.start_ms) == ("/work", "master", T0_MS - 19)


def test_start_falls_back_to_the_first_event_timestamp():
    _, s = parse(ev("session.start", {"context": {}}, timestamp="2026-08-05T20:40:13.490Z"),
                 ev("user.message", {"content": "x"}, timestamp="2026-08-05T20:50:00Z"))
    assert s.start_ms == T0_MS and s.cwd is None and s.git_branch is None
    _, s = parse(ev("user.message", {"content": "x"}, timestamp="bad"),
                 ev("session.model_change", {}, timestamp="2026-08-05T20:40:13.490Z"))
    assert s.start_ms == T0_MS


def test_first_cwd_and_branch_win_detached_head_is_no_branch():
    _, s = parse(ev("session.start", {"context": {"cwd": "", "branch": "HEAD"}}),
                 ev("session.start", {"context": {"cwd": "/second", "branch": "dev"}}),
                 ev("session.start", {"context": {"cwd": "/third", "branch": "main"}}))
    assert (s.cwd, s.git_branch) == ("/second", "dev")
    _, s = parse(ev("session.start", {"context": "not an object", "startTime": 5}))
    assert s.cwd is None and s.start_ms == T0_MS


def test_state_round_trips_through_msgpack():
    import msgspec

    _, s = parse(*[ln for ln in (FIXTURES / "session-state" / SID_B / "events.jsonl").read_bytes().split(b"\n")
                   if ln.strip()])
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=CopilotState)
    assert again == s and again.subagent == 5 and again.glued == 2


# ---------------------------------------------------------------- glued lines (copilot-cli#4098)

USER = ev("user.message", {"content": "Fix it, and keep the backoff."}, id="u2")
ASSIST = ev("assistant.message", {"content": "Done.", "toolRequests": [{"name": "t", "arguments": {"type": "x"}}]})
RESULT = ev("tool.execution_complete", {"success": True, "result": {"content": "ok"}})


def test_truncated_prefix_glued_to_a_whole_event():
    line = enc(ASSIST)[:40] + enc(USER)
    msgs, s = parse(line)
    assert msgs == [Message("user", "Fix it, and keep the backoff.", T0_MS)]
    assert (s.malformed, s.glued, s.glued_lost) == (1, 1, 0)


def test_two_whole_events_glued_with_a_nested_type_key():
    # `{"type":` also starts a nested object inside ASSIST's tool arguments: not a cut
    msgs, s = parse(enc(ev("assistant.turn_start", {"turnId": "1"})) + enc(ASSIST))
    assert [m.text for m in msgs] == [view(SOURCE.parse_line(CopilotState(), enc(ASSIST), CTX)).text]
    assert (s.malformed, s.glued, s.glued_lost) == (0, 1, 0)


def test_glued_messages_of_one_kind_are_joined_of_two_kinds_the_rest_counted():
    s = CopilotState()
    m = SOURCE.parse_line(s, enc(ASSIST) + enc(ev("assistant.message", {"content": "More."})), CTX)
    assert m.role == "assistant" and m.parts[0] == Text("Done.") and m.parts[-1] == Text("More.")
    assert s.glued_lost == 0
    m = SOURCE.parse_line(s, enc(ASSIST) + enc(RESULT) + enc(USER), CTX)
    assert m.role == "assistant" and view(m).text.startswith("Done.")
    assert s.glued_lost == 2 and s.glued == 2
    assert [view(x).role for x in line_messages(CopilotState(), enc(ASSIST) + enc(RESULT) + enc(USER))] == \
        ["assistant", "assistant", "user"]  # all three are read; only parse_line's one-message limit loses two


def test_glued_pieces_in_the_middle_and_at_the_end():
    events, bad = decode_events(enc(USER) + b'{"type":"assistant.mess' + enc(RESULT) + b'{"type":"x"')
    assert [e.type for e in events] == ["user.message", "tool.execution_complete"] and bad == 2
    events, bad = decode_events(b'garbage' + b'{"type":"junk' + b'{"type":"more junk')
    assert events == [] and bad == 1  # consecutive bad pieces count once
    events, bad = decode_events(b"   " + enc(USER) + b"  ")
    assert len(events) == 1 and bad == 0


def test_a_line_of_many_event_starts_is_bounded():
    line = b'{"type":' * 10_000
    events, bad = decode_events(line)
    assert events == [] and bad == 1


def _event_objs():
    text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=20)
    return st.one_of(
        st.builds(lambda t: ev("user.message", {"content": t}), text),
        st.builds(lambda t: ev("assistant.message", {"content": t, "toolRequests": [
            {"name": "x", "arguments": {"type": t, "nested": [{"type": "y"}]}}]}), text),
        st.builds(lambda t: ev("tool.execution_complete", {"success": True, "result": {"content": t}}), text),
        st.just(ev("assistant.turn_end", {"turnId": "0"})),
        st.just(ev("session.info", {"message": "{\"type\":\"fake\"}"})),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(_event_objs(), min_size=1, max_size=5), st.data())
def test_gluing_whole_events_reads_the_same_events(objs, data):
    """A line of whole events glued together decodes to exactly those events, and a truncated
    prefix before them only adds one malformed piece."""
    separate = [decode_events(enc(o))[0][0] for o in objs]
    events, bad = decode_events(b"".join(enc(o) for o in objs))
    assert events == separate and bad == 0
    cut = data.draw(st.integers(1, len(enc(objs[0])) - 1))
    prefix = enc(objs[0])[:cut]
    events, bad = decode_events(prefix + b"".join(enc(o) for o in objs[1:]))
    if len(objs) > 1:
        assert events[-(len(objs) - 1):] == separate[1:]
        assert bad + len(events) >= len(objs) - 1


# ---------------------------------------------------------------- fixtures, end to end (pure)


def test_fixture_plain_session():
    msgs, s = parse_file(FIXTURES / "session-state" / SID_A / "events.jsonl")
    assert [(m.role, m.text.splitlines()[0]) for m in msgs] == [
        ("user", "In src/orders.py make average_item_price return 0 when the cart has no items."),
        ("assistant", "[external_agent_tool_call: view]"),
        ("assistant", "[external_agent_tool_result: error]"),
        ("assistant", "[external_agent_tool_result]"),
        ("assistant", "average_item_price now returns 0 for an empty cart."),
    ]
    assert "<current_datetime>" not in msgs[0].text
    assert "You are the GitHub Copilot CLI" not in "".join(m.text for m in msgs)
    assert (s.cwd, s.git_branch, s.start_ms) == ("__CWD__/orders", "master", 1_785_962_413_471)
    assert (s.malformed, s.unknown, s.subagent, s.glued) == (0, 0, 0, 0)


def test_fixture_pitfalls_session():
    msgs, s = parse_file(FIXTURES / "session-state" / SID_B / "events.jsonl")
    texts = [m.text for m in msgs]
    assert [m.role for m in msgs] == ["user", "assistant", "assistant", "assistant", "user", "assistant",
                                      "assistant", "assistant"]
    assert texts[0] == "Why does the retry loop drop the last attempt?\u2028Look at client.py."
    assert texts[1].startswith("I'll ask a sub-agent") and "[external_agent_tool_call: task]" in texts[1]
    assert "The loop uses range(retries - 1)" in texts[2]  # the task tool's own result stays
    assert texts[4] == "Fix it, and keep the backoff."  # from the glued line after the resume
    assert texts[5].startswith("[external_agent_tool_call: edit]")  # from the two whole glued events
    assert texts[-1] == "Fixed: the loop now makes every attempt, with the backoff kept."
    joined = "\n".join(texts)
    for gone in ("Reading client.py", "skips the last attempt", "Read client.py", "skill-context",
                 "system_notification", "this event was cut off", "We fixed the retry loop"):
        assert gone not in joined
    assert (s.cwd, s.git_branch, s.start_ms) == ("__CWD__/api", "feature/retry", 1_785_962_489_297)
    assert (s.malformed, s.unknown, s.subagent, s.glued, s.glued_lost) == (2, 1, 5, 2, 0)


def test_fixture_flat_layout_session():
    msgs, s = parse_file(FIXTURES / "session-state" / f"{SID_FLAT}.jsonl")
    assert [(m.role, m.text) for m in msgs] == [("user", "Explain orders.py"),
                                                ("assistant", "It computes cart totals.")]
    assert s.cwd == "__CWD__/orders"


def test_split_anywhere_folds_the_same(tmp_path):
    """The engine hands over one complete line at a time: reading a file line by line in any order of
    calls gives the same messages as reading it in one go (no state leaks between lines)."""
    path = FIXTURES / "session-state" / SID_B / "events.jsonl"
    first, s1 = parse_file(path)
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    s2 = CopilotState()
    half = len(lines) // 2
    a, _ = parse(*lines[:half], state=s2)
    b, _ = parse(*lines[half:], state=s2)
    assert a + b == first and s2 == s1


# ---------------------------------------------------------------- workspace.yaml


@pytest.mark.parametrize("text, want", [
    ("cwd: /a/b\n", "/a/b"),
    ("cwd:   /a/b  \n", "/a/b"),
    ("cwd: /a/b # a comment\n", "/a/b"),
    ("cwd: /a/b#not a comment\n", "/a/b#not a comment"),
    ("cwd: \"/a/with space\" # c\n", "/a/with space"),
    ("cwd: \"/a/\\\"q\\\"\"\n", "/a/\"q\""),
    ("cwd: 'it''s here'\n", "it's here"),
    ("cwd: 'unterminated\n", None),
    ("cwd: \"unterminated\n", None),
    ("cwd:\n", None), ("cwd: ~\n", None), ("cwd: null\n", None), ("cwd: |\n  /a\n", None),
    ("cwd: >-\n  /a\n", None), ("cwd: ''\n", None), ("cwd: \"\"\n", None),
    ("cwdx: /nope\ncwd: /yes\n", "/yes"),
    ("  cwd: /nested\n", None),
    ("cwd:/no-space\n", None),
    ("git_root: /r\r\ncwd: /crlf\r\n", "/crlf"),
    ("id: x\nname: first\ncwd: /a\n", "/a"),
    ("", None),
])
def test_workspace_value(text, want):
    assert workspace_value(text, "cwd") == want


def test_workspace_name_of_the_fixtures():
    text = (FIXTURES / "session-state" / SID_B / "workspace.yaml").read_text()
    assert workspace_value(text, "name") == "Retry loop: don't drop the last attempt"
    text = (FIXTURES / "session-state" / SID_A / "workspace.yaml").read_text()
    assert workspace_value(text, "name") == "In src/orders.py make average_item_price return 0 when the cart has no items."


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / ".copilot"
    shutil.copytree(FIXTURES, root)
    for p in root.rglob("*"):
        if p.is_file() and p.suffix in (".jsonl", ".yaml"):
            p.write_text(p.read_text(encoding="utf-8").replace("__CWD__", str(tmp_path / "repos")), encoding="utf-8")
    return root


def test_fallback_cwd_reads_workspace_yaml(tmp_path):
    root = _tree(tmp_path)
    ident = SOURCE.identify(root, root / "session-state" / SID_C / "events.jsonl")
    assert SOURCE.fallback_cwd(ident) == str(tmp_path / "repos" / "todo app")
    msgs, s = parse_file(ident.path)
    assert s.cwd is None and len(msgs) == 4  # the records carry no cwd: the engine asks fallback_cwd
    flat = SOURCE.identify(root, root / "session-state" / f"{SID_FLAT}.jsonl")
    assert SOURCE.fallback_cwd(flat) is None  # no folder, no workspace.yaml
    (root / "session-state" / SID_FLAT).mkdir()
    (root / "session-state" / SID_FLAT / "workspace.yaml").write_text("cwd: /flat/home\n")
    assert SOURCE.fallback_cwd(flat) == "/flat/home"
    (root / "session-state" / SID_FLAT / "workspace.yaml").write_text("cwd: relative/path\n")
    assert SOURCE.fallback_cwd(flat) is None
    (root / "session-state" / SID_FLAT / "workspace.yaml").write_bytes(b"cwd: /bad\xff/bytes\n")
    assert SOURCE.fallback_cwd(flat) == "/bad\ufffd/bytes"


# ---------------------------------------------------------------- roots, discovery, identify


def test_default_roots_honour_copilot_home():
    assert default_roots("copilot", {"HOME": "/h"}) == [Path("/h/.copilot")]
    assert default_roots("copilot", {"HOME": "/h", "COPILOT_HOME": "/elsewhere"}) == [Path("/elsewhere")]
    assert default_roots("copilot", {"HOME": "/h", "COPILOT_HOME": ""}) == [Path("/h/.copilot")]
    assert default_roots("copilot", {"HOME": "/h", "COPILOT_HOME": "~/x"}) == [Path("~/x")]  # not ~-expanded


def test_discover_both_layouts_once_per_session_id(tmp_path):
    root = _tree(tmp_path)
    state = root / "session-state"
    (state / "no-events-yet").mkdir()
    (state / ".hidden").mkdir()
    (state / ".hidden" / "events.jsonl").write_text("{}\n")
    (state / "notes.txt").write_text("x")
    (state / SID_A / "files" / "events.jsonl").write_text("{}\n")  # too deep: not a session
    found = list(SOURCE.discover(root))
    assert [(i.session_id, i.path.relative_to(state).as_posix()) for i in found] == [
        (SID_A, f"{SID_A}/events.jsonl"),
        (SID_BOTH, f"{SID_BOTH}/events.jsonl"),  # the folder wins over the flat copy of the same id
        (SID_B, f"{SID_B}/events.jsonl"),
        (SID_C, f"{SID_C}/events.jsonl"),
        (SID_FLAT, f"{SID_FLAT}.jsonl"),
    ]
    assert all(i.kind == "copilot" for i in found)
    assert all(SOURCE.identify(root, i.path) == i for i in found)
    # a write to the flat copy is no second source for the id (the daemon would sync it onto the same
    # thread in turn with the folder's): identify agrees with discovery, the folder wins
    assert SOURCE.identify(root, state / f"{SID_BOTH}.jsonl") is None
    assert list(SOURCE.discover(tmp_path / "missing")) == []
    assert SOURCE.version(found[0]).size == found[0].path.stat().st_size


@pytest.mark.parametrize("rel, sid", [
    ("session-state/abc/events.jsonl", "abc"),
    ("session-state/abc.jsonl", "abc"),
    ("session-state/abc/workspace.yaml", "abc"),  # a rename: the session beside it
    ("session-state/abc/other.jsonl", None),
    ("session-state/abc/files/events.jsonl", None),
    ("session-state/.x/events.jsonl", None),
    ("session-state/.x.jsonl", None),
    ("history-session-state/abc.json", "abc"),  # legacy: the file itself (a snapshot)
    ("history-session-state/.abc.json", None),
    ("history-session-state/sub/abc.json", None),
    ("history-session-state/abc.jsonl", None),
    ("config.json", None),  # the other .json files under ~/.copilot are no sessions
    ("mcp-config.json", None),
    ("session-state/abc/checkpoints/index.json", None),
    ("session-state/abc.json", None),
    ("events.jsonl", None),
    ("other/abc/events.jsonl", None),
    ("logs/session.jsonl", None),
])
def test_identify(rel, sid):
    root = Path("/h/.copilot")
    ident = SOURCE.identify(root, root / rel)
    assert (ident.session_id if ident else None) == sid
    if ident is not None:
        log = root / rel if rel.endswith((".jsonl", ".json")) else (root / rel).parent / "events.jsonl"
        assert ident == Identity("copilot", sid, log)
        assert SOURCE.shape_of(ident) == ("snapshot" if rel.endswith(".json") else "log")
        assert shape_of(SOURCE, ident) == SOURCE.shape_of(ident)


def test_watch_sees_the_events_files_renames_and_legacy_files():
    assert SOURCE.watch.wants("events.jsonl") and SOURCE.watch.wants("abc.jsonl")
    assert SOURCE.watch.wants("workspace.yaml") and not SOURCE.watch.wants("session.db")
    assert SOURCE.watch.wants("3c1f0d6e-9a2b-4e57-b8c4-2f6a0e9d1b7a.json")  # history-session-state/<id>.json
    assert SOURCE.watch.depth == 2  # history-session-state/<id>.json is one folder down, events.jsonl two


# ---------------------------------------------------------------- legacy history-session-state/<id>.json

LEGACY_FIXTURES = FIXTURES.parent.parent / "legacy"
SID_LEGACY = "3c1f0d6e-9a2b-4e57-b8c4-2f6a0e9d1b7a"


def install_legacy(root: Path, cwd: str = "/w") -> Path:
    """The legacy fixture files in `root/history-session-state/`, `__CWD__` replaced."""
    for src in (LEGACY_FIXTURES / "history-session-state").glob("*.json"):
        dst = root / "history-session-state" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(src.read_text(encoding="utf-8").replace("__CWD__", cwd), encoding="utf-8")
    return root / "history-session-state"


def read_legacy(root: Path, sid: str) -> tuple[list[Message], CopilotState]:
    snap = SOURCE.read_snapshot(Identity("copilot", sid, root / "history-session-state" / f"{sid}.json"), CTX)
    assert isinstance(snap.state, CopilotState)
    return [view(m) for m in snap.messages], snap.state


def test_legacy_session_reads_chat_messages_with_tools_cwd_from_the_system_prompt(tmp_path):
    install_legacy(tmp_path, "/home/u/work")
    msgs, state = read_legacy(tmp_path, SID_LEGACY)
    assert msgs == [
        Message("user", "Why does test_totals fail on an empty cart?", None),  # <current_datetime> cut
        Message("assistant", "Let me run it.\n\n[external_agent_tool_call: bash]\ndescription: Run the failing "
                "test\ncommand: pytest -q tests/test_totals.py\n[/external_agent_tool_call]", None),
        Message("assistant", "[external_agent_tool_result]\nF\n1 failed: ZeroDivisionError: division by zero\n"
                "[/external_agent_tool_result]", None),
        Message("assistant", "[external_agent_tool_call: str_replace_editor]\ncommand: view\n"
                "[/external_agent_tool_call]", None),  # Codex's note for a `command` input
        Message("assistant", "[external_agent_tool_result]\n1. def total(cart):\n2.     return sum(cart) / "
                "len(cart)\n[/external_agent_tool_result]", None),
        Message("assistant", "total() divides by len(cart), which is 0 for an empty cart.", None),
        Message("user", "Fix it, please.", None),  # the <reminder> part dropped
        Message("assistant", "Fixed: an empty cart now totals 0.", None),
    ]
    assert not any("GitHub Copilot CLI" in m.text for m in msgs)  # the system prompt is no message
    assert (state.cwd, state.start_ms, state.custom_title) == ("/home/u/work/orders", 1759240931250, None)
    assert (state.malformed, state.unknown, state.shadowed) == (0, 0, False)
    assert SOURCE.fallback_cwd(Identity("copilot", SID_LEGACY, tmp_path / "x" / f"{SID_LEGACY}.json")) is None


@pytest.mark.parametrize("text, typed", [
    ("<current_datetime>2025-09-30T14:02:11Z</current_datetime>\n\nhi", "hi"),
    ("hi\n\n<system_reminder>x</system_reminder>", "hi"),
    ("<current_datetime>t</current_datetime>\nhi\n<reminder>a</reminder>\n<reminder>b</reminder>", "hi"),
    ("hi <reminder>x</reminder> and <reminder>y</reminder>", "hi <reminder>x</reminder> and"),  # one block
    ("  as typed <b>bold</b>  ", "  as typed <b>bold</b>  "),  # nothing to cut: verbatim
    ("a </reminder>", "a </reminder>"),
])
def test_typed_text_cuts_only_copilots_wrappers(text, typed):
    assert typed_text(text) == typed


def test_legacy_message_shapes_are_read_or_counted():
    s = CopilotState()
    assert legacy_message(s, {"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64,AAAA"}}]}) == Msg("user", (Image("image/png"),))
    assert legacy_message(s, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "view", "arguments": "not json"}},
        {"function": {"name": "grep", "arguments": {"pattern": "x"}}}, 7]}) == Msg("assistant", (
            ToolCall("view", "not json"), ToolCall("grep", {"pattern": "x"})))
    assert s.malformed == 1  # the 7
    assert legacy_message(s, {"role": "tool", "content": None}) == Msg("user", (ToolResult(""),))
    assert legacy_message(s, {"role": "user", "content": "   "}) is None
    assert legacy_message(s, {"role": "developer", "content": "x"}) is None and s.unknown == 1
    assert legacy_message(s, {"role": "user", "content": [{"type": "audio"}]}) is None and s.unknown == 2
    assert legacy_message(s, "nope") is None and s.malformed == 2
    assert legacy_message(s, {"role": "system", "content": "* Current working directory: relative/x"}) is None
    assert s.cwd is None  # only an absolute path is a cwd


@pytest.mark.parametrize("data", [b"[1, 2]", b'"x"', b"[" * 3000 + b"]" * 3000,
                                  b'{"chatMessages": ' + b"[" * 3000 + b"]" * 3000 + b"}",
                                  b'{"chatMessages": 3, "startTime": 5}'])
def test_legacy_document_of_another_shape_reads_empty(data):
    state, messages = parse_legacy(data)
    assert messages == [] and state.start_ms is None


def test_discover_lists_legacy_sessions_and_the_new_copy_wins(tmp_path):
    root = tmp_path / ".copilot"
    shutil.copytree(FIXTURES, root)
    legacy = install_legacy(root)
    (legacy / ".hidden.json").write_text("{}")
    (legacy / "notes.txt").write_text("x")
    (legacy / "folder.json").mkdir()
    found = list(SOURCE.discover(root))
    legacy_found = [i for i in found if i.path.parent == legacy]
    assert legacy_found == [Identity("copilot", SID_LEGACY, legacy / f"{SID_LEGACY}.json")]  # not SID_A's copy
    assert [i.path for i in found if i.session_id == SID_A] == [root / "session-state" / SID_A / "events.jsonl"]
    assert len({i.session_id for i in found}) == len(found)
    assert SOURCE.version(legacy_found[0]).size == legacy_found[0].path.stat().st_size


def test_legacy_copy_of_a_migrated_session_reads_empty(tmp_path):
    root = tmp_path / ".copilot"
    shutil.copytree(FIXTURES, root)
    install_legacy(root)
    msgs, state = read_legacy(root, SID_A)  # session-state/<SID_A>/events.jsonl exists: it is the session
    assert msgs == [] and state.shadowed
    (root / "session-state" / SID_A / "events.jsonl").unlink()
    msgs, state = read_legacy(root, SID_A)  # the new copy gone: the legacy one is read again
    assert [m.text for m in msgs] == ["The legacy copy's question, before Copilot migrated this session.",
                                      "The legacy copy's answer."] and not state.shadowed


def test_legacy_file_caught_mid_rewrite_is_incomplete_then_skipped_once_old(tmp_path):
    path = install_legacy(tmp_path) / f"{SID_LEGACY}.json"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # rewritten in place, not atomically: half of it so far
    with pytest.raises(Incomplete):
        read_legacy(tmp_path, SID_LEGACY)
    old = time.time() - 3600
    os.utime(path, (old, old))  # still half a document an hour later: corrupt, not being written
    msgs, state = read_legacy(tmp_path, SID_LEGACY)
    assert msgs == [] and state.malformed == 1
    path.write_bytes(whole)
    assert len(read_legacy(tmp_path, SID_LEGACY)[0]) == 8


def test_bench_generator_writes_legacy_files_the_parser_reads(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.agents import copilot as gen

    path = gen.write_legacy_session(tmp_path, "/w", "s-2", [("first", "one"), ("second", "two")])
    assert SOURCE.identify(tmp_path, path) == Identity("copilot", "s-2", path)
    msgs, s = read_legacy(tmp_path, "s-2")
    assert [(m.role, m.text) for m in msgs if not m.text.startswith("[external")] == [
        ("user", "first"), ("assistant", "one"), ("user", "second"), ("assistant", "two")]
    assert sum(m.text.startswith("[external_agent_tool_call: bash]") for m in msgs) == 1
    assert (s.cwd, s.malformed, s.unknown) == ("/w", 0, 0)


def test_one_message_joins_same_side_only():
    s = CopilotState()
    u = Msg("user", (Text("a"),), 1)
    r = Msg("user", (ToolResult("x"),), 2)
    assert one_message(s, []) is None and one_message(s, [u]) is u
    assert one_message(s, [u, Msg("user", (Text("b"),), 3)]) == Msg("user", (Text("a"), Text("b")), 1)
    assert one_message(s, [r, u]) == r and s.glued_lost == 1


def test_bench_generator_writes_what_the_parser_reads(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.agents import copilot as gen

    path = gen.write_session(tmp_path, "/w", "s-1", [("first", "one"), ("second", "two")], title="T")
    gen.append_turn(tmp_path, "s-1", "third", "three", resume=True, tool=True)
    msgs, s = parse_file(path)
    assert [(m.role, m.text) for m in msgs if not m.text.startswith("[external")] == [
        ("user", "first"), ("assistant", "one"), ("user", "second"), ("assistant", "two"),
        ("user", "third"), ("assistant", "three")]
    assert sum(m.text.startswith("[external_agent_tool_call: bash]") for m in msgs) == 2
    assert (s.cwd, s.git_branch, s.malformed, s.unknown) == ("/w", "main", 0, 0)
    assert workspace_value((path.parent / "workspace.yaml").read_text(), "name") == "T"
