#!/usr/bin/env python3
"""session-syncd against Codex 0.169's own importer at 10,000 sessions, and the daemon on that tree.

What it does, in one run (ratios are between figures of this run only):

1. Builds the tree with the project's generator, `make_fixture.py --sessions N --projects P --mib M`
   (default N=10,000, P=200, M=302: 819 MiB, M plus what each session overshoots its share by, up to
   one turn; `--sessions N` scales P and M down with N for a quick run), cached in
   `bench/.work/scale-N` (git-ignored) while the generator and the arguments are unchanged.
2. Reads every source byte once before any timing (warm page cache for every contender) and runs each
   tool once, untimed, on a throwaway home. Nothing is deleted between the timed runs (every output is
   removed at the end), and on an ext4 without a journal the first timed run waits until the files an
   earlier invocation removed can be reused (`wait_for_inode_reuse`).
3. Times, each into a fresh `CODEX_HOME`:
   (a) Codex: `codex app-server`, `externalAgentConfig/detect` (limits raised so every session is
       taken) + `externalAgentConfig/import`, from the detect request to `import/completed`
       (bench/import_vs_codex.py's driver; start-up reported apart, and end to end);
   (b) `session-syncd import`, the whole process; (c) the same again with nothing changed;
   (d) `session-syncd run` on (b)'s homes: spawn to the `READY=1` it sends to `NOTIFY_SOCKET` (a socket
       of ours, as systemd's), its peak RSS (VmHWM of the daemon and of its largest worker), and its
       CPU while idle for `--idle-seconds` once the work after READY has settled (a second with under
       5 ms of CPU), as a share of one core; then SIGTERM.
4. Checks every contender imported every session (Codex's completed notification and thread/list;
   session-syncd's summary, its rollouts, and the real Codex listing them), or aborts.

Prints a table, then one JSON object on its last line.
Usage: bench/scale.py [--sessions N] [--projects P] [--mib M] [--idle-seconds S] [--work DIR]
                      [--workers N] [--skip-codex] [--rate-from FILE]
(`--rate-from`: bench/import_vs_codex.py's `--json-out` of the same run; then it also prints the issue's
per-session overhead: (b) less what its bytes cost at the 50-session rate, per session, target ≤ 1 ms.)
Needs SESSION_SYNCD_CODEX_BIN (`make bench` sets it). Standard library only (plus
bench/import_vs_codex.py and tests/service/notify_listener.py, imported by path).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FULL_SESSIONS, FULL_PROJECTS, FULL_MIB = 10_000, 200, 302.0
# The targets at 10,000 sessions (issue 11).
TARGET_IMPORT_RATIO, TARGET_NOCHANGE_S, TARGET_READY_S, TARGET_RSS_MIB, TARGET_IDLE_PCT = 0.2, 0.5, 2.0, 120.0, 0.2
TARGET_OVERHEAD_MS = 1.0  # per session, beyond what its bytes cost at the 50-session rate


def overhead_ms(import_s: float, tree_mib: float, sessions: int, rate_from: Path) -> float | None:
    """The issue's per-session overhead: the import's time less what its bytes cost at the 50-session
    fixture's rate (bench/import_vs_codex.py's JSON of the same `make bench`), per session; None without it."""
    try:
        fifty = json.loads(rate_from.read_text())
        per_mib = fifty["syncd_s"] / fifty["fixture_mib"]
    except (OSError, ValueError, KeyError, ZeroDivisionError):
        return None
    return (import_s - tree_mib * per_mib) / sessions * 1000


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


ivc = _load("import_vs_codex", HERE / "import_vs_codex.py")
notify = _load("notify_listener", REPO / "tests" / "service" / "notify_listener.py")
latency = _load("daemon_latency", HERE / "daemon_latency.py")  # its /proc readers: one copy
_group, _cpu_s = latency.group_pids, latency.cpu_seconds


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the tree ----------------------------------------------------------------------------------------

def build_tree(work: Path, sessions: int, projects: int, mib: float) -> Path:
    """make_fixture.py into work/scale-N, reused while the generator and its arguments are the same."""
    script = ivc.fixture_script()
    args = ["--sessions", str(sessions), "--projects", str(projects), "--mib", f"{mib:g}"]
    root = work / f"scale-{sessions}"
    stamp = root / ".stamp"
    want = hashlib.sha256(script.read_bytes() + " ".join(args).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want:
        log(f"tree: reusing {root}")
        return root
    remove_outputs(root, work)
    log(f"tree: building {root} with {script.name} {' '.join(args)} (a minute or two at full size) ...")
    subprocess.run([sys.executable, str(script), str(root), *args], check=True, stdout=sys.stderr)
    stamp.write_text(want)
    return root


# -- deletions and inode reuse ------------------------------------------------------------------------

#: Seconds after which ext4 without a journal reuses the inodes of deleted files: it skips an inode freed
#: less than 60 s ago (300 s while its inode-table block is unwritten), one buffer lookup per skipped inode
#: on every file created in that block group (fs/ext4/ialloc.c, recently_deleted). Measured here
#: (2026-12-03, this project's VMs mount / as ext4 with no journal): creating 4,000 files costs 22-30 µs each
#: with no recent deletion, 400-480 µs within a minute of deleting 4,000 files, 399 µs 62 s after the
#: deletion and a `sync`, 30 µs after 125 s. A run timed right after the previous contender's output was
#: deleted (Codex's 10,000 rollouts and their lock files: ~20,000 inodes) pays for that deletion: a perf
#: profile of our import then shows ~16 % of all CPU in that scan, none without it.
REUSE_WAIT_S = 130.0
DELETED_STAMP = ".deleted-at"  # in the work folder: when this script last removed a run's outputs


def journalless_ext4(path: Path) -> bool:
    """Whether `path` lives on an ext4 mounted without a journal (the only filesystem with that wait)."""
    dev = os.stat(path).st_dev
    want = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        fields, _, tail = line.partition(" - ")
        parts, rest = fields.split(), tail.split()
        if len(parts) > 2 and parts[2] == want and len(rest) > 1 and rest[0] == "ext4":
            task = Path("/sys/fs/ext4") / Path(rest[1]).name / "journal_task"
            try:
                return task.read_text().strip() == "<none>"
            except OSError:
                return False
    return False


def remove_outputs(path: Path, work: Path) -> None:
    """Delete a run's outputs and note when, for `wait_for_inode_reuse` (in this or a later invocation)."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        (work / DELETED_STAMP).write_text(f"{time.time():.3f}")


def wait_for_inode_reuse(work: Path) -> float:
    """Before the first timed run: on ext4 without a journal, wait until REUSE_WAIT_S have passed since
    this script last deleted outputs, so that neither contender pays for the other's (or an earlier
    invocation's) deletions. Returns the seconds waited."""
    try:
        deleted_at = float((work / DELETED_STAMP).read_text())
    except (OSError, ValueError):
        return 0.0
    left = deleted_at + REUSE_WAIT_S - time.time()
    if left <= 0 or not journalless_ext4(work):
        return 0.0
    log(f"ext4 without a journal: waiting {left:.0f} s until the inodes of the outputs deleted at "
        f"{time.strftime('%H:%M:%S', time.localtime(deleted_at))} can be reused")
    time.sleep(left)
    return left


# -- the daemon --------------------------------------------------------------------------------------

def run_daemon(binary: str, env: dict[str, str], codex_home: Path, state: Path, idle_s: float) -> dict:
    """(d): cold start to READY on an imported tree, peak RSS, idle CPU; SIGTERM at the end."""
    with notify.NotifyListener() as listener:
        argv = [binary, "run", "--codex-home", str(codex_home), "--state-dir", str(state)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env={**env, **listener.env}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            while True:
                try:
                    listener.wait_for("READY", "1", timeout=0.05)
                    ready = time.perf_counter() - t0
                    break
                except TimeoutError:
                    pass
                if proc.poll() is not None:
                    sys.exit(f"bench: the daemon exited ({proc.returncode}) before READY:\n"
                             f"{proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
                if time.perf_counter() - t0 > 300:
                    sys.exit("bench: no READY from the daemon within 300 s")
            # READY comes once the start-up reconcile is queued; the work after it (a backlog, the first
            # mirror check of Codex's import ledger) is not idleness: wait until a second passes quietly.
            settle_until = time.monotonic() + 120
            while time.monotonic() < settle_until:
                pids = _group(proc.pid)
                before = sum(_cpu_s(p) for p in pids)
                time.sleep(1.0)
                if sum(_cpu_s(p) for p in _group(proc.pid)) - before < 0.005:
                    break
            pids = _group(proc.pid)
            cpu0 = {p: _cpu_s(p) for p in pids}
            i0 = time.monotonic()
            time.sleep(idle_s)
            pids = _group(proc.pid)
            idle_cpu = sum(_cpu_s(p) - cpu0.get(p, 0.0) for p in pids)
            idle_pct = idle_cpu / (time.monotonic() - i0) * 100
            hwm = {p: ivc._vm_hwm_kib(p) / 1024 for p in pids}  # noqa: SLF001
            cpu_total = sum(_cpu_s(p) for p in pids)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    if proc.returncode != 0:
        sys.exit(f"bench: the daemon exited {proc.returncode} on SIGTERM")
    workers = [v for p, v in hwm.items() if p != proc.pid]
    return {"ready_s": ready, "rss_mib": hwm.get(proc.pid, 0.0), "worker_rss_mib": max(workers, default=0.0),
            "processes": len(pids), "idle_cpu_pct": idle_pct, "cpu_s": cpu_total}


# -- main --------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=FULL_SESSIONS)
    ap.add_argument("--projects", type=int, help=f"default {FULL_PROJECTS} × sessions / {FULL_SESSIONS}")
    ap.add_argument("--mib", type=float, help=f"make_fixture.py --mib (default {FULL_MIB:g} × sessions / "
                                              f"{FULL_SESSIONS})")
    ap.add_argument("--idle-seconds", type=float, default=30.0, help="length of the idle-CPU window")
    ap.add_argument("--work", type=Path, default=HERE / ".work", help="scratch folder (default bench/.work)")
    ap.add_argument("--workers", type=int, help="pass --max-inflight N to session-syncd import")
    ap.add_argument("--skip-codex", action="store_true", help="session-syncd only (no ratios)")
    ap.add_argument("--rate-from", type=Path, help="bench/import_vs_codex.py's --json-out of the same run: "
                                                   "prints the per-session overhead beyond the bytes")
    a = ap.parse_args()
    scale = a.sessions / FULL_SESSIONS
    projects = a.projects or max(1, round(FULL_PROJECTS * scale))
    mib = a.mib if a.mib is not None else round(FULL_MIB * scale, 3)

    ivc._become_subreaper()  # noqa: SLF001
    codex = None if a.skip_codex else ivc.codex_binary()
    syncd = ivc.syncd_binary()
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    tree = build_tree(work, a.sessions, projects, mib)
    files = ivc.session_files(tree)
    n = len(files)
    if n != a.sessions:
        sys.exit(f"bench: {tree} holds {n} sessions, not {a.sessions}; delete it to rebuild")
    load0 = os.getloadavg()
    nbytes = ivc.warm_page_cache(files)
    runs = work / f"scale-runs-{a.sessions}"
    remove_outputs(runs, work)  # left by an invocation that did not finish
    env = ivc.syncd_env(tree, work)
    extra = ["--max-inflight", str(a.workers)] if a.workers else []
    log(f"{n} sessions, {projects} projects, {nbytes / 2**20:.1f} MiB at {tree}; load {load0[0]:.2f}")

    # Warm-up, untimed: binaries and bytecode into memory.
    if codex:
        with ivc.cas.CodexAppServer(home=tree / "home", codex_home=runs / "warm-codex", binary=codex, cwd=tree):
            pass
    subprocess.run([syncd, "import", "--max-sessions", "1", "--codex-home", str(runs / "warm-syncd"),
                    "--state-dir", str(runs / "warm-state"), *extra], env=env, check=True, capture_output=True)

    result: dict = {"inode_reuse_wait_s": round(wait_for_inode_reuse(work), 1)}
    if codex:
        log("(a) Codex importer ...")
        c = ivc.run_codex(tree, runs / "codex", n, codex)  # its output stays until the end (REUSE_WAIT_S)
        result.update(codex_s=round(c["s"], 3), codex_startup_s=round(c["startup_s"], 3),
                      codex_detect_s=round(c["detect_s"], 3), codex_import_s=round(c["import_s"], 3),
                      codex_e2e_s=round(c["e2e_s"], 3), codex_cpu_s=round(c["cpu_s"], 2),
                      codex_rss_mib=round(c["rss_mib"], 1))
    home, state = runs / "syncd", runs / "syncd-state"
    log("(b) session-syncd import ...")
    b = ivc.run_syncd(syncd, env, home, state, extra, "imported", n, fresh=True)
    log("(c) session-syncd import, nothing changed ...")
    c2 = ivc.run_syncd(syncd, env, home, state, extra, "unchanged", n, fresh=False)
    log(f"(d) session-syncd run: cold start to READY, then idle {a.idle_seconds:g} s ...")
    d = run_daemon(syncd, env, home, state, a.idle_seconds)
    listed = ivc.codex_lists_all(home, tree, codex, n) if codex else None
    load1 = os.getloadavg()
    remove_outputs(runs, work)

    result.update(
        syncd_s=round(b["s"], 3), syncd_cpu_s=round(b["cpu_s"], 2), syncd_rss_mib=round(b["rss_mib"], 1),
        syncd_nochange_s=round(c2["s"], 3), syncd_nochange_cpu_s=round(c2["cpu_s"], 3),
        daemon_ready_s=round(d["ready_s"], 3), daemon_rss_mib=round(d["rss_mib"], 1),
        daemon_worker_rss_mib=round(d["worker_rss_mib"], 1), daemon_processes=d["processes"],
        daemon_idle_cpu_pct=round(d["idle_cpu_pct"], 3), idle_seconds=a.idle_seconds,
        per_session_ms=round((b["cpu_s"] / n) * 1000, 3),
    )
    if codex:
        result.update(b_over_a=round(b["s"] / result["codex_s"], 4),
                      b_over_a_e2e=round(b["s"] / result["codex_e2e_s"], 4),
                      c_over_a=round(c2["s"] / result["codex_s"], 4), codex_threads_listed=listed)
    overhead = overhead_ms(b["s"], nbytes / 2**20, n, a.rate_from) if a.rate_from else None
    if overhead is not None:
        result["overhead_ms"] = round(overhead, 3)
    result.update(sessions=n, projects=projects, tree_mib=round(nbytes / 2**20, 1), cores=os.cpu_count(),
                  python=platform.python_version(), load_before=round(load0[0], 2), load_after=round(load1[0], 2),
                  date=time.strftime("%Y-%m-%d"))
    checks = {"import_ratio": result.get("b_over_a", 0.0) <= TARGET_IMPORT_RATIO if codex else None,
              "nochange_s": c2["s"] <= TARGET_NOCHANGE_S, "ready_s": d["ready_s"] <= TARGET_READY_S,
              "daemon_rss_mib": d["rss_mib"] <= TARGET_RSS_MIB, "idle_cpu_pct": d["idle_cpu_pct"] <= TARGET_IDLE_PCT,
              "overhead_ms": None if overhead is None else overhead <= TARGET_OVERHEAD_MS}
    result["targets_met"] = all(v for v in checks.values() if v is not None)
    result["checks"] = checks

    def ok(key: str) -> str:
        return {True: "ok", False: "MISSED", None: ""}[checks[key]]

    print(f"\n{n} sessions, {projects} projects, {result['tree_mib']} MiB, {os.cpu_count()} cores, one run; "
          f"warm page cache; load {load0[0]:.2f} -> {load1[0]:.2f}")
    rows = []
    if codex:
        rows += [("(a) Codex 0.169 importer: detect -> import/completed", f"{result['codex_s']:.2f} s", ""),
                 ("    start-up / detect / import", f"{result['codex_startup_s']:.2f} / {result['codex_detect_s']:.2f}"
                                                    f" / {result['codex_import_s']:.2f} s", "")]
    rows += [("(b) session-syncd import", f"{b['s']:.2f} s" + (f"  = {result['b_over_a']:.3f} × (a)" if codex else ""),
              ok("import_ratio") if codex else ""),
             ("(c) same, nothing changed", f"{c2['s']:.3f} s", ok("nochange_s")),
             ("(d) daemon cold start to READY", f"{d['ready_s']:.3f} s", ok("ready_s")),
             ("    daemon peak RSS (largest worker)", f"{d['rss_mib']:.1f} MiB ({d['worker_rss_mib']:.1f})",
              ok("daemon_rss_mib")),
             (f"    daemon idle CPU over {a.idle_seconds:g} s", f"{d['idle_cpu_pct']:.3f} %", ok("idle_cpu_pct")),
             ("    import CPU per session (all bytes included)", f"{result['per_session_ms']:.2f} ms", "")]
    if overhead is not None:
        rows.append(("    (b) per session beyond its bytes (50-session rate)", f"{overhead:.2f} ms", ok("overhead_ms")))
    for label, value, verdict in rows:
        print(f"{label:50} {value:>34} {verdict}")
    print(json.dumps(result, separators=(", ", ": ")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
