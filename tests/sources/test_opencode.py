"""OpenCode source: the SQLite store (1.x tables, 2.x session_message) and the ≤ 1.1 JSON tree → messages,
session state, discovery, identity and versions (formats-other-agents §3). Real SQLite files built from
tests/fixtures/opencode/*.sql, a real storage/ tree; a second connection and a second process write the
database while we read it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.agents import opencode as gen  # noqa: E402
from daemon.sources import default_roots  # noqa: E402
from daemon.sources.base import Identity, Incomplete, ParseContext  # noqa: E402
from daemon.sources.opencode import (SOURCE, OpenCodeState, connect, detect_schema, is_placeholder_title,  # noqa: E402
                                     read_db_session, tool_parts, v1_messages, v2_messages)
from daemon.transcript import ToolCall, ToolResult  # noqa: E402
from message_view import View as Message, view  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "opencode"
CTX = ParseContext(mtime_ms=0)
TITLED, PLACEHOLDER, CHILD, V2 = "ses_7a1f3c2e9ffeXq", "ses_7a0e11112222Zz", "ses_7a1f00000001Ch", "ses_79ff00000001V2"
JSON_ONLY, JSON_CHILD = "ses_7c00aaaa0001Js", "ses_7c00bbbb0001Ch"
PROJECT = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def load_sql(db: Path, name: str, repo: Path) -> None:
    con = sqlite3.connect(db)
    try:
        con.executescript((FIXTURES / name).read_text().replace("@REPO@", str(repo)))
    finally:
        con.close()


def install(tmp: Path, *, schema: str = "v1", json_tree: bool = True, db: bool = True) -> tuple[Path, Path]:
    """The data dir (tmp/data/opencode) with the fixture database and/or storage tree; and the cwd."""
    repo = tmp / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    data = tmp / "data" / "opencode"
    data.mkdir(parents=True, exist_ok=True)
    if db:
        gen.create_db(data / "opencode.db", schema)
        load_sql(data / "opencode.db", "v1.sql", repo)
        if schema == "v2":
            load_sql(data / "opencode.db", "v2.sql", repo)
    if json_tree:
        for src in sorted((FIXTURES / "storage").rglob("*.json")):
            dst = data / "storage" / src.relative_to(FIXTURES / "storage")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text().replace("@REPO@", str(repo)))
    return data, repo


def ident_db(data: Path, sid: str) -> Identity:
    return Identity("opencode", sid, data / "opencode.db" / sid)


def read(ident: Identity) -> tuple[list[Message], OpenCodeState]:
    snap = SOURCE.read_snapshot(ident, CTX)
    assert isinstance(snap.state, OpenCodeState)
    return [view(m) for m in snap.messages], snap.state


def call_note(name: str, *lines: str) -> str:
    return "\n".join([f"[external_agent_tool_call: {name}]", *lines, "[/external_agent_tool_call]"])


def result_note(text: str, error: bool = False) -> str:
    return f"[external_agent_tool_result{': error' if error else ''}]\n{text}\n[/external_agent_tool_result]"


# ---------------------------------------------------------------- the 1.x database

def test_titled_session_reads_user_assistant_tools_in_order(tmp_path):
    data, repo = install(tmp_path)
    msgs, state = read(ident_db(data, TITLED))
    assert msgs == [
        Message("user", "Why does parser.test.ts flake?", 1778300001000),  # synthetic and ignored parts dropped
        Message("assistant", "Let me run the test.\n\n"
                + call_note("bash", "description: Run parser tests", "command: bun test parser"), 1778300002000),
        Message("assistant", result_note("1 fail"), 1778300002000),
        Message("assistant", call_note("read", 'input: {"filePath":"missing.ts"}'), 1778300002000),
        Message("assistant", result_note("File not found: missing.ts", error=True), 1778300002000),
        Message("assistant", "The test depends on the clock.", 1778300002000),  # reasoning, steps dropped
        Message("user", "Fix it please.", 1778300020000),
        Message("assistant", "Done: the test now uses a fake clock.", 1778300021000),
    ]
    assert (state.cwd, state.custom_title, state.start_ms, state.store) == (str(repo), "Fix flaky parser test",
                                                                         1778300000000, "db")
    assert (state.malformed, state.unknown, state.child, state.shadowed) == (0, 0, False, False)


def test_tool_results_are_user_role_messages_of_only_results(tmp_path):
    data, _ = install(tmp_path)
    snap = SOURCE.read_snapshot(ident_db(data, TITLED), CTX)
    results = [m for m in snap.messages if any(type(p) is ToolResult for p in m.parts)]
    assert [(m.role, [type(p) for p in m.parts]) for m in results] == [("user", [ToolResult])] * 2
    calls = [p for m in snap.messages for p in m.parts if type(p) is ToolCall]
    assert calls[0] == ToolCall("bash", {"command": "bun test parser", "description": "Run parser tests"})


def test_placeholder_title_is_no_title_cwd_from_assistant_path_pending_tool_dropped(tmp_path):
    data, repo = install(tmp_path)
    msgs, state = read(ident_db(data, PLACEHOLDER))
    assert msgs == [Message("user", "List the files", 1778300101000),
                    Message("assistant", "Listing them now.", 1778300102000)]
    assert state.custom_title is None
    assert state.cwd == str(repo)  # session.directory is empty


def test_child_session_is_not_discovered_and_reads_empty(tmp_path):
    data, _ = install(tmp_path)
    assert CHILD not in {i.session_id for i in SOURCE.discover(data)}
    msgs, state = read(ident_db(data, CHILD))
    assert msgs == [] and state.child


def test_child_sessions_are_listed_and_read_only_when_asked(tmp_path):
    data, repo = install(tmp_path)
    top = {i.session_id for i in SOURCE.discover(data)}
    children = list(SOURCE.discover_children(data))
    assert children == [ident_db(data, CHILD), Identity("opencode", JSON_CHILD, data / "storage" / "session" / "global"
                                                        / f"{JSON_CHILD}.json")]
    assert not top & {i.session_id for i in children}
    on = ParseContext(mtime_ms=0, child_sessions=True)
    snap = SOURCE.read_snapshot(ident_db(data, CHILD), on)
    assert [view(m) for m in snap.messages] == [Message("user", "subagent prompt", 1778300005000)]
    assert (snap.state.child, snap.state.custom_title, snap.state.cwd, snap.state.start_ms) == (
        True, None, str(repo), 1778300005000)  # `Child session - …` is a placeholder: no title
    snap = SOURCE.read_snapshot(children[1], on)
    assert snap.messages == [] and snap.state.child and snap.state.cwd == str(repo)  # no messages in the tree
    gen.add_session(data / "opencode.db", "ses_7a1f00000002Ch", directory=str(repo), title="Survey the parser",
                    created=1778300007000, project=PROJECT, parent=TITLED)
    snap = SOURCE.read_snapshot(ident_db(data, "ses_7a1f00000002Ch"), on)
    assert snap.state.custom_title == "Survey the parser"  # a child's own title is its thread's
    assert SOURCE.read_snapshot(ident_db(data, "ses_7a1f00000002Ch"), CTX).state.custom_title is None  # off: empty


@pytest.mark.parametrize("title, placeholder", [
    ("New session - 2026-05-09T04:26:40.000Z", True),
    ("Child session - 2026-05-09T04:26:40.000Z", True),
    ("New Session - 2025-06-01T00:00:00.000Z", True),  # the oldest releases capitalised it
    ("Untitled", True), ("", True), ("   ", True),
    ("New session handling", False), ("Fix flaky parser test", False),
])
def test_placeholder_titles(title, placeholder):
    assert is_placeholder_title(title) is placeholder


def test_messages_ordered_by_time_then_id_parts_by_id(tmp_path):
    db = tmp_path / "opencode.db"
    gen.create_db(db)
    gen.add_session(db, "ses_1", directory=str(tmp_path), title="t", created=1000)
    con = gen.connect(db)
    # inserted out of order: same time_created for two messages (id breaks the tie), parts reversed
    gen.insert_message(con, "ses_1", "msg_b", gen.user(2000), [("prt_2", gen.text("second")), ("prt_1", gen.text("first"))], 2000)
    gen.insert_message(con, "ses_1", "msg_a", gen.user(2000), [("prt_0", gen.text("zero"))], 2000)
    gen.insert_message(con, "ses_1", "msg_0", gen.user(1500), [("prt_9", gen.text("earliest"))], 1500)
    con.close()
    msgs, state = read(Identity("opencode", "ses_1", db / "ses_1"))
    assert [m.text for m in msgs] == ["earliest", "zero", "first\n\nsecond"]
    assert state.start_ms == 1000


def test_bad_rows_are_counted_not_fatal(tmp_path):
    db = tmp_path / "opencode.db"
    gen.create_db(db)
    gen.add_session(db, "ses_1", directory=str(tmp_path), title="t", created=1000)
    con = gen.connect(db)
    con.execute("INSERT INTO message VALUES ('msg_1', 'ses_1', 1100, 1100, '{not json')")
    con.execute("INSERT INTO message VALUES ('msg_2', 'ses_1', 1200, 1200, '[1, 2]')")
    con.execute("""INSERT INTO message VALUES ('msg_3', 'ses_1', 1300, 1300, '{"role":"system"}')""")
    gen.insert_message(con, "ses_1", "msg_4", gen.user(1400), [
        ("prt_1", gen.text("kept")), ("prt_2", {"type": "hologram"}), ("prt_3", {"type": "file", "mime": "text/plain"}),
        ("prt_4", {"type": "file", "mime": "image/png", "url": "data:"}), ("prt_5", {"type": "text", "text": 7}),
    ], 1400)
    con.execute("INSERT INTO part VALUES ('prt_6', 'msg_4', 'ses_1', 1400, 1400, 'nope')")
    con.close()
    msgs, state = read(Identity("opencode", "ses_1", db / "ses_1"))
    assert msgs == [Message("user", "kept\n\n[external unsupported block: image]", 1400)]
    assert (state.malformed, state.unknown) == (3, 2)  # two messages and a part; a role and a part type


def test_cwd_falls_back_to_the_project_worktree(tmp_path):
    db = tmp_path / "opencode.db"
    gen.create_db(db)
    gen.add_session(db, "ses_1", directory="", title="t", created=1000, project="p1", worktree="/srv/repo")
    gen.add_message(db, "ses_1", "msg_1", gen.user(1100), [("prt_1", gen.text("hi"))], 1100)
    _, state = read(Identity("opencode", "ses_1", db / "ses_1"))
    assert state.cwd == "/srv/repo"


# ---------------------------------------------------------------- 2.x session_message

def test_v2_session_message_rows(tmp_path):
    data, repo = install(tmp_path, schema="v2")
    msgs, state = read(ident_db(data, V2))
    assert msgs == [
        Message("user", "Rename helper() to assist()", 1778400001000),  # system and synthetic rows dropped
        Message("assistant", "Searching.\n\n" + call_note("grep", 'input: {"pattern":"helper"}'), 1778400002000),
        Message("assistant", result_note("src/a.ts:3"), 1778400002000),
        Message("assistant", call_note("edit", 'input: {"filePath":"src/a.ts"}'), 1778400002000),
        Message("assistant", result_note("permission denied", error=True), 1778400002000),
        Message("assistant", "Renamed.", 1778400002000),
        Message("assistant", call_note("bash", "command: git status"), 1778400011000),  # the user's `!git status`
        Message("assistant", result_note("clean"), 1778400011000),
    ]
    assert (state.store, state.cwd, state.custom_title, state.start_ms) == ("db-v2", str(repo), "Rename the helper",
                                                                          1778400000000)
    assert state.unknown == 1  # the future row type


def test_v2_database_still_reads_frozen_1x_sessions(tmp_path):
    data, _ = install(tmp_path, schema="v2")
    msgs, state = read(ident_db(data, TITLED))
    assert state.store == "db" and msgs[0] == Message("user", "Why does parser.test.ts flake?", 1778300001000)
    assert {i.session_id for i in SOURCE.discover(data)} >= {TITLED, PLACEHOLDER, V2}


def test_v2_seq_column_orders_rows_when_present(tmp_path):
    db = tmp_path / "opencode.db"
    gen.create_db(db, "v2")
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE session_message ADD COLUMN seq integer")
    con.close()
    gen.add_session(db, "ses_1", directory=str(tmp_path), title="t", created=1000)
    con = sqlite3.connect(db, isolation_level=None)
    for rid, seq, text in (("a", 2, "second"), ("b", 1, "first")):
        con.execute("INSERT INTO session_message (id, session_id, type, seq, time_created, time_updated, data) "
                    "VALUES (?, 'ses_1', 'user', ?, 5, 5, ?)", (rid, seq, json.dumps({"text": text})))
    con.close()
    msgs, _ = read(Identity("opencode", "ses_1", db / "ses_1"))
    assert [m.text for m in msgs] == ["first", "second"]


@pytest.mark.parametrize("state, expected", [
    ({"status": "pending", "input": {}, "raw": "{"}, (None, None)),
    ({"status": "running", "input": {"command": "ls"}}, (ToolCall("bash", {"command": "ls"}), None)),
    ({"status": "completed", "input": {}, "output": "ok"}, (ToolCall("bash", {}), ToolResult("ok"))),
    ({"status": "completed", "input": {}}, (ToolCall("bash", {}), ToolResult(""))),  # output pruned
    ({"status": "error", "input": {}, "error": "boom"}, (ToolCall("bash", {}), ToolResult("boom", True))),
    ({"status": "weird"}, (None, None)),
    ("not an object", (None, None)),
])
def test_tool_states(state, expected):
    assert tool_parts("bash", state) == expected


def test_v2_tool_result_falls_back_to_result_field():
    assert tool_parts("t", {"status": "completed", "input": {}, "content": [], "result": "r"}, v2=True)[1] == ToolResult("r")
    assert tool_parts("t", {"status": "completed", "input": {}, "content": [{"type": "text", "text": "a"},
                                                                              {"type": "text", "text": "b"}]},
                      v2=True)[1] == ToolResult("a\nb")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(
                               ["role", "type", "text", "time", "state", "status", "input", "content", "tool",
                                "name", "created", "path", "cwd", "synthetic", "summary", "output", "error"]),
                               c, max_size=5), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(json_values, st.lists(json_values, max_size=3)), max_size=4),
       st.lists(st.tuples(st.sampled_from(["user", "assistant", "shell", "x"]), json_values), max_size=4))
def test_never_raises_on_any_json(v1, v2):
    state = OpenCodeState()
    rows = [(f"m{i}", None, json.dumps(info), [(f"p{j}", json.dumps(p)) for j, p in enumerate(parts)])
            for i, (info, parts) in enumerate(v1)]
    for m in v1_messages(state, rows) + v2_messages(state, [(f"r{i}", k, None, json.dumps(d))
                                                            for i, (k, d) in enumerate(v2)]):
        assert m.role in ("user", "assistant") and m.parts


# ---------------------------------------------------------------- the JSON tree

def test_json_only_session(tmp_path):
    data, repo = install(tmp_path)
    path = data / "storage" / "session" / PROJECT / f"{JSON_ONLY}.json"
    msgs, state = read(Identity("opencode", JSON_ONLY, path))
    assert msgs == [
        Message("user", "What is in README?", 1770000002000),
        Message("assistant", call_note("read", 'input: {"filePath":"README"}'), 1770000003000),
        Message("assistant", result_note("fixture"), 1770000003000),
        Message("assistant", "README says: fixture", 1770000003000),
    ]
    assert (state.store, state.cwd, state.custom_title, state.start_ms) == ("json", str(repo),
                                                                          "Legacy JSON session", 1770000001000)


def test_json_cwd_from_project_worktree(tmp_path):
    data, repo = install(tmp_path, db=False)
    msg = data / "storage" / "message" / JSON_ONLY / "msg_7000aaaa0002Aa.json"
    info = json.loads(msg.read_text())
    del info["path"]
    msg.write_text(json.dumps(info, indent=2))
    _, state = read(Identity("opencode", JSON_ONLY, data / "storage" / "session" / PROJECT / f"{JSON_ONLY}.json"))
    assert state.cwd == str(repo)  # project/<id>.json worktree


def test_json_copy_of_a_db_session_is_shadowed(tmp_path):
    data, _ = install(tmp_path)
    path = data / "storage" / "session" / PROJECT / f"{TITLED}.json"
    ident = SOURCE.identify(data, path)
    assert ident == Identity("opencode", TITLED, path)
    msgs, state = read(ident)
    assert msgs == [] and state.shadowed
    # without the database it is the session
    (data / "opencode.db").unlink()
    msgs, state = read(ident)
    assert msgs == [Message("user", "old copy text", 1778300001000)] and state.custom_title == "Old copy title"


def test_json_child_reads_empty(tmp_path):
    data, _ = install(tmp_path)
    msgs, state = read(Identity("opencode", JSON_CHILD, data / "storage" / "session" / "global" / f"{JSON_CHILD}.json"))
    assert msgs == [] and state.child


def test_half_written_part_is_incomplete_then_skipped_once_old(tmp_path):
    data, _ = install(tmp_path, db=False)
    part = data / "storage" / "part" / "msg_7000aaaa0002Aa" / "prt_7000aaaa0003Pa.json"
    part.write_text('{\n  "id": "prt_7000aaaa0003Pa",\n  "type": "text",\n  "text": "README sa')  # Bun.write mid-way
    ident = Identity("opencode", JSON_ONLY, data / "storage" / "session" / PROJECT / f"{JSON_ONLY}.json")
    with pytest.raises(Incomplete):
        SOURCE.read_snapshot(ident, CTX)
    old = time.time() - 3600
    os.utime(part, (old, old))
    msgs, state = read(ident)
    assert state.malformed == 1 and msgs[-1].text.startswith("[external_agent_tool_result]")


def test_json_version_changes_with_any_file_of_the_session(tmp_path):
    data, _ = install(tmp_path, db=False)
    ident = Identity("opencode", JSON_ONLY, data / "storage" / "session" / PROJECT / f"{JSON_ONLY}.json")
    v0 = SOURCE.version(ident)
    assert v0.inode == 6  # the session file, 2 messages, 3 parts
    assert SOURCE.version(ident) == v0
    part = data / "storage" / "part" / "msg_7000aaaa0002Aa" / "prt_7000aaaa0003Pa.json"
    part.write_text(part.read_text().replace("fixture", "fixture, grown"))
    os.utime(part, ns=(v0.mtime_ns + 10**9, v0.mtime_ns + 10**9))
    v1 = SOURCE.version(ident)
    assert v1 != v0 and v1.size == v0.size + len(", grown")
    gen.write_json_message(data, JSON_ONLY, "msg_7000aaaa0003Aa", gen.user(1770000010000), [("prt_x", gen.text("more"))])
    assert SOURCE.version(ident).inode == 8


# ---------------------------------------------------------------- discovery, identity, roots

def test_discover_dedupes_db_wins_and_skips_children(tmp_path):
    data, _ = install(tmp_path)
    found = list(SOURCE.discover(data))
    assert found == [
        Identity("opencode", PLACEHOLDER, data / "opencode.db" / PLACEHOLDER),
        Identity("opencode", TITLED, data / "opencode.db" / TITLED),
        Identity("opencode", JSON_ONLY, data / "storage" / "session" / PROJECT / f"{JSON_ONLY}.json"),
    ]


def test_discover_channel_databases_and_a_database_root(tmp_path):
    data, _ = install(tmp_path, json_tree=False)
    beta = data / "opencode-beta.db"
    gen.create_db(beta)
    gen.add_session(beta, TITLED, directory="/x", title="dup", created=1)  # opencode.db has it: it wins
    gen.add_session(beta, "ses_beta", directory="/x", title="beta", created=1)
    assert [i.path for i in SOURCE.discover(data)] == [data / "opencode.db" / PLACEHOLDER,
                                                       data / "opencode.db" / TITLED, beta / "ses_beta"]
    assert [i.path for i in SOURCE.discover(beta)] == [beta / TITLED, beta / "ses_beta"]  # a DB file as root
    assert SOURCE.read_snapshot(Identity("opencode", "ses_beta", beta / "ses_beta"), CTX).state.custom_title == "beta"


def test_unknown_and_broken_databases_are_skipped_with_a_reason(tmp_path):
    data = tmp_path / "opencode"
    data.mkdir()
    con = sqlite3.connect(data / "opencode.db")
    con.execute("CREATE TABLE kv (k text, v text)")
    con.close()
    (data / "opencode-dev.db").write_bytes(b"this is not sqlite" * 100)
    assert list(SOURCE.discover(data)) == []
    assert "not an OpenCode database" in SOURCE.unknown_stores[str(data / "opencode.db")]
    assert str(data / "opencode-dev.db") in SOURCE.unknown_stores
    with pytest.raises(FileNotFoundError):
        SOURCE.version(Identity("opencode", "ses_x", data / "opencode.db" / "ses_x"))


def test_identify_is_by_path_shape(tmp_path):
    root = tmp_path / "opencode"
    s = root / "storage" / "session" / PROJECT / "ses_a.json"
    assert SOURCE.identify(root, s) == Identity("opencode", "ses_a", s)
    for p in (root / "opencode.db", root / "opencode.db-wal", root / "opencode.db-shm",
              root / "storage" / "message" / "ses_a" / "msg_1.json", root / "storage" / "part" / "msg_1" / "prt_1.json",
              root / "storage" / "project" / "p.json", root / "storage" / "session" / PROJECT / "ses_a.txt",
              tmp_path / "elsewhere" / "storage" / "session" / PROJECT / "ses_a.json"):
        assert SOURCE.identify(root, p) is None, p
    assert SOURCE.watch.wants("opencode.db-wal") and SOURCE.watch.wants("ses_a.json")
    assert set(SOURCE.watch.rescan_names) == {"opencode.db", "opencode.db-wal"}


@pytest.mark.parametrize("env, expected", [
    ({"HOME": "/h"}, ["/h/.local/share/opencode"]),
    ({"HOME": "/h", "XDG_DATA_HOME": "/x"}, ["/x/opencode"]),
    ({"HOME": "/h", "XDG_DATA_HOME": ""}, ["/h/.local/share/opencode"]),
    ({"HOME": "/h", "OPENCODE_DB": "/db/mine.db"}, ["/h/.local/share/opencode", "/db/mine.db"]),
    ({"HOME": "/h", "OPENCODE_DB": "/db/opencode.db"}, ["/h/.local/share/opencode", "/db"]),
    ({"HOME": "/h", "OPENCODE_DB": "custom.db"}, ["/h/.local/share/opencode", "/h/.local/share/opencode/custom.db"]),
    ({"HOME": "/h", "OPENCODE_DB": "opencode.db"}, ["/h/.local/share/opencode"]),
    ({"HOME": "/h", "OPENCODE_DB": ":memory:"}, ["/h/.local/share/opencode"]),
])
def test_default_roots(env, expected):
    assert [str(p) for p in default_roots("opencode", env)] == expected


# ---------------------------------------------------------------- versions and a live writer

def test_db_version_changes_with_rows_and_title_and_is_stable_otherwise(tmp_path):
    data, _ = install(tmp_path, json_tree=False)
    db, ident = data / "opencode.db", ident_db(data, TITLED)
    v0 = SOURCE.version(ident)
    assert (v0.size, v0.inode, v0.mtime_ns) == (4, 12, 1778300123000 * 1_000_000)
    assert SOURCE.version(ident) == v0
    gen.add_message(db, TITLED, "msg_z", gen.user(1778300200000), [("prt_z", gen.text("again"))], 1778300200000)
    v1 = SOURCE.version(ident)
    assert (v1.size, v1.inode, v1.mtime_ns) == (5, 13, 1778300200000 * 1_000_000)
    gen.set_title(db, TITLED, "Renamed", 1778300300000)
    assert SOURCE.version(ident).mtime_ns == 1778300300000 * 1_000_000
    assert SOURCE.version(ident_db(data, PLACEHOLDER)) != SOURCE.version(ident)
    with pytest.raises(FileNotFoundError):
        SOURCE.version(ident_db(data, "ses_gone"))
    with pytest.raises(FileNotFoundError):
        SOURCE.version(Identity("opencode", TITLED, tmp_path / "nowhere" / "opencode.db" / TITLED))


def test_reader_is_read_only(tmp_path):
    data, _ = install(tmp_path, json_tree=False)
    con = connect(data / "opencode.db")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        con.execute("DELETE FROM message")
    con.close()


def test_a_write_during_our_read_is_not_half_seen(tmp_path):
    """Interleaved in one thread: our read transaction has begun when a second connection commits a new
    message with its parts and a changed title; the reading stays the snapshot it began at, and the
    writer was not blocked (WAL). The next reading sees all of it."""
    data, _ = install(tmp_path, json_tree=False)
    db = data / "opencode.db"
    before = SOURCE.read_snapshot(ident_db(data, TITLED), CTX)
    reader = connect(db)
    reader.execute("BEGIN")
    schema = detect_schema(reader)  # the first read: the snapshot is fixed here
    writer = gen.connect(db)
    writer.execute("BEGIN IMMEDIATE")
    gen.insert_message(writer, TITLED, "msg_zz", gen.assistant(1778300500000, "/x", "m"),
                       [("prt_za", gen.text("new answer")),
                        ("prt_zb", gen.tool("bash", "c9", {"command": "ls"}, "a b", 1778300500000))], 1778300500000)
    writer.execute("UPDATE session SET title = 'Changed' WHERE id = ?", (TITLED,))
    writer.execute("COMMIT")  # committed while our read transaction is open
    writer.close()
    state, messages, digest = read_db_session(reader, schema, TITLED)
    reader.execute("COMMIT")
    reader.close()
    assert messages == before.messages and digest == before.digest and state.custom_title == "Fix flaky parser test"
    after = SOURCE.read_snapshot(ident_db(data, TITLED), CTX)
    assert after.messages[: len(before.messages)] == before.messages
    assert [view(m).text for m in after.messages[len(before.messages):]] == [
        "new answer\n\n" + call_note("bash", "command: ls"), result_note("a b")]
    assert after.state.custom_title == "Changed" and after.digest != before.digest


WRITER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from bench.agents import opencode as gen
db, n = Path(sys.argv[2]), int(sys.argv[3])
con = gen.connect(db)
for i in range(n):
    at = 1778301000000 + i * 10
    con.execute("BEGIN IMMEDIATE")
    gen.insert_message(con, "ses_7a1f3c2e9ffeXq", f"msg_w{i:05d}a", gen.user(at), [(f"prt_w{i:05d}a", gen.text(f"q{i}"))], at)
    gen.insert_message(con, "ses_7a1f3c2e9ffeXq", f"msg_w{i:05d}b", gen.assistant(at + 1, "/x", "p"),
                       [(f"prt_w{i:05d}b", gen.text(f"a{i}")),
                        (f"prt_w{i:05d}c", gen.tool("bash", f"c{i}", {"command": f"echo {i}"}, f"{i}", at + 1))], at + 1)
    con.execute("COMMIT")
    if i % 50 == 0:
        con.execute("PRAGMA wal_checkpoint(PASSIVE)")
con.close()
print("done", n)
"""


def test_a_second_process_writing_while_we_read(tmp_path):
    """A real OpenCode-like writer process commits turns (a user message, an assistant message with a
    tool call) while we read the session again and again: every reading is a whole number of turns in
    order, versions only grow, and the writer finishes every commit (we never block it)."""
    data, _ = install(tmp_path, json_tree=False)
    db, ident = data / "opencode.db", ident_db(data, TITLED)
    base = len(SOURCE.read_snapshot(ident, CTX).messages)
    n = 400
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(REPO), str(db), str(n)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    readings, last_size = [], -1
    while True:
        done = proc.poll() is not None
        v = SOURCE.version(ident)
        snap = SOURCE.read_snapshot(ident, CTX)
        assert v.size >= last_size
        last_size = v.size
        readings.append(len(snap.messages))
        texts = [view(m).text for m in snap.messages[base:]]
        assert len(texts) % 3 == 0  # q, a + call, result: never half a turn
        assert texts == [t for i in range(len(texts) // 3)
                         for t in (f"q{i}", f"a{i}\n\n" + call_note("bash", f"command: echo {i}"), result_note(f"{i}"))]
        if done:
            break
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == f"done {n}", err
    assert readings[-1] == base + 3 * n
    assert SOURCE.version(ident).size == 4 + 2 * n


def test_a_replaced_database_and_a_migrated_schema_are_seen(tmp_path):
    """The kept-open connection: a file replaced at the same path is reopened, new tables are detected."""
    db = tmp_path / "opencode.db"
    gen.create_db(db)
    gen.add_session(db, "ses_1", directory=str(tmp_path), title="first file", created=1000)
    ident = Identity("opencode", "ses_1", db / "ses_1")
    assert SOURCE.read_snapshot(ident, CTX).state.custom_title == "first file"
    other = tmp_path / "new.db"
    gen.create_db(other)
    gen.add_session(other, "ses_1", directory=str(tmp_path), title="second file", created=1000)
    os.replace(other, db)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    assert SOURCE.read_snapshot(ident, CTX).state.custom_title == "second file"
    con = gen.connect(db)
    con.executescript(gen.SCHEMA_V2[len(gen.SCHEMA_V1):])  # OpenCode 2.x migrates the same file
    con.close()
    gen.add_v2_message(db, "ses_1", "smg_1", "user", {"text": "from 2.x", "time": {"created": 2000}}, 2000)
    snap = SOURCE.read_snapshot(ident, CTX)
    assert [view(m) for m in snap.messages] == [Message("user", "from 2.x", 2000)] and snap.state.store == "db-v2"
