"""Executes one run spec inside its own process and writes its record.

Whatever happens inside the task or method (an exception, NaN metrics) ends as a record: status ok when
every declared metric is a finite number, failed otherwise, with the reason and traceback. What a task
keeps in `ctx.details` that is not JSON (NaN, an array, an object) is made JSON or dropped, with a warning
in the record; it never costs the run its metrics.

The worker claims its key before it runs (harness/store.py): when another process holds the claim it
exits with EXIT_CLAIMED, and when the stored record changed since the run was planned (another process
ran it meanwhile) with EXIT_SUPERSEDED, in both cases without running. A run whose task raises after
reusing a cached artifact that turns out damaged rebuilds that artifact and runs once more, with a warning.
An ok run's per-example table (`ctx.samples`) is written beside its record, before it (harness/samples.py).
"""

from __future__ import annotations

import functools
import math
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.artifacts import ArtifactCache
from harness.context import RunContext, json_safe, seed_everything
from harness.environment import environment
from harness.inputs import content_digest, local_path
from harness.registries import METHODS, TASKS
from harness.registry import PLUGIN_MODULES_ENV
from harness.spec import ComponentRef, RunSpec
from harness.store import RECORD_SCHEMA, InvalidRecordError, ResultStore, Version, record_checksum

EXIT_CLAIMED = 75  # another process holds the key's claim: nothing ran
EXIT_SUPERSEDED = 76  # another process stored the key's record after this run was planned: nothing ran


@dataclass(frozen=True)
class WorkerOptions:
    """What the parent hands each worker: where to write, which GPU, its environment. (Its thread count is
    the spec's: RunSpec.threads.)"""

    results_root: str
    gpu: str | None = None  # a CUDA_VISIBLE_DEVICES entry
    sys_path: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def process_main(
    spec_json: dict[str, Any],
    run_id: str,
    options: WorkerOptions,
    expected: Version | None = None,
    store: ResultStore | None = None,
) -> dict[str, Any]:
    """Entry point of a worker process: the parent owns Ctrl-C, so the worker ignores SIGINT. `expected`
    is the key's stored version when the run was planned; None runs whatever is stored. Returns the
    record as stored (in `store`, by default the options' results folder)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(options.env)
    if options.sys_path and list(options.sys_path) != sys.path:
        sys.path[:] = list(options.sys_path)
    if _WARMED_WITH is not None and plugin_settings() != _WARMED_WITH:
        TASKS.reset()
        METHODS.reset()
    if options.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = options.gpu
    store = store or ResultStore(options.results_root)
    spec = RunSpec.from_json(spec_json)
    claim = store.claim(spec.key)
    if claim is None:
        sys.exit(EXIT_CLAIMED)
    with claim:
        if expected is not None and store.version(spec.key) != expected:
            sys.exit(EXIT_SUPERSEDED)
        return write_safely(store, run_spec(spec, store, options, run_id))


def spare_main(conn: Any) -> None:
    """A worker started before its run is known (the executor's spare): it waits for the run, runs it as
    `process_main` does, and then sends its exit status and the record it stored, so the executor takes
    the run as finished when the record is stored instead of when this large process has been torn
    down, and need not read the record back. None: exit unused. The fsync of the record's folder comes
    after that message: the record is already whole on disk, only a power loss in between could undo
    its rename (and the run would be redone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rehearse()
    try:
        message = conn.recv()
    except (EOFError, OSError):  # the executor is gone
        return
    if message is None:
        return
    code, stored = 0, None
    store = ResultStore(message[2].results_root, defer_sync=True)
    try:
        stored = process_main(*message, store=store)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    conn.send((code, stored))
    store.sync()


def rehearse() -> None:
    """Steps every run takes, taken by a spare while it waits for its run: the memory they write is
    copied from the forkserver's (copy-on-write, about 5 us a page here) before the run's clock starts,
    which took 1.5-2.5 ms off a no-op run. Nothing of it reaches a run: the run seeds every generator
    itself before its task starts."""
    seed_everything(0)
    record_checksum({"schema": RECORD_SCHEMA, "metrics": {"m": {"value": 0.5}}, "ended_at": utc_now()})


def write_safely(store: ResultStore, record: dict[str, Any]) -> dict[str, Any]:
    """Store `record` and return it as stored; one the store refuses becomes a failed record saying why,
    metrics kept."""
    try:
        return store.put(record)[1]
    except (InvalidRecordError, TypeError, ValueError) as err:
        metrics = {
            k: {**v, "value": v["value"] if _finite(v["value"]) else None}
            for k, v in record["metrics"].items()
        }
        message = f"the record could not be stored: {err}"
        record = {k: v for k, v in record.items() if k != "samples"}  # a failed record keeps no table
        return store.put(
            {
                **record,
                "status": "failed",
                "metrics": json_safe(metrics, "metrics", [])[0],
                "details": {},
                "error": {
                    "type": type(err).__name__,
                    "message": message,
                    "traceback": traceback.format_exc(),
                },
            }
        )[1]


@functools.cache
def _thread_pools() -> Any:
    """threadpoolctl's view of the loaded BLAS/OpenMP pools (a library scan: done once, in the forkserver)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def plugin_settings() -> tuple[str, tuple[str, ...]]:
    """What decides which plugins the registries find: the plugin-module variable and the import path."""
    return os.environ.get(PLUGIN_MODULES_ENV, ""), tuple(sys.path)


_WARMED_WITH: tuple[str, tuple[str, ...]] | None = None
SYS_PATH_ENV = "LOGITBENCH_FORKSERVER_SYS_PATH"


def warm_up() -> None:
    """Fill the per-process caches every run needs (records, thread pools, registries, torch's generator),
    so that workers forked from this process inherit them instead of each paying for them."""
    global _WARMED_WITH
    environment()
    set_threads(1)  # the spec's default: workers inherit it and need not apply it again
    try:
        TASKS.load()
        METHODS.load()
    except Exception:  # a broken plugin is reported by the run that needs it, not here
        TASKS.reset()
        METHODS.reset()
    else:
        _WARMED_WITH = plugin_settings()
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(0)


def quiet_progress_bars() -> None:
    """No tqdm bars from inside a run (transformers' "Loading weights", the hub's downloads): they would
    interleave with the harness's own display and its one line per run. HF_HUB_DISABLE_PROGRESS_BARS=0
    in the environment keeps them."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] != "1":
        return
    if "transformers" in sys.modules:  # imported before the variable was set: tell it directly
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    elif "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()


_threads_set: int | None = None  # what set_threads last applied in this process (inherited by forks)


def set_threads(threads: int) -> None:
    """Threads per worker: oversubscribed cores made torch 11x slower here, so each worker gets its share.
    A count the process already has (set in the forkserver, inherited) is not applied again (0.6 ms)."""
    global _threads_set
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if threads == _threads_set:
        return
    pools = _thread_pools()
    if pools is not None:
        pools.limit(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    _threads_set = threads


def pick_device(gpu: str | None) -> str:
    if gpu is None:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_spec(spec: RunSpec, store: ResultStore, options: WorkerOptions, run_id: str) -> dict[str, Any]:
    """Run `spec` in this process and return its record (not yet written)."""
    started_at = utc_now()
    start, cpu_start = time.perf_counter(), time.process_time()
    status, metrics, error = "failed", {}, None
    device = "cpu"
    ctx: RunContext | None = None
    warnings: list[str] = []
    try:
        set_threads(spec.threads)
        quiet_progress_bars()
        device = pick_device(options.gpu)
        task_cls = TASKS.get(spec.task.name)
        method_cls = METHODS.get(spec.method.name)
        for ref, cls in ((spec.task, task_cls), (spec.method, method_cls)):
            if ref.version != cls.version:
                raise RuntimeError(
                    f"{ref.name} is version {cls.version} here, the spec asks for {ref.version}"
                )
            _check_inputs_unchanged(ref)
        artifacts = ArtifactCache(
            store.artifacts_dir, _input_paths(spec), warn=warnings.append, threads=spec.threads
        )

        def attempt() -> dict[str, float]:
            nonlocal ctx
            seed_everything(spec.seed)
            ctx = RunContext(spec.seed, device, spec.threads, artifacts, warnings=warnings)
            task = task_cls(**spec.task.params_dict())
            method = method_cls(**spec.method.params_dict())
            return task.run(method, ctx)

        try:
            values = attempt()
        except Exception:
            if not artifacts.discard_damaged():  # True when a reused artifact was damaged: rebuilt next
                raise
            values = attempt()
        metrics = _metric_entries(task_cls, values)
        bad = [name for name, entry in metrics.items() if not _finite(entry["value"])]
        if bad:
            shown = ", ".join(f"{b}={metrics[b]['value']}" for b in bad)
            raise FloatingPointError(f"metric(s) not finite: {shown}")
        status = "ok"
    except Exception as err:
        error = {"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}
        metrics = {k: {**v, "value": v["value"] if _finite(v["value"]) else None} for k, v in metrics.items()}
    details, problems = json_safe(ctx.details if ctx else {}, "details", [])
    if not isinstance(details, dict):
        problems.append(f"details is a {type(details).__name__}, not a mapping: dropped")
        details = {}
    warnings += problems
    samples = _keep_samples(store, spec.key, run_id, ctx, warnings) if status == "ok" else None
    return build_record(
        spec,
        run_id,
        status,
        metrics,
        error,
        started_at,
        time.perf_counter() - start,
        phases=ctx.phases if ctx else {},
        details=details,
        device=device,
        threads=spec.threads,
        warnings=warnings,
        samples=samples,
        cpu_seconds=time.process_time() - cpu_start,
    )


def _keep_samples(
    store: ResultStore, key: str, run_id: str, ctx: RunContext | None, warnings: list[str]
) -> dict[str, Any] | None:
    """Write an ok run's per-example table (before its record) and return the record's entry for it; a
    table that cannot be written is a warning, never a lost run. A failed run writes none, so an earlier
    ok run's table stays."""
    from harness.samples import keep, mode_from_env

    if ctx is None or ctx.sample_table is None:
        return None
    mode, problem = mode_from_env()
    if problem:
        warnings.append(problem)
    try:
        return keep(store, key, run_id, ctx.sample_table, mode)
    except OSError as err:
        warnings.append(f"per-example results not kept: {err.strerror or err}")
        return None


def _check_inputs_unchanged(ref: ComponentRef) -> None:
    """A local input edited after planning would be stored under the key of its old content: refuse."""
    params = ref.params_dict()
    for name, digest in ref.inputs:
        path = local_path(params.get(name))
        if path is None or content_digest(path) != digest:
            state = "is gone" if path is None else "has changed"
            raise RuntimeError(
                f"input '{name}' ({params.get(name)}) {state} since the run was planned; run again to "
                "plan it with its current content"
            )


def _input_paths(spec: RunSpec) -> dict[str, str]:
    """Each local input's path as the task was given it -> its content digest (for artifact keys)."""
    out = {}
    for ref in (spec.task, spec.method):
        params = ref.params_dict()
        out.update({params[name]: digest for name, digest in ref.inputs})
    return out


def build_record(
    spec: RunSpec,
    run_id: str,
    status: str,
    metrics: dict[str, Any],
    error: dict[str, str] | None,
    started_at: str,
    wall_seconds: float,
    phases: dict[str, float] | None = None,
    details: dict[str, Any] | None = None,
    device: str = "cpu",
    threads: int = 1,
    warnings: list[str] | None = None,
    samples: dict[str, Any] | None = None,
    cpu_seconds: float | None = None,
) -> dict[str, Any]:
    """A run's record. `cpu_seconds` is the CPU time of the run's process over the run, all its threads
    together (None where the run's process is gone): below `wall_seconds` x threads when the run waited,
    for its data or for a core that something else held."""
    record = {
        "schema": RECORD_SCHEMA,
        "key": spec.key,
        "run_id": run_id,
        "spec": spec.to_json(),
        "status": status,
        "metrics": metrics,
        "error": error,
        "phases": phases or {},
        "details": details or {},
        "warnings": warnings or [],
        "wall_seconds": wall_seconds,
        "cpu_seconds": cpu_seconds,
        "peak_memory_mb": _peak_memory_mb(),
        "device": device,
        "threads": threads,
        "environment": environment(),
        "started_at": started_at,
        "ended_at": utc_now(),
    }
    if samples is not None:  # where the run's per-example table is (harness/samples.py)
        record["samples"] = samples
    return record


def _metric_entries(task_cls: Any, values: dict[str, float]) -> dict[str, dict[str, Any]]:
    declared = {m.name: m for m in task_cls.metrics}
    missing = sorted(name for name, m in declared.items() if m.required and name not in values)
    if missing:
        raise KeyError(f"task returned no value for metric(s) {', '.join(missing)}")
    out = {}
    for name, value in values.items():
        metric = declared.get(name)
        higher = metric.higher_is_better if metric else True
        out[name] = {"value": float(value) if value is not None else None, "higher_is_better": higher}
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _peak_memory_mb() -> dict[str, float]:
    out = {"cpu_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.max_memory_allocated() / 2**20
    return out
