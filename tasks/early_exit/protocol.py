"""What an early-exit method provides: heads on the per-layer states, a training loss, and an exit rule.

The exit rule sees only the layers computed so far (`exits_at` on a prefix), so one rule serves batched
evaluation (the first layer whose prefix says "exit") and real incremental inference, and the two agree.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

from harness.components import Method

if TYPE_CHECKING:
    import torch
    from torch import nn


class EarlyExitMethod(Method):
    protocol_of = "early_exit"
    # Parameters of the exit rule alone: runs that differ only in these share one trained model (a sweep).
    exit_params: ClassVar[tuple[str, ...]] = ()

    def make_modules(self, hidden: int, layers: int, classes: int) -> nn.ModuleDict:
        """One classifier per layer (`classifiers`), plus whatever else the method needs."""
        from torch import nn

        return nn.ModuleDict(
            {"classifiers": nn.ModuleList(nn.Linear(hidden, classes) for _ in range(layers))}
        )

    @abc.abstractmethod
    def loss(
        self, logits: torch.Tensor, states: torch.Tensor, modules: nn.ModuleDict, labels: torch.Tensor
    ) -> torch.Tensor:
        """logits (layers, batch, classes), states (layers + 1, batch, hidden) with the embeddings first."""

    @abc.abstractmethod
    def exits_at(
        self, logits: torch.Tensor, states: torch.Tensor, modules: nn.ModuleDict, uniforms: torch.Tensor
    ) -> torch.Tensor:
        """(batch,) bool: exit after the last layer of this prefix? logits (i, batch, classes), states
        (i + 1, batch, hidden), uniforms (i, batch) fixed random numbers for sampling rules."""


def exit_layers(method: EarlyExitMethod, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
    """(batch,) 0-based exit layer of each example: the first prefix whose rule says exit, else the last."""
    import torch

    layers = logits.shape[0]
    chosen = torch.full((logits.shape[1],), layers - 1, dtype=torch.long, device=logits.device)
    decided = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    for i in range(layers - 1):
        now = method.exits_at(logits[: i + 1], states[: i + 2], modules, uniforms[: i + 1]) & ~decided
        chosen[now] = i
        decided |= now
    return chosen
