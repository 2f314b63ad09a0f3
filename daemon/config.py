"""Configuration: one msgspec Struct, loaded from TOML, with XDG defaults.

Owns: where things live (Codex home, state dir, source roots) and every tunable. It does no I/O beyond
reading the one config file, and it never consults the process environment behind the caller's back:
callers pass `env` explicitly, so tests and the daemon see the same resolution rules.

Precedence: command-line flag > config file > environment-derived default.
"""

# No `from __future__ import annotations`: with string annotations msgspec compiles each one when it
# converts a config (every command converts one: ~1 ms of a ~90 ms `status` or no-op `import`).

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec


class ConfigError(Exception):
    """A bad config file or value; the message is the one line the user sees."""


class SourceConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Per-agent settings. `roots` empty means the agent's default folder(s). `child_sessions`: the
    sessions an agent keeps for its sub-agent runs (OpenCode's child sessions) become threads of their
    own; accepted only for an agent whose plug-in has them (`discover_children`), so it never silently
    does nothing."""

    enabled: bool = True
    roots: list[str] = []
    child_sessions: bool = False


class Config(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Everything session-syncd can be told. Paths may use `~`; empty means the default."""

    codex_home: str = ""
    state_dir: str = ""
    sources: dict[str, SourceConfig] = {}
    # Import selection: none by default (Codex only takes the 50 newest of 30 days; we take all).
    max_age_days: float | None = None
    max_sessions: int | None = None
    # Write what Codex's own importer writes (daemon/codex/compat.py; README lists every difference).
    codex_compatible: bool = False
    # Sessions synced at once (import and daemon); 0: twice the cores (three times for small sessions).
    max_inflight: int = 0
    # Daemon timing.
    quiet_ms: int = 750
    max_wait_ms: int = 10_000
    rescan_interval_s: float = 600.0
    poll_interval_s: float = 30.0  # folders the inotify watch limit left unwatched are listed this often
    shutdown_timeout_s: float = 10.0
    log_level: str = "info"
    # A source line longer than this is skipped and counted instead of being held in memory whole.
    max_line_mb: int = 64
    # Codex's importer skips a session whose cwd no longer exists; Codex itself lists, reads and resumes
    # such a thread (a deleted worktree, a cwd under /tmp), so we import it unless this is set.
    skip_missing_cwd: bool = False
    # Tell Codex's own importer which sessions we imported (its external_agent_session_imports.json), so
    # that its "migrate sessions" offers none of them.
    codex_ledger_mirror: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.max_inflight >= 0, "max_inflight must be >= 0 (0 = two or three per core)"),
            (self.quiet_ms > 0, "quiet_ms must be > 0"),
            (self.max_wait_ms >= self.quiet_ms, "max_wait_ms must be >= quiet_ms"),
            (self.rescan_interval_s > 0, "rescan_interval_s must be > 0"),
            (self.poll_interval_s > 0, "poll_interval_s must be > 0"),
            (self.shutdown_timeout_s > 0, "shutdown_timeout_s must be > 0"),
            (self.max_sessions is None or self.max_sessions > 0, "max_sessions must be > 0"),
            (self.max_age_days is None or self.max_age_days > 0, "max_age_days must be > 0"),
            (self.max_line_mb > 0, "max_line_mb must be > 0"),
            (self.log_level in ("debug", "info", "warning", "error"),
             "log_level must be one of debug, info, warning, error"),
        ]
        if self.sources:
            from daemon.sources import SOURCES, label  # the registry names the agents a config may set up

            unknown = sorted(set(self.sources) - set(SOURCES))
            checks.append((not unknown, f"unknown source {', '.join(unknown)} in [sources]; known: "
                                        f"{', '.join(SOURCES)}"))
            for kind, sc in sorted(self.sources.items()):
                # asked of the plug-ins the switch is set for (the others stay unloaded), all of them when it errs
                if sc.child_sessions and kind in SOURCES and not hasattr(SOURCES[kind], "discover_children"):
                    with_children = [k for k, s in SOURCES.items() if hasattr(s, "discover_children")]
                    checks.append((False, f"child_sessions in [sources.{kind}]: {label(kind)} keeps no "
                                          f"child sessions; it applies to {', '.join(with_children)}"))
        for ok, message in checks:
            if not ok:
                raise msgspec.ValidationError(message)


def home_dir(env: Mapping[str, str]) -> Path:
    """The configured HOME (the process's own when the environment has none)."""
    return Path(env.get("HOME") or os.path.expanduser("~"))


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return home_dir(env) / fallback


def default_config_path(env: Mapping[str, str]) -> Path:
    return _xdg(env, "XDG_CONFIG_HOME", ".config") / "session-syncd" / "config.toml"


def expand(path: str, env: Mapping[str, str]) -> Path:
    """`~` means the configured HOME, not the process's, so tests with a temp HOME stay hermetic."""
    if path == "~" or path.startswith("~/"):
        return home_dir(env) / path[2:]
    return Path(path)


class Paths(msgspec.Struct, frozen=True):
    """Resolved absolute locations; computed once at start-up from Config + env."""

    home: Path
    codex_home: Path
    state_dir: Path

    @property
    def ledger(self) -> Path:
        return self.state_dir / "ledger.sqlite3"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def resolve_paths(cfg: Config, env: Mapping[str, str]) -> Paths:
    home = home_dir(env)
    codex_home = expand(cfg.codex_home, env) if cfg.codex_home else (
        Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else home / ".codex")
    state_dir = expand(cfg.state_dir, env) if cfg.state_dir else (
        _xdg(env, "XDG_STATE_HOME", ".local/state") / "session-syncd")
    return Paths(home=home, codex_home=codex_home.absolute(), state_dir=state_dir.absolute())


SMALL_SESSION_BYTES = 1 << 20  # below this average, a session's two fsyncs weigh as much as its fold


def effective_workers(cfg: Config, mean_bytes: float | None = None) -> int:
    """Sessions in flight: twice the cores by default, so one session's fsyncs and ledger commit (waits,
    not CPU) overlap another's fold (bench/import_vs_codex.py: as fast as one per core on an idle
    machine, ~15 % faster on a loaded one or a slow disk); three times when the sessions to sync are
    small on average (`mean_bytes`), as those waits do not shrink with a session's size. 2,000 sessions of
    84 KB, 2 cores, alternating runs: 4 workers 3.77-4.14 s, 6 workers 3.35-3.71 s; the headline
    fixture's 50 sessions of 4.8 MB: 4 workers 1.53-1.71 s, 6 workers 1.77-1.86 s."""
    if cfg.max_inflight:
        return cfg.max_inflight
    per_core = 3 if mean_bytes is not None and mean_bytes < SMALL_SESSION_BYTES else 2
    return per_core * max(1, os.cpu_count() or 1)


def child_sessions(cfg: Config, kind: str) -> bool:
    """Whether `[sources.<kind>] child_sessions` is set (off for an agent the config does not name)."""
    sc = cfg.sources.get(kind)
    return sc is not None and sc.child_sessions


def load(path: Path | None, env: Mapping[str, str]) -> tuple[Config, Path]:
    """Load the config file (missing default file = defaults); raise ConfigError with one clear line."""
    explicit = path is not None
    path = path or default_config_path(env)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {path} does not exist: create it or drop --config") from None
        return Config(), path
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}; fix its permissions") from None
    try:
        return msgspec.toml.decode(raw, type=Config), path
    except msgspec.ValidationError as exc:
        raise ConfigError(f"config file {path}: {exc}; fix that value or remove it to use the default") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the syntax") from None
