"""The daemon keeps every agent's sessions in sync (issue 9, "Tests: Daemon"): a Gemini CLI JSONL session,
a legacy Gemini JSON file rewritten whole, a Copilot CLI session, a Qwen Code session and an OpenCode
database that a second process writes, each grown live beside the agents' fixture sessions, each
reaching the same thread after every change; restarts (SIGTERM, SIGKILL, changes made while the daemon
was down) make no second thread; and at the end every thread equals a fresh import of its source into
an empty Codex home, thread ids included.

The periodic rescan is set to 10 minutes, so every change seen here was seen through the watcher and
synced by the debouncer (quiet 200 ms, at most 1.5 s after the first write); the waits are on the
rollout holding the new turn, with generous timeouts, never on time.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agents_live import (CopilotLive, GeminiLive, Live, OpenCodeLive, OpenCodeWriter, QwenLive, Roots,
                         assert_equals_fresh_import, fresh_import, ledger, rollout_ids, shows,
                         superseded, wait_caught_up)
from codex_app_server import CodexAppServer
from daemon_support import DaemonProc, wait_until
from support import MARKER, Tree, read_view, require_codex

pytestmark = pytest.mark.codex

SYNC_TIMEOUT = 60.0


def wait_shown(tree: Tree, sessions: list[Live], threads: dict[tuple[str, str], str], d: DaemonProc) -> None:
    """Each session's newest turn reaches its thread, and that thread is the one it had from the start."""
    for s in sessions:
        tid = wait_until(lambda: shows(tree, s), SYNC_TIMEOUT, f"{s.key} turn {s.turns} in its thread", d)
        assert threads.setdefault(s.key, tid) == tid, f"{s.key} moved from thread {threads[s.key]} to {tid}"


def test_every_agent_grown_live_stays_in_one_thread_that_equals_a_fresh_import(tmp_path: Path) -> None:
    require_codex()
    tree = Tree(tmp_path)
    tree.home.mkdir()
    roots = Roots(tmp_path)
    roots.install_fixtures()
    writer = OpenCodeWriter(roots.db)
    try:
        gemini = GeminiLive(roots, "gemini-live")
        legacy = GeminiLive(roots, "gemini-legacy", legacy=True)
        copilot = CopilotLive(roots, "copilot-live")
        qwen = QwenLive(roots, "qwen-live")
        opencode = OpenCodeLive(writer, roots, "opencode-live", 0)
        live: list[Live] = [gemini, legacy, copilot, qwen, opencode]
        threads: dict[tuple[str, str], str] = {}
        config = tree.root / "daemon.toml"
        with DaemonProc(tree, roots.config()).start() as d:
            wait_shown(tree, live, threads, d)
            # The first sync is over only when the fixture sessions are in too: the live ones may be done
            # first, and a fixture session imported during the rounds below would read as a new thread.
            _, start_ledger = fresh_import(tree, config, tmp_path / "start")
            wait_caught_up(tree, start_ledger, d, SYNC_TIMEOUT)
            background = set(ledger(tree.ledger_path)) - {s.key for s in live}
            assert {k for k, _ in background} == {"gemini", "copilot", "qwen", "opencode"}, background

            # Each grows while the daemon watches: appended lines, a JSON file rewritten in place, rows
            # committed by the other process; every change reaches the thread it already has.
            for _ in range(2):
                mark = d.log_size()
                for s in live:
                    s.grow()
                wait_shown(tree, live, threads, d)
                # (the rollout is written before the ledger commit that precedes the log line)
                wait_until(lambda: {threads[s.key] for s in live} <= {e["thread_id"] for e in
                                                                      d.find("session.appended", mark)},
                           SYNC_TIMEOUT, "a session.appended for every live session", d)
                for kind in ("session.imported", "session.conflict", "session.rewritten"):
                    assert not d.find(kind, mark), d.find(kind, mark)

            # SIGTERM mid-burst, changes while it is down, a restart that picks them up.
            for s in live:
                s.grow()
            d.signal(signal.SIGTERM)
            assert d.proc.wait(timeout=30) == 0, d.stderr()
            for s in live:
                s.grow()
            d.start()
            wait_shown(tree, live, threads, d)

            # SIGKILL (the whole group, workers too) right after a change, more changes, a restart.
            for s in live:
                s.grow()
            d.kill()
            assert d.group_gone()
            gemini.rewind()
            qwen.rewind()
            for s in (legacy, copilot, opencode):
                s.grow()
            d.start()
            wait_shown(tree, live, threads, d)

            # One more round on the restarted daemon, then nothing may be left to do.
            for s in live:
                s.grow()
            wait_shown(tree, live, threads, d)
            fresh_home, fresh_ledger = fresh_import(tree, config, tmp_path / "fresh")
            wait_caught_up(tree, fresh_ledger, d, SYNC_TIMEOUT)
            assert d.stop() == 0, d.stderr()
    finally:
        writer.close()

    rows = ledger(tree.ledger_path)
    assert {s.key: rows[s.key]["thread_id"] for s in live} == threads
    assert not superseded(tree.ledger_path)
    ids = rollout_ids(tree.codex_home)
    assert len(ids) == len(set(ids)) == len(rows), "a session has more than one thread"
    assert_equals_fresh_import(tree, fresh_home, fresh_ledger)

    # What Codex itself sees: one thread per session, the newest turn of each live one in it.
    with CodexAppServer(home=tree.home, codex_home=tree.codex_home, timeout=60) as codex:
        listed = sorted(t["id"] for t in codex.list_threads())
        assert listed == sorted(ids)
        for s in live:
            view = read_view(codex.read_thread(threads[s.key]))
            assert view[-1][0] == s.marker, (s.key, view[-1:])
            assert view[-1][1][-1] == MARKER, (s.key, view[-1:])
