"""The base classes every task and method derives from, and the validation of their parameters.

A task or method is a dataclass: its fields are its parameters, with the defaults the paper gives, so the
parameters are declared once, typed, and shown by `list`. `__init__` stores parameters only; whatever a
method learns lives in attributes ending in `_` (scikit-learn's convention).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.errors import UserError
from harness.figures import Figure

SCALES = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class Resources:
    """What one run of a task asks of the machine it runs on: the local executor gives a run that asks for
    a GPU a device of its own, and the Ray executor turns these into the task's resource request.
    `expected_s` is the planner's guess of a run's wall time when no earlier record of it exists."""

    cpus: float = 1.0
    gpus: int = 0
    memory_gb: float = 1.0
    expected_s: float = 60.0


@dataclass(frozen=True)
class Metric:
    """A metric a task reports. `tolerance` is the absolute change `compare` treats as noise; `gate=False`
    marks machine-dependent figures (timings) that are shown but never fail a comparison. `required=False`
    marks a metric only some settings report (accuracy on gold position E needs five options)."""

    name: str
    higher_is_better: bool = True
    tolerance: float = 0.0
    gate: bool = True
    description: str = ""
    required: bool = True


class Component:
    """Common to tasks and methods: a registered name, a version, and typed parameters."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    # Parameters that name a local file or folder the run reads: their content, not their path, enters the
    # run's key (harness/inputs.py). Declarations of a class and of its bases and mixins add up.
    local_inputs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def local_input_params(cls) -> tuple[str, ...]:
        declared = sorted({p for k in cls.__mro__ for p in k.__dict__.get("local_inputs", ())})
        if not declared:
            return ()
        unknown = [p for p in declared if p not in cls.param_types()]
        if unknown:
            raise UserError(
                f"{cls.kind()} '{cls.name}' declares local input(s) {', '.join(unknown)}, "
                "which are not among its parameters"
            )
        return tuple(declared)

    @classmethod
    def param_types(cls) -> dict[str, Any]:
        return dict(_param_types(cls))

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        if not dataclasses.is_dataclass(cls):
            return {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    @classmethod
    def validate_params(cls, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Defaults overlaid with `given`, each checked against its declared type; errors name the field."""
        types_ = cls.param_types()
        params = cls.param_defaults()
        for key, value in given.items():
            if key not in types_:
                known = ", ".join(sorted(types_)) or "none"
                raise UserError(
                    f"{where}: {cls.kind()} '{cls.name}' has no parameter '{key}' (it has: {known})"
                )
            params[key] = coerce(
                value, types_[key], f"{where}: parameter '{key}' of {cls.kind()} '{cls.name}'"
            )
        missing = sorted(set(types_) - set(params))
        if missing:
            raise UserError(f"{where}: {cls.kind()} '{cls.name}' needs parameter(s) {', '.join(missing)}")
        return params

    @classmethod
    def kind(cls) -> str:
        return "task" if issubclass(cls, Task) else "method"

    def params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_types()}


class Method(Component):
    """A method. It implements one or more family protocols by deriving from their protocol classes."""

    # True when the defaults are a paper's sizes that need a GPU: `families:` then adds the method to
    # `paper`-scale boards only (a smaller board names it with smaller parameters).
    paper_sized: ClassVar[bool] = False
    # The parameters `check-method` runs it with on a smoke task: for a paper-sized method, its small
    # setting, so the conformance check takes seconds, not a GPU's hours.
    check_params: ClassVar[dict[str, Any]] = {}

    @classmethod
    def families(cls) -> list[str]:
        return sorted({k.__dict__["protocol_of"] for k in cls.__mro__ if "protocol_of" in k.__dict__})


class Task(Component):
    """A task: data plus an evaluation protocol that drives a method of its family's protocol."""

    family: ClassVar[str]
    method_protocol: ClassVar[type[Method]]
    metrics: ClassVar[tuple[Metric, ...]]
    primary_metric: ClassVar[str]
    # Per scale, the parameter values that differ from the dataclass defaults.
    scales: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "cpu": {}, "paper": {}}
    description: ClassVar[str] = ""
    # Two metrics the HTML report plots against each other (x, y), e.g. accuracy against layers used.
    tradeoff: ClassVar[tuple[str, str] | None] = None
    # What else the HTML report draws for this task (harness/figures.py): a family's own figures.
    figures: ClassVar[tuple[Figure, ...]] = ()
    # False for tasks whose data comes from a hub: `families:` adds them to `paper`-scale boards only.
    offline: ClassVar[bool] = True
    # Per scale, what a run asks of its machine (scales not listed get `Resources()`); see `resources_at`.
    resources: ClassVar[dict[str, Resources]] = {}

    @classmethod
    def resources_at(cls, scale: str) -> Resources:
        return cls.resources.get(scale, Resources())

    def artifact_keys(self, method: Method, seed: int, scale: str) -> tuple[str, ...]:
        """The shared artifacts (ArtifactCache `kind/key` paths) a run of `method` on this task builds or
        reuses, computed cheaply before anything runs, so the planner can start each artifact's builder
        first and hold back the runs that need it until it exists. The default: none."""
        return ()

    @classmethod
    def params_for_scale(cls, scale: str, overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
        if scale not in cls.scales:
            raise UserError(
                f"{where}: task '{cls.name}' has no scale '{scale}' (it has: {', '.join(cls.scales)})"
            )
        return cls.validate_params({**cls.scales[scale], **overrides}, where)

    @classmethod
    def runs_with_defaults(cls, scale: str) -> bool:
        """Whether the task needs no parameter beyond its defaults and the scale's settings."""
        required = set(cls.param_types()) - set(cls.param_defaults())
        return scale in cls.scales and not required - set(cls.scales[scale])

    @classmethod
    def incompatibility(cls, method: type[Method]) -> str | None:
        """Why `method` cannot run on this task, or None when it can."""
        if issubclass(method, cls.method_protocol):
            return None
        has = ", ".join(method.families()) or "no family protocol"
        return f"needs the {cls.family} protocol; {method.name} implements {has}"

    @classmethod
    def metric(cls, name: str) -> Metric:
        for m in cls.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def check_inputs(self) -> None:
        """Cheap checks of the task's own inputs (a local file exists, has the named column, holds enough
        rows), made when a leaderboard is planned (`run`, `--dry-run`) before anything runs; raise
        UserError naming the file and field. Nothing slow here: no model, no network, no full training
        set. The default checks nothing."""

    def run(self, method: Method, ctx: Any) -> dict[str, float]:
        """Evaluate `method` under `ctx` (a RunContext) and return the metrics by name."""
        raise NotImplementedError


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """`value` checked against `annotation` (ints pass as floats, lists as tuples); errors name `where`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return coerce(value, arg, where)
            except UserError:
                continue
        raise UserError(f"{where}: expected {_type_name(annotation)}, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
    elif origin is typing.Literal:
        if value in args:
            return value
        raise UserError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
    elif origin in (list, tuple):
        if isinstance(value, list | tuple):
            item = args[0] if args else Any
            return tuple(coerce(v, item, where) for v in value)
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise UserError(f"{where}: expected {_type_name(annotation)}, got {value!r}")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


@functools.cache
def _param_types(cls: type) -> dict[str, Any]:
    """A component class's init fields and their types, resolved once: registration, planning and every
    spec ask again (typing.get_type_hints walks the class's bases each time, 0.2 ms a call here)."""
    if not dataclasses.is_dataclass(cls):
        return {}
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
