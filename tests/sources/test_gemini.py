"""Gemini CLI source: replaying `.jsonl` logs and legacy `.json` documents into messages, the project
folder → cwd, discovery and dedupe of copies (fixtures under tests/fixtures/gemini/root, a `~/.gemini`)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from daemon.sources import default_roots
from daemon.sources.base import Incomplete, ParseContext
from daemon.sources.gemini import SOURCE, parse_session, resolve_cwd, read_registry
from message_view import View, view

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gemini" / "root"
CTX = ParseContext(mtime_ms=1_777_000_000_123)
META = {"sessionId": "3f9c2a1e-7b1d-4a53-9d0e-1c2b3a4d5e6f", "projectHash": "ab" * 32,
        "startTime": "2026-05-02T10:00:01.120Z", "lastUpdated": "2026-05-02T10:00:01.120Z"}
T = "2026-05-02T10:00:05.000Z"
T_MS = 1_777_716_005_000


def jl(*records: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r, separators=(",", ":")).encode()) + b"\n"
                    for r in records)


def msg(mid: str, kind: str = "user", content: object = "hi", **extra) -> dict:
    return {"id": mid, "timestamp": T, "type": kind, "content": content, **extra}


def replay(*records: object, raw: bytes | None = None):
    state, messages = parse_session(raw if raw is not None else jl(META, *records), jsonl=True,
                                    mtime_ms=CTX.mtime_ms)
    return [view(m) for m in messages], state


def texts(*records: object) -> list[str | None]:
    return [v.text for v in replay(*records)[0]]


def call(cid: str = "c1", name: str = "run_shell_command", args: object = None, output: object = "ok",
         status: str = "success", key: str = "output") -> dict:
    c = {"id": cid, "name": name, "args": args if args is not None else {"command": "ls"}, "status": status,
         "timestamp": T}
    if output is not None:
        c["result"] = [{"functionResponse": {"id": cid, "name": name, "response": {key: output}}}]
    return c


CALL_NOTE = "[external_agent_tool_call: run_shell_command]\ncommand: ls\n[/external_agent_tool_call]"
RESULT_NOTE = "[external_agent_tool_result]\nok\n[/external_agent_tool_result]"


# ---------------------------------------------------------------- messages


def test_user_and_gemini_messages():
    got, state = replay(msg("u", "user", [{"text": "Why?"}]), msg("a", "gemini", "Because."))
    assert got == [View("user", "Why?", T_MS), View("assistant", "Because.", T_MS)]
    assert state.session_id == META["sessionId"] and state.project_hash == META["projectHash"]
    assert state.start_ms == 1_777_716_001_120
    assert (state.malformed, state.unknown) == (0, 0)


def test_content_as_string_part_or_list_of_strings():
    assert texts(msg("a", "user", "plain"), msg("b", "user", {"text": "one part"}),
                 msg("c", "user", ["x", {"text": "y"}])) == ["plain", "one part", "x\n\ny"]


def test_display_content_is_what_the_user_typed():
    typed = [{"text": "Explain @a.py"}]
    expanded = [{"text": "Explain @a.py"}, {"text": "\n--- Content from referenced files ---\nprint(1)"}]
    assert texts(msg("u", "user", expanded, displayContent=typed)) == ["Explain @a.py"]
    # a blank displayContent falls back to the content
    assert texts(msg("u", "user", [{"text": "real"}], displayContent=[{"text": "  "}])) == ["real"]


def test_tool_calls_with_results_on_the_assistant_side():
    got, _ = replay(msg("a", "gemini", "Let me look.", toolCalls=[call()]))
    assert got == [View("assistant", f"Let me look.\n\n{CALL_NOTE}\n\n{RESULT_NOTE}", T_MS)]


def test_tool_error_status_and_error_response():
    got, _ = replay(msg("a", "gemini", "", toolCalls=[call(output="File not found", status="error", key="error")]))
    assert got[0].text.endswith("[external_agent_tool_result: error]\nFile not found\n[/external_agent_tool_result]")
    # a non-string output is shown as compact JSON; only status "error" marks an error
    got, _ = replay(msg("a", "gemini", "", toolCalls=[call(output={"n": 1}, status="cancelled")]))
    assert got[0].text.endswith("[external_agent_tool_result]\n{\"n\":1}\n[/external_agent_tool_result]")


def test_tool_call_without_result_yet_and_without_args():
    c = call(output=None)
    del c["args"]
    got, _ = replay(msg("a", "gemini", "", toolCalls=[c]))
    assert got[0].text == "[external_agent_tool_call: run_shell_command]\n[/external_agent_tool_call]"


def test_result_as_plain_string_and_text_parts():
    c = call(output=None)
    c["result"] = "raw text"
    c2 = call("c2", output=None)
    c2["result"] = [{"text": "from a text part"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]
    got, _ = replay(msg("a", "gemini", "", toolCalls=[c, c2]))
    assert "\nraw text\n" in got[0].text and "\nfrom a text part\n" in got[0].text


def test_function_response_only_user_message_is_dropped():
    fr = [{"functionResponse": {"id": "c1", "name": "run_shell_command", "response": {"output": "ok"}}}]
    assert texts(msg("a", "gemini", "", toolCalls=[call()]), msg("u", "user", fr)) == [f"{CALL_NOTE}\n\n{RESULT_NOTE}"]
    # text beside a functionResponse stays, without the response
    assert texts(msg("u", "user", [*fr, {"text": "and then?"}])) == ["and then?"]


def test_thoughts_and_thought_parts_are_not_shown():
    thoughts = [{"subject": "Plan", "description": "secret", "timestamp": T}]
    assert texts(msg("a", "gemini", "Answer.", thoughts=thoughts)) == ["Answer."]
    assert texts(msg("b", "gemini", [{"text": "Binary content received", "thought": True}])) == []
    assert texts(msg("c", "gemini", [{"text": "t", "thought": True}, {"text": "shown"}])) == ["shown"]


@pytest.mark.parametrize("kind", ["info", "error", "warning"])
def test_ui_notices_dropped_and_not_counted(kind):
    got, state = replay(msg("n", kind, "Quota exceeded"))
    assert got == [] and state.unknown == 0


def test_unknown_message_type_is_counted():
    got, state = replay(msg("n", "system", "x"), msg("m", "model", "y"))
    assert got == [] and state.unknown == 2


@pytest.mark.parametrize("text", ["<session_context>\nToday is…\n</session_context>", "  <hook_context>x</hook_context>"])
def test_injected_context_is_not_a_user_turn(text):
    assert texts(msg("u", "user", [{"text": text}])) == []


def test_function_call_parts_only_when_there_are_no_tool_calls():
    fc = [{"text": "calling"}, {"functionCall": {"id": "c1", "name": "run_shell_command", "args": {"command": "ls"}}}]
    # after a checkpoint a message can carry its calls twice: once as parts, once in toolCalls
    assert texts(msg("a", "gemini", fc, toolCalls=[call()])) == [f"calling\n\n{CALL_NOTE}\n\n{RESULT_NOTE}"]
    assert texts(msg("b", "gemini", fc)) == [f"calling\n\n{CALL_NOTE}"]


def test_images_and_other_parts():
    parts = [{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}, {"fileData": {"mimeType": "application/pdf"}},
             {"executableCode": {"code": "1"}}, {"thoughtSignature": "sig"}, {}]
    assert texts(msg("u", "user", parts)) == [
        "[external unsupported block: image]\n\n[external unsupported block: application/pdf]\n\n"
        "[external unsupported block: executableCode]"]


def test_blank_or_missing_content_dropped():
    assert texts(msg("a", "user", "  \n"), msg("b", "gemini", ""), msg("c", "gemini", None),
                 {"id": "d", "type": "user"}) == []


def test_timestamp_falls_back_to_the_file_mtime():
    got, _ = replay({"id": "u", "type": "user", "content": "x", "timestamp": "yesterday"})
    assert got[0].ts_ms == CTX.mtime_ms // 1000 * 1000


# ---------------------------------------------------------------- replay


def test_upsert_keeps_first_position_and_latest_content():
    assert texts(msg("a", "user", "first"), msg("b", "gemini", "draft"), msg("c", "user", "third"),
                 msg("b", "gemini", "final", toolCalls=[call()])) == [
        "first", f"final\n\n{CALL_NOTE}\n\n{RESULT_NOTE}", "third"]


def test_rewind_deletes_that_message_and_all_after_it():
    assert texts(msg("a", "user", "1"), msg("b", "gemini", "2"), msg("c", "user", "3"), msg("d", "gemini", "4"),
                 {"$rewindTo": "c"}, msg("e", "user", "5")) == ["1", "2", "5"]


def test_rewind_to_an_unknown_id_clears_everything():
    assert texts(msg("a", "user", "1"), msg("b", "gemini", "2"), {"$rewindTo": "nope"}, msg("c", "user", "3")) == ["3"]


def test_set_messages_replaces_all_then_upserts_continue():
    checkpoint = [msg("s", "user", "<state_snapshot>summary</state_snapshot>"), msg("k", "gemini", "Got it."),
                  msg("c", "user", "3 (masked)")]
    got = texts(msg("a", "user", "1"), msg("b", "gemini", "2"), msg("c", "user", "3"),
                {"$set": {"messages": checkpoint, "lastUpdated": T}},
                msg("d", "gemini", "4"), msg("k", "gemini", "Got it!"))
    assert got == ["<state_snapshot>summary</state_snapshot>", "Got it!", "3 (masked)", "4"]


def test_set_messages_empty_or_not_a_list_changes_nothing():
    assert texts(msg("a", "user", "1"), {"$set": {"messages": []}}, {"$set": {"messages": "x"}}) == ["1"]


def test_set_messages_bad_entries_counted():
    got, state = replay({"$set": {"messages": [msg("a", "user", "1"), "junk", {"no": "id"}]}})
    assert [v.text for v in got] == ["1"] and state.malformed == 2


def test_summary_is_the_title_the_last_one_wins():
    _, state = replay(msg("a", "user", "1"), {"$set": {"summary": "First"}}, {"$set": {"summary": "  Second  "}})
    assert state.custom_title == "Second"
    _, state = replay(msg("a", "user", "1"), {"$set": {"summary": "   "}})
    assert state.custom_title is None
    _, state = replay(msg("a", "user", "1"))
    assert state.custom_title is None


def test_malformed_lines_counted_partial_tail_waits():
    raw = jl(META, msg("a", "user", "1"), b"{not json", b"[1,2]", b"42") + b'{"id":"b","type":"us'
    got, state = replay(raw=raw)
    assert [v.text for v in got] == ["1"]
    assert state.malformed == 3  # the unterminated last piece is a write in progress, not counted
    # a complete last line without its newline is read
    got, _ = replay(raw=jl(META) + json.dumps(msg("a", "user", "done")).encode())
    assert [v.text for v in got] == ["done"]


def test_unknown_shapes_counted_blank_lines_skipped():
    raw = jl(META, {"sessionId": "only-id"}, {"$patch": {}}, {"$set": "x"}) + b"\n  \n" + jl(msg("a", "user", "1"))
    got, state = replay(raw=raw)
    assert [v.text for v in got] == ["1"] and state.unknown == 3 and state.malformed == 0


def test_wrong_field_types_cost_nothing_else():
    got, state = replay({"id": "a", "type": "user", "content": "1", "timestamp": 5, "displayContent": 7,
                         "toolCalls": "x", "thoughts": {}}, msg("b", "gemini", "2", toolCalls=["x", {"name": 3}]))
    assert [v.text for v in got] == ["1", "2\n\n[external_agent_tool_call: unknown]\n[/external_agent_tool_call]"]


def test_start_without_start_time_is_the_first_message_time():
    meta = {k: v for k, v in META.items() if k != "startTime"}
    state, _ = parse_session(jl(meta, msg("a", "user", "1")), jsonl=True, mtime_ms=0)
    assert state.start_ms == T_MS


def test_subagent_metadata_is_not_a_session():
    state, messages = parse_session(jl({**META, "kind": "subagent"}, msg("a", "user", "1")), jsonl=True, mtime_ms=0)
    assert messages == [] and state.subagent


def test_jsonl_without_metadata_line_tried_as_one_document():
    doc = json.dumps({**META, "messages": [msg("a", "user", "legacy in a jsonl")]}, indent=2).encode()
    state, messages = parse_session(doc, jsonl=True, mtime_ms=0)
    assert [view(m).text for m in messages] == ["legacy in a jsonl"] and state.malformed == 0


def test_one_line_record_with_messages():
    got, _ = replay(raw=jl({**META, "messages": [msg("a", "user", "1")]}, msg("b", "gemini", "2")))
    assert [v.text for v in got] == ["1", "2"]


# ---------------------------------------------------------------- legacy .json


def test_legacy_document():
    doc = {**META, "messages": [msg("a", "user", "q"), msg("b", "gemini", "a", toolCalls=[call()])],
           "summary": "S", "kind": "main"}
    state, messages = parse_session(json.dumps(doc, indent=2).encode(), jsonl=False, mtime_ms=0)
    assert [view(m).text for m in messages] == ["q", f"a\n\n{CALL_NOTE}\n\n{RESULT_NOTE}"]
    assert state.custom_title == "S" and state.start_ms == 1_777_716_001_120


def test_legacy_truncated_is_none_and_not_an_object_is_malformed():
    doc = json.dumps({**META, "messages": [msg("a", "user", "q")]}, indent=2).encode()
    assert parse_session(doc[: len(doc) // 2], jsonl=False, mtime_ms=0) is None
    assert parse_session(b"", jsonl=False, mtime_ms=0) is None
    state, messages = parse_session(b"[1]", jsonl=False, mtime_ms=0)
    assert messages == [] and state.malformed == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_never_raises_on_any_bytes(data, jsonl):
    parse_session(data, jsonl=jsonl, mtime_ms=0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=12), st.data())
def test_replay_matches_a_plain_model(ops, data):
    """Upserts and rewinds against an independent list model of Gemini's in-memory conversation."""
    records, model = [], []
    for i, mid in enumerate(ops):
        if data.draw(st.booleans()):
            records.append({"$rewindTo": mid})
            ids = [m for m, _ in model]
            model = model[: ids.index(mid)] if mid in ids else []
        else:
            records.append(msg(mid, "user", f"{mid}{i}"))
            ids = [m for m, _ in model]
            if mid in ids:
                model[ids.index(mid)] = (mid, f"{mid}{i}")
            else:
                model.append((mid, f"{mid}{i}"))
    assert texts(*records) == [t for _, t in model]


# ---------------------------------------------------------------- cwd


def test_registry_parsing():
    assert read_registry(b'{"projects": {"/a": "a", "/b": 3, "4": "x"}}') == {"/a": "a", "4": "x"}
    assert read_registry(b"{broken") == {} and read_registry(b"[]") == {} and read_registry(b'{"projects": 1}') == {}


def test_resolve_cwd_order():
    reg = {"/home/u/app": "app", "/home/u/old": "old"}
    h = hashlib.sha256(b"/home/u/old").hexdigest()
    assert resolve_cwd("app", "/marked/root\n", reg, [], None) == "/marked/root"
    assert resolve_cwd("app", None, reg, [], None) == "/home/u/app"
    assert resolve_cwd(h, None, reg, [], None) == "/home/u/old"
    other = hashlib.sha256(b"/elsewhere").hexdigest()
    assert resolve_cwd(other, None, reg, ["/elsewhere"], None) == "/elsewhere"
    # a slug folder without marker or registry entry: the session's projectHash
    assert resolve_cwd("lost", None, reg, [], h) == "/home/u/old"
    assert resolve_cwd("lost", "relative/path", {}, [], None) is None
    assert resolve_cwd("f" * 64, None, reg, [], None) is None


# ---------------------------------------------------------------- the files


def fixture_tree(tmp_path: Path) -> Path:
    root = tmp_path / ".gemini"
    shutil.copytree(FIXTURES, root)
    return root


def read(ident):
    snap = SOURCE.read_snapshot(ident, CTX)
    return snap, [view(m) for m in snap.messages]


def test_discover_one_per_session_preferring_jsonl_then_the_slug_folder(tmp_path):
    root = fixture_tree(tmp_path)
    found = {i.session_id: i.path.relative_to(root).as_posix() for i in SOURCE.discover(root)}
    assert found == {
        "session-2025-10-07T16-45-9f8e7d6c": "tmp/61ca26d008f4979e9c5695358024f407df00eb39004643a629906747efdbddda/"
                                             "chats/session-2025-10-07T16-45-9f8e7d6c.json",
        "session-2025-12-01T08-30-0a1b2c3d": "tmp/legacy-app/chats/session-2025-12-01T08-30-0a1b2c3d.json",
        "session-2026-04-20T14-05-5e6f7a8b": "tmp/demo-app/chats/session-2026-04-20T14-05-5e6f7a8b.jsonl",
        "session-2026-05-02T10-00-3f9c2a1e": "tmp/demo-app/chats/session-2026-05-02T10-00-3f9c2a1e.jsonl",
        "session-2026-05-03T09-15-7c1d9e02": "tmp/demo-app/chats/session-2026-05-03T09-15-7c1d9e02.jsonl",
    }
    assert list(SOURCE.discover(tmp_path / "missing")) == []


def test_identify_matches_discover_and_rejects_the_rest(tmp_path):
    root = fixture_tree(tmp_path)
    for ident in SOURCE.discover(root):
        assert SOURCE.identify(root, ident.path) == ident
    chats = root / "tmp" / "demo-app" / "chats"
    for path in [chats / "3f9c2a1e-7b1d-4a53-9d0e-1c2b3a4d5e6f" / "b2c3d4e5.jsonl", root / "projects.json",
                 root / "tmp" / "demo-app" / "logs.json", chats / "checkpoint-x.json", chats / "session-x.txt",
                 root / "tmp" / "demo-app" / "session-x.jsonl", tmp_path / "elsewhere" / "session-x.jsonl"]:
        assert SOURCE.identify(root, path) is None
    # the legacy copy of a resumed session is the same session
    legacy = SOURCE.identify(root, chats / "session-2026-04-20T14-05-5e6f7a8b.json")
    assert legacy.session_id == "session-2026-04-20T14-05-5e6f7a8b"


def test_default_roots():
    assert default_roots("gemini", {"HOME": "/h"}) == [Path("/h/.gemini")]
    assert default_roots("gemini", {"HOME": "/h", "GEMINI_CLI_HOME": "/g"}) == [Path("/g/.gemini")]
    assert SOURCE.watch.wants("session-a.json") and SOURCE.watch.wants("session-a.jsonl")
    assert SOURCE.watch.depth == 3


def test_main_fixture(tmp_path):
    root = fixture_tree(tmp_path)
    ident = SOURCE.identify(root, root / "tmp/demo-app/chats/session-2026-05-02T10-00-3f9c2a1e.jsonl")
    snap, got = read(ident)
    assert snap.state.cwd == "/home/dev/demo-app" and snap.state.custom_title == "Debug failing npm test"
    assert [v.role for v in got] == ["user", "assistant", "assistant", "assistant"]
    assert got[0].text == "Why does npm test fail? Look at @package.json"
    assert "command: npm test" in got[1].text and "1 failing" in got[1].text
    assert "[external_agent_tool_result: error]\nFile not found" in got[2].text
    assert got[3].text.startswith("The test `adds numbers` fails")
    assert (snap.state.malformed, snap.state.unknown) == (0, 0)
    assert snap.digest == __import__("blake3").blake3(ident.path.read_bytes()).digest()


def test_rewind_and_checkpoint_fixture(tmp_path):
    root = fixture_tree(tmp_path)
    snap, got = read(SOURCE.identify(root, root / "tmp/demo-app/chats/session-2026-05-03T09-15-7c1d9e02.jsonl"))
    assert [v.text for v in got] == [
        "<state_snapshot>The user renamed loadConfig to readConfig and updated the README.</state_snapshot>",
        "Got it. Thanks for the additional context!", "Now update the README", "README updated.",
        "Bump the version", "Version bumped to 1.4.0."]
    assert "Also delete the tests" not in str(got)


def test_legacy_json_reads_its_resumed_jsonl(tmp_path):
    root = fixture_tree(tmp_path)
    chats = root / "tmp" / "demo-app" / "chats"
    ident = SOURCE.identify(root, chats / "session-2026-04-20T14-05-5e6f7a8b.json")
    snap, got = read(ident)
    assert [v.text for v in got][-1] == "Documented `--verbose` in the README."
    assert SOURCE.version(ident) == SOURCE.version(SOURCE.identify(root, chats / "session-2026-04-20T14-05-5e6f7a8b.jsonl"))


def test_hash_folders_find_their_cwd(tmp_path):
    root = fixture_tree(tmp_path)
    found = {i.session_id: i for i in SOURCE.discover(root)}
    snap, got = read(found["session-2025-10-07T16-45-9f8e7d6c"])
    assert snap.state.cwd == "/home/dev/old-tool" and snap.state.custom_title == "Explain old-tool"
    assert [v.text for v in got] == ["What does old-tool do?", "What does old-tool do?",
                                     "It converts CSV exports into invoices."]
    assert SOURCE.fallback_cwd(found["session-2025-10-07T16-45-9f8e7d6c"]) == "/home/dev/old-tool"
    # the hash folder's own copy resolves too, without projects.json, from the slug folder's marker
    (root / "projects.json").unlink()
    h = "2136a2490b0bdc8f317d3e16aecb6c0b6c264127ce17e17345fe6c0dc2ce7069"
    ident = SOURCE.identify(root, root / "tmp" / h / "chats" / "session-2025-12-01T08-30-0a1b2c3d.json")
    assert SOURCE.fallback_cwd(ident) == "/home/dev/legacy-app"
    assert read(ident)[0].state.custom_title is None


def test_legacy_half_written_is_incomplete(tmp_path):
    root = fixture_tree(tmp_path)
    path = root / "tmp" / "legacy-app" / "chats" / "session-2025-12-01T08-30-0a1b2c3d.json"
    whole = path.read_bytes()
    path.write_bytes(whole[:100])
    ident = SOURCE.identify(root, path)
    with pytest.raises(Incomplete):
        SOURCE.read_snapshot(ident, CTX)


def test_version_is_the_stat(tmp_path):
    root = fixture_tree(tmp_path)
    ident = next(iter(SOURCE.discover(root)))
    before = SOURCE.version(ident)
    with ident.path.open("ab") as f:
        f.write(b" ")
    assert SOURCE.version(ident).size == before.size + 1
