"""The order a board's runs start in, and how long the board should take.

Shared artifacts (a teacher, a fine-tuned backbone, a converted model) are built once: for each artifact
key the runs declare (`Task.artifact_keys`) one run that needs it is its builder, and every other run
that needs it is held back until the builder has ended, instead of building it beside it or waiting on
its lock with a worker held. The builder is the shortest of those runs (board order on ties): the others
wait for its whole run, so the less else it does, the sooner they start. Builders come first in the plan,
so the runs they hold back are freed early; then the longest expected runs first (longest-processing-time
list scheduling: the short runs fill the gaps at the end, within 4/3 of the best wall time on identical
workers).

A run's expected time is the median wall time of the earlier `ok` records of its task, method and scale
in the results folder, else its task's estimate (`Task.resources_at(scale).expected_s`). `simulate`
replays the plan on N workers the way the runner executes it (a freed worker takes the first run in plan
order whose builders have ended) and gives the expected wall time: what `--dry-run` and the ETA show.
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.artifacts import MARKER, threads_suffix
from harness.leaderboard import PlannedRun
from harness.spec import RunSpec
from harness.store import ResultStore

# (task name, method name, scale): what a run's expected time is looked up by.
Kind = tuple[str, str, str]


@dataclass(frozen=True)
class Step:
    """A planned run with what the planner knows of it."""

    run: PlannedRun
    expected_s: float
    from_records: bool  # the expected time is the median of earlier records, not the task's estimate
    builds: tuple[str, ...] = ()  # artifacts (kind/key) this run builds: it is the first to need them
    waits_for: tuple[str, ...] = ()  # artifacts other runs of the plan build: it starts after they end


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    # artifact key -> the index (in `steps`) of the run that builds it
    builders: dict[str, int]

    def total_s(self) -> float:
        return sum(s.expected_s for s in self.steps)

    def blockers(self, index: int) -> set[int]:
        """The indices of the builders step `index` waits for."""
        return {self.builders[key] for key in self.steps[index].waits_for}

    def wall_s(self, workers: int) -> float:
        return simulate(self, workers)


def plan_runs(todo: list[PlannedRun], store: ResultStore) -> Plan:
    """The runs to do, ordered: builders first (those a builder waits for before it), then longest first."""
    durations = expected_times(store, {kind_of(r.spec) for r in todo})
    needs = [_artifact_keys(r.spec, store.artifacts_dir) for r in todo]
    expected: list[tuple[float, bool]] = []
    for run in todo:
        median = durations.get(kind_of(run.spec))
        expected.append((median, True) if median is not None else (_estimate(run.spec), False))
    by_length = sorted(range(len(todo)), key=lambda i: -expected[i][0])  # stable: the board's order on ties
    by_shortness = sorted(range(len(todo)), key=lambda i: expected[i][0])
    builder: dict[str, int] = {}
    for i in by_shortness:
        for key in needs[i]:
            builder.setdefault(key, i)
    # A builder that waits for another builder's artifact starts after it: order builders by that depth.
    depth: dict[int, int] = {}
    for i in by_shortness:  # a run's builders come before it in this order
        waits = [builder[k] for k in needs[i] if builder[k] != i]
        if any(builder[k] == i for k in needs[i]):
            depth[i] = 1 + max((depth[b] for b in waits), default=-1)
    builders_first = sorted(depth, key=lambda i: (depth[i], -expected[i][0]))
    order = builders_first + [i for i in by_length if i not in depth]
    position = {old: new for new, old in enumerate(order)}
    steps = tuple(
        Step(
            todo[i],
            expected[i][0],
            expected[i][1],
            tuple(k for k in needs[i] if builder[k] == i),
            tuple(k for k in needs[i] if builder[k] != i),
        )
        for i in order
    )
    return Plan(steps, {key: position[i] for key, i in builder.items()})


def kind_of(spec: RunSpec) -> Kind:
    return spec.task.name, spec.method.name, spec.scale


def expected_times(store: ResultStore, kinds: Iterable[Kind]) -> dict[Kind, float]:
    """Median wall seconds of the stored `ok` records of each kind asked for (kinds without one left out).
    Records are read as plain JSON, unvalidated: an estimate needs no checksum, and a board's store can
    hold thousands."""
    wanted = set(kinds)
    seconds: dict[Kind, list[float]] = defaultdict(list)
    if wanted and store.runs_dir.exists():
        for path in store.runs_dir.glob("*/*.json"):
            if "." in path.stem:  # a kept failed attempt or a rejected file
                continue
            try:
                data = json.loads(path.read_bytes())
                spec = data["spec"]
                kind = (spec["task"]["name"], spec["method"]["name"], spec["scale"])
                wall = data["wall_seconds"]
            except (OSError, ValueError, KeyError, TypeError, RecursionError):
                continue
            if not all(isinstance(part, str) for part in kind):  # a damaged record: no estimate from it
                continue
            usable = isinstance(wall, int | float) and math.isfinite(wall) and wall >= 0  # 1e999 reads as inf
            if kind in wanted and data.get("status") == "ok" and usable:
                seconds[kind].append(float(wall))
    return {kind: statistics.median(values) for kind, values in seconds.items()}


def simulate(plan: Plan, workers: int, left: dict[int, float] | None = None) -> float:
    """Expected wall time of `plan` on `workers` identical workers: a freed worker takes the first run in
    plan order whose builders have ended (what the runner and the executors do). With `left` (step ->
    seconds it still needs), only those steps, the others taken as ended: the ETA of a board under way."""
    workers = max(1, workers)
    seconds = left if left is not None else {i: s.expected_s for i, s in enumerate(plan.steps)}
    blocking = {i: len(plan.blockers(i) & seconds.keys()) for i in seconds}
    held_by: dict[int, list[int]] = defaultdict(list)
    for i in seconds:
        for b in plan.blockers(i) & seconds.keys():
            held_by[b].append(i)
    ready = [i for i in seconds if blocking[i] == 0]  # a heap of plan positions
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []  # (end time, step)
    now = end = 0.0
    while ready or running:
        while ready and len(running) < workers:
            i = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[i], i))
        if not running:  # cannot happen: a builder precedes what it holds and never waits for it
            break
        now, finished = heapq.heappop(running)
        end = max(end, now)
        for i in held_by.get(finished, ()):
            blocking[i] -= 1
            if blocking[i] == 0:
                heapq.heappush(ready, i)
    return end


def _estimate(spec: RunSpec) -> float:
    from harness.registries import TASKS

    try:
        return TASKS.get(spec.task.name).resources_at(spec.scale).expected_s
    except Exception:  # a task that is gone: the default estimate
        from harness.components import Resources

        return Resources().expected_s


def _artifact_keys(spec: RunSpec, artifacts_dir: Path) -> tuple[str, ...]:
    """The artifacts the run needs that are not built yet. A task whose keys cannot be worked out (its data
    is missing: the run will say so) declares none: its runs then build for themselves, as before."""
    from harness.registries import METHODS, TASKS

    try:
        task = TASKS.get(spec.task.name)(**spec.task.params_dict())  # built as the worker builds them
        method = METHODS.get(spec.method.name)(**spec.method.params_dict())
        keys = task.artifact_keys(method, spec.seed, spec.scale)
    except Exception:
        return ()
    keys = [k + threads_suffix(spec.threads) for k in keys]  # where the run's cache keeps them
    return tuple(k for k in dict.fromkeys(keys) if not (artifacts_dir / k / MARKER).exists())


def print_schedule(plan: Plan, workers: int, console: Console, rows: int = 2000) -> None:
    """`--dry-run`'s view of the plan: the runs in the order they start, each with its expected time and
    the artifacts it builds or waits for, then the total and the expected wall time on `workers`."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"planned order: {len(plan.steps)} run(s), artifact builders first, then longest first"
    )
    for col in ("#", "task", "method", "seed", "expected", "from", "artifacts"):
        table.add_column(col, justify="right" if col in ("#", "seed", "expected") else "left")
    for position, step in enumerate(plan.steps[:rows], start=1):
        artifacts = [f"builds {_kinds(step.builds)}"] if step.builds else []
        artifacts += [f"waits for {_kinds(step.waits_for)}"] if step.waits_for else []
        table.add_row(
            str(position),
            escape(step.run.task),
            escape(step.run.method),
            str(step.run.spec.seed),
            duration(step.expected_s),
            "records" if step.from_records else "estimate",
            escape("; ".join(artifacts)) or "—",
        )
    console.print(table)
    if len(plan.steps) > rows:
        console.print(f"(the first {rows} of {len(plan.steps)} runs are listed)")
    measured = sum(s.from_records for s in plan.steps)
    console.print(
        f"expected: {duration(plan.total_s())} of run time in all ({measured} of {len(plan.steps)} from "
        f"earlier records, the rest from the tasks' estimates); wall time {duration(plan.wall_s(workers))} "
        f"on {workers} worker(s)",
        highlight=False,
        soft_wrap=True,
    )


def duration(seconds: float) -> str:
    """Seconds as the progress display shows them: 42.0 s, 3:05, 1:02:09."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _kinds(keys: tuple[str, ...]) -> str:
    return ", ".join(dict.fromkeys(k.split("/")[0] for k in keys))
