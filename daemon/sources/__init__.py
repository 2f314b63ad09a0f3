"""The registry of agent sources: the one place a new plug-in is added.

Each entry says who the agent is (kind, label), where it keeps its sessions unless the user says
otherwise (`default_roots`: a pure function of the environment) and which module holds its plug-in. The
module is imported the first time the plug-in is used (`SOURCES[kind]`), so a command loads only the
agents it finds: with one agent installed, a no-op `import` or `status` loads one plug-in, not six
(the other five were ~6.5 ms of a ~95 ms command, ~15 % of it, on the project's machines).

Everything that lists agents reads this: CLI flags (`--<kind>-root`), config sections
(`[sources.<kind>]`), discovery's roots, the watcher's file filter, `status` rows and `doctor` checks.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import msgspec

from daemon.config import home_dir
from daemon.sources.base import Identity, Incomplete, ParseContext, Snapshot, Source, SourceState, Version, WatchSpec

Env = Mapping[str, str]


def _claude_roots(env: Env) -> list[Path]:
    base = env.get("CLAUDE_CONFIG_DIR")
    return [Path(base) / "projects" if base else home_dir(env) / ".claude" / "projects"]


def _cursor_roots(env: Env) -> list[Path]:
    return [home_dir(env) / ".cursor" / "projects"]


def _copilot_roots(env: Env) -> list[Path]:
    base = env.get("COPILOT_HOME")  # replaces the whole root and is not ~-expanded
    return [Path(base) if base else home_dir(env) / ".copilot"]


def _expand(value: str, home: Path) -> Path:
    """`~` and `~/x` against HOME, relative paths against our cwd (as Qwen resolves them against its own)."""
    if value == "~":
        return home
    if value.startswith(("~/", "~\\")):
        return home / value[2:]
    return Path(os.path.abspath(value))


def _qwen_roots(env: Env) -> list[Path]:
    runtime = env.get("QWEN_RUNTIME_DIR") or env.get("QWEN_HOME")
    return [(_expand(runtime, home_dir(env)) if runtime else home_dir(env) / ".qwen") / "projects"]


def _gemini_roots(env: Env) -> list[Path]:
    base = env.get("GEMINI_CLI_HOME")  # replaces HOME, under which Gemini CLI keeps .gemini
    return [(Path(base) if base else home_dir(env)) / ".gemini"]


OPENCODE_DB_NAME = "opencode.db"


def is_opencode_db(name: str) -> bool:
    """OpenCode's database file names: `opencode.db`, or `opencode-<channel>.db` for a release channel."""
    return name == OPENCODE_DB_NAME or (name.startswith("opencode-") and name.endswith(".db"))


def _opencode_roots(env: Env) -> list[Path]:
    xdg = env.get("XDG_DATA_HOME")
    data = (Path(xdg) if xdg else home_dir(env) / ".local" / "share") / "opencode"
    roots = [data]
    db = env.get("OPENCODE_DB")
    if db and db != ":memory:":
        path = Path(db) if os.path.isabs(db) else data / db
        # a database named like OpenCode's is found in its folder; any other name is a root of its own
        extra = path.parent if is_opencode_db(path.name) else path
        if extra != data:
            roots.append(extra)
    return roots


class Plugin(msgspec.Struct, frozen=True):
    label: str  # for people: "Claude Code"
    module: str  # holds `SOURCE`, the plug-in (daemon/sources/base.py: `Source`)
    default_roots: Callable[[Env], list[Path]]


# kind (short, stable: the ledger, config sections and CLI flags use it) → its entry
PLUGINS: dict[str, Plugin] = {
    "claude": Plugin("Claude Code", "daemon.sources.claude", _claude_roots),
    "cursor": Plugin("Cursor", "daemon.sources.cursor", _cursor_roots),
    "copilot": Plugin("GitHub Copilot CLI", "daemon.sources.copilot", _copilot_roots),
    "qwen": Plugin("Qwen Code", "daemon.sources.qwen", _qwen_roots),
    "gemini": Plugin("Gemini CLI", "daemon.sources.gemini", _gemini_roots),
    "opencode": Plugin("OpenCode", "daemon.sources.opencode", _opencode_roots),
}


class Registry(Mapping[str, Source]):
    """kind → its plug-in, imported on first use (`importlib` keeps it: nothing is cached here)."""

    def __getitem__(self, kind: str) -> Source:
        name = PLUGINS[kind].module
        module = sys.modules.get(name)  # a sync asks ~5 times: import_module's locking cost ~1 µs each
        if module is None:
            module = importlib.import_module(name)
        return module.SOURCE  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(PLUGINS)

    def __len__(self) -> int:
        return len(PLUGINS)

    def __contains__(self, kind: object) -> bool:
        return kind in PLUGINS


SOURCES = Registry()


def label(kind: str) -> str:
    return PLUGINS[kind].label


def default_roots(kind: str, env: Env) -> list[Path]:
    """Where the agent keeps its sessions when the user names no folder (without loading its plug-in)."""
    return PLUGINS[kind].default_roots(env)


__all__ = ["OPENCODE_DB_NAME", "PLUGINS", "SOURCES", "Identity", "Incomplete", "ParseContext", "Plugin", "Registry",
           "Snapshot", "Source", "SourceState", "Version", "WatchSpec", "default_roots", "is_opencode_db", "label"]
