"""Claude Code source: records → messages, session state, discovery (formats.md, codex-importer.md §1.2, §2)."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from daemon.sources import default_roots
from daemon.sources.base import ParseContext, SourceState, record_ts_ms, rfc3339_ms
from daemon.sources.claude import SOURCE
from message_view import View as Message, view

CTX = ParseContext(mtime_ms=1_780_488_000_000)
T0 = "2026-06-03T12:00:00Z"
T0_MS = 1_780_488_000_000


def rec(kind: str = "user", content: object = "hello", **extra) -> dict:
    r = {"parentUuid": None, "isSidechain": False, "userType": "external", "cwd": "/work/p",
         "sessionId": "s1", "version": "2.1.3", "gitBranch": "main", "type": kind,
         "message": {"role": kind, "content": content}, "uuid": "u", "timestamp": T0}
    r.update(extra)
    return r


def line(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() if not isinstance(obj, bytes) else obj


def parse(*objs: object, state: SourceState | None = None) -> tuple[list[Message], SourceState]:
    st = state or SourceState()
    out = [m for o in objs if (m := view(SOURCE.parse_line(st, line(o), CTX))) is not None]
    return out, st


def one(obj: object) -> Message | None:
    msgs, _ = parse(obj)
    assert len(msgs) <= 1
    return msgs[0] if msgs else None


# ---------------------------------------------------------------- kept / dropped


def test_user_and_assistant_kept():
    assert one(rec("user", "hi")) == Message("user", "hi", T0_MS)
    assert one(rec("assistant", [{"type": "text", "text": "yo"}])) == Message("assistant", "yo", T0_MS)


@pytest.mark.parametrize("obj", [
    rec("user", "x", isMeta=True),
    rec("assistant", "x", isSidechain=True),
    rec("user", "x", isSidechain=True),
    {"type": "summary", "summary": "Earlier summary", "leafUuid": "x0"},
    {"type": "system", "subtype": "compact_boundary", "content": "x", "cwd": "/w", "timestamp": T0},
    {"type": "system", "subtype": "stop_hook_summary", "message": {"content": "x"}},
    {"type": "progress", "data": {"type": "hook_progress"}, "message": {"content": "x"}},
    {"type": "attachment", "attachment": {"type": "skill_listing"}, "message": {"content": "x"}},
    {"type": "file-history-snapshot", "messageId": "m", "snapshot": {}},
    {"type": "queue-operation", "operation": "enqueue", "content": "x"},
    {"type": "custom-title", "customTitle": "t", "message": {"content": "x"}},
    {"type": "ai-title", "aiTitle": "t", "message": {"content": "x"}},
    {"type": "pr-link"}, {"type": "last-prompt"}, {"type": "mode"}, {"type": "permission-mode"},
    {"role": "user", "message": {"content": "role is not type"}},
    {"type": "User", "message": {"content": "case matters"}},
    rec("user", None),
    {"type": "user", "timestamp": T0},
    {"type": "user", "message": "not an object"},
    rec("user", "   \n\t"),
    rec("assistant", [{"type": "thinking", "thinking": "only thinking"}]),
    rec("assistant", []),
])
def test_dropped(obj):
    assert one(obj) is None


def test_meta_false_and_sidechain_false_kept():
    assert one(rec("user", "x", isMeta=False, isSidechain=False)) is not None
    # only literal true drops a record
    assert one(rec("user", "x", isMeta="true", isSidechain=1)) is not None


def test_compact_summary_is_an_ordinary_user_turn():
    assert one(rec("user", "This session is being continued...", isCompactSummary=True)).role == "user"


def test_content_string_verbatim_whitespace_and_non_ascii():
    text = "  Fix the naïve café bug ☕  \n\nIt crashes on ünïcödé input.  "
    assert one(rec("user", text)).text == text
    assert one(rec("assistant", "  answer  ")).text == "  answer  "


def test_user_record_of_only_tool_results_becomes_assistant():
    m = one(rec("user", [{"type": "tool_result", "tool_use_id": "t", "content": "out"}]))
    assert m == Message("assistant", "[external_agent_tool_result]\nout\n[/external_agent_tool_result]", T0_MS)


def test_user_text_plus_tool_result_stays_user():
    m = one(rec("user", [{"type": "text", "text": "and"}, {"type": "tool_result", "content": "o"}]))
    assert m.role == "user"
    assert m.text == "and\n\n[external_agent_tool_result]\no\n[/external_agent_tool_result]"


def test_assistant_tool_use_rendered():
    m = one(rec("assistant", [{"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": "ls"}}]))
    assert m == Message("assistant", "[external_agent_tool_call: Bash]\ncommand: ls\n[/external_agent_tool_call]", T0_MS)


def test_image_block_note():
    m = one(rec("user", [{"type": "image", "source": {"type": "base64", "data": "AAAA"}}]))
    assert m == Message("user", "[external unsupported block: image]", T0_MS)


def test_consecutive_assistant_records_not_merged():
    msgs, _ = parse(rec("assistant", [{"type": "text", "text": "a"}]), rec("assistant", [{"type": "text", "text": "b"}]))
    assert [m.text for m in msgs] == ["a", "b"]


# ---------------------------------------------------------------- <user_query>


def test_user_query_unwrapped_for_users_only():
    assert one(rec("user", "<user_query>\n  Add a flag \n</user_query>")).text == "Add a flag"
    assert one(rec("user", [{"type": "text", "text": "<user_query>X</user_query>"}])).text == "X"
    assert one(rec("assistant", "<user_query>X</user_query>")).text == "<user_query>X</user_query>"
    # Cursor-style leading context is NOT stripped for Claude
    t = "<timestamp>now</timestamp>\n<user_query>X</user_query>"
    assert one(rec("user", t)).text == t
    assert one(rec("user", "<user_query> </user_query>")).text == "<user_query> </user_query>"


# ---------------------------------------------------------------- cwd, titles, branch


def test_cwd_is_first_record_with_one_any_type():
    _, st = parse({"type": "file-history-snapshot", "cwd": "/first"}, rec("user", "x", cwd="/second"))
    assert st.cwd == "/first"
    _, st = parse({"type": "summary"}, rec("user", "x", cwd=7), rec("assistant", "y", cwd="/third"))
    assert st.cwd == "/third"
    # a meta / sidechain / malformed record's cwd still counts when it is the first (any record)
    _, st = parse(rec("user", "x", isMeta=True, cwd="/meta"), rec("user", "y", cwd="/later"))
    assert st.cwd == "/meta"


def test_custom_title_beats_ai_title_last_wins_trimmed():
    _, st = parse({"type": "custom-title", "customTitle": "  first  "},
                  {"type": "ai-title", "aiTitle": " ai one "},
                  {"type": "custom-title", "customTitle": "\tsecond \n"},
                  {"type": "ai-title", "aiTitle": "ai two"},
                  {"type": "custom-title", "customTitle": "   "},
                  {"type": "ai-title", "aiTitle": 5})
    assert st.custom_title == "second"
    assert st.ai_title == "ai two"


def test_titles_verbatim_not_truncated_nor_stripped():
    t = "<system-reminder>keep</system-reminder> " + "x" * 300
    _, st = parse({"type": "custom-title", "customTitle": t})
    assert st.custom_title == t


def test_git_branch_last_non_head():
    _, st = parse(rec("user", "a", gitBranch="main"), rec("user", "b", gitBranch="feature/x"),
                  rec("user", "c", gitBranch="HEAD"), rec("user", "d", gitBranch=""))
    assert st.git_branch == "feature/x"


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize("value,ms", [
    ("2026-06-03T12:00:00Z", T0_MS),
    ("2026-06-03T12:00:00.000Z", T0_MS),
    ("2026-06-03T12:00:01.250Z", T0_MS + 1250),
    ("2026-06-03T12:00:05.999999Z", T0_MS + 5999),
    ("2026-06-03T14:00:00+02:00", T0_MS),
    ("2026-06-03T07:30:00-04:30", T0_MS),
    ("2026-06-03T12:00:00.5+00:00", T0_MS + 500),
])
def test_rfc3339_to_utc_ms(value, ms):
    assert rfc3339_ms(value) == ms


@pytest.mark.parametrize("value", ["2026-06-03T12:00:00", "2026-06-03", "yesterday", "", None, 1780488000, "x" * 25])
def test_rfc3339_rejects(value):
    assert rfc3339_ms(value) is None


def test_record_timestamp_order():
    assert record_ts_ms(T0, 5) == T0_MS
    assert record_ts_ms("garbage", 1780488000123) == 1780488000123
    assert record_ts_ms(None, 1780488000123.0) is None
    assert record_ts_ms(None, "1780488000123") is None
    assert record_ts_ms(None, True) is None
    assert record_ts_ms(None, None) is None


def test_message_timestamps_and_start():
    msgs, st = parse(rec("assistant", "early", timestamp="2026-06-03T11:59:59.000Z"),
                     rec("user", "no ts", timestamp=None),
                     rec("user", "ms", timestamp=None, timestamp_ms=T0_MS + 7),
                     rec("user", "offset", timestamp="2026-06-03T14:01:30+02:00"))
    assert [m.ts_ms for m in msgs] == [T0_MS - 1000, None, T0_MS + 7, T0_MS + 90_000]
    assert st.start_ms == T0_MS - 1000  # the session's first timestamp, any conversation record


def test_claude_has_no_mtime_fallback():
    assert one(rec("user", "x", timestamp=None)).ts_ms is None


def test_start_not_taken_from_dropped_kinds():
    _, st = parse({"type": "summary", "timestamp": "2020-01-01T00:00:00Z"},
                  rec("user", "meta", isMeta=True, timestamp="2021-01-01T00:00:00Z"),
                  rec("user", "x"))
    assert st.start_ms == T0_MS


# ---------------------------------------------------------------- malformed, CRLF


@pytest.mark.parametrize("raw", [b"{not json", b'{"type":"user"', b"[1,2]", b'"str"', b"42", b"null",
                                 b'{"type":"user","message":{"content":"\\ud800"}}', b"\xff\xfe{}",
                                 b'{"type":"user","message":{"content":[{"type":"tool_use","input":{"x":1e400}}]}}'])
def test_malformed_lines_counted(raw):
    msgs, st = parse(raw, raw)
    assert msgs == [] and st.malformed == 2


def test_valid_object_without_fields_is_not_malformed():
    _, st = parse(b"{}", b'{"type":null}')
    assert st.malformed == 0


def test_crlf_line_parses():
    assert view(SOURCE.parse_line(SourceState(), line(rec("user", "x")) + b"\r", CTX)) == Message("user", "x", T0_MS)


def test_non_ascii_bytes():
    m = one(rec("assistant", [{"type": "text", "text": "日本語もOK。 Überprüfung ☕ 🎉"}]))
    assert m.text == "日本語もOK。 Überprüfung ☕ 🎉"


# ---------------------------------------------------------------- roots, discovery, identify


def test_default_roots():
    assert default_roots("claude", {"HOME": "/h"}) == [Path("/h/.claude/projects")]
    assert default_roots("claude", {"HOME": "/h", "CLAUDE_CONFIG_DIR": "/cfg"}) == [Path("/cfg/projects")]
    assert default_roots("claude", {"HOME": "/h", "CLAUDE_CONFIG_DIR": ""}) == [Path("/h/.claude/projects")]


def _touch(p: Path, text: str = "{}\n") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_discover_direct_children_only(tmp_path: Path):
    root = tmp_path / "projects"
    a = _touch(root / "-work-a" / "s1.jsonl")
    b = _touch(root / "-work-a" / "s2.jsonl")
    c = _touch(root / "-work-b" / "s3.jsonl")
    _touch(root / "-work-a" / "agent-123.jsonl")
    _touch(root / "-work-a" / "s1" / "subagents" / "agent-x.jsonl")
    _touch(root / "-work-a" / "s1" / "nested.jsonl")
    _touch(root / "-work-a" / "notes.json")
    _touch(root / "-work-a" / "s.jsonl.bak")
    _touch(root / "top.jsonl")  # a file directly in projects/ is no session
    (root / "-work-b" / "dir.jsonl").mkdir()
    found = list(SOURCE.discover(root))
    assert [i.path for i in found] == [a, b, c]
    assert [i.session_id for i in found] == ["s1", "s2", "s3"]
    assert all(i.kind == "claude" and SOURCE.fallback_cwd(i) is None for i in found)


def test_discover_and_identify_name_sessions_alike(tmp_path: Path):
    """Discovery makes its paths and ids without pathlib parsing each name; the daemon's `identify` parses
    them: for any name, both give the same identity."""
    root = tmp_path / "projects"
    paths = [_touch(root / "-w" / name) for name in ("a.b.jsonl", "..jsonl", "x y.jsonl", "ünï.jsonl", "-.jsonl")]
    found = list(SOURCE.discover(root))
    assert found == sorted((SOURCE.identify(root, p) for p in paths), key=lambda i: i.path.name)
    assert all(str(i.path) == str(root / "-w" / i.path.name) and i.path == root / "-w" / i.path.name for i in found)


def test_child_maker_makes_what_slash_makes(tmp_path: Path):
    from daemon.sources.base import child_maker

    for name in ("a", "a.b.jsonl", "..jsonl", " sp ace", "ünï"):
        made = child_maker(tmp_path)(name)
        assert (type(made), made, str(made), made.parts) == (type(tmp_path), tmp_path / name, str(tmp_path / name),
                                                           (tmp_path / name).parts)
    # without pathlib's listing helper (another Python), the plain join
    assert child_maker(PurePosixPath("/x"))("y") == PurePosixPath("/x/y")


def test_discover_missing_root(tmp_path: Path):
    assert list(SOURCE.discover(tmp_path / "nope")) == []
    _touch(tmp_path / "file")
    assert list(SOURCE.discover(tmp_path / "file")) == []


def test_discover_with_claude_config_dir(tmp_path: Path):
    cfg = tmp_path / "cfg"
    p = _touch(cfg / "projects" / "-x" / "abc.jsonl")
    [root] = default_roots("claude", {"HOME": str(tmp_path / "home"), "CLAUDE_CONFIG_DIR": str(cfg)})
    assert [i.path for i in SOURCE.discover(root)] == [p]


def test_identify(tmp_path: Path):
    root = tmp_path / "projects"
    ok = root / "-p" / "sess.jsonl"
    assert SOURCE.identify(root, ok).session_id == "sess"
    assert SOURCE.identify(root, root / "-p" / "agent-1.jsonl") is None
    assert SOURCE.identify(root, root / "-p" / "sess" / "subagents" / "a.jsonl") is None
    assert SOURCE.identify(root, root / "-p" / "sess.json") is None
    assert SOURCE.identify(root, root / "sess.jsonl") is None
    assert SOURCE.identify(root, tmp_path / "other" / "-p" / "sess.jsonl") is None
