"""`session-syncd run` end to end: real inotify, real processes, the real `codex app-server` as judge.

Each test starts the daemon as a subprocess on a temp HOME / CODEX_HOME / XDG_STATE_HOME, changes
source files the way agents (and Codex) do, and waits for observable results: an event in the daemon's
JSON log, the ledger catching up with a file, what `thread/read` / `thread/list` return. No mocks, and
no latency assertions: every wait has a generous timeout.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer
from daemon_support import DaemonProc, Session, ledger_row, synced, toml_config, wait_synced, wait_until
from support import (Tree, cli_command, expected_view, ledger_rows, make_fixture, read_view, reference_turns,
                     require_codex, rollout_thread_id)

pytestmark = pytest.mark.codex


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    require_codex()
    t = Tree(tmp_path)
    t.home.mkdir()
    return t


def claude_root(tree: Tree) -> Path:
    return tree.home / ".claude" / "projects"


def new_session(tree: Tree, *turns: tuple[str, str], project: str = "-work-p") -> Session:
    s = Session(claude_root(tree), tree.root / "repos" / "p", project=project)
    s.write_turns(*turns)
    return s


def codex(tree: Tree) -> CodexAppServer:
    return CodexAppServer(home=tree.home, codex_home=tree.codex_home, timeout=60)


def assert_thread_matches(tree: Tree, s: Session, thread_id: str, *, threads: int = 1) -> None:
    """Codex lists `threads` threads, `thread_id` among them once, and it holds exactly the source's turns."""
    with codex(tree) as c:
        listed = [t["id"] for t in c.list_threads()]
        assert len(listed) == threads and len(set(listed)) == threads, listed
        assert listed.count(thread_id) == 1, (thread_id, listed)
        view = read_view(c.read_thread(thread_id))
    assert view == expected_view(reference_turns(s.path, "claude"))


# -- appends ---------------------------------------------------------------------------------------


def test_appended_lines_and_partial_lines_reach_the_thread_once(tree: Tree) -> None:
    s = new_session(tree, ("first question", "first answer"))
    with DaemonProc(tree).start() as d:
        thread = d.wait_event("session.imported", path=str(s.path))["thread_id"]
        wait_synced(tree, s.path, d)

        # Whole lines, one at a time, each given time to sync on its own.
        for line in s.turn_lines("second question", "second answer"):
            s.append(line)
            wait_synced(tree, s.path, d)

        # Partial lines: half a line, a pause longer than the quiet period, then the rest.
        before = ledger_row(tree, s.path)["consumed"]
        for line in s.turn_lines("third question ünïcödé", "third answer\nwith two lines"):
            half = len(line) // 2
            s.append(line[:half])
            mark = d.log_size()
            wait_until(lambda: ledger_row(tree, s.path)["size"] == s.path.stat().st_size, 30,
                       "the half line seen", d)
            row = ledger_row(tree, s.path)
            assert row["consumed"] == before, "an incomplete line was consumed"
            assert not d.find("session.rewritten", mark) and not d.find("session.conflict", mark)
            s.append(line[half:])
            row = wait_synced(tree, s.path, d)
            before = row["consumed"]

        # A burst of several turns written in odd-sized chunks without pauses.
        data = b"".join(b"".join(s.turn_lines(f"burst {i}", f"burst answer {i}")) for i in range(5))
        for i in range(0, len(data), 97):
            s.append(data[i:i + 97])
        wait_synced(tree, s.path, d)
        assert d.find("session.imported") and not d.find("session.rewritten") and not d.find("session.conflict")
        assert {e["thread_id"] for e in d.find("session.appended")} == {thread}
        assert d.stop() == 0
    assert [r["thread_id"] for r in ledger_rows(tree)] == [thread]
    assert len(tree.rollouts()) == 1
    assert_thread_matches(tree, s, thread)
    assert len(reference_turns(s.path, "claude")) == 8


@pytest.mark.slow
def test_a_growing_session_is_synced_before_it_goes_quiet(tree: Tree) -> None:
    s = new_session(tree, ("start", "started"))
    with DaemonProc(tree, toml_config(quiet_ms=200, max_wait_ms=1500)).start() as d:
        thread = d.wait_event("session.imported", path=str(s.path))["thread_id"]
        wait_synced(tree, s.path, d)
        mark = d.log_size()
        seen_while_writing = False
        began = time.monotonic()
        i, pending = 0, []
        while time.monotonic() - began < 8:  # > 5 × max wait; an append every ~0.1 s never leaves 200 ms quiet
            if not pending:
                pending = s.turn_lines(f"stream {i}", f"streamed {i}")
            s.append(pending.pop(0))
            i += 1
            if d.find("session.appended", mark, path=str(s.path)):
                seen_while_writing = True
                if time.monotonic() - began > 4:
                    break
            time.sleep(0.1)
        assert seen_while_writing, "no session.appended while the session kept growing past max_wait_ms"
        wait_synced(tree, s.path, d)
        assert d.stop() == 0
    assert_thread_matches(tree, s, thread)


# -- rewrite, conflict, Codex's writer lock ----------------------------------------------------------


def test_rewrite_in_place_replaces_the_same_thread(tree: Tree) -> None:
    s = new_session(tree, ("one", "uno"), ("two", "dos"), ("three", "tres"), ("four", "cuatro"))
    with DaemonProc(tree).start() as d:
        thread = d.wait_event("session.imported", path=str(s.path))["thread_id"]
        wait_synced(tree, s.path, d)
        rollout = Path(ledger_row(tree, s.path)["rollout_path"])
        inode = s.path.stat().st_ino
        # Compaction: fewer lines, and an early line changed; same file (same inode), truncated in place.
        lines = s.path.read_bytes().splitlines(keepends=True)
        lines[0] = lines[0].replace(b'"one"', b'"one (compacted summary)"')
        with s.path.open("r+b") as f:
            f.write(b"".join(lines[:2] + lines[-2:]))
            f.truncate()
        assert s.path.stat().st_ino == inode
        event = d.wait_event("session.rewritten", path=str(s.path))
        assert event["thread_id"] == thread
        wait_synced(tree, s.path, d)
        assert d.stop() == 0
    assert [p for p in tree.rollouts()] == [rollout]
    assert_thread_matches(tree, s, thread)
    assert [t.user for t in reference_turns(s.path, "claude")] == ["one (compacted summary)", "four"]


def test_thread_continued_in_codex_gets_a_new_generation(tree: Tree) -> None:
    s = new_session(tree, ("one", "uno"))
    with DaemonProc(tree).start() as d:
        thread = d.wait_event("session.imported", path=str(s.path))["thread_id"]
        wait_synced(tree, s.path, d)
        rollout = Path(ledger_row(tree, s.path)["rollout_path"])
        # "Codex" continues the thread: one more line at the end of its rollout.
        with rollout.open("ab") as f:
            f.write(json.dumps({"timestamp": "2026-01-02T00:00:00.000Z", "type": "event_msg",
                                "payload": {"type": "user_message", "message": "continued in Codex",
                                            "images": [], "local_images": [], "text_elements": []}}).encode() + b"\n")
        kept = rollout.read_bytes()
        mark = d.log_size()
        s.append(b"".join(s.turn_lines("two", "dos")))
        event = d.wait_event("session.conflict", start=mark, path=str(s.path))
        assert event["previous_thread_id"] == thread and event["thread_id"] != thread
        new = event["thread_id"]
        row = wait_synced(tree, s.path, d)
        assert row["thread_id"] == new and row["generation"] == 1
        # More growth goes to the new generation, by append.
        s.append(b"".join(s.turn_lines("three", "tres")))
        assert d.wait_event("session.appended", start=mark, path=str(s.path))["thread_id"] == new
        wait_synced(tree, s.path, d)
        assert d.stop() == 0
    assert rollout.read_bytes() == kept, "the thread continued in Codex was modified"
    assert len(tree.rollouts()) == 2
    assert_thread_matches(tree, s, new, threads=2)
    with codex(tree) as c:
        assert rollout_thread_id(rollout) == thread
        assert thread in [t["id"] for t in c.list_threads()]


def test_writer_lock_held_by_codex_defers_the_sync(tree: Tree) -> None:
    s = new_session(tree, ("one", "uno"))
    with DaemonProc(tree).start() as d:
        thread = d.wait_event("session.imported", path=str(s.path))["thread_id"]
        wait_synced(tree, s.path, d)
        rollout = Path(ledger_row(tree, s.path)["rollout_path"])
        kept = rollout.read_bytes()
        locks = tree.codex_home / "thread-writer-locks"
        locks.mkdir(exist_ok=True)
        fd = os.open(locks / f"{thread}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            mark = d.log_size()
            s.append(b"".join(s.turn_lines("two", "dos")))
            d.wait_event("session.deferred", start=mark, path=str(s.path))
            assert rollout.read_bytes() == kept, "rollout changed while Codex held its writer lock"
            assert not d.find("session.appended", mark) and not d.find("session.conflict", mark)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        event = d.wait_event("session.appended", start=mark, path=str(s.path), timeout=60)  # the retry
        assert event["thread_id"] == thread
        wait_synced(tree, s.path, d)
        assert d.stop() == 0
    assert not any(e["event"] == "session.conflict" for e in d.events())
    assert_thread_matches(tree, s, thread)


# -- roots -----------------------------------------------------------------------------------------


def test_claude_root_created_after_start_is_imported(tree: Tree) -> None:
    assert not claude_root(tree).exists()
    with DaemonProc(tree).start() as d:
        s = new_session(tree, ("late", "root"))  # creates ~/.claude/projects/<project>/<id>.jsonl at once
        event = d.wait_event("session.imported", path=str(s.path))
        wait_synced(tree, s.path, d)
        # And the new root is watched, not just scanned once.
        s.append(b"".join(s.turn_lines("more", "text")))
        d.wait_event("session.appended", path=str(s.path))
        wait_synced(tree, s.path, d)
        assert d.stop() == 0
    assert_thread_matches(tree, s, event["thread_id"])


def test_sighup_reloads_config_and_keeps_the_old_one_when_broken(tree: Tree) -> None:
    root_a, root_b = tree.root / "roots" / "a", tree.root / "roots" / "b"
    root_a.mkdir(parents=True)
    a = Session(root_a, tree.root / "repos" / "a")
    a.write_turns(("in a", "ok"))
    b = Session(root_b, tree.root / "repos" / "b")
    b.write_turns(("in b", "ok"))
    with DaemonProc(tree, toml_config(claude_roots=[root_a])).start() as d:
        d.wait_event("session.imported", path=str(a.path))
        wait_synced(tree, a.path, d)
        assert ledger_row(tree, b.path) is None

        d.config_path.write_text(toml_config(claude_roots=[root_a, root_b]))
        mark = d.log_size()
        d.signal(signal.SIGHUP)
        assert d.wait_event("daemon.reload", start=mark)["outcome"] == "applied"
        d.wait_event("session.imported", start=mark, path=str(b.path))
        wait_synced(tree, b.path, d)

        d.config_path.write_text("quiet_ms = [not toml\n")
        mark = d.log_size()
        d.signal(signal.SIGHUP)
        event = d.wait_event("daemon.reload", start=mark)
        assert event["level"] == "error" and "not valid TOML" in event["error"], event
        # Still running, still with the second config: both roots watched.
        for s in (a, b):
            s.append(b"".join(s.turn_lines("after a bad reload", "still syncing")))
            d.wait_event("session.appended", start=mark, path=str(s.path))
            wait_synced(tree, s.path, d)
        assert d.alive()
        assert d.stop() == 0


def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(tree: Tree) -> None:
    with DaemonProc(tree).start() as d:
        second = subprocess.run(cli_command("run", "--config", str(d.config_path)), env=tree.env(), cwd=tree.root,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "already" in second.stderr.lower() and str(d.pid) in second.stderr, second.stderr
        assert d.alive()
        assert d.stop() == 0


def test_a_daemon_waits_for_a_running_import(tree: Tree) -> None:
    """A service started while the user runs `import` waits for it instead of failing."""
    from daemon import pidlock

    s = new_session(tree, ("one", "uno"))
    held = pidlock.acquire(tree.state / "session-syncd", {}, role="import")
    try:
        d = DaemonProc(tree).start(wait=None)
        wait_until(lambda: "waiting for the import" in d.stderr(), what="the daemon to wait for the import")
        assert d.alive() and not d.find("daemon.ready")
    finally:
        held.release()
    with d:
        d.wait_event("daemon.ready")
        d.wait_event("session.imported", path=str(s.path))
        assert d.stop() == 0


# -- shutdown in the middle of an import --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("timeout_s", [3.0, 0.01], ids=["in-flight-finish", "in-flight-abandoned"])
def test_sigterm_during_initial_import_leaves_a_consistent_ledger(tmp_path: Path, timeout_s: float) -> None:
    """~50 sessions (60 MiB) importing when SIGTERM arrives: in-flight sessions either finish within
    shutdown_timeout_s or are abandoned before their ledger commit (0.01 s forces that path)."""
    require_codex()
    tree = make_fixture(tmp_path / "fx", sessions=50, mib=60)
    sources = tree.claude_sources()
    assert len(sources) == 50
    config = toml_config(shutdown_timeout_s=timeout_s, workers=2)
    with DaemonProc(tree, config).start(wait="daemon.started") as d:
        d.wait_event("session.imported", timeout=120)  # the import is under way
        sent = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.stop(timeout=timeout_s + 30)
        took = time.monotonic() - sent
        assert rc == 0, d.stderr()
        # the bound: shutdown_timeout_s for in-flight syncs, then at most 5 s to stop the watcher
        assert took < timeout_s + 10, f"exit took {took:.1f}s"
        assert d.group_gone(), "a worker process outlived the daemon"
        imported_first = len(d.find("session.imported"))

    rows = ledger_rows(tree)
    assert 0 < len(rows) < 50, f"{len(rows)} rows: the import was not interrupted"
    for r in rows:
        rollout = Path(r["rollout_path"])
        assert rollout.is_file(), f"ledger row for {r['path']} names a missing rollout"
        assert rollout.stat().st_size == r["rollout_size"], f"{rollout} size differs from the ledger"
    known = {Path(r["rollout_path"]) for r in rows}
    orphans = [p for p in tree.rollouts() if p not in known]
    # Only sessions abandoned in flight can leave a rollout without its row; the restart rewrites them.
    assert len(orphans) <= 2, orphans
    assert not list((tree.codex_home / "sessions").rglob(".*.tmp")), "a half-written temp file was left behind"

    with DaemonProc(tree, config).start(wait="daemon.started") as d2:
        for src in sources:
            wait_synced(tree, src, d2, timeout=180)
        assert d2.stop() == 0
        assert not d2.find("session.conflict")
        resumed = len(d2.find("session.imported"))
    assert imported_first + resumed >= 50

    rows = ledger_rows(tree)
    assert sorted(r["path"] for r in rows) == sorted(map(str, sources))
    ids = [r["thread_id"] for r in rows]
    assert len(set(ids)) == 50
    assert sorted(tree.rollouts()) == sorted(Path(r["rollout_path"]) for r in rows), "one rollout per session"
    assert set(orphans) <= {Path(r["rollout_path"]) for r in rows}, "an orphan rollout was not adopted"
    for r in rows:
        assert Path(r["rollout_path"]).stat().st_size == r["rollout_size"]
    with codex(tree) as c:
        listed = [t["id"] for t in c.list_threads()]
    assert len(listed) == len(set(listed)) == 50
    assert set(listed) == set(ids)


def test_sigint_stops_like_sigterm(tree: Tree) -> None:
    s = new_session(tree, ("one", "uno"))
    with DaemonProc(tree).start() as d:
        d.wait_event("session.imported", path=str(s.path))
        d.signal(signal.SIGINT)
        # wait for it to exit on the SIGINT alone: stop() would add a SIGTERM, which may be taken first
        # (then the SIGINT is a second stop signal, which exits at once with 130)
        assert d.proc.wait(timeout=30) == 0, d.stderr()[-3000:]
        assert d.find("daemon.stopping", signal="SIGINT") and d.find("daemon.stopped")
    assert synced(tree, s.path)
