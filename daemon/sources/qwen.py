"""Qwen Code: `<runtime>/projects/<sanitized-cwd>/chats/<sessionId>.jsonl` (and `chats/archive/`).

`<runtime>` is `$QWEN_RUNTIME_DIR`, else `$QWEN_HOME`, else `~/.qwen` (Qwen Code's
`Storage.getRuntimeBaseDir`; a runtime dir set only in Qwen's settings.json is not followed: pass
`--qwen-root`). Session files are named by their id (32-36 hex digits and dashes, as Qwen's own
`SESSION_FILE_PATTERN`); anything else in `chats/` is not a session. Archived sessions (`chats/archive/`,
Qwen's "hide from the resume picker") are still the user's sessions and are imported; when one id is in
both folders the active copy wins.

Each line is a `ChatRecord` (`packages/core/src/services/chatRecordingService.ts`): `{uuid, parentUuid,
sessionId, timestamp, type: user|assistant|tool_result|system, subtype?, cwd, gitBranch?, message?:
Gemini Content {role, parts[]}, toolCallResult?, systemPayload?, isSidechain?}`. The file is a tree:
`/rewind` re-roots `parentUuid` and leaves the abandoned turns in the file, so the visible conversation
is rebuilt as Qwen rebuilds it (`utils/transcript-records.ts`): from the last conversation record (any
record but session-artifact / sources-snapshot / managed-log wrappers; here also not a sidechain one)
walk `parentUuid` back to the root, stopping at a missing parent or a cycle; records sharing a uuid are
fragments of one (their parts concatenated). That is why this is a **snapshot** source: a new line can
move the leaf onto another branch, so the file is read whole each time its stat changes — O(file size)
per change, bounded by the debounce — and the engine still appends when the new reading starts with what
it wrote.

Kept: user turns (`text` parts; Qwen's `systemPayload.displayText` — what the user typed, before
hook context — replaces the model-facing text when Qwen itself would show it), mid-turn and realtime
user/assistant messages, assistant `text` parts (`thought: true` parts become Reasoning, dropped from the
thread), `functionCall` parts → tool calls, `functionResponse` parts (in `tool_result` records) → tool
results (`response.output`, else `.content`, else `.error` as an error, else the response as JSON),
images (`inlineData`/`fileData` image/*) and other binary or code parts as unsupported-block notes.
Title: the last `system`/`custom_title` record in the file (on any branch, as Qwen's session picker reads
it): `titleSource: auto` is an AI title, anything else the user's. cwd: the first record's; branch: the
last `gitBranch` seen; start: the first timestamp in the file (stable across rewinds).
Dropped on purpose: dead branches, sidechain (subagent) records, notification / cron / goal-runtime
user records (Qwen shows them as info lines, not user turns), every other `system` record (telemetry,
slash commands, compression checkpoints, attribution, rewind markers, ...), usage and model metadata,
the UI's `resultDisplay`. Unknown record types and subtypes are counted in `state.unknown` (they still
link the tree); lines that are not a record with a uuid, a parent and a session id in `state.malformed`.
An unterminated last line is the writer mid-append: it is read if it is already whole JSON, else left
for the next read.
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one again when
# a decoder of these Structs is built, at the start of every command (~0.05 ms a decoder).

import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.codex.notes import compact_json, shows_anything
from daemon.codex.text import trim
from daemon.sources.base import (Identity, OneFile, ParseContext, Snapshot, SourceState, WatchSpec, project_dirs,
                                 rfc3339_ms)
from daemon.transcript import (Image, Message, Part, Reasoning, Role, Text, ToolCall, ToolResult, Unsupported,
                               only_tool_results)

SESSION_NAME = re.compile(r"[0-9a-fA-F-]{32,36}\.jsonl")

RECORD_TYPES = frozenset(("user", "assistant", "tool_result", "system"))
#: Records the leaf is never chosen from and that are not part of the conversation tree (Qwen's
#: `isTranscriptConversationRecord`).
NON_CONVERSATION = frozenset(("session_artifact_event", "session_artifact_snapshot", "session_sources_snapshot",
                              "managed_session_header_v1", "managed_session_event_v1",
                              "managed_session_commit_v1"))
#: Every subtype Qwen Code writes (the `ChatRecord.subtype` union and `KNOWN_RECORD_SUBTYPES`).
KNOWN_SUBTYPES = NON_CONVERSATION | frozenset((
    "session_notes", "chat_compression", "slash_command", "ui_telemetry", "at_command", "attribution_snapshot",
    "notification", "background_task_completed", "cron", "mid_turn_user_message", "realtime_message",
    "custom_title", "parent_session", "session_source", "session_execution_engine", "omni_recall",
    "session_model", "session_approval_mode", "rewind", "agent_bootstrap", "agent_launch_prompt", "agent_retry",
    "agent_session_ready", "file_history_snapshot", "user_text_elements", "branch_checkpoint", "goal_state",
    "goal_runtime", "goal_turn_end", "turn_result", "turn_attempt", "code_mode_tool_result", "agent_mention",
    "agent_message"))
#: Subtypes of user/assistant/tool_result records that are conversation turns.
USER_TURN = frozenset((None, "mid_turn_user_message", "realtime_message"))
ASSISTANT_TURN = frozenset((None, "realtime_message"))
TOOL_TURN = frozenset((None, "code_mode_tool_result"))
HOOK_OPEN = "<qwen:user-prompt-submit-context>"
HOOK_CLOSE = "</qwen:user-prompt-submit-context>"


class QwenState(SourceState, kw_only=True):
    records: int = 0  # records read (every valid line)
    visible: int = 0  # records on the visible branch
    leaf: str | None = None  # uuid of the record the branch was walked from


class Record(msgspec.Struct):
    """One ChatRecord line. Typed `Any` on purpose: a wrong type in one field must not cost the record."""

    uuid: Any = None
    parentUuid: Any = None
    sessionId: Any = None
    timestamp: Any = None
    type: Any = None
    subtype: Any = None
    cwd: Any = None
    gitBranch: Any = None
    message: Any = None
    toolCallResult: Any = None
    systemPayload: Any = None
    isSidechain: Any = None


_decode = msgspec.json.Decoder(Record).decode


# ---------------------------------------------------------------- pure: bytes → records → branch


def read_records(data: bytes, state: SourceState) -> list[Record]:
    """Every valid record in file order. Bad lines are counted in `state.malformed`; an unterminated last
    line is used only if it is already whole JSON (else the writer is still at it)."""
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the data ends with a newline
    out: list[Record] = []
    for raw in lines:
        if raw.strip():
            rec = _record(raw)
            if rec is None:
                state.malformed += 1
            else:
                out.append(rec)
    if tail.strip() and (rec := _record(tail)) is not None:
        out.append(rec)
    return out


def _record(raw: bytes) -> Record | None:
    try:
        rec = _decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nesting past the limit too
        return None
    if not (isinstance(rec.uuid, str) and rec.uuid and (rec.parentUuid is None or isinstance(rec.parentUuid, str))
            and isinstance(rec.sessionId, str) and rec.sessionId):
        return None
    if isinstance(rec.type, (list, dict)) or isinstance(rec.subtype, (list, dict)):
        # unhashable: the name sets would raise; as its JSON text it is what any other unknown name is
        rec = msgspec.structs.replace(rec, type=_hashable(rec.type), subtype=_hashable(rec.subtype))
    return rec


def _hashable(value: object) -> object:
    return compact_json(value) if isinstance(value, (list, dict)) else value


def _in_tree(rec: Record) -> bool:
    return rec.type in RECORD_TYPES and not (rec.type == "system" and rec.subtype in NON_CONVERSATION)


def visible_branch(records: list[Record]) -> list[Record]:
    """The conversation as Qwen shows it: walk `parentUuid` back from the last conversation record (not a
    sidechain one) to the root, stopping at a missing parent or a cycle; root first. Records repeating a
    uuid are fragments of the first: their message parts are appended to it."""
    first: dict[str, Record] = {}
    extra: dict[str, list[Record]] = {}
    leaf: str | None = None
    for rec in records:
        if not _in_tree(rec):
            continue
        if rec.uuid in first:
            extra.setdefault(rec.uuid, []).append(rec)
        else:
            first[rec.uuid] = rec
        if rec.isSidechain is not True:
            leaf = rec.uuid
    chain: list[Record] = []
    seen: set[str] = set()
    cur = leaf
    while cur is not None and cur not in seen and (rec := first.get(cur)) is not None:
        seen.add(cur)
        chain.append(_merged(rec, extra.get(cur)))
        cur = rec.parentUuid or None
    chain.reverse()
    return chain


def _merged(rec: Record, fragments: list[Record] | None) -> Record:
    if not fragments:
        return rec
    parts = list(_parts(rec.message))
    for frag in fragments:
        parts.extend(_parts(frag.message))
    role = rec.message.get("role") if isinstance(rec.message, dict) else None
    return msgspec.structs.replace(rec, message={"role": role, "parts": parts})


def _parts(message: object) -> list:
    parts = message.get("parts") if isinstance(message, dict) else None
    return parts if isinstance(parts, list) else []


# ---------------------------------------------------------------- pure: Gemini parts → neutral parts


def _media(kind: str, blob: object) -> Part:
    mime = blob.get("mimeType") if isinstance(blob, dict) else None
    if isinstance(mime, str) and mime.startswith("image/"):
        return Image(mime)
    return Unsupported(kind)


def _response_text(response: object) -> tuple[str, bool]:
    """A functionResponse's `response` → (text, is_error): `output`, else `content`, else `error`, else JSON."""
    if isinstance(response, str):
        return response, False
    if isinstance(response, dict):
        for key in ("output", "content"):
            value = response.get(key)
            if isinstance(value, str):
                return value, False
            if isinstance(value, list) and (texts := [t for item in value if isinstance(item, dict)
                                                      and isinstance(t := item.get("text"), str) and t]):
                return "\n".join(texts), False
        err = response.get("error")
        if err is not None:
            return (err if isinstance(err, str) else compact_json(err)), True
        if "output" in response:
            return compact_json(response["output"]), False
    if response is None:
        return "", False
    return compact_json(response), False


def gemini_parts(parts: object, *, failed: bool = False) -> tuple[Part, ...]:
    """Gemini `Content.parts` → neutral parts, in order. `failed`: the record says its tool call failed."""
    if not isinstance(parts, list):
        return ()
    out: list[Part] = []
    for p in parts:
        if isinstance(p, str):  # a PartUnion may be a bare string
            if p:
                out.append(Text(p))
            continue
        if not isinstance(p, dict):
            continue
        if "text" in p:
            text = p.get("text")
            if p.get("thought") is True:
                out.append(Reasoning())
            elif isinstance(text, str) and text:
                out.append(Text(text))
        elif isinstance(fc := p.get("functionCall"), dict):
            name = fc.get("name")
            out.append(ToolCall(name if isinstance(name, str) else None, fc["args"] if "args" in fc else msgspec.UNSET))
        elif isinstance(fr := p.get("functionResponse"), dict):
            text, err = _response_text(fr.get("response"))
            out.append(ToolResult(text, err or failed))
        elif "inlineData" in p:
            out.append(_media("inlineData", p["inlineData"]))
        elif "fileData" in p:
            out.append(_media("fileData", p["fileData"]))
        elif p.get("thought") is True:
            out.append(Reasoning())
        else:
            kinds = [k for k in p if k not in ("thought", "thoughtSignature", "videoMetadata", "partMetadata",
                                              "mediaResolution")]
            if kinds:
                out.append(Unsupported(kinds[0]))
    return tuple(out)


def _is_hook_part(part: object) -> bool:
    text = part.get("text") if isinstance(part, dict) else None
    if not isinstance(text, str):
        return False
    t = text.strip()
    if not (t.startswith(HOOK_OPEN + "\n") and t.endswith("\n" + HOOK_CLOSE)):
        return False
    body = t[len(HOOK_OPEN) + 1: -len(HOOK_CLOSE) - 1]
    return HOOK_OPEN not in body and HOOK_CLOSE not in body


def user_parts(rec: Record) -> tuple[Part, ...]:
    """What Qwen shows for a user record (`projectUserTranscriptForDisplay`): with prompt provenance
    (`systemPayload.hookContext`, or a final hook-context part) `displayText` replaces the text parts;
    without a payload a final hook-context part is removed; otherwise the parts as sent."""
    parts = _parts(rec.message)
    final_hook = len(parts) > 1 and _is_hook_part(parts[-1])
    payload = rec.systemPayload if isinstance(rec.systemPayload, dict) else None
    prompt = payload is not None and (isinstance(payload.get("hookContext"), str) or final_hook)
    display = payload.get("displayText") if prompt else None
    if isinstance(display, str):
        rest = [p for p in parts if not (isinstance(p, dict) and isinstance(p.get("text"), str))]
        return ((Text(display),) if display else ()) + gemini_parts(rest)
    if payload is None and final_hook:
        parts = parts[:-1]
    return gemini_parts(parts)


def _tool_failed(result: object) -> bool:
    return isinstance(result, dict) and (result.get("status") == "error" or bool(result.get("error")))


def record_message(rec: Record) -> Message | None:
    """One record of the visible branch → a message, or None (not a turn, or nothing shown)."""
    kind, sub = rec.type, rec.subtype
    if rec.isSidechain is True or (sub is not None and sub not in KNOWN_SUBTYPES):
        return None
    role: Role
    if kind == "user":
        if sub not in USER_TURN:
            return None
        role, parts = "user", user_parts(rec)
    elif kind == "assistant":
        if sub not in ASSISTANT_TURN:
            return None
        role, parts = "assistant", gemini_parts(_parts(rec.message))
    elif kind == "tool_result":
        if sub not in TOOL_TURN:
            return None
        raw = _parts(rec.message)
        if not raw and isinstance(rec.toolCallResult, dict):
            rp = rec.toolCallResult.get("responseParts")
            raw = rp if isinstance(rp, list) else [rp] if isinstance(rp, dict) else []
        parts = gemini_parts(raw, failed=_tool_failed(rec.toolCallResult))
        # tool output is the tools talking: the renderer shows a user record of only results on the
        # assistant side; one that also carries an image is put there explicitly
        role = "user" if only_tool_results(parts) else "assistant"
    else:
        return None
    if not shows_anything(parts):
        return None
    return Message(role, parts, rfc3339_ms(rec.timestamp))


def _apply_title(state: SourceState, rec: Record) -> None:
    payload = rec.systemPayload if isinstance(rec.systemPayload, dict) else {}
    title = payload.get("customTitle")
    if not isinstance(title, str) or not trim(title):
        return
    if payload.get("titleSource") == "auto":
        state.ai_title, state.custom_title = trim(title), None
    else:
        state.custom_title, state.ai_title = trim(title), None


def parse_session(data: bytes, state: QwenState | None = None) -> tuple[QwenState, list[Message]]:
    """The whole session file → (state, the visible branch's messages). Pure."""
    st = state if state is not None else QwenState()
    records = read_records(data, st)
    st.records = len(records)
    for rec in records:
        if st.cwd is None and isinstance(rec.cwd, str) and rec.cwd:
            st.cwd = rec.cwd
        if st.start_ms is None and (ts := rfc3339_ms(rec.timestamp)) is not None:
            st.start_ms = ts
        if isinstance(rec.gitBranch, str) and rec.gitBranch and rec.gitBranch != "HEAD":
            st.git_branch = rec.gitBranch
        if rec.type not in RECORD_TYPES or (rec.subtype is not None and rec.subtype not in KNOWN_SUBTYPES):
            st.unknown += 1
        elif rec.type == "system" and rec.subtype == "custom_title":
            _apply_title(st, rec)
    branch = visible_branch(records)
    st.visible = len(branch)
    st.leaf = branch[-1].uuid if branch else None
    messages = [m for rec in branch if (m := record_message(rec)) is not None]
    return st, messages


# ---------------------------------------------------------------- the plug-in (thin file access)


class QwenSource(OneFile):
    kind = "qwen"
    shape: Literal["snapshot"] = "snapshot"
    state_type = QwenState
    watch = WatchSpec(suffixes=(".jsonl",), depth=3)

    def discover(self, root: Path) -> Iterator[Identity]:
        for project in project_dirs(root):
            chats = project / "chats"
            seen: set[str] = set()
            for folder in (chats, chats / "archive"):  # the active copy of an id wins
                try:
                    names = sorted(folder.iterdir())
                except OSError:
                    continue
                for path in names:
                    ident = self.identify(root, path)
                    if ident is not None and ident.session_id not in seen and path.is_file():
                        seen.add(ident.session_id)
                        yield ident

    def identify(self, root: Path, path: Path) -> Identity | None:
        if not SESSION_NAME.fullmatch(path.name):
            return None
        chats = path.parent.parent if path.parent.name == "archive" else path.parent
        if chats.name != "chats" or chats.parent.parent != root:
            return None
        return Identity(self.kind, path.name[: -len(".jsonl")], path)

    def fallback_cwd(self, ident: Identity) -> str | None:
        return None  # every record carries its cwd; the folder name (non-alphanumerics → "-") is lossy

    def parse_line(self, state: SourceState, line: bytes, ctx: ParseContext) -> Message | None:
        raise NotImplementedError("qwen is a snapshot source")

    def read_snapshot(self, ident: Identity, ctx: ParseContext) -> Snapshot:
        fd = os.open(ident.path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO named *.jsonl must not block
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file; only files are sessions", str(ident.path))
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read()
        finally:
            os.close(fd)
        import blake3  # here: `status` and a no-op import never need it (start-up time)

        state, messages = parse_session(data)
        return Snapshot(state=state, messages=messages, digest=blake3.blake3(data).digest())


SOURCE = QwenSource()
