"""Thread titles: Codex's exact rule (`fallback_title`, cases ported from Codex's own title tests) and our
readable default (`readable_title`, `TitleState`), on message texts as Claude Code and Cursor write them.
Whole sources through the real parsers and the CLI: test_title_sources.py."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.codex.title import (
    FALLBACK_TITLE,
    MAX_STEPS,
    TITLE_MAX_LEN,
    TitleState,
    choose,
    fallback_title,
    readable_title,
)


def test_strips_nested_repeated_multiline_wrappers():
    message = ("<system-reminder>\nouter context\n<command-message>\nnested context\n</command-message>\n"
               "</system-reminder>\n<ide_opened_file>\nsrc/auth.rs\n</ide_opened_file>\n\nFix auth flow\nAdditional details")
    assert fallback_title(message) == "Fix auth flow"


@pytest.mark.parametrize("message", [
    "<task-notification>\n<task-id>abc123</task-id>\n<status>completed</status>\n</task-notification>\nFix auth flow",
    "<command-message>review</command-message>\n<command-name>/review</command-name>\n<command-args>src/auth.rs</command-args>\nFix auth flow",
    "<local-command-caveat>Command output follows</local-command-caveat>\n<local-command-stdout>tests passed</local-command-stdout>\nFix auth flow",
    "<local-command-stderr>tests failed</local-command-stderr>\nFix auth flow",
    "<ide_selection>src/auth.rs:1-5</ide_selection>\nFix auth flow",
    "<system-reminder>x</system-reminder><system-reminder>y</system-reminder>   Fix auth flow",
    "  \n<command-name>a</command-name>\t\n\n  Fix auth flow  \nmore",
    "<system-reminder><system-reminder>x</system-reminder></system-reminder>Fix auth flow",
])
def test_strips_each_wrapper_family(message):
    assert fallback_title(message) == "Fix auth flow"


@pytest.mark.parametrize("message", [
    "", "   \n\t ",
    "<command-message>review</command-message>\n<system-reminder>context</system-reminder>",
    "<command-name>/clear</command-name>\n<command-message>clear</command-message>\n<command-args></command-args>",
    "<local-command-stdout></local-command-stdout>   \n ",
])
def test_control_only_or_empty_gives_none(message):
    assert fallback_title(message) is None


def test_first_meaningful_line_trimmed():
    assert fallback_title("\n  \n  Fix auth flow  \nAdditional details") == "Fix auth flow"
    assert fallback_title("a\r\nb") == "a"
    assert fallback_title("\u3000 wide space \u3000\nx") == "wide space"


@pytest.mark.parametrize("message", [
    "<user-note>Keep this text</user-note> Fix auth flow",
    "Explain <system-reminder> tags",
    "<SYSTEM-REMINDER>x</SYSTEM-REMINDER> y",
])
def test_unknown_or_inline_tags_kept(message):
    assert fallback_title(message) == message


@pytest.mark.parametrize("message,expected", [
    # unmatched opening tag: stripping stops, the line is taken as is
    ("<system-reminder>never closed\nFix", "<system-reminder>never closed"),
    # mis-nested: the inner wrapper closes after the outer one
    ("<system-reminder><command-name>x</system-reminder></command-name>\nFix", "<system-reminder><command-name>x</system-reminder></command-name>"),
    # a stray closing tag first is not a wrapper
    ("</system-reminder>Fix", "</system-reminder>Fix"),
    # stripping stops at the first non-wrapper; later wrappers stay
    ("<command-name>a</command-name>\nFix <command-args>b</command-args>", "Fix <command-args>b</command-args>"),
    ("<command-name>a</command-name>\n<command-args>unclosed\nFix", "<command-args>unclosed"),
])
def test_mis_nested_or_unmatched_stops_stripping(message, expected):
    assert fallback_title(message) == expected


def test_cut_at_120_chars():
    assert fallback_title("x" * 120) == "x" * 120
    title = fallback_title("x" * 121)
    assert title == "x" * 117 + "..." and len(title) == TITLE_MAX_LEN
    title = fallback_title("<command-name>c</command-name>\n" + "é☕" * 100)
    assert title == ("é☕" * 100)[:117] + "..."


def test_choose_precedence():
    assert choose("Custom", "AI", "fallback", True) == "Custom"
    assert choose(None, "AI", "fallback", True) == "AI"
    assert choose(None, None, "fallback", True) == "fallback"
    assert choose(None, None, None, True) == FALLBACK_TITLE == "Imported session"
    assert choose(None, None, None, False) is None
    assert choose("", "", None, True) == FALLBACK_TITLE


def test_custom_and_ai_titles_verbatim():
    long = "<system-reminder>Keep this custom title</system-reminder> " + "y" * 200
    assert choose(long, "AI", "f", True) == long
    assert choose(None, "<command-message>Keep this AI title</command-message>", "f", True) == (
        "<command-message>Keep this AI title</command-message>")


# ---------------------------------------------------------------- our readable rule, one message

# Claude Code's own shapes: the caveat it writes before local commands (bare in older files), a
# built-in command (indented continuation lines), a custom command, the interrupt notes.
CAVEAT = ("Caveat: The messages below were generated by the user while running local commands. DO NOT respond "
          "to these messages or otherwise consider them in your response unless the user explicitly asks you to.")
CLEAR = ("<command-name>/clear</command-name>\n            <command-message>clear</command-message>\n"
         "            <command-args></command-args>")
ORCHESTRATOR = ("<command-message>orchestrator is running…</command-message>\n<command-name>/orchestrator</command-name>\n"
                "<command-args>update CLAUDE.md with the new layout</command-args>")
EXTERNAL_LINKS = ("<external_links>\n### Potentially Relevant Websearch Results\n\nYou should respond as if these "
                  "information are known to you.\n\n-------\nWebsite URL: https://example.invalid/docs\n"
                  "Website Title: Docs\n</external_links>\n<user_query>\nHow do I configure the retry policy?\n"
                  "</user_query>")


@pytest.mark.parametrize("text,codex,ours", [
    ("<command-name>/init</command-name>", None, "/init"),
    ("<command-message>init is analyzing your codebase…</command-message>\n<command-name>/init</command-name>",
     None, "/init"),
    (ORCHESTRATOR, None, "/orchestrator update CLAUDE.md with the new layout"),
    ("<command-name>review</command-name>\n<command-args>src/a.py\nand the tests</command-args>", None, "/review src/a.py"),
    (EXTERNAL_LINKS, "<external_links>", "How do I configure the retry policy?"),
    ("<attached_files>\n<file path=\"a.py\"/>\n</attached_files>\n<user_query>Explain a.py</user_query>",
     "<attached_files>", "Explain a.py"),
    ("<context>\nopen files: a.py\n</context>\nFix the import", "<context>", "Fix the import"),
    ("<bash-input>git status</bash-input>\nwhy is main behind?", "<bash-input>git status</bash-input>",
     "why is main behind?"),
    ('<teammate-message teammate_id="t1" color="blue">done with step 1</teammate-message>\nNow step 2',
     '<teammate-message teammate_id="t1" color="blue">done with step 1</teammate-message>', "Now step 2"),
    (CAVEAT + "\nRun the build", CAVEAT[:117] + "...", "Run the build"),
    ("[Request interrupted by user]\nUse the other branch", "[Request interrupted by user]", "Use the other branch"),
    ("[Image #1]\nwhat is wrong in this screenshot?", "[Image #1]", "what is wrong in this screenshot?"),
    ("[external unsupported block: image]\n\nHere is a screenshot", "[external unsupported block: image]",
     "Here is a screenshot"),
    ("[external_agent_tool_result: error]\nThe user doesn't want to proceed\n[/external_agent_tool_result]\n\n"
     "Try it with --dry-run", "[external_agent_tool_result: error]", "Try it with --dry-run"),
    # a mis-nested wrapper: Codex stops at it, we skip the stray closing tag
    ("<system-reminder><command-name>x</system-reminder></command-name>\nFix",
     "<system-reminder><command-name>x</system-reminder></command-name>", "Fix"),
    ("<command-name>a</command-name>\n<command-args>unclosed\nFix", "<command-args>unclosed", "Fix"),
    # a tag alone on its line that never closes: only that line is skipped
    ("<external_links>\nnever closed", "<external_links>", "never closed"),
])
def test_readable_title_where_codex_is_not(text, codex, ours):
    assert fallback_title(text) == codex
    assert readable_title(text) == (ours, False)


@pytest.mark.parametrize("text", [
    # Codex's readable titles stay exactly as Codex picks them
    "  Fix the naïve café bug ☕  \n\nIt crashes",
    "<command-message>review</command-message>\n<command-name>/review</command-name>\n"
    "<command-args>src/auth.rs</command-args>\nFix auth flow",
    "<system-reminder>x</system-reminder><system-reminder>y</system-reminder>   Fix auth flow",
    "<user-note>Keep this text</user-note> Fix auth flow",
    "Explain <system-reminder> tags",
    "<SYSTEM-REMINDER>x</SYSTEM-REMINDER> y",
    "<b>Bold</b> claim about the parser",
    "[Image #1] what is wrong here?",
    "Caveat: this is my own sentence",
    "x" * 121,
    "<command-name>c</command-name>\n" + "é☕" * 100,
])
def test_readable_title_keeps_codex_title_when_it_is_readable(text):
    assert readable_title(text) == (fallback_title(text), False)


@pytest.mark.parametrize("text", [
    "", " \n\t", "[Request interrupted by user]", "[Request interrupted by user for tool use]", CAVEAT,
    "<local-command-caveat>" + CAVEAT + "</local-command-caveat>",
    "<local-command-stdout>(no content)</local-command-stdout>",
    "<user_query>   </user_query>", "</command-name>",
    "[external_agent_tool_result: error]\nThe user doesn't want to proceed\n[/external_agent_tool_result]\n\n"
    "[Request interrupted by user for tool use]",
])
def test_no_readable_title(text):
    assert readable_title(text) == (None, False)


@pytest.mark.parametrize("text,name", [
    (CLEAR, "/clear"),
    ("<command-name>/model</command-name>\n<command-message>model</command-message>\n<command-args>opus</command-args>",
     "/model opus"),
    ("<command-name>/ide</command-name>\n<command-message>ide</command-message>\n<command-args></command-args>", "/ide"),
])
def test_housekeeping_commands_are_weak(text, name):
    assert readable_title(text) == (name, True)


def test_command_title_cut_at_120_chars():
    title, weak = readable_title(f"<command-name>/plan</command-name>\n<command-args>{'a' * 200}</command-args>")
    assert title == f"/plan {'a' * 200}"[:117] + "..." and len(title) == TITLE_MAX_LEN and not weak


# ---------------------------------------------------------------- over a session's user messages

def fold_titles(texts, state=None):
    state = state or TitleState()
    for text in texts:
        if not state.settled(state.best()):  # as render.py does: its fallback_title is best()
            state = state.observe(text)
    return state


@pytest.mark.parametrize("texts,best,codex", [
    ([CAVEAT, CLEAR, "<local-command-stdout></local-command-stdout>", "Fix the flaky test", "later"],
     "Fix the flaky test", CAVEAT[:117] + "..."),
    ([CLEAR, "<local-command-stdout>(no content)</local-command-stdout>"], "/clear", None),
    # Codex's pick stays open after ours is final (for --codex-compatible)
    ([CLEAR, "<command-name>/init</command-name>", "Please analyze this codebase", "later"], "/init",
     "Please analyze this codebase"),
    (["[Request interrupted by user]"], "[Request interrupted by user]", "[Request interrupted by user]"),
    (["<local-command-stdout></local-command-stdout>"], None, None),
    ([EXTERNAL_LINKS, "second"], "How do I configure the retry policy?", "<external_links>"),
    (["first", CLEAR], "first", "first"),
])
def test_title_state_over_messages(texts, best, codex):
    state = fold_titles(texts)
    assert state.best() == best and state.codex == codex


def test_a_state_from_an_older_ledger_keeps_its_title():
    """A row written before this rule has a fallback title and no candidates: it stays settled."""
    assert TitleState().settled("<external_links>")
    assert not TitleState().settled(None)
    assert not TitleState(weak="/clear").settled("/clear")
    assert not TitleState(readable="/init").settled("/init") and TitleState(readable="/init", codex="x").settled("/init")


def test_scan_is_bounded():
    """A title behind more than MAX_STEPS injected blocks is not looked for (a pathological message
    costs a bounded number of passes); one behind fewer is found."""
    assert readable_title("<bash-input>x</bash-input>" * (MAX_STEPS - 1) + "Fix it") == ("Fix it", False)
    assert readable_title("<bash-input>x</bash-input>" * MAX_STEPS + "Fix it") == (None, False)


messages = st.lists(st.sampled_from([CAVEAT, CLEAR, ORCHESTRATOR, EXTERNAL_LINKS, "[Request interrupted by user]",
                                     "<local-command-stdout></local-command-stdout>", "Fix it", "  \n", "later"])
                    | st.text(max_size=40), max_size=8)


@given(messages, st.integers(0, 8))
def test_title_state_resumes_through_the_ledger(texts, cut):
    """Folding the messages in two pieces, the state round-tripped through msgpack between them, gives
    the same value as folding them at once."""
    whole = fold_titles(texts)
    first = msgspec.msgpack.decode(msgspec.msgpack.encode(fold_titles(texts[:cut])), type=TitleState)
    assert fold_titles(texts[cut:], first) == whole
