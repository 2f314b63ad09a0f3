"""The hand-spliced hot path of lines.py must equal what the Structs encode, byte for byte."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.codex import lines as L

MS = st.integers(min_value=0, max_value=253402300799999)  # up to 9999-12-31


@given(MS)
def test_iso_ms_is_rfc3339_utc_with_millis(ms: int) -> None:
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    assert L.iso_ms(ms) == dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


@settings(max_examples=200)
@given(st.lists(MS, min_size=1, max_size=30))
def test_stamper_equals_iso_ms_in_any_order(values: list[int]) -> None:
    stamp = L.Stamper()
    for ms in values + sorted(values):
        assert stamp(ms) == L.iso_ms(ms).encode()


@given(st.text(), MS)
def test_message_lines_equal_struct_encoding(text: str, ms: int) -> None:
    """The spliced pieces of a message's two lines are byte for byte what encoding their Structs gives."""
    stamp, body = L.iso_ms(ms).encode(), L.encode_json(text)
    assert b"".join(L.USER_LINES.pieces(stamp, body)) == L.encode(
        ms, "event_msg", L.UserMessage(message=text)) + L.encode(
        ms, "response_item", L.MessageItem(role="user", content=(L.InputText(text),)))
    assert b"".join(L.AGENT_LINES.pieces(stamp, body)) == L.encode(
        ms, "event_msg", L.AgentMessage(message=text, phase=None, memory_citation=None)) + L.encode(
        ms, "response_item", L.MessageItem(role="assistant", content=(L.OutputText(text),)))


@given(MS, st.integers(0, 10**6), st.none() | st.integers(-10**12, 10**12))
def test_event_at_equals_struct_encoding(ms: int, turn: int, started: int | None) -> None:
    """A turn event spliced after a formatted stamp is byte for byte `encode` of the same event."""
    stamp = L.Stamper()(ms)
    for payload in (L.TaskStarted(turn_id=f"t{turn}", started_at=started, model_context_window=None,
                                  collaboration_mode_kind="default"),
                    L.TaskComplete(turn_id=f"t{turn}", last_agent_message=None, started_at=started),
                    L.AgentMessage(message="\x00\"é\n", phase=None, memory_citation=None),
                    L.TokenCount(info=L.TokenInfo(L.TokenUsage(total_tokens=turn), L.TokenUsage(), None),
                                 rate_limits=None)):
        assert L.event_at(stamp, payload) == L.encode(ms, "event_msg", payload)
