"""Config: per-agent settings a user writes under [sources.<kind>] (here `child_sessions`), checked against the
registry, and the command-line flags that must not drop them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from daemon.cli import build_parser, load_config
from daemon.config import Config, ConfigError, load
from daemon.engine import child_sessions


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_child_sessions_is_off_unless_set(tmp_path: Path) -> None:
    cfg, _ = load(_write(tmp_path, "[sources.opencode]\nroots = ['/x']\n"), {"HOME": str(tmp_path)})
    assert cfg.sources["opencode"].child_sessions is False and not child_sessions(cfg, "opencode")
    cfg, _ = load(_write(tmp_path, "[sources.opencode]\nchild_sessions = true\n"), {"HOME": str(tmp_path)})
    assert child_sessions(cfg, "opencode") and not child_sessions(cfg, "claude")


@pytest.mark.parametrize("kind", ["claude", "cursor", "copilot", "gemini", "qwen"])
def test_child_sessions_for_an_agent_without_them_is_an_error(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_write(tmp_path, f"[sources.{kind}]\nchild_sessions = true\n"), {"HOME": str(tmp_path)})
    assert f"child_sessions in [sources.{kind}]" in str(caught.value) and "opencode" in str(caught.value)
    load(_write(tmp_path, f"[sources.{kind}]\nchild_sessions = false\n"), {"HOME": str(tmp_path)})  # off is fine


def test_child_sessions_must_be_a_bool(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("Expected `bool`, got `str` - at `$.sources[...].child_sessions`")):
        load(_write(tmp_path, "[sources.opencode]\nchild_sessions = 'yes'\n"), {"HOME": str(tmp_path)})


def test_a_root_flag_keeps_the_config_files_child_sessions(tmp_path: Path) -> None:
    path = _write(tmp_path, "[sources.opencode]\nchild_sessions = true\nroots = ['/elsewhere']\n")
    args = build_parser().parse_args(["import", "--config", str(path), "--opencode-root", str(tmp_path)])
    cfg, _ = load_config(args, {"HOME": str(tmp_path)})
    assert cfg.sources["opencode"].roots == [str(tmp_path)] and cfg.sources["opencode"].child_sessions


def test_sessions_in_flight_are_two_per_core_three_for_small_sessions() -> None:
    """Small sessions wait on their fsyncs as long as large ones do, for less folding: more are in flight."""
    from daemon.config import SMALL_SESSION_BYTES, effective_workers

    cores = max(1, os.cpu_count() or 1)
    cfg = Config()
    assert effective_workers(cfg) == 2 * cores  # the daemon: sizes not known ahead
    assert effective_workers(cfg, SMALL_SESSION_BYTES) == 2 * cores
    assert effective_workers(cfg, SMALL_SESSION_BYTES - 1) == 3 * cores
    assert effective_workers(Config(max_inflight=5), 100) == 5  # the user's number stands
