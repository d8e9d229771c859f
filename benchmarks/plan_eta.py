"""How good the planner's ETA is (issue 14): `run --dry-run`'s expected wall time for a board against the
wall time of actually running it, from an empty results folder.

Prints: the ETA from an empty folder (every run's time from its task's estimate), the measured wall time
of `logitbench run` (interpreter start and report included) and of its runs alone (first record's start
to last record's end), the ETA's error against each, and the ETA the same board gets afterwards from the
records just made (`--rerun always --dry-run`), with the load average before and after and the cores.
Goal: the ETA within 25% of the measured wall time. Run it on a quiet machine: the figure is only as good
as the machine is steady.

Usage: python benchmarks/plan_eta.py [--board quick] [--workers 2] [--threads 1] [--results DIR]
(the results folder must be empty or absent; default: a new temporary one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

WALL = re.compile(r"wall time (\S+(?: s)?) on (\d+) worker")


def seconds_of(text: str) -> float:
    """`42.0 s`, `3:05` or `1:02:09` (as --dry-run prints them) in seconds."""
    if text.endswith(" s"):
        return float(text[:-2])
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


def dry_run_eta(board: str, workers: int, results: Path, *extra: str) -> float:
    out = _logitbench("run", board, "--dry-run", "--workers", str(workers), "--results", str(results), *extra)
    found = WALL.search(out)
    if found is None:
        raise SystemExit(f"--dry-run printed no wall time:\n{out}")
    return seconds_of(found.group(1))


def records_span(results: Path) -> float:
    """Seconds from the first run's start to the last run's end, as the records say."""
    starts, ends = [], []
    for path in (results / "runs").glob("*/*.json"):
        if "." in path.stem:
            continue
        data = json.loads(path.read_text())
        starts.append(datetime.fromisoformat(data["started_at"]))
        ends.append(datetime.fromisoformat(data["ended_at"]))
    return (max(ends) - min(starts)).total_seconds()


def _logitbench(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode not in (0, 1):  # 1: some run failed, the timing still stands
        raise SystemExit(f"logitbench {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    results = args.results or Path(tempfile.mkdtemp(prefix="lb-plan-eta-")) / "results"
    if results.exists() and any(results.iterdir()):
        raise SystemExit(f"{results} is not empty: the ETA is measured from an empty results folder")
    load_before = os.getloadavg()
    eta = dry_run_eta(args.board, args.workers, results)
    start = time.perf_counter()
    _logitbench(
        "run", args.board, "--workers", str(args.workers), "--threads", str(args.threads), "--no-progress",
        "--results", str(results),
    )  # fmt: skip
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    span = records_span(results)
    again = dry_run_eta(args.board, args.workers, results, "--rerun", "always")
    print(f"board {args.board}, {args.workers} workers x {args.threads} thread(s), {os.cpu_count()} cores")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in load_after)}")
    print(f"ETA from the tasks' estimates (empty folder): {eta:.0f} s")
    print(f"measured: `logitbench run` {wall:.0f} s; its runs (first start to last end) {span:.0f} s")
    command_error, runs_error = 100 * (eta / wall - 1), 100 * (eta / span - 1)
    print(f"ETA error: {command_error:+.0f}% against the command, {runs_error:+.0f}% against the runs")
    again_error = 100 * (again / span - 1)
    print(f"ETA from the records just made (--rerun always): {again:.0f} s ({again_error:+.0f}% vs the runs)")
    print(f"results: {results}")


if __name__ == "__main__":
    main()
