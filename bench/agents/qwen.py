"""A small Qwen Code session writer, for tests that grow sessions live.

Writes `ROOT/projects/<sanitized cwd>/chats/<session id>.jsonl` the way Qwen Code's ChatRecordingService
does: one compact JSON `ChatRecord` per line (`uuid`, `parentUuid` chained to the previous record,
`sessionId`, `timestamp`, `type`, `provenance`, `cwd`, `version`, `gitBranch`, Gemini `message`), a user
record per prompt (with `systemPayload.displayText` / `hookContext`), assistant records (a `thought`
part, `functionCall` parts, usage metadata), `tool_result` records with `functionResponse` parts and
`toolCallResult`, `ui_telemetry` system records, `custom_title` records appended off the tail, and
`/rewind` (a `rewind` system record re-rooted before a user turn; the later turns stay in the file as a
dead branch). ROOT is the Qwen runtime dir (`$QWEN_RUNTIME_DIR`, `$QWEN_HOME`, `~/.qwen`).
Deterministic: uuids and timestamps follow from the session id and the number of lines already written.
Standard library only.

    write_session(root, cwd, session_id, [("fix the bug", "Fixed."), ...], title="Fix the bug")
    append_turn(root, cwd, session_id, "and the tests", "Done.", tool=True)
    rewind(root, cwd, session_id, 1)        # back to before the second user turn
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

START = datetime(2026, 6, 3, 12, 0, 0, 250000, tzinfo=timezone.utc)
VERSION = "0.22.1"


def sanitize_cwd(cwd: str) -> str:
    """Qwen's project folder name (`sanitizeCwd`, POSIX): every non-alphanumeric character becomes '-'."""
    return re.sub(r"[^a-zA-Z0-9]", "-", cwd)


def session_path(root: Path, cwd: str, session_id: str) -> Path:
    return Path(root) / "projects" / sanitize_cwd(cwd) / "chats" / f"{session_id}.jsonl"


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _tail(records: list[dict]) -> str | None:
    """Qwen's `lastRecordUuid`: the newest record written on the tail (title anchors are not)."""
    for rec in reversed(records):
        if rec.get("subtype") != "custom_title":
            return rec["uuid"]
    return None


class _Writer:
    def __init__(self, root: Path, cwd: str, session_id: str, branch: str | None = "main") -> None:
        self.path = session_path(root, cwd, session_id)
        self.cwd, self.session_id, self.branch = cwd, session_id, branch
        existing = _records(self.path)
        self.n = len(existing)
        self.parent = _tail(existing)
        self.lines: list[str] = []

    def record(self, kind: str, *, tail: bool = True, parent: str | None | bool = False, **fields) -> str:
        i = self.n
        rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"qwen:{self.session_id}:{i}"))
        provenance = {"user": "real_user", "assistant": "assistant_output", "tool_result": "tool_result"}
        rec = {"uuid": rid, "parentUuid": self.parent if parent is False else parent,
               "sessionId": self.session_id,
               "timestamp": (START + timedelta(seconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "type": kind, "provenance": provenance.get(kind, "system"), "cwd": self.cwd, "version": VERSION}
        if self.branch:
            rec["gitBranch"] = self.branch
        rec.update(fields)
        self.lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
        self.n += 1
        if tail:
            self.parent = rid
        return rid

    def turn(self, user: str, assistant: str, tool: bool) -> None:
        self.record("user", message={"role": "user", "parts": [
            {"text": user},
            {"text": f"<qwen:user-prompt-submit-context>\nbranch {self.branch}\n</qwen:user-prompt-submit-context>"}]},
            systemPayload={"displayText": user, "hookContext": f"branch {self.branch}"},
            promptId=f"{self.session_id}########{self.n}")
        usage = {"promptTokenCount": 1200, "candidatesTokenCount": 40, "totalTokenCount": 1240}
        if tool:
            call = f"call_{self.n}"
            self.record("assistant", model="qwen3-coder-plus", usageMetadata=usage, message={"role": "model", "parts": [
                {"text": "Let me look first.", "thought": True},
                {"functionCall": {"id": call, "name": "run_shell_command",
                                  "args": {"command": "ls", "description": "List files"}}}]})
            self.record("tool_result", message={"role": "user", "parts": [
                {"functionResponse": {"id": call, "name": "run_shell_command",
                                      "response": {"output": "README.md\nsrc"}}}]},
                toolCallResult={"callId": call, "status": "success", "resultDisplay": "README.md\nsrc"})
        self.record("assistant", model="qwen3-coder-plus", usageMetadata=usage,
                    message={"role": "model", "parts": [{"text": assistant}]})
        self.record("system", subtype="ui_telemetry", systemPayload={"uiEvent": {
            "event.name": "qwen-code.api_response", "duration_ms": 812, "input_token_count": 1200}})

    def title(self, title: str, source: str | None) -> None:
        payload = {"customTitle": title, **({"titleSource": source} if source else {})}
        self.record("system", subtype="custom_title", systemPayload=payload, tail=False)

    def flush(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in self.lines))
        self.lines.clear()
        return self.path


def write_session(root: Path, cwd: str, session_id: str, turns: list[tuple[str, str]], *,
                  title: str | None = None, title_source: str | None = None, tool: bool = True,
                  branch: str | None = "main") -> Path:
    """A new session file with `turns` (user, assistant) pairs (each with a tool call when `tool`) and
    an optional custom title; returns its path."""
    path = session_path(root, cwd, session_id)
    if path.exists():
        path.unlink()
    w = _Writer(root, cwd, session_id, branch)
    for user, assistant in turns:
        w.turn(user, assistant, tool)
    if title is not None:
        w.title(title, title_source)
    return w.flush()


def append_turn(root: Path, cwd: str, session_id: str, user: str, assistant: str, *, tool: bool = False,
                title: str | None = None, title_source: str | None = None) -> Path:
    """Append one more turn (and optionally a new title) to an existing session, as a resumed Qwen does."""
    w = _Writer(root, cwd, session_id)
    w.turn(user, assistant, tool)
    if title is not None:
        w.title(title, title_source)
    return w.flush()


def turn_bytes(root: Path, cwd: str, session_id: str, user: str, assistant: str, *, tool: bool = False) -> bytes:
    """What `append_turn` would append, without writing it (to write it in pieces)."""
    w = _Writer(root, cwd, session_id)
    w.turn(user, assistant, tool)
    return "".join(line + "\n" for line in w.lines).encode()


def rewind(root: Path, cwd: str, session_id: str, turn: int) -> Path:
    """`/rewind` to before user turn `turn` (0-based) of the visible branch: a `rewind` system record whose
    parent is the record before that turn; every later record stays in the file on a dead branch."""
    path = session_path(root, cwd, session_id)
    records = _records(path)
    by_uuid = {r["uuid"]: r for r in records}
    chain: list[dict] = []
    cur = _tail(records)
    while cur is not None and cur in by_uuid:
        chain.append(by_uuid[cur])
        cur = by_uuid[cur]["parentUuid"]
    chain.reverse()
    users = [r for r in chain if r["type"] == "user" and "subtype" not in r]
    w = _Writer(root, cwd, session_id)
    w.record("system", subtype="rewind", parent=users[turn]["parentUuid"], systemPayload={"truncatedCount": 4})
    return w.flush()
