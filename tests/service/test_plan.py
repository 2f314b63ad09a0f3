"""The plan executor with real files and real processes: errors are one line with a hint."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from service.plan import MakeDir, RemoveFile, Run, StepFailed, WriteFile, execute, script

ENV = {"PATH": "/usr/bin:/bin"}


def test_files_and_folders_get_their_modes(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    execute([MakeDir(target), WriteFile(target / "f", "hi\n", 0o600)], ENV, io.StringIO())
    assert target.stat().st_mode & 0o777 == 0o700
    assert (target / "f").read_text() == "hi\n"
    assert (target / "f").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.iterdir()] == ["f"]  # no temp file left behind
    execute([RemoveFile(target / "f"), RemoveFile(target / "f")], ENV, io.StringIO())
    assert not (target / "f").exists()


def test_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    execute([MakeDir(tmp_path)], ENV, io.StringIO())
    assert tmp_path.stat().st_mode & 0o777 == 0o755


def test_failing_command_is_one_line_with_hint() -> None:
    step = Run(("sh", "-c", "echo 'Failed to frob: no bus' >&2; echo more >&2; exit 1"), "start a bus")
    with pytest.raises(StepFailed) as info:
        execute([step], ENV, io.StringIO())
    assert str(info.value) == "sh -c failed: Failed to frob: no bus; start a bus"


def test_stops_at_the_first_failure(tmp_path: Path) -> None:
    with pytest.raises(StepFailed):
        execute([Run(("false",), "h"), WriteFile(tmp_path / "never", "x")], ENV, io.StringIO())
    assert not (tmp_path / "never").exists()


def test_ok_codes_tolerance_and_output() -> None:
    out = io.StringIO()
    code = execute([Run(("false",), "h", tolerate_failure=True),
                    Run(("sh", "-c", "echo inactive; exit 3"), "h", ok=frozenset({0, 3}), show_output=True)],
                   ENV, out)
    assert code == 3 and out.getvalue() == "inactive\n"


def test_missing_program_names_it() -> None:
    with pytest.raises(StepFailed, match="^no-such-tool-xyz not found; install it$"):
        execute([Run(("no-such-tool-xyz", "x"), "install it")], ENV, io.StringIO())


def test_script_quotes_paths(tmp_path: Path) -> None:
    text = script([MakeDir(Path("/a b")), Run(("echo", "x y"), "h", tolerate_failure=True)])
    assert text == "mkdir -p -m 0700 '/a b'\necho 'x y' || true\n"
