"""Running a plan: skip what the store already holds, execute the rest, show progress, survive Ctrl-C.

A failed or timed-out attempt at a run that has an `ok` record leaves the `ok` record in place (the
store keeps the attempt beside it): the board goes on showing the `ok` result, and the failure is
reported, counted and exits 1 as any other.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.errors import UserError
from harness.executors import Executor
from harness.leaderboard import PlannedRun
from harness.store import InvalidRecordError, Record, ResultStore


class RerunPolicy(StrEnum):
    NEVER = "never"  # any stored record, ok or not, is final
    FAILED = "failed"  # failed and timed-out runs are redone
    ALWAYS = "always"  # everything is redone


@dataclass
class Outcome:
    planned: int
    cached: int
    records: dict[str, Record] = field(default_factory=dict)
    failed: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False


def split_plan(
    plan: list[PlannedRun], store: ResultStore, rerun: RerunPolicy
) -> tuple[list[PlannedRun], dict[str, Record], list[str]]:
    """The runs to execute, the stored records that stand, and a message per invalid record."""
    found, problems = store.read_many([r.spec.key for r in plan])
    keep = {}
    for key, record in found.items():
        if rerun == RerunPolicy.NEVER or (rerun == RerunPolicy.FAILED and record.status == "ok"):
            keep[key] = record
    todo = list({r.spec.key: r for r in plan if r.spec.key not in keep}.values())
    return todo, keep, problems


def execute(
    plan: list[PlannedRun],
    store: ResultStore,
    make_executor: Callable[[], Executor],
    rerun: RerunPolicy,
    console: Console,
    show_progress: bool = True,
) -> Outcome:
    # Versions first, then records: a record another process stores after this look changes its key's
    # version, so the worker sees it under the claim and returns that record instead of running again.
    versions = {r.spec.key: store.version(r.spec.key) for r in plan}
    todo, records, problems = split_plan(plan, store, rerun)
    outcome = Outcome(planned=len(plan), cached=len(records), records=dict(records), problems=problems)
    for message in problems:
        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if not todo:
        _collect_failures(outcome)
        return outcome
    executor = make_executor()
    # Without a live display (--no-progress, or output to a file as in CI) each finished run is one line.
    show_lines = not show_progress or not console.is_terminal
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("running {task.fields[running]}{task.fields[elsewhere]}"),
        TextColumn("[red]failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=show_lines,
        transient=False,
    )
    futures = {executor.submit(run.spec, versions[run.spec.key]): run for run in todo}
    try:
        with progress:
            bar = progress.add_task(
                f"runs ({outcome.cached} cached)", total=len(todo), running=0, elsewhere="", failed=0
            )
            pending = set(futures)
            finished = 0
            while pending:
                done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    run, record = futures[future], future.result()
                    _settle(record, run, store, outcome, progress.console)
                    if show_lines:
                        finished += 1
                        line = finished_line(record, run, finished, len(todo))
                        console.print(escape(line), highlight=False, soft_wrap=True)
                waiting = executor.waiting()
                progress.update(
                    bar,
                    completed=len(futures) - len(pending),
                    running=executor.running(),
                    elsewhere=f" (+{waiting} in another process)" if waiting else "",
                    failed=len(outcome.failed),
                )
        executor.shutdown()
    except KeyboardInterrupt:
        executor.shutdown(cancel=True)
        outcome.interrupted = True
    _collect_failures(outcome)
    return outcome


def _settle(record: Record, run: PlannedRun, store: ResultStore, outcome: Outcome, console: Console) -> None:
    """Take a finished run's record into the outcome, with what the user should hear about it."""
    label = run.spec.label()
    for warning in record.warnings:
        console.print(
            f"[yellow]warning:[/] {escape(label)}: {escape(warning)}", highlight=False, soft_wrap=True
        )
    outcome.records[record.key] = record
    if record.status == "ok":
        return
    outcome.failed.append(record)
    kept = ""
    try:
        shown = store.read(record.key)
    except InvalidRecordError:
        shown = None
    if shown is not None and shown.status == "ok" and shown.data.get("run_id") != record.data.get("run_id"):
        outcome.records[record.key] = shown
        kept = (
            f" (the earlier ok record is kept and shown; this attempt is in {store.failed_path(record.key)})"
        )
    console.print(
        f"[red]{record.status}:[/] {escape(label)}: {escape(record.reason + kept)}",
        highlight=False,
        soft_wrap=True,
    )


def finished_line(record: Record, run: PlannedRun, done: int, total: int) -> str:
    """One plain line for a finished run: task, method, seed, status, primary metric, seconds."""
    from harness.registries import TASKS

    status = record.status + (" (degenerate)" if record.degenerate else "")
    try:
        metric = TASKS.get(run.spec.task.name).primary_metric
    except UserError:  # a task that vanished since planning: the line goes without its metric
        metric = ""
    value = record.metric(metric) if metric else None
    shown = f"{metric} {value:.4f}" if value is not None else f"{metric or 'metric'} —"
    seconds = record.data.get("wall_seconds")
    took = f"{seconds:.1f} s" if isinstance(seconds, int | float) else "— s"
    return f"[{done}/{total}] {run.task} × {run.method} seed {run.spec.seed}: {status}, {shown}, {took}"


def _collect_failures(outcome: Outcome) -> None:
    seen = {r.key for r in outcome.failed}
    outcome.failed += [r for r in outcome.records.values() if r.status != "ok" and r.key not in seen]
