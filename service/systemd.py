"""systemd user unit: render it, and the plans that install/uninstall/inspect/restart it.

Owns: unit-file quoting and the systemctl command lines. Pure: nothing here writes a file or runs a
command (service.plan does that), so dry-run and real runs cannot drift apart.

Install runs `enable` + `restart` rather than `enable --now`: `--now` only starts a stopped unit, so a
re-install (new interpreter, new config path) would keep the old process running; `restart` starts a
stopped unit and replaces a running one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from service.plan import RemoveFile, Run, Step, prepare
from service.spec import ServiceSpec, template

UNIT = "session-syncd.service"
SYSTEMCTL = ("systemctl", "--user")
BUS_HINT = "is a user session bus running? (log in to a session, or `loginctl enable-linger $USER`)"


def unit_dir(env: Mapping[str, str]) -> Path:
    """Where the user manager looks for units the user installed: $XDG_CONFIG_HOME/systemd/user."""
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base.startswith("/") else Path(env.get("HOME") or Path.home()) / ".config"
    return root / "systemd" / "user"


def quote(word: str, *, exec_line: bool = False) -> str:
    """One word for a unit file: `%` is a specifier (always doubled), `$` expands only on Exec lines."""
    if any(ord(c) < 32 or c == "\x7f" for c in word):
        raise ValueError(f"{word!r} contains a control character, which a unit file cannot carry")
    word = word.replace("%", "%%")
    if exec_line:
        word = word.replace("$", "$$")
    if word and not any(c in word for c in ' \t"\'\\;'):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _words(words: Iterable[str], **kw: bool) -> str:
    return " ".join(quote(w, **kw) for w in words)


def _exec_start(argv: tuple[str, ...]) -> str:
    """The program path is taken literally (no `$` expansion, so no `$$`), and must be absolute: a
    leading `-`, `@`, `+`, `!` or `:` would be read as an ExecStart prefix."""
    program, *args = argv
    if not program.startswith("/"):
        raise ValueError(f"interpreter path {program!r} is not absolute; run the installer with a full path")
    return " ".join([quote(program), *(quote(a, exec_line=True) for a in args)])


def render(spec: ServiceSpec, unit_template: str | None = None) -> str:
    """The unit file for `spec`. ReadWritePaths entries get `-` so a folder removed later does not make
    the unit fail with an opaque 226/NAMESPACE; the daemon then reports the missing folder itself."""
    text = unit_template if unit_template is not None else template(UNIT)
    values = {
        "EXEC_START": _exec_start(spec.argv),
        "ENVIRONMENT": _words(f"{k}={v}" for k, v in spec.environment),
        "TIMEOUT_STOP_SEC": str(spec.stop_timeout_s),
        "READ_WRITE_PATHS": _words(f"-{p}" for p in spec.writable_dirs),
    }
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


def install_plan(spec: ServiceSpec, unit_path: Path, config_text: str | None) -> list[Step]:
    """`config_text` is written first when the config file does not exist (ExecStart names it)."""
    return [
        *prepare(spec.dirs_to_create, spec.config, config_text, unit_path, render(spec)),
        Run((*SYSTEMCTL, "daemon-reload"), BUS_HINT),
        Run((*SYSTEMCTL, "enable", UNIT), BUS_HINT),
        Run((*SYSTEMCTL, "restart", UNIT), f"see `journalctl --user -u {UNIT}`"),
    ]


def uninstall_plan(unit_path: Path) -> list[Step]:
    """Stops and removes the unit only: the ledger, logs, config and Codex threads stay."""
    return [
        Run((*SYSTEMCTL, "disable", "--now", UNIT), BUS_HINT),
        RemoveFile(unit_path),
        Run((*SYSTEMCTL, "daemon-reload"), BUS_HINT),
    ]


def status_plan() -> list[Step]:
    # systemctl status exits 3 when the unit is merely not running: that is an answer, not an error.
    return [Run((*SYSTEMCTL, "status", "--no-pager", UNIT),
                f"{BUS_HINT}; is it installed? (`session-syncd service install`)",
                ok=frozenset({0, 3}), show_output=True)]


def restart_plan() -> list[Step]:
    return [Run((*SYSTEMCTL, "restart", UNIT),
                f"is it installed? (`session-syncd service install`); see `journalctl --user -u {UNIT}`")]
