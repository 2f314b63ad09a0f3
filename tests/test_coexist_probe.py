"""Living beside Codex's own importer, judged by the real binaries (the pinned and the newest Codex).

Why: the mirror only works if Codex reads our records the way we think, and what we do about archived
threads and missing cwds rests on what Codex does with them. Each behaviour we rely on is a test here,
run against every version `make test` installs (tests/codex_app_server.py: codex_bin_params), so a
release that changes one fails loudly instead of quietly duplicating sessions.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer, codex_bin_params
from daemon.codex import codex_ledger, mirror
from support import Tree, ledger_rows, run_import

pytestmark = pytest.mark.codex

CODEX_BINS = codex_bin_params()


def user_line(cwd: Path, text: str, second: int) -> str:
    return json.dumps({"type": "user", "cwd": str(cwd), "timestamp": f"2026-11-02T10:00:{second:02d}.000Z",
                       "message": {"role": "user", "content": text}}) + "\n"


def make_sources(tree: Tree, names: list[str]) -> dict[str, Path]:
    out = {}
    for name in names:
        cwd = tree.root / "repos" / name
        cwd.mkdir(parents=True)
        # Claude Code names a session file by its session id, unique across projects
        src = tree.home / ".claude" / "projects" / f"-{name}" / f"5e55{name:0>4}-0000-4000-8000-000000000000.jsonl"
        src.parent.mkdir(parents=True)
        src.write_text(user_line(cwd, f"question {name}", 1))
        out[name] = src
    return out


def offered(codex: CodexAppServer) -> list[str]:
    return sorted(s["path"] for item in codex.detect() for s in item["details"]["sessions"])


def mirror_all(tree: Tree) -> list[codex_ledger.ImportRecord]:
    tracker = mirror.Sha256Tracker()
    return [mirror.mirror_session(tree.codex_home, tracker, Path(r["path"]), r["thread_id"], None)
            for r in ledger_rows(tree)]


@pytest.mark.parametrize("codex_bin", CODEX_BINS)
def test_detect_offers_none_of_our_mirrored_sessions(tmp_path: Path, codex_bin: str) -> None:
    tree = Tree(tmp_path)
    srcs = make_sources(tree, ["a", "b", "c"])
    config = tmp_path / "no-mirror.toml"
    config.write_text("codex_ledger_mirror = false\n")  # this probe drives the mirror by hand
    assert run_import(tree, "--config", str(config))["imported"] == 3
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        assert offered(codex) == sorted(str(p.resolve()) for p in srcs.values())  # without the mirror: all 3
        mirror_all(tree)
        assert offered(codex) == []
        # Codex matches by the source's current mtime, else its sha256: a grown source is offered again
        # (and importing it would append to our thread), so the mirror must follow every commit.
        with srcs["a"].open("a") as f:
            f.write(user_line(tree.root / "repos" / "a", "more", 2))
        assert offered(codex) == [str(srcs["a"].resolve())]
        (row,) = [r for r in ledger_rows(tree) if Path(r["path"]) == srcs["a"]]
        mirror.mirror_session(tree.codex_home, mirror.Sha256Tracker(), srcs["a"], row["thread_id"], None)
        assert offered(codex) == []
        # Only mtime moved (same bytes): Codex re-hashes, finds our sha, refreshes the record itself.
        srcs["b"].touch()
        assert offered(codex) == []
        assert len(codex.list_threads()) == 3
    codex_ledger.read(tree.codex_home)  # still parses after Codex's own refresh


@pytest.mark.parametrize("codex_bin", CODEX_BINS)
def test_codex_importing_while_we_upsert_keeps_every_record(tmp_path: Path, codex_bin: str) -> None:
    tree = Tree(tmp_path)
    theirs = make_sources(tree, [f"codex{i}" for i in range(8)])
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=120) as codex:
        items = codex.detect()
        assert len(items[0]["details"]["sessions"]) == 8
        ours = [codex_ledger.ImportRecord(source_path=f"/elsewhere/{i}.jsonl", content_sha256=f"{i:064x}",
                                          imported_thread_id=f"01a20000-0000-7000-8000-{i:012x}", imported_at=1,
                                          source_modified_at=1, connector_names=[], title=None) for i in range(300)]
        stop = threading.Event()
        errors: list[Exception] = []

        def upsert_loop() -> None:
            for rec in ours:
                if stop.is_set():
                    return
                try:
                    codex_ledger.upsert(tree.codex_home, rec)
                except codex_ledger.CodexLedgerError as exc:  # "kept changing": retried below
                    errors.append(exc)

        worker = threading.Thread(target=upsert_loop)
        worker.start()
        try:
            done = codex.import_sessions(items)
        finally:
            stop.set()
            worker.join()
        successes = done["itemTypeResults"][0]["successes"]
        assert len(successes) == 8
        snap = codex_ledger.read(tree.codex_home)  # parses
        by_path = {r.source_path: r.imported_thread_id for r in snap.ledger.records}
        for ok in successes:  # every record Codex wrote is there
            assert by_path.get(str(Path(ok["source"]).resolve())) == ok["target"], ok
        codex_ledger.upsert_all(tree.codex_home, ours)  # the reconcile pass
        ids = {r.imported_thread_id for r in codex_ledger.read(tree.codex_home).ledger.records}
        assert {r.imported_thread_id for r in ours} <= ids
        assert offered(codex) == []
        assert len(codex.list_threads()) == len(theirs)


@pytest.mark.parametrize("codex_bin", CODEX_BINS)
def test_archive_moves_the_rollout_and_unarchive_moves_it_back_with_what_was_appended(
        tmp_path: Path, codex_bin: str) -> None:
    tree = Tree(tmp_path)
    make_sources(tree, ["a"])
    assert run_import(tree)["imported"] == 1
    (row,) = ledger_rows(tree)
    rollout = Path(row["rollout_path"])
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        codex.request("thread/archive", {"threadId": row["thread_id"]})
        assert not rollout.exists()
        archived = tree.codex_home / "archived_sessions" / rollout.name  # flat: no date folders
        assert archived.is_file()
        assert codex.list_threads() == [] and [t["id"] for t in codex.list_threads(archived=True)] == [row["thread_id"]]
        with archived.open("ab") as f:  # what "keep appending to the archived rollout" would do
            f.write(b'{"appended":"marker"}\n')
        appended = archived.read_bytes()
        codex.request("thread/unarchive", {"threadId": row["thread_id"]})
        assert not archived.exists()
        assert rollout.read_bytes() == appended  # back at the same path, bytes and all
        assert [t["id"] for t in codex.list_threads()] == [row["thread_id"]]


@pytest.mark.parametrize("codex_bin", CODEX_BINS)
def test_a_thread_whose_cwd_is_gone_lists_reads_and_resumes(tmp_path: Path, codex_bin: str) -> None:
    tree = Tree(tmp_path)
    make_sources(tree, ["a"])
    assert run_import(tree)["imported"] == 1
    (row,) = ledger_rows(tree)
    shutil.rmtree(tree.root / "repos" / "a")
    with CodexAppServer(tree.home, tree.codex_home, binary=codex_bin, timeout=60) as codex:
        assert [t["id"] for t in codex.list_threads()] == [row["thread_id"]]
        assert len(codex.read_thread(row["thread_id"])["turns"]) == 1
        resumed = codex.request("thread/resume", {"threadId": row["thread_id"]})["thread"]
        assert resumed["id"] == row["thread_id"] and resumed["cwd"] == str(tree.root / "repos" / "a")
