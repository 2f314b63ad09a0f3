"""Copilot CLI fixtures through the real `session-syncd import` into threads the real `codex app-server`
lists and reads: user/assistant texts, cwd and title; a second import changes nothing; a resumed
session that grew is appended to the same thread."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer
from support import MARKER, Tree, read_view, require_codex, run_import

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.agents import copilot as gen  # noqa: E402

pytestmark = pytest.mark.codex

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "copilot" / "home" / ".copilot"
A = "049410b4-c1df-44ee-87a5-caa1c349091e"
B = "8b23eac7-b9d0-4c24-8e3c-90f5f8a8d02b"
C = "e317ef84-75eb-4afe-a1c6-0bd44c47f978"
FLAT = "f27af309-ccf3-41da-8f07-b3dcbffd4c90"
BOTH = "5a5a5a5a-0000-4000-8000-00000000000e"

RESULT_A = "[external_agent_tool_result]\n1. def average_item_price(cart):\n2.     return sum(i.price for i in cart.items) / len(cart.items)\n[/external_agent_tool_result]"


def expected(repos: Path) -> dict[str, tuple[str, str, list[tuple[str, list[str]]]]]:
    """session id → (cwd, title, thread/read view)."""
    return {
        A: (str(repos / "orders"), "In src/orders.py make average_item_price return 0 when the cart has no items.", [
            ("In src/orders.py make average_item_price return 0 when the cart has no items.", [
                "[external_agent_tool_call: view]\nfile: src/orders.py\n[/external_agent_tool_call]\n\n"
                "[external_agent_tool_call: view]\nfile: src/orders.py\n[/external_agent_tool_call]",
                "[external_agent_tool_result: error]\n\"path\": Required\n[/external_agent_tool_result]",
                RESULT_A,
                "average_item_price now returns 0 for an empty cart.", MARKER])]),
        B: (str(repos / "api"), "Retry loop: don't drop the last attempt", [  # workspace.yaml `name`
            ("Why does the retry loop drop the last attempt?\u2028Look at client.py.", [
                "I'll ask a sub-agent to survey it.\n\n[external_agent_tool_call: task]\n"
                "description: Survey the retry loop\n[/external_agent_tool_call]",
                "[external_agent_tool_result]\nThe loop uses range(retries - 1), one short.\n"
                "[/external_agent_tool_result]",
                "The loop runs `range(retries - 1)`: it stops one attempt early."]),
            ("Fix it, and keep the backoff.", [
                "[external_agent_tool_call: edit]\ninput: {\"path\":\"client.py\",\"old_str\":\"range(retries - 1)\","
                "\"new_str\":\"range(retries)\"}\n[/external_agent_tool_call]",
                "[external_agent_tool_result]\nFile client.py updated.\n[/external_agent_tool_result]",
                "Fixed: the loop now makes every attempt, with the backoff kept.", MARKER])]),
        C: (str(repos / "todo app"), "List the TODOs", [
            ("List the TODOs in this repo.", [
                "[external_agent_tool_call: grep]\ninput: {\"pattern\":\"TODO\"}\n[/external_agent_tool_call]",
                "[external_agent_tool_result]\napp.py:3: # TODO: cache\n[/external_agent_tool_result]",
                "One TODO: app.py line 3 (cache).", MARKER])]),
        FLAT: (str(repos / "orders"), "Explain orders.py", [("Explain orders.py", ["It computes cart totals.", MARKER])]),
        BOTH: (str(repos / "api"), "old copy", [("old copy", ["new copy answer", MARKER])]),
    }


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    require_codex()
    t = Tree(tmp_path)
    repos = tmp_path / "repos"
    for name in ("orders", "api", "todo app"):
        (repos / name).mkdir(parents=True)
    root = t.home / ".copilot"
    shutil.copytree(FIXTURES, root)
    for p in root.rglob("*"):
        if p.is_file() and p.suffix in (".jsonl", ".yaml"):
            p.write_text(p.read_text(encoding="utf-8").replace("__CWD__", str(repos)), encoding="utf-8")
    t.codex_home.mkdir()
    return t


def _threads(tree: Tree) -> dict[str, tuple[dict, dict]]:
    """session id → (thread/list entry, thread/read thread), via the session id in the rollout path map."""
    with CodexAppServer(tree.home, tree.codex_home) as codex:
        listed = codex.list_threads()
        return {t["id"]: (t, codex.read_thread(t["id"])) for t in listed}


def _by_session(tree: Tree) -> dict[str, str]:
    import sqlite3

    with sqlite3.connect(tree.ledger_path) as db:
        return {sid: tid for sid, tid in db.execute(
            "SELECT session_id, thread_id FROM sessions WHERE source = 'copilot'")}


def test_fixtures_import_into_threads_codex_lists_and_reads(tree: Tree) -> None:
    summary = run_import(tree)
    assert summary["imported"] == 5, summary
    ids = _by_session(tree)
    assert sorted(ids) == sorted(expected(tree.root / "repos"))
    threads = _threads(tree)
    assert sorted(threads) == sorted(ids.values())
    for sid, (cwd, title, view) in expected(tree.root / "repos").items():
        listed, read = threads[ids[sid]]
        assert listed["cwd"] == cwd, sid
        assert read["name"] == title, sid  # from session_index.jsonl (thread/list leaves it None)
        assert read_view(read) == view, sid

    before = {p: p.read_bytes() for p in tree.rollouts()}
    again = run_import(tree)
    assert (again["imported"], again["unchanged"]) == (0, 5), again
    assert {p: p.read_bytes() for p in tree.rollouts()} == before


def test_a_resumed_session_appends_to_its_thread(tree: Tree) -> None:
    run_import(tree)
    ids = _by_session(tree)
    gen.append_turn(tree.home / ".copilot", A, "Also handle a None cart.", "None now returns 0 too.", resume=True)
    summary = run_import(tree)
    assert summary["by_kind"] == {"appended": 1} and _by_session(tree) == ids, summary
    threads = _threads(tree)
    _, read = threads[ids[A]]
    view = read_view(read)
    assert len(view) == 2 and view[0][1][-1] == "average_item_price now returns 0 for an empty cart."
    assert view[1] == ("Also handle a None cart.", ["None now returns 0 too.", MARKER])
    assert len(threads) == 5


def test_renaming_a_session_in_copilot_renames_its_thread(tree: Tree) -> None:
    run_import(tree)
    ids = _by_session(tree)
    yaml = tree.home / ".copilot" / "session-state" / C / "workspace.yaml"
    yaml.write_text(yaml.read_text(encoding="utf-8").replace("name: List the TODOs", "name: TODO audit")
                    .replace("user_named: false", "user_named: true"), encoding="utf-8")
    summary = run_import(tree)
    assert summary["imported"] == 0 and summary["failed"] == 0, summary  # a rename is no new turn
    _, read = _threads(tree)[ids[C]]
    assert read["name"] == "TODO audit"


# ---------------------------------------------------------------- legacy history-session-state/<id>.json

LEGACY_FIXTURES = FIXTURES.parent.parent / "legacy" / "history-session-state"
LEGACY = "3c1f0d6e-9a2b-4e57-b8c4-2f6a0e9d1b7a"
MIGRATED = "7d0c9b8a-1e2f-4a3b-9c4d-5e6f70819203"


def _install_legacy(tree: Tree) -> Path:
    folder = tree.home / ".copilot" / "history-session-state"
    folder.mkdir(parents=True)
    for src in LEGACY_FIXTURES.glob("*.json"):
        (folder / src.name).write_text(src.read_text(encoding="utf-8").replace("__CWD__", str(tree.root / "repos")),
                                       encoding="utf-8")
    return folder


def test_legacy_sessions_import_and_a_migrated_copy_stays_one_thread(tree: Tree) -> None:
    _install_legacy(tree)  # LEGACY, and a legacy copy of A (whose session-state/<A>/events.jsonl exists)
    summary = run_import(tree)
    assert summary["imported"] == 6, summary
    ids = _by_session(tree)
    assert sorted(ids) == sorted([*expected(tree.root / "repos"), LEGACY])
    threads = _threads(tree)
    assert len(threads) == 6
    listed, read = threads[ids[LEGACY]]
    assert listed["cwd"] == str(tree.root / "repos" / "orders")  # from the system prompt
    assert read["name"] == "Why does test_totals fail on an empty cart?"  # no title recorded: the first prompt
    assert read_view(read) == [
        ("Why does test_totals fail on an empty cart?", [
            "Let me run it.\n\n[external_agent_tool_call: bash]\ndescription: Run the failing test\n"
            "command: pytest -q tests/test_totals.py\n[/external_agent_tool_call]",
            "[external_agent_tool_result]\nF\n1 failed: ZeroDivisionError: division by zero\n"
            "[/external_agent_tool_result]",
            "[external_agent_tool_call: str_replace_editor]\ncommand: view\n[/external_agent_tool_call]",
            "[external_agent_tool_result]\n1. def total(cart):\n2.     return sum(cart) / len(cart)\n"
            "[/external_agent_tool_result]",
            "total() divides by len(cart), which is 0 for an empty cart."]),
        ("Fix it, please.", ["Fixed: an empty cart now totals 0.", MARKER])]
    assert read_view(threads[ids[A]][1]) == expected(tree.root / "repos")[A][2]  # the new copy's content
    again = run_import(tree)
    assert (again["imported"], again["unchanged"]) == (0, 6), again


def test_a_legacy_session_migrated_by_copilot_continues_in_its_thread(tree: Tree) -> None:
    root, cwd = tree.home / ".copilot", str(tree.root / "repos" / "api")
    turns = [("Why is the cache cold?", "It is flushed on every deploy.")]
    gen.write_legacy_session(root, cwd, MIGRATED, turns)
    summary = run_import(tree)
    assert summary["imported"] == 6, summary
    thread = _by_session(tree)[MIGRATED]
    assert read_view(_threads(tree)[thread][1]) == [("Why is the cache cold?", [
        "[external_agent_tool_call: bash]\ndescription: List files\ncommand: ls\n[/external_agent_tool_call]",
        "[external_agent_tool_result]\nREADME.md\nsrc\n[/external_agent_tool_result]",
        "It is flushed on every deploy.", MARKER])]

    # `copilot --resume` migrates it into session-state/<id>/events.jsonl and goes on there; the legacy
    # file lingers beside it
    gen.write_session(root, cwd, MIGRATED, [*turns, ("Keep it warm then.", "Warmed after each deploy now.")],
                      title="Cold cache")
    summary = run_import(tree)
    assert summary["by_kind"] == {"rewritten": 1}, summary
    assert _by_session(tree)[MIGRATED] == thread  # the same thread, no second one
    threads = _threads(tree)
    assert len(threads) == 6
    _, read = threads[thread]
    assert read["name"] == "Cold cache"  # workspace.yaml's name now
    view = read_view(read)
    assert [u for u, _ in view] == ["Why is the cache cold?", "Keep it warm then."]
    assert view[1][1] == ["Warmed after each deploy now.", MARKER]

    gen.write_legacy_session(root, cwd, MIGRATED, [("an old Copilot rewrote the legacy copy", "ignored")])
    again = run_import(tree)
    assert (again["imported"], again["unchanged"]) == (0, 6), again  # discovery lists the new copy only
    assert read_view(_threads(tree)[thread][1]) == view


def test_a_legacy_file_caught_mid_rewrite_is_retried(tree: Tree) -> None:
    root, cwd = tree.home / ".copilot", str(tree.root / "repos" / "orders")
    path = gen.write_legacy_session(root, cwd, MIGRATED, [("Half written?", "Whole now.")], tools=False)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 2 // 3])  # Copilot's in-place rewrite, caught two thirds in
    summary = run_import(tree, check=False)
    assert summary["imported"] == 5 and summary["by_kind"].get("deferred") == 1, summary
    assert MIGRATED not in _by_session(tree)
    path.write_bytes(whole)
    summary = run_import(tree)
    assert summary["by_kind"] == {"imported": 1}, summary
    assert read_view(_threads(tree)[_by_session(tree)[MIGRATED]][1]) == [("Half written?", ["Whole now.", MARKER])]
