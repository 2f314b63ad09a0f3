"""`session-syncd doctor`: check the setup, one line per check, each problem with its fix.

Owns: the checks and their wording. Each check is a small function returning `Check` values; the pure
ones take plain data (a watch limit and a folder count, a version string), the others do their one
probe (a stat, a write of a temporary file, a read-only SQLite open, a subprocess with a timeout).
Must not: change the setup. The only writes are probe files, removed at once; nothing it runs can hang
(every subprocess has a timeout).

Exit code: 1 if any check FAILs, else 0 (warnings are advice).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal, TextIO

import msgspec

from daemon import pidlock
from daemon.config import Config, Paths, default_config_path
from daemon.private import probe_writable
from daemon.status import duration

Level = Literal["ok", "warn", "FAIL"]
SUBPROCESS_TIMEOUT_S = 5.0
INOTIFY_LIMIT_FILE = Path("/proc/sys/fs/inotify/max_user_watches")
INOTIFY_HEADROOM = 2  # other programs (editors, IDEs) share the per-user watch limit: warn above half
CODEX_BIN_ENV = "SESSION_SYNCD_CODEX_BIN"


class Check(msgspec.Struct, kw_only=True):
    level: Level
    name: str
    message: str
    fix: str | None = None

    def line(self) -> str:
        return f"{self.level:<4}  {self.name:<10}  {self.message}" + (f"; fix: {self.fix}" if self.fix else "")


def ok(name: str, message: str) -> Check:
    return Check(level="ok", name=name, message=message)


def warn(name: str, message: str, fix: str | None = None) -> Check:
    return Check(level="warn", name=name, message=message, fix=fix)


def fail(name: str, message: str, fix: str | None = None) -> Check:
    return Check(level="FAIL", name=name, message=message, fix=fix)


# -- pure checks -----------------------------------------------------------------------------------


def check_inotify(folders: int, limit: int | None) -> Check:
    """Recursive watches cost one inotify watch per folder, out of a per-user limit."""
    if limit is None:
        return ok("inotify", f"{folders} folder(s) to watch; no watch limit to check on this system")
    target = max(524288, 1 << (folders * 4 - 1).bit_length())
    fix = (f"raise the limit: echo fs.inotify.max_user_watches={target} | "
           "sudo tee /etc/sysctl.d/90-session-syncd.conf && sudo sysctl --system")
    message = f"{folders} folder(s) to watch, limit {limit} (fs.inotify.max_user_watches)"
    if folders > limit:
        return fail("inotify", message + "; the daemon polls the rest every poll_interval_s", fix)
    if folders * INOTIFY_HEADROOM > limit:
        return warn("inotify", message + "; editors and other watchers share that limit", fix)
    return ok("inotify", message)


def parse_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in m.groups()) if m else None


def check_codex_version(output: str, where: str, written: str) -> Check:
    """`written` is the Codex version whose rollout format we write (engine.CLI_VERSION)."""
    have, ours = parse_version(output), parse_version(written)
    text = output.strip().splitlines()[0] if output.strip() else "?"
    if have is None or ours is None:
        return warn("codex", f"{where} --version printed {text!r}, not a version",
                    "check that it is the Codex CLI")
    if have < ours:
        return warn("codex", f"{text} ({where}) is older than the rollout format session-syncd writes ({written})",
                    "upgrade Codex (npm install -g @openai/codex)")
    return ok("codex", f"{text} ({where}); threads are written in the {written} rollout format")


# -- probing checks --------------------------------------------------------------------------------


def check_config(config_path: Path | None, config_error: str | None, env: Mapping[str, str]) -> Check:
    if config_error is not None:
        return fail("config", config_error)
    path = config_path or default_config_path(env)
    if not path.exists():
        return ok("config", f"no config file at {path}; using defaults")
    return ok("config", f"{path} parses")


def check_roots(cfg: Config, env: Mapping[str, str]) -> tuple[list[Check], list[Path]]:
    """One line per source root; also the roots that exist (for the inotify count)."""
    from daemon.discover import roots
    from daemon.sources import SOURCES, base

    checks: list[Check] = []
    existing: list[Path] = []
    for kind in SOURCES:
        sc = cfg.sources.get(kind)
        if sc is not None and not sc.enabled:
            checks.append(ok(kind, "disabled in the config"))
    for root in roots(cfg, env):
        kind, path = root.kind, root.path
        config_fix = f"fix `roots` under [sources.{kind}] in the config, or the --{kind}-root flag"
        if not path.exists():
            if root.explicit:
                checks.append(fail(kind, f"folder {path} does not exist", config_fix))
            else:
                checks.append(ok(kind, f"not installed ({path} does not exist)"))
            continue
        if not path.is_dir():
            checks.append(fail(kind, f"{path} is not a folder", config_fix))
            continue
        try:
            sessions = sum(1 for _ in base.sessions(root.source, path, children=root.children))
            os.listdir(path)
        except OSError as exc:
            checks.append(fail(kind, f"cannot read {path}: {exc.strerror}", f"chmod u+rx {path}"))
            continue
        existing.append(path)
        checks.append(ok(kind, f"{path}: {sessions} session(s)"))
    return checks, existing


def count_folders(roots: list[Path]) -> int:
    """Folders a recursive watch on each root covers (each costs one inotify watch)."""
    total = 0
    for root in roots:
        for _dirpath, _dirnames, _files in os.walk(root):
            total += 1
    return total


def read_watch_limit(path: Path = INOTIFY_LIMIT_FILE) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


USER_NS_LIMIT_FILE = Path("/proc/sys/user/max_inotify_watches")


def effective_watch_limit() -> int | None:
    """The watch limit that applies to us: the system's, or a user namespace's own when lower (a
    container, a sandbox); ENOSPC comes from whichever runs out first."""
    limits = [n for n in (read_watch_limit(), read_watch_limit(USER_NS_LIMIT_FILE)) if n is not None]
    return min(limits) if limits else None


def check_codex_home(codex_home: Path) -> Check:
    fix = f"make it writable (chmod u+rwx {codex_home}) or point CODEX_HOME / --codex-home elsewhere"
    problem = probe_writable(codex_home)
    if problem is not None:
        return fail("codex home", f"Codex home {codex_home}: {problem}", fix)
    if not codex_home.exists():
        return warn("codex home", f"Codex home {codex_home} does not exist yet (created on the first import)",
                    "run Codex once, or check CODEX_HOME / --codex-home if Codex lives elsewhere")
    return ok("codex home", f"{codex_home} is writable")


def find_codex(env: Mapping[str, str]) -> str | None:
    explicit = env.get(CODEX_BIN_ENV)
    if explicit:
        return explicit
    return shutil.which("codex", path=env.get("PATH", os.defpath))


def check_codex(env: Mapping[str, str]) -> Check:
    from daemon.engine import CLI_VERSION

    binary = find_codex(env)
    if binary is None:
        return warn("codex", "codex not found on PATH; threads are still written, but cannot be checked",
                    "install Codex (npm install -g @openai/codex) or put it on PATH")
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, env=dict(env),
                              timeout=SUBPROCESS_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return warn("codex", f"{binary} --version did not answer in {SUBPROCESS_TIMEOUT_S:.0f} s",
                    "check that it is the Codex CLI")
    except OSError as exc:
        return warn("codex", f"cannot run {binary}: {exc.strerror}", f"check {binary}, or reinstall Codex")
    if done.returncode != 0:
        return warn("codex", f"{binary} --version exited {done.returncode}", "reinstall Codex")
    return check_codex_version(done.stdout, binary, CLI_VERSION)


def check_ledger(ledger: Path) -> Check:
    """Opened read-write without creating or migrating: `PRAGMA integrity_check` and the schema version. A
    corrupt ledger's fix is `ledger rebuild` (daemon/rebuild.py), which loses no thread."""
    from daemon.ledger import SCHEMA_VERSION

    aside = (f"stop the daemon and run `session-syncd ledger rebuild`: it moves {ledger} and its -wal/-shm files "
             "aside and rebuilds the ledger from the threads in the Codex home, so none is imported twice")
    if not ledger.exists():
        return ok("ledger", f"none yet at {ledger} (created by the first import)")
    try:
        db = sqlite3.connect(f"file:{ledger}?mode=rw", uri=True, timeout=SUBPROCESS_TIMEOUT_S)
    except sqlite3.Error as exc:
        return fail("ledger", f"cannot open {ledger}: {exc}", "check its permissions")
    try:
        rows = [r[0] for r in db.execute("PRAGMA integrity_check")]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        return fail("ledger", f"{ledger} is corrupt ({exc})", aside)
    finally:
        db.close()
    if rows != ["ok"]:
        first = rows[0] if rows else "no answer"
        return fail("ledger", f"{ledger} fails its integrity check ({len(rows)} problem(s): {first})", aside)
    if version > SCHEMA_VERSION:
        return fail("ledger", f"{ledger} has schema {version}, newer than this session-syncd ({SCHEMA_VERSION})",
                    "upgrade session-syncd")
    if version < SCHEMA_VERSION:
        return ok("ledger", f"{ledger}: integrity ok, schema {version} (migrated to {SCHEMA_VERSION} on next start)")
    return ok("ledger", f"{ledger}: integrity ok, schema {version}")


def check_dir(name: str, folder: Path, what: str) -> Check:
    problem = probe_writable(folder)
    if problem is not None:
        return fail(name, f"{what} {folder}: {problem}", f"make it writable (chmod u+rwx {folder}) or set "
                    "state_dir in the config")
    return ok(name, f"{folder} is writable")


def _run(argv: list[str], env: Mapping[str, str]) -> tuple[int, str] | None:
    """Exit code and output, or None if it could not run or did not answer in time."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=dict(env), timeout=SUBPROCESS_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.returncode, (done.stdout + done.stderr).strip()


def check_service(paths: Paths, env: Mapping[str, str], manager: str | None) -> list[Check]:
    """Is a unit/agent installed, does `manager` (None: no service manager here) run it, and does a daemon
    hold the lock."""
    from service import launchd, systemd

    info = pidlock.read(paths.state_dir)
    if info is not None and info.role != "daemon":
        info = None  # a one-shot import holds the lock: no daemon
    checks: list[Check] = []
    install = "session-syncd service install"
    if manager == "launchd":
        unit = launchd.agents_dir(paths.home) / launchd.PLIST
    else:
        unit = systemd.unit_dir(env) / systemd.UNIT
    if unit.exists():
        checks.append(ok("service", f"installed ({unit})"))
    elif manager is None:
        checks.append(ok("service", "no service manager here (systemd is not running, not macOS)")
                      if info is not None else
                      warn("service", "no service manager here (systemd is not running, not macOS)",
                           "run `session-syncd run` under your own supervisor"))
    else:
        checks.append(warn("service", f"not installed ({unit} does not exist)", install))
    if manager == "systemd" and unit.exists():
        answer = _run(["systemctl", "--user", "is-active", systemd.UNIT], env)
        if answer is None or answer[1] not in ("active", "activating", "reloading", "inactive", "failed",
                                               "deactivating"):
            checks.append(warn("service", f"cannot ask systemd about {systemd.UNIT}"
                               + (f" ({answer[1].splitlines()[0]})" if answer and answer[1] else ""),
                               systemd.BUS_HINT))
        elif answer[1] in ("active", "activating", "reloading"):
            checks.append(ok("service", f"{systemd.UNIT} is {answer[1]}"))
        else:
            checks.append(fail("service", f"{systemd.UNIT} is {answer[1]}",
                               f"see `journalctl --user -u {systemd.UNIT}`, then `session-syncd service restart`"))
    elif manager == "launchd" and unit.exists():
        answer = _run(["launchctl", "print", launchd.target(os.getuid())], env)
        if answer is None:
            checks.append(warn("service", "launchctl did not answer", launchd.GUI_HINT))
        elif answer[0] != 0:
            checks.append(fail("service", f"{launchd.LABEL} is installed but not loaded", install))
        elif "state = running" not in answer[1]:
            checks.append(fail("service", f"{launchd.LABEL} is loaded but not running",
                               f"see {paths.log_dir}, then `session-syncd service restart`"))
        else:
            checks.append(ok("service", f"{launchd.LABEL} is running"))
    if info is not None:
        uptime = f", up {duration(time.time() - info.started_at)}" if info.started_at else ""
        checks.append(ok("daemon", f"running (pid {info.pid}, {info.manager}{uptime}, version {info.version})"))
    else:
        checks.append(warn("daemon", f"not running (no live lock in {paths.state_dir})",
                           f"{install}, or `session-syncd run`"))
    return checks


def checks(cfg: Config, paths: Paths, env: Mapping[str, str], *, config_path: Path | None = None,
           config_error: str | None = None, platform: str | None = None) -> Iterator[Check]:
    """Every check, in the order they print."""
    yield check_config(config_path, config_error, env)
    root_checks, existing = check_roots(cfg, env)
    yield from root_checks
    if (platform or sys.platform).startswith("linux"):
        yield check_inotify(count_folders(existing), effective_watch_limit())
    yield check_codex_home(paths.codex_home)
    yield check_codex(env)
    yield check_dir("state dir", paths.state_dir, "state dir")
    yield check_ledger(paths.ledger)
    yield check_dir("logs", paths.log_dir, "log dir")
    from service.commands import detect_manager

    yield from check_service(paths, env, detect_manager(platform or sys.platform))


def main(cfg: Config, paths: Paths, env: Mapping[str, str], *, config_path: Path | None = None,
         config_error: str | None = None, out: TextIO | None = None) -> int:
    """Print one line per check; 1 if any FAILed. `config_error` is the load error when the config file
    is bad (then `cfg`/`paths` are the defaults and the other checks still run)."""
    out = out or sys.stdout
    failed = False
    for check in checks(cfg, paths, env, config_path=config_path, config_error=config_error):
        out.write(check.line() + "\n")
        out.flush()
        failed = failed or check.level == "FAIL"
    return 1 if failed else 0


__all__ = ["Check", "check_inotify", "check_codex_version", "checks", "main"]
