"""What a distillation method provides: loss terms on the student's outputs and the teacher's logits.

A method may add heads to the student (DHKD's auxiliary classifier, USKD's weak head); evaluation always
uses the student's own classifier `fc`. Loss terms are returned by name and summed, except that a
method asking for gradient alignment has the gradient of its non-"ce" terms projected off the "ce"
gradient where the two conflict (PCGrad) before the sum, as DHKD's official `helper/optimizer.py` does
(penghui-yang/DHKD, commit 7976c69).
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
    penultimate: torch.Tensor  # (batch, penultimate_dim), the pooled output of the stage before the last
    progress: float = 1.0  # share of the training steps already taken
    epoch: int = 1  # the current epoch, counted from 1 (the official codes' warm-ups are per epoch)


class DistillationMethod(Method):
    protocol_of = "distillation"
    uses_teacher: ClassVar[bool] = True
    align_gradients: ClassVar[bool] = False

    def for_networks(self, teacher: str, student: str) -> DistillationMethod:
        """This method with the settings its official code fixes per (teacher, student) pair filled in
        (the task calls it once before training); most methods have none."""
        return self

    def extra_heads(self, feature_dim: int, penultimate_dim: int, classes: int) -> dict[str, nn.Module]:
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
    """The merged gradient per parameter, CE plus the KD gradient aligned to it, as DHKD's official code.

    Both gradients are taken as one flattened vector over every parameter, a parameter a loss does not
    reach counting as zeros for it. Where the KD vector points against the CE vector (negative dot
    product) its component along CE is removed, kd - (kd.ce / |ce|^2) ce, which also moves the
    parameters only CE reaches (the main head). A parameter neither loss reaches stays None.

    The alternative of projecting over the shared parameters only (the textbook PCGrad reading) was
    what logitbench did before; it is not kept: it leaves the main head's CE gradient alone, but nothing
    measured shows it trains a better student, and the official code does not do it.
    """
    shared = [(a, b) for a, b in zip(ce_grads, kd_grads, strict=True) if a is not None and b is not None]
    scale = None
    if shared:
        dot = sum((a * b).sum() for a, b in shared)
        if dot < 0:  # then |ce| > 0
            scale = dot / sum((a * a).sum() for a in ce_grads if a is not None)
    merged: list[torch.Tensor | None] = []
    for a, b in zip(ce_grads, kd_grads, strict=True):
        if scale is not None and a is not None:
            b = -scale * a if b is None else b - scale * a
        parts = [g for g in (a, b) if g is not None]
        merged.append(sum(parts[1:], parts[0]) if parts else None)
    return merged
