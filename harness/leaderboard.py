"""Leaderboard definitions: a YAML file naming tasks, methods, seeds and a scale, expanded into run specs."""

from __future__ import annotations

import difflib
import math
import re
import reprlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harness.components import SCALES, Task
from harness.errors import UserError
from harness.registries import METHODS, TASKS
from harness.registry import first_line
from harness.spec import RunSpec, make_spec

ALLOWED_KEYS = {
    "name",
    "description",
    "scale",
    "seeds",
    "tasks",
    "methods",
    "families",
    "timeout_s",
    "builtin_only",
}
# Seeds feed numpy, scikit-learn (below 2**32) and torch; tasks derive a few more by small offsets.
MAX_SEED = 2**31 - 1
MAX_SEEDS = 1000  # a leaderboard cell averages over seeds: more than this is a typo, not a study
MAX_TIMEOUT_S = 30 * 86400.0
# Leaderboard names become folder names (baselines/<board>/); nothing that could leave a folder.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Labels are shown in tables (no markup brackets) and selected with --tasks a,b (no commas).
LABEL = re.compile(r"[^\[\],\x00-\x1f\x7f]{0,100}")
# A parameter value is settings, not data: deeper or larger than this is a YAML alias gone wrong.
MAX_PARAM_DEPTH = 32
MAX_PARAM_VALUES = 100_000


@dataclass(frozen=True)
class Entry:
    """A task or method as a leaderboard names it: registered name, parameter overrides, display label."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    family: str = ""  # the `families:` entry that brought it in, empty when the board names it

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
    builtin_only: bool = False

    def plan(
        self,
        tasks: list[str] | None = None,
        methods: list[str] | None = None,
        seeds: list[int] | None = None,
        threads: int = 1,
    ) -> list[PlannedRun]:
        """Every compatible (task, method, seed) run, optionally narrowed to the given labels and seeds,
        each computed with `threads` torch/BLAS threads (part of the key, see RunSpec.threads)."""
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
                    spec = make_spec(
                        task_cls, method_cls, seed, self.scale, t.params, m.params, where, threads
                    )
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

    def plugins(self) -> list[str]:
        """One line per task or method of this board that comes from a plugin, saying how it joined."""
        out = []
        for kind, entries, registry in (("task", self.tasks, TASKS), ("method", self.methods, METHODS)):
            for e in entries:
                if not registry.is_builtin(e.name):
                    how = (
                        f"joined through families: [{e.family}] (`builtin_only: true` keeps plugins out)"
                        if e.family
                        else "named by the board"
                    )
                    out.append(f"{kind} '{e.shown}' comes from a plugin ({registry.origin(e.name)}), {how}")
        return out

    def check_metric(self, metric: str, plan: list[PlannedRun]) -> None:
        """UserError unless every task of `plan` declares `metric` (with close matches when none does)."""
        task_labels = list(dict.fromkeys(r.task for r in plan))
        lacking = [t for t in task_labels if metric not in {m.name for m in self.task_class(t).metrics}]
        if not lacking:
            return
        known = sorted({m.name for t in task_labels for m in self.task_class(t).metrics})
        close = difflib.get_close_matches(metric, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        if len(lacking) == len(task_labels):
            raise UserError(
                f"leaderboard '{self.name}': no task reports metric '{metric}'{hint} (metrics: "
                f"{', '.join(known)})"
            )
        raise UserError(
            f"leaderboard '{self.name}': metric '{metric}' is not reported by task(s) "
            f"{', '.join(lacking)}; narrow the board with --tasks"
        )

    def primary_metric(self, task_label: str) -> str:
        return self.task_class(task_label).primary_metric

    def task_class(self, task_label: str) -> type[Task]:
        entry = next(t for t in self.tasks if t.shown == task_label)
        return TASKS.get(entry.name)


def leaderboards_dir() -> Path:
    return Path(str(resources.files("leaderboards")))


def available() -> list[str]:
    return sorted(p.stem for p in leaderboards_dir().glob("*.yaml"))


def check_inputs(plan: list[PlannedRun], source: str = "") -> None:
    """Each distinct task of `plan` checks its own inputs (Task.check_inputs): a missing file or column
    is an error now, before any run starts, not one failed run per seed and method later. Every task is
    checked, and the error names each one that failed."""
    seen: set[Any] = set()
    problems: list[str] = []
    for run in plan:
        ref = run.spec.task
        if ref in seen:
            continue
        seen.add(ref)
        try:
            TASKS.get(ref.name)(**ref.params_dict()).check_inputs()
        except UserError as err:
            problems.append(f"task '{run.task}': {err}")
    if problems:
        where = f"{source}: " if source else ""
        raise UserError(where + "; ".join(problems))


def load(name_or_path: str) -> Leaderboard:
    """A leaderboard by name (shipped with the package) or by path to a YAML file."""
    path = Path(name_or_path)
    looks_like_path = path.suffix in (".yaml", ".yml") or "/" in name_or_path or "\\" in name_or_path
    shipped = leaderboards_dir() / f"{name_or_path}.yaml"
    if not looks_like_path and SAFE_NAME.fullmatch(name_or_path) and shipped.is_file():
        path = shipped
    elif not (looks_like_path or path.exists()):
        close = difflib.get_close_matches(name_or_path, available(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UserError(
            f"unknown leaderboard '{name_or_path}'{hint} (shipped: {', '.join(available())}; "
            "or give a path to a .yaml file)"
        )
    return parse(read_yaml(path, "leaderboard"), str(path))


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in `path`; a missing, unreadable, binary or malformed file is a UserError."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a {what} YAML file")
    if not path.exists():
        raise UserError(f"{what} file {path} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path}: not UTF-8 text (byte {err.start} is {raw[err.start]:#04x}); expected a {what} YAML file"
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(err, "problem", None) or first_line(err)
        raise UserError(f"{path}:{at} malformed YAML ({problem})") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as err:  # e.g. a date 2024-13-45
        raise UserError(f"{path}: malformed YAML ({type(err).__name__}: {first_line(err)})") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key written twice in one mapping is an error: PyYAML keeps the last
    one silently, so a board with two `methods:` lists would run only the second. A mapping's keys are
    checked as written, before PyYAML merges `<<: *anchor` keys into it (it does that in place, to the
    anchored mapping too, so a later look would take a merged key overridden on purpose for a repeat)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._check_unique_keys(node)
        super().flatten_mapping(node)

    def _check_unique_keys(self, node: yaml.MappingNode) -> None:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden, on purpose
                continue
            key = self.construct_object(key_node)
            try:
                repeated = key in first_line
            except TypeError:  # an unhashable key: the base constructor says so
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {short_repr(key)} appears twice (first on line {first_line[key]})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1


def parse(data: Any, source: str) -> Leaderboard:
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping with keys name, scale, seeds, tasks, methods")
    unknown = sorted(str(k) for k in set(data) - ALLOWED_KEYS)
    if unknown:
        raise UserError(
            f"{source}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(ALLOWED_KEYS))})"
        )
    name = data.get("name")
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise UserError(
            f"{source}: field 'name' must be 1 to 100 letters, digits, '.', '_' or '-' starting with a "
            f"letter or digit, got {short_repr(name)}"
        )
    scale = data.get("scale", "cpu")
    if not isinstance(scale, str) or scale not in SCALES:
        raise UserError(
            f"{source}: field 'scale' is {short_repr(scale)}, expected one of {', '.join(SCALES)}"
        )
    seeds = check_seeds(data.get("seeds", [0]), f"{source}: field 'seeds'")
    timeout = data.get("timeout_s")
    if timeout is not None:
        timeout = check_timeout(timeout, f"{source}: field 'timeout_s'")
    builtin_only = data.get("builtin_only", False)
    if not isinstance(builtin_only, bool):
        raise UserError(
            f"{source}: field 'builtin_only' must be true or false, got {short_repr(builtin_only)}"
        )
    description = data.get("description", "")
    if not isinstance(description, str | None):
        raise UserError(f"{source}: field 'description' must be text, got {short_repr(description)}")
    families = data.get("families", [])
    if not isinstance(families, list) or not all(isinstance(f, str) for f in families):
        raise UserError(
            f"{source}: field 'families' must be a list of family names, got {short_repr(families)}"
        )
    tasks = _entries(data.get("tasks", []), "tasks", source, TASKS, builtin_only)
    methods = _entries(data.get("methods", []), "methods", source, METHODS, builtin_only)
    for family in families:
        tasks += _family_tasks(family, scale, source, [t.name for t in tasks], builtin_only)
        methods += tuple(
            Entry(n, family=family)
            for n, cls in METHODS
            if family in cls.families()
            and n not in [m.name for m in methods]
            and (METHODS.is_builtin(n) or not builtin_only)
            and (scale == "paper" or not cls.paper_sized)
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
        description or "",
        scale,
        tuple(seeds),
        tasks,
        methods,
        timeout,
        source,
        builtin_only,
    )


def check_seeds(seeds: Any, where: str) -> list[int]:
    """A non-empty list of distinct integers in 0..MAX_SEED, at most MAX_SEEDS of them."""
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise UserError(f"{where} must be a non-empty list of integers, got {short_repr(seeds)}")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise UserError(f"{where}: seed {bad[0]} is outside 0..{MAX_SEED}")
    if len(seeds) > MAX_SEEDS:
        raise UserError(f"{where}: {len(seeds)} seeds, more than the {MAX_SEEDS} a leaderboard allows")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UserError(f"{where}: seed(s) {', '.join(map(str, repeated))} appear more than once")
    return seeds


def check_timeout(value: Any, where: str) -> float:
    """Seconds per run: a finite number above 0 and at most MAX_TIMEOUT_S."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_TIMEOUT_S
    ):
        raise UserError(
            f"{where} must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:.0f}, "
            f"got {short_repr(value)}"
        )
    return float(value)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 200
_REPR.maxlevel = 3


def short_repr(value: Any, limit: int = 60) -> str:
    """A bounded repr for error lines about a file's values: YAML aliases can make a value that refers to
    itself or repeats a list a billion times, and a plain repr of those recurses or never ends."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_plain(value: Any, where: str) -> None:
    """Parameter values must be plain data that a run key can hash: text, booleans, 64-bit integers,
    finite numbers, null, and lists or text-keyed mappings of those (no NaN, dates, sets or bytes), at
    most MAX_PARAM_DEPTH levels deep and MAX_PARAM_VALUES values in all (a YAML alias can make a value
    that contains itself, or that repeats one list a billion times in a few lines)."""
    _check_plain(value, where, 0, [MAX_PARAM_VALUES])


def _check_plain(value: Any, where: str, depth: int, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise UserError(
            f"{where}: more than {MAX_PARAM_VALUES} values in all (YAML aliases that repeat a list?)"
        )
    if depth > MAX_PARAM_DEPTH:
        raise UserError(
            f"{where}: nested more than {MAX_PARAM_DEPTH} levels deep (a YAML alias inside itself?)"
        )
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if abs(value) >= 2**63:
            raise UserError(f"{where}: integer {short_repr(value)} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UserError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", depth + 1, budget)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UserError(f"{where}: key {short_repr(key)} must be text")
            _check_plain(item, f"{where}.{key}", depth + 1, budget)
        return
    raise UserError(
        f"{where}: {short_repr(value)} is a {type(value).__name__}; expected text, a number, true/false, "
        "null, a list or a mapping"
    )


def _entries(raw: Any, field_name: str, source: str, registry: Any, builtin_only: bool) -> tuple[Entry, ...]:
    if not isinstance(raw, list):
        raise UserError(f"{source}: field '{field_name}' must be a list, got {short_repr(raw)}")
    out = []
    for i, item in enumerate(raw):
        where = f"{source}: {field_name}[{i}]"
        if isinstance(item, str):
            entry = Entry(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            extra = sorted(str(k) for k in set(item) - {"name", "params", "label"})
            if extra:
                raise UserError(f"{where}: unknown key(s) {', '.join(extra)} (allowed: name, params, label)")
            params = item.get("params")
            params = {} if params is None else params
            if not isinstance(params, dict):
                raise UserError(f"{where}: 'params' must be a mapping, got {short_repr(params)}")
            check_plain(params, f"{where}: params")
            label = item.get("label")
            label = "" if label is None else label
            if isinstance(label, bool) or not isinstance(label, str | int) or not LABEL.fullmatch(str(label)):
                raise UserError(
                    f"{where}: 'label' must be up to 100 printable characters without '[', ']' or ',', "
                    f"got {short_repr(label)}"
                )
            entry = Entry(item["name"], params, str(label))
        else:
            raise UserError(f"{where}: expected a name or a mapping with 'name' (and 'params', 'label')")
        try:
            registry.get(entry.name)
        except UserError as err:
            raise UserError(f"{where}: {err}") from None
        if builtin_only and not registry.is_builtin(entry.name):
            raise UserError(
                f"{where}: {registry.kind} '{entry.name}' is a plugin ({registry.origin(entry.name)}) and "
                "this leaderboard pins builtin_only: true"
            )
        out.append(entry)
    return tuple(out)


def _family_tasks(
    family: str, scale: str, source: str, already: list[str], builtin_only: bool
) -> tuple[Entry, ...]:
    """A family's tasks that run on their defaults alone (generic loaders need a path or id); tasks whose
    data comes from a hub join `paper`-scale boards only; plugins stay out of a builtin_only board."""
    found = [n for n, cls in TASKS if cls.family == family]
    if not found:
        known = sorted({cls.family for _, cls in TASKS} | {f for _, cls in METHODS for f in cls.families()})
        close = difflib.get_close_matches(family, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UserError(f"{source}: field 'families' names unknown family '{family}'{hint}")
    return tuple(
        Entry(name, family=family)
        for name in found
        if name not in already
        and (TASKS.is_builtin(name) or not builtin_only)
        and TASKS.get(name).runs_with_defaults(scale)
        and (TASKS.get(name).offline or scale == "paper")
    )


def _select(entries: tuple[Entry, ...], wanted: list[str] | None, kind: str, board: str) -> list[Entry]:
    if not wanted:
        return list(entries)
    labels = {e.shown: e for e in entries}
    out = []
    for label in dict.fromkeys(wanted):  # each once: a label twice would plan its runs twice
        if label not in labels:
            close = difflib.get_close_matches(label, labels, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UserError(f"leaderboard '{board}' has no {kind} '{label}'{hint}")
        out.append(labels[label])
    return out
