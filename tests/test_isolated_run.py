"""harness/isolated_run.py without Ray: what a Ray task does on its node, driven from a plain script.

The script stands for Ray's worker process: a main script with an import-time side effect (it logs each
time it is run), which multiprocessing would run again in every run process unless the forkserver's
stand-in main (harness/forkserver_main.py) stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HOST = """
import json, os, sys
with open({log!r}, "a") as out:
    out.write(f"imported {{os.getpid()}}\\n")

if __name__ == "__main__":
    from harness.isolated_run import run_isolated
    from harness.registries import METHODS, TASKS
    from harness.spec import make_spec
    from harness.worker import WorkerOptions

    env = {{"LOGITBENCH_PLUGIN_MODULES": "lb_diagnostics,lb_ray_probe"}}
    os.environ.update(env)
    options = WorkerOptions({results!r}, None, tuple(sys.path), env)
    cases = [
        ("diag-constant", {{"value": 0.5}}, None),
        ("diag-die", {{}}, None),  # kills its own run process
        ("diag-sleep", {{"seconds": 30.0}}, 1.0),  # past its timeout
        ("diag-constant", {{"value": 0.25}}, None),
        ("diag-constant", {{"value": 0.75}}, None),
    ]
    for seed, (method, params, timeout) in enumerate(cases):
        spec = make_spec(TASKS.get("diag/echo"), METHODS.get(method), seed, "cpu", {{}}, params)
        outcome = run_isolated(spec.to_json(), f"run-{{seed}}", options, timeout, os.getcwd())
        data = outcome.get("data", {{}})
        score = data.get("metrics", {{}}).get("score", {{}}).get("value")
        print(json.dumps([outcome["kind"], data.get("status"), score, outcome.get("exitcode")]))
"""


def test_runs_in_their_own_processes_never_rerun_the_main_script(tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    host = tmp_path / "host.py"
    host.write_text(HOST.format(log=str(log), results=str(tmp_path / "results")))
    done = subprocess.run(
        [sys.executable, str(host)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = [json.loads(line) for line in done.stdout.splitlines()]
    assert outcomes == [
        ["record", "ok", 0.5, None],
        ["died", None, None, -9],  # SIGKILL, as the run process died, not as it was cleaned up
        ["timeout", "timeout", None, None],
        ["record", "ok", 0.25, None],
        ["record", "ok", 0.75, None],
    ]
    assert len(log.read_text().splitlines()) == 1, "a run process ran the main script again"
