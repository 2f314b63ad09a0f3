"""Kill harness (issue 10): SIGKILL at every write / fsync / rename / commit point and at random moments,
for `import` and for the daemon, across first import, append, rewrite, conflict, adopt and mirror.

Why: "a crash at any point never makes a duplicate thread nor loses a turn". Exact points come from the
`kill` fault action (daemon/faults.py: the process SIGKILLs itself right there, as a power cut would
stop it); random ones from the test SIGKILLing the whole process group after a random delay. Each kill
is followed by a restart (an import, or the next daemon), and then `check`: exactly one rollout per
thread id, every rollout parses, every ledger row true to its rollout (size and tail hash, no write
intent left), every session with a user message a thread holding exactly its source's turns, Codex's
import ledger pointing only at threads that exist, the conflict copies exactly those the test made,
and the same bodies as a fresh import of the same sources into an empty Codex home.

Small sessions and many kills per test keep the whole harness near a minute; `KILLS` counts them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import pytest

from daemon_support import DaemonProc, Session, synced, toml_config
from support import REPO, Tree, cli_command, ledger_rows, ledger_superseded, reference_turns

TAIL_BYTES = 4096  # daemon/codex/store.py
FULL_WRITE = ["store.written", "store.before_rename", "store.renamed", "store.dir_synced", "before_commit",
              "after_commit"]
APPEND = ["intent", "append.written", "append.truncated", "append.synced", "before_commit", "after_commit"]
KILLS: dict[str, int] = {}  # test → SIGKILLs that hit a live process (printed at the end of each test)


# -- the world: a few small sessions of two agents, the Codex home, the ledger --------------------------

@dataclass
class KillTree(Tree):
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


class Cursor:
    """A Cursor transcript: records carry no time, so its start is reserved in the ledger (mtime)."""

    def __init__(self, tree: Tree, name: str) -> None:
        self.cwd = tree.root / "repos" / name
        self.cwd.mkdir(parents=True, exist_ok=True)
        folder = tree.home / ".cursor" / "projects" / str(self.cwd).lstrip("/").replace("/", "-")
        self.path = folder / "agent-transcripts" / name / f"{name}.jsonl"
        self.n = 0

    def turn(self, pad: int = 0) -> bytes:
        self.n += 1
        recs = [{"role": "user", "message": {"content": [{"type": "text", "text": (
                    f"<user_query>\ncursor question {self.n}\n</user_query>")}]}},
                {"role": "assistant", "message": {"content": [{"type": "text", "text": "c" * pad + f"answer {self.n}"}]}}]
        return b"".join(json.dumps(r).encode() + b"\n" for r in recs)

    def grow(self, pad: int = 0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.write(self.turn(pad))


class World:
    """Sessions under `root/home`; `grow`, `rewrite`, `edit_middle`, `continue_in_codex` change them."""

    def __init__(self, root: Path, claude: int = 2, cursor: int = 1, seed: int = 10) -> None:
        self.tree = KillTree(root)
        self.rng = random.Random(seed)
        self.projects = self.tree.home / ".claude" / "projects"
        self.claude = [Session(self.projects, root / "repos" / f"c{i}", session_id=f"00000000-0000-4000-8000-{i:012d}")
                       for i in range(claude)]
        self.cursor = [Cursor(self.tree, f"cur{i}") for i in range(cursor)]
        self.n = 0
        for s in self.claude:
            s.write_turns(("first question", "first answer"))
        for c in self.cursor:
            c.grow()
        self.conflicts = 0

    def paths(self) -> list[Path]:
        return [s.path for s in self.claude] + [c.path for c in self.cursor]

    def grow(self, which: int | None = None, pad: int = 0) -> Path:
        """One more turn in one session (random unless `which`)."""
        i = self.rng.randrange(len(self.claude) + len(self.cursor)) if which is None else which
        self.n += 1
        if i < len(self.claude):
            s = self.claude[i]
            s.append(b"".join(s.turn_lines(f"question {self.n}", "a" * pad + f"answer {self.n}")))
            return s.path
        c = self.cursor[i - len(self.claude)]
        c.grow(pad)
        return c.path

    def add_session(self) -> Path:
        i = len(self.claude)
        s = Session(self.projects, self.tree.root / "repos" / f"c{i}", session_id=f"00000000-0000-4000-8000-{i:012d}")
        s.write_turns(("a new session", "its answer"))
        self.claude.append(s)
        return s.path

    def add_cursor(self) -> Path:
        c = Cursor(self.tree, f"cur{len(self.cursor)}")
        c.grow()
        os.utime(c.path, ns=(0, 1_780_000_000_000_000_000 + len(self.cursor) * 10**9))  # its start: the mtime
        self.cursor.append(c)
        return c.path

    def rewrite(self, i: int = 0) -> Path:
        """The agent rewrote its file (compaction): the last answer changes length."""
        path = self.claude[i].path
        data = path.read_bytes()
        self.n += 1
        cut = data.rfind(b"answer")
        path.write_bytes(data[:cut] + f"rewritten answer {self.n}".encode() + data[cut + len(b"answer"):])
        return path

    def edit_middle(self, i: int = 0) -> Path:
        """A same-length redaction of the first question, then the session goes on (the fast path's blind spot)."""
        path = self.claude[i].path
        data = path.read_bytes()
        at = data.find(b"first question")
        if at < 0:
            at = data.find(b"REDACTED-QUEST")
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, b"REDACTED-QUEST" if data[at:at + 5] == b"first" else b"first question", at)
        finally:
            os.close(fd)
        return self.grow(i)

    def continue_in_codex(self, i: int = 0) -> Path:
        """The user continued session i's thread in Codex (a conversation line after ours), then the agent
        went on too: the next sync must write a new generation and leave Codex's thread alone."""
        row = next(r for r in ledger_rows(self.tree) if r["path"] == str(self.claude[i].path))
        line = {"timestamp": "2026-06-03T12:00:00.000Z", "type": "response_item", "payload": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "continued in Codex"}]}}
        with open(row["rollout_path"], "ab") as f:
            f.write(json.dumps(line).encode() + b"\n")
        self.conflicts += 1
        return self.grow(i)


# -- running and killing --------------------------------------------------------------------------

def killed_import(world: World, point: str, match: str = "") -> bool:
    """`import` with a kill at `point` (for a path containing `match`); True if it died there."""
    env = {**world.tree.env(), "SESSION_SYNCD_FAULT": f"{point}:kill:{match}"}
    proc = subprocess.run(cli_command("import", "--json"), env=env, cwd=world.tree.root, capture_output=True,
                          timeout=120)
    return proc.returncode == -signal.SIGKILL


def randomly_killed_import(world: World, delay: float) -> bool:
    """`import` SIGKILLed (its whole process group) after `delay` s; True if it was still running."""
    proc = subprocess.Popen(cli_command("import", "--json"), env=world.tree.env(), cwd=world.tree.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(delay)
    alive = proc.poll() is None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    return alive and proc.returncode == -signal.SIGKILL


class _Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def import_in_process(env: dict[str, str]) -> dict[str, int]:
    """The restart: one import to completion, in this process (the engine `import` and the daemon run)."""
    from daemon.config import Config, resolve_paths
    from daemon.importer import run_import

    summary = run_import(Config(), resolve_paths(Config(), env), env, lambda: _Quiet(), executor_mode="thread")
    assert summary.failed == 0 and summary.deferred == 0, summary.errors
    return summary.by_kind


# -- the checks ---------------------------------------------------------------------------------------

def _tail_hash(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, size - TAIL_BYTES))
        return blake3.blake3(f.read(size - max(0, size - TAIL_BYTES))).digest()


def _rollouts(codex_home: Path) -> dict[str, Path]:
    """Thread id → rollout; every line of every rollout must parse, and no id may be in two files."""
    found: dict[str, Path] = {}
    for p in sorted(codex_home.glob("sessions/*/*/*/rollout-*.jsonl")) + sorted(
            codex_home.glob("archived_sessions/rollout-*.jsonl")):
        data = p.read_bytes()
        assert data.endswith(b"\n"), f"{p} ends in a partial line"
        lines = [json.loads(line) for line in data.splitlines()]  # raises on a torn line
        tid = lines[0]["payload"]["id"]
        assert lines[0]["type"] == "session_meta" and p.name.endswith(f"-{tid}.jsonl"), p
        assert tid not in found, f"thread {tid} is in two rollouts: {found[tid]} and {p}"
        found[tid] = p
    return found


def _view(rollout: Path) -> list[tuple[str, str]]:
    """What a reader sees of a thread: its user and agent messages, in order."""
    out = []
    for line in rollout.read_bytes().splitlines()[1:]:
        rec = json.loads(line)
        p = rec.get("payload") or {}
        if rec["type"] == "event_msg" and p.get("type") in ("user_message", "agent_message"):
            out.append((p["type"], p["message"]))
    return out


def _body(rollout: Path) -> list[bytes]:
    """Our lines after session_meta, without Codex's settings lines carried after them."""
    from daemon.codex.lines import is_codex_metadata

    return [line for line in rollout.read_bytes().splitlines(keepends=True)[1:] if not is_codex_metadata(line)]


def _reference_users(path: Path) -> list[str]:
    kind = "cursor" if "agent-transcripts" in str(path) else "claude"
    if kind == "cursor":  # the reference reader knows Claude's shapes; Cursor's user text is the query
        users = []
        for line in path.read_bytes().splitlines():
            rec = json.loads(line)
            if rec.get("role") == "user":
                text = rec["message"]["content"][0]["text"]
                users.append(text.split("<user_query>")[1].split("</user_query>")[0].strip())
        return users
    return [t.user for t in reference_turns(path, kind)]


def check(world: World, adopted: frozenset[str] = frozenset()) -> None:
    """Everything agrees after a restart (see the module docstring)."""
    from daemon.codex import codex_ledger

    tree = world.tree
    by_id = _rollouts(tree.codex_home)
    assert not list(tree.codex_home.rglob(".rollout-*.tmp")), "a temp rollout was left behind"
    rows = {r["path"]: r for r in ledger_rows(tree)}
    superseded = ledger_superseded(tree)
    assert len(superseded) == world.conflicts, f"conflict copies: {superseded}, made {world.conflicts}"
    assert set(by_id) == {r["thread_id"] for r in rows.values()} | {s["thread_id"] for s in superseded}
    for path in world.paths():
        row = rows.get(str(path))
        assert row is not None and row["thread_id"], f"{path}: no thread"
        assert row["last_error"] is None and row["pending_size"] is None, row
        assert row["consumed"] == path.stat().st_size, f"{path}: not every line folded"
        rollout = Path(row["rollout_path"])
        assert by_id[row["thread_id"]] == rollout
        size = rollout.stat().st_size
        assert (size, _tail_hash(rollout, size)) == (row["rollout_size"], row["rollout_tail_hash"]), rollout
        users = [text for kind, text in _view(rollout) if kind == "user_message"]
        assert users == _reference_users(path), f"{path}: its thread has other user messages"
    for s in superseded:  # a thread the user continued in Codex is left as Codex has it
        assert _view(by_id[s["thread_id"]])
    records = codex_ledger.read(tree.codex_home).ledger.records if codex_ledger.ledger_path(
        tree.codex_home).exists() else []
    for rec in records:
        assert rec.imported_thread_id in by_id, f"Codex's import ledger points at a missing thread: {rec}"
    # A fresh import of the same sources into an empty Codex home gives the same threads.
    fresh_root = tree.root / f"fresh-{time.monotonic_ns()}"
    fresh = {**tree.env(), "CODEX_HOME": str(fresh_root / "codex"), "XDG_STATE_HOME": str(fresh_root / "state")}
    import_in_process(fresh)
    fresh_rows = _rows_at(fresh_root / "state")
    for path in world.paths():
        ours, theirs = Path(rows[str(path)]["rollout_path"]), Path(fresh_rows[str(path)]["rollout_path"])
        # Codex wrote the start of an adopted thread (its own stamps); a session whose records carry no
        # time is stamped from its file's mtime, which a fresh import sees later: compare the messages then.
        if str(path) in adopted or "agent-transcripts" in str(path):
            assert _view(ours) == _view(theirs), f"{path}: its thread differs from a fresh import"
        else:
            assert _body(ours) == _body(theirs), f"{path}: its thread differs from a fresh import"
    shutil.rmtree(fresh_root)


def _rows_at(state: Path) -> dict[str, dict[str, Any]]:
    db = sqlite3.connect(f"file:{state / 'session-syncd' / 'ledger.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return {r["path"]: dict(r) for r in db.execute("SELECT * FROM sessions")}
    finally:
        db.close()


def _kills(test: str, n: int) -> None:
    KILLS[test] = KILLS.get(test, 0) + n


# -- import: exact points ------------------------------------------------------------------------------

@pytest.mark.slow
def test_import_killed_at_every_point_of_every_kind_of_write(tmp_path: Path) -> None:
    world = World(tmp_path / "w")
    killed = 0

    def kill_then_restart(point: str, mutate, match: str = "", then: str | None = None) -> None:
        nonlocal killed
        what = mutate()
        assert killed_import(world, point, match), f"no kill at {point} ({what})"
        killed += 1
        if then:  # crashed again in the restart, at `then`
            assert killed_import(world, then, match), f"no second kill at {then} after {point} ({what})"
            killed += 1
        import_in_process(world.tree.env())
        check(world)

    for _round in range(2):
        # first import: every session new (the Cursor one reserves its start first)
        for point in FULL_WRITE:
            kill_then_restart(point, lambda: world.add_session(), then="before_commit" if point == "before_commit" else None)
        for point in ["intent", *FULL_WRITE]:  # a Cursor session: its start is reserved before its first write
            kill_then_restart(point, lambda: world.add_cursor())
        # append, in each agent's session
        for i in (0, len(world.claude)):  # a Claude session, a Cursor session
            for point in APPEND:
                # the restart after a torn append rewrites the thread whole: killed there too
                then = {"intent": "intent", "append.written": "store.before_rename", "append.truncated": "store.renamed"}
                kill_then_restart(point, lambda: world.grow(i), then=then.get(point))
        # rewrite: a compaction, and a same-length redaction in the folded part followed by growth
        for mutate in (lambda: world.rewrite(1), lambda: world.edit_middle(0)):
            for point in ["intent", *FULL_WRITE]:
                kill_then_restart(point, mutate)
        # conflict: the thread was continued in Codex; the new generation is written beside it
        for point in FULL_WRITE:
            kill_then_restart(point, lambda: world.continue_in_codex(1))
    _kills("import points", killed)
    print(f"import killed at exact points {killed} times")
    assert killed >= 100


# -- import: random moments (the mirror into Codex's import ledger included) --------------------------------

@pytest.mark.slow
def test_import_killed_at_random_moments(tmp_path: Path) -> None:
    world = World(tmp_path / "w", claude=4, cursor=2, seed=1003)
    rng = random.Random(20260610)
    killed = attempts = 0
    # The kill must land while the import runs, however fast this machine is: an import that had already
    # finished (a miss) brings the latest moment tried down to just under the delay it beat.
    latest = 0.25
    while killed < 30 and attempts < 120:
        attempts += 1
        for _ in range(rng.randint(1, 4)):  # appends big enough that the work outlasts the start-up
            world.grow(pad=rng.choice([0, 5_000, 60_000]))
        if rng.random() < 0.15:
            world.rewrite(rng.randrange(len(world.claude)))
        for _ in range(2 if rng.random() < 0.3 else 1):  # sometimes killed twice before a clean restart
            delay = rng.uniform(0.03, latest)
            if randomly_killed_import(world, delay):
                killed += 1
            else:
                latest = max(0.08, delay * 0.9)
        import_in_process(world.tree.env())
        check(world)
    _kills("import random", killed)
    print(f"import killed at random moments {killed} times ({attempts} rounds)")
    assert killed >= 25


# -- import: adopting what Codex's own importer imported -------------------------------------------------

@pytest.mark.slow
def test_import_killed_while_adopting_codex_imports(tmp_path: Path) -> None:
    """Two Claude sessions imported by the real Codex (its threads, its import ledger, no ledger of ours),
    grown since: the import adopts Codex's threads and appends to them; killed at each point of that."""
    from codex_app_server import CodexAppServer
    from support import require_codex

    root, pristine = tmp_path / "w", tmp_path / "pristine"
    world = World(root, claude=2, cursor=0)
    with CodexAppServer(world.tree.home, world.tree.codex_home, binary=require_codex(), timeout=120) as codex:
        assert codex.detect_and_import() is not None
    codex_threads = set(_rollouts(world.tree.codex_home))
    assert len(codex_threads) == 2
    shutil.copytree(root, pristine, symlinks=True)  # restored at the same path: Codex's ledger names it
    killed = 0
    for n, point in enumerate(APPEND * 2):
        shutil.rmtree(root)
        shutil.copytree(pristine, root, symlinks=True)
        world.n += 1
        grown = world.grow(n % 2)  # grown since Codex's import: adopting it appends to Codex's thread
        assert killed_import(world, point), f"no kill at {point} while adopting {grown}"
        killed += 1
        import_in_process(world.tree.env())
        check(world, adopted=frozenset(str(p) for p in world.paths()))
        assert set(_rollouts(world.tree.codex_home)) == codex_threads, "a second thread beside Codex's"
    _kills("adopt", killed)
    print(f"import killed while adopting {killed} times")


# -- the daemon ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_daemon_killed_at_points_and_random_moments(tmp_path: Path) -> None:
    world = World(tmp_path / "w", claude=3, cursor=1, seed=77)
    rng = random.Random(4242)
    config = toml_config(quiet_ms=50, max_wait_ms=300, claude_roots=[world.projects], cursor=True)
    points = ["fold", "intent", *APPEND[1:], *FULL_WRITE]
    killed = 0
    rounds = 0
    once = tmp_path / "once"
    for rounds in range(1, 56):
        point = points[rounds % len(points)] if rounds % 3 else None  # every third round: a random moment
        world.tree.extra = ({"SESSION_SYNCD_FAULT": f"{point}:kill", "SESSION_SYNCD_FAULT_ONCE": str(once)}
                            if point else {})
        once.unlink(missing_ok=True)
        daemon = DaemonProc(world.tree, config)
        try:
            daemon.start(wait=None)
            if _wait_synced_or_dead(world, daemon):  # the restart finished what the last kill interrupted
                check(world)
            else:
                killed += 1  # killed at its point while catching up: a crash during recovery
                continue
            if point in FULL_WRITE and rng.random() < 0.5:
                world.continue_in_codex(rng.randrange(3))
            elif point in FULL_WRITE:
                world.rewrite(rng.randrange(3))
            else:
                for _ in range(rng.randint(1, 3)):
                    world.grow(pad=rng.choice([0, 50_000]))
            if point:
                deadline = time.monotonic() + 20
                while daemon.alive() and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert not daemon.alive(), f"the daemon never reached {point}\n{daemon.stderr()}"
                assert daemon.proc is not None and daemon.proc.returncode == -signal.SIGKILL
                killed += 1
            else:
                time.sleep(rng.uniform(0.0, 0.4))
                killed += daemon.alive()
                daemon.kill()
        finally:
            daemon.kill()
    world.tree.extra = {}
    with DaemonProc(world.tree, config) as daemon:
        daemon.start()
        assert _wait_synced_or_dead(world, daemon)
        check(world)
        assert daemon.stop() == 0
    check(world)
    _kills("daemon", killed)
    print(f"daemon killed {killed} times in {rounds} rounds; kills so far: {KILLS}")
    assert killed >= 45


def _wait_synced_or_dead(world: World, daemon: DaemonProc, timeout: float = 60.0) -> bool:
    """True once the ledger describes every source as it is now; False if the daemon died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon.alive():
            return False
        try:
            if all(synced(world.tree, p) for p in world.paths()):
                return True
        except sqlite3.OperationalError:  # the first daemon has created the ledger, not its tables yet
            pass
        time.sleep(0.02)
    raise AssertionError(f"not synced within {timeout}s\n{daemon.stderr()}")
