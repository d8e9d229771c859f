"""The two registries of the harness. A new family adds its two packages to the built-in lists.

What may be registered is checked here: a task must be a `Task` subclass and a method a `Method` subclass,
and no parameter may take a name the harness itself uses on the class (`kind`, `name`, `version`,
`params`, `run`, a protocol's hook ...): such a field would hide the harness's attribute and break
planning far from its cause.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from harness.components import Method, Metric, Resources, Task
from harness.errors import UserError
from harness.registry import Registry, first_line

BUILTIN_TASK_MODULES = (
    "tasks.tabular",
    "tasks.poisoning.tasks",
    "tasks.distillation.tasks",
    "tasks.lm.tasks",
    "tasks.early_exit.tasks",
    "tasks.mcq.tasks",
    "tasks.auctions.tasks",
    "tasks.generation.tasks",
    "tasks.lm_distillation.tasks",
)
BUILTIN_METHOD_MODULES = (
    "methods.tabular",
    "methods.poisoning",
    "methods.distillation",
    "methods.lm",
    "methods.early_exit",
    "methods.mcq",
    "methods.auctions",
    "methods.generation",
    "methods.lm_distillation",
)


def component_check(base: type) -> Callable[[Any, str], None]:
    """The registration check for subclasses of `base` (Task or Method)."""

    def check(obj: Any, where: str) -> None:
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise UserError(
                f"{where} is {_describe(obj)}, expected a subclass of {base.__module__}.{base.__qualname__}"
            )
        clashes = reserved_fields(obj)
        if clashes:
            raise UserError(
                f"{where} declares parameter(s) {', '.join(repr(c) for c in clashes)}, a name the harness "
                f"uses on the class itself (a method, class variable or property of {base.__name__} or "
                "its family protocol); rename them"
            )

    return check


def registration_check(base: type) -> Callable[[Any, str], None]:
    """What a registry checks: `component_check`, then the class's own declarations, so that a plugin
    that lacks one is left out with a warning instead of breaking `list` or planning later."""
    reserved = component_check(base)

    def check(obj: Any, where: str) -> None:
        reserved(obj, where)
        problem = declaration_problem(obj)
        if problem:
            raise UserError(f"{where}: {problem}")

    return check


def declaration_problem(cls: type[Task] | type[Method]) -> str | None:
    """What is wrong with the class-level declarations the harness reads (version, parameters, a task's
    family, protocol, metrics and scales, a method's check_params), or None."""
    if not isinstance(cls.version, str) or not cls.version:
        return f"its version must be non-empty text such as '1', got {cls.version!r}"
    try:
        cls.param_types()
        cls.param_defaults()
        cls.local_input_params()
    except Exception as err:  # the plugin's own bug, e.g. an annotation naming a type it never imports
        return f"its parameters cannot be read ({type(err).__name__}: {first_line(err)})"
    if issubclass(cls, Task):
        family = getattr(cls, "family", None)
        if not isinstance(family, str) or not family:
            return f"class variable 'family' must be a family name, got {family!r}"
        protocol = getattr(cls, "method_protocol", None)
        if not (isinstance(protocol, type) and issubclass(protocol, Method)):
            return f"class variable 'method_protocol' must be a Method subclass, got {protocol!r}"
        metrics = getattr(cls, "metrics", None)
        if (
            not isinstance(metrics, tuple | list)
            or not metrics
            or not all(isinstance(m, Metric) for m in metrics)
        ):
            return "class variable 'metrics' must be a non-empty tuple of harness.components.Metric"
        odd = [m for m in metrics if not (isinstance(m.name, str) and isinstance(m.higher_is_better, bool))]
        if odd:  # a record keeps higher_is_better as it is, and a record with a non-bool is refused
            return f"metric {odd[0].name!r} needs a text name and higher_is_better True or False"
        primary = getattr(cls, "primary_metric", None)
        if not isinstance(primary, str) or primary not in {m.name for m in metrics}:
            return f"class variable 'primary_metric' is {primary!r}, not one of its metrics"
        if not isinstance(cls.scales, dict) or not all(isinstance(s, dict) for s in cls.scales.values()):
            return "class variable 'scales' must map scale names to parameter settings"
        if not isinstance(cls.resources, dict) or not all(
            isinstance(r, Resources) for r in cls.resources.values()
        ):
            return "class variable 'resources' must map scale names to harness.components.Resources"
        tradeoff = cls.tradeoff  # two metric names (a task may report metrics it does not declare)
        if tradeoff is not None and not (
            isinstance(tradeoff, tuple) and len(tradeoff) == 2 and all(isinstance(m, str) for m in tradeoff)
        ):
            return f"class variable 'tradeoff' must be None or two metric names, got {tradeoff!r}"
    elif not isinstance(getattr(cls, "check_params", None), dict) and not callable(cls.check_params):
        # a method of a plugin's own may carry the name; check-method then uses its defaults
        return "class variable 'check_params' must be a mapping of parameter settings"
    return None


def reserved_fields(cls: type) -> list[str]:
    """The dataclass fields of `cls` that hide an attribute, not a field, of a class in its hierarchy."""
    if not dataclasses.is_dataclass(cls):
        return []
    reserved = set().union(*(_non_field_names(k) for k in cls.__mro__ if k is not object))
    return sorted(f.name for f in dataclasses.fields(cls) if f.name in reserved)


def _non_field_names(klass: type) -> set[str]:
    """Public names `klass` itself defines other than as dataclass fields: methods, properties, plain
    class attributes, ClassVar annotations."""
    annotations = inspect.get_annotations(klass)
    fields = (
        {f.name for f in dataclasses.fields(klass)} if "__dataclass_fields__" in klass.__dict__ else set()
    )
    names = {a for a in klass.__dict__ if not a.startswith("_") and a not in fields}
    return names | {a for a, note in annotations.items() if "ClassVar" in str(note)}


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"class {obj.__module__}.{obj.__qualname__}"
    if callable(obj):
        return f"the function {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)!s}"
    return f"a {type(obj).__name__} object"


TASKS: Registry[type[Task]] = Registry(
    "task", BUILTIN_TASK_MODULES, "logitbench.tasks", check=registration_check(Task)
)
METHODS: Registry[type[Method]] = Registry(
    "method", BUILTIN_METHOD_MODULES, "logitbench.methods", check=registration_check(Method)
)

register_task = TASKS.register
register_method = METHODS.register
