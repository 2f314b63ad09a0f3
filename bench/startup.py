#!/usr/bin/env python3
"""Start-up: `session-syncd status` and an `import` with nothing to do, against bare interpreter start-up.

What it does, in one run:

1. Takes the headline fixture (bench/import_vs_codex.py's: 50 Claude Code sessions, built once and
   cached) and imports it once into a fresh home, so the timed `import` is the true no-op (every stat
   matches the ledger) and `status` has 50 rows to report.
2. Runs, interleaved `--repeat` times (so load drifts hit every command alike), each as a fresh process
   with the environment a user's shell would give it:
   plain     a bare venv's interpreter (nothing installed in it: built once under the work folder), for
             scale: this venv's own start-up includes what installing session-syncd editable adds to it
   bare      this venv's interpreter, `python -c pass` (site and the venv included, as for any command;
             `make` installs session-syncd editable, whose import finder runs in every start-up)
   floor     `python -c "import msgspec, sqlite3, argparse"`: what the commands cannot do without
   status    `session-syncd status`
   import    `session-syncd import` with nothing to do
3. Prints the medians and their ratios to bare; the last line is JSON:
   {"plain_ms", "bare_ms", "floor_ms", "status_ms", "import_ms", "status_over_bare", "import_over_bare",
    "status_over_plain", ...}. The target is judged against `bare`, the interpreter the commands run on.

Usage: bench/startup.py [--repeat N] [--work DIR]
Standard library only (plus bench/import_vs_codex.py for the fixture: this script's folder is on sys.path).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = 2.0  # issue 11: "within ~2x bare interpreter start-up"


def plain_python(work: Path) -> str:
    """The interpreter of an empty venv (no packages, no .pth files of ours), built once and cached."""
    where = work / "plain-venv"
    python = where / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(where)
    return str(python)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--work", type=Path, default=HERE / ".work")
    a = ap.parse_args()
    import import_vs_codex as ivc  # beside this script

    work = a.work.resolve()
    fixture = ivc.build_fixture(work)
    env = ivc.syncd_env(fixture, work)
    syncd = ivc.syncd_binary()
    home, state = work / "runs" / "startup-codex", work / "runs" / "startup-state"
    first = ivc.run_syncd(syncd, env, home, state, [], "imported", len(ivc.session_files(fixture)), fresh=True)
    where = ["--codex-home", str(home), "--state-dir", str(state)]
    python = str(Path(sys.executable))
    commands = {
        "plain": [plain_python(work), "-c", "pass"],
        "bare": [python, "-c", "pass"],
        "floor": [python, "-c", "import sys; sys.modules['typing_extensions'] = None; import msgspec, sqlite3, argparse"],
        "status": [syncd, "status", *where],
        "import": [syncd, "import", *where],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(a.repeat):
        for name, argv in commands.items():
            t0 = time.perf_counter()
            proc = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True)
            times[name].append(time.perf_counter() - t0)
            if proc.returncode != 0:
                sys.exit(f"bench: {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
            if name == "import" and not proc.stdout.startswith("imported 0 / unchanged "):
                sys.exit(f"bench: the no-op import did something: {proc.stdout}")
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    result = {
        "plain_ms": round(med["plain"], 1),
        "bare_ms": round(med["bare"], 1),
        "floor_ms": round(med["floor"], 1),
        "status_ms": round(med["status"], 1),
        "import_ms": round(med["import"], 1),
        "floor_over_bare": round(med["floor"] / med["bare"], 2),
        "status_over_bare": round(med["status"] / med["bare"], 2),
        "import_over_bare": round(med["import"] / med["bare"], 2),
        "floor_over_plain": round(med["floor"] / med["plain"], 2),
        "status_over_plain": round(med["status"] / med["plain"], 2),
        "import_over_plain": round(med["import"] / med["plain"], 2),
        "sessions": first["summary"]["imported"],
        "repeat": a.repeat,
        "targets_met": max(med["status"], med["import"]) / med["bare"] <= TARGET,
    }
    print(f"\nstart-up, medians of {a.repeat} interleaved runs ({result['sessions']} sessions in the ledger)")
    for name in commands:
        print(f"  {name:8s} {med[name]:7.1f} ms  {med[name] / med['bare']:5.2f}x bare  "
              f"{med[name] / med['plain']:5.2f}x plain")
    print(f"target: status and the no-op import within ~{TARGET:.0f}x bare -> "
          f"{'met' if result['targets_met'] else 'NOT met'}")
    print(json.dumps(result))
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
