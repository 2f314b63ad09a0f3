"""Content rendering shared by Claude and Cursor (codex-importer.md §2.3, goldens section A)."""

from __future__ import annotations

import json

import msgspec
import pytest

from daemon.codex.text import trim, truncate
from daemon.codex.notes import TOOL_INPUT_MAX, TOOL_RESULT_MAX
from daemon.sources.blocks import (
    render_content,
    tool_call_note,
    tool_result_note,
    unwrap_user_query,
)


def _decoded(obj: object) -> object:
    """What a source hands the renderer: the value as msgspec decodes it from a JSON line."""
    return msgspec.json.decode(json.dumps(obj, ensure_ascii=False).encode())


def call(block: dict) -> str:
    return tool_call_note(_decoded(block))


# ---------------------------------------------------------------- tool_use


def test_tool_call_description_and_command():
    note = call({"type": "tool_use", "id": "t1", "name": "Bash",
                 "input": {"command": "ls -la", "description": "List files", "timeout": 5}})
    # description before command whatever the source order; id not rendered; other keys not rendered
    assert note == "[external_agent_tool_call: Bash]\ndescription: List files\ncommand: ls -la\n[/external_agent_tool_call]"


def test_tool_call_file_path_and_file():
    assert call({"name": "Read", "input": {"file_path": "/a/b.py", "limit": 3}}) == (
        "[external_agent_tool_call: Read]\nfile: /a/b.py\n[/external_agent_tool_call]")
    assert call({"name": "Edit", "input": {"file": "x.txt"}}) == (
        "[external_agent_tool_call: Edit]\nfile: x.txt\n[/external_agent_tool_call]")
    # file_path wins over file
    assert call({"name": "E", "input": {"file": "f2", "file_path": "f1"}}) == (
        "[external_agent_tool_call: E]\nfile: f1\n[/external_agent_tool_call]")


def test_tool_call_all_three_known_fields_in_fixed_order():
    note = call({"name": "X", "input": {"file_path": "p", "command": "c", "description": "d"}})
    assert note == "[external_agent_tool_call: X]\ndescription: d\ncommand: c\nfile: p\n[/external_agent_tool_call]"


def test_tool_call_non_string_file_path_suppresses_file_line():
    note = call({"name": "W", "input": {"file_path": 7, "file": "ignored.txt"}})
    assert note == '[external_agent_tool_call: W]\ninput: {"file_path":7,"file":"ignored.txt"}\n[/external_agent_tool_call]'


def test_tool_call_non_string_known_fields_fall_back_to_input():
    note = call({"name": "W", "input": {"description": None, "command": ["ls"]}})
    assert note == '[external_agent_tool_call: W]\ninput: {"description":null,"command":["ls"]}\n[/external_agent_tool_call]'


def test_tool_call_known_fields_not_truncated():
    long = "c" * 5000
    note = call({"name": "Bash", "input": {"command": long}})
    assert note == f"[external_agent_tool_call: Bash]\ncommand: {long}\n[/external_agent_tool_call]"


def test_tool_call_other_input_keeps_source_key_order_compact():
    note = call({"name": "Grep", "input": {"zeta": 1, "alpha": {"b": [1, 2.5, None, True], "a": "é☕\n\""}}})
    assert note == ('[external_agent_tool_call: Grep]\ninput: {"zeta":1,"alpha":{"b":[1,2.5,null,true],'
                    '"a":"é☕\\n\\""}}\n[/external_agent_tool_call]')


def test_tool_call_no_input_key():
    assert call({"type": "tool_use", "name": "TodoWrite"}) == (
        "[external_agent_tool_call: TodoWrite]\n[/external_agent_tool_call]")


def test_tool_call_non_object_input():
    assert call({"name": "S", "input": "raw string input"}) == (
        '[external_agent_tool_call: S]\ninput: "raw string input"\n[/external_agent_tool_call]')
    assert call({"name": "S", "input": [1, "a"]}) == '[external_agent_tool_call: S]\ninput: [1,"a"]\n[/external_agent_tool_call]'
    assert call({"name": "S", "input": 3}) == "[external_agent_tool_call: S]\ninput: 3\n[/external_agent_tool_call]"


def test_tool_call_empty_object_and_missing_or_bad_name():
    assert call({"input": {}}) == "[external_agent_tool_call: unknown]\ninput: {}\n[/external_agent_tool_call]"
    assert call({"name": 5, "input": {}}) == "[external_agent_tool_call: unknown]\ninput: {}\n[/external_agent_tool_call]"


@pytest.mark.parametrize("size,cut", [(1999, False), (2000, False), (2001, True), (5000, True)])
def test_tool_call_input_cut_at_2000_chars(size: int, cut: bool):
    # {"k":"xxx"} is 8 chars of framing around the value
    inp = {"k": "x" * (size - 8)}
    compact = json.dumps(inp, separators=(",", ":"))
    assert len(compact) == size
    note = call({"name": "T", "input": inp})
    shown = note.split("\n")[1].removeprefix("input: ")
    if cut:
        assert shown == compact[:1997] + "..." and len(shown) == TOOL_INPUT_MAX
    else:
        assert shown == compact


def test_tool_call_input_cut_counts_characters_not_bytes():
    inp = {"k": "é" * 2100}
    note = call({"name": "T", "input": inp})
    shown = note.split("\n")[1].removeprefix("input: ")
    assert len(shown) == 2000
    assert shown == ('{"k":"' + "é" * 1991) + "..."


# ---------------------------------------------------------------- tool_result


def result(block: dict) -> str:
    return tool_result_note(_decoded(block))


def test_tool_result_string():
    assert result({"type": "tool_result", "tool_use_id": "t1", "content": "ok\n  spaced  "}) == (
        "[external_agent_tool_result]\nok\n  spaced  \n[/external_agent_tool_result]")


def test_tool_result_array_joins_nonempty_text_skips_images():
    block = {"content": [{"type": "text", "text": "one"}, {"type": "image", "source": {}},
                         {"type": "text", "text": ""}, "bare", {"type": "text", "text": "two"}]}
    assert result(block) == "[external_agent_tool_result]\none\ntwo\n[/external_agent_tool_result]"


def test_tool_result_error_label():
    assert result({"content": "boom", "is_error": True}) == (
        "[external_agent_tool_result: error]\nboom\n[/external_agent_tool_result]")
    # only a literal true counts
    assert result({"content": "boom", "is_error": "true"}).startswith("[external_agent_tool_result]\n")
    assert result({"content": "boom", "is_error": False}).startswith("[external_agent_tool_result]\n")


@pytest.mark.parametrize("content", ["", [], None, 5, {"text": "x"}, [{"type": "image"}]])
def test_tool_result_empty(content):
    block = {"type": "tool_result"} if content is None else {"type": "tool_result", "content": content}
    assert result(block) == "[external_agent_tool_result]\n[/external_agent_tool_result]"
    assert result({**block, "is_error": True}) == "[external_agent_tool_result: error]\n[/external_agent_tool_result]"


@pytest.mark.parametrize("size,cut", [(4000, False), (4001, True)])
def test_tool_result_cut_at_4000_chars(size: int, cut: bool):
    text = "ü" * size
    body = result({"content": text}).split("\n")[1]
    assert body == ("ü" * 3997 + "..." if cut else text)
    assert len(body) == min(size, TOOL_RESULT_MAX)


def test_tool_result_cut_applies_to_joined_array():
    block = {"content": [{"type": "text", "text": "a" * 3000}, {"type": "text", "text": "b" * 3000}]}
    body = result(block).removeprefix("[external_agent_tool_result]\n").removesuffix("\n[/external_agent_tool_result]")
    assert body == "a" * 3000 + "\n" + "b" * 996 + "..."


# ---------------------------------------------------------------- render_content


def render(content):
    return render_content(_decoded(content))


def test_string_content_verbatim_and_blank_dropped():
    assert render("  hi there \n") == ("  hi there \n", False)
    assert render(" \n\t ") == (None, False)
    assert render("") == (None, False)
    # Rust trim() only strips Unicode White_Space; U+001F is not, U+3000 is
    assert render("\x1f") == ("\x1f", False)
    assert render("\u3000\u2003") == (None, False)


@pytest.mark.parametrize("content", [None, 5, {"text": "x"}, True])
def test_non_string_non_list_content_dropped(content):
    assert render(content) == (None, False)


def test_text_blocks_joined_with_blank_line_verbatim():
    assert render([{"type": "text", "text": " a "}, {"type": "text", "text": "b\n"}]) == (" a \n\nb\n", False)


def test_thinking_and_typeless_blocks_dropped():
    # nothing survives (the flag is Codex's: it starts true for a non-empty block list)
    assert render([{"type": "thinking", "thinking": "hmm", "signature": "s"}])[0] is None
    assert render([{"text": "no type"}, {"type": "thinking", "thinking": "x"}, {"type": "text", "text": "kept"}]) == (
        "kept", False)


def test_non_object_items_ignored():
    assert render(["plain", 3, None, {"type": "text", "text": "t"}]) == ("t", False)
    assert render(["plain", 3]) == (None, False)
    assert render([]) == (None, False)


@pytest.mark.parametrize("kind", ["image", "document", "redacted_thinking", "server_tool_use", "weird-type"])
def test_unsupported_blocks(kind):
    assert render([{"type": kind, "data": "x"}]) == (f"[external unsupported block: {kind}]", False)


def test_image_next_to_text():
    assert render([{"type": "text", "text": "look"}, {"type": "image", "source": {"data": "..."}}]) == (
        "look\n\n[external unsupported block: image]", False)


def test_only_tool_results():
    text, only = render([{"type": "tool_result", "tool_use_id": "a", "content": "r1"},
                         {"type": "tool_result", "tool_use_id": "b", "content": [], "is_error": True}])
    assert only is True
    assert text == ("[external_agent_tool_result]\nr1\n[/external_agent_tool_result]\n\n"
                    "[external_agent_tool_result: error]\n[/external_agent_tool_result]")


def test_empty_text_block_keeps_only_tool_result_flag():
    text, only = render([{"type": "text", "text": ""}, {"type": "tool_result", "content": "r"}])
    assert only is True and text == "[external_agent_tool_result]\nr\n[/external_agent_tool_result]"
    # thinking next to a tool result does not change the flag either
    assert render([{"type": "thinking", "thinking": "t"}, {"type": "tool_result", "content": "r"}])[1] is True


def test_whitespace_text_block_clears_flag_but_part_dropped():
    text, only = render([{"type": "text", "text": "  "}, {"type": "tool_result", "content": "r"}])
    assert only is False and text == "[external_agent_tool_result]\nr\n[/external_agent_tool_result]"


def test_text_plus_tool_result_is_not_only_tool_result():
    text, only = render([{"type": "text", "text": "see"}, {"type": "tool_result", "content": "r"}])
    assert only is False and text == "see\n\n[external_agent_tool_result]\nr\n[/external_agent_tool_result]"


def test_tool_use_and_unsupported_clear_flag():
    assert render([{"type": "tool_result", "content": "r"}, {"type": "tool_use", "name": "A"}])[1] is False
    assert render([{"type": "tool_result", "content": "r"}, {"type": "image"}])[1] is False


def test_mixed_order_preserved():
    text, _ = render([{"type": "text", "text": "first"}, {"type": "thinking", "thinking": "x"},
                      {"type": "tool_use", "name": "Bash", "input": {"command": "ls"}},
                      {"type": "text", "text": "last"}])
    assert text == "first\n\n[external_agent_tool_call: Bash]\ncommand: ls\n[/external_agent_tool_call]\n\nlast"


# ---------------------------------------------------------------- text helpers


def test_truncate_and_trim_rust_semantics():
    assert truncate("abc", 3) == "abc"
    assert truncate("abcd", 3) == "..."
    assert truncate("x" * 121, 120) == "x" * 117 + "..."
    assert trim("\x1c a \x1f") == "\x1c a \x1f"
    assert trim("\u00a0\u2029 a \u3000\x85") == "a"


# ---------------------------------------------------------------- Claude <user_query>


def test_unwrap_user_query_exact_wrapper():
    assert unwrap_user_query("<user_query>Add a CLI flag</user_query>") == "Add a CLI flag"
    assert unwrap_user_query("  \n<user_query>\n  X y \n</user_query>\n ") == "X y"


@pytest.mark.parametrize("text", [
    "<user_query>   </user_query>",
    "<user_query></user_query>",
    "before <user_query>X</user_query>",
    "<user_query>X</user_query> after",
    "<user_query>X",
    "<USER_QUERY>X</USER_QUERY>",
    "  plain  ",
])
def test_unwrap_user_query_otherwise_verbatim(text):
    assert unwrap_user_query(text) == text
