"""One run in a fresh process of this machine, its record data handed back instead of written.

This is what a Ray task does on its node (harness/ray_executor.py): the driver, the only writer of records,
holds the run's claim and stores what comes back. The run gets a process of its own, forked from a
forkserver that this process starts once with the heavy imports done (harness/preload.py), exactly as the
local executor's workers are, so a crash, a leak or a hung run harms nothing else and a warm Ray worker
pays the imports once. The run process dies with that forkserver (PR_SET_PDEATHSIG), which exits when
this process does, so a Ray worker killed or cancelled takes its run with it.

The outcome is a plain dict: `{"kind": "record", "data": ...}` for a record made by the run (ok or
failed), `{"kind": "timeout", "data": ...}` for a run killed past its timeout (its timeout record), or
`{"kind": "died", "exitcode": ...}` for a run process that died without a record (the caller retries it).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import multiprocessing as mp
import os
import signal
import sys
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from harness import worker
from harness.registries import METHODS, TASKS
from harness.spec import RunSpec
from harness.store import ResultStore
from harness.worker import SYS_PATH_ENV, WorkerOptions, build_record, run_spec, utc_now

_PR_SET_PDEATHSIG = 1
_started_with: WorkerOptions | None = None


def node_options(options: WorkerOptions, gpu: str | None) -> WorkerOptions:
    """The driver's options made right for this node: its import path first where it exists here (plugins
    the driver found), then this node's own entries (its installed packages), and the node's GPU."""
    here = [p for p in options.sys_path if p == "" or Path(p).exists()]
    merged = tuple(dict.fromkeys([*here, *sys.path]))
    return dataclasses.replace(options, sys_path=merged, gpu=gpu)


def run_isolated(
    spec_json: dict[str, Any], run_id: str, options: WorkerOptions, timeout_s: float | None, cwd: str
) -> dict[str, Any]:
    """Run the spec in a fresh process and return its outcome (see the module docstring)."""
    context = _forkserver(options)
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main, args=(spec_json, run_id, options, cwd, send), daemon=True, name="logitbench-run"
    )
    started_at, start = utc_now(), time.monotonic()
    process.start()
    send.close()
    try:
        data, timed_out = _receive(receive, process, None if timeout_s is None else start + timeout_s)
    finally:
        if process.exitcode is None:  # timed out, or this task was interrupted: the run goes too
            process.kill()
        process.join()
        receive.close()
    if data is not None:
        return {"kind": "record", "data": data}
    elapsed = time.monotonic() - start
    if timed_out:
        error = {
            "type": "Timeout",
            "message": f"run exceeded its timeout of {timeout_s or 0:g} s and was killed",
            "traceback": "",
        }
        spec = RunSpec.from_json(spec_json)
        record = build_record(spec, run_id, "timeout", {}, error, started_at, elapsed, threads=spec.threads)
        return {"kind": "timeout", "data": record}
    return {"kind": "died", "exitcode": process.exitcode, "started_at": started_at, "elapsed": elapsed}


def exit_text(exitcode: int | None) -> str:
    """'exited with code 3' or 'was killed by SIGKILL'."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def _receive(receive: Connection, process: Any, deadline: float | None) -> tuple[dict[str, Any] | None, bool]:
    """The record data the run sends (None when it died first or its deadline passed), and whether the
    deadline passed."""
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    ready = wait([receive, process.sentinel], timeout=timeout)
    if receive in ready or receive.poll():
        try:
            return receive.recv(), False
        except EOFError:  # closed without sending: the process died
            return None, False
    return None, not ready


def _forkserver(options: WorkerOptions) -> Any:
    """This process's forkserver context; the first call sets what the forkserver imports and inherits
    (the driver's forwarded environment: plugins; the node's import path) and waits for its imports."""
    global _started_with
    context = mp.get_context("forkserver")
    if _started_with is None:
        os.environ.update(options.env)
        os.environ[SYS_PATH_ENV] = os.pathsep.join(options.sys_path)  # read by harness.preload
        context.set_forkserver_preload(["harness.preload"])
        warm = context.Process(target=os.getpid, daemon=True)  # forked only once the imports are done,
        warm.start()  # so the first run's timeout does not count them
        warm.join()
        _started_with = options
    return context


def _child_main(
    spec_json: dict[str, Any], run_id: str, options: WorkerOptions, cwd: str, send: Connection
) -> None:
    """The run process: the driver's environment, import path and working folder (relative input paths
    mean what they meant there), then the run; its record data goes back through `send`."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    os.environ.update(options.env)
    sys.path[:] = list(options.sys_path)
    warmed_with = worker._WARMED_WITH  # what the forkserver loaded its registries with
    if warmed_with is not None and worker.plugin_settings() != warmed_with:
        TASKS.reset()
        METHODS.reset()
    if options.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = options.gpu
    data = run_spec(RunSpec.from_json(spec_json), ResultStore(options.results_root), options, run_id)
    send.send(data)
    send.close()


def _die_with_parent() -> None:
    """Have the kernel kill this process when its parent (the forkserver) exits (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
