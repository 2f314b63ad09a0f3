"""Thread titles (codex-importer.md §2.6; cases ported from Codex's own title tests)."""

from __future__ import annotations

import pytest

from daemon.codex.title import FALLBACK_TITLE, TITLE_MAX_LEN, choose, fallback_title


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
