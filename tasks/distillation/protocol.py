"""What a distillation method provides: loss terms on the student's outputs and the teacher's logits.

A method may add heads to the student (DHKD's auxiliary classifier, USKD's weak head); evaluation always
uses the student's own classifier `fc`. Loss terms are returned by name and summed, except that a
method asking for gradient alignment has its non-"ce" terms' gradient projected off the "ce" gradient
where the two conflict (PCGrad) before the sum.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from harness.components import Method

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class StudentOutput:
    logits: torch.Tensor  # (batch, classes) from the student's classifier
    pooled: torch.Tensor  # (batch, feature_dim), the classifier's input
    middle: torch.Tensor  # (batch, middle_dim), an intermediate feature
    progress: float = 1.0  # share of the training steps already taken (for warm-ups)


class DistillationMethod(Method):
    protocol_of = "distillation"
    uses_teacher: ClassVar[bool] = True
    align_gradients: ClassVar[bool] = False

    def extra_heads(self, feature_dim: int, middle_dim: int, classes: int) -> dict[str, nn.Module]:
        """Heads trained beside the student (evaluation never uses them)."""
        return {}

    @abc.abstractmethod
    def losses(
        self,
        out: StudentOutput,
        heads: nn.ModuleDict,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Named loss terms for one batch; "ce" is the supervised term."""


def aligned_gradients(
    ce_grads: list[torch.Tensor | None], kd_grads: list[torch.Tensor | None]
) -> list[torch.Tensor | None]:
    """PCGrad on the parameters both terms reach: where the KD gradient points against the CE gradient
    (negative dot product over all shared parameters), remove its component along the CE gradient."""
    shared = [
        i for i, (a, b) in enumerate(zip(ce_grads, kd_grads, strict=True)) if a is not None and b is not None
    ]
    out = list(kd_grads)
    if not shared:
        return out
    dot = sum((ce_grads[i] * kd_grads[i]).sum() for i in shared)
    norm = sum((ce_grads[i] * ce_grads[i]).sum() for i in shared)
    if dot < 0 and norm > 0:
        scale = dot / norm
        for i in shared:
            out[i] = kd_grads[i] - scale * ce_grads[i]
    return out
