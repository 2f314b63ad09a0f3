"""Shared helpers for the import tests: a fixture tree, the real CLI, the ledger, a reference reader.

Why: the golden, interop and crash tests all need the same few real things (a generated source tree,
`session-syncd import` as a subprocess, the SQLite ledger as it is on disk, what a source *should*
become). They live here so each test file stays about what it checks. Nothing here mocks anything.

The reference reader (`reference_turns`) is deliberately small and independent of `daemon.fold` /
`daemon.sources`: it follows the rules written in docs/formats.md and tests/golden/README.md for the
record shapes the fixture generator writes, and raises on anything it does not know, so it cannot
silently agree with a bug in our fold.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from codex_app_server import ENV_VAR, codex_bin  # noqa: E402

MARKER = "<EXTERNAL SESSION IMPORTED>"


#: The project's own fixture generator (tests never read anything outside the repository).
FIXTURE_SCRIPT = REPO / "bench" / "make_fixture.py"


def require_codex() -> str:
    """The real codex binary, or a test failure (never a skip) naming the variable to set."""
    import pytest

    found = codex_bin()
    if found is None:
        pytest.fail(f"{ENV_VAR} must point at the real `codex` binary (0.169.0); `make test` installs it "
                    f"(currently {os.environ.get(ENV_VAR)!r})")
    return found


# -- a source tree + Codex home + state dir --------------------------------------------------------

@dataclass
class Tree:
    """ROOT/home (sources under .claude / .cursor), ROOT/repos (cwds), ROOT/codex, ROOT/state."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def codex_home(self) -> Path:
        return self.root / "codex"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def ledger_path(self) -> Path:
        return self.state / "session-syncd" / "ledger.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.state / "session-syncd" / "logs" / "session-syncd.jsonl"

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "CODEX_HOME": str(self.codex_home),
            "XDG_STATE_HOME": str(self.state),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TZ": "UTC",
            "LANG": "C.UTF-8",
            # The CLI subprocess runs this checkout's code, whatever the venv's install points at.
            "PYTHONPATH": str(REPO),
        }

    def claude_sources(self) -> list[Path]:
        return sorted((self.home / ".claude" / "projects").glob("*/*.jsonl"))

    def cursor_sources(self) -> list[Path]:
        return sorted((self.home / ".cursor" / "projects").glob("*/agent-transcripts/**/*.jsonl"))

    def sources(self) -> list[tuple[str, Path]]:
        return [("claude", p) for p in self.claude_sources()] + [("cursor", p) for p in self.cursor_sources()]

    def rollouts(self) -> list[Path]:
        return sorted((self.codex_home / "sessions").rglob("rollout-*.jsonl"))


def make_fixture(root: Path, *, sessions: int, mib: float, cursor: int = 0, seed: int = 26637) -> Tree:
    """Run the project's bench/make_fixture.py into `root` (a fresh folder)."""
    subprocess.run([sys.executable, str(FIXTURE_SCRIPT), str(root), "--sessions", str(sessions), "--mib", str(mib),
                    "--cursor", str(cursor), "--seed", str(seed)], check=True, capture_output=True)
    return Tree(root)


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_git_repo(path: Path, origin: str, branches: tuple[str, ...] = ()) -> str:
    """`git init` with one commit, an origin remote and extra branches at that commit; return the sha."""
    git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("fixture\n")
    git(path, "add", "README")
    git(path, "commit", "-q", "-m", "init")
    git(path, "remote", "add", "origin", origin)
    for branch in branches:
        if branch != "main":
            git(path, "branch", branch)
    return git(path, "rev-parse", "HEAD")


# -- running the real CLI --------------------------------------------------------------------------

def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", *args]


def is_stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP, e.g. by a `stop` fault point)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def wait_stopped_at(proc: subprocess.Popen[bytes], fired: Path, point: str, timeout: float = 60) -> None:
    """Wait until `proc` stopped itself at a `stop` fault point (`fired`: its SESSION_SYNCD_FAULT_ONCE file)."""
    deadline = time.monotonic() + timeout
    while not (fired.exists() and is_stopped(proc.pid)):
        assert proc.poll() is None and time.monotonic() < deadline, f"the process never reached {point}"
        time.sleep(0.01)


def run_import(tree: Tree, *args: str, check: bool = True, timeout: float = 120) -> dict[str, Any]:
    """`session-syncd import --json ARGS` as a subprocess; return its summary."""
    proc = subprocess.run(cli_command("import", "--json", *args), env=tree.env(), cwd=tree.root,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"import failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    try:
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise AssertionError(f"no JSON summary from import ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    summary["returncode"] = proc.returncode
    return summary


def start_import(tree: Tree, *args: str) -> subprocess.Popen[bytes]:
    """Start `session-syncd import` in its own process group (so a kill takes its workers too)."""
    return subprocess.Popen(cli_command("import", "--json", *args), env=tree.env(), cwd=tree.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the import and every process it started (its process group), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    # Worker processes of the killed group are gone with it; wait until none is left in the group.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise AssertionError(f"processes of group {proc.pid} survived SIGKILL")


def log_events(tree: Tree, start: int = 0) -> list[dict[str, Any]]:
    """Complete JSON log lines from byte `start` of the import's log."""
    try:
        data = tree.log_path.read_bytes()[start:]
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n")[:-1]:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


# -- the ledger as it is on disk -----------------------------------------------------------------------

def _ledger_query(tree: Tree, sql: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{tree.ledger_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql)]
    finally:
        db.close()


def ledger_rows(tree: Tree) -> list[dict[str, Any]]:
    return _ledger_query(tree, "SELECT * FROM sessions ORDER BY source, path")


def ledger_superseded(tree: Tree) -> list[dict[str, Any]]:
    return _ledger_query(tree, "SELECT * FROM superseded ORDER BY at")


def rollout_thread_id(path: Path) -> str:
    with path.open("rb") as f:
        first = json.loads(f.readline())
    assert first["type"] == "session_meta", f"{path} does not start with session_meta"
    return first["payload"]["id"]


# -- a small independent reference reader -------------------------------------------------------------

@dataclass
class RefTurn:
    user: str
    agents: list[str] = field(default_factory=list)
    started_at: int | None = None  # unix seconds of the user record (Claude), None when it has no time


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tool_call(block: dict[str, Any]) -> str:
    name = block.get("name") if isinstance(block.get("name"), str) else "unknown"
    lines = [f"[external_agent_tool_call: {name}]"]
    inp = block.get("input")
    known = []
    if isinstance(inp, dict):
        for key in ("description", "command"):
            if isinstance(inp.get(key), str):
                known.append(f"{key}: {inp[key]}")
        f = inp["file_path"] if "file_path" in inp else inp.get("file")
        if isinstance(f, str):
            known.append(f"file: {f}")
    if known:
        lines += known
    elif "input" in block:
        lines.append("input: " + _cut(json.dumps(inp, ensure_ascii=False, separators=(",", ":")), 2000))
    lines.append("[/external_agent_tool_call]")
    return "\n".join(lines)


def _tool_result(block: dict[str, Any]) -> str:
    head = "[external_agent_tool_result: error]" if block.get("is_error") is True else "[external_agent_tool_result]"
    content = block.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(c["text"] for c in content if c.get("type") == "text" and c.get("text"))
    else:
        text = ""
    return f"{head}\n{_cut(text, 4000)}\n[/external_agent_tool_result]" if text else f"{head}\n[/external_agent_tool_result]"


def _content(content: Any) -> tuple[str | None, bool]:
    """(rendered text or None, only tool results) for the block kinds the fixture writes."""
    if isinstance(content, str):
        return (content if content.strip() else None), False
    parts, only_results = [], bool(content)
    for block in content:
        kind = block["type"]
        if kind == "thinking":
            continue
        if kind == "text":
            if block["text"]:
                parts.append(block["text"])
                only_results = False
        elif kind == "tool_use":
            parts.append(_tool_call(block))
            only_results = False
        elif kind == "tool_result":
            parts.append(_tool_result(block))
        else:
            raise ValueError(f"reference reader does not know block type {kind!r}")
    text = "\n\n".join(p for p in parts if p.strip())
    return (text or None), only_results


_CURSOR_QUERY = re.compile(r"\A\s*<timestamp>[^<]*</timestamp>\s*<user_query>(.*)</user_query>\s*\Z", re.S)


def _seconds(stamp: Any) -> int | None:
    if not isinstance(stamp, str):
        return None
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() // 1)


def reference_messages(path: Path, kind: str) -> list[tuple[str, str, int | None]]:
    """(role, text, unix seconds) of every conversation message of a source file, in order."""
    out: list[tuple[str, str, int | None]] = []
    for raw in path.read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            continue  # a malformed line is skipped
        if not isinstance(rec, dict):
            continue
        role = rec.get("type") if kind == "claude" else rec.get("role")
        if role not in ("user", "assistant") or rec.get("isMeta") is True or rec.get("isSidechain") is True:
            continue
        text, only_results = _content((rec.get("message") or {}).get("content"))
        if text is None:
            continue
        if role == "user" and only_results:
            role = "assistant"
        if role == "user" and kind == "cursor" and (m := _CURSOR_QUERY.match(text)) and m.group(1).strip():
            text = m.group(1).strip()
        out.append((role, text, _seconds(rec.get("timestamp")) if kind == "claude" else None))
    return out


def reference_turns(path: Path, kind: str) -> list[RefTurn]:
    """One turn per user message, with the assistant messages that follow it."""
    turns: list[RefTurn] = []
    for role, text, ts in reference_messages(path, kind):
        if role == "user":
            turns.append(RefTurn(text, [], ts))
        elif turns:
            turns[-1].agents.append(text)
    return turns


def read_view(thread: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """thread/read turns as (user text, [agent texts]) pairs, to compare with reference_turns."""
    view = []
    for turn in thread["turns"]:
        users = [i for i in turn["items"] if i["type"] == "userMessage"]
        assert len(users) == 1, f"turn {turn['id']} has {len(users)} user messages"
        assert turn["items"][0]["type"] == "userMessage", f"turn {turn['id']} does not start with the user"
        text = "".join(c["text"] for c in users[0]["content"] if c["type"] == "text")
        agents = [i["text"] for i in turn["items"] if i["type"] == "agentMessage"]
        view.append((text, agents))
    return view


def expected_view(turns: list[RefTurn]) -> list[tuple[str, list[str]]]:
    """What thread/read must show for these source turns: the marker closes the last turn."""
    view = [(t.user, list(t.agents)) for t in turns]
    if view:
        view[-1][1].append(MARKER)
    return view


# -- writing to sources the way the agents do -------------------------------------------------------

def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, as Claude Code stamps its records."""
    ms = int(ts * 1000)
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def claude_turn(path: Path, user: str, assistant: str, ts: float | None = None) -> bytes:
    """A user record + an assistant text record in Claude Code's shape, for the session at `path`."""
    first = json.loads(path.read_bytes().split(b"\n", 1)[0])
    ts = time.time() if ts is None else ts
    base = {"parentUuid": None, "isSidechain": False, "userType": "external", "cwd": first.get("cwd"),
            "sessionId": path.stem, "version": "2.1.0", "gitBranch": first.get("gitBranch", "main")}
    recs = [
        {**base, "type": "user", "uuid": f"u-{ts}", "timestamp": iso(ts),
         "message": {"role": "user", "content": user}},
        {**base, "type": "assistant", "uuid": f"a-{ts}", "timestamp": iso(ts + 1),
         "message": {"role": "assistant", "content": [{"type": "text", "text": assistant}]}},
    ]
    return b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in recs)


def cursor_turn(user: str, assistant: str) -> bytes:
    recs = [
        {"role": "user", "message": {"content": [
            {"type": "text", "text": f"<timestamp>2026-06-03T12:00:00Z</timestamp>\n<user_query>\n{user}\n</user_query>"}]}},
        {"role": "assistant", "message": {"content": [{"type": "text", "text": assistant}]}},
        {"type": "turn_ended", "status": "success"},
    ]
    return b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in recs)


def append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)
