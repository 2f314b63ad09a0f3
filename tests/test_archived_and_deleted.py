"""What the user does to a thread in Codex sticks (issue 8): archived threads are followed, deleted ones
are tombstoned. Judged by the real `codex app-server`, pinned and newest versions.

Archive: Codex moves the rollout to `archived_sessions/` (same name) and lists it only as archived;
unarchive moves it back to its date folder (tests/test_coexist_probe.py shows both). So when an
archived session grows we append to the archived rollout: nothing new is listed, and after unarchive
the thread holds every turn. Delete: the rollout is gone, so the session is tombstoned, never imported
again until `session-syncd import --restore`, which brings it back once, as a new thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer, codex_bin_params
from support import Tree, cli_command, ledger_rows, run_import

pytestmark = pytest.mark.codex

SESSION = "7a2b3c4d-0000-4000-8000-0000000000aa"


def _line(cwd: Path, kind: str, text: str, second: int) -> str:
    content = text if kind == "user" else [{"type": "text", "text": text}]
    return json.dumps({"type": kind, "cwd": str(cwd), "sessionId": SESSION,
                       "timestamp": f"2026-11-02T10:00:{second:02d}.000Z",
                       "message": {"role": kind, "content": content}}) + "\n"


def _source(tree: Tree) -> tuple[Path, Path]:
    cwd = tree.root / "repos" / "a"
    cwd.mkdir(parents=True)
    src = tree.home / ".claude" / "projects" / "-a" / f"{SESSION}.jsonl"
    src.parent.mkdir(parents=True)
    src.write_text(_line(cwd, "user", "first question", 1) + _line(cwd, "assistant", "first answer", 2))
    return src, cwd


def _user_texts(thread: dict) -> list[str]:
    return [item["content"][0]["text"] for turn in thread["turns"] for item in turn["items"]
            if item.get("type") == "userMessage"]


@pytest.mark.parametrize("codex_bin", codex_bin_params())
def test_an_archived_thread_stays_archived_and_keeps_growing(tmp_path: Path, codex_bin: str) -> None:
    tree = Tree(tmp_path)
    src, cwd = _source(tree)
    assert run_import(tree)["imported"] == 1
    (row,) = ledger_rows(tree)
    thread = row["thread_id"]
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        codex.request("thread/archive", {"threadId": thread})
    with src.open("a") as f:
        f.write(_line(cwd, "user", "asked while archived", 3) + _line(cwd, "assistant", "answered", 4))
    again = run_import(tree)
    assert again["by_kind"] == {"appended": 1}, again
    (row,) = ledger_rows(tree)
    assert Path(row["rollout_path"]).parent == tree.codex_home / "archived_sessions"
    assert len(tree.rollouts()) == 0  # nothing written back under sessions/
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        assert codex.list_threads() == []  # still archived: not listed
        codex.request("thread/unarchive", {"threadId": thread})
        assert [t["id"] for t in codex.list_threads()] == [thread]
        assert _user_texts(codex.read_thread(thread)) == ["first question", "asked while archived"]
    with src.open("a") as f:  # after unarchive the rollout is back in its date folder: followed there too
        f.write(_line(cwd, "user", "after unarchive", 5))
    assert run_import(tree)["by_kind"] == {"appended": 1}
    assert len(tree.rollouts()) == 1 and ledger_rows(tree)[0]["rollout_path"] == str(tree.rollouts()[0])


@pytest.mark.parametrize("codex_bin", codex_bin_params())
def test_a_deleted_thread_is_tombstoned_until_restored(tmp_path: Path, codex_bin: str) -> None:
    tree = Tree(tmp_path)
    src, cwd = _source(tree)
    assert run_import(tree)["imported"] == 1
    (rollout,) = tree.rollouts()
    rollout.unlink()  # the user deleted the thread
    with src.open("a") as f:
        f.write(_line(cwd, "user", "asked after the delete", 3))
    again = run_import(tree)
    assert again["imported"] == 0 and again["skipped"] == 1, again
    assert any("--restore" in e for e in again["errors"]), again
    assert tree.rollouts() == []
    with src.open("a") as f:
        f.write(_line(cwd, "user", "and again", 4))
    assert run_import(tree)["imported"] == 0 and tree.rollouts() == []  # still tombstoned
    restored = run_import(tree, "--restore", SESSION)
    assert restored["imported"] == 1, restored
    (rollout,) = tree.rollouts()
    assert run_import(tree)["imported"] == 0  # once
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        (listed,) = codex.list_threads()
        assert _user_texts(codex.read_thread(listed["id"])) == ["first question", "asked after the delete",
                                                                "and again"]


def test_status_counts_archived_and_deleted_threads(tmp_path: Path) -> None:
    import subprocess

    tree = Tree(tmp_path)
    src, cwd = _source(tree)
    assert run_import(tree)["imported"] == 1
    (rollout,) = tree.rollouts()
    archived = tree.codex_home / "archived_sessions" / rollout.name
    archived.parent.mkdir()
    rollout.rename(archived)  # what Codex's thread/archive does (tests/test_coexist_probe.py)
    with src.open("a") as f:
        f.write(_line(cwd, "user", "more", 3))
    assert run_import(tree)["by_kind"] == {"appended": 1}
    done = subprocess.run(cli_command("status", "--json"), env=tree.env(), capture_output=True, text=True)
    (claude,) = [s for s in json.loads(done.stdout)["sources"] if s["source"] == "claude"]
    assert (claude["archived"], claude["deleted"]) == (1, 0)
    archived.unlink()
    with src.open("a") as f:
        f.write(_line(cwd, "user", "even more", 4))
    run_import(tree)
    done = subprocess.run(cli_command("status", "--json"), env=tree.env(), capture_output=True, text=True)
    (claude,) = [s for s in json.loads(done.stdout)["sources"] if s["source"] == "claude"]
    assert (claude["archived"], claude["deleted"]) == (0, 1)
    text = subprocess.run(cli_command("status"), env=tree.env(), capture_output=True, text=True).stdout
    assert "1 deleted in Codex" in text and "--restore" in text
