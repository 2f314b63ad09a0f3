"""`session-syncd doctor`: real fixture, real ledger (healthy and damaged), real read-only mount, real codex."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from capability import missing
from daemon import doctor
from daemon.config import Config, ConfigError, load, resolve_paths
from daemon.ledger import SCHEMA_VERSION
from service import systemd
from status_support import Holder, Tree, build_tree, cli


def lines_by_name(stdout: str) -> dict[str, list[str]]:
    """check name → the lines for it, as `LEVEL message` (names may repeat, e.g. `service`)."""
    out: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        level, name, message = line[:4].strip(), line[6:16].strip(), line[18:]
        assert level in ("ok", "warn", "FAIL") and line[16:18] == "  ", line
        out.setdefault(name, []).append(f"{level} {message}")
    return out


def healthy(tmp_path: Path) -> Tree:
    tree = build_tree(tmp_path, sessions=2, cursor=1)
    done = cli(tree, "import")
    assert done.returncode == 0, done.stderr
    return tree


def test_healthy_setup_is_all_ok(tmp_path: Path) -> None:
    tree = healthy(tmp_path)
    tree.config.parent.mkdir(parents=True)
    tree.config.write_text('log_level = "info"\n')
    holder = Holder(tree.state_dir)
    try:
        done = cli(tree, "doctor")
    finally:
        holder.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    got = lines_by_name(done.stdout)
    assert "FAIL" not in done.stdout
    assert got["config"] == [f"ok {tree.config} parses"]
    assert got["claude"] == [f"ok {tree.home / '.claude' / 'projects'}: 2 session(s)"]
    assert got["cursor"] == [f"ok {tree.home / '.cursor' / 'projects'}: 1 session(s)"]
    assert got["codex home"] == [f"ok {tree.codex_home} is writable"]
    assert got["state dir"] == [f"ok {tree.state_dir} is writable"]
    assert got["ledger"] == [f"ok {tree.ledger}: integrity ok, schema {SCHEMA_VERSION}"]
    assert got["logs"] == [f"ok {tree.state_dir / 'logs'} is writable"]
    assert got["daemon"][0].startswith(f"ok running (pid {holder.pid}, foreground, up ")
    if os.path.exists("/proc/sys/fs/inotify/max_user_watches"):
        folders = sum(1 for root in ("claude", "cursor") for _ in os.walk(
            tree.home / f".{root}" / "projects"))
        assert got["inotify"][0].startswith(f"ok {folders} folder(s) to watch, limit ")
    codex = os.environ.get("SESSION_SYNCD_CODEX_BIN")
    if codex:
        assert got["codex"] == [f"ok codex-cli 0.169.0 ({codex}); threads are written in the 0.169.0 rollout format"]
    else:
        assert got["codex"][0].startswith("warn codex not found on PATH")
    assert not list(tree.codex_home.glob(".session-syncd-probe-*"))  # probes cleaned up


def test_missing_default_roots_are_not_installed_and_no_ledger_is_fine(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    tree = Tree(tmp_path)
    done = cli(tree, "doctor", env=tree.env(PATH="/usr/bin:/bin", SESSION_SYNCD_CODEX_BIN=""))
    got = lines_by_name(done.stdout)
    assert got["claude"] == [f"ok not installed ({tree.home / '.claude' / 'projects'} does not exist)"]
    assert got["ledger"] == [f"ok none yet at {tree.ledger} (created by the first import)"]
    assert got["codex home"][0].startswith(f"warn Codex home {tree.codex_home} does not exist yet")
    assert got["daemon"][0].startswith(f"warn not running (no live lock in {tree.state_dir}); fix: ")
    assert done.returncode == 0
    assert not tree.state_dir.exists() and not tree.codex_home.exists()  # doctor changes nothing


def test_corrupt_ledger_fails_with_the_fix(tmp_path: Path) -> None:
    tree = healthy(tmp_path)
    with tree.ledger.open("r+b") as f:  # a damaged page, as a bad disk or a half-copied file leaves
        f.seek(4096)
        f.write(b"\xff" * 8192)
    done = cli(tree, "doctor")
    assert done.returncode == 1
    (line,) = lines_by_name(done.stdout)["ledger"]
    assert line.startswith(f"FAIL {tree.ledger} ")
    assert f"; fix: stop the daemon and run `session-syncd ledger rebuild`: it moves {tree.ledger} and its " \
           "-wal/-shm files aside and rebuilds the ledger from the threads in the Codex home" in line
    assert lines_by_name(done.stdout)["logs"] == [f"ok {tree.state_dir / 'logs'} is writable"]  # the rest still ran

    tree.ledger.write_bytes(b"not sqlite at all\n" * 100)
    (line,) = lines_by_name(cli(tree, "doctor").stdout)["ledger"]
    assert line.startswith(f"FAIL {tree.ledger} is corrupt (file is not a database); fix: ")


def readonly_prefix(folder: Path) -> tuple[str, ...]:
    """Run a command with `folder` read-only for real: a read-only bind mount in a private mount namespace
    when we are root (permission bits do not stop root), else chmod (undone by the caller)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return ()
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    prefix = ("unshare", "--mount", "sh", "-c", script, str(folder))
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        missing("running as root without the privilege to make a read-only mount")
    return prefix


def test_read_only_codex_home_fails(tmp_path: Path) -> None:
    tree = healthy(tmp_path)
    try:
        done = cli(tree, "doctor", prefix=readonly_prefix(tree.codex_home))
    finally:
        tree.codex_home.chmod(0o700)
    assert done.returncode == 1, done.stdout
    (line,) = lines_by_name(done.stdout)["codex home"]
    assert line.startswith(f"FAIL Codex home {tree.codex_home}: {tree.codex_home} is not writable (")
    assert line.endswith(f"; fix: make it writable (chmod u+rwx {tree.codex_home}) or point CODEX_HOME / "
                         "--codex-home elsewhere")


def test_bad_config_fails(tmp_path: Path) -> None:
    tree = healthy(tmp_path)
    tree.config.parent.mkdir(parents=True)
    tree.config.write_text("max_inflight = [oops\n")
    done = cli(tree, "doctor")  # the CLI refuses a bad config before any command runs
    assert done.returncode != 0
    assert f"config file {tree.config} is not valid TOML" in done.stdout + done.stderr

    env = tree.env()
    with pytest.raises(ConfigError) as caught:
        load(None, env)
    out = io.StringIO()
    code = doctor.main(Config(), resolve_paths(Config(), env), env, config_error=str(caught.value), out=out)
    assert code == 1
    got = lines_by_name(out.getvalue())
    assert got["config"] == [f"FAIL {caught.value}"] and "fix the syntax" in got["config"][0]
    assert got["ledger"] == [f"ok {tree.ledger}: integrity ok, schema {SCHEMA_VERSION}"]  # the other checks still run

    missing = tmp_path / "nowhere"
    tree.config.write_text(f'[sources.cursor]\nroots = ["{missing}"]\n')
    done = cli(tree, "doctor")
    assert done.returncode == 1
    assert lines_by_name(done.stdout)["cursor"] == [
        f"FAIL folder {missing} does not exist; fix: fix `roots` under [sources.cursor] in the config, or the "
        "--cursor-root flag"]


def test_installed_unit_is_reported(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    env = tree.env()
    paths = resolve_paths(Config(), env)
    unit = systemd.unit_dir(env) / systemd.UNIT
    assert doctor.check_service(paths, env, None)[0] == doctor.warn(
        "service", "no service manager here (systemd is not running, not macOS)",
        "run `session-syncd run` under your own supervisor")
    unit.parent.mkdir(parents=True)
    unit.write_text("[Unit]\n")
    assert doctor.check_service(paths, env, None)[0] == doctor.ok("service", f"installed ({unit})")


# -- the pure checks ----------------------------------------------------------------------------------


def test_inotify_limit() -> None:
    assert doctor.check_inotify(100, 8192).level == "ok"
    assert doctor.check_inotify(5000, 8192).level == "warn"  # more than half: editors share the limit
    over = doctor.check_inotify(300_000, 8192)
    assert over.level == "FAIL"
    assert over.line() == (
        "FAIL  inotify     300000 folder(s) to watch, limit 8192 (fs.inotify.max_user_watches); the daemon polls "
        "the rest every poll_interval_s; fix: raise the limit: echo fs.inotify.max_user_watches=2097152 | "
        "sudo tee /etc/sysctl.d/90-session-syncd.conf && sudo sysctl --system")
    assert doctor.check_inotify(3, None).level == "ok"


def test_codex_version() -> None:
    assert doctor.check_codex_version("codex-cli 0.169.0\n", "/bin/codex", "0.169.0").level == "ok"
    assert doctor.check_codex_version("codex-cli 0.171.2\n", "/bin/codex", "0.169.0").level == "ok"
    old = doctor.check_codex_version("codex-cli 0.120.0\n", "/bin/codex", "0.169.0")
    assert old.level == "warn" and "older than the rollout format session-syncd writes (0.169.0)" in old.message
    assert doctor.check_codex_version("hello\n", "/bin/codex", "0.169.0").level == "warn"
