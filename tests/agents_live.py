"""Live sessions of every agent for the daemon and soak tests, and "equals a fresh import" as a check.

Why: tests/test_daemon_agents.py and tests/reliability/test_soak.py both grow sessions of several agents
while a real daemon watches them, then compare each thread with what a one-shot `session-syncd import` of
the same sources writes into an empty Codex home. The sessions are written by the project's own
generators (bench/agents/*.py, tests/daemon_support.py for Claude Code) and the fixtures under
tests/fixtures/; an OpenCode database is written by a second process (`python tests/agents_live.py
opencode-writer DB`, driven line by line over its stdin), as OpenCode writes its store beside us.

Every session knows the marker text of its newest turn, so a test waits for that text to reach the
thread (the rollout), never for time to pass.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
for p in (str(TESTS), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench.agents import copilot as copilot_gen  # noqa: E402
from bench.agents import gemini as gemini_gen  # noqa: E402
from bench.agents import opencode as opencode_gen  # noqa: E402
from bench.agents import qwen as qwen_gen  # noqa: E402

FIXTURES = TESTS / "fixtures"
OPENCODE_START_MS = 1_778_400_000_000  # 2026-05-10


# -- where each agent's sessions live in a test tree ---------------------------------------------

class Roots:
    """ROOT/agents/<kind> for every agent (Claude Code and Cursor under ROOT/agents too), cwds under ROOT/repos."""

    def __init__(self, root: Path) -> None:
        self.base = root / "agents"
        self.repos = root / "repos"
        self.claude = self.base / "claude"
        self.cursor = self.base / "cursor"
        self.gemini = self.base / "gemini"
        self.copilot = self.base / "copilot"
        self.qwen = self.base / "qwen" / "projects"
        self.opencode = self.base / "opencode"
        for d in (self.claude, self.cursor, self.gemini, self.copilot, self.qwen, self.opencode, self.repos):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def db(self) -> Path:
        return self.opencode / "opencode.db"

    def cwd(self, name: str) -> Path:
        d = self.repos / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def config(self, *, quiet_ms: int = 200, max_wait_ms: int = 1500, workers: int = 2,
               rescan_interval_s: float = 600.0, shutdown_timeout_s: float = 10.0,
               cursor: bool = False, claude: bool = False) -> str:
        """The daemon's TOML config: every agent's root named under [sources.<kind>]."""
        lines = [f"quiet_ms = {quiet_ms}", f"max_wait_ms = {max_wait_ms}", f"max_inflight = {workers}",
                 f"rescan_interval_s = {rescan_interval_s}", f"shutdown_timeout_s = {shutdown_timeout_s}", ""]
        roots = {"gemini": self.gemini, "copilot": self.copilot, "qwen": self.qwen, "opencode": self.opencode}
        if claude:
            roots["claude"] = self.claude
        if cursor:
            roots["cursor"] = self.cursor
        for kind, root in roots.items():
            lines += [f"[sources.{kind}]", f"roots = [{json.dumps(str(root))}]", ""]
        for kind in ("claude", "cursor"):
            if kind not in roots:
                lines += [f"[sources.{kind}]", "enabled = false", ""]
        return "\n".join(lines)

    def install_fixtures(self) -> None:
        """The fixture sessions of every non-Claude agent, as background the daemon also keeps in sync."""
        shutil.copytree(FIXTURES / "gemini" / "root", self.gemini, dirs_exist_ok=True)
        shutil.copytree(FIXTURES / "copilot" / "home" / ".copilot", self.copilot, dirs_exist_ok=True)
        shutil.copytree(FIXTURES / "qwen" / "projects", self.qwen, dirs_exist_ok=True)
        repo = self.cwd("opencode-fixture")
        opencode_gen.create_db(self.db, "v1")
        con = sqlite3.connect(self.db)
        try:
            con.executescript((FIXTURES / "opencode" / "v1.sql").read_text().replace("@REPO@", str(repo)))
        finally:
            con.close()
        storage = FIXTURES / "opencode" / "storage"
        for src in sorted(storage.rglob("*.json")):
            dst = self.opencode / "storage" / src.relative_to(storage)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text().replace("@REPO@", str(repo)))


# -- one live session per agent --------------------------------------------------------------------

class Live:
    """A session a test grows. `key` = (ledger source, ledger session_id); `marker` = text of its newest turn."""

    kind = ""
    tools = False

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.turns = 0
        self.marker = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.session_id

    def texts(self) -> tuple[str, str]:
        """The next turn's (user, assistant) texts; the user text is the new marker."""
        self.turns += 1
        self.marker = f"[{self.tag} q{self.turns}] question"
        return self.marker, f"[{self.tag} a{self.turns}] answer"

    def grow(self) -> None:
        """One more turn, written whole."""
        raise NotImplementedError

    def pending_bytes(self) -> bytes | None:
        """The next turn as bytes to append in pieces (log-like files), or None if this session cannot."""
        return None

    def append(self, data: bytes) -> None:
        with open(self.path, "ab") as f:  # type: ignore[attr-defined]
            f.write(data)


class GeminiLive(Live):
    kind = "gemini"

    def __init__(self, roots: Roots, tag: str, *, legacy: bool = False) -> None:
        super().__init__(tag)
        self.legacy = legacy
        self.cwd = str(roots.cwd(tag))
        sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"gemini:{tag}"))
        if legacy:  # a legacy sha256 folder is matched by hashing the paths Gemini knows (projects.json)
            gemini_gen.project_dir(roots.gemini, self.cwd)
        user, assistant = self.texts()
        self.path = gemini_gen.write_session(roots.gemini, self.cwd, sid, [(user, assistant)], legacy=legacy,
                                             summary=f"{tag} summary")
        self.session_id = self.path.name.rsplit(".", 1)[0]  # Gemini sessions are keyed by the file stem

    def grow(self) -> None:
        user, assistant = self.texts()
        gemini_gen.append_turn(self.path, user, assistant)

    def pending_bytes(self) -> bytes | None:
        if self.legacy:
            return None
        user, assistant = self.texts()
        return gemini_gen.turn_bytes(self.path, user, assistant)

    def rewind(self) -> None:
        """`/rewind` to this session's newest user message (jsonl only), then a fresh turn on top."""
        lines = [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]
        last_user = [r["id"] for r in lines if r.get("type") == "user" and isinstance(r.get("content"), list)
                     and r["content"] and "text" in r["content"][0]][-1]
        gemini_gen.rewind(self.path, last_user)
        self.grow()


class CopilotLive(Live):
    kind = "copilot"

    def __init__(self, roots: Roots, tag: str) -> None:
        super().__init__(tag)
        self.root = roots.copilot
        self.session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"copilot:{tag}"))
        user, assistant = self.texts()
        self.path = copilot_gen.write_session(self.root, str(roots.cwd(tag)), self.session_id, [(user, assistant)],
                                              title=f"{tag} title", shutdown=False)

    def grow(self) -> None:
        user, assistant = self.texts()
        copilot_gen.append_turn(self.root, self.session_id, user, assistant, resume=self.turns % 3 == 0,
                                tool=self.turns % 2 == 0)

    def pending_bytes(self) -> bytes | None:
        user, assistant = self.texts()
        return copilot_gen.turn_bytes(self.root, self.session_id, user, assistant, tool=self.turns % 2 == 0)

    def redact(self) -> None:
        """The whole file rewritten (to a temp file, renamed) with an earlier answer changed, same length."""
        data = self.path.read_bytes()
        new = data.replace(b"] answer", b"] ANSWER", 1)
        if new == data:
            new = data.replace(b"] ANSWER", b"] answer", 1)
        tmp = self.path.with_name(".events.jsonl.tmp")
        tmp.write_bytes(new)
        os.replace(tmp, self.path)


class QwenLive(Live):
    kind = "qwen"

    def __init__(self, roots: Roots, tag: str) -> None:
        super().__init__(tag)
        self.root = roots.qwen.parent
        self.cwd = str(roots.cwd(tag))
        self.session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"qwen:{tag}"))
        user, assistant = self.texts()
        self.path = qwen_gen.write_session(self.root, self.cwd, self.session_id, [(user, assistant)],
                                           title=f"{tag} title", title_source="manual")

    def grow(self) -> None:
        user, assistant = self.texts()
        qwen_gen.append_turn(self.root, self.cwd, self.session_id, user, assistant, tool=self.turns % 2 == 0)

    def pending_bytes(self) -> bytes | None:
        user, assistant = self.texts()
        return qwen_gen.turn_bytes(self.root, self.cwd, self.session_id, user, assistant, tool=self.turns % 2 == 0)

    def rewind(self) -> None:
        """`/rewind` to before the newest user turn (it stays in the file, dead), then a fresh turn on top."""
        qwen_gen.rewind(self.root, self.cwd, self.session_id, self.visible_turns() - 1)
        self.grow()

    def visible_turns(self) -> int:
        records = qwen_gen._records(self.path)
        by_uuid = {r["uuid"]: r for r in records}
        cur, n = qwen_gen._tail(records), 0
        while cur is not None and cur in by_uuid:
            rec = by_uuid[cur]
            n += rec["type"] == "user" and "subtype" not in rec
            cur = rec["parentUuid"]
        return n


class ClaudeLive(Live):
    kind = "claude"

    def __init__(self, roots: Roots, tag: str) -> None:
        from daemon_support import Session

        super().__init__(tag)
        self.session = Session(roots.claude, roots.cwd(tag), project=f"-repos-{tag}",
                               session_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"claude:{tag}")))
        self.session_id, self.path = self.session.session_id, self.session.path
        self.session.write_turns(self.texts())

    def grow(self) -> None:
        self.append(self.pending_bytes())

    def pending_bytes(self) -> bytes | None:
        return b"".join(self.session.turn_lines(*self.texts()))


class CursorLive(Live):
    """A Cursor agent transcript (no timestamps but the first query's, no cwd: it is decoded from the folder)."""

    kind = "cursor"

    def __init__(self, roots: Roots, tag: str) -> None:
        super().__init__(tag)
        cwd = roots.cwd(tag)
        self.session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cursor:{tag}"))
        folder = roots.cursor / str(cwd).lstrip("/").replace("/", "-") / "agent-transcripts" / self.session_id
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{self.session_id}.jsonl"
        tmp = folder / ".new"
        tmp.write_bytes(self.pending_bytes(stamp="2026-03-04T05:06:07Z"))
        tmp.rename(self.path)

    def grow(self) -> None:
        self.append(self.pending_bytes())

    def pending_bytes(self, stamp: str | None = None) -> bytes | None:
        user, assistant = self.texts()
        query = f"<timestamp>{stamp}</timestamp>\n<user_query>\n{user}\n</user_query>" if stamp else \
            f"<user_query>\n{user}\n</user_query>"
        recs = [{"role": "user", "message": {"content": [{"type": "text", "text": query}]}},
                {"role": "assistant", "message": {"content": [{"type": "text", "text": assistant}]}},
                {"type": "turn_ended", "status": "success"}]
        return b"".join(json.dumps(r).encode() + b"\n" for r in recs)


class OpenCodeLive(Live):
    """A session in the OpenCode database, written only by the writer process."""

    kind = "opencode"

    def __init__(self, writer: OpenCodeWriter, roots: Roots, tag: str, index: int) -> None:
        super().__init__(tag)
        self.writer = writer
        self.cwd = str(roots.cwd(tag))
        self.at = OPENCODE_START_MS + index * 10_000_000
        self.session_id = f"ses_{self.at:013d}{tag[-6:]:>6}".replace(" ", "x")
        self.path = roots.db / self.session_id
        writer.send(op="session", sid=self.session_id, directory=self.cwd, title=f"{tag} title", at=self.at)
        self.grow()

    def grow(self) -> None:
        user, assistant = self.texts()
        self.at += 2000
        self.writer.send(op="turn", sid=self.session_id, cwd=self.cwd, user=user, assistant=assistant, at=self.at,
                         tool=self.turns % 2 == 0)

    def edit(self) -> None:
        """An earlier answer edited in place (a part's text changes): not a prefix any more."""
        self.writer.send(op="edit", sid=self.session_id)


class OpenCodeWriter:
    """The second process that writes the OpenCode database, one command per stdin line, one `ok` back."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "opencode-writer", str(db)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if reply != "ok":
            raise AssertionError(f"opencode writer answered {reply!r} to {cmd}")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _writer_main(db: Path) -> None:
    """Keep one writer connection open (as OpenCode does) and apply each command in its own transaction."""
    con = opencode_gen.connect(db)
    for line in sys.stdin:
        cmd = json.loads(line)
        sid = cmd["sid"]
        con.execute("BEGIN IMMEDIATE")
        if cmd["op"] == "session":
            at = cmd["at"]
            con.execute("INSERT OR IGNORE INTO project (id, worktree, time_created, time_updated) VALUES (?, ?, ?, ?)",
                        ("global", "/", at, at))
            con.execute("INSERT INTO session (id, project_id, slug, directory, title, version, time_created, "
                        "time_updated) VALUES (?, 'global', ?, ?, ?, '1.14.2', ?, ?)",
                        (sid, sid[-8:], cmd["directory"], cmd["title"], at, at))
        elif cmd["op"] == "turn":
            at, cwd = cmd["at"], cmd["cwd"]
            umid, amid = f"msg_{at:013d}u{sid[-6:]}", f"msg_{at + 1:013d}a{sid[-6:]}"
            opencode_gen.insert_message(con, sid, umid, opencode_gen.user(at),
                                        [(f"prt_{at:013d}u{sid[-6:]}", opencode_gen.text(cmd["user"]))], at)
            parts = []
            if cmd.get("tool"):
                parts.append((f"prt_{at + 1:013d}t{sid[-6:]}",
                              opencode_gen.tool("bash", f"call_{at}", {"command": "ls"}, "README.md", at + 1)))
            parts.append((f"prt_{at + 1:013d}x{sid[-6:]}", opencode_gen.text(cmd["assistant"])))
            opencode_gen.insert_message(con, sid, amid, opencode_gen.assistant(at + 1, cwd, umid), parts, at + 1)
        elif cmd["op"] == "edit":
            row = con.execute("SELECT part.id, part.data FROM part JOIN message ON part.message_id = message.id "
                              "WHERE part.session_id = ? AND part.data LIKE '%] answer%' "
                              "ORDER BY part.id LIMIT 1", (sid,)).fetchone()
            if row is not None:
                data = json.loads(row[1])
                data["text"] = data["text"].replace("] answer", "] edited answer")
                now = con.execute("SELECT max(time_updated) FROM part WHERE session_id = ?", (sid,)).fetchone()[0]
                con.execute("UPDATE part SET data = ?, time_updated = ? WHERE id = ?",
                            (json.dumps(data, separators=(",", ":")), now + 1, row[0]))
        con.execute("COMMIT")
        sys.stdout.write("ok\n")
        sys.stdout.flush()
    con.close()


# -- what the daemon wrote, and what a fresh import writes ------------------------------------------

def ledger(ledger_path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    db = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return {(r["source"], r["session_id"]): dict(r) for r in db.execute("SELECT * FROM sessions")}
    finally:
        db.close()


def superseded(ledger_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM superseded")]
    finally:
        db.close()


def thread_text(tree: Any, live: Live) -> tuple[str, bytes] | None:
    """(thread id, rollout bytes) of this session's thread as the ledger names it now, or None."""
    if not tree.ledger_path.exists():
        return None
    try:
        row = ledger(tree.ledger_path).get(live.key)
    except sqlite3.OperationalError:
        return None
    if not row or not row["thread_id"] or not row["rollout_path"]:
        return None
    try:
        return row["thread_id"], Path(row["rollout_path"]).read_bytes()
    except FileNotFoundError:
        return None


def shows(tree: Any, live: Live) -> str | None:
    """The thread id once the session's newest turn (its marker) is in its thread."""
    found = thread_text(tree, live)
    if found and json.dumps(live.marker).encode()[1:-1] in found[1]:
        return found[0]
    return None


def fresh_import(tree: Any, config: Path, dest: Path) -> tuple[Path, Path]:
    """`session-syncd import` of the same sources into an empty Codex home; (codex home, ledger)."""
    from support import cli_command

    env = tree.env()
    env["CODEX_HOME"] = str(dest / "codex")
    env["XDG_STATE_HOME"] = str(dest / "state")
    proc = subprocess.run(cli_command("import", "--json", "--config", str(config)), env=env, cwd=tree.root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"fresh import failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return dest / "codex", dest / "state" / "session-syncd" / "ledger.sqlite3"


# content_hash is not compared: for a log it is chained over the appends, by design not a whole-file hash
VERSION_COLUMNS = ("size", "mtime_ns", "inode", "consumed", "thread_id", "generation", "last_error")


def behind(tree: Any, fresh_ledger: Path) -> list[str]:
    """How the daemon's ledger differs from the fresh import's (sessions, versions, thread ids, errors);
    empty once the daemon holds every session at the version the fresh import read."""
    if not tree.ledger_path.exists():
        return ["no ledger yet"]
    try:
        ours = ledger(tree.ledger_path)
    except sqlite3.OperationalError as exc:
        return [f"ledger unreadable: {exc}"]
    theirs = ledger(fresh_ledger)
    out = [f"{k}: only in {'the daemon' if k in ours else 'the fresh import'}" for k in sorted(set(ours) ^ set(theirs))]
    for k in sorted(set(ours) & set(theirs)):
        diff = {c: (ours[k][c], theirs[k][c]) for c in VERSION_COLUMNS if ours[k][c] != theirs[k][c]}
        if diff:
            out.append(f"{k}: {diff}")
    return out


def wait_caught_up(tree: Any, fresh_ledger: Path, daemon: Any, timeout: float = 60.0) -> None:
    """Wait until `behind` is empty; fail naming what is still behind."""
    import time

    deadline = time.monotonic() + timeout
    while diff := behind(tree, fresh_ledger):
        if not daemon.alive():
            raise AssertionError(f"daemon exited while catching up\n{daemon.stderr()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the daemon's ledger is not at every source's version after {timeout}s:\n"
                                 + "\n".join(diff[:20]))
        time.sleep(0.1)


_TIME_KEYS = ("timestamp", "started_at", "completed_at")


def _times_out(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<t>" if k in _TIME_KEYS else _times_out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_times_out(v) for v in value]
    return value


def _lines(path: Path, normalise: bool) -> list[str]:
    """The rollout's lines; with `normalise`, every time a line carries (its stamp, a turn's start and
    end) replaced, as for Cursor: its records have no times, so they get the file's mtime when read."""
    out = []
    for line in path.read_text().splitlines():
        if normalise:
            line = json.dumps(_times_out(json.loads(line)))
        out.append(line)
    return out


def assert_equals_fresh_import(tree: Any, fresh_home: Path, fresh_ledger: Path) -> None:
    """Every thread the daemon wrote equals the fresh import's: same sessions, thread ids, rollout paths and
    lines (each line's `timestamp` normalised only for Cursor, whose lines carry the file's mtime), same
    titles; and the Codex home holds no other rollout."""
    ours, theirs = ledger(tree.ledger_path), ledger(fresh_ledger)
    assert sorted(ours) == sorted(theirs), (sorted(set(ours) ^ set(theirs)))
    ours_home = tree.codex_home
    for key in sorted(ours):
        a, b = ours[key], theirs[key]
        assert a["thread_id"] == b["thread_id"], (key, a["thread_id"], b["thread_id"])
        if a["rollout_path"] is None:
            assert b["rollout_path"] is None, key
            continue
        rel = Path(a["rollout_path"]).relative_to(ours_home)
        assert Path(b["rollout_path"]).relative_to(fresh_home) == rel, key
        mine, fresh = _lines(Path(a["rollout_path"]), key[0] == "cursor"), _lines(Path(b["rollout_path"]),
                                                                                  key[0] == "cursor")
        if mine != fresh:
            first = next(i for i, (x, y) in enumerate(zip(mine + [""], fresh + [""])) if x != y)
            raise AssertionError(f"{key} thread {a['thread_id']} differs from a fresh import at line {first + 1} "
                                 f"({len(mine)} vs {len(fresh)} lines):\n daemon: {mine[first:first + 1]}\n"
                                 f"  fresh: {fresh[first:first + 1]}")
        assert a["title"] == b["title"], (key, a["title"], b["title"])
    assert titles(ours_home) == titles(fresh_home)
    ids = sorted(r["thread_id"] for r in ours.values() if r["thread_id"])
    assert sorted(rollout_ids(ours_home)) == ids


def titles(codex_home: Path) -> dict[str, str]:
    """The newest title `session_index.jsonl` gives each thread (what Codex shows)."""
    out: dict[str, str] = {}
    index = codex_home / "session_index.jsonl"
    if index.exists():
        for line in index.read_text().splitlines():
            rec = json.loads(line)
            out[rec["id"]] = rec.get("thread_name")
    return out


def rollout_ids(codex_home: Path) -> list[str]:
    """The thread id of every rollout under the Codex home, each of whose lines must parse as JSON."""
    ids = []
    for path in sorted((codex_home / "sessions").rglob("rollout-*.jsonl")):
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"", f"{path} does not end with a newline"
        recs = [json.loads(x) for x in lines[:-1]]
        assert recs and recs[0]["type"] == "session_meta", path
        ids.append(recs[0]["payload"]["id"])
    return ids


if __name__ == "__main__" and sys.argv[1:2] == ["opencode-writer"]:
    _writer_main(Path(sys.argv[2]))
