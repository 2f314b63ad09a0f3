"""The Codex rollout wire format (Codex 0.169.0): one msgspec Struct per line shape we write.

Owns: field names, field order and which fields are omitted when empty, matching what Codex's own
importer serialises (serde: `skip_serializing_if = Option::is_none` on some fields, explicit `null` on
others). Struct field order is the JSON key order. Nothing here knows about sources or files.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec


class _Payload(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class TaskStarted(_Payload, tag="task_started", omit_defaults=True, kw_only=True):
    turn_id: str
    started_at: int | None = None  # omitted when unknown
    model_context_window: None
    collaboration_mode_kind: str


class TaskComplete(_Payload, tag="task_complete", omit_defaults=True, kw_only=True):
    turn_id: str
    last_agent_message: None
    started_at: int | None = None
    completed_at: int | None = None


class UserMessage(_Payload, tag="user_message", kw_only=True):
    message: str
    local_images: tuple[()] = ()
    local_audio: tuple[()] = ()
    text_elements: tuple[()] = ()


class AgentMessage(_Payload, tag="agent_message", kw_only=True):
    message: str
    phase: None
    memory_citation: None


class TokenUsage(msgspec.Struct):
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0
    total_tokens: int = 0


class TokenInfo(msgspec.Struct):
    total_token_usage: TokenUsage
    last_token_usage: TokenUsage
    model_context_window: None


class TokenCount(_Payload, tag="token_count", kw_only=True):
    info: TokenInfo
    rate_limits: None


class InputText(msgspec.Struct, tag_field="type", tag="input_text"):
    text: str


class OutputText(msgspec.Struct, tag_field="type", tag="output_text"):
    text: str


class MessageItem(_Payload, tag="message", kw_only=True):
    role: str
    content: tuple[InputText] | tuple[OutputText]


class GitInfo(msgspec.Struct, omit_defaults=True, frozen=True):
    commit_hash: str | None = None
    branch: str | None = None
    repository_url: str | None = None


class SessionMeta(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    session_id: str
    timestamp: str
    cwd: str
    originator: str
    cli_version: str
    source: str
    model_provider: str
    # a factory, not a plain default: omit_defaults would otherwise drop this always-written key
    history_mode: str = msgspec.field(default_factory=lambda: "legacy")
    git: GitInfo | None = None


class Line(msgspec.Struct):
    """The envelope of every rollout line."""

    timestamp: str
    type: str
    payload: _Payload | SessionMeta


_ENCODER = msgspec.json.Encoder()
_encode_payload = _ENCODER.encode

# Hot path: every rollout line carries a timestamp, and consecutive lines mostly share one (a message is
# 2-4 lines) or at least its second. One-entry caches (a tuple swap is atomic, so threads may share them).
_last_ms: tuple[int | None, str] = (None, "")
_last_sec: tuple[int | None, str] = (None, "")
_last_day: tuple[int | None, str] = (None, "")


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds and `Z`, the timestamp format of every rollout line."""
    global _last_ms, _last_sec, _last_day
    last = _last_ms
    if last[0] == ms:
        return last[1]
    sec = ms // 1000
    prefix = _last_sec
    if prefix[0] != sec:
        day, in_day = divmod(sec, 86400)
        date = _last_day
        if date[0] != day:
            date = _last_day = (day, datetime.fromtimestamp(day * 86400, tz=timezone.utc).strftime("%Y-%m-%dT"))
        hours, rest = divmod(in_day, 3600)
        prefix = _last_sec = (sec, f"{date[1]}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.")
    text = f"{prefix[1]}{ms - sec * 1000:03d}Z"
    _last_ms = (ms, text)
    return text


_HEADS: dict[str, bytes] = {}


def encode(timestamp_ms: int, kind: str, payload: _Payload | SessionMeta) -> bytes:
    """One rollout line, newline included: exactly `Line(iso_ms(timestamp_ms), kind, payload)` encoded.

    The envelope is spliced by hand (timestamp and kind need no JSON escaping; kind is checked once).
    """
    head = _HEADS.get(kind)
    if head is None:
        head = _HEADS[kind] = b'","type":' + _encode_payload(kind) + b',"payload":'
    return b"".join((b'{"timestamp":"', iso_ms(timestamp_ms).encode(), head, _encode_payload(payload), b"}\n"))
