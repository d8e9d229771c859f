"""Harness performance figures (issue: harness core). Prints each measured figure on its own line.

1. overhead per run: a no-op method from spec to stored record through the local executor (median, ms);
2. a fully cached rerun of `quick`: wall seconds of `logitbench run quick`, interpreter start included;
3. parallel throughput: CPU-bound runs (~1 s each) with two workers against one, as the median ratio of
   back-to-back pairs, and the same for short runs (~0.14 s), where the harness's cost per run shows.
   The ratio is split into the harness's part (how much of the workers' CPU capacity the runs' own CPU
   time fills, from each run's record) and the machine's part (how much more CPU time the same run
   takes beside another than alone); each pair's two parts multiply to its ratio (their medians need
   not). The same work in plain processes is timed in the same pairs. On this project's shared VMs one
   core's speed alone varies about 2x from second to second (its host core is shared), so a ratio of
   two wall times taken seconds apart is mostly that; the harness's part is measured within one batch,
   where the host's speed cancels. Any other process on the machine counts against the harness's part:
   with two workers it takes the runs' cores, with one it mostly finds the idle core.
Each line ends with the machine's load average: on a shared machine only the ratios within one line
compare.

Usage: python benchmarks/harness_perf.py [--results DIR]   (runs `quick` first if it is not cached there)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

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


@dataclass
class Batch:
    """One measured batch: its workers, its wall time from the first submit to the last record, and from
    each run's own record its (start, end) in seconds after the first submit and its CPU seconds."""

    workers: int
    wall: float
    runs: list[tuple[float, float]]
    cpu: list[float]

    @property
    def rate(self) -> float:
        return len(self.runs) / self.wall

    @property
    def run_share(self) -> float:
        """The share of the workers' CPU capacity (workers x wall) that went into the runs' own work: the
        rest went to the harness (forks, teardowns, records, the driver), to any other process on the
        machine, or stayed idle. CPU time, not
        the runs' wall time, which also counts what the harness took from a run's core while it ran."""
        return sum(self.cpu) / (self.workers * self.wall)

    @property
    def mean_run_cpu(self) -> float:
        return statistics.fmean(self.cpu)

    @property
    def tail_idle_share(self) -> float:
        """The share of the workers' time left idle at the end, once one worker had no run left: every
        worker but the last one's is idle from its last run's end (with 2 workers, the latest end among
        the runs but the last-ending one)."""
        ends = sorted(end for _, end in self.runs)
        if self.workers < 2 or len(ends) < 2:
            return 0.0
        return sum(self.wall - end for end in ends[-self.workers : -1]) / (self.workers * self.wall)


def throughput(workers: int, runs: int = 8, iterations: int | None = None) -> Batch:
    """`runs` diag-busy runs (pure-Python loops, one thread each) on `workers` workers, from the first
    submit to the last record."""
    task, method = TASKS.get("diag/echo"), METHODS.get("diag-busy")
    params = {} if iterations is None else {"iterations": iterations}
    with tempfile.TemporaryDirectory() as tmp:
        executor = LocalExecutor(ResultStore(tmp), workers=workers)  # specs run with 1 thread by default
        executor.submit(make_spec(task, method, -1, "cpu", method_params={"iterations": 10})).result()
        wall_clock, start = time.time(), time.perf_counter()
        futures = [
            executor.submit(make_spec(task, method, s, "cpu", method_params=params)) for s in range(runs)
        ]
        records = [f.result() for f in futures]
        elapsed = time.perf_counter() - start
        executor.shutdown()
    spans = []
    for record in records:
        assert record.status == "ok", record.data.get("error")
        begun = datetime.fromisoformat(record.data["started_at"]).timestamp() - wall_clock
        spans.append((begun, begun + record.data["wall_seconds"]))
    return Batch(workers, elapsed, spans, [r.data["cpu_seconds"] for r in records])


def plain_throughput(workers: int, runs: int, iterations: int) -> float:
    """Runs per second of the same work in `workers` plain forked processes, runs / workers each, with
    no harness at all: what this machine itself gives two processes at this moment."""
    busy = METHODS.get("diag-busy")(iterations=iterations)
    context = mp.get_context("fork")
    start = time.perf_counter()
    processes = [context.Process(target=_score_times, args=(busy, runs // workers)) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return runs / (time.perf_counter() - start)


def _score_times(method: Any, times: int) -> None:
    for seed in range(times):
        method.score(seed)


def busy_iterations(seconds: float) -> int:
    """diag-busy iterations that take about `seconds` on one core here (the fastest of three timings)."""
    busy, probe = METHODS.get("diag-busy"), 1_000_000
    fastest = min(_timed(lambda: busy(iterations=probe).score(0)) for _ in range(3))
    return max(probe, int(probe * seconds / fastest))


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


@dataclass
class Pair:
    """One worker against two on the same runs, back to back, through the harness and, where measured, in
    plain processes. A ratio splits exactly into the harness's part and the machine's part:
    rate2 / rate1 = (2 share2 / share1) x (cpu1 / cpu2), with share the runs' share of the workers' CPU
    capacity and cpu a run's mean CPU seconds."""

    one: Batch
    two: Batch
    plain: tuple[float, float] | None  # plain processes' runs/s, one and two

    @property
    def ratio(self) -> float:
        return self.two.rate / self.one.rate

    @property
    def harness_part(self) -> float:
        """The ratio two workers would give if a run took as much CPU time beside another as alone."""
        return 2 * self.two.run_share / self.one.run_share

    @property
    def machine_part(self) -> float:
        """A run's CPU seconds alone / beside another: below 1 where the same work costs more CPU time
        while the other core is busy (on this project's shared VMs it varies either way with the host)."""
        return self.one.mean_run_cpu / self.two.mean_run_cpu


def worker_ratio(runs: int, iterations: int | None, repeats: int, plain: bool) -> list[Pair]:
    """`repeats` back-to-back pairs; the order within a pair alternates, so a load that rises or falls
    during the measurement favours neither. With `plain`, the same work in plain processes is measured
    in between, one against two as well."""
    pairs = []
    for repeat in range(repeats):
        order = (1, 2) if repeat % 2 == 0 else (2, 1)
        batches, rates = {}, {}
        for workers in order:
            batches[workers] = throughput(workers, runs, iterations)
            if plain and iterations is not None:
                rates[workers] = plain_throughput(workers, runs, iterations)
        pairs.append(Pair(batches[1], batches[2], (rates[1], rates[2]) if rates else None))
    return pairs


def figures(values: list[float], digits: int = 2) -> str:
    """'median (each value)'."""
    return f"{statistics.median(values):.{digits}f} ({', '.join(f'{v:.{digits}f}' for v in values)})"


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
    pairs = worker_ratio(8, iterations, args.repeats, plain=True)
    print(
        f"CPU-bound runs ({iterations:,} diag-busy iterations, ~{args.run_seconds:g} s each, 8 runs, "
        f"1 thread a run), medians of {len(pairs)} alternating pairs:\n"
        f"  2 workers vs 1: {figures([p.ratio for p in pairs])}x (target >= 1.85x on a quiet machine); "
        f"1 worker {statistics.median(p.one.rate for p in pairs):.3f} runs/s, 2 workers "
        f"{statistics.median(p.two.rate for p in pairs):.3f} runs/s\n"
        f"  the same work in 2 plain processes vs 1, no harness, in the same pairs: "
        f"{figures([p.plain[1] / p.plain[0] for p in pairs if p.plain])}x\n"
        f"  the harness's part, the ratio if a run cost as much CPU time beside another as alone: "
        f"{figures([p.harness_part for p in pairs], 3)}x; the runs' own CPU time fills "
        f"{statistics.median(p.one.run_share for p in pairs):.1%} of 1 worker's time and "
        f"{statistics.median(p.two.run_share for p in pairs):.1%} of 2 workers' (idle at the end, "
        f"once one worker has no run left: {statistics.median(p.two.tail_idle_share for p in pairs):.1%})\n"
        f"  the machine's part, a run's CPU seconds alone / beside another: "
        f"{figures([p.machine_part for p in pairs], 3)}; {load()}"
    )
    pairs = worker_ratio(8, None, args.repeats, plain=False)
    print(
        f"short runs (diag-busy default, ~0.14 s each, 8 runs, where the harness's own cost per run shows): "
        f"2 workers vs 1 {figures([p.ratio for p in pairs])}x, the harness's part "
        f"{figures([p.harness_part for p in pairs])}x; {load()}"
    )
    print(
        f"fully cached rerun of quick: {cached_quick_seconds(args.results):.2f} s wall, interpreter start "
        f"included (target < 1 s); {load()}"
    )


if __name__ == "__main__":
    main()
