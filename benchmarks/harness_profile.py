"""Where a no-op run's overhead goes: timestamps along the path from spec to stored record.

Wraps the executor's and the worker's steps with timers (the workers are forked from a forkserver that
imports this script, so the wrappers are in them too), runs no-op specs one at a time through a
LocalExecutor with one worker, and prints for each step its median start and duration, in ms after the
submit, over the runs. The clock is CLOCK_MONOTONIC, one clock for every process on Linux.

Usage: OMP_NUM_THREADS=1 python benchmarks/harness_profile.py [--runs 40] [--workers 1]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _folder in (str(ROOT / "benchmarks"), str(ROOT / "tests" / "plugins")):
    if _folder not in sys.path:  # imported again as a module and as a plugin: the path stays the same
        sys.path.insert(0, _folder)
# Loaded as a plugin module too, so that the forkserver, and so every worker, has the timers.
os.environ["LOGITBENCH_PLUGIN_MODULES"] = "lb_diagnostics,harness_profile"
DRIVER_ENV = "LOGITBENCH_PROFILE_DRIVER"

import harness.executors as executors  # noqa: E402
import harness.spare_process as spare_process  # noqa: E402
import harness.store as store_module  # noqa: E402
import harness.worker as worker  # noqa: E402
from harness.registries import METHODS, TASKS  # noqa: E402
from harness.spec import make_spec  # noqa: E402

LOG_ENV = "LOGITBENCH_PROFILE_LOG"
_events: list[tuple[str, int, float, float]] = []  # (step, pid, start, end)


def _flush() -> None:
    """Append this process's events to the shared log (one write: lines of a few processes interleave
    whole)."""
    path = os.environ.get(LOG_ENV)
    if not path or not _events:
        return
    text = "".join(f"{name}\t{pid}\t{start:.6f}\t{end:.6f}\n" for name, pid, start, end in _events)
    _events.clear()
    with open(path, "a") as fh:
        fh.write(text)


def timed(owner: object, name: str, label: str | None = None) -> None:
    """Replace `owner.name` by a wrapper that records when each call started and ended."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        start, cpu = time.monotonic(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            _events.append((label or name, os.getpid(), start, time.monotonic()))
            _events.append(("CPU " + (label or name), os.getpid(), start, time.thread_time() - cpu))

    setattr(owner, name, wrapper)


def _instrument() -> None:
    # driver (main thread and the executor's pump thread)
    timed(executors.LocalExecutor, "_enqueue", "driver: submit")
    timed(executors.LocalExecutor, "_launch", "pump: launch (spare handoff + send)")
    timed(spare_process.SpareProcess, "_take", "pump:   take spare (waits for a fork under way)")
    timed(executors.LocalExecutor, "_start_worker", "fork: start a worker process")
    timed(executors.LocalExecutor, "_reap", "pump: reap (ack, record read)")
    timed(executors.LocalExecutor, "_record_of", "pump:   read the stored record")
    timed(executors, "wait", "pump: wait (pipes, no timeout)")
    # worker
    timed(worker, "process_main", "worker: process_main (after recv)")
    timed(worker, "run_spec", "worker:   run_spec")
    timed(worker, "set_threads", "worker:     set_threads")
    timed(worker, "seed_everything", "worker:     seed_everything")
    timed(worker, "quiet_progress_bars", "worker:     quiet_progress_bars")
    timed(worker, "pick_device", "worker:     pick_device")
    timed(worker.TASKS, "get", "worker:     TASKS.get")
    timed(worker, "_check_inputs_unchanged", "worker:     inputs unchanged")
    timed(worker, "ArtifactCache", "worker:     ArtifactCache()")
    timed(worker, "RunContext", "worker:     RunContext()")
    timed(worker, "json_safe", "worker:     json_safe(details)")
    timed(worker, "_metric_entries", "worker:     metric entries")
    timed(worker, "_keep_samples", "worker:     keep samples")
    timed(TASKS.get("diag/echo"), "run", "worker:     task.run")
    timed(worker, "build_record", "worker:     build_record")
    timed(worker, "environment", "worker:       environment()")
    timed(worker, "write_safely", "worker:   write the record")
    timed(store_module, "validate_record", "worker:     validate_record")
    timed(store_module, "record_checksum", "worker:     checksum")
    timed(store_module, "_atomic_write", "worker:     atomic write (dump, fsync, rename)")
    timed(os, "fsync", "worker:       fsync")
    timed(store_module.ResultStore, "claim", "worker:   claim")
    timed(store_module.ResultStore, "remove_samples", "worker:     remove stale tables")

    worker.spare_main = spare_main  # a module-level function: the worker's target is pickled by name
    executors.spare_main = spare_main


_original_spare = worker.spare_main


def spare_main(conn):  # type: ignore[no-untyped-def]
    """harness.worker.spare_main with the times its process started, got its spec, and sent its status."""
    _events.append(("worker: process started (spare_main entered)", os.getpid(), time.monotonic(), 0.0))
    original = conn.recv

    def recv():  # type: ignore[no-untyped-def]
        message = original()
        _events.append(("worker: spec received", os.getpid(), time.monotonic(), time.monotonic()))
        cpu.append(time.process_time())
        return message

    def send(message):  # type: ignore[no-untyped-def]
        send_conn(message)
        if cpu:  # CPU seconds of this process from its spec to its message: the run's path, any load
            _events.append(
                ("worker: CPU ms, spec -> exit status", os.getpid(), 0.0, time.process_time() - cpu[0])
            )

    cpu: list[float] = []
    conn.recv, send_conn, conn.send = recv, conn.send, send
    try:
        _original_spare(conn)
        _events.append(("worker: exit status sent", os.getpid(), time.monotonic(), time.monotonic()))
    finally:
        _flush()


if __name__ == "harness_profile":
    _instrument()


def entered(owner: object, name: str, label: str) -> None:
    """Replace `owner.name` by a wrapper that records when each call began (for calls that never
    return, such as a child process's main)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        _events.append((label, os.getpid(), time.monotonic(), 0.0))
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


if __name__ == "harness_profile" and os.environ.get(DRIVER_ENV) != str(os.getpid()):
    # in the forkserver: the steps of each child's start
    import multiprocessing.process as mp_process
    import multiprocessing.spawn as spawn
    import multiprocessing.util as mp_util

    _fork = os.fork

    def _logged_fork() -> int:
        start = time.monotonic()
        pid = _fork()
        if pid == 0:
            _events.clear()
            _events.append(("child: forked (in the child)", os.getpid(), time.monotonic(), 0.0))
        else:  # the forkserver's own log line: it never flushes otherwise
            with open(os.environ[LOG_ENV], "a") as fh:
                fh.write(f"forkserver: fork\t{pid}\t{start:.6f}\t{time.monotonic():.6f}\n")
        return pid

    os.fork = _logged_fork
    entered(spawn, "_main", "child: spawn._main entered")
    timed(spawn, "prepare", "child:   spawn.prepare")
    timed(spawn.reduction.pickle, "load", "child:   pickle.load (prep data, process)")
    entered(mp_process.BaseProcess, "_bootstrap", "child: process._bootstrap entered")
    timed(mp_util, "_run_after_forkers", "child:   after-fork hooks")


def main() -> None:
    from harness.store import ResultStore

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the first run")
    args = parser.parse_args()
    task, method = TASKS.get("diag/echo"), METHODS.get("diag-constant")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "events.tsv"
        os.environ[LOG_ENV] = str(log)
        executor = executors.LocalExecutor(ResultStore(Path(tmp) / "results"), workers=args.workers)
        executor.submit(make_spec(task, method, -1, "cpu")).result()  # start the forkserver
        time.sleep(args.settle)  # the forkserver's huge pages (harness/huge_pages.py) are done in about 1 s
        _events.clear()
        windows = []
        for seed in range(args.runs):
            spec = make_spec(task, method, seed, "cpu")
            start = time.monotonic()
            assert executor.submit(spec).result().status == "ok"
            windows.append((start, time.monotonic()))
        time.sleep(0.3)
        executor.shutdown()
        _flush()
        lines = [line.split("\t") for line in log.read_text().splitlines()]
    events = sorted(((name, int(pid), float(s), float(e)) for name, pid, s, e in lines), key=lambda e: e[2])
    offsets: dict[str, list[float]] = defaultdict(list)
    durations: dict[str, list[float]] = defaultdict(list)
    parent = os.getpid()
    cpu_of: dict[str, list[float]] = defaultdict(list)
    for name, _pid, _s, e in events:
        if name.startswith("CPU "):
            cpu_of[name[4:]].append(e * 1000)
    events = [e for e in events if not e[0].startswith("CPU ")]
    for w_start, w_end in windows:
        # the run's worker: the process that got its spec in this window
        pids = {p for n, p, s, _ in events if n == "worker: spec received" and w_start <= s <= w_end}
        seen: dict[str, int] = defaultdict(int)
        for name, pid, s, e in events:
            mine = pid in pids or (pid == parent and w_start <= s <= w_end)
            if not mine:
                continue
            seen[name] += 1
            step = name if seen[name] == 1 else f"{name} #{seen[name]}"
            offsets[step].append((s - w_start) * 1000)
            durations[step].append(((e - s) * 1000) if e else 0.0)
    totals = [(e - s) * 1000 for s, e in windows]
    cpu_ms = [e * 1000 for name, _pid, _s, e in events if name.startswith("worker: CPU ms")]
    if os.environ.get("PROFILE_RAW"):
        base = windows[len(windows) // 2][0]
        for name, pid, s, e in events:
            if -80 <= (s - base) * 1000 <= 120:
                print(f"RAW {(s - base) * 1000:8.2f} {((e - s) * 1000) if e else 0:7.2f} {pid:7d} {name}")
    print(f"{len(windows)} no-op runs, {args.workers} worker(s), load {os.getloadavg()[0]:.2f}")
    print(f"spec -> stored record: median {statistics.median(totals):.1f} ms")
    if cpu_ms:
        print(f"worker CPU time from its spec to its exit status: median {statistics.median(cpu_ms):.2f} ms")
    print(
        f"{'step (medians over the runs; ms after the submit)':58} {'n':>4} {'at':>8} {'takes':>8} {'CPU':>6}"
    )
    order = sorted(offsets, key=lambda n: statistics.median(offsets[n]))
    for name in order:
        n = len(offsets[name])
        print(
            f"{name:58} {n:4d} {statistics.median(offsets[name]):8.2f} "
            f"{statistics.median(durations[name]):8.2f} "
            + (f"{statistics.median(cpu_of[name]):6.2f}" if name in cpu_of else "")
        )


if __name__ == "__main__":  # the timers live in the module (workers unpickle its spare_main by name)
    os.environ[DRIVER_ENV] = str(os.getpid())
    import harness_profile

    harness_profile.main()
