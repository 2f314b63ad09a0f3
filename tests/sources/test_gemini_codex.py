"""Gemini CLI fixtures through the real `session-syncd import` into threads the real `codex app-server`
lists and reads: user/assistant texts, cwd and title; a second import changes nothing; a session that
grew (a `.jsonl` appended to, a legacy `.json` rewritten whole) is appended to the same thread."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer
from support import MARKER, Tree, log_events, read_view, require_codex, run_import

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.agents import gemini as gen  # noqa: E402

pytestmark = pytest.mark.codex

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gemini" / "root"
PROJECTS = ("demo-app", "legacy-app", "old-tool")
MAIN = "session-2026-05-02T10-00-3f9c2a1e"
REWOUND = "session-2026-05-03T09-15-7c1d9e02"
RESUMED = "session-2026-04-20T14-05-5e6f7a8b"
COPIED = "session-2025-12-01T08-30-0a1b2c3d"
HASHED = "session-2025-10-07T16-45-9f8e7d6c"


def _sha(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def expected(repos: Path) -> dict[str, tuple[str, str, list[tuple[str, list[str]]]]]:
    """session key → (cwd, title, thread/read view)."""
    demo, legacy, old = (str(repos / p) for p in PROJECTS)
    return {
        MAIN: (demo, "Debug failing npm test", [
            ("Why does npm test fail? Look at @package.json", [
                "Let me run the tests.\n\n[external_agent_tool_call: run_shell_command]\n"
                "description: Run the test suite\ncommand: npm test\n[/external_agent_tool_call]\n\n"
                "[external_agent_tool_result]\nCommand: npm test\nExit Code: 1\n1 failing\n[/external_agent_tool_result]",
                f"[external_agent_tool_call: read_file]\nfile: {demo}/missing.txt\n[/external_agent_tool_call]\n\n"
                f"[external_agent_tool_result: error]\nFile not found: {demo}/missing.txt\n[/external_agent_tool_result]",
                "The test `adds numbers` fails because `sum()` returns a string. Fix: parse the inputs with `Number()`.",
                MARKER])]),
        REWOUND: (demo, "Rename the config loader", [
            ("<state_snapshot>The user renamed loadConfig to readConfig and updated the README.</state_snapshot>",
             ["Got it. Thanks for the additional context!"]),
            ("Now update the README", ["README updated."]),
            ("Bump the version", ["Version bumped to 1.4.0.", MARKER])]),
        RESUMED: (demo, "Add verbose flag", [
            ("Add a --verbose flag", ["Added `--verbose` to the CLI parser."]),
            ("Document it in the README too", ["Documented `--verbose` in the README.", MARKER])]),
        COPIED: (legacy, "Port the build to esbuild", [
            ("Port the build to esbuild", [
                f"I'll start with the config.\n\n[external_agent_tool_call: write_file]\nfile: {legacy}/esbuild.config.mjs\n"
                f"[/external_agent_tool_call]\n\n[external_agent_tool_result]\nSuccessfully created and wrote to new file: "
                f"{legacy}/esbuild.config.mjs.\n[/external_agent_tool_result]",
                "The build now runs on esbuild.", MARKER])]),
        HASHED: (old, "Explain old-tool", [
            ("What does old-tool do?", []),
            ("What does old-tool do?", ["It converts CSV exports into invoices.", MARKER])]),
    }


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    """The fixture `~/.gemini`, moved so its projects live under tmp/repos (paths and hash folders)."""
    require_codex()
    t = Tree(tmp_path)
    repos = tmp_path / "repos"
    root = t.home / ".gemini"
    shutil.copytree(FIXTURES, root)
    moves = {f"/home/dev/{p}": str(repos / p) for p in PROJECTS}
    for p in PROJECTS:
        (repos / p).mkdir(parents=True)
    renames = {_sha(old): _sha(new) for old, new in moves.items()}
    for f in sorted(root.rglob("*")):
        if f.is_file():
            text = f.read_text(encoding="utf-8")
            for a, b in [*moves.items(), *renames.items()]:
                text = text.replace(a, b)
            f.write_text(text, encoding="utf-8")
    for d in (root / "tmp").iterdir():
        if d.name in renames:
            d.rename(d.with_name(renames[d.name]))
    t.codex_home.mkdir()
    return t


def _threads(tree: Tree) -> dict[str, tuple[dict, dict]]:
    with CodexAppServer(tree.home, tree.codex_home) as codex:
        return {t["id"]: (t, codex.read_thread(t["id"])) for t in codex.list_threads()}


def _by_session(tree: Tree) -> dict[str, str]:
    with sqlite3.connect(tree.ledger_path) as db:
        return dict(db.execute("SELECT session_id, thread_id FROM sessions WHERE source = 'gemini'"))


def test_fixtures_import_into_threads_codex_lists_and_reads(tree: Tree) -> None:
    summary = run_import(tree)
    want = expected(tree.root / "repos")
    assert summary["imported"] == len(want), summary
    ids = _by_session(tree)
    assert sorted(ids) == sorted(want)  # one thread per session: no subagent, no second copy
    threads = _threads(tree)
    assert sorted(threads) == sorted(ids.values())
    for key, (cwd, title, view) in want.items():
        listed, read = threads[ids[key]]
        assert listed["cwd"] == cwd, key
        assert read["name"] == title, key
        assert read_view(read) == view, key

    before = {p: p.read_bytes() for p in tree.rollouts()}
    again = run_import(tree)
    assert (again["imported"], again["unchanged"]) == (0, len(want)), again
    assert {p: p.read_bytes() for p in tree.rollouts()} == before


def test_growing_sessions_append_to_their_threads(tree: Tree) -> None:
    run_import(tree)
    ids = _by_session(tree)
    root = tree.home / ".gemini"
    main = root / "tmp" / "demo-app" / "chats" / f"{MAIN}.jsonl"
    gen.append_turn(main, "Apply the fix", "Fixed `sum()`.",
                    tool=("replace", {"file_path": "src/math.js", "old_string": "a+b"}, "Edited src/math.js"))
    legacy = root / "tmp" / "legacy-app" / "chats" / f"{COPIED}.json"
    gen.append_turn(legacy, "Now the dev server", "The dev server uses esbuild too.", summary="Port to esbuild")
    summary = run_import(tree)
    assert (summary["imported"], summary["unchanged"]) == (2, 3) and _by_session(tree) == ids, summary
    events = [e for e in log_events(tree) if e.get("source") == "gemini" and e["event"].startswith("session.")]
    assert sorted(e["session"] for e in events if e["event"] == "session.appended") == [COPIED, MAIN]
    threads = _threads(tree)

    _, read = threads[ids[MAIN]]
    view = read_view(read)
    assert MARKER not in view[0][1] and len(view) == 2
    assert view[1] == ("Apply the fix", [
        "Fixed `sum()`.\n\n[external_agent_tool_call: replace]\nfile: src/math.js\n[/external_agent_tool_call]\n\n"
        "[external_agent_tool_result]\nEdited src/math.js\n[/external_agent_tool_result]", MARKER])

    _, read = threads[ids[COPIED]]
    assert read["name"] == "Port to esbuild"
    assert read_view(read)[-1] == ("Now the dev server", ["The dev server uses esbuild too.", MARKER])


def test_a_new_session_from_the_generator(tree: Tree) -> None:
    cwd = tree.root / "repos" / "fresh"
    cwd.mkdir()
    path = gen.write_session(tree.home / ".gemini", str(cwd), "aaaabbbb-cccc-4ddd-8eee-ffff00001111",
                             [("hello", "Hi there.")])
    run_import(tree)
    threads = _threads(tree)
    key = path.name.rsplit(".", 1)[0]
    listed, read = threads[_by_session(tree)[key]]
    assert listed["cwd"] == str(cwd) and read["name"] == "hello"
    assert read_view(read) == [("hello", ["Hi there.", MARKER])]
