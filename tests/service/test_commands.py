"""`service install|uninstall|status|restart` through `service.commands.main`, as the CLI calls it.

Dry runs are checked against what they must show (the rendered unit/plist with this interpreter and
config, the exact manager commands) and that they touch nothing. A real install is run against a
systemctl that cannot reach any user manager, to check the one-line error without touching the
developer's own session.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service import launchd, systemd
from service.commands import detect_manager, main
from service.spec import build_spec


def run(argv: list[str], env: dict[str, str], **kw: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


def test_systemd_dry_run_shows_unit_and_commands_and_writes_nothing(home: Path, env: dict[str, str]) -> None:
    config = home / "cfg" / "session-syncd.toml"
    config.parent.mkdir()
    config.write_text("shutdown_timeout_s = 3\n")
    before = files_under(home)
    code, out, _ = run(["install", "--dry-run", "--manager", "systemd", "--config", str(config)], env)
    assert code == 0
    assert files_under(home) == before
    unit_path = home / ".config" / "systemd" / "user" / "session-syncd.service"
    spec, _ = build_spec(str(config), env, sys.executable)
    assert systemd.render(spec) in out
    assert f"ExecStart={sys.executable} -m daemon run --config {config}\n" in out
    assert "TimeoutStopSec=8\n" in out
    assert f"cat > {unit_path} <<" in out
    lines = out.splitlines()
    tail = lines[lines.index(f"chmod 0644 {unit_path}") + 1:]
    assert tail == ["systemctl --user daemon-reload",
                    "systemctl --user enable session-syncd.service",
                    "systemctl --user restart session-syncd.service"]


def test_launchd_dry_run_shows_plist_and_commands_and_writes_nothing(home: Path, env: dict[str, str]) -> None:
    before = files_under(home)
    code, out, _ = run(["install", "--dry-run", "--manager", "launchd"], env)
    assert code == 0
    assert files_under(home) == before
    uid = os.getuid()
    plist_path = home / "Library" / "LaunchAgents" / "dev.session-syncd.daemon.plist"
    config = home / ".config" / "session-syncd" / "config.toml"
    assert f"<string>{sys.executable}</string>" in out
    assert f"<string>{config}</string>" in out
    # The default config does not exist yet: install creates it, so `--config` names a real file.
    assert f"cat > {config} <<" in out
    lines = out.splitlines()
    tail = lines[lines.index(f"chmod 0644 {plist_path}") + 1:]
    assert tail == [f"launchctl bootout gui/{uid}/dev.session-syncd.daemon || true",
                    f"launchctl enable gui/{uid}/dev.session-syncd.daemon",
                    f"launchctl bootstrap gui/{uid} {plist_path}"]
    spec, _ = build_spec(None, env, sys.executable)
    assert launchd.render(spec) in out


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX sh to run the dry-run script")
def test_dry_run_script_does_what_install_would(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    """The dry run is a real sh script: with systemctl/launchctl stubbed out by PATH, running it writes
    exactly the unit that `systemd.render` produces."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("systemctl", "launchctl"):
        (stubs / name).write_text("#!/bin/sh\nexit 0\n")
        (stubs / name).chmod(0o755)
    _, out, _ = run(["install", "--dry-run", "--manager", "systemd"], env)
    subprocess.run(["sh", "-e"], input=out, text=True, check=True,
                   env={**env, "PATH": f"{stubs}:/usr/bin:/bin"})
    unit = home / ".config" / "systemd" / "user" / "session-syncd.service"
    spec, _ = build_spec(None, env, sys.executable)
    assert unit.read_text() == systemd.render(spec)
    assert (home / ".local" / "state" / "session-syncd" / "logs").is_dir()


def test_uninstall_dry_run_when_not_installed_is_a_no_op(home: Path, env: dict[str, str]) -> None:
    code, out, _ = run(["uninstall", "--dry-run", "--manager", "systemd"], env)
    assert code == 0 and "not installed" in out and "systemctl" not in out


def test_uninstall_dry_run_removes_only_the_unit(home: Path, env: dict[str, str]) -> None:
    unit = home / ".config" / "systemd" / "user" / "session-syncd.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("x")
    code, out, _ = run(["uninstall", "--dry-run", "--manager", "systemd"], env)
    assert code == 0 and unit.exists()
    assert out.splitlines()[1:] == ["systemctl --user disable --now session-syncd.service",
                                    f"rm -f {unit}", "systemctl --user daemon-reload"]


@pytest.mark.parametrize(("manager", "action", "expected"), [
    ("systemd", "status", "systemctl --user status --no-pager session-syncd.service"),
    ("systemd", "restart", "systemctl --user restart session-syncd.service"),
    ("launchd", "status", "launchctl print gui/{uid}/dev.session-syncd.daemon"),
    ("launchd", "restart", "launchctl kickstart -k gui/{uid}/dev.session-syncd.daemon"),
])
def test_status_and_restart_dry_run(env: dict[str, str], manager: str, action: str, expected: str) -> None:
    code, out, _ = run([action, "--dry-run", "--manager", manager], env)
    assert code == 0
    assert out.splitlines()[1:] == [expected.format(uid=os.getuid())]


def test_missing_explicit_config_is_one_line(home: Path, env: dict[str, str]) -> None:
    code, out, err = run(["install", "--dry-run", "--manager", "systemd", "--config", str(home / "nope.toml")], env)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "does not exist" in err and "nope.toml" in err


def test_no_manager_detected_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    no_systemd = tmp_path / "no-systemd"  # this machine's own /run/systemd/system does not count
    assert detect_manager("plan9", no_systemd) is None
    code, _, err = run(["status", "--dry-run"], env, platform="plan9", systemd_marker=no_systemd)
    assert code == 1 and err.count("\n") == 1 and "--manager systemd|launchd" in err


def test_detection(tmp_path: Path) -> None:
    assert detect_manager("darwin", tmp_path / "absent") == "launchd"
    assert detect_manager("linux", tmp_path / "absent") is None
    assert detect_manager("linux", tmp_path) == "systemd"


def test_bad_arguments_return_2(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["frobnicate"], env)[0] == 2
    assert run(["install", "--manager", "upstart"], env)[0] == 2


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_real_install_without_a_user_manager_fails_in_one_line(home: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Runs the real systemctl, pointed at a runtime dir and bus that do not exist, so it can never reach
    (and change) the developer's own user manager."""
    nowhere = tmp_path / "no-runtime"
    env = {**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "XDG_RUNTIME_DIR": str(nowhere),
           "DBUS_SESSION_BUS_ADDRESS": f"unix:path={nowhere}/bus"}
    # The interpreter is only written into the unit, never run: any path outside /tmp will do.
    code, _, err = run(["install", "--manager", "systemd"], env, python="/usr/bin/python3")
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith("session-syncd service install: systemctl --user daemon-reload failed: ")
    assert "is a user session bus running?" in err
    # Everything before the failing command happened, with private modes.
    unit = home / ".config" / "systemd" / "user" / "session-syncd.service"
    assert unit.is_file()
    config = home / ".config" / "session-syncd" / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert (home / ".local" / "state" / "session-syncd").stat().st_mode & 0o777 == 0o700


def test_real_install_refuses_an_interpreter_under_tmp(home: Path, env: dict[str, str]) -> None:
    """PrivateTmp=yes would hide it; refusing before anything is written beats a unit failing 203/EXEC."""
    code, _, err = run(["install", "--manager", "systemd"], env, python="/tmp/venv/bin/python")
    assert code == 1 and err.count("\n") == 1 and "PrivateTmp=yes" in err
    assert files_under(home) == set()
    code, out, err = run(["install", "--dry-run", "--manager", "systemd"], env, python="/tmp/venv/bin/python")
    assert code == 0 and err.startswith("warning: ") and "ExecStart=/tmp/venv/bin/python" in out


def test_python_dash_m_service_works(home: Path, env: dict[str, str]) -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "service", "status", "--dry-run", "--manager", "systemd"],
                          env={**env, "PYTHONPATH": str(root)}, capture_output=True, text=True, check=False, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "systemctl --user status --no-pager session-syncd.service" in proc.stdout
