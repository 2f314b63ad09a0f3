"""The rendered unit passes the real `systemd-analyze verify` (as a user unit), with no warnings."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capability import missing
from service import systemd
from service.spec import ServiceSpec

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (not a systemd system)")


def analyze(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze --user` wants a runtime dir even without a running user manager; give it a
    private one so the check works in containers and CI where systemd is not PID 1."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, "--user", *args], env=env, capture_output=True, text=True, check=False)


def verify(tmp_path: Path, unit_text: str) -> list[str]:
    """Problems systemd-analyze reports for our unit. Unknown keys and bad values are only warnings
    (exit code 0), so stderr is the verdict, not the exit code alone."""
    unit = tmp_path / "units" / systemd.UNIT
    unit.parent.mkdir(exist_ok=True)
    unit.write_text(unit_text)
    proc = analyze(tmp_path, "verify", str(unit))
    problems = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0 and not problems:
        problems = [f"exit code {proc.returncode}"]
    return problems


@needs_analyze
def test_rendered_unit_verifies(tmp_path: Path, spec: ServiceSpec) -> None:
    assert verify(tmp_path, systemd.render(spec)) == []


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path, spec: ServiceSpec) -> None:
    """Guards the guard: if this passes silently, test_rendered_unit_verifies proves nothing."""
    broken = systemd.render(spec).replace("Type=notify", "Type=notfy").replace("[Install]", "Bogus=1\n[Install]")
    problems = verify(tmp_path, broken)
    assert any("notfy" in p for p in problems) and any("Bogus" in p for p in problems), problems


@needs_analyze
def test_awkward_paths_survive_quoting(tmp_path: Path, spec: ServiceSpec) -> None:
    """Spaces, `%` (a specifier) and `$` (expanded on Exec lines) in paths: verify resolves ExecStart's
    binary after unquoting, so a quoting mistake shows up as "not executable"."""
    odd = tmp_path / "my venv 100% $HOME" / "bin"
    odd.mkdir(parents=True)
    (odd / "python").symlink_to(sys.executable)
    weird = dataclasses.replace(spec, python=odd / "python", config=tmp_path / "c f" / "config.toml")
    text = systemd.render(weird)
    assert verify(tmp_path, text) == []
    assert '"' + str(odd / "python").replace("%", "%%") + '"' in text


def test_unit_has_the_required_settings(spec: ServiceSpec) -> None:
    text = systemd.render(spec)
    assert not re.findall(r"^[^#].*@[A-Z_]+@", text, re.M), "unfilled placeholder"
    for line in ["Type=notify", "NotifyAccess=main", "WatchdogSec=180", "Restart=on-failure",
                 "ExecReload=/bin/kill -HUP $MAINPID", "TimeoutStopSec=15", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ProtectSystem=strict", "ProtectHome=read-only", "UMask=0077",
                 "WantedBy=default.target",
                 f"ExecStart={sys.executable} -m daemon run --config {spec.config}",
                 f"Environment=CODEX_HOME={spec.codex_home}",
                 f"ReadWritePaths=-{spec.state_dir} -{spec.config_dir} -{spec.codex_home}"]:
        assert line in text.splitlines(), line


def test_stop_timeout_follows_the_configured_shutdown_bound(spec: ServiceSpec) -> None:
    assert "TimeoutStopSec=26" in systemd.render(dataclasses.replace(spec, stop_timeout_s=26)).splitlines()


def test_control_characters_are_refused(spec: ServiceSpec) -> None:
    with pytest.raises(ValueError, match="control character"):
        systemd.render(dataclasses.replace(spec, config=Path("/x\ny/config.toml")))


@needs_analyze
def test_security_exposure_stays_low(tmp_path: Path, spec: ServiceSpec) -> None:
    """`systemd-analyze security --offline` scores the sandbox (0 = locked down, 10 = none). A plain
    unit scores ~9.5; ours must stay clearly hardened, so a dropped setting fails here."""
    unit = tmp_path / systemd.UNIT
    unit.write_text(systemd.render(spec))
    proc = analyze(tmp_path, "security", "--offline=true", "--no-pager", str(unit))
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    if match is None:
        missing(f"this systemd-analyze has no offline security scoring: {proc.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 5.0, proc.stdout[-2000:]
