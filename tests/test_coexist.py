"""Living beside Codex's own importer (issue 8), judged by the real binaries, pinned and newest.

Whoever imports first, one thread per session: after our import Codex's `detect` offers none of our
sessions (the mirror), and a session Codex imported first is adopted — its new turns go into Codex's
thread. Codex's import ledger keeps every record it had.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer, codex_bin_params
from daemon.codex import codex_ledger
from support import Tree, ledger_rows, require_codex, run_import

pytestmark = pytest.mark.codex

CODEX_BINS = codex_bin_params()


def _line(cwd: Path, sid: str, kind: str, text: str, second: int) -> str:
    content = text if kind == "user" else [{"type": "text", "text": text}]
    return json.dumps({"type": kind, "cwd": str(cwd), "sessionId": sid, "timestamp": f"2026-11-03T10:00:{second:02d}.000Z",
                       "message": {"role": kind, "content": content}}) + "\n"


def _sources(tree: Tree, n: int) -> list[tuple[Path, Path, str]]:
    out = _sources_from(tree, 0, n)
    for src, cwd, sid in out:
        with src.open("a") as f:
            f.write(_line(cwd, sid, "assistant", f"answer {sid[-1]}", 2))
    return out


def _offered(codex: CodexAppServer) -> list[str]:
    return sorted(s["path"] for item in codex.detect() for s in item["details"]["sessions"])


def _user_texts(thread: dict) -> list[str]:
    return [item["content"][0]["text"] for turn in thread["turns"] for item in turn["items"]
            if item.get("type") == "userMessage"]


@pytest.mark.parametrize("codex_bin", CODEX_BINS)
def test_we_import_first_and_codex_offers_none(tmp_path: Path, codex_bin: str) -> None:
    tree = Tree(tmp_path)
    sources = _sources(tree, 3)
    assert run_import(tree)["imported"] == 3
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        assert _offered(codex) == []
    src, cwd, sid = sources[0]
    with src.open("a") as f:
        f.write(_line(cwd, sid, "user", "one more", 3))
    assert run_import(tree)["by_kind"] == {"appended": 1}
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        assert _offered(codex) == []  # the mirror followed the append
        assert len(codex.list_threads()) == 3
    assert codex_ledger.ledger_path(tree.codex_home).read_bytes()[-1:] == b"}"  # Codex's format: no newline


def test_without_the_mirror_codex_would_offer_them_again(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    _sources(tree, 2)
    config = tmp_path / "no-mirror.toml"
    config.write_text("codex_ledger_mirror = false\n")
    assert run_import(tree, "--config", str(config))["imported"] == 2
    assert not codex_ledger.ledger_path(tree.codex_home).exists()
    with CodexAppServer(tree.home, tree.codex_home, binary=require_codex(), timeout=60) as codex:
        assert len(_offered(codex)) == 2


@pytest.mark.parametrize("codex_bin", CODEX_BINS)
def test_codex_imports_first_and_we_adopt_its_threads(tmp_path: Path, codex_bin: str) -> None:
    tree = Tree(tmp_path)
    sources = _sources(tree, 3)
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=120) as codex:
        assert codex.detect_and_import() is not None
        threads = {t["id"] for t in codex.list_threads()}
    assert len(threads) == 3
    before = {r.source_path: r.imported_thread_id for r in codex_ledger.read(tree.codex_home).ledger.records}
    summary = run_import(tree)
    assert summary["imported"] == 0 and summary["failed"] == 0, summary
    assert {r["thread_id"] for r in ledger_rows(tree)} == threads  # linked to Codex's threads
    assert len(tree.rollouts()) == 3
    src, cwd, sid = sources[1]
    with src.open("a") as f:
        f.write(_line(cwd, sid, "user", "asked after Codex's import", 3) + _line(cwd, sid, "assistant", "ok", 4))
    assert run_import(tree)["by_kind"] == {"appended": 1}
    assert len(tree.rollouts()) == 3
    after = {r.source_path: r.imported_thread_id for r in codex_ledger.read(tree.codex_home).ledger.records}
    assert after == before  # every record Codex had is still there, pointing at the same threads
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        assert {t["id"] for t in codex.list_threads()} == threads
        thread = before[str(src.resolve())]
        assert _user_texts(codex.read_thread(thread)) == ["question 1", "asked after Codex's import"]
        assert _offered(codex) == []  # and Codex does not offer the grown session again


def test_the_daemon_adopts_codex_imports_and_mirrors_its_own(tmp_path: Path) -> None:
    from daemon_support import DaemonProc, toml_config, wait_until

    tree = Tree(tmp_path)
    sources = _sources(tree, 2)
    with CodexAppServer(tree.home, tree.codex_home, binary=require_codex(), timeout=120) as codex:
        assert codex.detect_and_import() is not None  # Codex imports the first two itself
        codex_threads = {t["id"] for t in codex.list_threads()}
    (late,) = _sources_from(tree, 2, 1)  # one more session, only ever seen by us
    with DaemonProc(tree, toml_config(claude_roots=[tree.home / ".claude" / "projects"])) as daemon:
        daemon.start()
        wait_until(lambda: len(ledger_rows(tree)) == 3, what="three sessions recorded", daemon=daemon)
        assert {r["thread_id"] for r in ledger_rows(tree)} >= codex_threads  # adopted, not duplicated
        src, cwd, sid = sources[0]
        with src.open("a") as f:
            f.write(_line(cwd, sid, "user", "asked while the daemon runs", 5))
        wait_until(lambda: any(r["consumed"] == src.stat().st_size for r in ledger_rows(tree)
                               if r["session_id"] == sid), what="the append", daemon=daemon)
        mirrored = lambda: {r.source_path for r in codex_ledger.read(tree.codex_home).ledger.records}  # noqa: E731
        wait_until(lambda: str(late[0].resolve()) in mirrored(), what="our own session mirrored", daemon=daemon)
        assert daemon.stop() == 0
    assert len(tree.rollouts()) == 3
    with CodexAppServer(tree.home, tree.codex_home, binary=require_codex(), timeout=60) as codex:
        assert _offered(codex) == []
        assert len(codex.list_threads()) == 3
        thread = next(r["thread_id"] for r in ledger_rows(tree) if r["session_id"] == sources[0][2])
        assert _user_texts(codex.read_thread(thread)) == ["question 0", "asked while the daemon runs"]


def _sources_from(tree: Tree, start: int, n: int) -> list[tuple[Path, Path, str]]:
    out = []
    for i in range(start, start + n):
        sid = f"c0e15700-0000-4000-8000-00000000000{i}"
        cwd = tree.root / "repos" / f"p{i}"
        cwd.mkdir(parents=True)
        src = tree.home / ".claude" / "projects" / f"-p{i}" / f"{sid}.jsonl"
        src.parent.mkdir(parents=True)
        src.write_text(_line(cwd, sid, "user", f"question {i}", 1))
        out.append((src, cwd, sid))
    return out
