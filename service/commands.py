"""`session-syncd service install|uninstall|status|restart`: the shell around the pure plans.

Owns: argument parsing, picking the service manager, and turning the environment into a ServiceSpec and
paths; then it either prints the plan (--dry-run: writes nothing, runs nothing) or executes it.
Everything the user sees on failure is one line on stderr naming the problem and the fix.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from daemon.config import ConfigError
from service import launchd, systemd
from service.plan import Step, StepFailed, execute, script
from service.spec import DEFAULT_CONFIG_TEXT, ServiceSpec, build_spec

SYSTEMD_MARKER = Path("/run/systemd/system")  # exists iff systemd is PID 1 (sd_booted())
PRIVATE_TMP_ROOTS = (Path("/tmp"), Path("/var/tmp"))


def detect_manager(platform: str, systemd_marker: Path = SYSTEMD_MARKER) -> str | None:
    if platform == "darwin":
        return "launchd"
    if systemd_marker.is_dir():
        return "systemd"
    return None


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dry-run", action="store_true",
                        help="print the unit/plist and the commands; write nothing, run nothing")
    common.add_argument("--manager", choices=("systemd", "launchd"),
                        help="service manager (default: systemd if running, launchd on macOS)")
    common.add_argument("--config", metavar="PATH", help="config file the service will use")
    parser = argparse.ArgumentParser(prog="session-syncd service",
                                     description="Run session-syncd as a per-user background service.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("install", parents=[common], help="install (or re-install) and start the service")
    sub.add_parser("uninstall", parents=[common],
                   help="stop and remove the service (the ledger and Codex threads stay)")
    sub.add_parser("status", parents=[common], help="show the service manager's view of the service")
    sub.add_parser("restart", parents=[common], help="restart the service")
    return parser


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _plan(action: str, manager: str, config: str | None, env: Mapping[str, str],
          python: str, uid: int, err: TextIO, dry_run: bool) -> tuple[list[Step], str]:
    """The steps for `action`, and the line to print when they succeed."""
    if manager == "systemd":
        path = systemd.unit_dir(env) / systemd.UNIT
        check = f"systemctl --user status {systemd.UNIT}"
    else:
        path = launchd.agents_dir(_home(env)) / launchd.PLIST
        check = f"launchctl print {launchd.target(uid)}"
    if action == "status":
        return (systemd.status_plan() if manager == "systemd" else launchd.status_plan(uid)), ""
    if action == "restart":
        return (systemd.restart_plan() if manager == "systemd" else launchd.restart_plan(uid)), "restarted"
    if action == "uninstall":
        if not path.exists():
            return [], f"not installed ({path} does not exist); nothing to do"
        steps = systemd.uninstall_plan(path) if manager == "systemd" else launchd.uninstall_plan(path, uid)
        return steps, f"uninstalled {path}; the ledger, logs, config and Codex threads were left in place"
    spec, config_missing = build_spec(config, env, python)
    if (problem := _private_tmp_problem(spec, manager)) is not None:
        if not dry_run:
            raise StepFailed(problem)
        err.write(f"warning: {problem}\n")
    config_text = DEFAULT_CONFIG_TEXT if config_missing else None
    if manager == "systemd":
        steps = systemd.install_plan(spec, path, config_text)
    else:
        steps = launchd.install_plan(spec, path, uid, config_text)
    return steps, f"installed {path} and started session-syncd; check it with `{check}`"


def _private_tmp_problem(spec: ServiceSpec, manager: str) -> str | None:
    """PrivateTmp=yes gives the unit an empty /tmp: an interpreter living there could never start, so a
    real install refuses (a dry run only warns)."""
    if manager == "systemd" and any(spec.python.is_relative_to(t) for t in PRIVATE_TMP_ROOTS):
        return (f"{spec.python} is under {spec.python.parts[1]!r}, which the unit's PrivateTmp=yes hides from "
                "the service; install session-syncd into a venv outside /tmp and /var/tmp")
    return None


def main(argv: Sequence[str], env: Mapping[str, str], *, out: TextIO | None = None,
         err: TextIO | None = None, python: str | None = None, platform: str | None = None,
         systemd_marker: Path = SYSTEMD_MARKER) -> int:
    """Entry point for `session-syncd service …`. The keyword arguments exist for tests and embedding."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse already printed usage or help
        return int(exc.code or 0)
    manager = args.manager or detect_manager(platform or sys.platform, systemd_marker)
    if manager is None:
        err.write("session-syncd service: no service manager found (systemd is not running and this is not "
                  "macOS); pass --manager systemd|launchd, or run `session-syncd run` under your own supervisor\n")
        return 1
    try:
        steps, done = _plan(args.action, manager, args.config, env, python or sys.executable,
                            os.getuid(), err, args.dry_run)
        if args.dry_run:
            out.write(f"# session-syncd service {args.action} --manager {manager}: dry run, nothing was done\n")
            out.write(script(steps) if steps else f"# {done}\n")
            return 0
        code = execute(steps, env, out)
    except (ConfigError, StepFailed, ValueError) as exc:
        err.write(f"session-syncd service {args.action}: {exc}\n")
        return 1
    if done:
        out.write(done + "\n")
    return code
