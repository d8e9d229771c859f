"""Normalized KD (Yang et al., ICCV 2023; yzd-v/cls_KD): a target term weighted by the teacher's gold
probability, and a non-target term on the renormalised distributions over the other classes."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.distillation.protocol import DistillationMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


def non_target(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """(batch, classes - 1) softmax at T over every class but the gold one, in class order."""
    keep = ~F.one_hot(labels, logits.shape[1]).bool()
    return F.softmax(logits[keep].reshape(len(logits), -1) / temperature, dim=1)


def nkd_losses(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    s_gold = F.log_softmax(student, dim=1).gather(1, labels[:, None])[:, 0]
    t_gold = F.softmax(teacher, dim=1).gather(1, labels[:, None])[:, 0].detach()
    target = -(t_gold * s_gold).mean()
    t_non = non_target(teacher, labels, temperature).detach()
    log_s_non = torch.log(non_target(student, labels, temperature).clamp_min(1e-12))
    rest = -gamma * temperature**2 * (t_non * log_s_non).sum(dim=1).mean()
    return target, rest


@register_method("nkd")
@dataclass(kw_only=True)
class NormalizedKD(DistillationMethod):
    temperature: float = 1.0  # ImageNet value (CIFAR-100: 3)
    gamma: float = 1.5  # ImageNet value (CIFAR-100: 3.5)

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        target, rest = nkd_losses(out.logits, teacher_logits, labels, self.temperature, self.gamma)
        return {"ce": F.cross_entropy(out.logits, labels), "target": target, "non_target": rest}
