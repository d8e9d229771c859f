"""What an early-exit method provides: heads on the per-layer states, a training loss, and an exit rule.

The exit rule sees only the layers computed so far (`exits_at` on a prefix), so one rule serves batched
evaluation (the first layer whose prefix says "exit") and real incremental inference, and the two agree.
Training is one stage (the backbone and every head on `loss`) unless the method gives its own stages
(DeeBERT: the backbone first, then the exit heads with the backbone frozen), and runs every layer unless
the method's `layer_by_layer` loss says the batch needs no more (PALBERT's 1 - eps stop).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from harness.components import Method

if TYPE_CHECKING:
    import torch
    from torch import nn

    Loss = Callable[[torch.Tensor, torch.Tensor, nn.ModuleDict, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainingStage:
    """One pass of `epochs` over the training set: whether the backbone learns, which head parameters
    learn, and on which loss (same arguments as `EarlyExitMethod.loss`)."""

    backbone: bool
    heads: list[nn.Parameter]
    loss: Loss


class LayerByLayerLoss(abc.ABC):
    """A training loss fed each layer's logits and state in turn; `add` returning True stops the forward
    pass there, so the layers after it are never computed."""

    @abc.abstractmethod
    def add(self, logits: torch.Tensor, state: torch.Tensor) -> bool:
        """logits (batch, classes) and state (batch, hidden) of the next layer; True: stop here."""

    @abc.abstractmethod
    def total(self) -> torch.Tensor:
        """The batch's loss over the layers added."""


class EarlyExitMethod(Method):
    protocol_of = "early_exit"
    # Parameters of the exit rule alone: runs that differ only in these share one trained model (a sweep).
    exit_params: ClassVar[tuple[str, ...]] = ()
    # Per-layer states go through the backbone's own pooler (BERT's, ALBERT's dense + tanh) when it has one.
    uses_pooler: ClassVar[bool] = False
    # False for a rule that never exits before the last layer (full-depth): incremental inference then
    # computes no intermediate head, as a deployment of it would not, so its timing is the plain model's.
    exits_early: ClassVar[bool] = True

    def make_modules(self, hidden: int, layers: int, classes: int) -> nn.ModuleDict:
        """One classifier per layer (`classifiers`), plus whatever else the method needs."""
        from torch import nn

        return nn.ModuleDict(
            {"classifiers": nn.ModuleList(nn.Linear(hidden, classes) for _ in range(layers))}
        )

    def stages(self, modules: nn.ModuleDict) -> list[TrainingStage]:
        """The training stages in order; by default one: the backbone and every head on `loss`."""
        return [TrainingStage(backbone=True, heads=list(modules.parameters()), loss=self.loss)]

    def layer_by_layer(
        self, modules: nn.ModuleDict, labels: torch.Tensor, layers: int
    ) -> LayerByLayerLoss | None:
        """A training loss that may stop the forward pass early, or None to run every layer and `loss`."""
        return None

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
