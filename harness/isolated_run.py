"""One run in a fresh process of this machine, its record data handed back instead of written.

This is what a Ray task does on its node (harness/ray_executor.py): the driver, the only writer of records,
holds the run's claim and stores what comes back. The run gets a process of its own, forked from a
forkserver that this process starts once with the heavy imports done (harness/preload.py), exactly as the
local executor's workers are, so a crash, a leak or a hung run harms nothing else and a warm Ray worker
pays the imports once. The run process dies with that forkserver (PR_SET_PDEATHSIG), which exits when
this process does, so a Ray worker killed or cancelled takes its run with it.

What a no-op run on Ray cost beyond a local one went three ways, each removed here: every run process ran
Ray's worker script again on start (harness/forkserver_main.py stops that), it was forked when the run
arrived (the next run's process is now forked ahead, a spare waiting on a pipe for its spec, as the local
executor's), and the task waited for the process's teardown after its record came (it no longer does:
the process exits on its own and multiprocessing reaps it at the next start).

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
from harness.forkserver_main import MAIN_ENV, announcement
from harness.registries import METHODS, TASKS
from harness.spare_process import SpareProcess
from harness.spec import RunSpec
from harness.store import ResultStore
from harness.worker import SYS_PATH_ENV, WorkerOptions, build_record, run_spec, utc_now

PRELOAD = ["harness.forkserver_main", "harness.preload"]
EXIT_WAIT_S = 5.0  # how long a run process that closed its pipe unasked may take to exit on its own
_PR_SET_PDEATHSIG = 1

_started_with: WorkerOptions | None = None
_spare: SpareProcess | None = None  # the next run's process, forked while this Ray worker waits for a task


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
    spare = _run_processes(options)
    message = (spec_json, run_id, options, cwd)
    started_at, start = utc_now(), time.monotonic()
    process, conn = spare.send(message)
    data, died = None, False
    try:
        data, timed_out = _receive(conn, process, None if timeout_s is None else start + timeout_s)
        died = data is None and not timed_out
    finally:
        conn.close()
        if data is None:  # died, timed out, or this task was interrupted: the process must be gone
            if died:
                process.join(EXIT_WAIT_S)  # dying already: its own exit code, not our SIGKILL
            if process.exitcode is None:
                process.kill()
            process.join()
    spare.fork_ahead()  # after a run, not during one: a fork beside a run slows it
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


def _receive(conn: Connection, process: Any, deadline: float | None) -> tuple[dict[str, Any] | None, bool]:
    """The record data the run sends (None when it died first or its deadline passed), and whether the
    deadline passed."""
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    ready = wait([conn, process.sentinel], timeout=timeout)
    if conn in ready or conn.poll():
        try:
            return conn.recv(), False
        except (EOFError, OSError):  # closed without sending: the process died
            return None, False
    return None, not ready


def _run_processes(options: WorkerOptions) -> SpareProcess:
    """This process's run processes, forked from its forkserver; the first call sets what the forkserver
    imports and inherits (the driver's forwarded environment: plugins; the node's import path; this
    process's main script, see harness/forkserver_main.py) and forks the first spare, which waits for the
    forkserver's imports."""
    global _started_with, _spare
    context = mp.get_context("forkserver")
    if _started_with is None:
        os.environ.update(options.env)
        os.environ[SYS_PATH_ENV] = os.pathsep.join(options.sys_path)  # read by harness.preload
        os.environ[MAIN_ENV] = announcement()
        context.set_forkserver_preload(PRELOAD)
        _spare = SpareProcess(lambda: _start_worker(context))
        try:
            _spare.fork_ahead()  # forked only once the imports are done, so the first run's timeout
            _spare.wait()  # does not count them
        finally:
            os.environ.pop(MAIN_ENV, None)  # the forkserver has it; nothing else needs it
        _started_with = options
    return _spare  # type: ignore[return-value]  # set on the first call


def _start_worker(context: Any) -> tuple[Any, Connection]:
    """A run process waiting for its spec on a pipe: (process, this end)."""
    ours, theirs = context.Pipe()
    process = context.Process(target=_spare_main, args=(theirs,), daemon=True, name="logitbench-run")
    try:
        process.start()
    finally:
        theirs.close()
    return process, ours


def _spare_main(conn: Connection) -> None:
    """A run process started before its run is known: it waits for the spec, runs it and sends back the
    record data. None, or the other end gone: exit unused."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        message = conn.recv()
    except (EOFError, OSError):
        return
    if message is not None:
        _child_main(*message, conn)


def _child_main(
    spec_json: dict[str, Any], run_id: str, options: WorkerOptions, cwd: str, send: Connection
) -> None:
    """The run: the driver's environment, import path and working folder (relative input paths mean what
    they meant there), then the run; its record data goes back through `send`."""
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
