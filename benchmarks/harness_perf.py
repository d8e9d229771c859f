"""Harness performance figures (issue: harness core). Prints each measured figure on its own line.

1. overhead per run: a no-op method from spec to stored record through the local executor (median, ms);
2. a fully cached rerun of `quick`: wall seconds of `logitbench run quick`, interpreter start included;
3. parallel throughput: CPU-bound runs with two workers against one (ratio).

Usage: python benchmarks/harness_perf.py [--results DIR]   (runs `quick` first if it is not cached there)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "plugins"))
os.environ["LOGITBENCH_PLUGIN_MODULES"] = "lb_diagnostics"

from harness.executors import LocalExecutor  # noqa: E402
from harness.registries import METHODS, TASKS  # noqa: E402
from harness.spec import make_spec  # noqa: E402
from harness.store import ResultStore  # noqa: E402


def overhead_ms(runs: int = 60) -> list[float]:
    task, method = TASKS.get("diag/echo"), METHODS.get("diag-constant")
    with tempfile.TemporaryDirectory() as tmp:
        executor = LocalExecutor(ResultStore(tmp), workers=1)
        executor.submit(make_spec(task, method, -1, "cpu")).result()  # start the forkserver
        times = []
        for seed in range(runs):
            spec = make_spec(task, method, seed, "cpu")
            start = time.perf_counter()
            executor.submit(spec).result()
            times.append((time.perf_counter() - start) * 1000)
        executor.shutdown()
    return times


def throughput(workers: int, runs: int = 8) -> float:
    task, method = TASKS.get("diag/echo"), METHODS.get("diag-busy")
    with tempfile.TemporaryDirectory() as tmp:
        executor = LocalExecutor(ResultStore(tmp), workers=workers)  # specs run with 1 thread by default
        executor.submit(make_spec(task, method, -1, "cpu", method_params={"iterations": 10})).result()
        start = time.perf_counter()
        futures = [executor.submit(make_spec(task, method, s, "cpu")) for s in range(runs)]
        for f in futures:
            assert f.result().status == "ok"
        elapsed = time.perf_counter() - start
        executor.shutdown()
    return runs / elapsed


def cached_quick_seconds(results: Path) -> float:
    env = {**os.environ, "LOGITBENCH_RESULTS": str(results)}
    env.pop("LOGITBENCH_PLUGIN_MODULES")
    command = [sys.executable, "-m", "harness.cli", "run", "quick", "--no-progress"]
    first = subprocess.run(command, env=env, capture_output=True, text=True)
    if first.returncode != 0:
        sys.exit(f"quick failed:\n{first.stdout}\n{first.stderr}")
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        assert "0 ran" in done.stdout, done.stdout
    return min(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("logitbench-results"))
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    times = overhead_ms()
    print(
        f"overhead per no-op run (spec -> stored record): median {statistics.median(times):.1f} ms, "
        f"p90 {sorted(times)[int(0.9 * len(times))]:.1f} ms over {len(times)} runs (target <= 50 ms)"
    )
    one, two = throughput(1), throughput(2)
    print(
        f"throughput on CPU-bound runs: 1 worker {one:.2f} runs/s, 2 workers {two:.2f} runs/s, "
        f"ratio {two / one:.2f}x (target >= 1.7x)"
    )
    print(
        f"fully cached rerun of quick: {cached_quick_seconds(args.results):.2f} s wall, interpreter start "
        "included (target <= 2 s)"
    )


if __name__ == "__main__":
    main()
