#!/usr/bin/env python3
"""Time Codex 0.169's own importer against `session-syncd import` on the same Claude Code history.

What it does, in one run:

1. Builds the headline fixture with `make_fixture.py` defaults (50 Claude Code sessions, ~238 MiB) into
   `bench/.work/fixture` (git-ignored; rebuilt when the generator changes; `--fixture DIR` reuses one).
2. Reads every fixture file once before any timing, so every contender starts with the sources in the
   page cache (a fair, warm-cache comparison; nobody pays the disk), and runs each tool once, untimed,
   on a throwaway home so binaries and Python bytecode are warm too. Each run's output is removed once
   it is checked, and before each timed run, `sync`: every run starts with the same page cache, and
   nobody's fsyncs wait on the writeback of what the run before it wrote.
3. For each of `--repeat` rounds, each into a fresh `CODEX_HOME`:
   (a) Codex: `codex app-server`, then `externalAgentConfig/detect` (maxSessions/maxSessionAgeDays set so
       that *every* session is taken, not Codex's default "50 newest of 30 days") and
       `externalAgentConfig/import`; timed from the detect request to the `import/completed`
       notification. App-server start-up is reported separately, and end-to-end (spawn to completed).
   (b) `session-syncd import` (default executor), wall time of the whole process, start-up included.
   (c) `session-syncd import` again on (b)'s homes with nothing changed.
   and (b) again with `--executor thread` and with `--executor process` (threads vs processes).
   Medians over the rounds are reported.
4. Checks every contender imported all sessions: Codex's completed notification must list one success
   per session and no failure, `thread/list` must show them all; session-syncd's JSON summary must count
   them all and (in the first round, untimed) the real Codex must list every thread it wrote. A benchmark that
   silently imports fewer would be wrong, so any shortfall aborts the run.

Peak RSS: for session-syncd, the largest single process (the parent or one worker; `wait4` rusage);
for Codex, the largest process of the app-server tree (VmHWM, Linux). CPU is user+sys of the whole tree.

Prints a table, then one JSON object on the last line:
{"codex_s", "syncd_s", "syncd_nochange_s", "b_over_a", "c_over_a", "threads_s", "processes_s", ...}.

Usage: bench/import_vs_codex.py [--repeat N] [--fixture DIR] [--work DIR] [--workers N] [--json-out FILE]
(`--json-out`: the JSON line also into FILE, for `bench/scale.py --rate-from` in the same `make bench`)
Needs SESSION_SYNCD_CODEX_BIN (`make bench` sets it) and session-syncd installed in this interpreter's venv.
Standard library only (plus tests/codex_app_server.py, imported by path).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_B, TARGET_C = 0.15, 0.03  # issue 11


def _load_helper():
    spec = importlib.util.spec_from_file_location("codex_app_server", REPO / "tests" / "codex_app_server.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


cas = _load_helper()


# -- fixture ---------------------------------------------------------------------------------------
def fixture_script() -> Path:
    script = HERE / "make_fixture.py"
    if not script.is_file():
        sys.exit(f"bench: {script} is missing")
    return script


def build_fixture(work: Path) -> Path:
    """make_fixture.py defaults into work/fixture; reused while the generator is unchanged."""
    script = fixture_script()
    root = work / "fixture"
    stamp = root / ".stamp"
    want = hashlib.sha256(script.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want:
        print(f"fixture: reusing {root} (built by an identical {script.name})", file=sys.stderr)
        return root
    shutil.rmtree(root, ignore_errors=True)
    print(f"fixture: building {root} with {script} (defaults) ...", file=sys.stderr)
    subprocess.run([sys.executable, str(script), str(root)], check=True, stdout=sys.stderr)
    stamp.write_text(want)
    return root


def session_files(fixture: Path) -> list[Path]:
    return sorted((fixture / "home" / ".claude" / "projects").glob("*/*.jsonl"))


def warm_page_cache(files: list[Path]) -> int:
    """Read every source byte once, so no contender pays for the disk (or benefits from another's read)."""
    total = 0
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while chunk := fh.read(16 << 20):
                total += len(chunk)
    return total


# -- process accounting ----------------------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _become_subreaper() -> bool:
    """Linux: adopt orphaned descendants (e.g. a forkserver that outlives session-syncd's exit), so their
    CPU time and peak RSS (which include the worker processes they reaped) are counted too."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_orphans(grace: float = 2.0) -> list:
    """rusage of every adopted orphan, waiting up to `grace` seconds for them to exit."""
    usages, deadline = [], time.monotonic() + grace
    while True:
        try:
            pid, _status, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return usages
        if pid:
            usages.append(ru)
        elif time.monotonic() > deadline:
            return usages
        else:
            time.sleep(0.005)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# -- contenders ------------------------------------------------------------------------------------
def settle() -> None:
    """Before each timed run: write back what earlier runs left dirty (Codex leaves ~190 MiB, we ~90 MiB,
    plus the deletions of the previous round's homes), so no contender's fsyncs wait on another's data.
    Measured here (2026-12-02), our import right after Codex's: 0.75-0.90 s without it, 0.69-0.76 s with
    it, against 0.65-0.78 s for the same import right after ours (what is left is not the disk's)."""
    os.sync()


def discard(*outputs: Path) -> None:
    """After a run's output is checked: remove it, so every timed run starts with the same page cache.
    Kept, the outputs of the earlier runs (~90 MiB each of ours, ~190 MiB of Codex's) pile up there, and
    each later run pays more for the fresh pages its own writes need. Measured here (2026-12-03, four
    rounds of Codex then us): with outputs kept our import went 0.603, 0.699, 0.708, 0.631 s, removed
    0.574, 0.541, 0.574, 0.615 s; Codex's 3.39-3.65 s either way."""
    for path in outputs:
        shutil.rmtree(path, ignore_errors=True)


def run_codex(fixture: Path, codex_home: Path, n_sessions: int, binary: str) -> dict:
    """(a): Codex's importer through a fresh app-server. Times: start-up, detect, import, detect→completed."""
    shutil.rmtree(codex_home, ignore_errors=True)
    settle()
    home = fixture / "home"
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    server = cas.CodexAppServer(home=home, codex_home=codex_home, binary=binary, timeout=900, cwd=fixture)
    server.start()
    try:
        t1 = time.perf_counter()
        items = server.detect(max_sessions=100_000, max_session_age_days=36_500)
        t2 = time.perf_counter()
        done = server.import_sessions(items, timeout=900) if items else {"itemTypeResults": []}
        t3 = time.perf_counter()
        rss_kib = max((_vm_hwm_kib(p) for p in _descendants(server._proc.pid)), default=0)  # noqa: SLF001
        results = done.get("itemTypeResults") or []
        ok = sum(len(r.get("successes") or []) for r in results)
        failures = [f for r in results for f in (r.get("failures") or [])]
        listed = len(server.list_threads())
    finally:
        server.close()
        _reap_orphans(0.5)  # the native binary, if the node wrapper left it to us
    cpu = _children_cpu() - cpu0
    detected = sum(len((i.get("details") or {}).get("sessions") or []) for i in items)
    if detected != n_sessions or ok != n_sessions or failures or listed != n_sessions:
        sys.exit(f"bench: Codex imported too few: {n_sessions} sessions, detected {detected}, imported {ok}, "
                 f"listed {listed}, failures {failures[:3]}")
    return {"startup_s": t1 - t0, "detect_s": t2 - t1, "import_s": t3 - t2, "s": t3 - t1, "e2e_s": t3 - t0,
            "rss_mib": rss_kib / 1024, "cpu_s": cpu, "threads": listed}


def syncd_env(fixture: Path, work: Path) -> dict[str, str]:
    xdg = work / "xdg-config"  # empty: no user config file leaks into the run
    xdg.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(fixture / "home"),
            "XDG_CONFIG_HOME": str(xdg), "TZ": "UTC", "LANG": "C.UTF-8",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp")}


def codex_binary() -> str:
    """Codex's CLI from $SESSION_SYNCD_CODEX_BIN, or a one-line exit saying how to get it."""
    try:
        return cas.require_codex_bin()
    except RuntimeError as e:
        sys.exit(f"bench: {e} (`make bench` sets it)")


def syncd_binary() -> str:
    local = Path(sys.executable).parent / "session-syncd"
    found = str(local) if local.is_file() else shutil.which("session-syncd")
    if not found:
        sys.exit("bench: session-syncd not installed in this environment (`make bench` does it)")
    return found


def run_syncd(binary: str, env: dict[str, str], codex_home: Path, state: Path, extra: list[str],
              expect: str, n_sessions: int, fresh: bool) -> dict:
    """(b)/(c): one whole `session-syncd import` process, wall time from spawn to exit.

    Also CPU (user+sys, worker processes included) and the peak RSS of its largest single process,
    both from the `wait4` rusage (which covers the children it reaped).
    """
    if fresh:
        shutil.rmtree(codex_home, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    settle()
    argv = [binary, "import", "--json", "--codex-home", str(codex_home), "--state-dir", str(state), *extra]
    _reap_orphans(0)  # nothing left over from earlier runs is counted as ours
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        _pid, status, ru = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        usages = [ru, *_reap_orphans()]
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(argv)} failed ({proc.returncode}):\n{stderr}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    got = summary["imported"] if expect == "imported" else summary["unchanged"]
    if got != n_sessions or summary["failed"] or summary["skipped"]:
        sys.exit(f"bench: session-syncd {expect} {got} of {n_sessions} sessions: {summary}")
    rollouts = sum(1 for _ in (codex_home / "sessions").rglob("rollout-*.jsonl"))
    if rollouts != n_sessions:
        sys.exit(f"bench: session-syncd left {rollouts} rollouts for {n_sessions} sessions")
    return {"s": elapsed, "cpu_s": sum(u.ru_utime + u.ru_stime for u in usages),
            "rss_mib": max(u.ru_maxrss for u in usages) / 1024, "summary": summary}


def codex_lists_all(codex_home: Path, fixture: Path, binary: str, n_sessions: int) -> int:
    """Ask the real Codex how many threads it sees in a home session-syncd wrote (untimed check)."""
    with cas.CodexAppServer(home=fixture / "home", codex_home=codex_home, binary=binary, timeout=120,
                            cwd=fixture) as server:
        listed = len(server.list_threads())
    if listed != n_sessions:
        sys.exit(f"bench: Codex lists {listed} threads in session-syncd's home, expected {n_sessions}")
    return listed


# -- main ------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported (default 3)")
    ap.add_argument("--fixture", type=Path, help="reuse this make_fixture.py output instead of building one")
    ap.add_argument("--work", type=Path, default=HERE / ".work", help="scratch folder (default bench/.work)")
    ap.add_argument("--workers", type=int, help="pass --workers N to session-syncd")
    ap.add_argument("--json-out", type=Path, help="also write the JSON result into this file")
    a = ap.parse_args()

    _become_subreaper()
    codex = codex_binary()
    syncd = syncd_binary()
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    fixture = a.fixture.resolve() if a.fixture else build_fixture(work)
    files = session_files(fixture)
    n = len(files)
    if not n:
        sys.exit(f"bench: no Claude sessions under {fixture}/home/.claude/projects")
    nbytes = warm_page_cache(files)
    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    env = syncd_env(fixture, work)
    extra = ["--workers", str(a.workers)] if a.workers else []

    print(f"fixture: {n} sessions, {nbytes / 2**20:.1f} MiB at {fixture}; all read once before timing "
          f"(warm page cache for every contender)", file=sys.stderr)
    # Warm-up, untimed: the Codex binary and session-syncd's bytecode into memory.
    with cas.CodexAppServer(home=fixture / "home", codex_home=runs / "warm-codex", binary=codex, cwd=fixture):
        pass
    subprocess.run([syncd, "import", "--max-sessions", "1", "--codex-home", str(runs / "warm-syncd"),
                    "--state-dir", str(runs / "warm-state"), *extra], env=env, check=True, capture_output=True)
    discard(runs / "warm-codex", runs / "warm-syncd", runs / "warm-state")

    rounds: dict[str, list[dict]] = {k: [] for k in ("codex", "syncd", "nochange", "threads", "processes")}
    listed = 0
    for r in range(a.repeat):
        print(f"round {r + 1}/{a.repeat} ...", file=sys.stderr)
        rounds["codex"].append(run_codex(fixture, runs / f"codex-{r}", n, codex))
        discard(runs / f"codex-{r}")
        home, state = runs / f"syncd-{r}", runs / f"syncd-state-{r}"
        rounds["syncd"].append(run_syncd(syncd, env, home, state, extra, "imported", n, fresh=True))
        rounds["nochange"].append(run_syncd(syncd, env, home, state, extra, "unchanged", n, fresh=False))
        if r == 0:
            listed = codex_lists_all(home, fixture, codex, n)
        discard(home, state)
        for key, mode in (("threads", "thread"), ("processes", "process")):
            home, state = runs / f"{key}-{r}", runs / f"{key}-state-{r}"
            rounds[key].append(run_syncd(syncd, env, home, state, [*extra, "--executor", mode], "imported", n,
                                         fresh=True))
            discard(home, state)

    def med(key: str, field: str = "s") -> float:
        return statistics.median(x[field] for x in rounds[key])

    a_s, b_s, c_s = med("codex"), med("syncd"), med("nochange")
    result = {
        "codex_s": round(a_s, 3),
        "syncd_s": round(b_s, 3),
        "syncd_nochange_s": round(c_s, 3),
        "b_over_a": round(b_s / a_s, 4),
        "c_over_a": round(c_s / a_s, 4),
        "threads_s": round(med("threads"), 3),
        "processes_s": round(med("processes"), 3),
        "codex_startup_s": round(med("codex", "startup_s"), 3),
        "codex_detect_s": round(med("codex", "detect_s"), 3),
        "codex_import_s": round(med("codex", "import_s"), 3),
        "codex_e2e_s": round(med("codex", "e2e_s"), 3),
        "b_over_a_e2e": round(b_s / med("codex", "e2e_s"), 4),
        "min_s": {k: round(min(x["s"] for x in v), 3) for k, v in rounds.items()},
        "b_over_a_min": round(min(x["s"] for x in rounds["syncd"]) / min(x["s"] for x in rounds["codex"]), 4),
        "cpu_s": {k: round(med(k, "cpu_s"), 3) for k in rounds},
        "peak_rss_mib": {k: round(max(x["rss_mib"] for x in rounds[k]), 1) for k in rounds},
        "sessions": n,
        "fixture_mib": round(nbytes / 2**20, 1),
        "codex_threads_listed": listed,
        "repeat": a.repeat,
        "runs_s": {k: [round(x["s"], 3) for x in v] for k, v in rounds.items()},
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "targets_met": b_s / a_s <= TARGET_B and c_s / a_s <= TARGET_C,
    }

    rows = [
        ("(a) Codex 0.169 importer: detect -> import/completed", a_s, "codex"),
        ("    app-server start-up (not in a)", result["codex_startup_s"], None),
        ("    detect / import", None, None),
        ("    end-to-end incl. start-up", result["codex_e2e_s"], None),
        ("(b) session-syncd import (auto executor)", b_s, "syncd"),
        ("(c) session-syncd import, nothing changed", c_s, "nochange"),
        ("    (b) with --executor thread", result["threads_s"], "threads"),
        ("    (b) with --executor process", result["processes_s"], "processes"),
    ]
    print(f"\n{n} sessions, {result['fixture_mib']} MiB, {os.cpu_count()} cores, median of {a.repeat}; "
          f"warm page cache")
    print(f"{'':54}{'wall s':>8}{'CPU s':>8}{'RSS MiB':>9}{'vs (a)':>8}")
    for label, secs, key in rows:
        if secs is None:
            print(f"{label:54}{result['codex_detect_s']:>8.3f} / {result['codex_import_s']:.3f}")
            continue
        cpu = f"{result['cpu_s'][key]:>8.2f}" if key else f"{'':>8}"
        rss = f"{result['peak_rss_mib'][key]:>9.1f}" if key else f"{'':>9}"
        print(f"{label:54}{secs:>8.3f}{cpu}{rss}{secs / a_s:>8.3f}")
    print(f"best of {a.repeat} (least disturbed by other load): a {result['min_s']['codex']:.3f}, "
          f"b {result['min_s']['syncd']:.3f}, c {result['min_s']['nochange']:.3f}, "
          f"threads {result['min_s']['threads']:.3f}, processes {result['min_s']['processes']:.3f}; "
          f"b/a {result['b_over_a_min']:.3f}")
    print(f"targets: b/a {result['b_over_a']:.3f} (<= {TARGET_B}), c/a {result['c_over_a']:.4f} (<= {TARGET_C}) "
          f"-> {'met' if result['targets_met'] else 'NOT met'}")
    line = json.dumps(result, separators=(", ", ": "))
    if a.json_out:
        a.json_out.parent.mkdir(parents=True, exist_ok=True)
        a.json_out.write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
