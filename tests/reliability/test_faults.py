"""Faults of the environment, each made for real, and the recovery once it is gone (issue 10).

A full disk (a tmpfs in a private mount namespace, remounted bigger), EACCES (chmod, with the DAC
override capabilities dropped from the child, since the tests run as root), a read-only bind mount, a
source deleted or truncated while the import is stopped (SIGSTOP at the `fold` fault point, right
after the session was read), a source replaced by a folder, a FIFO and a symlink loop, a ledger held by
another process's `BEGIN EXCLUSIVE`, and a corrupt ledger (garbage bytes) repaired by
`session-syncd ledger rebuild`. After each: exactly one thread per session, every rollout parses, and
ledger and Codex home agree. tests/test_import_errors.py has the failure side of the full disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import pytest

from codex_app_server import CodexAppServer
from daemon_support import Session
from support import (REPO, Tree, cli_command, ledger_rows, ledger_superseded, log_events, require_codex,
                     wait_stopped_at)

TAIL_BYTES = 4096  # daemon/codex/store.py
NO_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")  # root without its bypass of chmod


@dataclass
class FaultTree(Tree):
    """A Tree whose processes run with extra environment (the fault-injection variables)."""

    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


@dataclass
class Src:
    """A Claude Code session and the user texts it holds (what its thread must hold, in order)."""

    s: Session
    users: list[str] = field(default_factory=list)

    def grow(self, *texts: str, pad: int = 0) -> None:
        data = b"".join(b"".join(self.s.turn_lines(t + "x" * pad, f"answer to {t}")) for t in texts)
        if self.s.path.exists():
            self.s.append(data)
        else:
            self.s.path.parent.mkdir(parents=True, exist_ok=True)
            self.s.path.write_bytes(data)
        self.users += [t + "x" * pad for t in texts]


def sources(tree: Tree, n: int, turns: int = 2, first: int = 0) -> list[Src]:
    """`n` new sessions, numbered from `first`."""
    out = []
    for i in range(first, first + n):
        src = Src(Session(tree.home / ".claude" / "projects", tree.root / "repos" / "p",
                          session_id=f"00000000-0000-4000-8000-{i:012d}"))
        src.grow(*[f"q{i}.{t}" for t in range(turns)])
        out.append(src)
    return out


def run(tree: Tree, *args: str, prefix: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *cli_command(*args)], env=tree.env(), cwd=tree.root, capture_output=True,
                          text=True, timeout=timeout)


def imp(tree: Tree, prefix: tuple[str, ...] = (), *args: str) -> dict:
    proc = run(tree, "import", "--json", *args, prefix=prefix)
    assert "Traceback" not in proc.stderr, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["returncode"], summary["stderr"] = proc.returncode, proc.stderr
    return summary


def user_texts(rollout: Path) -> list[str]:
    out = []
    for line in rollout.read_bytes().splitlines():
        rec = json.loads(line)  # every line of every rollout parses
        if rec["type"] == "event_msg" and rec["payload"]["type"] == "user_message":
            out.append(rec["payload"]["message"])
    return out


def tail(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, size - TAIL_BYTES))
        return blake3.blake3(f.read(size - max(0, size - TAIL_BYTES))).digest()


def agree(tree: Tree, srcs: list[Src]) -> dict[str, str]:
    """One thread per session holding all its turns, every rollout parses, each ledger row true to its
    rollout (size and tail hash), and no rollout the ledger does not know. Returns session → thread."""
    rows = {r["session_id"]: r for r in ledger_rows(tree) if r["thread_id"]}
    assert sorted(rows) == sorted(s.s.session_id for s in srcs), sorted(rows)
    old = {r["rollout_path"] for r in ledger_superseded(tree)}
    assert sorted(str(p) for p in tree.rollouts()) == sorted({r["rollout_path"] for r in rows.values()} | old)
    assert len({r["thread_id"] for r in rows.values()}) == len(rows)
    for src in srcs:
        row = rows[src.s.session_id]
        rollout = Path(row["rollout_path"])
        assert row["last_error"] is None, row["last_error"]
        assert (rollout.stat().st_size, tail(rollout, row["rollout_size"])) == \
            (row["rollout_size"], row["rollout_tail_hash"]), rollout
        assert user_texts(rollout) == src.users, rollout
    return {k: r["thread_id"] for k, r in rows.items()}


def need_root() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.fail("this test mounts and drops capabilities: it needs root, unshare and setpriv "
                    "(CI and the dev machines have them)")


@pytest.fixture
def tree(tmp_path: Path) -> FaultTree:
    return FaultTree(tmp_path)


# -- the Codex home ----------------------------------------------------------------------------------


def test_full_disk_recovers_once_there_is_space(tree: FaultTree) -> None:
    """512 KiB tmpfs as CODEX_HOME: a new big session and an append that do not fit fail (the small
    thread stays whole); remounted at 16 MiB, the next import writes both, nothing twice."""
    need_root()
    small, big = sources(tree, 2)
    big.grow("big", pad=2_000_000)
    tree.codex_home.mkdir()
    out = tree.root / "out"
    out.mkdir()
    cmd = " ".join(cli_command("import", "--json", "--workers", "1"))
    grow = f'{sys.executable} -c "import sys; open(sys.argv[1], \'ab\').write(open(sys.argv[2], \'rb\').read())"'
    extra = tree.root / "extra.jsonl"
    extra.write_bytes(b"".join(small.s.turn_lines("y" * 1_000_000, "long")))
    script = (f'set -e; mount -t tmpfs -o size=512k tmpfs "$0"; {cmd} > "$1/1.json" || true; '
              f'cat "$0"/sessions/*/*/*/*.jsonl | sha256sum > "$1/before"; {grow} "$2" "$3"; '
              f'{cmd} > "$1/2.json" || true; cat "$0"/sessions/*/*/*/*.jsonl | sha256sum > "$1/after"; '
              f'mount -o remount,size=16m "$0"; {cmd} > "$1/3.json"; {cmd} > "$1/4.json"; '
              f'cp -a "$0" "$1/keep"; umount "$0"; cp -a "$1/keep/." "$0/"')
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", script, str(tree.codex_home), str(out),
                           str(small.s.path), str(extra)], env=tree.env(), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    small.users.append("y" * 1_000_000)
    first, second, third, fourth = (json.loads((out / f"{i}.json").read_text()) for i in range(1, 5))
    assert (first["imported"], first["failed"]) == (1, 1), first
    assert all("free some disk space" in e for e in first["errors"]), first
    assert (second["imported"], second["failed"]) == (0, 2), second  # the append too: the thread is whole
    assert (out / "before").read_text() == (out / "after").read_text()
    assert (third["imported"], third["failed"], third["by_kind"]) == (2, 0, {"imported": 1, "appended": 1}), third
    assert (fourth["imported"], fourth["unchanged"]) == (0, 2), fourth
    agree(tree, [small, big])


def test_unwritable_codex_home_and_day_folder_recover(tree: FaultTree) -> None:
    """EACCES on CODEX_HOME (nothing attempted, one line), then on the day folder and the rollout
    (each session fails alone, with the fix); writable again, everything lands once."""
    need_root()
    a, = sources(tree, 1)
    assert imp(tree)["imported"] == 1
    (rollout,) = tree.rollouts()
    before = rollout.read_bytes()
    a.grow("more")
    (b,) = sources(tree, 1, first=1)
    tree.codex_home.chmod(0o500)
    try:
        summary = imp(tree, NO_DAC)
    finally:
        tree.codex_home.chmod(0o700)
    assert summary["returncode"] == 1 and summary["imported"] == 0, summary
    (line,) = summary["errors"]
    assert f"Codex home {tree.codex_home} is not writable" in line and "fix its permissions" in line
    rollout.parent.chmod(0o500)
    rollout.chmod(0o400)
    try:
        summary = imp(tree, NO_DAC)
    finally:
        rollout.parent.chmod(0o700)
        rollout.chmod(0o600)
    assert (summary["returncode"], summary["imported"], summary["failed"]) == (1, 0, 2), summary
    assert all("make the Codex home writable" in e and "\n" not in e for e in summary["errors"]), summary
    assert rollout.read_bytes() == before
    assert not list(tree.codex_home.rglob("*.tmp"))
    summary = imp(tree)
    assert summary["by_kind"] == {"appended": 1, "imported": 1}, summary
    agree(tree, [a, b])


def test_read_only_codex_home_recovers(tree: FaultTree) -> None:
    need_root()
    a, = sources(tree, 1)
    assert imp(tree)["imported"] == 1
    (rollout,) = tree.rollouts()
    before = rollout.read_bytes()
    a.grow("more")
    (b,) = sources(tree, 1, first=1)
    ro = ("unshare", "--mount", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && '
          'exec "$@"', str(tree.codex_home))
    summary = imp(tree, ro)
    assert (summary["returncode"], summary["imported"]) == (1, 0), summary
    (line,) = summary["errors"]
    assert str(tree.codex_home) in line and "not writable" in line, line
    assert rollout.read_bytes() == before
    summary = imp(tree)
    assert summary["by_kind"] == {"appended": 1, "imported": 1}, summary
    agree(tree, [a, b])


# -- the sources -------------------------------------------------------------------------------------


def test_unreadable_source_fails_alone_and_recovers(tree: FaultTree) -> None:
    need_root()
    a, b = sources(tree, 2)
    assert imp(tree)["imported"] == 2
    rollout_a = Path({r["session_id"]: r for r in ledger_rows(tree)}[a.s.session_id]["rollout_path"])
    before = rollout_a.read_bytes()
    a.grow("more")
    (c,) = sources(tree, 1, first=2)
    a.s.path.chmod(0)
    c.s.path.chmod(0)
    try:
        summary = imp(tree, NO_DAC)
    finally:
        a.s.path.chmod(0o644)
        c.s.path.chmod(0o644)
    assert (summary["returncode"], summary["imported"], summary["failed"], summary["unchanged"]) == (1, 0, 2, 1)
    for src in (a, c):
        (line,) = [e for e in summary["errors"] if str(src.s.path) in e]
        assert line.startswith(f"cannot read {src.s.path}: Permission denied; check that the file is readable")
    assert rollout_a.read_bytes() == before
    summary = imp(tree)
    assert summary["by_kind"] == {"appended": 1, "imported": 1}, summary
    agree(tree, [a, b, c])


def _stop_after_reading(tree: FaultTree, src: Src, change) -> dict:
    """Run an import that stops (SIGSTOP) right after reading `src`, `change` the world, continue it."""
    fired = tree.root / "fired"
    fired.unlink(missing_ok=True)
    tree.extra = {"SESSION_SYNCD_FAULT": f"fold:stop:{src.s.session_id}", "SESSION_SYNCD_FAULT_ONCE": str(fired)}
    proc = subprocess.Popen(cli_command("import", "--json", "--executor", "thread", "--workers", "1"),
                            env=tree.env(), cwd=tree.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_stopped_at(proc, fired, "the fold point")
        change()
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=60)
    tree.extra = {}
    assert "Traceback" not in stderr.decode(), stderr
    return json.loads(stdout.decode().strip().splitlines()[-1])


def test_source_deleted_while_being_read(tree: FaultTree) -> None:
    """What was read is imported; the source's going away then costs nothing and keeps the thread."""
    a, b = sources(tree, 2)
    summary = _stop_after_reading(tree, a, lambda: a.s.path.unlink())
    assert (summary["imported"], summary["failed"]) == (2, 0), summary
    (row,) = [r for r in ledger_rows(tree) if r["session_id"] == a.s.session_id]
    again = imp(tree)
    assert (again["returncode"], again["imported"], again["failed"], again["unchanged"]) == (0, 0, 0, 1), again
    assert user_texts(Path(row["rollout_path"])) == a.users
    assert agree(tree, [a, b])[a.s.session_id] == row["thread_id"]  # a's row and thread stay


def test_source_truncated_while_being_read(tree: FaultTree) -> None:
    """An append read, then the file cut back mid-line: the thread gets what was read; the next import
    sees the shorter file and rewrites the same thread to it; growth after that appends."""
    a, = sources(tree, 1)
    assert imp(tree)["imported"] == 1
    keep = a.s.path.stat().st_size
    a.grow("three", "four")

    def cut() -> None:
        with a.s.path.open("r+b") as f:
            f.truncate(keep + 40)  # the two turns we read, cut back to a fragment of a line

    summary = _stop_after_reading(tree, a, cut)
    assert summary["by_kind"] == {"appended": 1}, summary
    thread = agree(tree, [a])[a.s.session_id]
    a.users = a.users[:2]
    summary = imp(tree)
    assert summary["by_kind"] == {"rewritten": 1}, summary
    assert agree(tree, [a]) == {a.s.session_id: thread}
    with a.s.path.open("r+b") as f:
        f.truncate(keep)
    a.grow("five")
    summary = imp(tree)
    assert summary["by_kind"] == {"appended": 1}, summary
    assert agree(tree, [a]) == {a.s.session_id: thread}


def test_source_replaced_by_a_folder_a_fifo_and_a_symlink_loop(tree: FaultTree) -> None:
    """None of them hangs or stops the import; each thread is kept as it was; once the files are back
    (grown), each is appended to its own thread."""
    srcs = sources(tree, 3)
    assert imp(tree)["imported"] == 3
    before = {p: p.read_bytes() for p in tree.rollouts()}
    saved = [s.s.path.read_bytes() for s in srcs]
    for s in srcs:
        s.s.path.unlink()
    srcs[0].s.path.mkdir()
    os.mkfifo(srcs[1].s.path)
    srcs[2].s.path.symlink_to(srcs[2].s.path.name)
    (d,) = sources(tree, 1, first=3)
    summary = imp(tree)
    assert "Traceback" not in summary["stderr"]
    assert summary["by_kind"].get("imported") == 1 and summary["failed"] == 0, summary
    for s in srcs:
        assert len([e for e in summary["errors"] if str(s.s.path) in e]) <= 1, summary["errors"]
    assert {p: p.read_bytes() for p in tree.rollouts() if p in before} == before
    for s, data in zip(srcs, saved):
        if s.s.path.is_dir() and not s.s.path.is_symlink():
            s.s.path.rmdir()
        else:
            s.s.path.unlink()
        s.s.path.write_bytes(data)
        s.grow("back")
    summary = imp(tree)
    assert summary["by_kind"] == {"appended": 3}, summary
    agree(tree, [*srcs, d])


# -- the ledger --------------------------------------------------------------------------------------


HOLD = ("import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
        "db.execute('COMMIT')\n")


def test_ledger_locked_by_another_process_waits_then_goes_on(tree: FaultTree) -> None:
    a, = sources(tree, 1)
    assert imp(tree)["imported"] == 1
    a.grow("more")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tree.ledger_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        proc = subprocess.Popen(cli_command("import", "--json"), env=tree.env(), cwd=tree.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # not a timing assertion: the import is given the chance to fail on the lock
        assert proc.poll() is None, proc.communicate()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["by_kind"] == {"appended": 1}
    agree(tree, [a])


CONTINUED = json.dumps({"timestamp": "2026-01-02T00:00:00.000Z", "type": "event_msg",
                        "payload": {"type": "user_message", "message": "continued in Codex", "images": [],
                                    "local_images": [], "text_elements": []}}).encode() + b"\n"


def test_corrupt_ledger_is_explained_and_rebuilt_without_duplicates(tree: FaultTree) -> None:
    """Import; continue one thread in Codex (its session then gets generation 1); grow one session
    unseen; corrupt the ledger. Import and doctor name the file and the fix; `ledger rebuild` re-adopts
    every thread; the next import makes no thread, rewrites only the grown one; growth appends."""
    srcs = sources(tree, 4)
    assert imp(tree)["imported"] == 4
    conflicted, grown = srcs[1], srcs[2]
    row = {r["session_id"]: r for r in ledger_rows(tree)}[conflicted.s.session_id]
    with open(row["rollout_path"], "ab") as f:
        f.write(CONTINUED)
    conflicted.grow("after codex")
    assert imp(tree)["by_kind"] == {"conflict": 1}
    agree(tree, srcs)
    threads = {p: p.read_bytes() for p in tree.rollouts()}
    grown.grow("unseen")
    tree.ledger_path.write_bytes(b"\x00garbage, not a database\xff" * 200)

    for command in ("import", "run"):  # the daemon too: one line and exit 1, not a traceback or a hang
        proc = run(tree, command, timeout=60)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        (line,) = [l for l in proc.stderr.strip().splitlines() if str(tree.ledger_path) in l]
        assert "rebuild" in line or "aside" in line, line
    doctor = run(tree, "doctor")
    (line,) = [l for l in doctor.stdout.splitlines() if l.split()[1:2] == ["ledger"]]
    assert line.startswith(f"FAIL  ledger      {tree.ledger_path} is corrupt") and "`session-syncd ledger rebuild`" in line

    proc = run(tree, "ledger", "rebuild", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["rollouts"], summary["current"], summary["behind"], summary["superseded"], summary["orphans"]) \
        == (5, 3, 1, 1, 0), summary
    assert [Path(p).name for p in summary["moved_aside"]][0].startswith("ledger.sqlite3.broken-")
    assert Path(summary["moved_aside"][0]).read_bytes().startswith(b"\x00garbage")
    assert {p: p.read_bytes() for p in tree.rollouts()} == threads  # rebuild writes nothing there
    (line,) = [l for l in run(tree, "doctor").stdout.splitlines() if l.split()[1:2] == ["ledger"]]
    assert line.startswith("ok    ledger"), line
    (sup,) = ledger_superseded(tree)
    assert sup["thread_id"] == row["thread_id"]

    again = imp(tree)
    assert again["by_kind"] == {"rewritten": 1} and again["unchanged"] == 3, again  # no new thread
    by_session = agree(tree, srcs)
    assert {r["session_id"]: r["generation"] for r in ledger_rows(tree)}[conflicted.s.session_id] == 1
    assert imp(tree)["bytes_read"] == 0
    for s in srcs:
        s.grow("grown after the rebuild")
    assert imp(tree)["by_kind"] == {"appended": 4}
    assert agree(tree, srcs) == by_session
    assert len(tree.rollouts()) == 5
    with CodexAppServer(tree.home, tree.codex_home, binary=require_codex()) as codex:
        listed = [t["id"] for t in codex.list_threads()]
    assert sorted(listed) == sorted([*by_session.values(), row["thread_id"]])


def test_rebuild_refuses_while_an_import_holds_the_lock(tree: FaultTree) -> None:
    sources(tree, 1)
    assert imp(tree)["imported"] == 1
    from daemon import pidlock

    with pidlock.acquire(tree.state / "session-syncd", tree.env(), role="daemon"):
        proc = run(tree, "ledger", "rebuild")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert "stop it first" in line, line
    assert tree.ledger_path.exists() and not list(tree.ledger_path.parent.glob("*.broken-*"))


def test_rebuild_finds_a_later_generation_whose_first_is_gone(tree: FaultTree) -> None:
    """A thread continued in Codex made its session write generation 1, then the user deleted the first
    thread: a ledger merely moved aside would write generation 0 again (a second thread for the session);
    the rebuilt one keeps the session on generation 1."""
    (a,) = sources(tree, 1)
    assert imp(tree)["imported"] == 1
    (first,) = tree.rollouts()
    with first.open("ab") as f:
        f.write(CONTINUED)
    a.grow("after codex")
    assert imp(tree)["by_kind"] == {"conflict": 1}
    first.unlink()
    (second,) = tree.rollouts()
    tree.ledger_path.write_bytes(b"garbage" * 1000)
    assert run(tree, "ledger", "rebuild").returncode == 0
    a.grow("after the rebuild")
    assert imp(tree)["by_kind"] == {"appended": 1}
    assert tree.rollouts() == [second]
    assert ledger_rows(tree)[0]["generation"] == 1
    agree(tree, [a])


def test_rebuild_keeps_a_session_without_timestamps_on_its_thread(tree: FaultTree) -> None:
    """Cursor records carry no time: the start (thread id, rollout path) came from the file's mtime at
    the first import, which has moved since. The rebuild recovers it from the thread id."""
    (tree.root / "repo").mkdir()
    src = tree.home / ".cursor" / "projects" / "repo" / "agent-transcripts" / "c1" / "c1.jsonl"
    src.parent.mkdir(parents=True)
    rec = {"role": "user", "cwd": str(tree.root / "repo"),
           "message": {"content": [{"type": "text", "text": "<user_query>hi</user_query>"}]}}
    src.write_text(json.dumps(rec) + "\n")
    os.utime(src, (1_700_000_000, 1_700_000_000))
    assert imp(tree)["imported"] == 1
    (rollout,) = tree.rollouts()
    tree.ledger_path.write_bytes(b"garbage" * 1000)
    summary = json.loads(run(tree, "ledger", "rebuild", "--json").stdout)
    assert (summary["current"], summary["behind"]) == (1, 0), summary
    meta = json.loads(rollout.read_bytes().split(b"\n", 1)[0])
    again = {**rec, "message": {"content": [{"type": "text", "text": "<user_query>again</user_query>"}]}}
    src.write_text(json.dumps(again) + "\n" + json.dumps(rec) + "\n")  # a rewrite: the start is used again
    os.utime(src, (1_800_000_000, 1_800_000_000))
    assert imp(tree)["by_kind"] == {"rewritten": 1}
    assert tree.rollouts() == [rollout]
    assert user_texts(rollout) == ["again", "hi"]
    assert json.loads(rollout.read_bytes().split(b"\n", 1)[0])["timestamp"] == meta["timestamp"]
