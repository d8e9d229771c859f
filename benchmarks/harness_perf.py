"""Harness performance figures (issue: harness core). Prints each measured figure on its own line.

1. overhead per run: a no-op method from spec to stored record through the local executor (median, ms);
2. a fully cached rerun of `quick`: wall seconds of `logitbench run quick`, interpreter start included;
3. parallel throughput: CPU-bound runs (~1 s each) with two workers against one, as the median ratio of
   back-to-back pairs, and the same for short runs (~0.14 s), where the harness's cost per run shows.
Each line ends with the machine's load average: on a shared machine only the ratios within one line
compare.

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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "plugins"))
os.environ["LOGITBENCH_PLUGIN_MODULES"] = "lb_diagnostics"

from harness.executors import LocalExecutor  # noqa: E402
from harness.registries import METHODS, TASKS  # noqa: E402
from harness.spec import make_spec  # noqa: E402
from harness.store import ResultStore  # noqa: E402


def overhead_ms(runs: int = 60, warmup: int = 20) -> tuple[list[float], float | None]:
    """Spec-to-record ms of `runs` no-op runs one after another on one worker, after `warmup` unmeasured
    ones (a board's steady state, not the forkserver's start: its imports, its huge pages, about 1 s); and
    the CPU ms they cost per run, the driver's, the forkserver's and its workers' together, which unlike
    the wall time hardly depends on what else the machine runs (None where /proc cannot tell)."""
    task, method = TASKS.get("diag/echo"), METHODS.get("diag-constant")
    with tempfile.TemporaryDirectory() as tmp:
        executor = LocalExecutor(ResultStore(tmp), workers=1)
        executor.submit(make_spec(task, method, -1, "cpu")).result()  # start the forkserver
        for seed in range(runs, runs + warmup):
            executor.submit(make_spec(task, method, seed, "cpu")).result()
        time.sleep(0.5)  # the warm-up's last worker has exited and been reaped
        cpu_before = _tree_cpu_seconds()
        times = []
        for seed in range(runs):
            spec = make_spec(task, method, seed, "cpu")
            start = time.perf_counter()
            executor.submit(spec).result()
            times.append((time.perf_counter() - start) * 1000)
        time.sleep(0.5)  # the last worker's exit counts too
        cpu_after = _tree_cpu_seconds()
        executor.shutdown()
    if cpu_before is None or cpu_after is None:
        return times, None
    return times, (cpu_after - cpu_before) / runs * 1000


def _tree_cpu_seconds() -> float | None:
    """CPU seconds of this process and of the forkserver with the workers it has reaped."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    mine = os.times()
    return ticks / os.sysconf("SC_CLK_TCK") + mine.user + mine.system


def throughput(workers: int, runs: int = 8, iterations: int | None = None) -> float:
    """Runs per second of `runs` diag-busy runs (pure-Python loops, one thread each) on `workers` workers,
    from the first submit to the last record."""
    task, method = TASKS.get("diag/echo"), METHODS.get("diag-busy")
    params = {} if iterations is None else {"iterations": iterations}
    with tempfile.TemporaryDirectory() as tmp:
        executor = LocalExecutor(ResultStore(tmp), workers=workers)  # specs run with 1 thread by default
        executor.submit(make_spec(task, method, -1, "cpu", method_params={"iterations": 10})).result()
        start = time.perf_counter()
        futures = [
            executor.submit(make_spec(task, method, s, "cpu", method_params=params)) for s in range(runs)
        ]
        for f in futures:
            assert f.result().status == "ok"
        elapsed = time.perf_counter() - start
        executor.shutdown()
    return runs / elapsed


def busy_iterations(seconds: float) -> int:
    """diag-busy iterations that take about `seconds` on one core here (the fastest of three timings)."""
    busy, probe = METHODS.get("diag-busy"), 1_000_000
    fastest = min(_timed(lambda: busy(iterations=probe).score(0)) for _ in range(3))
    return max(probe, int(probe * seconds / fastest))


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def worker_ratio(
    runs: int, iterations: int | None, repeats: int
) -> tuple[list[float], list[float], list[float]]:
    """(1-worker runs/s, 2-worker runs/s, their ratio) for `repeats` back-to-back pairs; the order within a
    pair alternates, so a load that rises or falls during the measurement favours neither."""
    ones, twos, ratios = [], [], []
    for repeat in range(repeats):
        order = (1, 2) if repeat % 2 == 0 else (2, 1)
        rate = {w: throughput(w, runs, iterations) for w in order}
        ones.append(rate[1])
        twos.append(rate[2])
        ratios.append(rate[2] / rate[1])
    return ones, twos, ratios


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


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("logitbench-results"))
    parser.add_argument("--repeats", type=int, default=5, help="1-vs-2-worker pairs (the median is printed)")
    parser.add_argument("--run-seconds", type=float, default=1.0, help="length of a CPU-bound run")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, {load()}")
    times, cpu = overhead_ms()
    print(
        f"overhead per no-op run (spec -> stored record): median {statistics.median(times):.1f} ms, "
        f"p90 {sorted(times)[int(0.9 * len(times))]:.1f} ms over {len(times)} runs after 20 unmeasured "
        f"(target <= 20 ms); CPU per run (driver, forkserver, workers) "
        f"{'?' if cpu is None else f'{cpu:.1f}'} ms; {load()}"
    )
    # CPU-bound: each run about --run-seconds of one core, so that the run's own work dominates what the
    # harness adds per run (tens of ms); 8 runs, 4 per worker with two, so both workers stay busy.
    iterations = busy_iterations(args.run_seconds)
    ones, twos, ratios = worker_ratio(8, iterations, args.repeats)
    print(
        f"throughput on CPU-bound runs ({iterations:,} diag-busy iterations, ~{args.run_seconds:g} s each, "
        f"8 runs, 1 thread a run): 1 worker {statistics.median(ones):.3f} runs/s, 2 workers "
        f"{statistics.median(twos):.3f} runs/s, ratio median {statistics.median(ratios):.2f}x of "
        f"{len(ratios)} pairs ({', '.join(f'{r:.2f}' for r in ratios)}) (target >= 1.85x on a quiet "
        f"machine); {load()}"
    )
    ones, twos, ratios = worker_ratio(8, None, args.repeats)
    print(
        f"throughput on short runs (diag-busy default, ~0.14 s each, 8 runs, where the harness's own cost "
        f"per run shows): 1 worker {statistics.median(ones):.2f} runs/s, 2 workers "
        f"{statistics.median(twos):.2f} runs/s, ratio median {statistics.median(ratios):.2f}x "
        f"({', '.join(f'{r:.2f}' for r in ratios)}); {load()}"
    )
    print(
        f"fully cached rerun of quick: {cached_quick_seconds(args.results):.2f} s wall, interpreter start "
        f"included (target < 1 s); {load()}"
    )


if __name__ == "__main__":
    main()
