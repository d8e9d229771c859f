"""Running a plan: skip what the store already holds, execute the rest, show progress, survive Ctrl-C.

The rest is submitted in the planner's order (harness/planner.py: artifact builders first, then the
longest expected runs). A run that needs an artifact another run of the plan builds is held back until
that builder has ended, then submitted; after a failed builder it is submitted all the same and builds
the artifact itself. Nothing here depends on the executor. The ETA is the plan's expected wall time of
what is left, replayed on the executor's workers.

A failed or timed-out attempt at a run that has an `ok` record leaves the `ok` record in place (the
store keeps the attempt beside it): the board goes on showing the `ok` result, and the failure is
reported, counted and exits 1 as any other.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from harness.errors import UserError
from harness.executors import Executor
from harness.leaderboard import PlannedRun
from harness.planner import Plan, duration, plan_runs, simulate
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
    schedule = plan_runs(todo, store)
    executor = make_executor()
    # Without a live display (--no-progress, or output to a file as in CI) each finished run is one line.
    show_lines = not show_progress or not console.is_terminal
    progress = _BoardProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("running {task.fields[running]}{task.fields[elsewhere]}{task.fields[held]}"),
        TextColumn("[red]failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        console=console,
        disable=show_lines,
        transient=False,
        # Each redraw costs ~1.6 ms of CPU here: at rich's default 10 a second that took 1.7% of a core
        # from the runs beside it, at 2 a second 0.4%; the clock shows whole seconds.
        refresh_per_second=2,
    )
    state = _State(schedule)
    labels = {step.run.spec.key: step.run.spec.label() for step in schedule.steps}
    futures: dict[cf.Future[Record], int] = {}

    def submit(index: int) -> cf.Future[Record]:
        spec = schedule.steps[index].run.spec
        future = executor.submit_ranked(spec, versions[spec.key], index)
        futures[future] = index
        return future

    try:
        for index in state.ready_at_start():
            submit(index)
        with progress:
            bar = progress.add_task(
                f"runs ({outcome.cached} cached)",
                total=len(todo),
                running=0,
                elsewhere="",
                held="",
                failed=0,
                eta=duration(state.eta(0, executor.capacity())),
            )
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    index = futures[future]
                    run, record = schedule.steps[index].run, future.result()
                    _settle(record, run, store, outcome, progress.console)
                    pending.update(submit(i) for i in state.finish(index))  # builders release their runs
                    if show_lines:
                        line = finished_line(record, run, state.finished, len(todo))
                        eta = duration(state.eta(executor.running(), executor.capacity()))
                        line += f" ({len(outcome.failed)} failed, ETA {eta})"
                        console.print(escape(line), highlight=False, soft_wrap=True)
                waiting, running = executor.waiting(), executor.running()
                progress.update(
                    bar,
                    completed=state.finished,
                    running=running,
                    elsewhere=f" (+{waiting} in another process)" if waiting else "",
                    held=f", {len(state.held)} wait for an artifact" if state.held else "",
                    failed=len(outcome.failed),
                    eta=duration(state.eta(running, executor.capacity())),
                )
                progress.nodes = [(labels.get(k, k), node) for k, node in executor.running_nodes().items()]
        executor.shutdown()
    except KeyboardInterrupt:
        executor.shutdown(cancel=True)
        outcome.interrupted = True
    _collect_failures(outcome)
    return outcome


class _BoardProgress(Progress):
    """The progress bar, and under it the node each running run is on when the executor has several."""

    shown_nodes = 12

    def __init__(self, *columns: Any, **options: Any) -> None:
        self.nodes: list[tuple[str, str]] = []  # (run label, node) of each running run
        super().__init__(*columns, **options)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for label, node in sorted(self.nodes)[: self.shown_nodes]:
            yield Text(f"  {label} on {node}", overflow="ellipsis", no_wrap=True)
        if len(self.nodes) > self.shown_nodes:
            yield Text(f"  and {len(self.nodes) - self.shown_nodes} more")


class _State:
    """Which planned runs are held back for a builder, which have finished, and the ETA of the rest."""

    def __init__(self, schedule: Plan) -> None:
        self.schedule = schedule
        count = len(schedule.steps)
        self.blockers = {i: schedule.blockers(i) for i in range(count)}
        self.holds: dict[int, list[int]] = defaultdict(list)  # builder -> the runs it holds back
        for i, builders in self.blockers.items():
            for b in builders:
                self.holds[b].append(i)
        self.held = {i for i, builders in self.blockers.items() if builders}
        self.unfinished = set(range(count))
        self.started: dict[int, float] = {}  # when a run was first taken to be running
        self.finished = 0
        self._end: float | None = None  # the expected end, monotonic clock
        self._running = -1

    def ready_at_start(self) -> list[int]:
        return [i for i in range(len(self.schedule.steps)) if i not in self.held]

    def finish(self, index: int) -> list[int]:
        """Mark a run ended, whatever its status; the held runs it was the last builder of, to submit now
        (after a failed builder too: they build the artifact themselves)."""
        self.unfinished.discard(index)
        self.started.pop(index, None)
        self.finished += 1
        self._end = None
        freed = []
        for i in self.holds.pop(index, ()):
            self.blockers[i].discard(index)
            if not self.blockers[i] and i in self.held:
                self.held.discard(i)
                freed.append(i)
        return freed

    def eta(self, running: int, capacity: int | None) -> float:
        """Seconds the rest should take: the plan replayed on the executor's workers, where the runs of
        lowest rank among those submitted are taken to be the ones running, since the last of them began."""
        now = time.monotonic()
        if self._end is None or running != self._running:
            submitted = sorted(i for i in self.unfinished if i not in self.held)
            taken = set(submitted[:running])
            for i in taken - self.started.keys():
                self.started[i] = now
            for i in self.started.keys() - taken:
                del self.started[i]
            left = {
                i: max(0.0, self.schedule.steps[i].expected_s - (now - self.started.get(i, now)))
                for i in self.unfinished
            }
            workers = capacity or max(running, 1)
            self._end, self._running = now + simulate(self.schedule, workers, left), running
        return max(0.0, self._end - now)


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
