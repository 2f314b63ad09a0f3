"""Qwen Code sessions through the real `session-syncd import` and the real `codex app-server`.

The hand-written fixtures (tests/fixtures/qwen/) are copied under HOME/.qwen/projects with their cwd
pointed at a real folder; the generator (bench/agents/qwen.py) grows and rewinds sessions the way Qwen
Code appends to them. Codex must list every session once and read back the visible branch only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench.agents import qwen as gen  # noqa: E402
from codex_app_server import CodexAppServer  # noqa: E402
from support import MARKER, Tree, ledger_rows, read_view, require_codex, run_import  # noqa: E402

pytestmark = pytest.mark.codex

FIXTURES = REPO / "tests" / "fixtures" / "qwen" / "projects"
BASIC = "5f0c7a52-8f0e-4a5b-9c1d-2e3f4a5b6c7d"
REWIND = "7a1b2c3d-0000-4e00-8f00-aaaaaaaaaaaa"
REWIND_TO_START = "8b2c3d4e-0000-4e00-8f00-bbbbbbbbbbbb"
REWIND_LAST = "9c3d4e5f-0000-4e00-8f00-cccccccccccc"
MESSY = "b5e6f7a8-0000-4e00-8f00-eeeeeeeeeeee"
ARCHIVED = "a4d5e6f7-0000-4e00-8f00-dddddddddddd"
GROWN = "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def expected(cwd: Path) -> dict[str, list[tuple[str, list[str]]]]:
    return {
        BASIC: [
            ("Fix the failing test in parser.py", [
                "I'll run the tests first.\n\n[external_agent_tool_call: run_shell_command]\n"
                "description: Run the test suite\ncommand: pytest -q\n[/external_agent_tool_call]",
                "[external_agent_tool_result]\nF.\n1 failed, 1 passed\n[/external_agent_tool_result]",
                f'[external_agent_tool_call: read_file]\ninput: {{"absolute_path":"{cwd}/parserr.py"}}\n'
                "[/external_agent_tool_call]",
                f"[external_agent_tool_result: error]\nFile not found: {cwd}/parserr.py\n[/external_agent_tool_result]",
                "The parser is fixed: the off-by-one in `tokenize` is gone."]),
            ("Thanks — naïve café ☕ works now.", ["You're welcome.", MARKER]),
        ],
        REWIND: [("Add a README", ["Added README.md."]),
                 ("Add a CONTRIBUTING guide instead", ["Added CONTRIBUTING.md.", MARKER])],
        REWIND_TO_START: [("Write a limerick about tests", ["A tester who worked in the night…", MARKER])],
        REWIND_LAST: [("Rename foo to bar", ["Renamed in 3 files.", MARKER])],
        MESSY: [("Explore the repo with a subagent", ["Starting an explorer.\n\nThe explorer found 12 modules."]),
                ("focus on the daemon folder",
                 ["daemon/ has the engine and the watcher.\n\n[external unsupported block: image]", MARKER])],
        ARCHIVED: [("What does make bench do?", ["It runs the import benchmarks.", MARKER])],
    }


TITLES = {BASIC: "Parser fix", REWIND_TO_START: "Write a limerick about tests", REWIND: "Add a README"}


def make_tree(tmp_path: Path) -> tuple[Tree, Path]:
    require_codex()
    tree = Tree(tmp_path)
    cwd = tree.root / "repos" / "demo"
    cwd.mkdir(parents=True)
    dest = tree.home / ".qwen" / "projects"
    for src in FIXTURES.rglob("*.jsonl"):
        if src.parent.name not in ("chats", "archive"):
            continue  # the subagent copy is not a session (tested in test_qwen.py)
        out = dest / src.relative_to(FIXTURES)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(src.read_bytes().replace(b"/work/demo", json.dumps(str(cwd))[1:-1].encode()))
    return tree, cwd


def threads(tree: Tree) -> tuple[list[dict], dict[str, dict]]:
    with CodexAppServer(tree.home, tree.codex_home) as codex:
        listed = codex.list_threads()
        return listed, {t["id"]: codex.read_thread(t["id"]) for t in listed}


def thread_of(tree: Tree) -> dict[str, str]:
    """session id → thread id, from the ledger."""
    return {Path(r["path"]).stem: r["thread_id"] for r in ledger_rows(tree) if r["source"] == "qwen"}


def test_fixtures_import_as_threads_codex_reads(tmp_path):
    tree, cwd = make_tree(tmp_path)
    summary = run_import(tree)
    assert summary["imported"] == 6 and summary["failed"] == 0 and summary["skipped"] == 0, summary
    by_session = thread_of(tree)
    assert set(by_session) == set(expected(cwd))
    listed, reads = threads(tree)
    ids = [t["id"] for t in listed]
    assert sorted(ids) == sorted(by_session.values()) and len(set(ids)) == len(ids)
    for t in listed:
        assert t["cwd"] == str(cwd)
    for session, want in expected(cwd).items():
        read = reads[by_session[session]]
        assert read_view(read) == want, session
        if session in TITLES:
            assert read["name"] == TITLES[session], session


def test_second_import_changes_nothing(tmp_path):
    tree, _ = make_tree(tmp_path)
    run_import(tree)
    before = {p: p.read_bytes() for p in tree.rollouts()}
    again = run_import(tree)
    assert again["unchanged"] == 6 and again["imported"] == 0, again
    assert {p: p.read_bytes() for p in tree.rollouts()} == before


def test_grown_session_appends_and_a_rewind_rewrites(tmp_path):
    tree, cwd = make_tree(tmp_path)
    qwen_home = tree.home / ".qwen"
    gen.write_session(qwen_home, str(cwd), GROWN, [("first question", "first answer")], tool=False)
    run_import(tree)
    tid = thread_of(tree)[GROWN]

    gen.append_turn(qwen_home, str(cwd), GROWN, "second question", "second answer", title="Grown session")
    summary = run_import(tree)
    assert summary["by_kind"] == {"appended": 1}, summary
    assert thread_of(tree)[GROWN] == tid
    _, reads = threads(tree)
    assert read_view(reads[tid]) == [("first question", ["first answer"]),
                                     ("second question", ["second answer", MARKER])]
    assert reads[tid]["name"] == "Grown session"

    # /rewind to before the second turn, then a different second turn: the dead branch must not show
    gen.rewind(qwen_home, str(cwd), GROWN, 1)
    gen.append_turn(qwen_home, str(cwd), GROWN, "another second question", "another answer")
    summary = run_import(tree)
    assert summary["by_kind"] == {"rewritten": 1}, summary
    assert thread_of(tree)[GROWN] == tid
    listed, reads = threads(tree)
    assert [t["id"] for t in listed].count(tid) == 1 and len(listed) == 7
    assert read_view(reads[tid]) == [("first question", ["first answer"]),
                                     ("another second question", ["another answer", MARKER])]

    # a rewind alone (nothing typed after it yet) already drops the turns it took back
    gen.rewind(qwen_home, str(cwd), GROWN, 1)
    summary = run_import(tree)
    assert summary["by_kind"] == {"rewritten": 1}, summary
    _, reads = threads(tree)
    assert read_view(reads[tid]) == [("first question", ["first answer", MARKER])]

    again = run_import(tree)
    assert again["unchanged"] == 7 and again["imported"] == 0, again
