"""Ray executor figures (issue 14), on a two-node Ray cluster simulated on this machine (one CPU a node).

1. overhead per run: a no-op run (diag/echo x diag-constant) from submit to stored record, one at a time,
   local executor (1 worker) against the Ray executor, median and 90th percentile in ms (goal: Ray under
   50 ms more); and the same runs submitted all at once on 2 workers, wall ms per run;
2. with --quick: wall time of `logitbench run quick --workers 2` into an empty results folder, local
   against `--executor ray` on the simulated cluster (goal: Ray within 1.3x). Takes two full quick runs.

Every run computes with 1 torch thread (the default). The 1-minute load average is printed beside each
figure: on a shared machine it moves them more than anything measured here.

Usage: python benchmarks/ray_overhead.py [--runs N] [--quick]
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
os.environ.setdefault("RAY_DISABLE_DOCKER_CPUS_WARNING", "1")

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from harness.executors import Executor, LocalExecutor  # noqa: E402
from harness.ray_executor import RayExecutor  # noqa: E402
from harness.registries import METHODS, TASKS  # noqa: E402
from harness.spec import RunSpec, make_spec  # noqa: E402
from harness.store import ResultStore  # noqa: E402

OBJECT_STORE = 80 * 2**20


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def no_op(seed: int) -> RunSpec:
    return make_spec(TASKS.get("diag/echo"), METHODS.get("diag-constant"), seed, "cpu")


def serial_ms(executor: Executor, runs: int) -> list[float]:
    """Submit-to-record latency of no-op runs one at a time, after two warm-up runs (forkservers up)."""
    for seed in (-1, -2):
        assert executor.submit(no_op(seed)).result().status == "ok"
    times = []
    for seed in range(runs):
        start = time.perf_counter()
        record = executor.submit(no_op(seed)).result()
        times.append((time.perf_counter() - start) * 1000)
        assert record.status == "ok", record.reason
    return times


def batch_ms(executor: Executor, runs: int) -> float:
    """Wall ms per no-op run with `runs` of them submitted at once."""
    start = time.perf_counter()
    futures = [executor.submit(no_op(10_000 + seed)) for seed in range(runs)]
    assert all(f.result().status == "ok" for f in futures)
    return (time.perf_counter() - start) * 1000 / runs


def summary(times: list[float]) -> str:
    p90 = statistics.quantiles(times, n=10)[-1]
    return f"median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms"


def overhead(runs: int, address: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = LocalExecutor(ResultStore(Path(tmp) / "local-serial"), workers=1)
        local_serial = serial_ms(local, runs)
        local.shutdown()
        print(f"local serial: {summary(local_serial)} ({load()})", flush=True)
        local = LocalExecutor(ResultStore(Path(tmp) / "local-batch"), workers=2)
        serial_ms(local, 0)
        local_batch = batch_ms(local, runs)
        local.shutdown()
        print(f"local batch (2 workers): {local_batch:.1f} ms/run ({load()})", flush=True)

        ray.init(address=address, log_to_driver=False)
        on_ray = RayExecutor(ResultStore(Path(tmp) / "ray-serial"), workers=1)
        ray_serial = serial_ms(on_ray, runs)
        on_ray.shutdown()
        print(f"ray serial: {summary(ray_serial)} ({load()})", flush=True)
        on_ray = RayExecutor(ResultStore(Path(tmp) / "ray-batch"), workers=2)
        serial_ms(on_ray, 0)
        ray_batch = batch_ms(on_ray, runs)
        on_ray.shutdown()
        ray.shutdown()
        print(f"ray batch (2 nodes): {ray_batch:.1f} ms/run ({load()})", flush=True)
    extra = statistics.median(ray_serial) - statistics.median(local_serial)
    print(f"ray overhead per run: +{extra:.1f} ms serial (median), {ray_batch - local_batch:+.1f} ms batch")


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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=60, help="no-op runs per measurement (default 60)")
    parser.add_argument("--quick", action="store_true", help="also time `quick` on 2 workers, local and Ray")
    args = parser.parse_args()
    python = sys.version.split()[0]
    print(f"machine: {os.cpu_count()} cores, python {python}, ray {ray.__version__}, 1 thread/run")
    head = {"num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        cluster.wait_for_nodes()
        overhead(args.runs, cluster.address)
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
