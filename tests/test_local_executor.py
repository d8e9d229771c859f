"""The local executor's workers: they never run the driver's main script again, and the record a run's
future gives is the one stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HOST = """
import json, os, sys
with open({log!r}, "a") as out:
    out.write(f"imported {{os.getpid()}}\\n")

if __name__ == "__main__":
    os.environ["LOGITBENCH_PLUGIN_MODULES"] = "lb_diagnostics"
    from harness.executors import LocalExecutor
    from harness.registries import METHODS, TASKS
    from harness.spec import make_spec
    from harness.store import ResultStore

    store = ResultStore({results!r})
    executor = LocalExecutor(store, workers=1)
    for seed in range(3):
        method = METHODS.get("diag-constant")
        spec = make_spec(TASKS.get("diag/echo"), method, seed, "cpu", {{}}, {{"jitter": 1.0}})
        record = executor.submit(spec).result(timeout=120)
        print(json.dumps([record.status, record.metric("score"), record.data == store.read(spec.key).data]))
    executor.shutdown()
"""


def test_workers_never_rerun_the_main_script_and_return_the_stored_record(tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    host = tmp_path / "host.py"
    host.write_text(HOST.format(log=str(log), results=str(tmp_path / "results")))
    plugins = str(Path(__file__).parent / "plugins")
    done = subprocess.run(
        [sys.executable, str(host)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": plugins},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        ["ok", 1.0, True],
        ["ok", 2.0, True],
        ["ok", 3.0, True],
    ]
    # Only the driver ran the script: before harness/forkserver_main.py, each of the 3 workers (and each
    # spare) ran it again on start.
    assert len(log.read_text().splitlines()) == 1, log.read_text()


def test_a_record_says_how_much_of_its_wall_time_the_run_was_on_a_core(tmp_path: Path) -> None:
    """`cpu_seconds` is the run's own CPU time: about its wall time for a busy loop, near none for a run
    that sleeps (what harness_perf splits a 2-worker ratio with)."""
    from harness.executors import LocalExecutor
    from harness.registries import METHODS, TASKS
    from harness.spec import make_spec
    from harness.store import ResultStore

    executor = LocalExecutor(ResultStore(tmp_path), workers=1)
    task = TASKS.get("diag/echo")
    busy = make_spec(task, METHODS.get("diag-busy"), 0, "cpu", {}, {"iterations": 2_000_000})
    asleep = make_spec(task, METHODS.get("diag-sleep"), 0, "cpu", {}, {"seconds": 0.4})
    records = [executor.submit(spec).result(timeout=120).data for spec in (busy, asleep)]
    executor.shutdown()
    (busy_cpu, busy_wall), (sleep_cpu, sleep_wall) = [(r["cpu_seconds"], r["wall_seconds"]) for r in records]
    assert 0.2 * busy_wall < busy_cpu <= busy_wall + 0.01  # a busy machine may halve its share of a core
    assert sleep_wall >= 0.4 and 0 <= sleep_cpu < 0.1
