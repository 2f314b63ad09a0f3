"""Steps an install/uninstall/status/restart consists of, and the two ways to use them: run or print.

Owns: the step types, the executor (the only code here that touches the filesystem or spawns processes)
and the dry-run rendering. The service-manager modules build plans as pure data; this module does not know
which manager it is driving. A dry run prints a POSIX sh script equivalent to what `execute` would do, so
what you read is exactly what would happen (and you can run it yourself).
"""

from __future__ import annotations

import itertools
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class MakeDir:
    """Create a missing folder (and parents) as 0700; an existing one is left as it is."""

    path: Path


@dataclass(frozen=True)
class WriteFile:
    path: Path
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class RemoveFile:
    """Remove a file; already gone is fine."""

    path: Path


@dataclass(frozen=True)
class Run:
    """Run a command. Exit codes outside `ok` are an error whose message ends with `hint`.

    `tolerate_failure` is for "undo if present" commands (e.g. unloading an agent that may not be loaded).
    `show_output` passes the command's output through (status); otherwise it stays quiet.
    """

    argv: tuple[str, ...]
    hint: str
    ok: frozenset[int] = frozenset({0})
    tolerate_failure: bool = False
    show_output: bool = False


Step = MakeDir | WriteFile | RemoveFile | Run


def prepare(dirs: Sequence[Path], config: Path, config_text: str | None, unit: Path, unit_text: str) -> list[Step]:
    """What every install does first: the folders the service needs, the config file when it does not
    exist yet (the unit names it), and the unit or agent file itself."""
    steps: list[Step] = [MakeDir(d) for d in dirs]
    if config_text is not None:
        steps.append(WriteFile(config, config_text, 0o600))
    return [*steps, MakeDir(unit.parent), WriteFile(unit, unit_text)]


class StepFailed(Exception):
    """One line: what failed and what to do."""


def script(steps: Sequence[Step]) -> str:
    """The dry-run text: a sh script doing what `execute` would do."""
    lines: list[str] = []
    for step in steps:
        match step:
            case MakeDir(path):
                lines.append(f"mkdir -p -m 0700 {shlex.quote(str(path))}")
            case WriteFile(path, content, mode):
                marker = "SESSION_SYNCD_EOF"
                if marker in content.splitlines():
                    raise ValueError(f"{path}: content contains the heredoc marker {marker}")
                body = content if content.endswith("\n") else content + "\n"
                q = shlex.quote(str(path))
                lines.append(f"cat > {q} <<'{marker}'\n{body}{marker}")
                lines.append(f"chmod {mode:04o} {q}")
            case RemoveFile(path):
                lines.append(f"rm -f {shlex.quote(str(path))}")
            case Run(argv, tolerate_failure=tolerate):
                lines.append(shlex.join(argv) + (" || true" if tolerate else ""))
    return "\n".join(lines) + "\n"


Runner = Callable[..., subprocess.CompletedProcess[str]]


def execute(steps: Sequence[Step], env: Mapping[str, str], out: TextIO, runner: Runner = subprocess.run) -> int:
    """Do the steps in order; stop at the first failure with StepFailed. Returns the last command's code."""
    code = 0
    for step in steps:
        match step:
            case MakeDir(path):
                _mkdir(path)
            case WriteFile(path, content, mode):
                _write(path, content, mode)
            case RemoveFile(path):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise StepFailed(f"cannot remove {path}: {exc.strerror}; remove it by hand") from None
            case Run():
                code = _run(step, env, out, runner)
    return code


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StepFailed(f"cannot create folder {path}: {exc.strerror}; create it or fix its parent's permissions") from None


def _write(path: Path, content: str, mode: int) -> None:
    """Write via a temp file + rename so a half-written unit is never picked up by a daemon-reload."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(content, encoding="utf-8")
        tmp.chmod(mode)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StepFailed(f"cannot write {path}: {exc.strerror}; fix the permissions of {path.parent}") from None


def _run(step: Run, env: Mapping[str, str], out: TextIO, runner: Runner) -> int:
    # "systemctl --user enable", "launchctl bootstrap": the command and its verb, not paths or targets.
    name = " ".join(itertools.takewhile(lambda a: "/" not in a and " " not in a, step.argv[:3]))
    try:
        proc = runner(list(step.argv), env=dict(env), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        if step.tolerate_failure:
            return 0
        raise StepFailed(f"{step.argv[0]} not found; {step.hint}") from None
    if step.show_output:
        out.write(proc.stdout)
    if proc.returncode in step.ok or step.tolerate_failure:
        return proc.returncode
    first = next((ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()),
                 f"exit code {proc.returncode}")
    raise StepFailed(f"{name} failed: {first}; {step.hint}")
