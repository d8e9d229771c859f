"""Leaderboard definitions: a YAML file naming tasks, methods, seeds and a scale, expanded into run specs."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harness.components import SCALES, Task
from harness.errors import UserError
from harness.registries import METHODS, TASKS
from harness.spec import RunSpec, make_spec

ALLOWED_KEYS = {"name", "description", "scale", "seeds", "tasks", "methods", "families", "timeout_s"}


@dataclass(frozen=True)
class Entry:
    """A task or method as a leaderboard names it: registered name, parameter overrides, display label."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def shown(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class PlannedRun:
    task: str  # the task's label in the leaderboard
    method: str
    spec: RunSpec


@dataclass(frozen=True)
class Leaderboard:
    name: str
    description: str
    scale: str
    seeds: tuple[int, ...]
    tasks: tuple[Entry, ...]
    methods: tuple[Entry, ...]
    timeout_s: float | None
    source: str

    def plan(
        self, tasks: list[str] | None = None, methods: list[str] | None = None, seeds: list[int] | None = None
    ) -> list[PlannedRun]:
        """Every compatible (task, method, seed) run, optionally narrowed to the given labels and seeds."""
        task_entries = _select(self.tasks, tasks, "task", self.name)
        method_entries = _select(self.methods, methods, "method", self.name)
        seed_list = list(self.seeds) if seeds is None else seeds
        runs: list[PlannedRun] = []
        for t in task_entries:
            task_cls = TASKS.get(t.name)
            for m in method_entries:
                method_cls = METHODS.get(m.name)
                if task_cls.incompatibility(method_cls):
                    continue
                where = f"{self.source}: task '{t.shown}', method '{m.shown}'"
                for seed in seed_list:
                    spec = make_spec(task_cls, method_cls, seed, self.scale, t.params, m.params, where)
                    runs.append(PlannedRun(t.shown, m.shown, spec))
        if not runs:
            raise UserError(
                f"{self.source}: no compatible (task, method) pair among the selection "
                "(`logitbench list matrix` shows which pairs run)"
            )
        # A method with no task to run on is an error when the user named it or the board lists it for
        # all its tasks; narrowing the tasks with --tasks just drops the methods of other families.
        for m in method_entries if (methods or not tasks) else []:
            if not any(r.method == m.shown for r in runs):
                reasons = {TASKS.get(t.name).incompatibility(METHODS.get(m.name)) for t in task_entries}
                raise UserError(
                    f"{self.source}: method '{m.shown}' runs on none of the selected tasks "
                    f"({'; '.join(sorted(r for r in reasons if r))})"
                )
        return runs

    def primary_metric(self, task_label: str) -> str:
        return self.task_class(task_label).primary_metric

    def task_class(self, task_label: str) -> type[Task]:
        entry = next(t for t in self.tasks if t.shown == task_label)
        return TASKS.get(entry.name)


def leaderboards_dir() -> Path:
    return Path(str(resources.files("leaderboards")))


def available() -> list[str]:
    return sorted(p.stem for p in leaderboards_dir().glob("*.yaml"))


def load(name_or_path: str) -> Leaderboard:
    """A leaderboard by name (shipped with the package) or by path to a YAML file."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = leaderboards_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            close = difflib.get_close_matches(name_or_path, available(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UserError(
                f"unknown leaderboard '{name_or_path}'{hint} (shipped: {', '.join(available())}; "
                "or give a path to a .yaml file)"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path}:{at}: malformed YAML ({problem})") from None
    return parse(data, str(path))


def parse(data: Any, source: str) -> Leaderboard:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with keys name, scale, seeds, tasks, methods")
    unknown = sorted(set(data) - ALLOWED_KEYS)
    if unknown:
        raise UserError(
            f"{source}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(ALLOWED_KEYS))})"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise UserError(f"{source}: field 'name' must be a non-empty string")
    scale = data.get("scale", "cpu")
    if scale not in SCALES:
        raise UserError(f"{source}: field 'scale' is {scale!r}, expected one of {', '.join(SCALES)}")
    seeds = data.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise UserError(f"{source}: field 'seeds' must be a non-empty list of integers, got {seeds!r}")
    timeout = data.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise UserError(f"{source}: field 'timeout_s' must be a positive number of seconds, got {timeout!r}")
    families = data.get("families", [])
    if not isinstance(families, list):
        raise UserError(f"{source}: field 'families' must be a list of family names")
    tasks = _entries(data.get("tasks", []), "tasks", source, TASKS)
    methods = _entries(data.get("methods", []), "methods", source, METHODS)
    for family in families:
        tasks += _family_tasks(family, scale, source, [t.name for t in tasks])
        methods += tuple(
            Entry(n) for n, cls in METHODS if family in cls.families() and n not in [m.name for m in methods]
        )
    if not tasks or not methods:
        raise UserError(
            f"{source}: a leaderboard needs at least one task and one method (fields 'tasks', "
            "'methods', or 'families')"
        )
    for kind, entries in (("task", tasks), ("method", methods)):
        labels = [e.shown for e in entries]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise UserError(
                f"{source}: {kind} label(s) {', '.join(duplicates)} appear twice; give each a 'label'"
            )
    return Leaderboard(
        name,
        str(data.get("description", "")),
        scale,
        tuple(seeds),
        tasks,
        methods,
        float(timeout) if timeout else None,
        source,
    )


def _entries(raw: Any, field_name: str, source: str, registry: Any) -> tuple[Entry, ...]:
    if not isinstance(raw, list):
        raise UserError(f"{source}: field '{field_name}' must be a list")
    out = []
    for i, item in enumerate(raw):
        where = f"{source}: {field_name}[{i}]"
        if isinstance(item, str):
            entry = Entry(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            extra = sorted(set(item) - {"name", "params", "label"})
            if extra:
                raise UserError(f"{where}: unknown key(s) {', '.join(extra)} (allowed: name, params, label)")
            params = item.get("params") or {}
            if not isinstance(params, dict):
                raise UserError(f"{where}: 'params' must be a mapping")
            entry = Entry(item["name"], params, str(item.get("label", "")))
        else:
            raise UserError(f"{where}: expected a name or a mapping with 'name' (and 'params', 'label')")
        try:
            registry.get(entry.name)
        except UserError as err:
            raise UserError(f"{where}: {err}") from None
        out.append(entry)
    return tuple(out)


def _family_tasks(family: str, scale: str, source: str, already: list[str]) -> tuple[Entry, ...]:
    """A family's tasks that run on their defaults alone (generic loaders need a path or id); tasks whose
    data comes from a hub join `paper`-scale boards only."""
    found = [n for n, cls in TASKS if cls.family == family]
    if not found:
        raise UserError(f"{source}: field 'families' names unknown family '{family}'")
    return tuple(
        Entry(name)
        for name in found
        if name not in already
        and TASKS.get(name).runs_with_defaults(scale)
        and (TASKS.get(name).offline or scale == "paper")
    )


def _select(entries: tuple[Entry, ...], wanted: list[str] | None, kind: str, board: str) -> list[Entry]:
    if not wanted:
        return list(entries)
    labels = {e.shown: e for e in entries}
    out = []
    for label in wanted:
        if label not in labels:
            close = difflib.get_close_matches(label, labels, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UserError(f"leaderboard '{board}' has no {kind} '{label}'{hint}")
        out.append(labels[label])
    return out
