"""launchd LaunchAgent: render the plist, and the plans that install/uninstall/inspect/restart it.

Owns: the agent's label, plist rendering and the launchctl command lines (the modern
bootstrap/bootout/kickstart/print verbs addressed as gui/<uid>). Pure, like service.systemd.

Rendering parses the template with plistlib and substitutes inside the parsed values, so paths with
`&` or `<` are escaped by plistlib and the output is always a well-formed plist.
"""

from __future__ import annotations

import plistlib
from pathlib import Path
from typing import Any

from service.plan import RemoveFile, Run, Step, prepare
from service.spec import ServiceSpec, template

LABEL = "dev.session-syncd.daemon"
PLIST = f"{LABEL}.plist"
GUI_HINT = "are you logged in to the macOS GUI session? (launchd agents live in gui/<uid>)"
# launchd starts agents with PATH=/usr/bin:/bin:/usr/sbin:/sbin; add the usual tool locations so `git`
# and friends resolve as they do in the user's shell.
EXTRA_PATH = ("/usr/local/bin", "/opt/homebrew/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")


def agents_dir(home: Path) -> Path:
    return home / "Library" / "LaunchAgents"


def domain(uid: int) -> str:
    return f"gui/{uid}"


def target(uid: int) -> str:
    return f"gui/{uid}/{LABEL}"


def _substitute(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, text in values.items():
            value = value.replace(f"@{name}@", text)
        return value
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    return value


def render(spec: ServiceSpec, plist_template: str | None = None) -> str:
    text = plist_template if plist_template is not None else template(PLIST)
    plist = plistlib.loads(text.encode("utf-8"))
    plist = _substitute(plist, {
        "PYTHON": str(spec.python),
        "CONFIG": str(spec.config),
        "LOG_DIR": str(spec.log_dir),
        "PATH": ":".join(dict.fromkeys((str(spec.python.parent), *EXTRA_PATH))),
    })
    plist["EnvironmentVariables"].update(spec.environment)
    plist["ExitTimeOut"] = spec.stop_timeout_s
    return plistlib.dumps(plist, sort_keys=False).decode("utf-8")


def install_plan(spec: ServiceSpec, plist_path: Path, uid: int, config_text: str | None) -> list[Step]:
    """Re-install safe: an already loaded agent is booted out first (tolerated when it is not loaded).
    The log dir must exist before bootstrap: launchd does not create StandardOutPath's folder."""
    return [
        *prepare(spec.dirs_to_create, spec.config, config_text, plist_path, render(spec)),
        Run(("launchctl", "bootout", target(uid)), GUI_HINT, tolerate_failure=True),
        Run(("launchctl", "enable", target(uid)), GUI_HINT),
        Run(("launchctl", "bootstrap", domain(uid), str(plist_path)),
            f"{GUI_HINT}; check the plist with `plutil -lint {plist_path}`"),
    ]


def uninstall_plan(plist_path: Path, uid: int) -> list[Step]:
    """Unloads and removes the agent only: the ledger, logs, config and Codex threads stay."""
    return [
        Run(("launchctl", "bootout", target(uid)), GUI_HINT, tolerate_failure=True),
        RemoveFile(plist_path),
    ]


def status_plan(uid: int) -> list[Step]:
    return [Run(("launchctl", "print", target(uid)),
                "is it installed and loaded? (`session-syncd service install`)", show_output=True)]


def restart_plan(uid: int) -> list[Step]:
    return [Run(("launchctl", "kickstart", "-k", target(uid)),
                "is it installed and loaded? (`session-syncd service install`)")]
