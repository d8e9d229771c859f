"""The Ray executor on a two-node cluster simulated on this machine (ray.cluster_utils.Cluster, one CPU a
node): the local executor's metrics, resume after the driver is killed, lost runs retried then failed,
timeouts, requests no node can hold. One cluster for the module: Ray takes seconds to start."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.store import ResultStore

os.environ.setdefault("RAY_DISABLE_DOCKER_CPUS_WARNING", "1")
PLUGINS = "lb_diagnostics,lb_store_probe,lb_ray_probe,lb_planner_probe"
OBJECT_STORE = 80 * 2**20

TWO_FAMILIES = """
name: two-families
scale: smoke
seeds: [0, 1]
tasks: [tabular/iris, auctions/mnl]
methods: [logreg, gsp, mnl-welfare]
"""


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False}
    simulated = Cluster(initialize_head=True, head_node_args=head)
    try:
        simulated.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        simulated.wait_for_nodes()
        ray.init(address=simulated.address, log_to_driver=False)
        yield simulated
    finally:
        ray.shutdown()
        simulated.shutdown()


@pytest.fixture
def probes(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    import lb_planner_probe  # noqa: F401  (registers the probes in this process)
    import lb_ray_probe  # noqa: F401
    import lb_store_probe  # noqa: F401

    monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", PLUGINS)
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))


def _spec(task, method, seed=0, scale="cpu", task_params=None, **method_params):  # type: ignore[no-untyped-def]
    from harness.registries import METHODS, TASKS
    from harness.spec import make_spec

    return make_spec(TASKS.get(task), METHODS.get(method), seed, scale, task_params or {}, method_params)


def _run_all(executor, specs, watch=None):  # type: ignore[no-untyped-def]
    """Submit `specs`, wait for every record; `watch` is called with the executor while they run."""
    try:
        futures = [executor.submit(spec) for spec in specs]
        while not all(f.done() for f in futures):
            if watch is not None:
                watch(executor)
            time.sleep(0.05)
        return [f.result() for f in futures]
    finally:
        executor.shutdown()


def _gated_metrics(record):  # type: ignore[no-untyped-def]
    """The record's metrics that compare results (timings, gate=False, left out)."""
    from harness.registries import TASKS

    task = TASKS.get(record.spec.task.name)
    return {
        m.name: record.metric(m.name) for m in task.metrics if m.gate and m.name in record.data["metrics"]
    }


def test_a_two_node_cluster_gives_the_local_executors_metrics(cluster, board_file, tmp_path):
    from harness import leaderboard as lb
    from harness.executors import LocalExecutor
    from harness.ray_executor import RayExecutor

    specs = [run.spec for run in lb.load(str(board_file(TWO_FAMILIES))).plan()]
    assert len(specs) == 6 and {s.task.name.split("/")[0] for s in specs} == {"tabular", "auctions"}
    local_store, ray_store = ResultStore(tmp_path / "local"), ResultStore(tmp_path / "ray")
    local = _run_all(LocalExecutor(local_store, workers=2), specs)
    nodes: set[str] = set()
    on_ray = _run_all(RayExecutor(ray_store), specs, lambda ex: nodes.update(ex.running_nodes().values()))
    assert all(r.status == "ok" for r in local + on_ray), [r.reason for r in local + on_ray]
    assert len(nodes) == 2, f"the runs went to {nodes}, not to both nodes"
    for here, there in zip(local, on_ray, strict=True):
        assert here.key == there.key
        assert _gated_metrics(there) == _gated_metrics(here) != {}
        assert ray_store.read(there.key).data["run_id"] == there.data["run_id"]  # written, by the driver
    assert sorted(ray_store.all_keys()) == sorted(s.key for s in specs)


def test_an_artifact_four_runs_need_is_built_once_on_the_cluster(cluster, probes, tmp_path):
    from rich.console import Console

    from harness.leaderboard import PlannedRun
    from harness.ray_executor import RayExecutor
    from harness.runner import RerunPolicy, execute

    log = tmp_path / "log.txt"
    store = ResultStore(tmp_path / "results")
    params = {"log": str(log), "build_seconds": 1.0}
    runs = [
        PlannedRun("plan/shared", "diag-constant", _spec("plan/shared", "diag-constant", s, "smoke", params))
        for s in range(4)
    ]
    with open(tmp_path / "out.txt", "w") as out:
        outcome = execute(runs, store, lambda: RayExecutor(store), RerunPolicy.FAILED, Console(file=out))
    assert len(outcome.records) == 4 and not outcome.failed
    lines = [line.split() for line in log.read_text().splitlines()]
    builds, ran = [e for e in lines if e[0] == "build"], [e for e in lines if e[0] == "run"]
    assert len(builds) == 1 and len(ran) == 4
    assert all(float(e[3]) >= float(builds[0][2]) for e in sorted(ran, key=lambda e: float(e[3]))[1:])


def test_a_run_process_that_dies_is_retried_then_recorded_failed(cluster, probes, tmp_path):
    from harness.ray_executor import RayExecutor

    store = ResultStore(tmp_path / "res")
    once, host_once = tmp_path / "died-once", tmp_path / "worker-died-once"
    specs = [
        _spec("diag/echo", "diag-die", 0, marker=str(once)),  # kills its own process the first time
        _spec("diag/echo", "diag-die", 1, marker=str(host_once), victim="host"),  # kills the Ray worker
        _spec("diag/echo", "diag-die", 2),  # dies every time
        _spec("diag/echo", "diag-constant", 3, value=0.5),
        _spec("diag/echo", "diag-constant", 4, value=0.25),
    ]
    records = _run_all(RayExecutor(store, retries=1), specs)
    by_seed = {r.spec.seed: r for r in records}
    assert [by_seed[s].status for s in range(5)] == ["ok", "ok", "failed", "ok", "ok"]
    assert once.exists() and host_once.exists(), "the first attempts did die"
    assert by_seed[0].metric("score") == by_seed[1].metric("score") == 2.0  # the second attempt's value
    assert (by_seed[3].metric("score"), by_seed[4].metric("score")) == (0.5, 0.25)
    failed = store.read(specs[2].key)
    assert failed.status == "failed" and failed.data["run_id"] == by_seed[2].data["run_id"]
    assert "was killed by SIGKILL without a record" in failed.reason
    assert "2 attempt(s), --retries 1" in failed.reason

    no_retry = ResultStore(tmp_path / "no-retry")
    again = _spec("diag/echo", "diag-die", 5, marker=str(tmp_path / "dies-once-more"))
    [record] = _run_all(RayExecutor(no_retry, retries=0), [again])
    assert record.status == "failed" and "1 attempt(s), --retries 0" in record.reason


def test_a_run_past_its_timeout_is_killed_and_recorded_as_timeout(cluster, tmp_path):
    from harness.ray_executor import RayExecutor

    store = ResultStore(tmp_path / "res")
    slow, quick = (
        _spec("diag/echo", "diag-sleep", 0, seconds=30.0),
        _spec("diag/echo", "diag-sleep", 1, seconds=0.1),
    )
    start = time.monotonic()
    records = _run_all(RayExecutor(store, timeout_s=1.5), [slow, quick])
    assert time.monotonic() - start < 20
    assert [r.status for r in records] == ["timeout", "ok"]
    assert store.read(slow.key).reason == "Timeout: run exceeded its timeout of 1.5 s and was killed"


def test_a_run_no_node_can_hold_is_recorded_failed_at_once(cluster, probes, tmp_path):
    from harness.ray_executor import RayExecutor

    store = ResultStore(tmp_path / "res")
    specs = [
        _spec("probe/gpu", "diag-constant"),
        _spec("probe/two-cpus", "diag-constant"),
        _spec("diag/echo", "diag-constant"),
    ]
    records = _run_all(RayExecutor(store), specs)
    assert [r.status for r in records] == ["failed", "failed", "ok"]
    assert "no node of the Ray cluster has 1 CPU(s), 1 GPU(s)" in records[0].reason
    assert "no node of the Ray cluster has 2 CPU(s), 0 GPU(s)" in records[1].reason
    assert "(nodes: 1 CPU / 0 GPU" in records[0].reason


def test_a_run_claimed_by_another_process_waits_and_takes_its_record(cluster, probes, tmp_path):
    from harness.ray_executor import RayExecutor

    store = ResultStore(tmp_path / "res")
    log = tmp_path / "runs.log"
    spec = _spec("diag/echo", "probe-log", 0, seconds=0.0, log=str(log))
    claim = store.claim(spec.key)  # "another process" runs it now
    executor = RayExecutor(store)
    try:
        future = executor.submit(spec)
        deadline = time.monotonic() + 10
        while executor.waiting() != 1:
            assert time.monotonic() < deadline, "the claimed run did not wait"
            time.sleep(0.05)
        from harness.worker import build_record, utc_now

        theirs = build_record(
            spec, "their-run", "ok", {"score": {"value": 7.0, "higher_is_better": True}}, None, utc_now(), 0.1
        )
        store.write(theirs)
        claim.release()
        record = future.result(timeout=30)
    finally:
        executor.shutdown()
    assert record.data["run_id"] == "their-run" and record.metric("score") == 7.0
    assert not log.exists(), "the run was executed although another process had stored it"


def test_cancelling_ends_the_runs_in_flight_on_their_nodes(cluster, probes, tmp_path):
    from concurrent.futures import CancelledError

    from harness.ray_executor import RayExecutor

    store = ResultStore(tmp_path / "res")
    log = tmp_path / "runs.log"
    spec = _spec("diag/echo", "probe-log", 0, seconds=3.0, log=str(log))
    executor = RayExecutor(store)
    future = executor.submit(spec)
    deadline = time.monotonic() + 30
    while not log.exists():
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    executor.shutdown(cancel=True)
    with pytest.raises(CancelledError):
        future.result(timeout=10)
    time.sleep(3.5)  # past the run's own end: it was killed, so it never logs one
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["start"]
    assert store.read(spec.key) is None


def _start_cli(board: Path, results: Path, address: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LOGITBENCH_RESULTS": str(results), "LOGITBENCH_PLUGIN_MODULES": PLUGINS}
    command = [sys.executable, "-m", "harness.cli", "run", str(board), "--no-progress"]
    return subprocess.Popen(
        [*command, "--executor", "ray", "--address", address, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.mark.slow  # two drivers, each warming up its own Ray workers: ~40 s on two busy cores
def test_killing_the_driver_then_running_again_redoes_only_unfinished_runs(cluster, board_file, tmp_path):
    log = tmp_path / "runs.log"
    board = board_file(
        "name: slow\nseeds: [0, 1, 2, 3, 4, 5]\ntasks: [diag/echo]\n"
        f"methods: [{{name: probe-log, params: {{seconds: 0.6, log: '{log}'}}}}]\n"
    )
    results = tmp_path / "res"
    store = ResultStore(results)
    first = _start_cli(board, results, cluster.address)
    deadline = time.monotonic() + 90
    while len(store.all_keys()) < 2:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the driver only: the cluster lives in this test process
    first.wait()
    before = {k: store.read(k).data["run_id"] for k in store.all_keys()}
    assert 2 <= len(before) < 6
    second = _start_cli(board, results, cluster.address)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    after = {k: store.read(k).data["run_id"] for k in store.all_keys()}
    assert len(after) == 6, "a run was lost"
    assert {k: after[k] for k in before} == before, "finished runs were redone"
    assert f"{len(before)} cached" in out and "6 runs:" in out
    ends = collections.Counter(
        line.split()[1] for line in log.read_text().splitlines() if line.startswith("end")
    )
    seeds_before = {store.read(k).spec.seed for k in before}
    assert all(ends[str(seed)] == 1 for seed in seeds_before), ends  # each finished run ran once
    assert set(ends) == {str(s) for s in range(6)}


@pytest.mark.slow
def test_a_node_that_dies_takes_its_runs_and_they_are_retried_elsewhere(cluster, tmp_path):
    from harness.ray_executor import RayExecutor

    extra = cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    store = ResultStore(tmp_path / "res")
    specs = [_spec("diag/echo", "diag-sleep", seed, seconds=3.0) for seed in range(3)]
    executor = RayExecutor(store, retries=1)
    futures = [executor.submit(spec) for spec in specs]
    deadline = time.monotonic() + 60
    while len(executor.running_nodes()) < 3:  # one run on each node
        assert time.monotonic() < deadline, executor.running_nodes()
        time.sleep(0.05)
    cluster.remove_node(extra)
    records = [f.result(timeout=120) for f in futures]
    executor.shutdown()
    assert [r.status for r in records] == ["ok", "ok", "ok"], [r.reason for r in records]


def test_executor_ray_without_ray_is_a_one_line_error(board_file, results, monkeypatch, capsys):
    board = str(board_file("name: t\nseeds: [0]\ntasks: [diag/echo]\nmethods: [diag-constant]\n"))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["run", board, "--executor", "ray", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'logitbench[ray]'" in err
    assert not (results / "runs").exists() or not ResultStore(results).all_keys()
    assert main(["run", board, "--address", "auto", "--no-progress"]) == 2
    assert "--address is an option of --executor ray" in capsys.readouterr().err


def test_an_address_where_nothing_answers_is_a_one_line_error_at_once(
    board_file, results, capsys, monkeypatch
):
    ray = pytest.importorskip("ray")
    import socket

    monkeypatch.setattr(
        ray, "is_initialized", lambda: False
    )  # as in a fresh `run`, whatever this process did

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    board = str(board_file("name: t\nseeds: [0]\ntasks: [diag/echo]\nmethods: [diag-constant]\n"))
    start = time.monotonic()
    assert main(["run", board, "--executor", "ray", "--address", f"127.0.0.1:{port}", "--no-progress"]) == 2
    assert time.monotonic() - start < 15
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"cannot connect to the Ray cluster at 127.0.0.1:{port}: nothing answers" in err


def test_a_dry_run_on_ray_without_an_address_asks_no_cluster_and_says_what_it_assumed(
    board_file, results, monkeypatch, capsys
):
    board = str(board_file("name: t\nseeds: [0, 1, 2, 3]\ntasks: [diag/echo]\nmethods: [diag-constant]\n"))
    monkeypatch.setitem(sys.modules, "ray", None)  # any `import ray` raises: no cluster is started or asked
    assert main(["run", board, "--executor", "ray", "--dry-run", "--workers", "3"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "wall time 2:00 on 3 worker(s)" in out  # 4 runs of the 1:00 default estimate
    assert "planned on --workers 3 runs at once; no --address, so no cluster was asked" in out
    assert main(["run", board, "--executor", "ray", "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    cpus = os.cpu_count() or 1
    assert f"on {cpus} worker(s)" in out and f"assuming the cluster is this machine ({cpus} CPUs" in out
    assert main(["run", board, "--executor", "ray", "--dry-run", "--address", "auto"]) == 2
    assert "--executor ray --address needs Ray" in capsys.readouterr().err
    assert not results.exists()


def test_a_dry_run_on_ray_with_an_address_plans_on_what_the_cluster_holds(
    cluster, probes, board_file, capsys
):
    def dry_run(board: str, *extra: str) -> str:
        command = ["run", board, "--executor", "ray", "--address", cluster.address, "--dry-run", *extra]
        assert main(command) == 0
        return " ".join(capsys.readouterr().out.split())

    echo = str(board_file("name: t\nseeds: [0, 1, 2, 3]\ntasks: [diag/echo]\nmethods: [diag-constant]\n"))
    out = dry_run(echo, "--workers", "8")  # two 1-CPU nodes hold two 1-CPU runs, whatever --workers says
    assert "wall time 2:00 on 2 worker(s)" in out
    assert f"the cluster at {cluster.address} has 2 node(s), 2 CPUs, and holds 2 run(s)" in out
    out = dry_run(echo, "--workers", "1")
    assert "wall time 4:00 on 1 worker(s)" in out and "capped at --workers 1" in out
    two_cpus = str(board_file("name: t\nseeds: [0]\ntasks: [probe/two-cpus]\nmethods: [diag-constant]\n"))
    out = dry_run(two_cpus)  # a run no node of the cluster holds
    assert "holds 0 run(s); no node holds a run asking for 2 CPU(s), 0 GPU(s), 1 GB: such runs fail" in out
