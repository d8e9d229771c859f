"""The Ray executor: each run is a Ray task on some node of a cluster; this process writes every record.

A run asks Ray for what its task declares at its scale (`Task.resources_at`: CPUs, GPUs, memory); Ray
picks the node. There the task runs the spec in a fresh process (harness/isolated_run.py, the same code
path as a local worker) and returns the record data; the driver, holding the key's claim from before the
task is sent until the record is stored, writes it the moment the run ends. So a cluster run resumes
exactly like a local one: kill the driver and run again, and only runs without a record are redone (Ray
ends a dead driver's tasks with it). Claims, the expected-version check against a second `run` on the
same folder, failed attempts kept beside `ok` records and the `timeout` records are the local
executor's (harness/executors.py).

Every node must see the results folder (records, artifacts, per-example tables) and any local input file
at the same path as the driver: a shared file system. Runs write their artifacts and tables there
themselves; only the records go through the driver.

A run lost with its process, its Ray worker or its node is sent again, `retries` times, then recorded as
failed with the reason Ray or the run process gave. A task that no node of the cluster can ever hold (a GPU
run on a CPU-only cluster) is recorded as failed at once instead of waiting forever.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from harness.errors import UserError
from harness.executors import FORWARDED_ENV_PREFIXES, Executor, Queued, enqueue_ranked
from harness.isolated_run import exit_text, node_options, run_isolated
from harness.ray_capacity import request_of, runs_per_node
from harness.spec import RunSpec
from harness.store import Claim, InvalidRecordError, Record, ResultStore, Version
from harness.worker import WorkerOptions, build_record, utc_now, write_safely

POLL_S = 0.1  # how long the driver waits on Ray before it looks at runs sent meanwhile and other claims
CLUSTER_REFRESH_S = 5.0  # how often the driver asks Ray again how large the cluster is
CONNECT_TIMEOUT_S = 10.0  # how long the cluster's address may take to accept a connection
REASON_CHARS = 2000  # a Ray error message can carry a whole traceback: the record keeps its start


# max_retries=0: the driver retries, so that it knows and records why. max_calls=0: a Ray worker is kept
# for the next run even after a GPU run (Ray's default for GPU tasks is a new worker each time, and with it
# a new forkserver importing torch): a run touches its GPU only in its own process, which exits.
@ray.remote(max_retries=0, max_calls=0)
def _run_on_node(
    spec_json: dict[str, Any], run_id: str, options: WorkerOptions, timeout_s: float | None, cwd: str
) -> Iterator[Any]:
    """Ray task: first yields the node it runs on, then the run's outcome (harness/isolated_run.py)."""
    context = ray.get_runtime_context()
    yield f"{platform.node()} ({context.get_node_id()[:8]})"
    # Ray set CUDA_VISIBLE_DEVICES to the GPUs it gave this task; a run that asked for none sees none.
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "") if ray.get_gpu_ids() else ""
    yield run_isolated(spec_json, run_id, node_options(options, gpu), timeout_s, cwd)


@dataclass
class _InFlight:
    queued: Queued
    claim: Claim
    run_id: str
    attempt: int
    generator: Any  # ray.ObjectRefGenerator
    node: str | None = None  # known once the task started
    failures: list[str] = field(default_factory=list)
    started_at: str = ""  # when the task started on its node
    started: float = 0.0  # the same, monotonic


class RayExecutor(Executor):
    def __init__(
        self,
        store: ResultStore,
        address: str | None = None,
        workers: int | None = None,
        timeout_s: float | None = None,
        retries: int = 1,
    ) -> None:
        """`address`: a cluster's `HOST:PORT` or "auto"; None connects to a cluster started on this machine
        (`ray start`) or else starts one here. `workers` caps the runs in flight (default: the cluster's
        CPUs). An already connected process (ray.init done) is used as it is."""
        self.store = ResultStore(store.root.resolve())  # the Ray workers do not share this process's cwd
        self.timeout_s = timeout_s
        self.retries = retries
        self.workers = workers
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            connect(address)
        self._cwd = str(Path.cwd())
        self._options = WorkerOptions(str(self.store.root), None, tuple(sys.path), _forwarded_env())
        self._pending: deque[Queued] = deque()
        self._claimed_elsewhere: list[Queued] = []
        self._in_flight: dict[Any, _InFlight] = {}  # by generator
        self._nodes: list[dict[str, float]] = []
        self._capacity = 1
        self._cluster_checked = -float("inf")
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = False
        self._cancelled = False
        self._refresh_cluster()
        self._pump = threading.Thread(target=self._loop, name="logitbench-ray-executor", daemon=True)
        self._pump.start()

    # -- the Executor contract -------------------------------------------------------------------------

    def submit(self, spec: RunSpec, expected: Version | None = None) -> Future[Record]:
        return self.submit_ranked(spec, expected, math.inf)

    def submit_ranked(self, spec: RunSpec, expected: Version | None, rank: float) -> Future[Record]:
        """`submit`, queued before every run of a later rank (the planner's order)."""
        future: Future[Record] = Future()
        queued = Queued(spec, future, self.store.version(spec.key) if expected is None else expected, rank)
        with self._lock:
            enqueue_ranked(self._pending, queued)
            if len(self._in_flight) < self._capacity and not self._stop:
                try:  # a free slot: sent now, not when the pump next looks up from Ray (POLL_S)
                    self._launch()
                except Exception as err:  # Ray refused the submission: those runs fail
                    self._fail_pending(err)
        self._wake.set()
        return future

    def capacity(self) -> int | None:
        """Runs in flight at once: `workers`, else the cluster's CPUs when last asked."""
        with self._lock:
            return self._capacity

    def running(self) -> int:
        with self._lock:
            return sum(run.node is not None for run in self._in_flight.values())

    def waiting(self) -> int:
        with self._lock:
            return len(self._claimed_elsewhere)

    def running_nodes(self) -> dict[str, str]:
        """Run key -> the node it runs on, for each run that has started."""
        with self._lock:
            return {run.queued.spec.key: run.node for run in self._in_flight.values() if run.node}

    def shutdown(self, cancel: bool = False) -> None:
        """Stop; with `cancel`, end the runs in flight on their nodes (they leave no record) and drop the
        rest. Ray is shut down when this executor started or connected it."""
        with self._lock:
            self._stop = True
            self._cancelled = cancel
            if cancel:
                for queued in [*self._pending, *self._claimed_elsewhere]:
                    queued.future.cancel()
                self._pending.clear()
                self._claimed_elsewhere.clear()
                for run in self._in_flight.values():
                    ray.cancel(run.generator, force=True)
                    run.claim.release()
                    run.queued.future.set_exception(
                        CancelledError(f"{run.queued.spec.label()} was cancelled")
                    )
                self._in_flight.clear()
        self._wake.set()
        self._pump.join(timeout=30)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # -- the pump --------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._lock:
                idle = not self._pending and not self._claimed_elsewhere
                if self._stop and not self._in_flight and (self._cancelled or idle):
                    return
                try:
                    self._launch()
                except Exception as err:  # Ray refused the submission: those runs fail, the pump goes on
                    self._fail_pending(err)
                generators = list(self._in_flight)
            if not generators:
                self._wake.wait(POLL_S if self._claimed_elsewhere else None)
                self._wake.clear()
                continue
            try:
                ready, _ = ray.wait(generators, num_returns=1, timeout=POLL_S, fetch_local=False)
                if ready:
                    ready, _ = ray.wait(generators, num_returns=len(generators), timeout=0, fetch_local=False)
            except Exception as err:  # the cluster is gone: what is in flight cannot come back
                with self._lock:
                    for run in list(self._in_flight.values()):
                        self._give_up(
                            run, f"lost the Ray cluster: {type(err).__name__}: {_first_lines(str(err))}"
                        )
                continue
            with self._lock:
                for generator in ready:
                    run = self._in_flight.get(generator)
                    if run is None:
                        continue
                    try:
                        self._advance(run)
                    except Exception as err:  # e.g. Ray refused a retry: the run fails, the pump goes on
                        self._give_up(run, f"{type(err).__name__}: {_first_lines(str(err))}")

    def _launch(self) -> None:
        free = [q for q in self._claimed_elsewhere if not self.store.is_claimed(q.spec.key)]
        if free:
            self._claimed_elsewhere = [q for q in self._claimed_elsewhere if q not in free]
            self._pending.extendleft(reversed(free))
        self._refresh_cluster()
        while self._pending and len(self._in_flight) < self._capacity and not self._cancelled:
            queued = self._pending.popleft()
            if queued.future.cancelled():
                continue
            claim = self.store.claim(queued.spec.key)
            if claim is None:  # another process runs it now: wait until it is done
                self._claimed_elsewhere.append(queued)
                continue
            if self.store.version(queued.spec.key) != queued.expected:  # stored meanwhile by another process
                record = self._current(queued.spec.key)
                if record is not None:
                    claim.release()
                    self._settle(queued.future, record)
                    continue
            if not queued.future.running() and not queued.future.set_running_or_notify_cancel():
                claim.release()
                continue
            problem = self._infeasible(queued.spec)
            if problem:
                self._finish_failed(queued, claim, uuid.uuid4().hex, "Unschedulable", problem, utc_now(), 0.0)
                continue
            self._send(queued, claim, attempt=1, failures=[])

    def _send(self, queued: Queued, claim: Claim, attempt: int, failures: list[str]) -> None:
        spec = queued.spec
        need = request_of(spec)  # its task's resources; one CPU per torch thread at least
        options: dict[str, Any] = {"num_cpus": need.cpus, "num_gpus": need.gpus, "name": spec.label()}
        if need.memory_bytes > 0:
            options["memory"] = need.memory_bytes
        run_id = uuid.uuid4().hex
        generator = _run_on_node.options(**options).remote(
            spec.to_json(), run_id, self._options, self.timeout_s, self._cwd
        )
        self._in_flight[generator] = _InFlight(queued, claim, run_id, attempt, generator, failures=failures)

    def _advance(self, run: _InFlight) -> None:
        """Take the next item of a ready task: its node, or its outcome (or the error that lost it)."""
        try:
            value = ray.get(next(run.generator))
        except StopIteration:
            value = None
        except ray.exceptions.TaskCancelledError:
            return
        except ray.exceptions.RayTaskError as err:  # the node-side code raised: no point in retrying
            del self._in_flight[run.generator]
            cause = err.cause if err.cause is not None else err
            kind, message = type(cause).__name__, _first_lines(str(cause))
            self._finish_failed(run.queued, run.claim, run.run_id, kind, message, *self._times(run))
            return
        except ray.exceptions.RayError as err:  # the worker or the node died under it
            del self._in_flight[run.generator]
            self._lost(run, f"{type(err).__name__}: {_first_lines(str(err))}")
            return
        if isinstance(value, str):
            run.node, run.started_at, run.started = value, utc_now(), time.monotonic()
            return
        del self._in_flight[run.generator]
        if value is None:
            self._lost(run, "the Ray task ended without an outcome")
        elif value["kind"] == "died":
            self._lost(
                run, f"the run's process on {run.node} {exit_text(value['exitcode'])} without a record"
            )
        else:
            self._store(run.queued, run.claim, value["data"])

    def _lost(self, run: _InFlight, reason: str) -> None:
        failures = [*run.failures, reason]
        if run.attempt <= self.retries and not self._cancelled:
            self._send(run.queued, run.claim, run.attempt + 1, failures)
            return
        tries = f"{run.attempt} attempt(s), --retries {self.retries}"
        message = f"{reason} ({tries})" if len(set(failures)) == 1 else f"{'; '.join(failures)} ({tries})"
        self._finish_failed(run.queued, run.claim, run.run_id, "WorkerDied", message, *self._times(run))

    def _give_up(self, run: _InFlight, reason: str) -> None:
        """Record a run in flight as failed, not retried (its task may still be running: it is cancelled)."""
        self._in_flight.pop(run.generator, None)
        if run.queued.future.done():  # its record is stored already
            return
        with contextlib.suppress(Exception):  # gone already, or Ray with it
            ray.cancel(run.generator, force=True)
        self._finish_failed(run.queued, run.claim, run.run_id, "WorkerDied", reason, *self._times(run))

    @staticmethod
    def _times(run: _InFlight) -> tuple[str, float]:
        """When the run's last attempt started and how long it went on (nothing for one never started)."""
        if not run.started_at:
            return utc_now(), 0.0
        return run.started_at, time.monotonic() - run.started

    # -- records ---------------------------------------------------------------------------------------

    def _store(self, queued: Queued, claim: Claim, data: dict[str, Any]) -> None:
        """Write a run's record under its claim and resolve its future with what was stored."""
        try:
            with claim:  # as stored: the key's record, or a failed attempt kept beside an `ok` one
                record = Record(write_safely(self.store, data))
        except Exception as err:  # a store error must not kill the pump
            queued.future.set_exception(err)
            return
        self._settle(queued.future, record)

    def _finish_failed(
        self,
        queued: Queued,
        claim: Claim,
        run_id: str,
        kind: str,
        message: str,
        started_at: str,
        elapsed: float,
    ) -> None:
        error = {"type": kind, "message": message, "traceback": ""}
        data = build_record(
            queued.spec, run_id, "failed", {}, error, started_at, elapsed, threads=queued.spec.threads
        )
        self._store(queued, claim, data)

    def _current(self, key: str) -> Record | None:
        try:
            return self.store.read(key)
        except InvalidRecordError:
            return None

    @staticmethod
    def _settle(future: Future[Record], record: Record) -> None:
        if not future.done():
            future.set_result(record)

    def _fail_pending(self, err: Exception) -> None:
        for queued in self._pending:
            if not queued.future.done():
                queued.future.set_exception(err)
        self._pending.clear()

    # -- the cluster -----------------------------------------------------------------------------------

    def _refresh_cluster(self) -> None:
        """The runs in flight are capped at `workers`, else at the cluster's CPUs, asked again now and then
        (nodes come and go); the nodes' sizes tell which requests can ever be met."""
        now = time.monotonic()
        if now - self._cluster_checked < CLUSTER_REFRESH_S:
            return
        self._cluster_checked = now
        self._nodes = live_nodes()
        cpus = sum(node.get("CPU", 0.0) for node in self._nodes)
        self._capacity = self.workers or max(1, int(cpus))

    def _infeasible(self, spec: RunSpec) -> str | None:
        """Why no node of the cluster can hold a run of `spec`, or None when one can."""
        need = request_of(spec)
        if not self._nodes or any(runs_per_node(node, need) for node in self._nodes):
            return None  # a node holds it, or nothing is known about the cluster: Ray decides
        sizes = ", ".join(
            f"{n.get('CPU', 0):g} CPU / {n.get('GPU', 0):g} GPU / {n.get('memory', 0) / 2**30:.0f} GB"
            for n in self._nodes
        )
        return (
            f"no node of the Ray cluster has {need.cpus:g} CPU(s), {need.gpus} GPU(s) and "
            f"{need.memory_bytes / 2**30:g} GB of memory for {spec.task.name} at scale {spec.scale} "
            f"(nodes: {sizes})"
        )


def connect(address: str | None, log_to_driver: bool = True) -> None:
    """Join this process to the cluster at `address` (see RayExecutor), failing at once where nothing
    answers at a `HOST:PORT` address."""
    check_reachable(address)
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPUS_WARNING", "1")
    ray.init(address=address, include_dashboard=False, logging_level="warning", log_to_driver=log_to_driver)


def live_nodes() -> list[dict[str, float]]:
    """The resources of each live node of the connected cluster (Ray's names: CPU, GPU, memory)."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def connection_failure(err: Exception, where: str) -> UserError:
    """The one-line error for a cluster that could not be joined, with a hint where it may want a token."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "Failed to connect" in first and not os.environ.get("RAY_AUTH_MODE"):
        first += " (a cluster that wants a token needs RAY_AUTH_MODE=token and its token: see the README)"
    return UserError(f"--executor ray: cannot connect to the Ray cluster at {where}: {first}")


def check_reachable(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """ConnectionError, at once, when a `HOST:PORT` address takes no connections: Ray itself goes on
    retrying such an address for many minutes without a word."""
    found = re.fullmatch(r"\[?([^\[\]/]+?)\]?:(\d+)", address or "")
    if found is None:  # None, "auto", "local", ray://...: Ray's own lookup says what is wrong
        return
    host, port = found.group(1), int(found.group(2))
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as err:
        raise ConnectionError(f"nothing answers at {host}:{port} ({err.strerror or err})") from None


def _forwarded_env() -> dict[str, str]:
    """The driver's settings the runs need (plugins, hub caches, what samples to keep). Not its
    CUDA_VISIBLE_DEVICES: a node's GPUs are Ray's to give out."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith(FORWARDED_ENV_PREFIXES) and k != "CUDA_VISIBLE_DEVICES"
    }


def _first_lines(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"
