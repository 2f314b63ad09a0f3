"""A small Gemini CLI session writer, for tests that grow sessions live.

Writes `ROOT/tmp/<slug>/chats/session-<minute>-<first 8 of id>.jsonl` the way Gemini CLI ≥ 0.39 does
(a metadata line, then each message appended as one `JSON.stringify` line; a message that changes is
appended again whole under its id; `$set` lines for `lastUpdated` and `summary`; a tool result recorded
on the call and again as a functionResponse-only user message), plus `tmp/<slug>/.project_root` and
`projects.json`. With `legacy=True` it writes the pre-0.39 form instead: `tmp/<sha256(cwd)>/chats/
session-….json`, one pretty-printed document rewritten in place (not atomically) on every change.
ROOT is the Gemini root (`$GEMINI_CLI_HOME/.gemini`, `~/.gemini`). Deterministic: ids and timestamps
follow from the session id and the number of messages already written. Standard library only.

    path = write_session(root, cwd, session_id, [("fix the bug", "Fixed."), ...], summary="Fix the bug")
    append_turn(path, "and the tests", "Done.", tool=("run_shell_command", {"command": "npm test"}, "ok"))
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

START = datetime(2026, 5, 2, 10, 0, 1, 120000, tzinfo=timezone.utc)
MODEL = "gemini-2.5-pro"
Turn = tuple  # (user, assistant) or (user, assistant, (tool name, args, output))


def _ts(i: int) -> str:
    return (START + timedelta(seconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _line(rec: object) -> str:
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n"


def slugify(cwd: str) -> str:
    return re.sub(r"^-|-$", "", re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", os.path.basename(cwd).lower()))) \
        or "project"


def project_hash(cwd: str) -> str:
    return hashlib.sha256(cwd.encode()).hexdigest()


def project_dir(root: Path, cwd: str, *, legacy: bool = False) -> Path:
    """`tmp/<sha256>` (legacy) or `tmp/<slug>` with its `.project_root` and `projects.json` entry."""
    root = Path(root)
    if legacy:
        d = root / "tmp" / project_hash(cwd)
        d.mkdir(parents=True, exist_ok=True)
        return d
    slug = slugify(cwd)
    d = root / "tmp" / slug
    d.mkdir(parents=True, exist_ok=True)
    (d / ".project_root").write_text(cwd)
    reg = root / "projects.json"
    data = json.loads(reg.read_text()) if reg.exists() else {"projects": {}}
    data["projects"][cwd] = slug
    tmp = reg.with_name("projects.json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.rename(reg)
    return d


class _Session:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.legacy = path.suffix == ".json"
        if self.legacy:
            self.doc = json.loads(path.read_text())
            self.session_id = self.doc["sessionId"]
            self.n = len(self.doc["messages"])
        else:
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            self.session_id = lines[0]["sessionId"]
            self.n = len({r["id"] for r in lines if isinstance(r.get("id"), str)})
        self.out: list[str] = []

    def _mid(self) -> str:
        self.n += 1
        return f"{self.session_id[:8]}-m{self.n:04d}"

    def message(self, rec: dict) -> None:
        if self.legacy:
            msgs = self.doc["messages"]
            for i, m in enumerate(msgs):
                if m["id"] == rec["id"]:
                    msgs[i] = rec
                    break
            else:
                msgs.append(rec)
            self.doc["lastUpdated"] = rec["timestamp"]
        else:
            self.out.append(_line(rec))
            self.out.append(_line({"$set": {"lastUpdated": rec["timestamp"]}}))

    def turn(self, user: str, assistant: str, tool: tuple | None) -> None:
        mid = self._mid()
        self.message({"id": mid, "timestamp": _ts(self.n), "type": "user", "content": [{"text": user}]})
        mid = self._mid()
        ts = _ts(self.n)
        msg = {"id": mid, "timestamp": ts, "type": "gemini", "content": assistant,
               "thoughts": [{"subject": "Thinking", "description": "Planning the answer.", "timestamp": ts}],
               "tokens": None, "model": MODEL}
        self.message(dict(msg))
        if tool is not None:
            name, args, output = tool
            call_id = f"{name}-{self.n}"
            response = [{"functionResponse": {"id": call_id, "name": name, "response": {"output": output}}}]
            msg["toolCalls"] = [{"id": call_id, "name": name, "args": args, "result": response,
                                 "status": "success", "timestamp": ts, "displayName": name,
                                 "description": "", "renderOutputAsMarkdown": False}]
            msg["tokens"] = {"input": 10, "output": 5, "cached": 0, "thoughts": 1, "tool": 0, "total": 16}
            self.message(dict(msg))  # the same id again, now with its tool call
            if not self.legacy:
                self.message({"id": self._mid(), "timestamp": _ts(self.n), "type": "user", "content": response})

    def summary(self, text: str) -> None:
        if self.legacy:
            self.doc["summary"] = text
        else:
            self.out.append(_line({"$set": {"summary": text}}))

    def flush(self) -> None:
        if self.legacy:
            with open(self.path, "w", encoding="utf-8") as f:  # in place, like writeFileSync
                f.write(json.dumps(self.doc, ensure_ascii=False, indent=2))
        else:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(self.out))
            self.out = []


def write_session(root: Path, cwd: str, session_id: str, turns: list[Turn], *, legacy: bool = False,
                  summary: str | None = None) -> Path:
    """A new session with `turns`; returns its file."""
    chats = project_dir(root, cwd, legacy=legacy) / "chats"
    chats.mkdir(parents=True, exist_ok=True)
    name = f"session-{START:%Y-%m-%dT%H-%M}-{session_id[:8]}"
    meta = {"sessionId": session_id, "projectHash": project_hash(cwd), "startTime": _ts(0), "lastUpdated": _ts(0)}
    if legacy:
        path = chats / f"{name}.json"
        path.write_text(json.dumps({**meta, "messages": []}, indent=2))
    else:
        path = chats / f"{name}.jsonl"
        path.write_text(_line(meta))
    s = _Session(path)
    for t in turns:
        s.turn(t[0], t[1], t[2] if len(t) > 2 else None)
    if summary is not None:
        s.summary(summary)
    s.flush()
    return path


def append_turn(path: Path, user: str, assistant: str, *, tool: tuple | None = None,
                summary: str | None = None) -> None:
    """One more exchange: appended lines (`.jsonl`) or the whole document rewritten in place (`.json`)."""
    s = _Session(Path(path))
    s.turn(user, assistant, tool)
    if summary is not None:
        s.summary(summary)
    s.flush()


def turn_bytes(path: Path, user: str, assistant: str, *, tool: tuple | None = None,
               summary: str | None = None) -> bytes:
    """What `append_turn` would append to a `.jsonl`, without writing it (to write it in pieces)."""
    s = _Session(Path(path))
    assert not s.legacy, "a legacy .json is rewritten whole, never appended to"
    s.turn(user, assistant, tool)
    if summary is not None:
        s.summary(summary)
    return "".join(s.out).encode()


def rewind(path: Path, message_id: str) -> None:
    """`/rewind` in a `.jsonl`: that message and everything after it are gone."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(_line({"$rewindTo": message_id}))
