"""GitHub Copilot CLI: `$COPILOT_HOME` (else `~/.copilot`) `/session-state/<id>/events.jsonl`.

Also the early flat layout `session-state/<id>.jsonl` (same events; when both exist for one id the
folder's `events.jsonl` wins). One append-only JSON event per line, `{type, data, id, timestamp,
parentId}`; resuming a session appends to the same file, so it is a log source. The session id is the
folder (or file) name.

Read:
- `session.start`: the cwd (`data.context.cwd`), the branch (`data.context.branch`) and the start
  (`data.startTime`, else the first event's `timestamp`); when no event carries a cwd, `workspace.yaml`
  `cwd` in the session folder (`fallback_cwd`; flat `key: value` YAML parsed by hand).
- `user.message`: `data.content`, the prompt as typed (never `transformedContent`, which wraps it in
  `<current_datetime>` / `<system_reminder>`).
- `assistant.message`: `reasoningText` (Reasoning), `content` (Text, when not empty) and `toolRequests`
  (ToolCall(name, arguments)).
- `tool.execution_complete`: ToolResult(`result.content`, else `error.message`; an error unless
  `success`), as a user-role message of tool results only (shown on the assistant side).

Dropped on purpose: every event of a sub-agent (`data.parentToolCallId`, or an `agentId` on the event or
its data: they are written inline in the same file, counted in `state.subagent`); user messages Copilot
sends on the user's behalf (`data.source` `system`, `skill-…`, `agent-…`); attachments; `system.message`
(the whole system prompt), `session.*` other than start (resume, shutdown, usage, model and mode
changes, compaction), `hook.*`, `subagent.*`, `skill.*`, `abort`, `assistant.turn_*`,
`assistant.reasoning` (ephemeral, often empty or encrypted), `tool.execution_start` (it repeats the
assistant's `toolRequests`). Any other type is counted in `state.unknown`.

Known corruption: two events glued on one line without a newline (often a truncated prefix of one
event followed by a whole one, after a resume). A line that does not decode is split where an event
starts (`{"type":`), each whole event is read and each piece that is not is counted in
`state.malformed`. `parse_line` can return one message per line: when a glued line yields several,
those of one kind are joined into one message, and any left over are counted in `state.glued_lost`.

The title is `workspace.yaml` `name`, read beside the log (`title_beside`); its mtime is part of the
session's version, so a rename reaches the thread.

Legacy sessions (Copilot < 0.0.342): `history-session-state/<id>.json`, one JSON document per session
(`{sessionId, startTime, chatMessages, timeline}`), rewritten whole: a snapshot shape (`shape_of`) of the
same session id. Copilot migrates one into `session-state/<id>/events.jsonl` only when it is resumed, so
both copies can exist: discovery lists the new copy, a legacy copy read while a new one exists reads as
empty (`state.shadowed`), and a session imported from its legacy file continues in the same thread once
migrated (the ledger key is the session id). A file that does not parse is read once more, then it is
`Incomplete` (retried later) when it was written in the last minute, else skipped and counted.
Read from `chatMessages` (OpenAI-style chat messages, in order): `user` text (string or `text` parts;
the `<current_datetime>` / `<system_reminder>` / `<reminder>` blocks Copilot wraps the prompt in are
cut), `image_url` parts (Image), `assistant` `content` and `tool_calls[].function` (ToolCall(name,
arguments)), `tool` messages as a ToolResult. The file has no cwd: it is the `Current working directory:`
line of the system prompt's `<environment_context>` (Copilot CLI's prompt states it), else none (the
session is skipped, as any session without a cwd). The start is `startTime`; messages carry no time.
Dropped on purpose: `system` messages (the whole system prompt), the `timeline` (the UI's copy of the
same conversation: `user`, `copilot`, `tool_call_completed`, `info` entries). Other roles and part
types are counted in `state.unknown`; no title is recorded (the thread is named from the first prompt).
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one again when
# a decoder of these Structs is built, at the start of every command (~0.05 ms a decoder).

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.codex.notes import shows_anything
from daemon.codex.text import trim
from daemon.sources.base import (Identity, ParseContext, Snapshot, SourceState, Version, WatchSpec, read_rewritten,
                                 rfc3339_ms, stat_version)
from daemon.transcript import Image, Message, Part, Reasoning, Text, ToolCall, ToolResult, only_tool_results

EVENTS = "events.jsonl"
STATE_DIR = "session-state"
WORKSPACE = "workspace.yaml"
LEGACY_DIR = "history-session-state"
MAX_GLUED = 64  # `{"type":` positions tried when splitting a glued line (bounds the work on a hostile line)
_EVENT_START = b'{"type":'
_SKIPPED = frozenset({"system.message", "assistant.turn_start", "assistant.turn_end", "assistant.reasoning",
                      "tool.execution_start", "abort"})
_SKIPPED_PREFIXES = ("session.", "hook.", "subagent.", "skill.")
_NOT_TYPED_SOURCES = ("skill-", "agent-")  # user messages a skill or another agent sent as the user's


class CopilotState(SourceState, kw_only=True):
    subagent: int = 0  # sub-agent events kept out of the main turns
    glued: int = 0  # lines that held events glued together without a newline (split and read)
    glued_lost: int = 0  # messages of a glued line beyond the one parse_line can return
    shadowed: bool = False  # a legacy copy of a session whose events.jsonl exists (read as empty: the log wins)


class Data(msgspec.Struct):
    """The `data` fields we read, typed `Any`: a wrong type in one must not cost the event."""

    content: Any = None
    toolRequests: Any = None
    reasoningText: Any = None
    parentToolCallId: Any = None
    agentId: Any = None
    source: Any = None
    success: Any = None
    result: Any = None
    error: Any = None
    context: Any = None
    startTime: Any = None


class Event(msgspec.Struct):
    type: Any = None
    data: Data | None = None
    timestamp: Any = None
    agentId: Any = None


_decode = msgspec.json.Decoder(Event).decode
_decode_any = msgspec.json.Decoder().decode


def _decodes(buf: bytes | memoryview) -> Event | None:
    try:
        return _decode(buf)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nesting past the limit
        return None


def decode_events(line: bytes | memoryview) -> tuple[list[Event], int]:
    """The events on one line and the number of pieces that were not an event.

    Normally one event. A line that does not decode may hold several glued together: it is cut where
    an event starts (`{"type":`, which cannot occur inside a JSON string, whose quotes are escaped) and
    each piece read whole; a `{"type":` inside an event (a nested object) is not a cut because the
    piece before it does not decode. Consecutive pieces that do not decode count once.
    """
    ev = _decodes(line)
    if ev is not None:
        return [ev], 0
    buf = bytes(line)
    starts: list[int] = []
    i = buf.find(_EVENT_START, 1)
    while i >= 0 and len(starts) < MAX_GLUED:
        starts.append(i)
        i = buf.find(_EVENT_START, i + 1)
    if not starts:
        return [], 1
    events: list[Event] = []
    bad, in_bad, pos, n = 0, False, 0, len(buf)
    while pos < n:
        later = [s for s in starts if s > pos]
        for end in (*later, n):
            ev = _decodes(buf[pos:end])
            if ev is not None:
                events.append(ev)
                pos, in_bad = end, False
                break
        else:
            if not in_bad:
                bad, in_bad = bad + 1, True
            if not later:
                break
            pos = later[0]
    return events, bad


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _arguments(value: object) -> object:
    """Tool arguments as decoded JSON: an object as recorded, or a JSON text of one decoded (strictly, as
    msgspec decodes the line: `json.loads` would let a lone surrogate escape through to the renderer)."""
    if isinstance(value, str):
        try:
            decoded = _decode_any(value)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return value
        return decoded if isinstance(decoded, dict) else value
    return value


def _tool_calls(requests: object) -> list[Part]:
    if not isinstance(requests, list):
        return []
    calls: list[Part] = []
    for req in requests:
        if not isinstance(req, dict):
            continue
        name = req.get("name")
        calls.append(ToolCall(name if isinstance(name, str) else None,
                              _arguments(req["arguments"]) if "arguments" in req else msgspec.UNSET))
    return calls


def _tool_result(data: Data) -> ToolResult:
    result, error = data.result, data.error
    output = ""
    if isinstance(result, dict) and isinstance(result.get("content"), str):
        output = result["content"]
    elif isinstance(result, str):
        output = result
    elif isinstance(error, dict) and isinstance(error.get("message"), str):
        output = error["message"]
    elif isinstance(error, str):
        output = error
    if data.success is True:
        is_error = False
    elif data.success is False:
        is_error = True
    else:
        is_error = error is not None and result is None
    return ToolResult(output, is_error)


def _typed_by_user(source: object) -> bool:
    if not isinstance(source, str):
        return True
    return source != "system" and not source.startswith(_NOT_TYPED_SOURCES)


def event_message(state: CopilotState, ev: Event) -> Message | None:
    """One decoded event → a message of the main conversation or nothing, learning the session state."""
    ts = rfc3339_ms(ev.timestamp)
    kind, data = ev.type, ev.data
    if kind == "session.start" and data is not None:
        ctx = data.context if isinstance(data.context, dict) else {}
        cwd, branch = ctx.get("cwd"), ctx.get("branch")
        if state.cwd is None and _nonempty_str(cwd):
            state.cwd = cwd
        if state.git_branch is None and _nonempty_str(branch) and branch != "HEAD":
            state.git_branch = branch
        if state.start_ms is None:
            state.start_ms = rfc3339_ms(data.startTime)
    if state.start_ms is None and ts is not None:
        state.start_ms = ts
    if _nonempty_str(ev.agentId) or data is not None and (_nonempty_str(data.agentId)
                                                           or _nonempty_str(data.parentToolCallId)):
        state.subagent += 1
        return None
    if kind == "user.message":
        if data is None or not _typed_by_user(data.source) or not isinstance(data.content, str):
            return None
        if not trim(data.content):
            return None
        return Message("user", (Text(data.content),), ts)
    if kind == "assistant.message":
        if data is None:
            return None
        parts: list[Part] = []
        if _nonempty_str(data.reasoningText):
            parts.append(Reasoning(data.reasoningText))
        if _nonempty_str(data.content):
            parts.append(Text(data.content))
        parts.extend(_tool_calls(data.toolRequests))
        out = tuple(parts)
        return Message("assistant", out, ts) if shows_anything(out) else None
    if kind == "tool.execution_complete":
        if data is None:
            return None
        return Message("user", (_tool_result(data),), ts)
    if isinstance(kind, str) and (kind in _SKIPPED or kind.startswith(_SKIPPED_PREFIXES)):
        return None
    state.unknown += 1
    return None


def line_messages(state: CopilotState, line: bytes | memoryview) -> list[Message]:
    """Every message on one line (several only when events were glued together)."""
    events, bad = decode_events(line)
    state.malformed += bad
    if len(events) > 1 or events and bad:
        state.glued += 1
    return [m for ev in events if (m := event_message(state, ev)) is not None]


def _side(m: Message) -> tuple[str, bool]:
    return m.role, only_tool_results(m.parts)


def one_message(state: CopilotState, messages: list[Message]) -> Message | None:
    """The one message parse_line may return: messages of one kind joined, the rest counted as lost."""
    if not messages:
        return None
    first = messages[0]
    if len(messages) == 1:
        return first
    same = [m for m in messages if _side(m) == _side(first)]
    state.glued_lost += len(messages) - len(same)
    return Message(first.role, tuple(p for m in same for p in m.parts), first.ts_ms)


def workspace_value(text: str, key: str) -> str | None:
    """A top-level scalar `key: value` of flat YAML (plain, 'single' or "double" quoted), or None.

    Block scalars (`|`, `>`), nested values, `~`/`null` and empty values are None; a plain value ends
    at ` #` (a comment).
    """
    prefix = key + ":"
    for raw in text.splitlines():
        if not raw.startswith(prefix):
            continue
        rest = raw[len(prefix):]
        if rest and rest[0] not in " \t":
            continue  # `keyx:` or `key:value` is another key / not a mapping entry
        value = rest.strip()
        if not value or value[0] in "|>&*!{[":
            return None
        if value[0] == '"':
            end = _closing_quote(value)
            if end < 0:
                return None
            import json  # here: `status` and a no-op import never need it (start-up time)

            try:
                decoded = json.loads(value[: end + 1])
            except ValueError:
                decoded = value[1:end]
            return decoded if isinstance(decoded, str) and decoded else None
        if value[0] == "'":
            end = value.find("'", 1)
            while end >= 0 and value[end + 1: end + 2] == "'":
                end = value.find("'", end + 2)
            if end < 0:
                return None
            return value[1:end].replace("''", "'") or None
        hash_at = value.find(" #")
        if hash_at >= 0:
            value = value[:hash_at].rstrip()
        return None if value in ("~", "null", "Null", "NULL") else value or None
    return None


def _closing_quote(value: str) -> int:
    i = 1
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == '"':
            return i
        i += 1
    return -1


def session_folder(ident: Identity) -> Path:
    """The folder beside the log that holds `workspace.yaml` (for a flat `<id>.jsonl`, `<id>/`)."""
    return ident.path.parent if ident.path.name == EVENTS else ident.path.parent / ident.session_id


# -- legacy sessions: history-session-state/<id>.json ----------------------------------------------------

class LegacySession(msgspec.Struct):
    """The fields of a legacy session document we read, typed `Any` (a wrong type must not cost the file)."""

    startTime: Any = None
    chatMessages: Any = None


_decode_legacy = msgspec.json.Decoder(LegacySession).decode
_WRAPPER_TAGS = ("current_datetime", "system_reminder", "reminder")
_LEADING_WRAPPER = re.compile(r"\s*<(current_datetime|system_reminder|reminder)>(?:(?!</?\1>).)*</\1>\s*", re.S)
_CWD_LINE = re.compile(r"^\s*\*?\s*Current working directory:[ \t]*(\S[^\n]*?)[ \t]*$", re.M)


def typed_text(text: str) -> str:
    """The prompt as typed: the datetime and reminder blocks Copilot wraps it in, at either end, cut
    (verbatim otherwise). Linear: the leading block is matched at the start only, the trailing one found
    from the end."""
    while True:
        m = _LEADING_WRAPPER.match(text)
        cut = text[m.end():] if m is not None else text
        tail = cut.rstrip()
        for tag in _WRAPPER_TAGS:
            opening, close = f"<{tag}>", f"</{tag}>"
            start = tail.rfind(opening) if tail.endswith(close) else -1
            if start >= 0 and tail.find(close, start) == len(tail) - len(close):
                cut = tail[:start].rstrip()
                break
        if cut == text:
            return text
        text = cut


def system_cwd(content: object) -> str | None:
    """The `Current working directory:` Copilot CLI's system prompt states (`<environment_context>`)."""
    for text in _texts(content):
        m = _CWD_LINE.search(text)
        if m is not None and os.path.isabs(m.group(1)):
            return m.group(1)
    return None


def _texts(content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def _image(part: dict) -> Image:
    url = part.get("image_url")
    url = url.get("url") if isinstance(url, dict) else url
    if isinstance(url, str) and url.startswith("data:image/"):
        return Image(url[5:].split(";", 1)[0].split(",", 1)[0])
    return Image()


def content_parts(state: CopilotState, content: object, *, user: bool) -> list[Part]:
    """OpenAI-style `content` (a string, or a list of `text` / `image_url` parts) → parts."""
    if isinstance(content, str):
        text = typed_text(content) if user else content
        return [Text(text)] if trim(text) else []
    parts: list[Part] = []
    for p in content if isinstance(content, list) else ():
        kind = p.get("type") if isinstance(p, dict) else None
        if kind == "text" and isinstance(p.get("text"), str):
            text = typed_text(p["text"]) if user else p["text"]
            if trim(text):
                parts.append(Text(text))
        elif kind == "image_url":
            parts.append(_image(p))
        else:
            state.unknown += 1
    return parts


def legacy_message(state: CopilotState, msg: object) -> Message | None:
    """One chat message → a message of the conversation, or nothing (the system prompt gives the cwd)."""
    if not isinstance(msg, dict):
        state.malformed += 1
        return None
    role, content = msg.get("role"), msg.get("content")
    if role == "system":
        if state.cwd is None:
            state.cwd = system_cwd(content)
        return None
    if role == "user":
        parts = content_parts(state, content, user=True)
        return Message("user", tuple(parts)) if shows_anything(tuple(parts)) else None
    if role == "assistant":
        parts = content_parts(state, content, user=False)
        for call in msg.get("tool_calls") or () if isinstance(msg.get("tool_calls"), list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict):
                state.malformed += 1
                continue
            name = fn.get("name")
            parts.append(ToolCall(name if isinstance(name, str) else None,
                                  _arguments(fn["arguments"]) if "arguments" in fn else msgspec.UNSET))
        out = tuple(parts)
        return Message("assistant", out) if shows_anything(out) else None
    if role == "tool":
        return Message("user", (ToolResult("\n".join(_texts(content))),))
    state.unknown += 1
    return None


def parse_legacy(data: bytes) -> tuple[CopilotState, list[Message]] | None:
    """A legacy session document → its state and messages; None when the bytes are not (yet) one JSON
    document (the caller retries). Pure."""
    state = CopilotState()
    try:
        doc = _decode_legacy(data)
    except msgspec.ValidationError:  # whole JSON, but not an object
        state.malformed += 1
        return state, []
    except msgspec.DecodeError:
        return None
    except RecursionError:  # whole, but nested past the limit: nothing to read, never "retry later"
        state.malformed += 1
        return state, []
    state.start_ms = rfc3339_ms(doc.startTime)
    chat = doc.chatMessages if isinstance(doc.chatMessages, list) else []
    messages = [m for msg in chat if (m := legacy_message(state, msg)) is not None]
    return state, messages


def is_legacy(ident: Identity) -> bool:
    return ident.path.parent.name == LEGACY_DIR and ident.path.suffix == ".json"


def _new_copy_exists(copilot_root: Path, session_id: str) -> bool:
    state_dir = copilot_root / STATE_DIR
    return (state_dir / session_id / EVENTS).is_file() or (state_dir / f"{session_id}.jsonl").is_file()


class CopilotSource:
    kind = "copilot"
    shape: Literal["log"] = "log"
    state_type = CopilotState
    # `.json`: the legacy files (history-session-state/<id>.json, one folder down); identify() takes no other
    watch = WatchSpec(suffixes=(".jsonl", ".json"), depth=2, names=(WORKSPACE,))

    def discover(self, root: Path) -> Iterator[Identity]:
        state_dir = root / STATE_DIR
        try:
            entries = sorted(state_dir.iterdir())
        except OSError:
            return
        folders: set[str] = set()
        flat: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            events = entry / EVENTS
            if entry.is_dir():
                if events.is_file():
                    folders.add(entry.name)
                    yield Identity(self.kind, entry.name, events)
            elif entry.suffix == ".jsonl" and entry.is_file():
                flat.append(entry)
        for path in flat:
            if path.stem not in folders:  # one session id once: the folder's events.jsonl wins
                folders.add(path.stem)
                yield Identity(self.kind, path.stem, path)
        try:
            legacy = sorted((root / LEGACY_DIR).iterdir())
        except OSError:
            return
        for path in legacy:
            if (path.suffix == ".json" and not path.name.startswith(".") and path.stem not in folders
                    and path.is_file()):  # a migrated session: its new copy wins
                yield Identity(self.kind, path.stem, path)

    def identify(self, root: Path, path: Path) -> Identity | None:
        state_dir = root / STATE_DIR
        if path.name == EVENTS and path.parent.parent == state_dir and not path.parent.name.startswith("."):
            return Identity(self.kind, path.parent.name, path)
        if path.suffix == ".jsonl" and path.parent == state_dir and not path.name.startswith("."):
            if (state_dir / path.stem / EVENTS).is_file():
                return None  # the same session's folder wins, as in discover
            return Identity(self.kind, path.stem, path)
        if path.name == WORKSPACE and path.parent.parent == state_dir and not path.parent.name.startswith("."):
            return Identity(self.kind, path.parent.name, path.parent / EVENTS)  # a rename: its session's title
        if path.suffix == ".json" and path.parent == root / LEGACY_DIR and not path.name.startswith("."):
            return Identity(self.kind, path.stem, path)
        return None

    def shape_of(self, ident: Identity) -> Literal["log", "snapshot"]:
        """A legacy file is a snapshot (rewritten whole); every other session a log."""
        return "snapshot" if is_legacy(ident) else "log"

    def version(self, ident: Identity) -> Version:
        if is_legacy(ident):
            return stat_version(ident.path)
        v = stat_version(ident.path)
        return Version(v.size, max(v.mtime_ns, self.beside_mtime_ns(ident)), v.inode, v.ctime_ns)

    def beside_mtime_ns(self, ident: Identity) -> int:
        """workspace.yaml's mtime: renaming a session (its `name`) is a change of the session."""
        if is_legacy(ident):
            return 0
        try:
            return os.stat(session_folder(ident) / WORKSPACE).st_mtime_ns
        except OSError:
            return 0

    def title_beside(self, ident: Identity) -> str | None:
        """`workspace.yaml` `name`: Copilot's title for the session (auto-named from the first prompt, or
        the user's own when `user_named`)."""
        if is_legacy(ident):
            return None
        try:
            text = (session_folder(ident) / WORKSPACE).read_text("utf-8", "replace")
        except (OSError, ValueError):
            return None
        name = workspace_value(text, "name")
        return name.strip() or None if name else None

    def fallback_cwd(self, ident: Identity) -> str | None:
        if is_legacy(ident):
            return None  # read_snapshot already took the system prompt's; nothing else records one
        try:
            text = (session_folder(ident) / WORKSPACE).read_text("utf-8", "replace")
        except (OSError, ValueError):
            return None
        cwd = workspace_value(text, "cwd")
        return cwd if cwd and os.path.isabs(cwd) else None

    def parse_line(self, state: CopilotState, line: bytes, ctx: ParseContext) -> Message | None:  # type: ignore[override]
        return one_message(state, line_messages(state, line))

    def read_snapshot(self, ident: Identity, ctx: ParseContext) -> Snapshot:
        """A legacy session file, read whole (empty when its migrated copy exists: that one is the session)."""
        import blake3  # only a sync reads: `status` and a no-op import never load it

        path = ident.path
        if _new_copy_exists(path.parent.parent, ident.session_id):
            return Snapshot(state=CopilotState(shadowed=True), messages=[], digest=blake3.blake3().digest())
        data, parsed = read_rewritten(path, parse_legacy, " is not whole JSON (Copilot rewrites it in place)")
        state, messages = parsed if parsed is not None else (CopilotState(malformed=1), [])
        return Snapshot(state=state, messages=messages, digest=blake3.blake3(data).digest())


SOURCE = CopilotSource()
