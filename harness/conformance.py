"""`check-method`: a conformance suite any method (built-in or plugin) can be put through.

It checks the declaration (name, version, typed parameters with defaults, a family protocol), then runs
the method on a smoke-scale task of each of its families in a worker process, twice with one seed, and
checks the records: status ok, every declared metric a finite number, the same values both times.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.components import Method
from harness.errors import UserError
from harness.executors import LocalExecutor
from harness.registries import METHODS, TASKS
from harness.spec import RunSpec, make_spec
from harness.store import Record, ResultStore


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


def smoke_task_for(family: str) -> str | None:
    """The first task of `family` that runs at smoke scale with its defaults alone."""
    for name, cls in TASKS:
        if cls.family == family and cls.offline and cls.runs_with_defaults("smoke"):
            return name
    return None


def check_method(name: str, timeout_s: float = 600.0) -> list[Check]:
    method_cls = METHODS.get(name)
    return list(_checks(method_cls, timeout_s))


def _checks(method_cls: type[Method], timeout_s: float) -> Iterator[Check]:
    yield _check("declares a version", lambda: bool(method_cls.version) or "empty version")
    yield _check("parameters are typed and have defaults", lambda: _params_ok(method_cls))
    families = method_cls.families()
    yield Check("implements a family protocol", bool(families), ", ".join(families) or "derives from none")
    for family in families:
        task_name = smoke_task_for(family)
        if task_name is None:
            yield Check(
                f"{family}: a smoke-scale task exists", False, "no task of this family runs at smoke scale"
            )
            continue
        task_cls = TASKS.get(task_name)
        try:
            spec = make_spec(
                task_cls,
                method_cls,
                0,
                "smoke",
                method_params=check_settings(method_cls),
                where="check-method",
            )
        except UserError as err:
            yield Check(f"{family}: spec on {task_name}", False, str(err))
            continue
        yield _check(
            f"{family}: spec round-trips through JSON",
            lambda s=spec: RunSpec.from_json(s.to_json()).key == s.key or "key changed",
        )
        first, second = (_run_isolated(spec, timeout_s) for _ in range(2))
        yield Check(
            f"{family}: runs on {task_name} (smoke)",
            first.status == "ok",
            first.reason or f"{first.data['wall_seconds']:.2f} s",
        )
        if first.status != "ok":
            continue
        declared = {m.name for m in task_cls.metrics if m.required}
        missing = sorted(declared - set(first.data["metrics"]))
        yield Check(f"{family}: reports every metric of the task", not missing, ", ".join(missing))
        deterministic = [m.name for m in task_cls.metrics if m.gate]
        differ = [m for m in deterministic if first.metric(m) != second.metric(m)]
        yield Check(
            f"{family}: same seed, same metrics",
            second.status == "ok" and not differ,
            ", ".join(f"{m}: {first.metric(m)} vs {second.metric(m)}" for m in differ) or second.reason,
        )


def _params_ok(method_cls: type[Method]) -> bool | str:
    types_, defaults = method_cls.param_types(), method_cls.param_defaults()
    missing = sorted(set(types_) - set(defaults))
    if missing:
        return f"no default for {', '.join(missing)}"
    method_cls(**defaults)
    return True


def _check(name: str, test: Callable[[], bool | str]) -> Check:
    try:
        result = test()
    except Exception as err:
        return Check(name, False, f"{type(err).__name__}: {err}")
    return Check(name, result is True, "" if result is True else str(result))


def _run_isolated(spec: RunSpec, timeout_s: float) -> Record:
    with tempfile.TemporaryDirectory(prefix="logitbench-check-") as tmp:
        executor = LocalExecutor(ResultStore(Path(tmp)), workers=1, timeout_s=timeout_s)
        try:
            return executor.submit(spec).result()
        finally:
            executor.shutdown()


def check_settings(method_cls: type) -> dict:
    """The parameter settings check-method runs with: the method's `check_params`, or its defaults where
    a plugin gave that name to a method of its own."""
    settings = getattr(method_cls, "check_params", None)
    return dict(settings) if isinstance(settings, dict) else {}
