"""Supervised fine-tuning: next-token cross-entropy on the training text, no teacher (the floor of KD)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.lm_distillation.protocol import LMDistillationMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


def next_token_ce(student: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (batch, length, vocab) logits against (batch, length) next tokens."""
    return F.cross_entropy(student.flatten(0, 1), targets.flatten())


@register_method("lm-sft")
@dataclass(kw_only=True)
class SupervisedFineTuning(LMDistillationMethod):
    def losses(self, student, targets, teacher):  # type: ignore[no-untyped-def]
        return {"ce": next_token_ce(student, targets)}
