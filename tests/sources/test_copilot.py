"""GitHub Copilot CLI source: events → messages, session state, glued lines, workspace.yaml, discovery."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sources.base import Identity, ParseContext
from daemon.sources.copilot import (SOURCE, CopilotState, decode_events, line_messages, one_message,
                                    workspace_value)
from daemon.transcript import Message as Msg, Reasoning, Text, ToolCall, ToolResult
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
    assert SOURCE.default_roots({"HOME": "/h"}) == [Path("/h/.copilot")]
    assert SOURCE.default_roots({"HOME": "/h", "COPILOT_HOME": "/elsewhere"}) == [Path("/elsewhere")]
    assert SOURCE.default_roots({"HOME": "/h", "COPILOT_HOME": ""}) == [Path("/h/.copilot")]
    assert SOURCE.default_roots({"HOME": "/h", "COPILOT_HOME": "~/x"}) == [Path("~/x")]  # not ~-expanded


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
    ("history-session-state/abc.json", None),
    ("events.jsonl", None),
    ("other/abc/events.jsonl", None),
    ("logs/session.jsonl", None),
])
def test_identify(rel, sid):
    root = Path("/h/.copilot")
    ident = SOURCE.identify(root, root / rel)
    assert (ident.session_id if ident else None) == sid
    if ident is not None:
        log = root / rel if rel.endswith(".jsonl") else (root / rel).parent / "events.jsonl"
        assert ident == Identity("copilot", sid, log)


def test_watch_sees_the_events_files_and_renames():
    assert SOURCE.watch.wants("events.jsonl") and SOURCE.watch.wants("abc.jsonl")
    assert SOURCE.watch.wants("workspace.yaml") and not SOURCE.watch.wants("session.db")
    assert SOURCE.watch.depth == 2


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
