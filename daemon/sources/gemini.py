"""Gemini CLI: `$GEMINI_CLI_HOME/.gemini` (else `~/.gemini`) `/tmp/<project>/chats/session-*.jsonl|.json`.

A snapshot source: each session file is read whole whenever its stat changes, because later lines
rewrite earlier messages.
- `.jsonl` (Gemini ≥ 0.39) is an append-only log replayed like Gemini's own `loadConversationRecord`:
  a metadata line (`sessionId` + `projectHash`, maybe `summary`, `kind`), message records upserted by
  `id` (a re-appended id keeps its first position and takes the latest content), `{"$set": {...}}`
  patches (`$set.messages` replaces the whole list: a checkpoint) and `{"$rewindTo": id}` (drops that
  message and all after it; every message if the id is unknown). An unparsable last line without its
  newline is a write in progress (skipped, not counted); other bad lines are counted in `malformed`,
  JSON objects of no known shape in `unknown`. A `.jsonl` without a metadata line is tried as one JSON
  document, as Gemini does.
- `.json` (legacy) is one pretty-printed `ConversationRecord` rewritten in place, not atomically: a
  parse error is retried once, then the read raises `Incomplete`.
The project folder is a slug (cwd in `tmp/<slug>/.project_root`, or the slug's key in `projects.json`)
or, before 0.29, sha256(project root) hex: matched by hashing the known roots (`projects.json` keys and
every `.project_root`) against the folder name and the session's `projectHash`.
A session is keyed by its file stem (`session-<minute>-<first 8 of sessionId>`), equal for a legacy
`.json` and the `.jsonl` Gemini writes on resuming it and for a hash folder's copy in its slug folder:
`discover` yields one per stem, preferring `.jsonl`, then the slug folder.

Imported: `user` text (`displayContent` when it shows text: what was typed, before `@file` expansion),
`gemini` text, its `toolCalls[]` as ToolCall(name, args) each followed by its ToolResult
(`result[].functionResponse.response.output`, else `.error`; an error when `status` is `error`), the
title from `summary`, the start from `startTime`.
Dropped on purpose: `thoughts` and `thought: true` parts (Reasoning, never shown), user messages made
only of `functionResponse` parts (the result is already on its toolCall), `info|error|warning` UI
notices (not counted), `<session_context>` / `<hook_context>` injections (Gemini hides them too),
`functionCall` parts of a message that has `toolCalls`, tokens and model; subagent transcripts
(`chats/<parentId>/<subId>.jsonl`, or `kind: "subagent"` in the metadata) are not sessions.
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one again when
# a decoder of these Structs is built, at the start of every command (~0.05 ms a decoder).

import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.codex.notes import compact_json, shows_anything
from daemon.codex.text import trim
from daemon.sources.base import (Identity, Incomplete, ParseContext, Snapshot, SourceState, Version, WatchSpec,
                                 project_dirs, rfc3339_ms, stat_version)
from daemon.transcript import Image, Message, Part, Reasoning, Text, ToolCall, ToolResult, Unsupported, plain_text

RETRY_DELAY_S = 0.05  # a legacy .json caught mid-rewrite is read once more after this
_HASH_DIR = re.compile(r"[0-9a-f]{64}")
_HIDDEN_USER_PREFIXES = ("<session_context>", "<hook_context>")
_SUFFIXES = (".jsonl", ".json")


class GeminiState(SourceState, kw_only=True):
    session_id: str | None = None  # the full sessionId (the file name carries its first 8 characters)
    project_hash: str | None = None  # sha256(project root): finds the cwd of a legacy hash folder
    subagent: bool = False  # metadata `kind: "subagent"`: not a top-level session (nothing imported)


class Record(msgspec.Struct):
    """One line of a `.jsonl` (or the whole legacy document, or one of its `messages`). Every field is
    `Any`: a wrong type in one must not cost the record; unknown fields are ignored."""

    id: Any = None
    timestamp: Any = None
    type: Any = None
    content: Any = None
    displayContent: Any = None
    toolCalls: Any = None
    thoughts: Any = None
    sessionId: Any = None
    projectHash: Any = None
    startTime: Any = None
    summary: Any = None
    kind: Any = None
    messages: Any = None
    rewind_to: Any = msgspec.field(default=None, name="$rewindTo")
    set: Any = msgspec.field(default=None, name="$set")


_decode = msgspec.json.Decoder(Record).decode
_decode_any = msgspec.json.Decoder().decode


def _as_record(value: object) -> Record | None:
    if not isinstance(value, dict):
        return None
    try:
        return msgspec.convert(value, Record)
    except (msgspec.ValidationError, RecursionError):
        return None


# -- replay: records → the conversation as Gemini holds it --------------------------------------------

class Conversation:
    """Metadata and messages (id → record, in first-seen order) as the replay goes."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.has_meta = False
        self.messages: dict[str, Record] = {}

    def replace_all(self, items: object, state: GeminiState) -> None:
        self.messages = {}
        for item in items if isinstance(items, list) else ():
            rec = _as_record(item)
            if rec is None or not isinstance(rec.id, str):
                state.malformed += 1
                continue
            self.messages[rec.id] = rec

    def rewind(self, target: str) -> None:
        ids = list(self.messages)
        if target in self.messages:
            for mid in ids[ids.index(target):]:
                del self.messages[mid]
        else:
            self.messages = {}

    def merge_meta(self, fields: dict[str, Any], state: GeminiState) -> None:
        """Shallow-merge a metadata patch; a non-empty `messages` list replaces every message at this
        point (a checkpoint: what Gemini then holds). An empty one changes nothing, as on Gemini's reload."""
        for key, value in fields.items():
            if key != "messages":
                self.meta[key] = value
        items = fields.get("messages")
        if isinstance(items, list) and items:
            self.replace_all(items, state)


def _meta_fields(rec: Record) -> dict[str, Any]:
    out = {}
    for key in ("sessionId", "projectHash", "startTime", "summary", "kind", "messages"):
        value = getattr(rec, key)
        if value is not None:
            out[key] = value
    return out


def apply(conv: Conversation, rec: Record, state: GeminiState) -> None:
    """One record, in Gemini's order of precedence: rewind, message, `$set`, metadata line."""
    if isinstance(rec.rewind_to, str):
        conv.rewind(rec.rewind_to)
    elif isinstance(rec.id, str):
        conv.messages[rec.id] = rec  # an existing id keeps its position (dict order), takes the new content
    elif isinstance(rec.set, dict):
        conv.merge_meta(rec.set, state)
    elif isinstance(rec.sessionId, str) and isinstance(rec.projectHash, str):
        conv.has_meta = True
        conv.merge_meta(_meta_fields(rec), state)
    else:
        state.unknown += 1


def replay_jsonl(data: bytes, state: GeminiState) -> Conversation:
    conv = Conversation()
    lines = data.split(b"\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = _decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nesting past the limit too
            if i < last:  # the last piece without its newline is a write in progress: read it next time
                state.malformed += 1
            continue
        apply(conv, rec, state)
    return conv


def load_legacy(data: bytes, state: GeminiState) -> Conversation | None:
    """The legacy whole-file `ConversationRecord`; None when the bytes are not (yet) one JSON document."""
    try:
        value = _decode_any(data)
    except (msgspec.DecodeError, msgspec.ValidationError):  # a number out of range is not "half-written"
        return None
    except RecursionError:  # whole, but nested past the limit: nothing to read, never "retry later"
        state.malformed += 1
        return Conversation()
    conv = Conversation()
    rec = _as_record(value)
    if rec is None:
        state.malformed += 1
        return conv
    conv.has_meta = isinstance(rec.sessionId, str)
    fields = _meta_fields(rec)
    fields.pop("messages", None)
    conv.merge_meta(fields, state)
    conv.replace_all(rec.messages, state)
    return conv


# -- records → neutral messages --------------------------------------------------------------------------

def _parts_list(content: object) -> list[object]:
    """Gemini's PartListUnion: a string, one Part, or a list of Parts and strings."""
    if content is None:
        return []
    return content if isinstance(content, list) else [content]


def content_parts(content: object, *, drop_calls: bool) -> tuple[Part, ...]:
    """Gemini `content` → parts. functionResponse parts are dropped (the result sits on its toolCall);
    functionCall parts too when the message lists its `toolCalls` (they say the same)."""
    parts: list[Part] = []
    for p in _parts_list(content):
        if isinstance(p, str):
            if p:
                parts.append(Text(p))
            continue
        if not isinstance(p, dict):
            continue
        if p.get("thought") is True:
            parts.append(Reasoning())
        elif isinstance(p.get("text"), str):
            if p["text"]:
                parts.append(Text(p["text"]))
        elif "functionResponse" in p:
            continue
        elif "functionCall" in p:
            call = p["functionCall"]
            if not drop_calls and isinstance(call, dict):
                name = call.get("name")
                parts.append(ToolCall(name if isinstance(name, str) else None,
                                      call["args"] if "args" in call else msgspec.UNSET))
        elif "inlineData" in p or "fileData" in p:
            blob = p.get("inlineData") or p.get("fileData")
            mime = blob.get("mimeType") if isinstance(blob, dict) else None
            if isinstance(mime, str) and mime.startswith("image/"):
                parts.append(Image(mime))
            else:
                parts.append(Unsupported(mime if isinstance(mime, str) and mime else "file"))
        elif "executableCode" in p:
            parts.append(Unsupported("executableCode"))
        elif "codeExecutionResult" in p:
            parts.append(Unsupported("codeExecutionResult"))
        # anything else (thoughtSignature alone, videoMetadata, {}) carries nothing to show
    return tuple(parts)


def _response_text(response: object) -> str:
    if isinstance(response, dict):
        for key in ("output", "error"):
            if key in response:
                value = response[key]
                return value if isinstance(value, str) else compact_json(value)
        return compact_json(response) if response else ""
    if isinstance(response, str):
        return response
    return ""


def tool_result(call: dict) -> ToolResult | None:
    """The result Gemini recorded on a tool call: `result[].functionResponse.response.output` (else its
    `error`, else text parts), joined by newlines; None while the call has no result yet."""
    result = call.get("result")
    if result is None:
        return None
    texts: list[str] = []
    for p in _parts_list(result):
        if isinstance(p, str):
            text = p
        elif isinstance(p, dict) and isinstance(p.get("functionResponse"), dict):
            text = _response_text(p["functionResponse"].get("response"))
        elif isinstance(p, dict) and isinstance(p.get("text"), str) and p.get("thought") is not True:
            text = p["text"]
        else:
            continue
        if text:
            texts.append(text)
    return ToolResult("\n".join(texts), call.get("status") == "error")


def tool_parts(calls: object) -> list[Part]:
    parts: list[Part] = []
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        name = call.get("name")
        parts.append(ToolCall(name if isinstance(name, str) else None,
                              call["args"] if "args" in call else msgspec.UNSET))
        result = tool_result(call)
        if result is not None:
            parts.append(result)
    return parts


def to_message(rec: Record, state: GeminiState, mtime_ms: int) -> Message | None:
    """One replayed message record → a neutral message, or None when it is not shown."""
    kind = rec.type
    if kind in ("info", "error", "warning"):
        return None  # UI notices
    if kind == "user":
        parts = ()
        if rec.displayContent is not None:
            parts = content_parts(rec.displayContent, drop_calls=True)
        if not shows_anything(parts):
            parts = content_parts(rec.content, drop_calls=True)
        if not shows_anything(parts):
            return None  # e.g. only functionResponse parts: the tools talking, already on the toolCall
        text = plain_text(parts)
        if text is not None and trim(text).startswith(_HIDDEN_USER_PREFIXES):
            return None
        role: Literal["user", "assistant"] = "user"
    elif kind == "gemini":
        has_calls = isinstance(rec.toolCalls, list) and len(rec.toolCalls) > 0
        head: list[Part] = [Reasoning()] if isinstance(rec.thoughts, list) and rec.thoughts else []
        parts = tuple(head) + content_parts(rec.content, drop_calls=has_calls) + tuple(tool_parts(rec.toolCalls))
        if not shows_anything(parts):
            return None
        role = "assistant"
    else:
        state.unknown += 1
        return None
    ts = rfc3339_ms(rec.timestamp)
    return Message(role, parts, ts if ts is not None else mtime_ms // 1000 * 1000)


def parse_session(data: bytes, *, jsonl: bool, mtime_ms: int) -> tuple[GeminiState, list[Message]] | None:
    """A session file's bytes → its state and messages; None for a legacy document that is not (yet)
    whole JSON (the caller retries, then gives up as Incomplete). Pure."""
    state = GeminiState()
    conv = replay_jsonl(data, state) if jsonl else load_legacy(data, state)
    if jsonl and not conv.has_meta:
        fallback_state = GeminiState()
        legacy = load_legacy(data, fallback_state)
        if legacy is not None and legacy.has_meta:
            state, conv = fallback_state, legacy
    if conv is None:
        return None
    meta = conv.meta
    if isinstance(meta.get("sessionId"), str):
        state.session_id = meta["sessionId"]
    if isinstance(meta.get("projectHash"), str):
        state.project_hash = meta["projectHash"]
    if isinstance(meta.get("summary"), str) and trim(meta["summary"]):
        state.custom_title = trim(meta["summary"])
    if meta.get("kind") == "subagent":
        state.subagent = True
        return state, []
    messages = [m for rec in conv.messages.values() if (m := to_message(rec, state, mtime_ms)) is not None]
    state.start_ms = rfc3339_ms(meta.get("startTime"))
    if state.start_ms is None:
        state.start_ms = next((ts for rec in conv.messages.values() if (ts := rfc3339_ms(rec.timestamp)) is not None), None)
    return state, messages


# -- the project folder → cwd ------------------------------------------------------------------------------

def read_registry(data: bytes) -> dict[str, str]:
    """`projects.json` (`{"projects": {"/abs/path": "slug"}}`) → path → slug; {} if unreadable."""
    try:
        value = _decode_any(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return {}
    projects = value.get("projects") if isinstance(value, dict) else None
    if not isinstance(projects, dict):
        return {}
    return {k: v for k, v in projects.items() if isinstance(k, str) and isinstance(v, str)}


def is_hash_dir(name: str) -> bool:
    return _HASH_DIR.fullmatch(name) is not None


def resolve_cwd(folder: str, marker: str | None, registry: Mapping[str, str], candidates: list[str],
                project_hash: str | None) -> str | None:
    """The project root of `tmp/<folder>`: its `.project_root` marker, else the registry key whose slug
    it is, else the known root whose sha256 is the folder name or the session's projectHash. Pure."""
    if marker is not None and os.path.isabs(trim(marker)):
        return trim(marker)
    for path, slug in registry.items():
        if slug == folder and os.path.isabs(path):
            return path
    targets = {h for h in (folder if is_hash_dir(folder) else None, project_hash) if h}
    if targets:
        import hashlib  # here: `status` and a no-op import never need it (start-up time)

        for path in [*registry, *candidates]:
            if os.path.isabs(path) and hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest() in targets:
                return path
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text("utf-8", "replace")
    except OSError:
        return None


def project_cwd(gemini_root: Path, folder: str, project_hash: str | None) -> str | None:
    """Thin disk part of `resolve_cwd`: reads the marker, `projects.json`, and (for a hash) every marker."""
    marker = _read_text(gemini_root / "tmp" / folder / ".project_root")
    try:
        registry = read_registry((gemini_root / "projects.json").read_bytes())
    except OSError:
        registry = {}
    candidates: list[str] = []
    if marker is None and folder not in registry.values():
        for base in ("tmp", "history"):
            for d in project_dirs(gemini_root / base):
                text = _read_text(d / ".project_root")
                if text is not None and trim(text):
                    candidates.append(trim(text))
    return resolve_cwd(folder, marker, registry, candidates, project_hash)


# -- the source --------------------------------------------------------------------------------------------

def _preferred(path: Path) -> Path:
    """A legacy `.json` whose session Gemini resumed into a `.jsonl` beside it: read the `.jsonl`."""
    if path.suffix == ".json":
        jsonl = path.with_suffix(".jsonl")
        if jsonl.is_file():
            return jsonl
    return path


def _is_session_name(name: str) -> bool:
    return name.startswith("session-") and name.endswith(_SUFFIXES)


class GeminiSource:
    kind = "gemini"
    shape: Literal["snapshot"] = "snapshot"
    state_type = GeminiState
    watch = WatchSpec(suffixes=_SUFFIXES, depth=3)

    def discover(self, root: Path) -> Iterator[Identity]:
        best: dict[str, tuple[tuple[bool, bool, str], Path]] = {}
        for project in project_dirs(root / "tmp"):
            try:
                names = sorted((project / "chats").iterdir())
            except OSError:
                continue
            for path in names:
                if not _is_session_name(path.name) or not path.is_file():
                    continue
                rank = (path.suffix == ".jsonl", not is_hash_dir(project.name), str(path))
                key = path.name.rsplit(".", 1)[0]
                if key not in best or rank > best[key][0]:
                    best[key] = (rank, path)
        for key in sorted(best):
            yield Identity(self.kind, key, best[key][1])

    def identify(self, root: Path, path: Path) -> Identity | None:
        try:
            rel = path.relative_to(root).parts
        except ValueError:
            return None
        if len(rel) != 4 or rel[0] != "tmp" or rel[2] != "chats" or not _is_session_name(rel[3]):
            return None
        return Identity(self.kind, rel[3].rsplit(".", 1)[0], path)

    def version(self, ident: Identity) -> Version:
        return stat_version(_preferred(ident.path))

    def fallback_cwd(self, ident: Identity) -> str | None:
        chats = ident.path.parent
        return project_cwd(chats.parent.parent.parent, chats.parent.name, None)

    def read_snapshot(self, ident: Identity, ctx: ParseContext) -> Snapshot:
        import blake3  # only a sync reads: `status` and a no-op import never load it

        path = _preferred(ident.path)
        jsonl = path.suffix == ".jsonl"
        data = path.read_bytes()
        parsed = parse_session(data, jsonl=jsonl, mtime_ms=ctx.mtime_ms)
        if parsed is None:  # a legacy file caught mid-rewrite (written in place, not renamed)
            time.sleep(RETRY_DELAY_S)
            data = path.read_bytes()
            parsed = parse_session(data, jsonl=jsonl, mtime_ms=ctx.mtime_ms)
            if parsed is None:
                raise Incomplete(f"{path} is not whole JSON (Gemini rewrites it in place)")
        state, messages = parsed
        chats = path.parent
        state.cwd = project_cwd(chats.parent.parent.parent, chats.parent.name, state.project_hash)
        return Snapshot(state=state, messages=messages, digest=blake3.blake3(data).digest())


SOURCE = GeminiSource()
