"""OpenCode fixtures (a 2.x database holding 1.x and 2.x sessions, and the legacy storage/ tree) through the
real `session-syncd import` into threads the real `codex app-server` lists and reads: user/assistant texts,
cwd and title; children and the legacy copy of a database session are no threads; a second import
changes nothing; a session that gained messages (in the database, in the JSON tree) is appended to the
same thread."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer
from support import MARKER, Tree, cli_command, read_view, require_codex, run_import

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.agents import opencode as gen  # noqa: E402
from test_opencode import (CHILD, JSON_CHILD, JSON_ONLY, PLACEHOLDER, PROJECT, TITLED, V2,  # noqa: E402
                           call_note, install, result_note)

pytestmark = pytest.mark.codex


def expected(repo: Path) -> dict[str, tuple[str, str, list[tuple[str, list[str]]]]]:
    """session id → (cwd, title, thread/read view)."""
    return {
        TITLED: (str(repo), "Fix flaky parser test", [
            ("Why does parser.test.ts flake?", [
                "Let me run the test.\n\n" + call_note("bash", "description: Run parser tests",
                                                         "command: bun test parser"),
                result_note("1 fail"),
                call_note("read", 'input: {"filePath":"missing.ts"}'),
                result_note("File not found: missing.ts", error=True),
                "The test depends on the clock."]),
            ("Fix it please.", ["Done: the test now uses a fake clock.", MARKER])]),
        PLACEHOLDER: (str(repo), "List the files", [("List the files", ["Listing them now.", MARKER])]),
        V2: (str(repo), "Rename the helper", [
            ("Rename helper() to assist()", [
                "Searching.\n\n" + call_note("grep", 'input: {"pattern":"helper"}'),
                result_note("src/a.ts:3"),
                call_note("edit", 'input: {"filePath":"src/a.ts"}'),
                result_note("permission denied", error=True),
                "Renamed.",
                call_note("bash", "command: git status"),
                result_note("clean"), MARKER])]),
        JSON_ONLY: (str(repo), "Legacy JSON session", [
            ("What is in README?", [call_note("read", 'input: {"filePath":"README"}'), result_note("fixture"),
                                    "README says: fixture", MARKER])]),
    }


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Tree, Path, Path]:
    require_codex()
    t = Tree(tmp_path)
    data, repo = install(tmp_path / "src", schema="v2")
    t.codex_home.mkdir()
    return t, data, repo


def _threads(tree: Tree) -> dict[str, tuple[dict, dict]]:
    with CodexAppServer(tree.home, tree.codex_home) as codex:
        return {t["id"]: (t, codex.read_thread(t["id"])) for t in codex.list_threads()}


def _by_session(tree: Tree) -> dict[str, str]:
    with sqlite3.connect(tree.ledger_path) as db:
        return {sid: tid for sid, tid in db.execute(
            "SELECT session_id, thread_id FROM sessions WHERE source = 'opencode'")}


def test_fixtures_import_into_threads_codex_lists_and_reads(tree) -> None:
    t, data, repo = tree
    summary = run_import(t, "--opencode-root", str(data))
    assert summary["imported"] == 4, summary
    ids = _by_session(t)
    assert sorted(ids) == sorted(expected(repo))  # no child session, no second thread for the JSON copy
    threads = _threads(t)
    assert sorted(threads) == sorted(ids.values())
    for sid, (cwd, title, view) in expected(repo).items():
        listed, read = threads[ids[sid]]
        assert listed["cwd"] == cwd, sid
        assert read["name"] == title, sid
        assert read_view(read) == view, sid

    before = {p: p.read_bytes() for p in t.rollouts()}
    again = run_import(t, "--opencode-root", str(data))
    assert (again["imported"], again["unchanged"]) == (0, 4), again
    assert {p: p.read_bytes() for p in t.rollouts()} == before


def test_default_root_is_found_from_xdg_data_home(tree) -> None:
    t, data, _ = tree
    env = t.env()
    env["XDG_DATA_HOME"] = str(data.parent)
    proc = subprocess.run(cli_command("import", "--json"), env=env, cwd=t.root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["imported"] == 4


def test_sessions_that_grew_append_to_their_threads(tree) -> None:
    t, data, repo = tree
    run_import(t, "--opencode-root", str(data))
    ids = _by_session(t)
    db = data / "opencode.db"
    at = 1778300600000
    gen.add_message(db, TITLED, "msg_zz01", gen.user(at), [("prt_zz01", gen.text("And the other test?"))], at)
    gen.add_message(db, TITLED, "msg_zz02", gen.assistant(at + 1000, str(repo), "msg_zz01"),
                    [("prt_zz02", gen.text("It was fine."))], at + 1000)
    gen.write_json_message(data, JSON_ONLY, "msg_7000aaaa0009Aa", gen.user(1770000100000),
                           [("prt_7000aaaa0009Pa", gen.text("Thanks"))])
    gen.write_json_message(data, JSON_ONLY, "msg_7000aaaa0010Aa", gen.assistant(1770000101000, str(repo), "x"),
                           [("prt_7000aaaa0010Pa", gen.text("You're welcome."))])
    summary = run_import(t, "--opencode-root", str(data))
    assert summary["by_kind"] == {"appended": 2}, summary
    assert _by_session(t) == ids
    threads = _threads(t)
    view = read_view(threads[ids[TITLED]][1])
    assert view[:1] == expected(repo)[TITLED][2][:1]
    assert view[1] == ("Fix it please.", ["Done: the test now uses a fake clock."])
    assert view[2] == ("And the other test?", ["It was fine.", MARKER])
    view = read_view(threads[ids[JSON_ONLY]][1])
    assert view[1] == ("Thanks", ["You're welcome.", MARKER])
    assert len(threads) == 4


def test_opencode_db_names_a_database_elsewhere(tree) -> None:
    t, data, _ = tree
    moved = t.root / "elsewhere" / "opencode.db"
    moved.parent.mkdir()
    src, dst = sqlite3.connect(data / "opencode.db"), sqlite3.connect(moved)
    src.backup(dst)
    src.close()
    dst.close()
    env = t.env()
    env["OPENCODE_DB"] = str(moved)  # the default data dir ($HOME/.local/share/opencode) does not exist
    proc = subprocess.run(cli_command("import", "--json"), env=env, cwd=t.root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["imported"] == 3  # the DB's sessions, not the JSON one
    assert sorted(_by_session(t)) == sorted([TITLED, PLACEHOLDER, V2])


# ---------------------------------------------------------------- child sessions (subagent runs)

CHILD_TITLED = "ses_7a1f00000002Ch"
TASK_NOTE = call_note("task", "description: Survey the parser")


def _run_a_subagent(data: Path, repo: Path) -> None:
    """TITLED runs a subagent (its `task` call and result) whose child session has a title of its own."""
    db, at = data / "opencode.db", 1778300030000
    gen.add_message(db, TITLED, "msg_zz10", gen.user(at), [("prt_zz10", gen.text("Ask a subagent to survey it."))], at)
    gen.add_message(db, TITLED, "msg_zz11", gen.assistant(at + 100, str(repo), "msg_zz10"), [("prt_zz11", gen.tool(
        "task", "toolu_task", {"description": "Survey the parser", "prompt": "Find what reads the clock",
                               "subagent_type": "general"}, "parser.ts reads Date.now() directly.", at + 100))],
        at + 100)
    gen.add_session(db, CHILD_TITLED, directory=str(repo), title="Survey the parser", created=at + 200,
                    project=PROJECT, parent=TITLED)
    gen.add_message(db, CHILD_TITLED, "msg_zz12", gen.user(at + 200),
                    [("prt_zz12", gen.text("Find what reads the clock"))], at + 200)
    gen.add_message(db, CHILD_TITLED, "msg_zz13", gen.assistant(at + 300, str(repo), "msg_zz12"),
                    [("prt_zz13", gen.text("parser.ts reads Date.now() directly."))], at + 300)


def _parent_task_turn(threads: dict, ids: dict) -> tuple[str, list[str]]:
    return read_view(threads[ids[TITLED]][1])[-1]


def test_child_sessions_are_no_threads_by_default(tree) -> None:
    t, data, repo = tree
    _run_a_subagent(data, repo)
    summary = run_import(t, "--opencode-root", str(data))
    assert summary["imported"] == 4, summary
    ids = _by_session(t)
    assert CHILD not in ids and CHILD_TITLED not in ids and JSON_CHILD not in ids
    threads = _threads(t)
    assert len(threads) == 4
    assert _parent_task_turn(threads, ids) == ("Ask a subagent to survey it.", [
        TASK_NOTE, result_note("parser.ts reads Date.now() directly."), MARKER])


def test_child_sessions_become_threads_when_configured(tree) -> None:
    t, data, repo = tree
    _run_a_subagent(data, repo)
    config = t.root / "config" / "session-syncd" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[sources.opencode]\nchild_sessions = true\n")  # the --opencode-root flag keeps it
    summary = run_import(t, "--opencode-root", str(data))
    assert summary["imported"] == 6, summary  # the 4 sessions and 2 children (the JSON child has no message)
    ids = _by_session(t)
    assert sorted(ids) == sorted([*expected(repo), CHILD, CHILD_TITLED, JSON_CHILD])
    assert ids[JSON_CHILD] is None
    threads = _threads(t)
    assert sorted(threads) == sorted(tid for tid in ids.values() if tid)
    listed, read = threads[ids[CHILD_TITLED]]
    assert (listed["cwd"], read["name"]) == (str(repo), "Survey the parser")
    assert read_view(read) == [("Find what reads the clock", ["parser.ts reads Date.now() directly.", MARKER])]
    listed, read = threads[ids[CHILD]]
    assert read["name"] == "subagent prompt"  # `Child session - …` is no title: the first prompt names it
    assert read_view(read) == [("subagent prompt", [MARKER])]
    assert _parent_task_turn(threads, ids) == ("Ask a subagent to survey it.", [
        TASK_NOTE, result_note("parser.ts reads Date.now() directly."), MARKER])  # the parent still shows it
    again = run_import(t, "--opencode-root", str(data))
    assert (again["imported"], again["failed"]) == (0, 0), again
