"""What a task sees of the harness while it runs: seed, device, artifact cache, and phase timers.

`details` should hold JSON values; the worker makes what is not JSON storable (`json_safe`) rather than
lose the run over it: arrays and tensors become lists, NaN and infinities null, other objects are dropped,
each with a warning in the record.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.artifacts import ArtifactCache


@dataclass
class RunContext:
    seed: int
    device: str  # "cpu" or "cuda" (the one GPU this process may see)
    threads: int
    artifacts: ArtifactCache
    phases: dict[str, float] = field(default_factory=dict)
    # What a run wants kept beside its metrics (a model edit, a per-layer curve): JSON values only.
    details: dict[str, Any] = field(default_factory=dict)
    # Things the run went on from that its record should say (an artifact rebuilt).
    warnings: list[str] = field(default_factory=list)
    # The run's per-example results (`samples`), a harness.samples.SampleTable; None: the task keeps none.
    sample_table: Any = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (seconds, summed when a phase repeats, e.g. once per fold)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start

    def samples(
        self,
        table: dict[str, Any],
        index: str | Sequence[str],
        prediction: str | None = None,
        label: str | None = None,
    ) -> None:
        """Keep per-example results beside the record (harness/samples.py): `table` maps column names to
        equal-length lists or 1-D arrays, one value per example; `index` names the column(s) that identify
        an example across methods, `prediction` and `label` the columns `diff-samples` compares. A table
        that cannot be stored is dropped with a warning in the record; it never costs the run."""
        from harness.samples import SampleTable

        try:
            self.sample_table = SampleTable.build(table, index, prediction, label)
        except (TypeError, ValueError) as err:
            self.sample_table = None
            self.warnings.append(f"per-example results dropped: {err}")

    def rng(self, stream: int = 0) -> np.random.Generator:
        """An independent generator derived from the run's seed; `stream` separates uses."""
        return np.random.default_rng([self.seed, stream])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


MAX_PROBLEMS = 20
MAX_DEPTH = 64


def json_safe(value: Any, where: str, problems: list[str], depth: int = 0) -> tuple[Any, list[str]]:
    """(`value` as JSON values, `problems`): numpy and torch values become plain numbers and lists, tuples
    lists, non-finite floats None, keys strings; anything else is dropped (None). Each change that loses
    information adds a line to `problems` (the first MAX_PROBLEMS, then a count)."""

    def note(message: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(message)
        elif len(problems) == MAX_PROBLEMS:
            problems.append("more values were changed the same way")

    def safe(v: Any, at: str, level: int) -> Any:
        if v is None or isinstance(v, bool | str):
            return v
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            if math.isfinite(v):
                return v
            note(f"{at} is {v}, which JSON cannot hold: stored as null")
            return None
        if level > MAX_DEPTH:
            note(f"{at} is nested deeper than {MAX_DEPTH} levels: dropped")
            return None
        if isinstance(v, dict):
            out = {}
            for k, item in v.items():
                if not isinstance(k, str):
                    if not isinstance(k, int | float | bool) and k is not None:
                        note(f"{at} has a {type(k).__name__} key {k!r}: stored as the string {str(k)!r}")
                    k = str(k)
                out[k] = safe(item, f"{at}.{k}", level + 1)
            return out
        if isinstance(v, list | tuple):
            return [safe(item, f"{at}[{i}]", level + 1) for i, item in enumerate(v)]
        tolist = getattr(v, "tolist", None)  # numpy arrays and scalars, torch tensors
        if callable(tolist) and type(v).__module__.split(".")[0] in ("numpy", "torch"):
            try:
                plain = tolist()
            except Exception as err:  # e.g. a tensor that cannot be read back
                note(f"{at} ({type(v).__name__}) could not be converted ({err}): dropped")
                return None
            return safe(plain, at, level + 1)
        note(f"{at} ({type(v).__name__}) is not a JSON value: dropped")
        return None

    return safe(value, where, depth), problems
