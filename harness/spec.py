"""A run is a frozen spec; its canonical JSON hashes to the run's key.

Everything that changes a run's result is in the spec (names, versions, fully resolved parameters, seed,
scale) and nothing else is, so the key is a cache key: a record stored under it is the run's result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from harness.components import Method, Task
from harness.errors import UserError


@dataclass(frozen=True)
class ComponentRef:
    name: str
    version: str
    params: tuple[tuple[str, Any], ...]

    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "params": self.params_dict()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComponentRef:
        return cls(data["name"], str(data["version"]), _freeze(data["params"]))


@dataclass(frozen=True)
class RunSpec:
    task: ComponentRef
    method: ComponentRef
    seed: int
    scale: str

    @property
    def key(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:20]

    def canonical_json(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), default=_json_default)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "method": self.method.to_json(),
            "seed": self.seed,
            "scale": self.scale,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        return cls(
            ComponentRef.from_json(data["task"]),
            ComponentRef.from_json(data["method"]),
            int(data["seed"]),
            str(data["scale"]),
        )

    def label(self) -> str:
        return f"{self.task.name} × {self.method.name} (seed {self.seed})"


def make_spec(
    task_cls: type[Task],
    method_cls: type[Method],
    seed: int,
    scale: str,
    task_params: dict[str, Any] | None = None,
    method_params: dict[str, Any] | None = None,
    where: str = "run",
) -> RunSpec:
    """Resolve defaults, scale settings and overrides into a spec; errors name `where` and the field."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"{where}: seed must be an integer, got {seed!r}")
    reason = task_cls.incompatibility(method_cls)
    if reason:
        raise UserError(f"{where}: method '{method_cls.name}' cannot run on task '{task_cls.name}': {reason}")
    tparams = task_cls.params_for_scale(scale, task_params or {}, where)
    mparams = method_cls.validate_params(method_params or {}, where)
    return RunSpec(
        ComponentRef(task_cls.name, task_cls.version, _freeze(tparams)),
        ComponentRef(method_cls.name, method_cls.version, _freeze(mparams)),
        seed,
        scale,
    )


def _freeze(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _hashable(v)) for k, v in params.items()))


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {value!r}")
