#!/usr/bin/env python3
"""How fast does the running daemon carry an appended turn into its Codex thread, and what does it cost?

Scenario: `session-syncd run` watching the headline fixture (make_fixture.py defaults: 50 Claude Code
sessions, ~238 MiB) after its first import. A writer appends one turn at a time (a user record and an
assistant record, one `write`) to random sessions, about `--rate` appends/s for `--seconds` s. Each turn
carries a unique marker; a poller in this process (os.stat every ~2 ms on the rollouts that have a marker
pending, then a read of their tail) notes when the marker is in the rollout.

Reports:
* latency = (marker seen in the rollout) − (append written) − quiet_ms: p50 / p95 / max. Random targets
  mean a session sometimes gets a second append within its quiet period; the debounce then (by design)
  waits for quiet after that one, so this figure includes up to a quiet period per later append.
  Hence also: latency from the burst's end = (seen) − (the last append carried by the same sync) −
  quiet_ms, which is the daemon's own overhead (event delivery, queueing, the sync itself).
* daemon CPU seconds during the append phase and peak RSS (VmHWM), for the daemon process and for its
  worker processes (the daemon keeps the process pool it made for the first import), read from
  /proc/<pid>/stat and /proc/<pid>/status of every process in the daemon's process group.
* append ratio for the largest session: median `duration_ms` of its `session.appended` log events over
  the `duration_ms` of its `session.imported` event in the first import (both measured by the daemon
  around `engine.sync_session`; the import ran concurrently with the other workers, as it does for real).
* idle CPU: the daemon's CPU over `--idle-seconds` with nothing changing, as a percentage of one core.

Targets: p95 ≤ quiet + 150 ms, append ratio ≤ 0.05, idle CPU ≤ 0.2 %.

Prints a table, then one JSON object on the last line.
Usage: bench/daemon_latency.py [--seconds 60] [--idle-seconds 60] [--rate 20] [--quiet-ms 750]
                               [--max-wait-ms 10000] [--workers 0] [--work DIR] [--seed N]
The fixture is built once into WORK/fixture-base (WORK defaults to bench/.work/daemon_latency, git-ignored)
and copied for each run. Standard library only; the daemon is `python -m daemon` of this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_P95_OVER_QUIET_MS, TARGET_RATIO, TARGET_IDLE_PCT = 150.0, 0.05, 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")
TAIL_SLACK = 64 << 10  # the daemon cuts its closing lines (small) before appending: re-read this much


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- fixture -----------------------------------------------------------------------------------------

def fixture_script() -> Path:
    return HERE / "make_fixture.py"  # the project's own generator


def build_fixture(work: Path) -> Path:
    base = work / "fixture-base"
    stamp = base / ".built"
    script = fixture_script()
    key = f"{script.stat().st_size}:{script.stat().st_mtime_ns}"
    if stamp.is_file() and stamp.read_text() == key:
        return base
    shutil.rmtree(base, ignore_errors=True)
    log(f"building the fixture with {script} (defaults) into {base} ...")
    subprocess.run([sys.executable, str(script), str(base)], check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(key)
    return base


def sessions(root: Path) -> list[Path]:
    return sorted((root / "home" / ".claude" / "projects").glob("*/*.jsonl"))


# -- the daemon's processes --------------------------------------------------------------------------

def group_pids(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:  # field 5, pgrp
            out.append(int(entry))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (fields 14, 15 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def hwm_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Group:
    """CPU of the daemon process and of its workers (its process group), remembering exited workers."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.last: dict[int, float] = {}

    def sample(self) -> tuple[float, float]:
        """(daemon CPU s, workers CPU s) so far; a worker that exited keeps its last reading."""
        for pid in group_pids(self.pgid):
            self.last[pid] = max(self.last.get(pid, 0.0), cpu_seconds(pid))
        main = self.last.get(self.pgid, 0.0)
        return main, sum(v for p, v in self.last.items() if p != self.pgid)

    def hwm(self) -> tuple[float, float]:
        pids = group_pids(self.pgid)
        return hwm_mib(self.pgid), max((hwm_mib(p) for p in pids if p != self.pgid), default=0.0)


# -- the run -----------------------------------------------------------------------------------------

def iso(ts: float) -> str:
    ms = int(ts * 1000)
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def turn(first: dict, session_id: str, marker: str, ts: float) -> bytes:
    base = {"parentUuid": None, "isSidechain": False, "userType": "external", "cwd": first.get("cwd"),
            "sessionId": session_id, "version": first.get("version", "2.1.0"),
            "gitBranch": first.get("gitBranch", "main")}
    recs = [
        {**base, "type": "user", "uuid": str(uuid.uuid4()), "timestamp": iso(ts),
         "message": {"role": "user", "content": f"please look at {marker} and fix the failing test"}},
        {**base, "type": "assistant", "uuid": str(uuid.uuid4()), "timestamp": iso(ts + 0.5),
         "message": {"role": "assistant", "content": [{"type": "text", "text": f"Done with {marker}: the test passes."}]}},
    ]
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in recs)


def ledger(state: Path) -> dict[str, dict]:
    db = sqlite3.connect(f"file:{state / 'session-syncd' / 'ledger.sqlite3'}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return {r["path"]: dict(r) for r in db.execute("SELECT path, size, consumed, rollout_path FROM sessions")}
    finally:
        db.close()


def events(log_path: Path, start: int = 0) -> list[dict]:
    out = []
    try:
        data = log_path.read_bytes()[start:]
    except FileNotFoundError:
        return out
    for line in data.split(b"\n")[:-1]:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


class Poller(threading.Thread):
    """Notes when each pending marker shows up in its rollout (stat every ~2 ms, read only on change)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.pending: dict[str, list[tuple[bytes, float]]] = {}  # rollout → [(marker, appended at)]
        self.scan_from: dict[str, int] = {}
        self.seen_stat: dict[str, tuple[int, int]] = {}
        self.latencies: list[float] = []  # seconds from append to seen
        self.burst_latencies: list[float] = []  # seconds from the burst's last append to seen
        self.stop = threading.Event()

    def expect(self, rollout: str, marker: bytes, at: float) -> None:
        with self.lock:
            if rollout not in self.pending or not self.pending[rollout]:
                size = os.stat(rollout).st_size
                self.scan_from[rollout] = max(0, size - TAIL_SLACK)
            self.pending.setdefault(rollout, []).append((marker, at))

    def outstanding(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.pending.values())

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                todo = [r for r, v in self.pending.items() if v]
            for rollout in todo:
                try:
                    st = os.stat(rollout)
                except FileNotFoundError:
                    continue
                key = (st.st_size, st.st_mtime_ns)
                if self.seen_stat.get(rollout) == key:
                    continue
                now = time.monotonic()
                with open(rollout, "rb") as f:
                    f.seek(self.scan_from[rollout])
                    data = f.read()
                self.seen_stat[rollout] = key
                with self.lock:
                    left, found = [], []
                    for marker, at in self.pending[rollout]:
                        if marker in data:
                            found.append(at)
                        else:
                            left.append((marker, at))
                    self.pending[rollout] = left
                    if found:
                        end = max(found)  # the burst's last append that this sync carried
                        self.latencies.extend(now - at for at in found)
                        self.burst_latencies.extend(now - end for _ in found)
            time.sleep(0.002)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the append phase")
    ap.add_argument("--idle-seconds", type=float, default=60.0, help="length of the idle-CPU phase")
    ap.add_argument("--rate", type=float, default=20.0, help="appends per second")
    ap.add_argument("--quiet-ms", type=int, default=750)
    ap.add_argument("--max-wait-ms", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=0, help="0 = the daemon's default (cores, at least 2)")
    ap.add_argument("--work", type=Path, default=HERE / ".work" / "daemon_latency")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    base = build_fixture(work)
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(base, run, symlinks=True)  # the appends change the sources: start from a clean copy
    files = sessions(run)
    largest = max(files, key=lambda p: p.stat().st_size)
    state, codex_home = run / "state", run / "codex"
    log_path = state / "session-syncd" / "logs" / "session-syncd.jsonl"
    config = run / "daemon.toml"
    config.write_text(f"quiet_ms = {args.quiet_ms}\nmax_wait_ms = {args.max_wait_ms}\nmax_inflight = {args.workers}\n"
                      "[sources.cursor]\nenabled = false\n")
    env = {"HOME": str(run / "home"), "CODEX_HOME": str(codex_home), "XDG_STATE_HOME": str(state),
           "XDG_CONFIG_HOME": str(run / "config"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "TZ": "UTC", "LANG": "C.UTF-8"}
    total_mib = sum(p.stat().st_size for p in files) / (1 << 20)
    log(f"{len(files)} sessions, {total_mib:.0f} MiB; starting the daemon (first import) ...")
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "run", "--config", str(config)], env=env, cwd=run,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    group = Group(proc.pid)
    try:
        return measure(args, proc, group, files, largest, state, log_path, total_mib)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            sys.exit(f"bench: the daemon exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            sys.exit(f"bench: timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def measure(args, proc, group: Group, files: list[Path], largest: Path, state: Path, log_path: Path,
            total_mib: float) -> int:
    began = time.monotonic()

    def all_synced() -> bool:
        try:
            rows = ledger(state)
        except sqlite3.Error:
            return False
        return all((r := rows.get(str(p))) and r["consumed"] == p.stat().st_size and r["rollout_path"]
                   for p in files)

    wait_for(lambda: any(e.get("event") == "daemon.ready" for e in events(log_path)), 900, "daemon.ready", proc)
    wait_for(all_synced, 900, "the first import", proc)
    import_s = time.monotonic() - began
    log(f"first import done in {import_s:.1f}s; settling ...")
    time.sleep(3)
    rows = ledger(state)
    rollout_of = {p: rows[str(p)]["rollout_path"] for p in files}
    firsts = {p: json.loads(p.open("rb").readline()) for p in files}
    log_mark = log_path.stat().st_size

    poller = Poller()
    poller.start()
    rng = random.Random(args.seed)
    cpu0 = group.sample()
    t0 = time.monotonic()
    n = 0
    interval = 1.0 / args.rate
    log(f"appending ~{args.rate:g}/s to random sessions for {args.seconds:g}s ...")
    targets = [rng.choice(files) for _ in range(int(args.seconds * args.rate))]
    targets.append(largest)  # at least one append to the largest session, for the ratio
    for path in targets:
        next_at = t0 + n * interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        marker = f"MARK-{uuid.uuid4().hex}"
        data = turn(firsts[path], path.stem, marker, time.time())
        with path.open("ab") as f:
            poller.expect(rollout_of[path], marker.encode(), time.monotonic())
            f.write(data)
            f.flush()
        n += 1
    write_s = time.monotonic() - t0
    wait_for(lambda: poller.outstanding() == 0, 300, "every marker to reach its rollout", proc)
    cpu1 = group.sample()
    poller.stop.set()
    poller.join()
    quiet = args.quiet_ms / 1000
    lat_ms = [(lat - quiet) * 1000 for lat in poller.latencies]
    burst_ms = [(lat - quiet) * 1000 for lat in poller.burst_latencies]
    hwm_main, hwm_worker = group.hwm()

    # Append ratio for the largest session, from the daemon's own log.
    imported = [e for e in events(log_path) if e.get("event") == "session.imported" and e.get("path") == str(largest)]
    during = events(log_path, log_mark)
    appended = [e["duration_ms"] for e in during if e.get("event") == "session.appended" and e.get("path") == str(largest)]
    others = sorted({e["event"] for e in during if e.get("level") in ("warning", "error")
                     or e.get("event") in ("session.rewritten", "session.conflict", "session.imported")})
    import_ms = imported[0]["duration_ms"] if imported else float("nan")
    append_ms = statistics.median(appended) if appended else float("nan")
    ratio = append_ms / import_ms

    # Idle CPU: wait for every sync to be done, then nothing changes for --idle-seconds.
    wait_for(all_synced, 120, "the last syncs", proc)
    time.sleep(2)
    log(f"idle for {args.idle_seconds:g}s ...")
    idle0, i0 = group.sample(), time.monotonic()
    time.sleep(args.idle_seconds)
    idle1, i1 = group.sample(), time.monotonic()
    idle_main = (idle1[0] - idle0[0]) / (i1 - i0) * 100
    idle_all = (sum(idle1) - sum(idle0)) / (i1 - i0) * 100

    p50, p95, pmax = pct(lat_ms, 0.5), pct(lat_ms, 0.95), max(lat_ms)
    b50, b95, bmax = pct(burst_ms, 0.5), pct(burst_ms, 0.95), max(burst_ms)
    coalesced = sum(1 for a, b in zip(poller.latencies, poller.burst_latencies) if a - b > 1e-3)
    result = {
        "sessions": len(files), "fixture_mib": round(total_mib, 1), "first_import_s": round(import_s, 1),
        "quiet_ms": args.quiet_ms, "max_wait_ms": args.max_wait_ms, "appends": n,
        "append_rate": round(n / write_s, 1), "seconds": round(write_s, 1),
        "latency_minus_quiet_ms": {"p50": round(p50, 1), "p95": round(p95, 1), "max": round(pmax, 1)},
        "burst_end_latency_minus_quiet_ms": {"p50": round(b50, 1), "p95": round(b95, 1), "max": round(bmax, 1)},
        "coalesced_appends": coalesced,
        "cpu_s": {"daemon": round(cpu1[0] - cpu0[0], 2), "workers": round(cpu1[1] - cpu0[1], 2)},
        "peak_rss_mib": {"daemon": round(hwm_main, 1), "worker_max": round(hwm_worker, 1)},
        "largest_session_mib": round(largest.stat().st_size / (1 << 20), 1),
        "largest_import_ms": import_ms, "largest_append_ms_median": round(append_ms, 1),
        "largest_appends": len(appended), "append_ratio": round(ratio, 4),
        "idle_seconds": args.idle_seconds, "idle_cpu_pct": round(idle_all, 3), "idle_cpu_pct_daemon": round(idle_main, 3),
        "unexpected_events": others, "load_avg": os.getloadavg(), "cpus": os.cpu_count(),
        "targets": {"p95_minus_quiet_ms": TARGET_P95_OVER_QUIET_MS, "append_ratio": TARGET_RATIO,
                    "idle_cpu_pct": TARGET_IDLE_PCT},
        "ok": {"p95": p95 <= TARGET_P95_OVER_QUIET_MS, "p95_burst_end": b95 <= TARGET_P95_OVER_QUIET_MS, "append_ratio": ratio <= TARGET_RATIO,
               "idle_cpu": idle_all <= TARGET_IDLE_PCT},
    }
    ok = lambda b: "ok" if b else "MISSED"  # noqa: E731
    rows_out = [
        ("fixture", f"{len(files)} sessions, {total_mib:.0f} MiB; first import {import_s:.1f}s"),
        ("appends", f"{n} in {write_s:.1f}s ({n / write_s:.1f}/s), quiet {args.quiet_ms} ms, max wait {args.max_wait_ms} ms"),
        ("latency − quiet p50", f"{p50:8.1f} ms"),
        ("latency − quiet p95", f"{p95:8.1f} ms   target ≤ {TARGET_P95_OVER_QUIET_MS:g}  {ok(result['ok']['p95'])}"),
        ("latency − quiet max", f"{pmax:8.1f} ms   ({coalesced} of {len(lat_ms)} appends shared a burst with a later one)"),
        ("from burst end p50", f"{b50:8.1f} ms"),
        ("from burst end p95", f"{b95:8.1f} ms   target ≤ {TARGET_P95_OVER_QUIET_MS:g}  {ok(result['ok']['p95_burst_end'])}"),
        ("from burst end max", f"{bmax:8.1f} ms"),
        ("CPU during appends", f"daemon {cpu1[0] - cpu0[0]:.2f}s, workers {cpu1[1] - cpu0[1]:.2f}s"),
        ("peak RSS (VmHWM)", f"daemon {hwm_main:.0f} MiB, largest worker {hwm_worker:.0f} MiB"),
        ("largest session", f"{largest.stat().st_size / (1 << 20):.1f} MiB: import {import_ms:.1f} ms, "
                            f"append median {append_ms:.1f} ms over {len(appended)}"),
        ("append ratio", f"{ratio:8.4f}      target ≤ {TARGET_RATIO:g}  {ok(result['ok']['append_ratio'])}"),
        ("idle CPU", f"{idle_all:8.3f} %    target ≤ {TARGET_IDLE_PCT:g}  {ok(result['ok']['idle_cpu'])} "
                     f"(daemon process {idle_main:.3f} %, over {args.idle_seconds:g}s)"),
    ]
    width = max(len(k) for k, _ in rows_out)
    for k, v in rows_out:
        print(f"{k:<{width}}  {v}")
    if others:
        print(f"note: unexpected events during the append phase: {others}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
