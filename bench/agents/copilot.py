"""A small GitHub Copilot CLI session writer, for tests that grow sessions live.

Writes `ROOT/session-state/<id>/events.jsonl` and `workspace.yaml` the way Copilot CLI 1.0.x does
(one event per line: `{type, data, id, timestamp, parentId}`, session.start with `context.cwd`, the
system prompt, user/assistant messages, tool requests with their execution events, turn markers,
session.shutdown). ROOT is the Copilot home (`$COPILOT_HOME`, `~/.copilot`). Deterministic: ids and
timestamps follow from the session id and the number of events already written. Standard library only.

    write_session(root, cwd, session_id, [("fix the bug", "Fixed."), ...], title="Fix the bug")
    append_turn(root, session_id, "and the tests", "Done.", resume=True)

And the legacy single-object file of Copilot < 0.0.342, `ROOT/history-session-state/<id>.json`
(`{sessionId, startTime, chatMessages, timeline}`, rewritten whole on every change; the cwd only in the
system prompt's `<environment_context>`):

    write_legacy_session(root, cwd, session_id, [("fix the bug", "Fixed."), ...])
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

START = datetime(2026, 8, 5, 20, 40, 13, 471000, tzinfo=timezone.utc)
VERSION = "1.0.78"


def _ts(i: int) -> str:
    return (START + timedelta(seconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id(session_id: str, i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"copilot:{session_id}:{i}"))


def events_path(root: Path, session_id: str) -> Path:
    return Path(root) / "session-state" / session_id / "events.jsonl"


class _Writer:
    def __init__(self, path: Path, session_id: str) -> None:
        self.path, self.session_id = path, session_id
        self.n = len(path.read_bytes().splitlines()) if path.exists() else 0
        self.lines: list[str] = []

    def event(self, kind: str, data: dict) -> None:
        i = self.n
        rec = {"type": kind, "data": data, "id": _id(self.session_id, i), "timestamp": _ts(i),
               "parentId": _id(self.session_id, i - 1) if i else None}
        self.lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
        self.n += 1

    def turn(self, user: str, assistant: str, tool: bool) -> None:
        turn = str(self.n)
        self.event("user.message", {"content": user,
                                    "transformedContent": f"<current_datetime>{_ts(self.n)}</current_datetime>"
                                                          f"\n\n{user}\n\n<system_reminder>x</system_reminder>",
                                    "attachments": [], "interactionId": _id(self.session_id, -self.n)})
        self.event("assistant.turn_start", {"turnId": turn})
        if tool:
            call = f"call_{self.n}"
            self.event("assistant.message", {"messageId": _id(self.session_id, -self.n), "model": "gpt-5",
                                             "content": "", "reasoningText": "Look first.", "turnId": turn,
                                             "toolRequests": [{"toolCallId": call, "name": "bash",
                                                               "arguments": {"command": "ls",
                                                                             "description": "List files"},
                                                               "type": "function"}]})
            self.event("tool.execution_start", {"toolCallId": call, "toolName": "bash",
                                                "arguments": {"command": "ls"}, "turnId": turn})
            self.event("tool.execution_complete", {"toolCallId": call, "success": True,
                                                   "result": {"content": "README.md\nsrc",
                                                              "detailedContent": "README.md\nsrc"},
                                                   "turnId": turn, "toolTelemetry": {}})
        self.event("assistant.message", {"messageId": _id(self.session_id, -self.n), "model": "gpt-5",
                                         "content": assistant, "toolRequests": [], "turnId": turn,
                                         "outputTokens": 12})
        self.event("assistant.turn_end", {"turnId": turn})

    def flush(self) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in self.lines))
        self.lines = []


def write_workspace(root: Path, session_id: str, cwd: str, title: str | None) -> None:
    folder = Path(root) / "session-state" / session_id
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"id: {session_id}", f"cwd: {cwd}", f"git_root: {cwd}", "branch: main", "client_name: github/cli"]
    if title is not None:
        lines.append(f"name: {json.dumps(title, ensure_ascii=False)}")
    lines += ["user_named: false", "summary_count: 0", f"created_at: {_ts(0)}", f"updated_at: {_ts(1)}"]
    (folder / "workspace.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_session(root: Path, cwd: str, session_id: str, turns: list[tuple[str, str]], *,
                  title: str | None = None, tools: bool = True, shutdown: bool = True) -> Path:
    """A new session with `turns` (user text, assistant text); the first turn of each uses a tool."""
    path = events_path(root, session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    write_workspace(root, session_id, cwd, title)
    w = _Writer(path, session_id)
    w.event("session.start", {"sessionId": session_id, "version": 1, "producer": "copilot-agent",
                              "copilotVersion": VERSION, "startTime": _ts(0),
                              "context": {"cwd": cwd, "gitRoot": cwd, "branch": "main"}})
    w.event("session.model_change", {"newModel": "gpt-5"})
    w.event("system.message", {"role": "system", "content": "You are the GitHub Copilot CLI."})
    for k, (user, assistant) in enumerate(turns):
        w.turn(user, assistant, tools and k == 0)
    if shutdown:
        w.event("session.shutdown", {"shutdownType": "routine", "modelMetrics": {}})
    w.flush()
    return path


def append_turn(root: Path, session_id: str, user: str, assistant: str, *, resume: bool = False,
                tool: bool = False) -> Path:
    """One more turn at the end of the session's events.jsonl (after a session.resume if `resume`)."""
    path = events_path(root, session_id)
    w = _Writer(path, session_id)
    if resume:
        w.event("session.resume", {"resumeTime": _ts(w.n), "eventCount": w.n})
    w.turn(user, assistant, tool)
    w.flush()
    return path


def turn_bytes(root: Path, session_id: str, user: str, assistant: str, *, resume: bool = False,
               tool: bool = False) -> bytes:
    """What `append_turn` would append, without writing it (to write it in pieces)."""
    w = _Writer(events_path(root, session_id), session_id)
    if resume:
        w.event("session.resume", {"resumeTime": _ts(w.n), "eventCount": w.n})
    w.turn(user, assistant, tool)
    return "".join(line + "\n" for line in w.lines).encode()


def legacy_path(root: Path, session_id: str) -> Path:
    return Path(root) / "history-session-state" / f"{session_id}.json"


def legacy_document(cwd: str, session_id: str, turns: list[tuple[str, str]], *, tools: bool = True) -> dict:
    """A legacy session: OpenAI-style `chatMessages` (the system prompt stating the cwd, each prompt wrapped
    in `<current_datetime>`, the first turn running a tool) and the UI's `timeline` of the same turns."""
    chat: list[dict] = [{"role": "system", "content": (
        "You are the GitHub Copilot CLI, a terminal assistant built by GitHub.\n\n<environment_context>\n"
        "You are working in the following environment. You do not need to make additional tool calls to "
        f"verify this.\n* Current working directory: {cwd}\n* Git repository root: {cwd}\n"
        "* Operating System: Linux\n</environment_context>")}]
    timeline: list[dict] = []
    n = 0
    for k, (user, assistant) in enumerate(turns):
        chat.append({"role": "user", "content": f"<current_datetime>{_ts(n)}</current_datetime>\n\n{user}"})
        timeline.append({"id": _id(session_id, n), "timestamp": _ts(n), "type": "user", "text": user})
        n += 1
        if tools and k == 0:
            call = f"call_{n}"
            chat.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": call, "type": "function",
                "function": {"name": "bash",
                             "arguments": json.dumps({"command": "ls", "description": "List files"})}}]})
            chat.append({"role": "tool", "tool_call_id": call, "content": "README.md\nsrc"})
            timeline.append({"id": _id(session_id, n), "timestamp": _ts(n), "type": "tool_call_completed",
                             "callId": call, "toolTitle": "bash", "arguments": {"command": "ls"},
                             "result": {"type": "success", "log": "README.md\nsrc"}})
            n += 1
        chat.append({"role": "assistant", "content": assistant})
        timeline.append({"id": _id(session_id, n), "timestamp": _ts(n), "type": "copilot", "text": assistant})
        n += 1
    return {"sessionId": session_id, "startTime": _ts(0), "chatMessages": chat, "timeline": timeline}


def write_legacy_session(root: Path, cwd: str, session_id: str, turns: list[tuple[str, str]], *,
                         tools: bool = True) -> Path:
    """The whole legacy file, rewritten in place (not atomically), as Copilot < 0.0.342 did on each change."""
    path = legacy_path(root, session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(legacy_document(cwd, session_id, turns, tools=tools), ensure_ascii=False, indent=2),
                    encoding="utf-8")
    return path
