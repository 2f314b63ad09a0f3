"""The rendered LaunchAgent plist is well formed (plistlib, and `plutil -lint` on macOS) and complete."""

from __future__ import annotations

import dataclasses
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service import launchd
from service.spec import ServiceSpec, template

REPO = Path(__file__).resolve().parents[2]


def test_template_file_is_named_after_its_label() -> None:
    path = REPO / "launchd" / launchd.PLIST
    assert plistlib.loads(path.read_bytes())["Label"] == launchd.LABEL == path.stem


def test_rendered_plist_round_trips(spec: ServiceSpec) -> None:
    text = launchd.render(spec)
    plist = plistlib.loads(text.encode())
    assert plistlib.loads(plistlib.dumps(plist)) == plist
    assert "@" not in text
    assert plist["Label"] == launchd.LABEL
    assert plist["ProgramArguments"] == [sys.executable, "-m", "daemon", "run", "--config", str(spec.config)]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ProcessType"] == "Background"
    assert plist["Umask"] == 0o077
    assert plist["ExitTimeOut"] == spec.stop_timeout_s == 15
    assert Path(plist["StandardOutPath"]).parent == spec.log_dir == spec.state_dir / "logs"
    assert Path(plist["StandardErrorPath"]).parent == spec.log_dir
    assert plist["EnvironmentVariables"]["CODEX_HOME"] == str(spec.codex_home)
    assert plist["EnvironmentVariables"]["PATH"].split(":")[0] == str(Path(sys.executable).parent)


def test_xml_special_characters_in_paths_are_escaped(spec: ServiceSpec, tmp_path: Path) -> None:
    odd = tmp_path / "a&b <c>" / "config.toml"
    plist = plistlib.loads(launchd.render(dataclasses.replace(spec, config=odd)).encode())
    assert plist["ProgramArguments"][-1] == str(odd)


def test_render_uses_the_given_template(spec: ServiceSpec) -> None:
    """render() is a pure function of (spec, template): a changed template shows up in the output."""
    changed = template(launchd.PLIST).replace("<string>Background</string>", "<string>Adaptive</string>")
    assert plistlib.loads(launchd.render(spec, changed).encode())["ProcessType"] == "Adaptive"


@pytest.mark.skipif(shutil.which("plutil") is None, reason="plutil is not installed (it ships with macOS only)")
def test_plutil_lint_accepts_rendered_plist(spec: ServiceSpec, tmp_path: Path) -> None:
    path = tmp_path / launchd.PLIST
    path.write_text(launchd.render(spec))
    proc = subprocess.run(["plutil", "-lint", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
