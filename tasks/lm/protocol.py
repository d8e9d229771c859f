"""What an output-head method provides: a module that maps hidden states to next-token log-likelihoods.

Every head answers three questions: `nll(h, y)` (per-position negative log-likelihood, computed the
cheapest exact way the head allows), `logits(h)` (the full (N, V) scores, the thing whose cost the
papers compare), and `parameter_count()`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.components import Method

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class HeadContext:
    """What a task tells a head about its vocabulary."""

    dim: int
    vocab: int
    token_counts: np.ndarray  # (vocab,) training-set frequency of each token
    warm_start: torch.Tensor | None  # (vocab, dim) an output embedding that VQ-Logits may cluster
    seed: int
    pretrained_head: bool = False  # True when warm_start is the model's own head (retrofit): `full` keeps it


class OutputHeadMethod(Method):
    protocol_of = "lm"

    @abc.abstractmethod
    def make_head(self, context: HeadContext) -> torch.nn.Module:
        """A head module with nll(h, y), logits(h) and parameter_count()."""
