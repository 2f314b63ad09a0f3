"""The resumable session fold: source bytes → Codex rollout body, with no I/O.

Theory of operation
-------------------
`fold(source, state, data, ctx)` takes the bytes of a session file from `state.offset` to its current
end and consumes every *complete* line: one ending in `\\n`, or a final line without one that parses as a
whole JSON object (real Claude files often end so, and nothing longer can start with a complete object).
Any other tail is left for the next call: `state.offset` stops before it, like h11's NEED_DATA. Each
complete line goes through the source plug-in's `parse_line` (→ neutral Message or nothing) and the
messages through the Codex renderer (→ body lines). The state is a plain msgspec value: the engine stores
it in the ledger and later resumes with only the bytes that were appended.

Folding a file in any split of its bytes gives byte-identical output to folding it at once
(tests/test_fold.py checks this with hypothesis).
"""

from __future__ import annotations

import msgspec

from daemon.codex.render import ThreadState, closing, render
from daemon.sources.base import ParseContext, Source, SourceState
from daemon.transcript import Message

_WS = b" \t\r\n"
_WS_BYTES = frozenset(_WS)
_raw = msgspec.json.Decoder(msgspec.Raw).decode


class FoldState(msgspec.Struct, kw_only=True):
    offset: int = 0  # bytes of the source consumed so far
    source: SourceState = msgspec.field(default_factory=SourceState)
    thread: ThreadState = msgspec.field(default_factory=ThreadState)


def _is_complete_object(tail: bytes) -> bool:
    stripped = tail.strip(_WS)
    if not stripped.startswith(b"{"):
        return False
    try:
        _raw(stripped)
    except msgspec.DecodeError:
        return False
    return True


def complete_end(chunk: bytes) -> int:
    """How many leading bytes of `chunk` are complete lines (the rest waits for more data)."""
    end = chunk.rfind(b"\n") + 1
    if end < len(chunk) and _is_complete_object(chunk[end:]):
        return len(chunk)
    return end


def fold(source: Source, state: FoldState, chunk: bytes, ctx: ParseContext) -> tuple[bytes, FoldState]:
    """Consume the complete lines of `chunk`, the source bytes from `state.offset` on.

    Returns the rendered body lines and the new state; `state` itself is left untouched.
    """
    end = complete_end(chunk)
    view = memoryview(chunk)
    src = msgspec.structs.replace(state.source)
    parse = source.parse_line
    messages: list[Message] = []
    pos = 0
    while pos < end:
        nl = chunk.find(b"\n", pos, end)
        if nl < 0:
            nl = end
        if nl > pos and (chunk[pos] not in _WS_BYTES or chunk[pos:nl].strip(_WS)):
            m = parse(src, view[pos:nl], ctx)
            if m is not None:
                messages.append(m)
        pos = nl + 1
    body, thread = render(state.thread, messages)
    return body, FoldState(offset=state.offset + end, source=src, thread=thread)


__all__ = ["FoldState", "ParseContext", "closing", "complete_end", "fold"]
