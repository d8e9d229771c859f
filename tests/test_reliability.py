"""The harness survives kill -9, Ctrl-C and a second process on the same results folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from harness.store import ResultStore

BOARD = """
name: slow
seeds: [0, 1, 2, 3, 4, 5]
tasks: [diag/echo]
methods: [{name: diag-sleep, params: {seconds: 0.4}}]
"""


def _start(path, results, workers=1):
    env = {**os.environ, "LOGITBENCH_RESULTS": str(results)}
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
