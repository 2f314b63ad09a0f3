"""Start-up: the no-op paths (`status`, an `import` with nothing to do) import only what they need.

Timing belongs in bench/; what regresses start-up is a heavy module creeping into a fast path, and that
is checked here without a clock: the real CLI runs in a fresh interpreter on a real tree, and the
modules it ended with are compared against the ones it must not need. The tree's one session is first
imported for real, so the second `import` is the true no-op (every stat matches the ledger).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import Tree, make_fixture

# Runs the CLI as `python -m daemon` does, then lists sys.modules; the listing itself imports nothing.
_DRIVER = """
import sys
sys.argv = ["session-syncd", *sys.argv[1:]]
try:
    from daemon.cli import main
    code = main()
finally:
    sys.stdout.flush()
    sys.stderr.write("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n")
sys.exit(code)
"""

# Needed only by the daemon (trio, watchdog, structlog and the asyncio it pulls in), by syncing (the
# engine, worker pools, the fold and renderer) or by nothing we run (typing_extensions, which msgspec would
# import for a get_type_hints we do not need; dataclasses, whose classes each cost a compile at import, and
# the inspect it pulls in: the start-up path's records are msgspec Structs).
NEVER_IN_NO_OP = ("asyncio", "trio", "watchdog", "structlog", "logging", "typing_extensions", "daemon.engine",
                  "daemon.main", "daemon.watch", "daemon.fold", "daemon.codex.render", "concurrent.futures",
                  "multiprocessing", "configparser", "dataclasses", "inspect")
# The version (importlib.metadata) is only the daemon's to write; a writability probe needs no tempfile;
# Codex's import ledger (and the hashing and JSON it needs) only when there is a new session to look up;
# the writer (codex/store.py, blake3, the fault points and their signals) only when there is one to write.
# Neither the no-op import nor `status` hashes anything or reads JSON but msgspec's; `threading` is ~0.6 ms
# of start-up for a lock that `_thread` gives as well.
NOT_IN_IMPORT = (*NEVER_IN_NO_OP, "importlib.metadata", "tempfile", "daemon.codex.mirror", "daemon.codex.codex_ledger",
                 "daemon.codex.store", "daemon.faults", "blake3", "hashlib", "json", "threading")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    tree = make_fixture(tmp_path_factory.mktemp("startup"), sessions=1, mib=0.05)
    first = _run(tree, "import", "--json")
    assert json.loads(first.stdout.splitlines()[-1])["imported"] == 1, first.stdout
    return tree


def _run(tree: Tree, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", _DRIVER, *args], env=tree.env(), cwd=tree.root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _modules(proc: subprocess.CompletedProcess[str]) -> set[str]:
    line = next(x for x in reversed(proc.stderr.splitlines()) if x.startswith("MODULES "))
    return set(line.split()[1:])


def _heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_no_op_import_imports_only_what_it_needs(tree: Tree) -> None:
    proc = _run(tree, "import", "--json")
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert (summary["imported"], summary["unchanged"]) == (0, 1), summary  # really the no-op path
    modules = _modules(proc)
    assert "daemon.importer" in modules and "msgspec" in modules  # the listing is of this run
    assert _heavy(modules, NOT_IN_IMPORT) == []


def test_an_import_with_work_loads_no_dataclasses(tree: Tree, tmp_path: Path) -> None:
    """A first import's serial start (before its workers fork) holds no dataclasses: with the inspect it
    pulls in and a compile per class, they were ~10 ms of it."""
    proc = _run(tree, "import", "--json", "--codex-home", str(tmp_path / "codex"), "--state-dir", str(tmp_path / "state"))
    assert json.loads(proc.stdout.splitlines()[-1])["imported"] == 1, proc.stdout
    modules = _modules(proc)
    assert "daemon.engine" in modules and "daemon.codex.mirror" in modules  # really the path with work
    assert _heavy(modules, ("dataclasses", "inspect")) == []


def test_no_op_import_still_logs_its_summary(tree: Tree) -> None:
    before = tree.log_path.read_bytes().count(b"\n")
    _run(tree, "import")
    lines = tree.log_path.read_text().splitlines()[before:]
    events = [json.loads(x) for x in lines]
    assert [e["event"] for e in events] == ["import.done"]
    assert list(events[0])[:3] == ["timestamp", "level", "event"] and events[0]["unchanged"] == 1


def test_status_imports_only_what_it_needs(tree: Tree) -> None:
    proc = _run(tree, "status", "--json")
    report = json.loads(proc.stdout)
    claude = next(s for s in report["sources"] if s["source"] == "claude")
    assert (claude["sessions"], claude["synced"]) == (1, 1), report
    modules = _modules(proc)
    assert "daemon.status" in modules
    assert _heavy(modules, NOT_IN_IMPORT) == []


def _plugins(modules: set[str]) -> list[str]:
    from daemon.sources import PLUGINS

    return sorted(kind for kind, plugin in PLUGINS.items() if plugin.module in modules)


@pytest.mark.parametrize("command", ["import", "status"])
def test_the_no_op_paths_load_only_the_plug_ins_of_agents_found(tree: Tree, command: str) -> None:
    """Each plug-in is loaded on first use: in a home with Claude Code's folder alone, a no-op `import` and
    `status` load Claude's plug-in and no other; once Gemini CLI's folder appears, Gemini's as well."""
    assert _plugins(_modules(_run(tree, command, "--json"))) == ["claude"]
    gemini = tree.home / ".gemini"
    gemini.mkdir()
    try:
        assert _plugins(_modules(_run(tree, command, "--json"))) == ["claude", "gemini"]
    finally:
        gemini.rmdir()


def test_argparse_looks_for_translations_only_where_there_can_be_some(tree: Tree, tmp_path: Path) -> None:
    """argparse's gettext lookups (they import locale) are skipped when its locale folder does not exist,
    and made as before once a program binds one that does."""
    import gettext

    has_catalogs = os.path.isdir(gettext.bindtextdomain(gettext.textdomain()))
    assert ("locale" in _modules(_run(tree, "status", "--json"))) == has_catalogs
    bound = _DRIVER.replace("from daemon.cli import main",
                            f"import gettext; gettext.bindtextdomain('messages', {str(tmp_path)!r})\n"
                            "    from daemon.cli import main")
    proc = subprocess.run([sys.executable, "-c", bound, "status", "--json"], env=tree.env(), cwd=tree.root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "locale" in _modules(proc)


def test_the_config_structs_carry_real_types() -> None:
    """Every command converts its config; msgspec compiles each string annotation (`from __future__ import
    annotations`) at that conversion, ~1 ms of a no-op command for these two Structs."""
    from daemon.config import Config, SourceConfig

    for struct in (Config, SourceConfig):
        assert not [name for name, kind in struct.__annotations__.items() if isinstance(kind, str)], struct


def test_every_registered_plug_in_is_its_kind() -> None:
    """The registry's kind for a plug-in is the one the plug-in writes into the identities it makes."""
    from daemon.sources import PLUGINS, SOURCES

    assert [SOURCES[kind].kind for kind in PLUGINS] == list(PLUGINS)


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of `parser`, by name."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices  # noqa: SLF001


@pytest.mark.parametrize("columns", ["50", "200"])
def test_help_is_what_argparse_would_print(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    """The formatter that avoids importing shutil wraps help exactly as argparse's own does."""
    from daemon.cli import build_parser

    monkeypatch.setenv("COLUMNS", columns)
    parser = build_parser()
    for p in [parser, *_commands(parser).values()]:
        ours = p.format_help()
        p.formatter_class = argparse.HelpFormatter
        assert ours == p.format_help()
    assert max(map(len, parser.format_help().splitlines())) <= int(columns)


@pytest.mark.parametrize("argv", [
    ["import", "--config", "c.toml", "--claude-root", "a", "--claude-root", "b", "--max-age", "2", "--json"],
    ["status", "--json", "--opencode-root", "o"], ["ledger", "rebuild", "--json"], ["run", "--log-level", "debug"],
    ["doctor", "--state-dir", "s"]])
def test_the_one_command_parser_parses_as_the_whole_one(argv: list[str]) -> None:
    """`main` builds only the invoked command; what it parses is what the whole parser would, and its
    help is the whole parser's help for that command."""
    from daemon.cli import _COMMANDS, build_parser

    one, whole = build_parser(argv[0]), build_parser()
    assert one.parse_args(argv) == whole.parse_args(argv)
    assert list(_commands(one)) == [argv[0]]
    assert _commands(one)[argv[0]].format_help() == _commands(whole)[argv[0]].format_help()
    assert list(_commands(whole)) == list(_COMMANDS)


@pytest.mark.parametrize("argv", [["--help"], ["imprt"]])
def test_help_and_typos_get_the_whole_parser(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """What lists the commands (`--help`, an unknown command) lists every one of them."""
    from daemon.cli import _COMMANDS, main

    with pytest.raises(SystemExit):
        main(argv)
    out = capsys.readouterr()
    listed = out.out + out.err
    assert all(name in listed for name in _COMMANDS), listed


def test_the_driver_sees_heavy_modules_when_they_are_imported(tree: Tree) -> None:
    """The check above can fail: a command that does import the daemon's modules shows them."""
    proc = subprocess.run([sys.executable, "-c", _DRIVER.replace("from daemon.cli import main",
                                                                 "import daemon.main, trio\n    from daemon.cli import main"),
                           "status"], env=tree.env(), cwd=tree.root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "trio" in _heavy(_modules(proc), NOT_IN_IMPORT)


# -- the quick exit (cli.run skips the interpreter's teardown) ---------------------------------------

def _run_entry(tree: Tree, prelude: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`session-syncd ARGS` through the real entry point (cli.run), after `prelude` ran in that process."""
    code = f"import sys\n{prelude}\nsys.argv = ['session-syncd', *sys.argv[1:]]\nfrom daemon.cli import run\nrun()\n"
    return subprocess.run([sys.executable, "-c", code, *args], env=tree.env(), cwd=tree.root,
                          capture_output=True, text=True, timeout=60)


def test_the_quick_exit_runs_exit_handlers_and_flushes_what_they_print(tree: Tree) -> None:
    """Exit handlers run after the command, and what they (and it) wrote to a pipe arrives whole."""
    proc = _run_entry(tree, "import atexit\natexit.register(print, 'exit handler ran')", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    *report, last = proc.stdout.splitlines()
    assert json.loads(report[-1])["ledger_exists"] is True and last == "exit handler ran"


def test_the_quick_exit_keeps_the_exit_code(tree: Tree) -> None:
    """A command's own code (2: a config that does not parse) is the process's, its message said whole."""
    bad = tree.root / "bad.toml"
    bad.write_text("bad = [")
    proc = _run_entry(tree, "", "status", "--config", str(bad))
    assert proc.returncode == 2 and proc.stderr.endswith("fix the syntax\n"), (proc.returncode, proc.stderr)


def test_the_quick_exit_waits_for_a_thread_still_running(tree: Tree) -> None:
    """A thread still running when the command returns is waited for, as the interpreter's exit does."""
    prelude = ("import threading, time\n"
               "threading.Thread(target=lambda: (time.sleep(0.3), print('thread finished', flush=True))).start()")
    proc = _run_entry(tree, prelude, "status")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "thread finished"
