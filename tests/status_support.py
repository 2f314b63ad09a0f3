"""Helpers for the status/doctor/pidlock tests: a fixture tree, the real CLI, a real lock-holding process.

Nothing here mocks anything: the fixture comes from bench/make_fixture.py, the CLI runs as a
subprocess with a hermetic environment (temp HOME, XDG dirs, CODEX_HOME), and "a running daemon" is a
real process holding the real lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import support

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

# A stand-in daemon: takes the lock (and optionally writes a live status), says "ready", holds until stdin closes.
HOLDER = r"""
import json, os, sys, time
from pathlib import Path
from daemon import pidlock
state = Path(sys.argv[1])
try:
    lock = pidlock.acquire(state)
except pidlock.AlreadyRunning as exc:
    print("busy", exc, flush=True)
    sys.exit(3)
if len(sys.argv) > 2:
    live = json.loads(sys.argv[2])
    live["pid"] = os.getpid()
    pidlock.write_live(state, pidlock.LiveStatus(
        **{**live, "deferred": [pidlock.Deferred(**d) for d in live.get("deferred", [])]}))
print("ready", flush=True)
sys.stdin.read()
lock.release()
"""


@dataclass
class Tree(support.Tree):
    """support.Tree plus the names the status/doctor tests use."""

    @property
    def state_dir(self) -> Path:
        return self.state / "session-syncd"

    @property
    def ledger(self) -> Path:
        return self.ledger_path

    @property
    def config(self) -> Path:
        return self.root / "config" / "session-syncd" / "config.toml"

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env()
        if os.environ.get("SESSION_SYNCD_CODEX_BIN"):
            env["SESSION_SYNCD_CODEX_BIN"] = os.environ["SESSION_SYNCD_CODEX_BIN"]
        env.update(extra)
        return env

    claude_sessions = support.Tree.claude_sources
    cursor_sessions = support.Tree.cursor_sources


def build_tree(root: Path, sessions: int = 3, cursor: int = 2) -> Tree:
    return Tree(support.make_fixture(root, sessions=sessions, mib=1, cursor=cursor).root)


def cli(tree: Tree, *args: str, env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`session-syncd ARGS` as a real process (optionally under a wrapper such as `unshare`)."""
    return subprocess.run([*prefix, sys.executable, "-m", "daemon", *args], capture_output=True, text=True,
                          env=env or tree.env(), cwd=tree.root, timeout=120)


def status_json(tree: Tree) -> dict:
    done = cli(tree, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def by_source(report: dict) -> dict[str, dict]:
    return {s["source"]: s for s in report["sources"]}


def claude_line(cwd: str, session_id: str, text: str) -> bytes:
    rec = {"parentUuid": None, "isSidechain": False, "userType": "external", "cwd": cwd, "sessionId": session_id,
           "version": "2.1.0", "gitBranch": "main", "type": "user", "uuid": str(uuid.uuid4()),
           "timestamp": "2025-06-01T10:00:00.000Z", "message": {"role": "user", "content": text}}
    return json.dumps(rec, separators=(",", ":")).encode() + b"\n"


class Holder:
    """A real process holding the daemon lock on `state_dir` until `stop()`."""

    def __init__(self, state_dir: Path, env: dict[str, str] | None = None, live: dict | None = None) -> None:
        argv = [sys.executable, "-c", HOLDER, str(state_dir)] + ([json.dumps(live)] if live is not None else [])
        child_env = dict(os.environ if env is None else env)
        if env is None:  # a plain foreground process, even when the tests themselves run under a service manager
            for var in ("INVOCATION_ID", "NOTIFY_SOCKET", "XPC_SERVICE_NAME"):
                child_env.pop(var, None)
        child_env["PYTHONPATH"] = str(REPO)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env)
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline().strip()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
