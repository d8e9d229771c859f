"""A run is a frozen spec; its canonical JSON hashes to the run's key.

Everything that changes a run's result is in the spec (names, versions, fully resolved parameters, seed,
scale) and nothing else is, so the key is a cache key: a record stored under it is the run's result.
A parameter that names a local input file or folder enters the key by the content digest of what it names
(`inputs`), not by the path (harness/inputs.py): an edited file makes a new key, a moved one does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from harness.components import Component, Method, Task
from harness.errors import UserError
from harness.inputs import content_digest, local_path


@dataclass(frozen=True)
class ComponentRef:
    name: str
    version: str
    params: tuple[tuple[str, Any], ...]
    # (parameter, content digest) for each local-input parameter that names an existing file or folder
    inputs: tuple[tuple[str, str], ...] = ()

    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "version": self.version, "params": self.params_dict()}
        if self.inputs:
            out["inputs"] = dict(self.inputs)
        return out

    def key_json(self) -> dict[str, Any]:
        """What the key hashes: the spec, with each local input's path replaced by its content digest
        (identical to `to_json` when there is none, so keys of runs without local inputs never change)."""
        if not self.inputs:
            return self.to_json()
        digests = dict(self.inputs)
        params = {k: digests.get(k, v) for k, v in self.params}
        return {"name": self.name, "version": self.version, "params": params}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComponentRef:
        inputs = data.get("inputs") or {}
        if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
            raise ValueError("'inputs' must map parameter names to digests")
        return cls(data["name"], str(data["version"]), _freeze(data["params"]), tuple(sorted(inputs.items())))


@dataclass(frozen=True)
class RunSpec:
    task: ComponentRef
    method: ComponentRef
    seed: int
    scale: str
    # Torch/BLAS threads the run computes with. More than one splits float reductions differently and so
    # moves a result slightly (CNN students by 0.001-0.002 top-1 here): it is keyed, but only when not 1,
    # so the keys of single-threaded runs, the default, read as before.
    threads: int = 1

    @property
    def key(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:20]

    def canonical_json(self) -> str:
        """The key's preimage (local inputs by content, see ComponentRef.key_json)."""
        identity = {
            "task": self.task.key_json(),
            "method": self.method.key_json(),
            "seed": self.seed,
            "scale": self.scale,
            **self._threads_json(),
        }
        return json.dumps(identity, sort_keys=True, separators=(",", ":"), default=_json_default)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "method": self.method.to_json(),
            "seed": self.seed,
            "scale": self.scale,
            **self._threads_json(),
        }

    def _threads_json(self) -> dict[str, int]:
        return {} if self.threads == 1 else {"threads": self.threads}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        return cls(
            ComponentRef.from_json(data["task"]),
            ComponentRef.from_json(data["method"]),
            int(data["seed"]),
            str(data["scale"]),
            int(data.get("threads", 1)),
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
    threads: int = 1,
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
        ComponentRef(
            task_cls.name, task_cls.version, _freeze(tparams), input_digests(task_cls, tparams, where)
        ),
        ComponentRef(
            method_cls.name, method_cls.version, _freeze(mparams), input_digests(method_cls, mparams, where)
        ),
        seed,
        scale,
        threads,
    )


def input_digests(cls: type[Component], params: dict[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    """(parameter, content digest) of each declared local input that names an existing file or folder."""
    out = []
    for name in cls.local_input_params():
        try:
            path = local_path(params.get(name))
        except UserError as err:
            raise UserError(f"{where}: parameter '{name}' of {cls.kind()} '{cls.name}': {err}") from None
        if path is None:
            continue
        try:
            out.append((name, content_digest(path)))
        except OSError as err:
            raise UserError(
                f"{where}: parameter '{name}' of {cls.kind()} '{cls.name}': cannot read {path} "
                f"({err.strerror or err})"
            ) from None
    return tuple(sorted(out))


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
