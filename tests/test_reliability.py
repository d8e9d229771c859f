"""The harness survives kill -9, Ctrl-C and a second process on the same results folder."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from harness.store import ResultStore

BOARD = """
name: slow
seeds: [0, 1, 2, 3, 4, 5]
tasks: [diag/echo]
methods: [{name: diag-sleep, params: {seconds: 0.4}}]
"""


def _start(path, results, workers=1):
    env = {
        **os.environ,
        "LOGITBENCH_RESULTS": str(results),
        "LOGITBENCH_PLUGIN_MODULES": "lb_diagnostics,lb_store_probe",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(path), "--workers", str(workers), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_records(store, count, timeout=30.0):
    deadline = time.monotonic() + timeout
    while len(store.all_keys()) < count:
        assert time.monotonic() < deadline, "runs did not finish in time"
        time.sleep(0.05)


def _snapshot(store):
    return {k: store.read(k).data["run_id"] for k in store.all_keys()}


def test_kill_9_then_rerun_keeps_finished_runs_and_completes(board_file, tmp_path):
    path, results = board_file(BOARD), tmp_path / "res"
    store = ResultStore(results)
    proc = _start(path, results)
    _wait_for_records(store, 2)
    os.killpg(proc.pid, signal.SIGKILL)  # the leaderboard process, its forkserver and its workers
    proc.wait()
    before = _snapshot(store)
    assert 2 <= len(before) < 6
    rerun = _start(path, results)
    out, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, out
    after = _snapshot(store)
    assert len(after) == 6
    assert {k: after[k] for k in before} == before, "finished runs were not redone"
    assert f"{len(before)} cached" in out


def test_ctrl_c_stops_cleanly_and_keeps_finished_records(board_file, tmp_path):
    path, results = board_file(BOARD), tmp_path / "res"
    store = ResultStore(results)
    proc = _start(path, results)
    _wait_for_records(store, 1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the whole foreground group
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    kept = _snapshot(store)
    assert kept and all(store.read(k).status == "ok" for k in kept)
    rerun = _start(path, results)
    out, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, out
    assert {k: v for k, v in _snapshot(store).items() if k in kept} == kept


def test_two_processes_on_one_results_folder_corrupt_nothing(board_file, tmp_path):
    path, results = board_file(BOARD), tmp_path / "res"
    first, second = _start(path, results), _start(path, results)
    for proc in (first, second):
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
    store = ResultStore(results)
    found, problems = store.read_many(store.all_keys())
    assert len(found) == 6 and not problems
    assert not list(results.rglob("*.tmp"))


def _logged_board(board_file, log, seeds, seconds=0.3):
    return board_file(
        f"name: race\nseeds: {list(range(seeds))}\ntasks: [diag/echo]\n"
        f"methods: [{{name: probe-log, params: {{seconds: {seconds}, log: '{log}'}}}}]\n"
    )


def _starts(log, offset=0, event="start"):
    """How many times each seed was started (or ended) in the log from `offset` on."""
    if not log.exists():
        return collections.Counter()
    lines = log.read_text()[offset:].splitlines()
    return collections.Counter(int(line.split()[1]) for line in lines if line.startswith(event + " "))


def _state(store):
    """(run_id of each ok record, problems): every record must be readable."""
    found, problems = store.read_many(store.all_keys())
    return {k: r.data["run_id"] for k, r in found.items() if r.status == "ok"}, problems


def test_two_concurrent_runs_execute_each_run_once(board_file, tmp_path):
    log, results = tmp_path / "executions.log", tmp_path / "res"
    path = _logged_board(board_file, log, seeds=8)
    first, second = _start(path, results, workers=2), _start(path, results, workers=2)
    for proc in (first, second):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    assert _starts(log) == dict.fromkeys(range(8), 1), "no run was executed by both processes"
    ok, problems = _state(ResultStore(results))
    assert len(ok) == 8 and not problems


def _kill_cycles(board_file, tmp_path, cycles, seeds):
    """`cycles` times: two `run`s on one folder, both killed with -9 at a random moment (mostly while runs
    execute: a random number of executions after the phase's first, plus a random fraction of a second;
    sometimes during start-up); then both run to the end. In every phase each run is started at most once,
    and never when its ok record exists; no ok record is lost or replaced, no record is unreadable, and
    every run ends with an ok record. Returns how many executions the kills cut short."""
    log, results = tmp_path / "executions.log", tmp_path / "res"
    path = _logged_board(board_file, log, seeds=seeds, seconds=0.25)
    store = ResultStore(results)
    rng = random.Random(16)
    kept: dict[str, str] = {}
    cut_short = 0
    for cycle in range(cycles + 1):
        offset = log.stat().st_size if log.exists() else 0
        done = {ResultStore(results).read(k).spec.seed for k in kept}
        procs = [_start(path, results, workers=2) for _ in range(2)]
        if cycle < cycles:
            if rng.random() < 0.2:
                time.sleep(rng.uniform(0.2, 3.0))  # planning, forkserver start-up
            else:
                target, deadline = rng.randint(1, 5), time.monotonic() + 300
                while sum(_starts(log, offset).values()) < target and time.monotonic() < deadline:
                    if all(proc.poll() is not None for proc in procs):
                        break
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.4))
            # Both at one instant: stopped first, so neither takes over a run the other is killed in
            # (that would be a legitimate retry, not the duplicate this test counts).
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for proc in procs:
                    os.killpg(proc.pid, sig)  # the run, its forkserver and its workers
            for proc in procs:
                proc.wait()
            time.sleep(0.2)  # a write already under way in a dying worker lands before we look
        else:
            for proc in procs:
                out, _ = proc.communicate(timeout=300)
                assert proc.returncode == 0, out
        starts = _starts(log, offset)
        cut_short += sum((starts - _starts(log, offset, "end")).values())
        assert max(starts.values(), default=0) <= 1, f"cycle {cycle}: duplicated executions {starts}"
        assert not set(starts) & done, f"cycle {cycle}: finished runs executed again"
        ok, problems = _state(store)
        assert not problems, f"cycle {cycle}: corrupt records {problems}"
        assert {k: ok.get(k) for k in kept} == kept, f"cycle {cycle}: an ok record was lost or replaced"
        kept = ok
    assert len(kept) == seeds, "every run ends with an ok record"
    assert not list(results.rglob("*.tmp")), "no temporary file is left behind"
    return cut_short


def test_kill_9_cycles_with_two_concurrent_runs_lose_corrupt_and_duplicate_nothing(board_file, tmp_path):
    _kill_cycles(board_file, tmp_path, cycles=2, seeds=12)


@pytest.mark.slow
def test_twenty_kill_9_cycles_with_two_concurrent_runs(board_file, tmp_path):
    assert _kill_cycles(board_file, tmp_path, cycles=20, seeds=100) > 0, "some kills landed mid-run"


def test_runs_start_on_a_spare_worker_yet_each_gets_a_fresh_process(tmp_path, monkeypatch):
    """The executor forks the next run's worker ahead of time; every run still has a process of its own,
    and a spare that died before it was used is replaced, not handed a run."""
    import lb_store_probe  # noqa: F401  (registers probe-log in this process)

    from harness.executors import LocalExecutor
    from harness.registries import METHODS, TASKS
    from harness.spec import make_spec

    monkeypatch.setenv("LOGITBENCH_PLUGIN_MODULES", "lb_diagnostics,lb_store_probe")  # and in the workers
    log = tmp_path / "log.txt"
    executor = LocalExecutor(ResultStore(tmp_path / "res"), workers=1)
    try:

        def run(seed: int) -> str:
            spec = make_spec(
                TASKS.get("diag/echo"),
                METHODS.get("probe-log"),
                seed,
                "cpu",
                {},
                {"seconds": 0.0, "log": str(log)},
            )
            return executor.submit(spec).result(timeout=60).status

        assert run(0) == "ok"
        deadline = time.monotonic() + 30
        while executor._spare.ready is None:  # forked on a thread while the first run went on
            assert time.monotonic() < deadline, "no spare worker was started"
            time.sleep(0.05)
        executor._spare.ready[0].kill()
        executor._spare.ready[0].join()
        assert [run(seed) for seed in (1, 2, 3)] == ["ok", "ok", "ok"]
    finally:
        executor.shutdown()
    pids = [line.split()[2] for line in log.read_text().splitlines() if line.startswith("start")]
    assert len(pids) == 4 and len(set(pids)) == 4, pids
    assert executor._spare.ready is None, "shutdown leaves no spare behind"
