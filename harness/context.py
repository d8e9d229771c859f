"""What a task sees of the harness while it runs: seed, device, artifact cache, and phase timers."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
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

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (seconds, summed when a phase repeats, e.g. once per fold)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start

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
