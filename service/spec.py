"""What a service manager needs to know to run the daemon, resolved once from config + env.

Owns: the `ServiceSpec` value both renderers (systemd, launchd) are pure functions of, and how it is built
from the config file and the installer's environment. Does no writing and runs nothing.

The daemon under a service manager must resolve the same Codex home and state dir the installer saw,
even though systemd's and launchd's environments differ from the user's shell. So the spec pins the
variables that `daemon.config.resolve_paths` reads (CODEX_HOME always, XDG_STATE_HOME when the installer
had one) and always passes `--config` with an absolute path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from daemon import config as daemon_config

# The daemon's shutdown bound is enforced by the daemon; the manager's SIGKILL comes this much later.
STOP_MARGIN_S = 5


@dataclass(frozen=True)
class ServiceSpec:
    """Absolute paths and numbers the unit/plist is filled with."""

    python: Path  # the interpreter as invoked (a venv's bin/python): resolving its symlink would leave the venv
    config: Path
    state_dir: Path
    log_dir: Path
    codex_home: Path
    environment: tuple[tuple[str, str], ...]
    stop_timeout_s: int

    @property
    def config_dir(self) -> Path:
        return self.config.parent

    @property
    def argv(self) -> tuple[str, ...]:
        return (str(self.python), "-m", "daemon", "run", "--config", str(self.config))

    @property
    def dirs_to_create(self) -> tuple[Path, ...]:
        """Created (0700) at install: a sandboxed or launchd-started daemon may not be able to create them."""
        return _unique((self.state_dir, self.log_dir, self.codex_home, self.config_dir))

    @property
    def writable_dirs(self) -> tuple[Path, ...]:
        """The only places the daemon writes; nested entries are dropped (the parent covers them)."""
        dirs = _unique((self.state_dir, self.config_dir, self.codex_home, self.log_dir))
        return tuple(d for d in dirs if not any(d != o and d.is_relative_to(o) for o in dirs))


def _unique(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(paths))


def build_spec(config_path: str | None, env: Mapping[str, str], python: str) -> tuple[ServiceSpec, bool]:
    """Load the config like the daemon will; return the spec and whether the config file is missing.

    Raises daemon.config.ConfigError (one line) for a bad or missing explicit config file.
    """
    explicit = daemon_config.expand(config_path, env).absolute() if config_path else None
    cfg, path = daemon_config.load(explicit, env)
    paths = daemon_config.resolve_paths(cfg, env)
    environment = [("CODEX_HOME", str(paths.codex_home))]
    state_home = env.get("XDG_STATE_HOME", "")
    if state_home.startswith("/"):
        environment.append(("XDG_STATE_HOME", state_home))
    spec = ServiceSpec(
        python=Path(python),
        config=path.absolute(),
        state_dir=paths.state_dir,
        log_dir=paths.log_dir,
        codex_home=paths.codex_home,
        environment=tuple(environment),
        stop_timeout_s=math.ceil(cfg.shutdown_timeout_s) + STOP_MARGIN_S,
    )
    return spec, not path.exists()


# Written when the default config file does not exist yet, so `--config PATH` always names a real file.
DEFAULT_CONFIG_TEXT = (
    "# session-syncd configuration (TOML). Every key is optional; an empty file means the defaults.\n"
)


def template(name: str) -> str:
    """A template shipped as package data (service/templates/), so an installed wheel finds it.

    The canonical copies live at the repo top (systemd/, launchd/) where packagers look for them;
    tests/service/test_templates.py fails if the two ever differ.
    """
    return resources.files("service").joinpath("templates", name).read_text(encoding="utf-8")
