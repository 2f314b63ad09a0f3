"""OpenCode: `$XDG_DATA_HOME/opencode` (else `~/.local/share/opencode`), two stores of one session model.

- **SQLite** (`opencode.db`, or `opencode-<channel>.db`; `OPENCODE_DB` names another file, absolute or
  relative to the data dir), OpenCode ≥ 1.2. Opened read-only (`mode=ro`, never `immutable`: the WAL is
  read too), with a busy timeout, every read of a session in one transaction, so OpenCode's writer is
  never blocked and we never see half a commit. The schema is detected from `sqlite_master`: the 1.x
  tables `session` / `message` / `part` (JSON `data` columns), and OpenCode 2.x's `session_message`
  (one row per message, assistant content inline; a session with rows there is read from them, older
  ones from the frozen 1.x tables). A database without a session table is skipped and counted
  (`SOURCE.unknown_stores`). A DB session's identity path is `<db file>/<session id>` (not a file);
  its version is (message count, newest `time_updated`, part count) from one query on a connection kept
  open per process and thread (idle it holds no lock; a replaced file is reopened).
- **JSON tree** (`storage/`, OpenCode ≤ 1.1, left on disk by the migration): `session/<project>/<id>.json`,
  `message/<session id>/<message id>.json`, `part/<message id>/<part id>.json`, each rewritten whole and
  not atomically: a file that does not parse is re-read once; still bad and written in the last minute,
  the read is `Incomplete` (retried later), older, it is skipped and counted. The session file is the
  identity path; only its changes are identified live (message and part files name no session), the rest
  are found by the reconcile through `version` (every file of the session stat'ed, none read).
- One session id in both stores: the database wins (a JSON copy reads as empty).

Read: user `text` parts (not `synthetic` / `ignored`: injected file contents and context), assistant
`text`, `reasoning`, `tool` parts as a call then a tool-result message (as Claude's records are: the
result shows on the assistant side), image `file` parts. Title: `session.title` unless it is the
placeholder (`New session - <ISO time>`, `Child session - …`). cwd: `session.directory`, else the first
assistant message's `path.cwd`, else the project's worktree. Order: messages by (time created, id),
parts by id.

Child sessions (`parent_id` / `parentID`: subagent runs; their parent shows the `task` call and its
result) are no threads by default: `discover` skips them and one read anyway (a live change to its JSON
file) reads as empty (`state.child`). With `[sources.opencode] child_sessions = true` they are listed by
`discover_children` and read (`ctx.child_sessions`) as threads of their own, titled by their own title
unless it is the placeholder (`Child session - …`: the thread is named from the subagent's prompt).

Dropped on purpose: pending tool calls (their input is still streaming), compaction
summaries (`summary: true` messages, `compaction` parts: the old messages stay), step / snapshot / patch
/ agent / subtask / retry parts, non-image files (their text arrives as synthetic parts), and in 2.x
`system`, `synthetic`, `compaction`, `model-switched`, `agent-switched` rows. Unknown part, role or row
types are counted in `state.unknown`.
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one again when
# a decoder of these Structs is built, at the start of every command (~0.05 ms a decoder).

import math
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import msgspec

from daemon.codex.notes import compact_json, shows_anything
from daemon.codex.text import trim
from daemon.sources import OPENCODE_DB_NAME as DB_NAME, is_opencode_db
from daemon.sources.base import (Identity, Incomplete, ParseContext, Snapshot, SourceState, Version, WatchSpec,
                                 bounded, read_rewritten, stat_version)
from daemon.transcript import Image, Message, Part, Reasoning, Text, ToolCall, ToolResult

BUSY_TIMEOUT_S = 2.0
_PLACEHOLDER = re.compile(r"(?:new|child) session - ", re.I)
_HOUSEKEEPING_PARTS = frozenset({"step-start", "step-finish", "snapshot", "patch", "agent", "subtask", "retry",
                                 "compaction"})
_SKIPPED_V2 = frozenset({"system", "synthetic", "compaction", "model-switched", "agent-switched"})


class OpenCodeState(SourceState, kw_only=True):
    store: str | None = None  # "db" (1.x tables), "db-v2" (session_message) or "json"
    shadowed: bool = False  # a JSON copy of a session the database holds (read as empty)
    child: bool = False  # a subagent session (read as empty unless child_sessions is set)


# -- record shapes (decoded from `data` columns and JSON files; unknown fields ignored) ---------------

class SessionInfo(msgspec.Struct):
    """A JSON-era session file (the DB's session columns, camel-cased)."""

    id: Any = None
    projectID: Any = None
    parentID: Any = None
    directory: Any = None
    title: Any = None
    time: Any = None


class MessageInfo(msgspec.Struct):
    role: Any = None
    time: Any = None
    path: Any = None
    summary: Any = None


class PartData(msgspec.Struct):
    type: Any = None
    text: Any = None
    synthetic: Any = None
    ignored: Any = None
    tool: Any = None
    state: Any = None
    mime: Any = None


class V2Data(msgspec.Struct):
    """A 2.x `session_message.data` (its `type` is a column)."""

    text: Any = None
    content: Any = None
    time: Any = None
    command: Any = None
    output: Any = None


class ProjectInfo(msgspec.Struct):
    worktree: Any = None


_session_decoder = msgspec.json.Decoder(SessionInfo)
_message_decoder = msgspec.json.Decoder(MessageInfo)
_part_decoder = msgspec.json.Decoder(PartData)
_v2_decoder = msgspec.json.Decoder(V2Data)
_project_decoder = msgspec.json.Decoder(ProjectInfo)


def _hasher() -> Any:
    import blake3  # only a sync reads: `status` and a no-op import never load it

    return blake3.blake3()


def _decode(decoder: msgspec.json.Decoder, data: object) -> Any:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if not isinstance(data, bytes):
        return None
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nesting past the limit too
        return None


# -- pure core ------------------------------------------------------------------------------------

def is_placeholder_title(title: str) -> bool:
    t = trim(title)
    return not t or t == "Untitled" or _PLACEHOLDER.match(t) is not None


def _int(value: object) -> int | None:
    """An epoch-ms time: an integer (a whole float too) a rollout can hold (base.bounded), else None."""
    if type(value) is float:
        value = int(value) if math.isfinite(value) else None
    return bounded(value) if type(value) is int else None


def _created(time_obj: object) -> int | None:
    return _int(time_obj.get("created")) if isinstance(time_obj, dict) else None


def session_meta(state: OpenCodeState, *, directory: object, title: object, created: object) -> None:
    """What the session row (or file) says: cwd, title, start."""
    if isinstance(directory, str) and directory:
        state.cwd = directory
    if isinstance(title, str) and not is_placeholder_title(title):
        state.custom_title = trim(title)
    start = _int(created)
    if start is not None:
        state.start_ms = start


def _error_text(error: object) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "error"):
            if isinstance(error.get(key), str):
                return error[key]
        data = error.get("data")
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return data["message"]
    return "" if error is None else compact_json(error)


def _content_text(content: object) -> str | None:
    if not isinstance(content, list):
        return None
    texts = [t for c in content if isinstance(c, dict) and c.get("type") == "text" and isinstance(t := c.get("text"), str)]
    return "\n".join(texts) if texts else None


def tool_parts(name: object, tool_state: object, *, v2: bool = False) -> tuple[ToolCall | None, ToolResult | None]:
    """A tool part → its call (None while pending) and its result (None until it finished)."""
    if not isinstance(tool_state, dict):
        return None, None
    status = tool_state.get("status")
    if status not in ("running", "completed", "error"):
        return None, None  # pending (input still streaming) or unknown
    call = ToolCall(name if isinstance(name, str) else None,
                    tool_state["input"] if "input" in tool_state else msgspec.UNSET)
    if status == "running":
        return call, None
    if status == "error":
        text = _error_text(tool_state.get("error"))
        if not text and v2:
            text = _content_text(tool_state.get("content")) or ""
        return call, ToolResult(text, True)
    output = tool_state.get("output")
    if v2 or not isinstance(output, str):
        output = _content_text(tool_state.get("content"))
        if output is None:
            result = tool_state.get("result", tool_state.get("output"))
            output = result if isinstance(result, str) else ("" if result is None else compact_json(result))
    return call, ToolResult(output)


class _Builder:
    """Messages in order; an assistant's tool results become user-role tool-result messages right after
    their call (rendered on the assistant side), the assistant's later parts a new message."""

    def __init__(self) -> None:
        self.out: list[Message] = []

    def emit(self, role: str, parts: list[Part], ts: int | None) -> None:
        if parts and shows_anything(tuple(parts)):
            self.out.append(Message(role, tuple(parts), ts))  # type: ignore[arg-type]

    def message(self, role: str, items: list[tuple[str, Any]], ts: int | None) -> None:
        """`items`: ("part", Part) or ("tool", (call, result)) in the message's order."""
        current: list[Part] = []
        for kind, value in items:
            if kind == "part":
                current.append(value)
                continue
            call, result = value
            current.append(call)
            if result is not None:
                self.emit(role, current, ts)
                self.emit("user", [result], ts)
                current = []
        self.emit(role, current, ts)


def _v1_items(state: OpenCodeState, role: str, parts: list[tuple[str, object]]) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for _pid, data in sorted(parts, key=lambda p: p[0]):
        part = _decode(_part_decoder, data)
        if part is None:
            state.malformed += 1
            continue
        kind = part.type
        if kind == "text":
            if part.synthetic is True or part.ignored is True or not isinstance(part.text, str):
                continue
            items.append(("part", Text(part.text)))
        elif kind == "reasoning":
            items.append(("part", Reasoning(part.text if isinstance(part.text, str) else "")))
        elif kind == "tool":
            call, result = tool_parts(part.tool, part.state)
            if call is not None:
                items.append(("tool", (call, result)))
        elif kind == "file":
            if isinstance(part.mime, str) and part.mime.startswith("image/"):
                items.append(("part", Image(part.mime)))
        elif not isinstance(kind, str) or kind not in _HOUSEKEEPING_PARTS:  # a list `type` is unhashable
            state.unknown += 1
    return items


def v1_messages(state: OpenCodeState, rows: list[tuple[str, object, object, list[tuple[str, object]]]]
                ) -> list[Message]:
    """1.x messages → neutral messages. `rows`: (message id, time_created or None, data JSON,
    [(part id, part data JSON)]), in any order; sorted here by (time created, id), parts by id."""
    decoded = []
    for mid, created, data, parts in rows:
        info = _decode(_message_decoder, data)
        if info is None:
            state.malformed += 1
            continue
        column, ts = _int(created), _created(info.time)
        if ts is None:
            ts = column
        key = column if column is not None else ts  # the row's time_created, as OpenCode orders them
        decoded.append((key if key is not None else 0, mid if isinstance(mid, str) else "", ts, info, parts))
    decoded.sort(key=lambda d: (d[0], d[1]))
    b = _Builder()
    for _key, _mid, ts, info, parts in decoded:
        role = info.role
        if role not in ("user", "assistant"):
            state.unknown += 1
            continue
        if role == "assistant":
            if state.cwd is None and isinstance(info.path, dict) and isinstance(cwd := info.path.get("cwd"), str) and cwd:
                state.cwd = cwd
            if info.summary is True:
                continue  # a compaction summary: the messages it summarises are still here
        if state.start_ms is None and ts is not None:
            state.start_ms = ts
        b.message(role, _v1_items(state, role, parts), ts)
    return b.out


def v2_messages(state: OpenCodeState, rows: list[tuple[str, object, object, object]]) -> list[Message]:
    """2.x `session_message` rows (id, type, time_created, data JSON), already in the session's order."""
    b = _Builder()
    for _id, kind, created, raw in rows:
        data = _decode(_v2_decoder, raw)
        if data is None:
            state.malformed += 1
            continue
        ts = _created(data.time)
        if ts is None:
            ts = _int(created)
        if state.start_ms is None and ts is not None and kind in ("user", "assistant", "shell"):
            state.start_ms = ts
        if kind == "user":
            if isinstance(data.text, str):
                b.message("user", [("part", Text(data.text))], ts)
        elif kind == "assistant":
            items: list[tuple[str, Any]] = []
            for c in data.content if isinstance(data.content, list) else ():
                if not isinstance(c, dict):
                    state.malformed += 1
                    continue
                ctype = c.get("type")
                if ctype == "text":
                    if c.get("synthetic") is True or c.get("ignored") is True or not isinstance(c.get("text"), str):
                        continue
                    items.append(("part", Text(c["text"])))
                elif ctype == "reasoning":
                    items.append(("part", Reasoning(c["text"] if isinstance(c.get("text"), str) else "")))
                elif ctype == "tool":
                    call, result = tool_parts(c.get("name"), c.get("state"), v2=True)
                    if call is not None:
                        items.append(("tool", (call, result)))
                else:
                    state.unknown += 1
            b.message("assistant", items, ts)
        elif kind == "shell":  # the user ran `!command`: shown as the shell tool's call and result
            if isinstance(data.command, str):
                output = data.output if isinstance(data.output, str) else ""
                b.message("assistant", [("tool", (ToolCall("bash", {"command": data.command}), ToolResult(output)))], ts)
        elif kind not in _SKIPPED_V2:
            state.unknown += 1
    return b.out


# -- the database (thin shell) --------------------------------------------------------------------

class DbSchema(msgspec.Struct, frozen=True):
    session_table: str
    session_cols: frozenset[str]
    v1: bool  # message + part tables with `data`
    v2: bool  # session_message
    v2_seq: bool
    project: bool


def connect(db: Path) -> sqlite3.Connection:
    """Read-only, WAL-aware (not immutable), waiting out a writer's lock for a moment; autocommit mode so
    each read runs in the one transaction we begin."""
    uri = "file:" + quote(str(db)) + "?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    con.text_factory = _text
    return con


def _text(raw: bytes) -> str:
    """A TEXT value; invalid UTF-8 in one row (a torn write, another tool) reads as U+FFFD instead of
    failing the whole read (sqlite3's default raises OperationalError for the session)."""
    return raw.decode("utf-8", "replace")


def _columns(con: sqlite3.Connection, table: str) -> frozenset[str]:
    return frozenset(r[1] for r in con.execute(f'PRAGMA table_info("{table}")'))


def detect_schema(con: sqlite3.Connection) -> DbSchema | None:
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    session_table = next((t for t in ("session", "session_v2") if t in tables), None)
    if session_table is None:
        return None
    cols = _columns(con, session_table)
    if "id" not in cols:
        return None
    v1 = ("message" in tables and "part" in tables and {"id", "session_id", "data"} <= _columns(con, "message")
          and {"id", "message_id", "data"} <= _columns(con, "part"))
    v2_cols = _columns(con, "session_message") if "session_message" in tables else frozenset()
    v2 = {"id", "session_id", "type", "data"} <= v2_cols
    if not v1 and not v2:
        return None
    return DbSchema(session_table, cols, v1, v2, "seq" in v2_cols,
                    "project" in tables and "worktree" in _columns(con, "project") and "project_id" in cols)


def _col(schema: DbSchema, name: str) -> str:
    return f'"{name}"' if name in schema.session_cols else "NULL"


def db_sessions(con: sqlite3.Connection, schema: DbSchema) -> list[tuple[str, bool]]:
    """(session id, is a child) for every session, by id."""
    return [(r[0], r[1] is not None) for r in con.execute(
        f'SELECT id, {_col(schema, "parent_id")} FROM "{schema.session_table}" ORDER BY id') if isinstance(r[0], str)]


def db_version(con: sqlite3.Connection, schema: DbSchema, sid: str) -> Version:
    """(message count, max time_updated in ns, part count) in one query; FileNotFoundError when the
    session is gone."""
    updated = _col(schema, "time_updated")
    subs = [f'(SELECT {updated} FROM "{schema.session_table}" WHERE id = :s)']
    count = ["0"]
    parts = ["0"]
    if schema.v1:
        count.append("(SELECT count(*) FROM message WHERE session_id = :s)")
        subs.append("(SELECT max(time_updated) FROM message WHERE session_id = :s)")
        sel = "SELECT id FROM message WHERE session_id = :s"
        parts.append(f"(SELECT count(*) FROM part WHERE message_id IN ({sel}))")
        subs.append(f"(SELECT max(time_updated) FROM part WHERE message_id IN ({sel}))")
    if schema.v2:
        count.append("(SELECT count(*) FROM session_message WHERE session_id = :s)")
        subs.append("(SELECT max(time_updated) FROM session_message WHERE session_id = :s)")
    exists = f'(SELECT count(*) FROM "{schema.session_table}" WHERE id = :s)'
    row = con.execute(f"SELECT {exists}, {' + '.join(count)}, {' + '.join(parts)}, "
                      f"max({', '.join(f'coalesce({s}, 0)' for s in subs)}, 0)", {"s": sid}).fetchone()
    if not row[0]:
        raise FileNotFoundError(f"session {sid} is no longer in the database")
    mtime = row[3] if type(row[3]) is int else 0
    return Version(size=row[1], mtime_ns=mtime * 1_000_000, inode=row[2])


def read_db_session(con: sqlite3.Connection, schema: DbSchema, sid: str, *, children: bool = False
                    ) -> tuple[OpenCodeState, list[Message], bytes]:
    """One session, read in one transaction: its state, messages and the blake3 of the rows read (a child
    session read as empty unless `children`)."""
    hasher = _hasher()
    state = OpenCodeState(store="db")
    row = con.execute(f'SELECT id, {_col(schema, "parent_id")}, {_col(schema, "directory")}, '
                      f'{_col(schema, "title")}, {_col(schema, "time_created")}, {_col(schema, "project_id")} '
                      f'FROM "{schema.session_table}" WHERE id = ?', (sid,)).fetchone()
    if row is None:
        return state, [], hasher.digest()
    hasher.update(msgspec.msgpack.encode(list(row)))
    state.child = row[1] is not None
    if state.child and not children:
        return state, [], hasher.digest()
    session_meta(state, directory=row[2], title=row[3], created=None)
    start = _int(row[4])
    v2_rows: list[tuple[Any, ...]] = []
    if schema.v2:
        order = "seq, id" if schema.v2_seq else "time_created, id"
        v2_rows = con.execute("SELECT id, type, time_created, data FROM session_message WHERE session_id = ? "
                              f"ORDER BY {order}", (sid,)).fetchall()
    if v2_rows:
        state.store = "db-v2"
        hasher.update(msgspec.msgpack.encode([list(r) for r in v2_rows]))
        messages = v2_messages(state, [tuple(r) for r in v2_rows])  # type: ignore[misc]
    elif schema.v1:
        msgs = con.execute("SELECT id, time_created, data FROM message WHERE session_id = ? ORDER BY time_created, id",
                           (sid,)).fetchall()
        parts: dict[str, list[tuple[str, object]]] = {}
        for pid, mid, data in con.execute(
                "SELECT id, message_id, data FROM part WHERE message_id IN "
                "(SELECT id FROM message WHERE session_id = ?) ORDER BY message_id, id", (sid,)):
            parts.setdefault(mid, []).append((pid, data))
        hasher.update(msgspec.msgpack.encode([list(r) for r in msgs]))
        hasher.update(msgspec.msgpack.encode(sorted(parts.items())))
        messages = v1_messages(state, [(m[0], m[1], m[2], parts.get(m[0], [])) for m in msgs])
    else:
        messages = []
    if start is not None:
        state.start_ms = start
    if state.cwd is None and schema.project and row[5] is not None:
        p = con.execute("SELECT worktree FROM project WHERE id = ?", (row[5],)).fetchone()
        if p is not None and isinstance(p[0], str) and p[0] and p[0] != "/":
            state.cwd = p[0]
    return state, messages, hasher.digest()


class _Open(msgspec.Struct):
    con: sqlite3.Connection
    dev_ino: tuple[int, int]
    schema_version: int
    schema: DbSchema | None


#: Open read-only connections, one per (process, thread, database): opening one costs more than the
#: version query itself (~0.3 ms against ~0.1 ms). Idle, a connection holds no lock and no snapshot.
_OPEN: dict[tuple[int, int, str], _Open] = {}


def _drop(key: tuple[int, int, str]) -> None:
    entry = _OPEN.pop(key, None)
    if entry is not None:
        try:
            entry.con.close()
        except sqlite3.Error:
            pass


def _with_db(db: Path, fn: Any) -> Any:
    """Run `fn(con, schema)` in one read transaction; a busy database is Incomplete (retried later), one
    that is gone or not OpenCode's is FileNotFoundError."""
    import threading  # here: `status` and a no-op import never need it (start-up time)

    key = (os.getpid(), threading.get_ident(), str(db))
    st = os.stat(db)  # FileNotFoundError when it is gone
    entry = _OPEN.get(key)
    if entry is not None and entry.dev_ino != (st.st_dev, st.st_ino):
        _drop(key)  # replaced: read the new file
        entry = None
    try:
        if entry is None:
            entry = _Open(connect(db), (st.st_dev, st.st_ino), -1, None)
            _OPEN[key] = entry
        con = entry.con
        con.execute("BEGIN")
        try:
            version = con.execute("PRAGMA schema_version").fetchone()[0]
            if version != entry.schema_version:
                entry.schema, entry.schema_version = detect_schema(con), version
            if entry.schema is None:
                raise FileNotFoundError(f"{db}: not an OpenCode database (no session/message tables)")
            return fn(con, entry.schema)
        finally:
            con.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        _drop(key)
        msg = str(exc)
        if "locked" in msg or "busy" in msg:
            raise Incomplete(f"{db}: {msg}") from exc
        raise FileNotFoundError(f"{db}: {msg}") from exc
    except sqlite3.Error as exc:
        _drop(key)
        raise FileNotFoundError(f"{db}: {exc}") from exc


# -- the JSON tree (thin shell) -------------------------------------------------------------------

def _read_json_file(path: Path, decoder: msgspec.json.Decoder, hasher: Any) -> tuple[Any, bytes]:
    """A JSON entity file (its decoded value and bytes), re-read once if it does not parse; then
    Incomplete if it was written in the last minute (a writer is still at it), else (None, b"")
    (skipped, counted by the caller). A file gone since the listing is (None, b"") too."""
    try:
        data, value = read_rewritten(path, lambda d: _decode(decoder, d), ": half-written JSON")
    except (FileNotFoundError, IsADirectoryError):
        return None, b""
    if value is None:
        return None, b""
    hasher.update(path.name.encode() + b"\0" + data)
    return value, data


def _json_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".json")
    except (FileNotFoundError, NotADirectoryError):
        return []


def read_json_session(storage: Path, session_file: Path, *, children: bool = False
                      ) -> tuple[OpenCodeState, list[Message], bytes]:
    hasher = _hasher()
    state = OpenCodeState(store="json")
    info, _ = _read_json_file(session_file, _session_decoder, hasher)
    if info is None:
        state.malformed += 1
        return state, [], hasher.digest()
    state.child = isinstance(info.parentID, str) and info.parentID != ""
    if state.child and not children:
        return state, [], hasher.digest()
    session_meta(state, directory=info.directory, title=info.title, created=_created(info.time))
    sid = session_file.stem
    rows = []
    for mfile in _json_files(storage / "message" / sid):
        info_m, raw = _read_json_file(mfile, _message_decoder, hasher)
        if info_m is None:
            state.malformed += 1
            continue
        parts: list[tuple[str, object]] = []
        for pfile in _json_files(storage / "part" / mfile.stem):
            part, praw = _read_json_file(pfile, _part_decoder, hasher)
            if part is None:
                state.malformed += 1
                continue
            parts.append((pfile.stem, praw))
        rows.append((mfile.stem, None, raw, parts))
    start = state.start_ms
    messages = v1_messages(state, rows)
    if start is not None:
        state.start_ms = start
    if state.cwd is None and isinstance(info.projectID, str) and info.projectID:
        project, _ = _read_json_file(storage / "project" / f"{info.projectID}.json", _project_decoder,
                                     _hasher())
        if project is not None and isinstance(project.worktree, str) and project.worktree not in ("", "/"):
            state.cwd = project.worktree
    return state, messages, hasher.digest()


def json_version(storage: Path, session_file: Path) -> Version:
    """Every file of the session stat'ed (none read): total bytes, newest mtime, file count."""
    st = os.stat(session_file)
    size, newest, count = st.st_size, st.st_mtime_ns, 1
    for mfile in _json_files(storage / "message" / session_file.stem):
        for path in (mfile, *_json_files(storage / "part" / mfile.stem)):
            try:
                s = os.stat(path)
            except FileNotFoundError:
                continue
            size, newest, count = size + s.st_size, max(newest, s.st_mtime_ns), count + 1
    return Version(size=size, mtime_ns=newest, inode=count)


# -- the plug-in ----------------------------------------------------------------------------------

def _databases(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    try:
        found = [p for p in root.iterdir() if is_opencode_db(p.name) and p.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found, key=lambda p: (p.name != DB_NAME, p.name))


def _db_of(ident: Identity) -> Path | None:
    db = ident.path.parent
    return db if is_opencode_db(db.name) or ident.path.suffix != ".json" else None


class OpenCodeSource:
    kind = "opencode"
    shape: Literal["snapshot"] = "snapshot"
    state_type = OpenCodeState
    watch = WatchSpec(suffixes=(".json",), depth=4, rescan_names=(DB_NAME, DB_NAME + "-wal"))

    def __init__(self) -> None:
        self.unknown_stores: dict[str, str] = {}  # database path → why it was skipped (from discover)

    def discover(self, root: Path) -> Iterator[Identity]:
        """Top-level sessions (not children), each id once: the database's copy wins."""
        return self._discover(root, children=False)

    def discover_children(self, root: Path) -> Iterator[Identity]:
        """Child sessions (subagent runs), listed when `[sources.opencode] child_sessions = true`."""
        return self._discover(root, children=True)

    def _discover(self, root: Path, *, children: bool) -> Iterator[Identity]:
        seen: set[str] = set()
        for db in _databases(root):
            try:
                sessions = _with_db(db, db_sessions)
            except (OSError, Incomplete) as exc:
                self.unknown_stores[str(db)] = str(exc)
                continue
            self.unknown_stores.pop(str(db), None)
            for sid, child in sessions:
                if sid not in seen:
                    seen.add(sid)
                    if child == children:
                        yield Identity(self.kind, sid, db / sid)
        if root.is_file():
            return
        sessions_dir = root / "storage" / "session"
        try:
            projects = sorted(p for p in sessions_dir.iterdir() if p.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return
        for project in projects:
            for path in _json_files(project):
                if path.stem in seen:
                    continue
                try:
                    info, _ = _read_json_file(path, _session_decoder, _hasher())
                except Incomplete:
                    info = None  # being written: listed now, read when it settles
                seen.add(path.stem)
                child = info is not None and isinstance(info.parentID, str) and info.parentID != ""
                if child == children:
                    yield Identity(self.kind, path.stem, path)

    def identify(self, root: Path, path: Path) -> Identity | None:
        try:
            rel = path.relative_to(root).parts
        except ValueError:
            return None
        if len(rel) == 4 and rel[0] == "storage" and rel[1] == "session" and path.suffix == ".json":
            return Identity(self.kind, path.stem, path)
        return None  # the database (a change reconciles), message and part files (they name no session)

    def version(self, ident: Identity) -> Version:
        db = _db_of(ident)
        if db is not None:
            return _with_db(db, lambda con, schema: db_version(con, schema, ident.session_id))
        return json_version(ident.path.parents[2], ident.path)

    def fallback_cwd(self, ident: Identity) -> str | None:
        return None  # read_snapshot already falls back to the assistant's path.cwd and the project worktree

    def parse_line(self, state: SourceState, line: bytes, ctx: ParseContext) -> Message | None:
        raise NotImplementedError("OpenCode is a snapshot source")

    def read_snapshot(self, ident: Identity, ctx: ParseContext) -> Snapshot:
        db = _db_of(ident)
        if db is not None:
            state, messages, digest = _with_db(db, lambda con, schema: read_db_session(
                con, schema, ident.session_id, children=ctx.child_sessions))
        else:
            storage = ident.path.parents[2]
            if self._in_database(storage.parent, ident.session_id):
                state, messages, digest = OpenCodeState(store="json", shadowed=True), [], b""
            else:
                state, messages, digest = read_json_session(storage, ident.path, children=ctx.child_sessions)
        return Snapshot(state=state, messages=messages, digest=digest or _hasher().digest())

    @staticmethod
    def _in_database(root: Path, sid: str) -> bool:
        for db in _databases(root):
            try:
                if _with_db(db, lambda con, schema: con.execute(
                        f'SELECT 1 FROM "{schema.session_table}" WHERE id = ?', (sid,)).fetchone() is not None):
                    return True
            except (OSError, Incomplete):
                continue
        return False


SOURCE = OpenCodeSource()
