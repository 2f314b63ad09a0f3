"""A thread the user opens in the real Codex: we wait while Codex holds it, and opening it is not
"continuing" it — the settings line Codex appends on resume is carried over, and the next change of the
source is appended to the same thread (no conflict copy). A real user turn still makes a conflict copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer, CodexRpcError, codex_bin_params
from support import Tree, ledger_rows, ledger_superseded, read_view, require_codex, run_import

pytestmark = pytest.mark.codex


def user_line(cwd: Path, text: str, second: int) -> str:
    return json.dumps({"type": "user", "cwd": str(cwd), "timestamp": f"2026-11-02T10:00:{second:02d}.000Z",
                       "message": {"role": "user", "content": text}}) + "\n"


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    require_codex()
    t = Tree(tmp_path)
    cwd = tmp_path / "repos" / "p"
    cwd.mkdir(parents=True)
    src = t.home / ".claude" / "projects" / "-p" / "s1.jsonl"
    src.parent.mkdir(parents=True)
    src.write_text(user_line(cwd, "first question", 1))
    assert run_import(t)["imported"] == 1
    return t


def _source(tree: Tree) -> Path:
    return tree.home / ".claude" / "projects" / "-p" / "s1.jsonl"


def test_open_in_codex_defers_then_appends_to_the_same_thread(tree: Tree) -> None:
    (row,) = ledger_rows(tree)
    rollout = Path(row["rollout_path"])
    with CodexAppServer(tree.home, tree.codex_home, timeout=60) as codex:
        codex.request("thread/resume", {"threadId": row["thread_id"]})
        opened = rollout.read_bytes()
        assert opened.startswith(rollout.read_bytes()[: row["rollout_size"]]) and len(opened) > row["rollout_size"]
        with _source(tree).open("a") as f:
            f.write(user_line(tree.root / "repos" / "p", "second question", 2))
        summary = run_import(tree)
        assert summary["by_kind"] == {"deferred": 1}, summary
        assert rollout.read_bytes() == opened  # untouched while Codex holds the thread
    summary = run_import(tree)
    assert summary["by_kind"] == {"appended": 1}, summary
    assert ledger_superseded(tree) == []
    carried = opened[row["rollout_size"]:]
    assert rollout.read_bytes().endswith(carried)  # Codex's settings line is kept, after our lines
    with CodexAppServer(tree.home, tree.codex_home, timeout=60) as codex:
        assert [t["id"] for t in codex.list_threads()] == [row["thread_id"]]
        view = read_view(codex.read_thread(row["thread_id"]))
    assert [user for user, _agents in view] == ["first question", "second question"]
    assert view[-1][1] == ["<EXTERNAL SESSION IMPORTED>"]
    assert _thread_lock_files(tree) == []  # Codex's went when it let go, ours when the append was done


def test_a_turn_added_in_codex_makes_a_conflict_copy(tree: Tree) -> None:
    (row,) = ledger_rows(tree)
    rollout = Path(row["rollout_path"])
    line = {"timestamp": "2026-11-02T10:00:05.000Z", "type": "response_item",
            "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "mine"}]}}
    with rollout.open("a") as f:
        f.write(json.dumps(line) + "\n")
    theirs = rollout.read_bytes()
    with _source(tree).open("a") as f:
        f.write(user_line(tree.root / "repos" / "p", "second question", 2))
    assert run_import(tree)["by_kind"] == {"conflict": 1}
    assert rollout.read_bytes() == theirs
    assert [s["thread_id"] for s in ledger_superseded(tree)] == [row["thread_id"]]


def _thread_lock_files(tree: Tree) -> list[str]:
    folder = tree.codex_home / "thread-writer-locks"
    return sorted(p.name for p in folder.iterdir() if p.name != ".coordination.lock") if folder.exists() else []


@pytest.mark.parametrize("codex_bin", codex_bin_params())
def test_the_real_codex_respects_our_lock_and_its_sweep_leaves_it(tree: Tree, codex_bin: str) -> None:
    """The first lock a Codex process takes sweeps away every thread lock file nobody holds: ours, held,
    stays, and Codex's resume of that thread is refused; let go, our file is removed as Codex removes its
    own. A new thread takes no lock at all: the import that wrote it left no file."""
    from daemon.codex.writer_lock import writer_lock

    (row,) = ledger_rows(tree)
    assert _thread_lock_files(tree) == []
    ours = f"{row['thread_id']}.lock"
    with writer_lock(tree.codex_home, row["thread_id"]):
        with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
            with pytest.raises(CodexRpcError, match="already has an active writer"):
                codex.request("thread/resume", {"threadId": row["thread_id"]})
        assert _thread_lock_files(tree) == [ours]
    assert _thread_lock_files(tree) == []
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        codex.request("thread/resume", {"threadId": row["thread_id"]})
        assert _thread_lock_files(tree) == [ours]  # Codex's own, while it has the thread open
    assert _thread_lock_files(tree) == []
