"""OpenCode sessions written the way OpenCode writes them, so tests can grow sessions live.

- `create_db(path, schema="v1"|"v2")`: `opencode.db` in WAL mode with the tables of OpenCode 1.x
  (`session`, `message`, `part`, `project`; JSON `data` columns, epoch-ms times, upstream
  `packages/opencode/src/session/session.sql.ts`) and, for "v2", also 2.x's `session_message`.
- `add_session` / `add_message` (1.x rows: a message and its parts, one transaction, as OpenCode's
  upserts commit) / `add_v2_message` (a `session_message` row).
- `write_json_session` / `write_json_message`: the ≤ 1.1 `storage/` tree (`session/<project>/<id>.json`,
  `message/<session>/<id>.json`, `part/<message>/<id>.json`), pretty JSON as `JSON.stringify(x, null, 2)`.

Ids follow OpenCode's shapes (`ses_…`, `msg_…`, `prt_…`, ascending with time for messages and parts).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA_V1 = """
CREATE TABLE project (id text PRIMARY KEY, worktree text NOT NULL, vcs text, name text,
  time_created integer NOT NULL, time_updated integer NOT NULL, time_initialized integer);
CREATE TABLE session (id text PRIMARY KEY, project_id text NOT NULL REFERENCES project(id) ON DELETE CASCADE,
  workspace_id text, parent_id text, slug text NOT NULL, directory text NOT NULL, path text,
  title text NOT NULL, version text NOT NULL, share_url text, summary_additions integer,
  summary_deletions integer, summary_files integer, summary_diffs text, cost real NOT NULL DEFAULT 0,
  tokens_input integer NOT NULL DEFAULT 0, tokens_output integer NOT NULL DEFAULT 0,
  tokens_reasoning integer NOT NULL DEFAULT 0, tokens_cache_read integer NOT NULL DEFAULT 0,
  tokens_cache_write integer NOT NULL DEFAULT 0, revert text, permission text, agent text, model text,
  time_created integer NOT NULL, time_updated integer NOT NULL, time_compacting integer, time_archived integer);
CREATE INDEX session_project_idx ON session (project_id);
CREATE INDEX session_parent_idx ON session (parent_id);
CREATE TABLE message (id text PRIMARY KEY, session_id text NOT NULL REFERENCES session(id) ON DELETE CASCADE,
  time_created integer NOT NULL, time_updated integer NOT NULL, data text NOT NULL);
CREATE INDEX message_session_time_created_id_idx ON message (session_id, time_created, id);
CREATE TABLE part (id text PRIMARY KEY, message_id text NOT NULL REFERENCES message(id) ON DELETE CASCADE,
  session_id text NOT NULL, time_created integer NOT NULL, time_updated integer NOT NULL, data text NOT NULL);
CREATE INDEX part_message_id_id_idx ON part (message_id, id);
CREATE INDEX part_session_idx ON part (session_id);
CREATE TABLE todo (session_id text NOT NULL, content text NOT NULL, status text NOT NULL, priority text NOT NULL,
  position integer NOT NULL, time_created integer NOT NULL, time_updated integer NOT NULL,
  PRIMARY KEY (session_id, position));
"""

SCHEMA_V2 = SCHEMA_V1 + """
CREATE TABLE session_message (id text PRIMARY KEY, session_id text NOT NULL REFERENCES session(id) ON DELETE CASCADE,
  type text NOT NULL, time_created integer NOT NULL, time_updated integer NOT NULL, data text NOT NULL);
CREATE INDEX session_message_session_idx ON session_message (session_id);
"""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def connect(db: Path) -> sqlite3.Connection:
    """A writer connection as OpenCode opens one (WAL, busy_timeout 5000)."""
    con = sqlite3.connect(db, isolation_level=None, timeout=5)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA busy_timeout = 5000")
    return con


def create_db(db: Path, schema: str = "v1") -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    con = connect(db)
    try:
        con.executescript(SCHEMA_V2 if schema == "v2" else SCHEMA_V1)
    finally:
        con.close()


def add_session(db: Path, sid: str, *, directory: str, title: str, created: int, project: str = "global",
                parent: str | None = None, worktree: str = "/") -> None:
    con = connect(db)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT OR IGNORE INTO project (id, worktree, time_created, time_updated) VALUES (?, ?, ?, ?)",
                    (project, worktree, created, created))
        con.execute("INSERT INTO session (id, project_id, parent_id, slug, directory, title, version, time_created,"
                    " time_updated) VALUES (?, ?, ?, ?, ?, ?, '1.14.2', ?, ?)",
                    (sid, project, parent, sid[-8:], directory, title, created, created))
        con.execute("COMMIT")
    finally:
        con.close()


def set_title(db: Path, sid: str, title: str, updated: int) -> None:
    con = connect(db)
    try:
        con.execute("UPDATE session SET title = ?, time_updated = ? WHERE id = ?", (title, updated, sid))
    finally:
        con.close()


def message_rows(sid: str, mid: str, info: dict, parts: list[tuple[str, dict]], at: int
                 ) -> tuple[tuple, list[tuple]]:
    """The (message row, part rows) OpenCode stores for one message: `data` without the ids."""
    msg = (mid, sid, at, at, _json(info))
    return msg, [(pid, mid, sid, at, at, _json(p)) for pid, p in parts]


def insert_message(con: sqlite3.Connection, sid: str, mid: str, info: dict, parts: list[tuple[str, dict]],
                   at: int) -> None:
    msg, rows = message_rows(sid, mid, info, parts, at)
    con.execute("INSERT OR REPLACE INTO message (id, session_id, time_created, time_updated, data) "
                "VALUES (?, ?, ?, ?, ?)", msg)
    con.executemany("INSERT OR REPLACE INTO part (id, message_id, session_id, time_created, time_updated, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.execute("UPDATE session SET time_updated = max(time_updated, ?) WHERE id = ?", (at, sid))


def add_message(db: Path, sid: str, mid: str, info: dict, parts: list[tuple[str, dict]], at: int) -> None:
    con = connect(db)
    try:
        con.execute("BEGIN IMMEDIATE")
        insert_message(con, sid, mid, info, parts, at)
        con.execute("COMMIT")
    finally:
        con.close()


def add_v2_message(db: Path, sid: str, row_id: str, kind: str, data: dict, at: int) -> None:
    con = connect(db)
    try:
        con.execute("INSERT OR REPLACE INTO session_message (id, session_id, type, time_created, time_updated, data)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (row_id, sid, kind, at, at, _json(data)))
    finally:
        con.close()


def user(at: int) -> dict:
    return {"role": "user", "time": {"created": at}, "agent": "build",
            "model": {"providerID": "anthropic", "modelID": "claude-sonnet-4-5"}}


def assistant(at: int, cwd: str, parent: str) -> dict:
    return {"role": "assistant", "parentID": parent, "providerID": "anthropic", "modelID": "claude-sonnet-4-5",
            "mode": "build", "agent": "build", "path": {"cwd": cwd, "root": cwd}, "cost": 0.01,
            "tokens": {"input": 100, "output": 20, "reasoning": 0, "cache": {"read": 0, "write": 0}},
            "time": {"created": at, "completed": at + 500}, "finish": "stop"}


def text(value: str, **extra: Any) -> dict:
    return {"type": "text", "text": value, **extra}


def tool(name: str, call_id: str, inp: dict, output: str, at: int, status: str = "completed") -> dict:
    state: dict[str, Any] = {"status": status, "input": inp, "time": {"start": at, "end": at + 100}}
    if status == "completed":
        state.update(output=output, title=name, metadata={})
    elif status == "error":
        state["error"] = output
    return {"type": "tool", "callID": call_id, "tool": name, "state": state}


# -- the ≤ 1.1 JSON tree -------------------------------------------------------------------------

def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2))  # Bun.write: in place, not atomic


def write_json_session(data_dir: Path, sid: str, *, directory: str, title: str, created: int,
                       project: str = "global", parent: str | None = None, worktree: str = "/") -> Path:
    storage = data_dir / "storage"
    if not (storage / "project" / f"{project}.json").exists():
        _write(storage / "project" / f"{project}.json",
               {"id": project, "worktree": worktree, "time": {"created": created, "updated": created}})
    info: dict[str, Any] = {"id": sid, "slug": sid[-8:], "version": "1.1.3", "projectID": project,
                            "directory": directory, "title": title,
                            "time": {"created": created, "updated": created}}
    if parent is not None:
        info["parentID"] = parent
    path = storage / "session" / project / f"{sid}.json"
    _write(path, info)
    return path


def write_json_message(data_dir: Path, sid: str, mid: str, info: dict, parts: list[tuple[str, dict]]) -> None:
    storage = data_dir / "storage"
    _write(storage / "message" / sid / f"{mid}.json", {"id": mid, "sessionID": sid, **info})
    for pid, part in parts:
        _write(storage / "part" / mid / f"{pid}.json", {"id": pid, "sessionID": sid, "messageID": mid, **part})
