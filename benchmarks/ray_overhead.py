"""Ray executor figures (issue 14), on a two-node Ray cluster simulated on this machine (one CPU a node).

1. overhead per run: a no-op run (diag/echo x diag-constant) from submit to stored record, one at a time,
   local executor (1 worker) against the Ray executor (1 run in flight), median and 90th percentile in ms
   (goal: Ray under 50 ms more). Both executors stay up and take turns, `--rounds` rounds of `--runs` runs
   each (which goes first alternates), so a change of the shared machine's load hits both alike; the
   figure is the median over rounds of the round's Ray median minus its local median. Then the same runs
   submitted all at once on 2 workers, wall ms per run, in rounds the same way (`--runs` x 2 a round);
2. with --quick: wall time of `logitbench run quick --workers 2` into an empty results folder, local
   against `--executor ray` on the simulated cluster (goal: Ray within 1.3x). Takes two full quick runs.

Every run computes with 1 torch thread (the spec's default; printed). The 1-minute load average is printed
beside each figure: on a shared machine it moves them more than anything measured here.

Ray is imported inside the functions, not at the top: a local worker process runs this script again on
start (multiprocessing's forkserver re-runs the parent's main script), and an `import ray` there would
charge every local run for importing Ray.

Usage: python benchmarks/ray_overhead.py [--runs N] [--rounds R] [--quick]
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "plugins"))
os.environ["LOGITBENCH_PLUGIN_MODULES"] = "lb_diagnostics"
os.environ.setdefault("RAY_DISABLE_DOCKER_CPUS_WARNING", "1")

from harness.executors import Executor, LocalExecutor  # noqa: E402
from harness.registries import METHODS, TASKS  # noqa: E402
from harness.spec import RunSpec, make_spec  # noqa: E402
from harness.store import ResultStore  # noqa: E402

OBJECT_STORE = 80 * 2**20


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def no_op(seed: int) -> RunSpec:
    return make_spec(TASKS.get("diag/echo"), METHODS.get("diag-constant"), seed, "cpu")


def warm(executor: Executor, seeds: tuple[int, ...]) -> None:
    """Runs before any timing: forkservers and Ray workers up."""
    for seed in seeds:
        record = executor.submit(no_op(seed)).result()
        assert record.status == "ok", record.reason


def warm_every_node(tmp: Path) -> None:
    """One run on each node at once (two 1-CPU runs that overlap), so that no timed run pays a node's
    first start of a Ray worker and its forkserver (seconds): Ray keeps those workers for this driver."""
    from harness.ray_executor import RayExecutor

    executor = RayExecutor(ResultStore(tmp / "warm"), workers=2)
    try:
        sleeps = [make_spec(TASKS.get("diag/echo"), METHODS.get("diag-sleep"), s, "cpu") for s in (0, 1)]
        nodes: set[str] = set()
        futures = [executor.submit(spec) for spec in sleeps]
        while not all(f.done() for f in futures):
            nodes.update(executor.running_nodes().values())
            time.sleep(0.02)
        assert all(f.result().status == "ok" for f in futures) and len(nodes) == 2, nodes
    finally:
        executor.shutdown()


def serial_ms(executor: Executor, seeds: range) -> list[float]:
    """Submit-to-record latency of no-op runs, one at a time."""
    times = []
    for seed in seeds:
        start = time.perf_counter()
        record = executor.submit(no_op(seed)).result()
        times.append((time.perf_counter() - start) * 1000)
        assert record.status == "ok", record.reason
    return times


def batch_ms(executor: Executor, seeds: range) -> float:
    """Wall ms per no-op run with runs of `seeds` submitted at once."""
    start = time.perf_counter()
    futures = [executor.submit(no_op(seed)) for seed in seeds]
    assert all(f.result().status == "ok" for f in futures)
    return (time.perf_counter() - start) * 1000 / len(seeds)


def summary(times: list[float]) -> str:
    p90 = statistics.quantiles(times, n=10)[-1]
    return f"median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms"


def taking_turns(
    tmp: Path, kind: str, workers: int, rounds: int, measure: Callable[[Executor, int], list[float]]
) -> float:
    """Median over rounds of (Ray's median minus local's) of `measure(executor, round)`, in ms; the two
    executors take turns, which goes first alternating."""
    from harness.ray_executor import RayExecutor

    local = LocalExecutor(ResultStore(tmp / f"local-{kind}"), workers=workers)
    on_ray = RayExecutor(ResultStore(tmp / f"ray-{kind}"), workers=workers)
    try:
        warm(local, (-1, -2))
        warm(on_ray, (-1, -2))
        seen: dict[str, list[float]] = {"local": [], "ray": []}
        differences = []
        for turn in range(rounds):
            order: list[tuple[str, Any]] = [("local", local), ("ray", on_ray)]
            if turn % 2:
                order.reverse()
            times = {name: measure(executor, turn) for name, executor in order}
            medians = {name: statistics.median(values) for name, values in times.items()}
            for name, values in times.items():
                seen[name] += values
            differences.append(medians["ray"] - medians["local"])
            print(
                f"  {kind} round {turn + 1}: local {medians['local']:.1f} ms, ray {medians['ray']:.1f} ms, "
                f"{differences[-1]:+.1f} ms ({load()})",
                flush=True,
            )
    finally:
        local.shutdown()
        on_ray.shutdown()
    for name, values in seen.items():
        shown = summary(values) if len(values) > 1 else f"{values[0]:.1f} ms"
        print(f"{name} {kind} ({workers} worker(s)): {shown}", flush=True)
    return statistics.median(differences)


def overhead(runs: int, rounds: int, address: str) -> None:
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            warm_every_node(Path(tmp))
            serial_extra = taking_turns(
                Path(tmp),
                "serial",
                1,
                rounds,
                lambda ex, turn: serial_ms(ex, range(turn * runs, (turn + 1) * runs)),
            )
            batch = 2 * runs  # a round's runs, submitted at once: ms per run
            batch_extra = taking_turns(
                Path(tmp),
                "batch",
                2,
                rounds,
                lambda ex, turn: [batch_ms(ex, range(100_000 + turn * batch, 100_000 + (turn + 1) * batch))],
            )
    finally:
        ray.shutdown()
    print(
        f"ray overhead per run: {serial_extra:+.1f} ms one at a time, {batch_extra:+.1f} ms with "
        f"{batch} at once on 2 workers (medians of {rounds} rounds' differences)"
    )


def quick_seconds(extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "LOGITBENCH_PLUGIN_MODULES"}
        command = [sys.executable, "-m", "harness.cli", "run", "quick", "--workers", "2", "--no-progress"]
        start = time.perf_counter()
        done = subprocess.run([*command, "--results", tmp, *extra], env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode not in (0, 1):  # 1: some runs failed, still a full quick
            sys.exit(f"quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return elapsed


def main() -> None:
    import ray
    from ray.cluster_utils import Cluster

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=12, help="no-op runs per round (default 12)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, executors taking turns (default 5)")
    parser.add_argument("--quick", action="store_true", help="also time `quick` on 2 workers, local and Ray")
    args = parser.parse_args()
    python = sys.version.split()[0]
    threads = no_op(0).threads
    print(
        f"machine: {os.cpu_count()} cores, python {python}, ray {ray.__version__}, {threads} torch "
        f"thread(s) a run, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {load()}"
    )
    head = {"num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        cluster.wait_for_nodes()
        overhead(args.runs, args.rounds, cluster.address)
        if args.quick:
            local = quick_seconds([])
            print(f"quick, local, 2 workers: {local:.0f} s ({load()})", flush=True)
            on_ray = quick_seconds(["--executor", "ray", "--address", cluster.address])
            print(f"quick, ray, 2 nodes x 1 CPU: {on_ray:.0f} s ({load()})", flush=True)
            print(f"quick ray / local: {on_ray / local:.2f}x")
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
