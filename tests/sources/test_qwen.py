"""Qwen Code source: ChatRecord trees → the visible branch's messages, session state, discovery.

Fixtures under tests/fixtures/qwen/projects/-work-demo/chats/ are hand-written the way Qwen Code's
ChatRecordingService writes them (compact JSON per line, uuid/parentUuid tree, Gemini `message.parts`)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from daemon.sources import default_roots
from daemon.sources.base import ParseContext
from daemon.sources.qwen import (SOURCE, QwenState, Record, gemini_parts, parse_session, read_records,
                                 visible_branch)
from daemon.transcript import Image, Reasoning, Text, ToolCall, ToolResult, Unsupported
from message_view import View as Message, view

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from bench.agents import qwen as gen  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "qwen" / "projects"
CHATS = FIXTURES / "-work-demo" / "chats"
BASIC = CHATS / "5f0c7a52-8f0e-4a5b-9c1d-2e3f4a5b6c7d.jsonl"
REWIND = CHATS / "7a1b2c3d-0000-4e00-8f00-aaaaaaaaaaaa.jsonl"
REWIND_TO_START = CHATS / "8b2c3d4e-0000-4e00-8f00-bbbbbbbbbbbb.jsonl"
REWIND_LAST = CHATS / "9c3d4e5f-0000-4e00-8f00-cccccccccccc.jsonl"
MESSY = CHATS / "b5e6f7a8-0000-4e00-8f00-eeeeeeeeeeee.jsonl"
ARCHIVED = CHATS / "archive" / "a4d5e6f7-0000-4e00-8f00-dddddddddddd.jsonl"
CTX = ParseContext(mtime_ms=0)


def views(path: Path) -> tuple[list[Message], QwenState]:
    state, msgs = parse_session(path.read_bytes())
    return [view(m) for m in msgs], state


def texts(path: Path) -> list[tuple[str, str | None]]:
    return [(m.role, m.text) for m in views(path)[0]]


def ms(iso: str) -> int:
    from daemon.sources.base import rfc3339_ms
    return rfc3339_ms(iso)


def line(**fields) -> bytes:
    base = {"uuid": "u1", "parentUuid": None, "sessionId": "s", "timestamp": "2026-06-03T12:00:00.000Z",
            "type": "user", "cwd": "/w", "version": "0.22.1", "message": {"role": "user", "parts": [{"text": "hi"}]}}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode() + b"\n"


def chain(*recs: dict) -> bytes:
    return b"".join(line(**r) for r in recs)


# ---------------------------------------------------------------- the fixtures, whole


def test_basic_session():
    msgs, state = views(BASIC)
    assert msgs == [
        Message("user", "Fix the failing test in parser.py", ms("2026-06-03T12:00:01.000Z")),
        Message("assistant", "I'll run the tests first.\n\n[external_agent_tool_call: run_shell_command]\n"
                "description: Run the test suite\ncommand: pytest -q\n[/external_agent_tool_call]",
                ms("2026-06-03T12:00:03.000Z")),
        Message("assistant", "[external_agent_tool_result]\nF.\n1 failed, 1 passed\n[/external_agent_tool_result]",
                ms("2026-06-03T12:00:05.000Z")),
        Message("assistant", '[external_agent_tool_call: read_file]\ninput: {"absolute_path":"/work/demo/parserr.py"}'
                "\n[/external_agent_tool_call]", ms("2026-06-03T12:00:06.000Z")),
        Message("assistant", "[external_agent_tool_result: error]\nFile not found: /work/demo/parserr.py\n"
                "[/external_agent_tool_result]", ms("2026-06-03T12:00:07.000Z")),
        Message("assistant", "The parser is fixed: the off-by-one in `tokenize` is gone.", ms("2026-06-03T12:00:09.000Z")),
        Message("user", "Thanks — naïve café ☕ works now.", ms("2026-06-03T12:01:00.000Z")),
        Message("assistant", "You're welcome.", ms("2026-06-03T12:01:02.000Z")),
    ]
    assert state.cwd == "/work/demo"
    assert state.git_branch == "fix/parser"
    assert state.start_ms == ms("2026-06-03T12:00:00.000Z")
    # the last custom_title record wins; it has no titleSource, so it is the user's (manual) title
    assert (state.custom_title, state.ai_title) == ("Parser fix", None)
    assert (state.malformed, state.unknown) == (0, 0)
    assert state.records == 13 and state.leaf == "b1000000-0000-4000-8000-00000000000d"


def test_tool_result_records_are_user_role_of_only_results():
    _, msgs = parse_session(BASIC.read_bytes())
    results = [m for m in msgs if any(type(p) is ToolResult for p in m.parts)]
    assert [m.role for m in results] == ["user", "user"]
    assert [p.is_error for m in results for p in m.parts] == [False, True]


def test_reasoning_is_kept_as_a_part_but_not_shown():
    _, msgs = parse_session(BASIC.read_bytes())
    assert msgs[1].parts[0] == Reasoning()
    assert "run it first" not in (view(msgs[1]).text or "")


def test_rewind_drops_the_dead_branch():
    assert texts(REWIND) == [("user", "Add a README"), ("assistant", "Added README.md."),
                             ("user", "Add a CONTRIBUTING guide instead"), ("assistant", "Added CONTRIBUTING.md.")]
    _, state = views(REWIND)
    assert state.visible == 5  # u1, a1, the rewind record, u2', a2'
    assert state.records == 7


def test_rewind_to_the_first_turn_reroots_at_null():
    assert texts(REWIND_TO_START) == [("user", "Write a limerick about tests"),
                                      ("assistant", "A tester who worked in the night…")]
    _, state = views(REWIND_TO_START)
    # the start stays the file's first timestamp: a rewind must not move the thread
    assert state.start_ms == ms("2026-06-05T10:00:00.000Z")
    assert state.git_branch is None


def test_rewind_as_the_last_record_shows_only_what_is_kept():
    # the last *conversation record* is the rewind marker (a system record), not the dead assistant reply
    assert texts(REWIND_LAST) == [("user", "Rename foo to bar"), ("assistant", "Renamed in 3 files.")]


def test_messy_session():
    msgs, state = views(MESSY)
    assert [(m.role, m.text) for m in msgs] == [
        ("user", "Explore the repo with a subagent"),
        # two lines with one uuid are fragments of one record: their parts are joined
        ("assistant", "Starting an explorer.\n\nThe explorer found 12 modules."),
        # a mid-turn message is the user talking; a notification is not
        ("user", "focus on the daemon folder"),
        ("assistant", "daemon/ has the engine and the watcher.\n\n[external unsupported block: image]"),
    ]
    all_text = " ".join(m.text or "" for m in msgs)
    for dropped in ("SUBAGENT", "NO UUID", "NOTIFICATION", "PARTIAL"):
        assert dropped not in all_text
    assert state.malformed == 2  # "not json at all" and the record without a uuid
    assert state.unknown == 2  # type "progress" and subtype "some_future_event"


def test_archived_session_reads_like_any_other():
    assert texts(ARCHIVED) == [("user", "What does make bench do?"), ("assistant", "It runs the import benchmarks.")]


# ---------------------------------------------------------------- the branch walk


def test_missing_parent_stops_the_walk():
    data = chain({"uuid": "a", "message": {"parts": [{"text": "lost"}]}},
                 {"uuid": "c", "parentUuid": "gone", "message": {"parts": [{"text": "kept"}]}})
    assert [m.text for m in map(view, parse_session(data)[1])] == ["kept"]


def test_cycle_is_broken():
    data = chain({"uuid": "a", "parentUuid": "b", "message": {"parts": [{"text": "one"}]}},
                 {"uuid": "b", "parentUuid": "a", "type": "assistant", "message": {"parts": [{"text": "two"}]}})
    assert [m.text for m in map(view, parse_session(data)[1])] == ["one", "two"]


def test_sidechain_record_is_never_the_leaf():
    data = chain({"uuid": "a", "message": {"parts": [{"text": "main"}]}},
                 {"uuid": "s", "parentUuid": "a", "type": "assistant", "isSidechain": True,
                  "message": {"parts": [{"text": "side"}]}})
    assert [m.text for m in map(view, parse_session(data)[1])] == ["main"]


def test_artifact_records_are_not_the_leaf():
    data = chain({"uuid": "a", "message": {"parts": [{"text": "q"}]}},
                 {"uuid": "b", "parentUuid": "a", "type": "assistant", "message": {"parts": [{"text": "r"}]}},
                 {"uuid": "x", "parentUuid": None, "type": "system", "subtype": "session_artifact_event"},
                 {"uuid": "y", "parentUuid": None, "type": "system", "subtype": "session_sources_snapshot"})
    assert [m.text for m in map(view, parse_session(data)[1])] == ["q", "r"]


def test_first_record_of_a_uuid_sets_its_parent():
    data = chain({"uuid": "a", "message": {"parts": [{"text": "q"}]}},
                 {"uuid": "b", "parentUuid": "a", "type": "assistant", "message": {"parts": [{"text": "r1"}]}},
                 {"uuid": "b", "parentUuid": None, "type": "assistant", "message": {"parts": [{"text": "r2"}]}})
    assert [m.text for m in map(view, parse_session(data)[1])] == ["q", "r1\n\nr2"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.one_of(st.none(), st.integers(0, 7)),
                          st.sampled_from(["user", "assistant", "tool_result", "system"]), st.booleans()),
                max_size=12))
def test_branch_is_a_parent_chain_ending_at_the_last_main_record(spec):
    """Any tree (cycles, gaps, duplicates): the branch is a chain of distinct uuids, each the parent of the
    next, rooted at a null or missing parent, ending at the last non-sidechain record."""
    recs = [Record(uuid=f"u{u}", parentUuid=None if p is None else f"u{p}", sessionId="s", type=t,
                   isSidechain=side or None) for u, p, t, side in spec]
    branch = visible_branch(recs)
    mains = [r for r in recs if r.isSidechain is not True]
    if not mains:
        assert branch == []
        return
    assert branch[-1].uuid == mains[-1].uuid
    uuids = [r.uuid for r in branch]
    assert len(set(uuids)) == len(uuids)
    for parent, child in zip(branch, branch[1:]):
        assert child.parentUuid == parent.uuid
    first_of = {}
    for r in recs:
        first_of.setdefault(r.uuid, r)
    root = branch[0]
    assert root.parentUuid is None or root.parentUuid not in first_of or root.parentUuid in uuids


def test_generated_rewinds_match_the_turns_kept(tmp_path):
    sid = "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    path = gen.write_session(tmp_path, "/w", sid, [("one", "1"), ("two", "2"), ("three", "3")], tool=False)
    gen.rewind(tmp_path, "/w", sid, 1)
    gen.append_turn(tmp_path, "/w", sid, "TWO", "II")
    gen.rewind(tmp_path, "/w", sid, 0)
    assert parse_session(path.read_bytes())[1] == []
    gen.append_turn(tmp_path, "/w", sid, "uno", "I")
    assert [m.text for m in map(view, parse_session(path.read_bytes())[1])] == ["uno", "I"]


# ---------------------------------------------------------------- records and parts


@pytest.mark.parametrize("fields", [
    {"type": "user", "subtype": "notification"},
    {"type": "user", "subtype": "cron"},
    {"type": "user", "subtype": "goal_runtime"},
    {"type": "system", "subtype": "slash_command", "message": ...},
    {"type": "system", "subtype": "chat_compression"},
    {"type": "system", "subtype": "custom_title", "systemPayload": {"customTitle": "t"}},
    {"type": "user", "isSidechain": True},
    {"type": "assistant", "message": ...},
    {"type": "assistant", "message": {"role": "model", "parts": [{"text": "x", "thought": True}]}},
    {"type": "assistant", "message": {"role": "model", "parts": []}},
    {"type": "user", "message": {"role": "user", "parts": [{"text": "  \n\t"}]}},
    {"type": "user", "message": "not an object"},
    {"type": "user", "message": {"role": "user", "parts": "not a list"}},
    {"type": "User"},
    {"type": "user", "subtype": "from_the_future"},
])
def test_not_a_turn(fields):
    assert parse_session(line(**fields))[1] == []


@pytest.mark.parametrize("fields", [{"uuid": ""}, {"uuid": 7}, {"parentUuid": 3}, {"sessionId": ""},
                                    {"sessionId": None}, {"uuid": ...}])
def test_bad_identity_is_malformed(fields):
    state, msgs = parse_session(line(**fields))
    assert (msgs, state.malformed) == ([], 1)


def test_non_object_lines_are_malformed_and_blank_lines_ignored():
    state, msgs = parse_session(b"[1,2]\n\n  \n\"x\"\n{bad\n" + line())
    assert state.malformed == 3 and [view(m).text for m in msgs] == ["hi"]


def test_partial_last_line_waits_but_a_whole_one_counts():
    whole = line().rstrip(b"\n")
    assert [view(m).text for m in parse_session(whole)[1]] == ["hi"]
    state, msgs = parse_session(whole[:-5])
    assert (msgs, state.malformed) == ([], 0)


def test_display_text_replaces_model_text_only_with_prompt_provenance():
    hook = {"text": "<qwen:user-prompt-submit-context>\nctx\n</qwen:user-prompt-submit-context>"}
    expanded = {"text": "look at @a.py\n--- Content from referenced files ---\nprint()"}
    cases = [
        # displayText + hookContext: what the user typed
        ({"parts": [expanded, hook]}, {"displayText": "look at @a.py", "hookContext": "ctx"}, "look at @a.py"),
        # displayText with a final hook part but no hookContext (released format)
        ({"parts": [expanded, hook]}, {"displayText": "look at @a.py"}, "look at @a.py"),
        # no payload: the final hook part alone is removed
        ({"parts": [{"text": "plain"}, hook]}, ..., "plain"),
        # a payload without provenance: the parts as sent
        ({"parts": [{"text": "sent"}]}, {"displayText": "typed"}, "sent"),
    ]
    for message, payload, want in cases:
        got = parse_session(line(message=message, systemPayload=payload))[1]
        assert [view(m).text for m in got] == [want], (message, payload)


def test_display_text_keeps_non_text_parts():
    msg = {"parts": [{"text": "x"}, {"inlineData": {"mimeType": "image/jpeg", "data": "AA"}}]}
    (m,) = parse_session(line(message=msg, systemPayload={"displayText": "see this", "hookContext": ""}))[1]
    assert m.parts == (Text("see this"), Image("image/jpeg"))


def test_gemini_parts():
    assert gemini_parts([
        "bare", {"text": ""}, {"text": "t"}, {"text": "r", "thought": True}, {"thought": True},
        {"functionCall": {"name": "edit", "args": {"file_path": "/a"}}}, {"functionCall": {"id": "x"}},
        {"functionResponse": {"name": "n", "response": {"output": "o"}}},
        {"functionResponse": {"response": {"content": [{"type": "text", "text": "c1"}, {"text": "c2"}]}}},
        {"functionResponse": {"response": {"error": {"code": 1}}}},
        {"functionResponse": {"response": {"output": {"k": 1}}}},
        {"functionResponse": {"response": {"other": 2}}},
        {"functionResponse": {}},
        {"inlineData": {"mimeType": "application/pdf"}}, {"fileData": {"mimeType": "image/png", "fileUri": "f"}},
        {"executableCode": {"code": "1"}}, {"thoughtSignature": "s"}, 7, None,
    ]) == (
        Text("bare"), Text("t"), Reasoning(), Reasoning(), ToolCall("edit", {"file_path": "/a"}), ToolCall(None),
        ToolResult("o"), ToolResult("c1\nc2"), ToolResult('{"code":1}', True), ToolResult('{"k":1}'),
        ToolResult('{"other":2}'), ToolResult(""), Unsupported("inlineData"), Image("image/png"),
        Unsupported("executableCode"),
    )
    assert gemini_parts("nope") == ()


def test_failed_status_marks_the_result_an_error():
    data = line(type="tool_result", message={"parts": [{"functionResponse": {"response": {"output": "denied"}}}]},
                toolCallResult={"status": "error"})
    (m,) = parse_session(data)[1]
    assert m.parts == (ToolResult("denied", True),)


def test_tool_result_without_message_uses_response_parts():
    rp = [{"functionResponse": {"response": {"output": "from toolCallResult"}}}]
    (m,) = parse_session(line(type="tool_result", message=..., toolCallResult={"responseParts": rp}))[1]
    assert m.parts == (ToolResult("from toolCallResult"),)


def test_tool_result_with_an_image_goes_to_the_assistant_side():
    parts = [{"functionResponse": {"response": {"output": "Binary content of type image/png was processed."}}},
             {"inlineData": {"mimeType": "image/png", "data": "AA"}}]
    (m,) = parse_session(line(type="tool_result", message={"role": "user", "parts": parts}))[1]
    assert m.role == "assistant"


def test_wrong_types_in_fields_cost_only_that_field():
    state, msgs = parse_session(line(cwd=5, gitBranch=["x"], timestamp=12))
    assert [(view(m).text, m.ts_ms) for m in msgs] == [("hi", None)]
    assert (state.cwd, state.git_branch, state.start_ms) == (None, None, None)


def test_titles():
    def title(*payloads):
        recs = [{"uuid": "a"}] + [{"uuid": f"t{i}", "parentUuid": "a", "type": "system", "subtype": "custom_title",
                                   "systemPayload": p} for i, p in enumerate(payloads)]
        s = parse_session(chain(*recs))[0]
        return s.custom_title, s.ai_title
    assert title({"customTitle": "  Mine  "}) == ("Mine", None)
    assert title({"customTitle": "Mine", "titleSource": "manual"}) == ("Mine", None)
    assert title({"customTitle": "Guess", "titleSource": "auto"}) == (None, "Guess")
    assert title({"customTitle": "Guess", "titleSource": "auto"}, {"customTitle": "Mine"}) == ("Mine", None)
    assert title({"customTitle": "Mine"}, {"customTitle": "Later guess", "titleSource": "auto"}) == (None, "Later guess")
    assert title({"customTitle": "Mine"}, {"customTitle": "   "}, {"customTitle": 3}, "x") == ("Mine", None)


def test_branch_head_is_not_a_branch():
    assert parse_session(line(gitBranch="HEAD"))[0].git_branch is None


# ---------------------------------------------------------------- discovery, identity, roots


def test_identify():
    root = Path("/q/projects")
    sid = "5f0c7a52-8f0e-4a5b-9c1d-2e3f4a5b6c7d"
    ident = SOURCE.identify(root, root / "-w" / "chats" / f"{sid}.jsonl")
    assert (ident.kind, ident.session_id) == ("qwen", sid)
    assert SOURCE.identify(root, root / "-w" / "chats" / "archive" / f"{sid}.jsonl").session_id == sid
    assert SOURCE.identify(root, root / "-w" / "chats" / "0123456789abcdef0123456789abcdef.jsonl") is not None
    for bad in (root / "-w" / "chats" / "notes.jsonl", root / "-w" / "chats" / f"{sid}.json",
                root / "-w" / "chats" / sid / "subagents" / f"{sid}.jsonl", root / "-w" / f"{sid}.jsonl",
                root / "-w" / "other" / f"{sid}.jsonl", root / "a" / "b" / "chats" / f"{sid}.jsonl",
                root / "-w" / "chats" / "archive" / "x" / f"{sid}.jsonl", root / "-w" / "chats" / "0123.jsonl"):
        assert SOURCE.identify(root, bad) is None, bad


def test_discover_fixtures():
    found = sorted(i.session_id for i in SOURCE.discover(FIXTURES))
    assert found == sorted(p.stem for p in (BASIC, REWIND, REWIND_TO_START, REWIND_LAST, MESSY, ARCHIVED))


def test_discover_prefers_the_active_copy(tmp_path):
    root = tmp_path / "projects"
    sid = "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    active = gen.write_session(tmp_path, "/w", sid, [("q", "a")])
    (active.parent / "archive").mkdir()
    shutil.copy(active, active.parent / "archive" / active.name)
    assert [i.path for i in SOURCE.discover(root)] == [active]
    active.unlink()
    assert [i.path for i in SOURCE.discover(root)] == [active.parent / "archive" / active.name]
    assert list(SOURCE.discover(tmp_path / "missing")) == []


def test_default_roots():
    home = {"HOME": "/h"}
    assert default_roots("qwen", home) == [Path("/h/.qwen/projects")]
    assert default_roots("qwen", {**home, "QWEN_HOME": "/qh"}) == [Path("/qh/projects")]
    assert default_roots("qwen", {**home, "QWEN_HOME": "/qh", "QWEN_RUNTIME_DIR": "/rt"}) == [Path("/rt/projects")]
    assert default_roots("qwen", {**home, "QWEN_RUNTIME_DIR": "~/run"}) == [Path("/h/run/projects")]
    assert default_roots("qwen", {**home, "QWEN_HOME": "~"}) == [Path("/h/projects")]
    assert default_roots("qwen", {**home, "QWEN_HOME": ""}) == [Path("/h/.qwen/projects")]


def test_watch_sees_archive_depth():
    assert SOURCE.watch.depth == 3 and SOURCE.watch.wants("x.jsonl") and not SOURCE.watch.wants("x.json")


def test_read_snapshot_digest_and_version(tmp_path):
    path = tmp_path / BASIC.name
    shutil.copy(BASIC, path)
    ident = SOURCE.identify(FIXTURES, BASIC)
    snap = SOURCE.read_snapshot(type(ident)("qwen", ident.session_id, path), CTX)
    assert snap.messages == parse_session(BASIC.read_bytes())[1]
    assert isinstance(snap.state, QwenState) and snap.state.custom_title == "Parser fix"
    import blake3
    assert snap.digest == blake3.blake3(BASIC.read_bytes()).digest()
    assert SOURCE.version(type(ident)("qwen", ident.session_id, path)).size == path.stat().st_size
    with pytest.raises(OSError):
        SOURCE.read_snapshot(type(ident)("qwen", ident.session_id, tmp_path / "gone.jsonl"), CTX)


def test_state_is_small_and_encodable():
    import msgspec
    state = parse_session(MESSY.read_bytes())[0]
    assert msgspec.json.decode(msgspec.json.encode(state), type=QwenState) == state


def test_read_records_counts_every_valid_line():
    s = QwenState()
    assert len(read_records(BASIC.read_bytes(), s)) == 13 and s.malformed == 0
