"""Hinton et al. (2015): match the teacher's softened distribution, KL at temperature T times T^2."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.distillation.protocol import DistillationMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over the batch."""
    log_s = F.log_softmax(student / temperature, dim=1)
    log_t = F.log_softmax(teacher / temperature, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1).mean() * temperature**2


@register_method("kd")
@dataclass(kw_only=True)
class KnowledgeDistillation(DistillationMethod):
    temperature: float = 4.0
    alpha: float = 0.9  # weight of the distillation term; CE gets 1 - alpha

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        return {
            "ce": (1 - self.alpha) * F.cross_entropy(out.logits, labels),
            "kd": self.alpha * kd_loss(out.logits, teacher_logits, self.temperature),
        }
