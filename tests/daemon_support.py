"""Helpers for the daemon tests: `session-syncd run` as a real subprocess, its JSON log, small sessions.

Why: tests/test_daemon.py checks the daemon end to end (real inotify, real processes, the real Codex
app-server), so every test needs the same few moves: write a config, start the daemon, wait for an
event in its log or for the ledger to catch up with a source file, signal it, and check what Codex
sees. Everything waits on an observable condition with a generous timeout; nothing asserts a latency.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import Tree, cli_command, iso, ledger_rows, log_events

# -- small Claude Code sessions written by hand ----------------------------------------------------


def claude_records(cwd: Path, session_id: str, user: str, assistant: str, ts: float) -> list[bytes]:
    """One turn as two Claude Code records (user, assistant), each one JSON line with its newline."""
    base = {"parentUuid": None, "isSidechain": False, "userType": "external", "cwd": str(cwd),
            "sessionId": session_id, "version": "2.1.0", "gitBranch": "main"}
    recs = [
        {**base, "type": "user", "uuid": str(uuid.uuid4()), "timestamp": iso(ts),
         "message": {"role": "user", "content": user}},
        {**base, "type": "assistant", "uuid": str(uuid.uuid4()), "timestamp": iso(ts + 1),
         "message": {"role": "assistant", "content": [{"type": "text", "text": assistant}]}},
    ]
    return [json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in recs]


class Session:
    """A Claude Code session file under `root/<project>/<id>.jsonl`, whose cwd exists."""

    def __init__(self, root: Path, cwd: Path, project: str = "-work-p", session_id: str | None = None,
                 start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.session_id = session_id or str(uuid.uuid4())
        self.cwd = cwd
        self.path = root / project / f"{self.session_id}.jsonl"
        self.t = start
        cwd.mkdir(parents=True, exist_ok=True)

    def turn_lines(self, user: str, assistant: str) -> list[bytes]:
        self.t += 60
        return claude_records(self.cwd, self.session_id, user, assistant, self.t)

    def write_turns(self, *turns: tuple[str, str]) -> None:
        """Create the file (and its project folder) holding these turns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(b"".join(self.turn_lines(u, a)) for u, a in turns)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.rename(self.path)  # appears whole: the daemon never sees a half-written first version

    def append(self, data: bytes) -> None:
        with self.path.open("ab") as f:
            f.write(data)
            f.flush()


# -- the daemon as a subprocess --------------------------------------------------------------------


def toml_config(*, quiet_ms: int = 200, max_wait_ms: int = 1500, shutdown_timeout_s: float = 10.0,
                workers: int = 2, rescan_interval_s: float = 600.0, claude_roots: list[Path] | None = None,
                cursor: bool = False) -> str:
    lines = [f"quiet_ms = {quiet_ms}", f"max_wait_ms = {max_wait_ms}", f"shutdown_timeout_s = {shutdown_timeout_s}",
             f"max_inflight = {workers}", f"rescan_interval_s = {rescan_interval_s}", ""]
    if claude_roots is not None:
        lines += ["[sources.claude]", "roots = [" + ", ".join(json.dumps(str(r)) for r in claude_roots) + "]", ""]
    if not cursor:
        lines += ["[sources.cursor]", "enabled = false", ""]
    return "\n".join(lines)


class DaemonProc:
    """`python -m daemon run --config <tree>/daemon.toml` in its own process group, env from the tree."""

    def __init__(self, tree: Tree, config: str | None = None) -> None:
        self.tree = tree
        self.config_path = tree.root / "daemon.toml"
        if config is not None or not self.config_path.exists():
            self.config_path.write_text(config if config is not None else toml_config())
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = tree.root / f"daemon-stderr-{time.monotonic_ns()}.txt"
        self.log_start = 0

    # lifecycle

    def start(self, *, wait: str | None = "daemon.ready", timeout: float = 60.0) -> DaemonProc:
        """Start; by default return once this run logged `daemon.ready` (only events of this run count)."""
        self.log_start = self.log_size()
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(cli_command("run", "--config", str(self.config_path)), env=self.tree.env(),
                                         cwd=self.tree.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        if wait:
            self.wait_event(wait, timeout=timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; return the exit code (raise if it does not exit within `timeout`)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon {self.pid} did not exit within {timeout}s of SIGTERM\n{self.stderr()}")

    def kill(self) -> None:
        """SIGKILL the daemon's whole process group (worker processes too) and reap it; for cleanup."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    def group_gone(self, timeout: float = 30.0) -> bool:
        """True once no process of the daemon's process group is left (worker processes included)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False

    def __enter__(self) -> DaemonProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    # the JSON log

    def log_size(self) -> int:
        try:
            return self.tree.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def events(self, start: int | None = None) -> list[dict[str, Any]]:
        """Complete JSON log lines from byte `start` (default: since this run started)."""
        return log_events(self.tree, self.log_start if start is None else start)

    def find(self, event: str, start: int | None = None, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events(start) if e.get("event") == event
                and all(e.get(k) == v for k, v in fields.items())]

    def wait_event(self, event: str, *, start: int | None = None, timeout: float = 60.0,
                   **fields: Any) -> dict[str, Any]:
        """The first `event` (with these field values) logged since `start`; fail if the daemon dies."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(event, start, **fields)
            if found:
                return found[0]
            if not self.alive():
                raise AssertionError(f"daemon exited ({self.proc and self.proc.returncode}) before logging "
                                     f"{event} {fields}\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} {fields} within {timeout}s; log since start:\n"
                                     + "\n".join(json.dumps(e) for e in self.events(start)[-30:]))
            time.sleep(0.05)


# -- waiting on the ledger -------------------------------------------------------------------------


def ledger_row(tree: Tree, path: Path) -> dict[str, Any] | None:
    """The session's row, or None while there is none — also while a (re)starting daemon is still
    creating the ledger (the file exists before its schema does)."""
    if not tree.ledger_path.exists():
        return None
    try:
        rows = ledger_rows(tree)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    for row in rows:
        if row["path"] == str(path):
            return row
    return None


def wait_until(cond: Callable[[], Any], timeout: float = 60.0, what: str = "condition",
               daemon: DaemonProc | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if daemon is not None and not daemon.alive():
            raise AssertionError(f"daemon exited while waiting for {what}\n{daemon.stderr()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def synced(tree: Tree, path: Path) -> dict[str, Any] | None:
    """The ledger row once it describes the file as it is now, every byte consumed; else None."""
    row = ledger_row(tree, path)
    st = path.stat()
    if row and (row["size"], row["mtime_ns"], row["inode"]) == (st.st_size, st.st_mtime_ns, st.st_ino) \
            and row["consumed"] == st.st_size and row["rollout_path"]:
        return row
    return None


def wait_synced(tree: Tree, path: Path, daemon: DaemonProc | None = None, timeout: float = 60.0) -> dict[str, Any]:
    return wait_until(lambda: synced(tree, path), timeout, f"{path.name} synced", daemon)


def rollout_ids(tree: Tree) -> list[str]:
    """The thread id in the session_meta of every rollout file under the Codex home."""
    out = []
    for p in tree.rollouts():
        with p.open("rb") as f:
            out.append(json.loads(f.readline())["payload"]["id"])
    return out
