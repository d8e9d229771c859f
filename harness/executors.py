"""Executors turn run specs into records. The local one is a pool of worker processes.

Each run gets a process of its own (forked from a forkserver that has the heavy imports done), so a crash,
a leak or a hung run harms no other run: a run past its timeout is killed and recorded as `timeout`, a
process that dies without writing is recorded as `failed`. The next run's process is forked ahead of time
(a spare, waiting on a pipe for its spec), and a worker sends its stored record once it is on disk, so a
run waits neither for a fork nor for the teardown of a process that holds torch (about 9 ms of CPU), nor
reads its record back. What a no-op run costs, and where (benchmarks/harness_profile.py prints it): the
forkserver's fork, 6.5 ms of CPU with its heap in huge pages (harness/huge_pages.py; 18-20 ms without);
the child's start, 3 ms; the run, 4.7 ms of the worker's CPU, of which the record's write 1.9 ms (one
fsync before its rename; the folder's fsync comes after the worker has answered); the driver, 2 ms.

GPUs are given by what a run's task declares at its scale (`Task.resources`): a run that asks for GPUs
holds that many devices of its own, exposed to it alone through CUDA_VISIBLE_DEVICES, and no other run
gets them until it ends; a run that asks for none runs on a CPU worker beside them, with
CUDA_VISIBLE_DEVICES empty. Queued runs start in rank order (`submit_ranked`, the planner's order), a run
skipped only while the GPUs it needs are busy.

A run whose key another process has claimed (a second `run` on the same results folder) is not started:
it waits until the claim is released, then its worker finds the other process's record and returns it,
or runs it when the other process died without one. So no run is executed twice at once.
"""

from __future__ import annotations

import abc
import math
import multiprocessing as mp
import os
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from harness.forkserver_main import MAIN_ENV, announcement
from harness.spare_process import SpareProcess
from harness.spec import RunSpec
from harness.store import InvalidRecordError, Record, ResultStore, Version
from harness.worker import (
    EXIT_CLAIMED,
    EXIT_SUPERSEDED,
    SYS_PATH_ENV,
    WorkerOptions,
    build_record,
    spare_main,
    utc_now,
)

# harness.forkserver_main stops every worker from running the parent's main script again on start (the
# stdlib's "__main__" preload does not do that in Python 3.11: it is never given the script's path).
PRELOAD = ["harness.forkserver_main", "harness.preload"]
FORWARDED_ENV_PREFIXES = ("LOGITBENCH_", "HF_", "TRANSFORMERS_", "CUDA_")
CLAIM_POLL_S = 0.2  # how often runs claimed by another process look whether the claim is free
_FORKSERVER_START = threading.Lock()


def ensure_forkserver() -> None:
    """Start this process's forkserver unless it runs, telling it the main script that its processes
    need not run again (harness/forkserver_main.py; the variable is gone again once it has started)."""
    from multiprocessing import forkserver

    with _FORKSERVER_START:
        os.environ[MAIN_ENV] = announcement()
        try:
            forkserver.ensure_running()
        finally:
            os.environ.pop(MAIN_ENV, None)


class Executor(abc.ABC):
    """Runs specs; a submitted spec's future resolves to its stored record."""

    @abc.abstractmethod
    def submit(self, spec: RunSpec, expected: Version | None = None) -> Future[Record]:
        """Run `spec` unless the store's version of its key is no longer `expected` when the run can
        start (another process ran it meanwhile: its record is the result). None: the version now."""

    @abc.abstractmethod
    def running(self) -> int: ...

    def waiting(self) -> int:
        """Runs held back because another process is running them."""
        return 0

    def submit_ranked(self, spec: RunSpec, expected: Version | None, rank: int) -> Future[Record]:
        """`submit`, with the run's place in the plan: a queued run of a lower rank starts first, so a run
        submitted late (it waited for an artifact) does not queue behind every run of a later rank. The
        default ignores the rank."""
        return self.submit(spec, expected)

    def capacity(self) -> int | None:
        """How many runs it runs at once (for the ETA); None when it cannot say."""
        return None

    def running_nodes(self) -> dict[str, str]:
        """Run key -> the machine each started run is on, where there are several (Ray); else empty."""
        return {}

    @abc.abstractmethod
    def shutdown(self, cancel: bool = False) -> None: ...


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (so a worker restricted to one
    keeps the user's own restriction), without initialising CUDA here."""
    try:
        import torch
    except ImportError:
        return []
    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if "CUDA_VISIBLE_DEVICES" in os.environ else [str(i) for i in range(count)]


def gpus_wanted(spec: RunSpec) -> int:
    """The GPUs the spec's task declares at its scale (0 for a task that cannot be found here)."""
    from harness.registries import TASKS

    try:
        return TASKS.get(spec.task.name).resources_at(spec.scale).gpus
    except Exception:
        return 0


@dataclass
class _Running:
    process: Any
    spec: RunSpec
    future: Future[Record]
    run_id: str
    started: float
    started_at: str
    slot: int
    expected: Version
    gpus: tuple[str, ...] = ()
    conn: Any = None  # the worker's end of the spec/exit-status pipe (harness.worker.spare_main)
    code: int | None = None  # the exit status the worker sent once its record was stored
    stored: dict[str, Any] | None = None  # the record it stored, as it sent it

    def exit_code(self) -> int | None:
        """The run's exit status: as the worker sent it after storing its record (the process may still
        be exiting), else the process's own once it is gone; None while it runs."""
        if self.code is None:
            try:
                if self.conn.poll():
                    message = self.conn.recv()
                    code, self.stored = message if isinstance(message, tuple) else (message, None)
                    self.code = int(code)
            except (EOFError, OSError, ValueError, TypeError):
                pass  # died without a word: its exit code below says how
        return self.code if self.code is not None else self.process.exitcode


@dataclass
class Queued:
    """A submitted run waiting for a worker (both executors)."""

    spec: RunSpec
    future: Future[Record]
    expected: Version
    rank: float = math.inf  # the run's place in the plan: lower starts first


def enqueue_ranked(pending: deque[Queued], queued: Queued) -> None:
    """Put `queued` after every waiting run of its rank or a lower one (the planner's order)."""
    place = len(pending)  # runs come mostly in rank order: look from the back
    while place and pending[place - 1].rank > queued.rank:
        place -= 1
    pending.insert(place, queued)


def default_workers(gpus: list[str]) -> int:
    """Parallel runs without `--workers`: the CPU cores, and at least one per GPU."""
    return max(os.cpu_count() or 1, len(gpus))


class LocalExecutor(Executor):
    def __init__(
        self,
        store: ResultStore,
        workers: int | None = None,
        timeout_s: float | None = None,
        gpus: list[str] | None = None,
    ) -> None:
        self.store = store
        self.gpus = visible_gpus() if gpus is None else list(gpus)
        self.workers = workers or default_workers(self.gpus)
        self.timeout_s = timeout_s
        self._mp = mp.get_context("forkserver")
        self._mp.set_forkserver_preload(PRELOAD)
        os.environ[SYS_PATH_ENV] = os.pathsep.join(sys.path)  # read by harness.preload in the forkserver
        self._pending: deque[Queued] = deque()
        self._claimed_elsewhere: list[Queued] = []
        self._running: dict[int, _Running] = {}
        self._free_slots = list(range(self.workers))
        self._free_gpus = list(self.gpus)
        self._gpus_by_kind: dict[tuple[str, str], int] = {}
        # A worker forked ahead of the next run, so a run does not wait for the fork of a process that
        # holds the preloaded libraries (~20 ms here); runs still each get a fresh process.
        self._spare = SpareProcess(self._start_worker)
        self._lock = threading.Lock()
        self._forkserver_checked = False
        self._wake_r, self._wake_w = self._mp.Pipe(duplex=False)
        self._stop = False
        self._cancelled = False
        self._pump = threading.Thread(target=self._loop, name="logitbench-executor", daemon=True)
        self._pump.start()

    def submit(self, spec: RunSpec, expected: Version | None = None) -> Future[Record]:
        return self._enqueue(spec, expected, math.inf)

    def submit_ranked(self, spec: RunSpec, expected: Version | None, rank: int) -> Future[Record]:
        return self._enqueue(spec, expected, rank)

    def capacity(self) -> int | None:
        return self.workers

    def _enqueue(self, spec: RunSpec, expected: Version | None, rank: float) -> Future[Record]:
        future: Future[Record] = Future()
        queued = Queued(spec, future, self.store.version(spec.key) if expected is None else expected, rank)
        with self._lock:
            enqueue_ranked(self._pending, queued)
            if self._free_slots:  # start it from here: waking the pump to do it cost a thread switch
                self._launch()
        self._wake_w.send_bytes(b"x")  # the pump waits on the new worker's pipe from now on
        return future

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def waiting(self) -> int:
        with self._lock:
            return len(self._claimed_elsewhere)

    def shutdown(self, cancel: bool = False) -> None:
        """Stop; with `cancel`, kill running workers (their runs leave no record) and drop pending ones."""
        with self._lock:
            self._stop = True
            self._cancelled = cancel
            if cancel:
                for queued in [*self._pending, *self._claimed_elsewhere]:
                    if not queued.future.cancel():  # already running: it was sent back to wait
                        queued.future.set_exception(CancelledError(f"{queued.spec.label()} was cancelled"))
                self._pending.clear()
                self._claimed_elsewhere.clear()
                for run in self._running.values():
                    run.process.kill()
        self._wake_w.send_bytes(b"x")
        self._pump.join(timeout=30)
        for run in list(self._running.values()):
            run.process.join(timeout=5)
        self._spare.close()

    def _start_worker(self) -> tuple[Any, Any]:
        """A worker process waiting for its run on a pipe: (process, the executor's end)."""
        if not self._forkserver_checked:
            ensure_forkserver()
            self._forkserver_checked = True
        ours, theirs = self._mp.Pipe()
        process = self._mp.Process(target=spare_main, args=(theirs,), daemon=True)
        try:
            process.start()
        finally:
            theirs.close()
        return process, ours

    def _keep_spare(self) -> None:
        """Fork the next run's worker while this run goes on; not once the executor is stopping or has
        nothing to do. Called under the lock."""
        if self._stop or self._cancelled or not (self._running or self._pending):
            return
        if len(self._running) >= (os.cpu_count() or 1):  # no idle core: a fork now would slow the runs
            return  # (2 workers x 2 cores: 1.67x -> 1.33x over one worker with a spare forked anyway)
        self._spare.fork_ahead()

    def _options(self, gpus: tuple[str, ...]) -> WorkerOptions:
        """A run's worker options: its own GPUs, or none visible ("") beside runs that hold them."""
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
        gpu = ",".join(gpus) if gpus else ("" if self.gpus else None)
        return WorkerOptions(str(self.store.root), gpu, tuple(sys.path), env)

    def _gpus_for(self, spec: RunSpec) -> int:
        """Devices the run holds: what its task asks for, at most the machine's (none without GPUs)."""
        if not self.gpus:
            return 0
        kind = (spec.task.name, spec.scale)
        if kind not in self._gpus_by_kind:  # asked at every look at the queue: once per task and scale
            self._gpus_by_kind[kind] = min(gpus_wanted(spec), len(self.gpus))
        return self._gpus_by_kind[kind]

    def _launch(self) -> None:
        free = [q for q in self._claimed_elsewhere if not self.store.is_claimed(q.spec.key)]
        if free:
            self._claimed_elsewhere = [q for q in self._claimed_elsewhere if q not in free]
            self._pending.extendleft(reversed(free))
        skipped: deque[Queued] = deque()  # runs whose GPUs are busy: they keep their place
        while self._pending and self._free_slots and not self._cancelled:
            queued = self._pending.popleft()
            spec, future = queued.spec, queued.future
            if future.cancelled():
                continue
            wanted = self._gpus_for(spec)
            if wanted > len(self._free_gpus):
                skipped.append(queued)
                continue
            if self.store.is_claimed(spec.key):  # another process runs it now: not worth a worker
                self._claimed_elsewhere.append(queued)
                continue
            if not future.running() and not future.set_running_or_notify_cancel():
                continue
            slot = self._free_slots.pop(0)
            gpus = tuple(self._free_gpus[:wanted])
            del self._free_gpus[:wanted]
            run_id = uuid.uuid4().hex
            message = (spec.to_json(), run_id, self._options(gpus), queued.expected)
            try:
                process, conn = self._spare.send(message)
            except Exception as err:  # e.g. the forkserver could not start: a failed record, the pump goes on
                self._free_slots.append(slot)
                self._release_gpus(gpus)
                error = {
                    "type": type(err).__name__,
                    "message": f"worker could not start: {err}",
                    "traceback": "",
                }
                data = build_record(spec, run_id, "failed", {}, error, utc_now(), 0.0, threads=spec.threads)
                future.set_result(self._store_own(data))
                continue
            self._running[process.sentinel] = _Running(
                process, spec, future, run_id, time.monotonic(), utc_now(), slot, queued.expected, gpus, conn
            )
        self._pending.extendleft(reversed(skipped))
        self._keep_spare()

    def _release_gpus(self, gpus: tuple[str, ...]) -> None:
        self._free_gpus = [g for g in self.gpus if g in self._free_gpus or g in gpus]

    def _store_own(self, data: dict[str, Any]) -> Record:
        """Store a record this process made for a run (its worker is gone): under the key's claim, or not
        at all when another process holds it (that process's own record will stand)."""
        claim = self.store.claim(data["key"])
        if claim is not None:
            with claim:
                self.store.write(data)
        return Record(data)

    def _loop(self) -> None:
        while True:
            with self._lock:
                idle = not self._pending and not self._claimed_elsewhere
                if self._stop and not self._running and (self._cancelled or idle):
                    return
                self._launch()
                sentinels = [*self._running, *(r.conn for r in self._running.values())]
                deadline = self._next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._claimed_elsewhere:
                timeout = CLAIM_POLL_S if timeout is None else min(timeout, CLAIM_POLL_S)
            ready = wait([self._wake_r, *sentinels], timeout=timeout)
            if self._wake_r in ready:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
            with self._lock:
                self._reap()

    def _next_deadline(self) -> float | None:
        if self.timeout_s is None or not self._running:
            return None
        return min(r.started for r in self._running.values()) + self.timeout_s

    def _reap(self) -> None:
        now = time.monotonic()
        for sentinel, run in list(self._running.items()):
            code = run.exit_code()
            still_running = code is None
            timed_out = still_running and self.timeout_s is not None and now - run.started > self.timeout_s
            if still_running and not timed_out:
                continue
            if timed_out:
                run.process.kill()
                run.process.join()
            del self._running[sentinel]
            self._free_slots.append(run.slot)
            self._release_gpus(run.gpus)
            if self._cancelled:
                run.future.set_exception(CancelledError(f"{run.spec.label()} was cancelled"))
                continue
            run.conn.close()
            if not timed_out and code == EXIT_CLAIMED:  # claimed in between: wait for it
                self._claimed_elsewhere.append(Queued(run.spec, run.future, run.expected))
                continue
            try:
                if not timed_out and code == EXIT_SUPERSEDED:
                    record = self._current(run)
                    if record is None:  # what superseded it is gone again: run it after all
                        self._pending.appendleft(
                            Queued(run.spec, run.future, self.store.version(run.spec.key))
                        )
                        continue
                    run.future.set_result(record)
                    continue
                run.future.set_result(self._record_of(run, timed_out, now - run.started))
            except Exception as err:  # a store error must not kill the pump
                run.future.set_exception(err)

    def _current(self, run: _Running) -> Record | None:
        try:
            return self.store.read(run.spec.key)
        except InvalidRecordError:
            return None

    def _record_of(self, run: _Running, timed_out: bool, elapsed: float) -> Record:
        """The record the worker wrote (as it sent it, or read back); else one another process wrote for
        the same spec while this run went on (never overwritten); else a timeout or failure record written
        here."""
        if not timed_out and run.stored is not None and run.stored.get("run_id") == run.run_id:
            return Record(run.stored)
        record = self._current(run)
        if record is not None and not timed_out and record.data.get("run_id") == run.run_id:
            return record
        attempt = self.store.read_failed_attempt(run.spec.key)
        if not timed_out and attempt is not None and attempt.data.get("run_id") == run.run_id:
            return attempt  # kept beside an ok record; the runner says so
        if record is not None and record.status == "ok" and record.data.get("ended_at", "") >= run.started_at:
            return record
        if timed_out:
            status, error = (
                "timeout",
                {
                    "type": "Timeout",
                    "message": f"run exceeded its timeout of {self.timeout_s:g} s and was killed",
                    "traceback": "",
                },
            )
        else:
            status, error = (
                "failed",
                {
                    "type": "WorkerDied",
                    "message": f"worker exited with code {run.exit_code()} without writing a record",
                    "traceback": "",
                },
            )
        data = build_record(
            run.spec, run.run_id, status, {}, error, run.started_at, elapsed, threads=run.spec.threads
        )
        return self._store_own(data)
