"""The Codex rollout wire format (Codex 0.169.0): one msgspec Struct per line shape we write.

Owns: field names, field order and which fields are omitted when empty, matching what Codex's own
importer serialises (serde: `skip_serializing_if = Option::is_none` on some fields, explicit `null` on
others). Struct field order is the JSON key order. Nothing here knows about sources or files.
"""

from __future__ import annotations

import time

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


class ContextWindow(msgspec.Struct):
    window_id: str


class CodexSessionMeta(msgspec.Struct, omit_defaults=True, kw_only=True):
    """session_meta as Codex's own importer writes it (0.169.0 and 0.171.0 alike), for
    `--codex-compatible`: its keys in its order (`account_scoped` first, `session_id` before `id`,
    `git` last, only in a repository). Not written: `base_instructions` (the model's built-in prompt,
    which we cannot know; our default-mode threads have never carried it either) and `memory_mode`
    (written by Codex only when memories are off in its config)."""

    account_scoped: bool
    session_id: str
    id: str
    timestamp: str
    cwd: str
    originator: str
    cli_version: str
    source: str
    model_provider: str
    history_mode: str
    multi_agent_version: str
    context_window: ContextWindow
    git: GitInfo | None = None


class Line(msgspec.Struct):
    """The envelope of every rollout line."""

    timestamp: str
    type: str
    payload: _Payload | SessionMeta | CodexSessionMeta


_ENCODER = msgspec.json.Encoder()
encode_json = _ENCODER.encode


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds and `Z`, the timestamp format of every rollout line."""
    sec, milli = divmod(ms, 1000)
    t = time.gmtime(sec)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            f".{milli:03d}Z")


_TWO_DIGITS = tuple(b"%02d" % n for n in range(60))
_MILLIS = tuple(b".%03dZ" % ms for ms in range(1000))


class Stamper:
    """`iso_ms` as bytes, remembering the last hour seen: the lines of one rollout mostly share their
    hour with the line before, and formatting is most of the cost (a minute changes every few lines).
    One per render call (no shared state)."""

    __slots__ = ("_hour", "_head")

    def __init__(self) -> None:
        self._hour, self._head = None, b""

    def __call__(self, ms: int) -> bytes:
        sec, milli = divmod(ms, 1000)
        hour, sec = divmod(sec, 3600)
        if hour != self._hour:
            self._hour, self._head = hour, iso_ms(hour * 3_600_000)[:14].encode()  # YYYY-MM-DDTHH:
        minute, sec = divmod(sec, 60)
        return b"".join((self._head, _TWO_DIGITS[minute], b":", _TWO_DIGITS[sec], _MILLIS[milli]))


def encode(timestamp_ms: int, kind: str, payload: _Payload | SessionMeta | CodexSessionMeta) -> bytes:
    """One rollout line, newline included."""
    return encode_json(Line(iso_ms(timestamp_ms), kind, payload)) + b"\n"


# -- what Codex itself appends to a thread it merely opened ------------------------------------------

CODEX_METADATA_EVENTS = frozenset({"thread_settings_applied"})  # seen from Codex 0.169 on thread/resume


class _ForeignPayload(msgspec.Struct):
    type: str | None = None


class _ForeignLine(msgspec.Struct):
    type: str | None = None
    payload: _ForeignPayload | None = None


_decode_foreign = msgspec.json.Decoder(_ForeignLine).decode


def is_codex_metadata(data: bytes) -> bool:
    """True when `data` is whole lines that only record settings (no conversation, no turn context):
    Codex writes such a line when a thread is merely opened. Anything unknown counts as conversation."""
    if not data or not data.endswith(b"\n"):
        return False
    for line in data.splitlines():
        try:
            rec = _decode_foreign(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        if rec.type != "event_msg" or rec.payload is None or rec.payload.type not in CODEX_METADATA_EVENTS:
            return False
    return True


# -- the hot path: the two lines that carry a message's text ------------------------------------------
# Every message is written twice (an event and a response item). Rather than build two Structs and
# JSON-escape the text twice, render.py escapes it once and splices it into these templates. The
# templates are cut out of the Structs' own encoding at import time, so the Structs stay the schema.

_MARK = "\x00text\x00"
_EPOCH = "1970-01-01T00:00:00.000Z"
_HEAD = b'{"timestamp":"'
_EVENT_MIDDLE = b'","type":"event_msg","payload":'


def event_at(stamp: bytes, payload: _Payload) -> bytes:
    """`encode(ms, "event_msg", payload)` for `stamp = Stamper()(ms)`, the timestamp already formatted
    (render's turn events: the message lines beside them carry the same stamp)."""
    return b"".join((_HEAD, stamp, _EVENT_MIDDLE, encode_json(payload), b"}\n"))


class TextTemplate(msgspec.Struct, frozen=True):
    middle: bytes  # from after the timestamp to the text
    end: bytes  # from after the text to the newline, included

    @classmethod
    def of(cls, kind: str, payload: _Payload) -> TextTemplate:
        line, mark = encode(0, kind, payload), encode_json(_MARK)
        head = _HEAD + _EPOCH.encode()
        assert line.startswith(head) and line.count(mark) == 1, line
        middle, end = line[len(head):].split(mark)
        return cls(middle, end)


class MessageLines(msgspec.Struct, frozen=True):
    """The two lines of one message, its event then its response item, as pieces for the caller to join
    with the rest of its lines (one join per rendered chunk rather than one per line)."""

    event: TextTemplate
    item: TextTemplate

    def pieces(self, timestamp: bytes, text_json: bytes) -> tuple[bytes, ...]:
        """`timestamp`: `iso_ms(...).encode()`; `text_json`: `encode_json(text)`."""
        event, item = self.event, self.item
        return (_HEAD, timestamp, event.middle, text_json, event.end,
                _HEAD, timestamp, item.middle, text_json, item.end)


USER_EVENT = TextTemplate.of("event_msg", UserMessage(message=_MARK))
USER_ITEM = TextTemplate.of("response_item", MessageItem(role="user", content=(InputText(_MARK),)))
AGENT_EVENT = TextTemplate.of("event_msg", AgentMessage(message=_MARK, phase=None, memory_citation=None))
AGENT_ITEM = TextTemplate.of("response_item", MessageItem(role="assistant", content=(OutputText(_MARK),)))
USER_LINES = MessageLines(USER_EVENT, USER_ITEM)
AGENT_LINES = MessageLines(AGENT_EVENT, AGENT_ITEM)
