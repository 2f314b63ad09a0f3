"""`session-syncd status`: real fixture, real `import`, real ledger, real lock-holding process; plus the pure core."""

from __future__ import annotations

import os
import time
from pathlib import Path

from daemon import status
from daemon.config import Paths
from daemon.ledger import Ledger
from daemon.pidlock import DaemonInfo, Deferred, LiveStatus
from status_support import Holder, Tree, build_tree, by_source, claude_line, cli, status_json


def ledger_view(tree: Tree) -> dict[str, dict]:
    """What the ledger says per source, computed independently of daemon.status."""
    ledger = Ledger(tree.ledger)
    try:
        rows = {(r.source, r.path): r for r in ledger.rows()}
        failures = ledger.failures()
    finally:
        ledger.close()
    files = {"claude": tree.claude_sessions(), "cursor": tree.cursor_sessions()}
    view: dict[str, dict] = {}
    for kind, paths in files.items():
        synced = failing = 0
        for p in paths:
            st, row = p.stat(), rows.get((kind, str(p)))
            if (row is not None and row.last_error) or (row is None and (kind, str(p)) in failures):
                failing += 1
            elif row is not None and (row.size, row.mtime_ns, row.inode) == (st.st_size, st.st_mtime_ns, st.st_ino):
                synced += 1
        mine = [r for (k, _), r in rows.items() if k == kind]
        view[kind] = {"sessions": len(paths), "synced": synced, "failing": failing,
                      "pending": len(paths) - synced - failing,
                      "last_sync_at": max((max(r.synced_at, r.updated_at) for r in mine), default=None)}
    return view


def counts(report: dict) -> dict[str, dict]:
    keys = ("sessions", "synced", "pending", "failing", "last_sync_at")
    return {k: {f: s[f] for f in keys} for k, s in by_source(report).items()}


def test_status_follows_import_append_and_failure(tmp_path: Path) -> None:
    tree = build_tree(tmp_path)
    before = status_json(tree)
    assert not before["ledger_exists"] and not tree.state_dir.exists()  # status creates nothing
    assert {k: (s["sessions"], s["pending"], s["synced"]) for k, s in by_source(before).items()} == {
        "claude": (3, 3, 0), "cursor": (2, 2, 0)}

    done = cli(tree, "import")
    assert done.returncode == 0, done.stderr
    report = status_json(tree)
    assert report["daemon"]["running"] is False
    assert counts(report) == ledger_view(tree)
    assert {k: (s["synced"], s["pending"], s["failing"]) for k, s in by_source(report).items()} == {
        "claude": (3, 0, 0), "cursor": (2, 0, 0)}

    # The user keeps talking in one session: it is pending until the next sync.
    grown = tree.claude_sessions()[0]
    with grown.open("ab") as f:
        f.write(claude_line(str(tree.root / "repos"), grown.stem, "one more question"))
    report = status_json(tree)
    claude = by_source(report)["claude"]
    assert (claude["synced"], claude["pending"], claude["failing"]) == (2, 1, 0)
    assert 0 <= claude["lag_s"] < 120
    assert counts(report) == ledger_view(tree)

    # With Codex's rule (skip_missing_cwd), a session whose working directory is gone is not imported:
    # it is failing, with the engine's error.
    broken = tree.home / ".claude" / "projects" / "-gone-project" / "0b5e7c1e-0000-4000-8000-000000000001.jsonl"
    broken.parent.mkdir()
    broken.write_bytes(claude_line(str(tmp_path / "gone"), broken.stem, "hello?"))
    config = tmp_path / "skip.toml"
    config.write_text("skip_missing_cwd = true\n")
    done = cli(tree, "import", "--config", str(config))
    assert done.returncode == 0, done.stderr
    report = status_json(tree)
    claude = by_source(report)["claude"]
    assert (claude["sessions"], claude["synced"], claude["pending"], claude["failing"]) == (4, 3, 0, 1)
    assert counts(report) == ledger_view(tree)
    assert str(tmp_path / "gone") in claude["last_error"] and "no longer exists" in claude["last_error"]
    assert [f["path"] for f in claude["failures"]] == [str(broken)]
    assert claude["failures"][0]["count"] == 1 and claude["failures"][0]["at"] > 0

    text = cli(tree, "status")
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith("daemon: not running; start it with `session-syncd service install`")
    assert lines[2].split()[:6] == ["source", "sessions", "synced", "pending", "failing", "deferred"]
    assert lines[3].split()[:6] == ["claude", "4", "3", "0", "1", "0"]
    assert lines[4].split()[:6] == ["cursor", "2", "2", "0", "0", "0"]
    assert f"failing claude: {claude['last_error']}" in lines


def test_a_failing_synced_session_shows_its_rows_last_error(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, sessions=1, cursor=1)
    assert cli(tree, "import").returncode == 0
    source = tree.cursor_sessions()[0]
    ledger = Ledger(tree.ledger)
    rollout = Path(ledger.get("cursor", source.stem).rollout_path)
    ledger.close()
    # Something put a folder where the thread's rollout was: the next append of this session fails.
    rollout.unlink()
    rollout.mkdir()
    with source.open("ab") as f:
        f.write(b'{"role":"user","message":{"content":[{"type":"text","text":"<user_query>\\nmore\\n</user_query>"}]}}\n')
    assert cli(tree, "import").returncode == 1
    report = status_json(tree)
    cursor = by_source(report)["cursor"]
    ledger = Ledger(tree.ledger)
    row = ledger.get("cursor", source.stem)
    ledger.close()
    assert row is not None and row.last_error
    assert (cursor["synced"], cursor["pending"], cursor["failing"]) == (0, 0, 1)
    assert cursor["last_error"] == row.last_error
    assert cursor["failures"] == [{"path": str(source), "error": row.last_error, "count": 1, "at": None}]
    assert counts(report) == ledger_view(tree)


def test_running_daemon_and_its_live_counters(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, sessions=2, cursor=0)
    assert cli(tree, "import").returncode == 0
    deferred = str(tree.claude_sessions()[1])
    live = {"updated_at": time.time(), "in_flight": 1, "queued": 4, "last_rescan_at": time.time() - 30,
            "watching": [str(tree.home / ".claude" / "projects")],
            "deferred": [{"path": deferred, "reason": "Codex has thread t open; will retry"}]}
    env = {**os.environ, "INVOCATION_ID": "feedface"}
    env.pop("NOTIFY_SOCKET", None)
    holder = Holder(tree.state_dir, env=env, live=live)
    try:
        assert holder.first_line == "ready"
        report = status_json(tree)
        d = report["daemon"]
        assert (d["running"], d["pid"], d["manager"], d["in_flight"], d["queued"]) == (
            True, holder.pid, "systemd", 1, 4)
        assert d["watching"] == live["watching"] and 0 <= d["uptime_s"] < 120
        assert by_source(report)["claude"]["deferred"] == 1
        text = cli(tree, "status").stdout
        assert text.startswith(f"daemon: running, pid {holder.pid}, up ")
        assert "systemd" in text and "1 in flight, 4 queued, watching 1 folder(s)" in text
    finally:
        holder.kill()  # crash: the lock goes, the live file stays
    report = status_json(tree)
    assert report["daemon"]["running"] is False and report["daemon"]["in_flight"] is None
    assert by_source(report)["claude"]["deferred"] == 0


def test_unreadable_ledger_is_exit_1_naming_the_file(tmp_path: Path) -> None:
    tree = build_tree(tmp_path, sessions=1, cursor=0)
    assert cli(tree, "import").returncode == 0
    tree.ledger.write_bytes(b"this is not a database, it was overwritten\n" * 200)
    for args in (("status",), ("status", "--json")):
        done = cli(tree, *args)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith(f"session-syncd status: ledger {tree.ledger} is unusable")
        assert "session-syncd ledger rebuild" in done.stderr


def test_no_sources_at_all(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    tree = Tree(tmp_path)
    done = cli(tree, "status")
    assert done.returncode == 0, done.stderr
    from daemon.sources import SOURCES

    rows = done.stdout.splitlines()[3:3 + len(SOURCES)]
    assert [r.split()[0] for r in rows] == sorted(SOURCES)  # nothing found: every agent it looks for
    assert all(r.split()[1:] == ["0", "0", "0", "0", "0", "never", "-"] for r in rows), rows


# -- the pure core ---------------------------------------------------------------------------------

PATHS = Paths(home=Path("/h"), codex_home=Path("/h/.codex"), state_dir=Path("/h/state"))


def entry(path: str, *, size: int = 10, error: str | None = None, count: int = 0, at: float = 100.0) -> status.Entry:
    return status.Entry(source="claude", path=path, size=size, mtime_ns=1, inode=1, synced_at=at, updated_at=at - 5,
                        last_error=error, error_count=count)


def test_build_classifies_each_session_once() -> None:
    seen = [status.Seen("claude", f"/p/{n}.jsonl", 10, mtime, 1) for n, mtime in
            (("synced", 1), ("grown", 900 * 10**9), ("new", 950 * 10**9), ("row-error", 5), ("never-synced-error", 6))]
    entries = [entry("/p/synced.jsonl", at=400.0), entry("/p/grown.jsonl", size=5, at=300.0),
               entry("/p/row-error.jsonl", size=5, error="cannot write X; fix Y", count=3),
               entry("/p/deleted.jsonl", at=500.0)]
    failures = {("claude", "/p/never-synced-error.jsonl"): ("no working directory; nothing to import yet", 2, 700.0)}
    info = DaemonInfo(pid=7, started_at=40.0, manager="launchd", version="0.1.0")
    live = LiveStatus(pid=7, updated_at=990.0, in_flight=2, deferred=[Deferred(path="/p/grown.jsonl", reason="busy"),
                                                                       Deferred(path="/elsewhere", reason="?")])
    r = status.build(kinds=["claude", "cursor"], seen=seen, entries=entries, failures=failures, info=info, live=live,
                     now=1000.0, paths=PATHS)
    claude, cursor = r.sources
    assert (claude.sessions, claude.synced, claude.pending, claude.failing, claude.deferred) == (5, 1, 2, 2, 1)
    assert claude.lag_s == 100.0  # oldest pending changed at t=900
    assert claude.last_sync_at == 500.0  # rows of files no longer discovered still count as syncs
    assert claude.last_error == "no working directory; nothing to import yet"  # timestamped failures first
    assert [f.path for f in claude.failures] == ["/p/never-synced-error.jsonl", "/p/row-error.jsonl"]
    assert cursor == status.SourceStatus(source="cursor", failures=[])
    assert (r.daemon.uptime_s, r.daemon.in_flight, r.daemon.manager) == (960.0, 2, "launchd")
    text = status.render(r)
    assert "failing claude: cannot write X; fix Y (3 attempts)" in text
    assert text.splitlines()[3].split() == ["claude", "5", "1", "2", "2", "1", "8m", "20s", "ago", "1m", "40s"]


def test_build_ignores_a_live_file_from_another_pid() -> None:
    live = LiveStatus(pid=8, updated_at=1.0, in_flight=9, deferred=[Deferred(path="/p/a.jsonl", reason="busy")])
    r = status.build(kinds=["claude"], seen=[status.Seen("claude", "/p/a.jsonl", 1, 1, 1)], entries=[], failures={},
                     info=DaemonInfo(pid=7, started_at=0.0, manager="unknown", version="unknown"), live=live,
                     now=10.0, paths=PATHS)
    assert r.daemon.running and r.daemon.in_flight is None and r.sources[0].deferred == 0
    assert r.daemon.uptime_s is None
    assert status.duration(59) == "59s" and status.duration(3600 * 26) == "1d 02h"
