"""The never-raise contract: nothing in one session's content stops `import`, the daemon, or another session.

Real subprocesses on real temp trees. Unexpected errors and worker deaths are produced with the
env-enabled fault points of daemon/faults.py (a real exception, a real SIGKILL of the worker process),
not with mocks. Memory is measured as the real peak RSS of the import's processes.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from daemon.gitinfo import git_info
from daemon_support import DaemonProc, Session, toml_config, wait_until
from support import Tree, cli_command, ledger_rows, log_events, make_git_repo, run_import

# Levels of nesting: past the depth msgspec decodes on every Python we support (~1,000 on 3.11,
# ~1,500 on 3.12, ~10,000 on 3.13: each one's recursion limit for C code).
DEEP = 50_000


@dataclass
class FaultTree(Tree):
    """A Tree whose processes run with extra environment (the fault-injection variables)."""

    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


def _projects(tree: Tree) -> Path:
    return tree.home / ".claude" / "projects"


def _sessions(tree: Tree, n: int, turns: int = 2) -> list[Session]:
    cwd = tree.root / "repos" / "p"
    out = []
    for i in range(n):
        s = Session(_projects(tree), cwd, session_id=f"00000000-0000-4000-8000-{i:012d}")
        s.write_turns(*[(f"question {i}.{t}", f"answer {i}.{t}") for t in range(turns)])
        out.append(s)
    return out


def _user_texts(rollout: Path) -> list[str]:
    out = []
    for line in rollout.read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] == "event_msg" and rec["payload"]["type"] == "user_message":
            out.append(rec["payload"]["message"])
    return out


def _threads_by_source(tree: Tree) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for row in ledger_rows(tree):
        if row["rollout_path"]:
            by.setdefault(Path(row["path"]).stem, []).append(row["rollout_path"])
    return by


def _one_thread_each(tree: Tree, sessions: list[Session]) -> None:
    rollouts = tree.rollouts()
    assert len(rollouts) == len(sessions), [p.name for p in rollouts]
    by = _threads_by_source(tree)
    assert sorted(by) == sorted(s.session_id for s in sessions)
    assert all(len(v) == 1 for v in by.values()), by


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_deeply_nested_lines_are_skipped_and_the_rest_imported(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    sessions = _sessions(tree, 3)
    hostile = sessions[1]
    good = hostile.path.read_bytes()
    first_turn_end = good.index(b"\n", good.index(b"\n") + 1) + 1
    bad = (b'{"type":"user","cwd":"/x","message":{"role":"user","content":' + _nested(DEEP) + b"}}\n"
           + _nested(DEEP) + b"\n"
           + b'{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","name":"t","input":'
           + b'{"a":' * 800 + b"1" + b"}" * 800 + b"}]}}\n")
    hostile.path.write_bytes(good[:first_turn_end] + bad + good[first_turn_end:])
    summary = run_import(tree)
    assert summary["failed"] == 0 and summary["imported"] == 3, summary
    assert summary["malformed_lines"] >= 2, summary
    _one_thread_each(tree, sessions)
    row = next(r for r in ledger_rows(tree) if Path(r["path"]) == hostile.path)
    assert _user_texts(Path(row["rollout_path"])) == ["question 1.0", "question 1.1"]


def test_daemon_keeps_running_after_a_hostile_line(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    (s,) = _sessions(tree, 1)
    with DaemonProc(tree, toml_config(claude_roots=[_projects(tree)])) as daemon:
        daemon.start()
        s.append(_nested(DEEP) + b"\n")
        s.append(b"".join(s.turn_lines("after the storm", "calm")))
        row = wait_until(lambda: next((r for r in ledger_rows(tree) if r["consumed"] == s.path.stat().st_size),
                                      None), what="the good turn after the hostile line", daemon=daemon)
        assert daemon.alive()
        assert _user_texts(Path(row["rollout_path"]))[-1] == "after the storm"
        assert daemon.stop() == 0


def test_symbolic_ref_loop_gives_no_commit_not_an_error(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    make_git_repo(repo, "https://example.invalid/r.git")
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/loop\n")
    (repo / ".git" / "refs" / "heads" / "loop").write_text("ref: refs/heads/loop\n")
    info = git_info(str(repo), None)
    assert info is not None and info.commit_hash is None and info.branch == "loop"
    assert info.repository_url == "https://example.invalid/r.git"


_MEASURE = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(p.stderr); print(p.stdout.strip().splitlines()[-1]); "
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _run_measured(tree: Tree, *args: str) -> tuple[dict, int]:
    """`import --json` under a small fresh parent; (summary, peak RSS in KiB of the import and its workers).

    The parent is new so that its children's peak is only theirs (a child forked from this test process
    would start its count from the test's own size)."""
    proc = subprocess.run([*cli_command()[:1], "-c", _MEASURE, *cli_command("import", "--json", *args)],
                          env=tree.env(), cwd=tree.root, capture_output=True, text=True, timeout=300)
    summary_line, status = proc.stdout.strip().splitlines()[-2:]
    code, peak = map(int, status.split())
    assert code == 0, proc.stderr
    return json.loads(summary_line), peak


def _append_line_of(path: Path, head: bytes, mib: int, tail: bytes) -> None:
    """Append one line of about `mib` MiB without holding it in this process."""
    with path.open("ab") as f:
        f.write(head)
        block = b"x" * (1 << 20)
        for _ in range(mib):
            f.write(block)
        f.write(tail)


@pytest.mark.slow
def test_a_100_mb_line_costs_bounded_memory_and_is_skipped_once(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    (s,) = _sessions(tree, 1)
    _append_line_of(s.path, b'{"type":"user","message":{"role":"user","content":"', 100, b'"}}\n')
    s.append(b"".join(s.turn_lines("after the huge line", "ok")))
    config = tree.root / "c.toml"
    config.write_text("max_line_mb = 8\n")
    summary, peak_kib = _run_measured(tree, "--config", str(config))
    assert summary["imported"] == 1 and summary["malformed_lines"] == 1, summary
    assert peak_kib < 80 * 1024, f"peak RSS {peak_kib} KiB for a 100 MiB line"
    (row,) = ledger_rows(tree)
    assert _user_texts(Path(row["rollout_path"]))[-1] == "after the huge line"
    s.append(b"".join(s.turn_lines("later", "still fine")))
    again, _ = _run_measured(tree, "--config", str(config))
    assert again["imported"] == 1 and again["malformed_lines"] == 0 and again["bytes_read"] < 4096, again


@pytest.mark.slow
def test_a_200_mb_file_without_newline_costs_bounded_memory_and_resumes(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    (s,) = _sessions(tree, 1)
    _append_line_of(s.path, b'{"type":"user","message":{"content":"', 200, b"")
    config = tree.root / "c.toml"
    config.write_text("max_line_mb = 16\n")
    summary, peak_kib = _run_measured(tree, "--config", str(config))
    assert summary["imported"] == 1 and summary["malformed_lines"] == 1, summary
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB for a 200 MiB line"
    s.append(b'"}}\n' + b"".join(s.turn_lines("after the endless line", "ok")))
    again, _ = _run_measured(tree, "--config", str(config))
    assert again["imported"] == 1 and again["malformed_lines"] == 0 and again["bytes_read"] < 4096, again
    (row,) = ledger_rows(tree)
    assert _user_texts(Path(row["rollout_path"]))[-1] == "after the endless line"


def test_an_unexpected_error_fails_that_session_only_until_it_changes(tmp_path: Path) -> None:
    tree = FaultTree(tmp_path, extra={"SESSION_SYNCD_FAULT": "fold:raise:000000000001"})
    sessions = _sessions(tree, 3)
    summary = run_import(tree, check=False)
    assert summary["returncode"] != 0 and summary["failed"] == 1 and summary["imported"] == 2, summary
    (error,) = [e for e in summary["errors"] if "000000000001" in e]
    assert "\n" not in error and "InjectedFault" in error and str(sessions[1].path) in error
    events = [e for e in log_events(tree) if e.get("event") == "source.error"]
    assert len(events) == 1 and events[0]["path"] == str(sessions[1].path)
    tree.extra = {}
    again = run_import(tree, check=False)  # same bytes: not retried, still reported
    assert again["imported"] == 0 and again["skipped"] == 1, again
    sessions[1].append(b"".join(sessions[1].turn_lines("one more", "ok")))
    third = run_import(tree)
    assert third["imported"] == 1 and third["failed"] == 0, third
    _one_thread_each(tree, sessions)


def test_a_killed_worker_is_replaced_and_its_sessions_tried_again(tmp_path: Path) -> None:
    tree = FaultTree(tmp_path, extra={"SESSION_SYNCD_FAULT": "fold:kill:000000000002",
                                      "SESSION_SYNCD_FAULT_ONCE": str(tmp_path / "fired")})
    sessions = _sessions(tree, 6)
    summary = run_import(tree, "--executor", "process", "--workers", "2")
    assert (tmp_path / "fired").exists()  # a worker really died mid-session
    assert summary["imported"] == 6 and summary["failed"] == 0, summary
    _one_thread_each(tree, sessions)


def test_a_session_that_kills_every_worker_fails_and_the_import_goes_on(tmp_path: Path) -> None:
    tree = FaultTree(tmp_path, extra={"SESSION_SYNCD_FAULT": "fold:kill:000000000002"})
    sessions = _sessions(tree, 6)
    summary = run_import(tree, "--executor", "process", "--workers", "2", check=False)
    assert summary["returncode"] != 0 and summary["failed"] >= 1, summary
    assert summary["imported"] + summary["failed"] == 6, summary
    assert any("000000000002" in e and "worker process died" in e for e in summary["errors"]), summary
    tree.extra = {}
    again = run_import(tree, "--executor", "process", "--workers", "2")
    assert again["imported"] == summary["failed"] and again["failed"] == 0, again
    _one_thread_each(tree, sessions)


@pytest.mark.slow
def test_daemon_replaces_a_pool_whose_worker_was_killed(tmp_path: Path) -> None:
    tree = FaultTree(tmp_path, extra={"SESSION_SYNCD_FAULT": "fold:kill:000000000003",
                                      "SESSION_SYNCD_FAULT_ONCE": str(tmp_path / "fired")})
    sessions = _sessions(tree, 8, turns=1)
    pad = b"".join(sessions[0].turn_lines("x" * (3 << 20), "padding")) * 6  # a backlog ≥ 16 MiB: process pool
    sessions[0].append(pad)
    with DaemonProc(tree, toml_config(claude_roots=[_projects(tree)])) as daemon:
        daemon.start(timeout=120)
        wait_until(lambda: (tmp_path / "fired").exists(), what="the injected worker kill", daemon=daemon)
        wait_until(lambda: daemon.find("pool.replaced"), what="pool.replaced", daemon=daemon)
        wait_until(lambda: len([r for r in ledger_rows(tree) if r["rollout_path"]]) == len(sessions),
                   timeout=120, what="every session synced after the retry", daemon=daemon)
        assert daemon.alive()
        assert daemon.stop() == 0
    _one_thread_each(tree, sessions)
