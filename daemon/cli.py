"""The `session-syncd` command line: parse arguments and config, set up logging, dispatch.

Owns argument names and exit codes (0 ok, 1 something failed, 2 bad usage/config). Commands import
their modules lazily so that a no-change `import` or a `status` starts fast.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn


def _import_msgspec() -> None:
    """Import msgspec without typing_extensions, which it imports (when installed, as trio's dependency)
    only for a `get_type_hints` that on Python >= 3.11 does what typing's own does for every type we
    declare; it costs ~18 ms (it pulls in inspect, ast and dis), as much as a no-op command's own work.
    msgspec falls back to typing when the import fails; later importers of typing_extensions get it."""
    if "msgspec" in sys.modules or "typing_extensions" in sys.modules:
        return
    sys.modules["typing_extensions"] = None  # type: ignore[assignment]  # makes `import` raise ImportError
    try:
        import msgspec  # noqa: F401
    finally:
        del sys.modules["typing_extensions"]


_import_msgspec()

from daemon.config import Config, ConfigError, Paths, SourceConfig, load, resolve_paths  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _columns() -> int:
    """`shutil.get_terminal_size().columns` without importing shutil (and zlib, bz2 and lzma with it)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse makes a formatter for every `add_argument` (to check its metavar), and the stock one
    imports shutil (with zlib, bz2, lzma: ~4 ms) to ask for the terminal's width, for every command."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser with that formatter; its subcommands' parsers are of this class too."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def _skip_missing_translations() -> None:
    """argparse has gettext translate each of its own strings ("options", "show this help message…"), and
    gettext imports locale (~1.5 ms of a ~85 ms command) to expand the user's language names before it looks
    for a catalog in its locale folder (<sys.base_prefix>/share/locale unless a program bound another).
    Where that folder does not exist (CPython installs none: pyenv, python.org and uv builds have none) no
    lookup can find a translation, so argparse gets the identity it would fall back to."""
    import gettext  # argparse's own import: already loaded

    if not os.path.isdir(gettext.bindtextdomain(gettext.textdomain())):
        argparse._ = str  # type: ignore[attr-defined]  # noqa: SLF001


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (default: $XDG_CONFIG_HOME/session-syncd/config.toml)")
    p.add_argument("--codex-home", help="Codex home to write threads into (default: $CODEX_HOME or ~/.codex)")
    p.add_argument("--state-dir", help="where the ledger and logs live (default: $XDG_STATE_HOME/session-syncd)")
    from daemon.sources import PLUGINS  # the registry: one --<kind>-root flag per agent

    for kind, plugin in PLUGINS.items():
        p.add_argument(f"--{kind}-root", action="append", metavar="DIR",
                       help=f"{plugin.label} sessions folder (repeatable; default: the agent's own)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))


def _import_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--max-age", type=float, metavar="DAYS", help="only sessions modified in the last DAYS days")
    p.add_argument("--max-sessions", type=int, metavar="N", help="only the N most recently modified sessions")
    p.add_argument("--codex-compatible", action="store_true", default=None,
                   help="write threads exactly as Codex's own importer does (its session_meta, write-time stamps, "
                        "its titles, the 50 newest sessions of 30 days unless --max-age/--max-sessions say otherwise)")
    p.add_argument("--max-inflight", "--workers", dest="workers", type=int, metavar="N",
                   help="sessions processed at once (default: twice the cores, three times for sessions under 1 MiB)")
    p.add_argument("--restore", action="append", metavar="SESSION_ID|all",
                   help="import again a session whose thread you deleted in Codex (or all such sessions)")
    p.add_argument("--executor", choices=("auto", "process", "thread"), default="auto", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print a machine-readable summary instead of the summary line")


def _common_and_json(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--json", action="store_true")


def _ledger_args(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="ledger_action", required=True, metavar="ACTION")
    _common_and_json(actions.add_parser(
        "rebuild", help="move a corrupt or lost ledger aside and rebuild it from the threads in the Codex home, "
        "so the next import neither re-imports nor duplicates them"))


# name → (its line in `--help`, what adds its arguments); logs and service parse their own arguments.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None]] = {
    "import": ("import every session once, then exit", _import_args),
    "run": ("run the daemon in the foreground: watch and keep every session in sync", _common),
    "status": ("is the daemon running, and how is each source doing", _common_and_json),
    "doctor": ("check the setup, one line per check, with the fix", _common),
    "ledger": ("repair the ledger (`ledger rebuild`: re-derive it from the Codex home)", _ledger_args),
    "logs": ("query the structured log (see `session-syncd logs --help`)", None),
    "service": ("install/uninstall/status/restart the background service", None),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (`command` one of ours) one with that command alone: each parser and argument
    costs a formatter and argparse's gettext lookups, a few ms of every command's start-up. Anything else
    (`--help`, a typo) gets the whole one, whose help and errors list every command."""
    _skip_missing_translations()
    parser = _Parser(prog="session-syncd", description=(
        "Keep coding-agent sessions (Claude Code, Cursor, Gemini CLI, Copilot CLI, OpenCode, Qwen Code) "
        "continuously imported as Codex threads."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (line, add_arguments) in _COMMANDS.items():
        if command in _COMMANDS and name != command:
            continue
        p = sub.add_parser(name, help=line, add_help=add_arguments is not None)
        if add_arguments is not None:
            add_arguments(p)
    return parser


def load_config(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[Config, Paths]:
    """Config file, then flags on top of it."""
    cfg, _path = load(args.config, env)
    updates: dict[str, object] = {}
    if args.codex_home:
        updates["codex_home"] = args.codex_home
    if args.state_dir:
        updates["state_dir"] = args.state_dir
    if getattr(args, "log_level", None):
        updates["log_level"] = args.log_level
    for attr, key in (("max_age", "max_age_days"), ("max_sessions", "max_sessions"), ("workers", "max_inflight"),
                      ("codex_compatible", "codex_compatible")):
        value = getattr(args, attr, None)
        if value is not None:
            updates[key] = value
    sources = dict(cfg.sources)
    import msgspec

    from daemon.sources import SOURCES

    for kind in SOURCES:
        roots = getattr(args, f"{kind}_root", None)
        if roots:
            # the flag names the roots and enables the agent; its other settings stay the config file's
            sources[kind] = msgspec.structs.replace(sources.get(kind) or SourceConfig(), enabled=True,
                                                    roots=[str(Path(r).absolute()) for r in roots])
    updates["sources"] = sources

    try:
        cfg = msgspec.convert(msgspec.to_builtins(msgspec.structs.replace(cfg, **updates)), Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"bad command-line value: {exc}") from None
    return cfg, resolve_paths(cfg, env)


def _state_lock(paths, env: Mapping[str, str], role: str):
    """The state dir's lock for a one-shot command, or None after printing the one-line reason."""
    from daemon import pidlock

    try:
        return pidlock.acquire(paths.state_dir, env, role=role)
    except pidlock.AlreadyRunning as exc:
        if exc.role == "daemon" and role == "import":
            print(f"session-syncd: the daemon (pid {exc.pid}) is running and keeps every session in sync; "
                  "`import` is not needed (stop the daemon first to run it by hand)", file=sys.stderr)
        else:
            print(f"session-syncd: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"session-syncd: cannot use the state dir {paths.state_dir}: {exc.strerror}; "
              "fix its permissions or point XDG_STATE_HOME / --state-dir elsewhere", file=sys.stderr)
    return None


def _print_summary(as_json: bool, summary, line) -> None:
    """A one-shot command's result: JSON on stdout, or its problems on stderr and one summary line."""
    if as_json:
        import msgspec

        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
        return
    for message in summary.errors:
        print(f"session-syncd: {message}", file=sys.stderr)
    print(line(summary))


def _restore(paths, wanted: list[str]) -> None:
    """Lift the tombstones of sessions whose threads were deleted in Codex (`--restore ID|all`)."""
    from daemon.ledger import Ledger

    ledger = Ledger(paths.ledger)
    try:
        n = sum(ledger.restore(session_id=None if w == "all" else w) for w in dict.fromkeys(wanted))
    finally:
        ledger.close()
    print(f"session-syncd: restored {n} session(s) whose thread was deleted in Codex", file=sys.stderr)


def cmd_import(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    import functools

    from daemon.importer import run_import, summary_line
    from daemon.logfile import FileLog
    from daemon.ledger import LedgerError

    cfg, paths = load_config(args, env)
    lock = _state_lock(paths, env, "import")  # no daemon starts during an import, no second import beside it
    if lock is None:
        return EXIT_FAILED
    # The file only (no console), without structlog; opened on first use, when the workers already fold.
    logger = functools.cache(lambda: FileLog(paths.log_dir, cfg.log_level))
    from daemon.codex import homelock

    with lock:
        try:
            home = homelock.acquire_if_possible(paths.codex_home, "import", paths.state_dir)
        except homelock.HomeBusy as exc:
            print(f"session-syncd: {exc}", file=sys.stderr)
            return EXIT_FAILED
        try:
            if args.restore:
                _restore(paths, args.restore)
            summary = run_import(cfg, paths, env, logger, executor_mode=args.executor)
        except LedgerError as exc:
            print(f"session-syncd: {exc}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            home.release()
    logger().info("import.done", imported=summary.imported, unchanged=summary.unchanged, skipped=summary.skipped,
                failed=summary.failed, sessions=summary.sessions, bytes=summary.bytes_read,
                duration_ms=round(summary.duration_s * 1000, 1))
    logger().close()
    _print_summary(args.json, summary, summary_line)
    return EXIT_FAILED if summary.failed else EXIT_OK


def cmd_run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from daemon.main import run_daemon

    cfg, paths = load_config(args, env)
    return run_daemon(cfg, paths, env, args)


def cmd_status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from daemon.status import main as status_main

    cfg, paths = load_config(args, env)
    return status_main(cfg, paths, env, as_json=args.json)


def cmd_doctor(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Doctor must report a broken config as one of its checks, so it falls back to the defaults."""
    from daemon.doctor import main as doctor_main

    try:
        cfg, paths = load_config(args, env)
    except ConfigError as exc:
        cfg = Config()
        return doctor_main(cfg, resolve_paths(cfg, env), env, config_path=args.config, config_error=str(exc))
    return doctor_main(cfg, paths, env, config_path=args.config)


def cmd_ledger(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """`ledger rebuild`, under the daemon's lock: nothing else writes the ledger meanwhile."""
    from daemon.ledger import LedgerError
    from daemon.rebuild import rebuild, summary_line

    cfg, paths = load_config(args, env)
    lock = _state_lock(paths, env, "rebuild")
    if lock is None:
        return EXIT_FAILED
    with lock:
        try:
            summary = rebuild(cfg, paths, env)
        except LedgerError as exc:
            print(f"session-syncd: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as exc:
            print(f"session-syncd: cannot rebuild the ledger {paths.ledger}: {exc.strerror} "
                  f"({exc.filename}); fix the state dir's permissions or free space in it", file=sys.stderr)
            return EXIT_FAILED
    _print_summary(args.json, summary, summary_line)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    if argv[:1] == ["logs"]:
        from daemon.logquery import main as logs_main

        parser = _Parser(add_help=False)
        _common(parser)
        known, rest = parser.parse_known_args(argv[1:])
        try:
            _cfg, paths = load_config(known, env)
        except ConfigError as exc:
            print(f"session-syncd: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return logs_main(rest, paths)
    if argv[:1] == ["service"]:
        from service.commands import main as service_main

        return service_main(argv[1:], env)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    handler = {"import": cmd_import, "run": cmd_run, "status": cmd_status, "doctor": cmd_doctor,
               "ledger": cmd_ledger}[args.command]
    try:
        return handler(args, env)
    except ConfigError as exc:
        print(f"session-syncd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """The `session-syncd` entry point: main(), then leave without the interpreter's teardown.

    A finished command needs nothing of that teardown (it frees every module and object one by one: ~6 ms
    of a ~45 ms `status` or no-op `import` on the project's machines). What it must still do is done
    here, in its order: exit handlers, then stdout and stderr flushed; then the process exits. A thread
    still running, or a stream that cannot be flushed, gets the interpreter's own exit instead (it waits
    for the thread; it reports the stream as it always has).
    """
    code = main()
    threading = sys.modules.get("threading")
    if not isinstance(code, int) or threading is not None and threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()  # what Py_Finalize runs first, once the threads are done
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    run()
