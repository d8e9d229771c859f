"""Normalized KD (Yang et al., ICCV 2023): a target term weighted by the teacher's gold probability, and a
non-target term on the renormalised distributions over the other classes.

Follows the official yzd-v/cls_KD `mmcls/models/dis_losses/nkd.py` (commit 1e5d48f): every student log
probability is a log-softmax, so a class far below the others (a probability under float precision)
still gets its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.distillation.protocol import DistillationMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


def non_target_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(batch, classes - 1): every logit but the gold one, in class order."""
    keep = ~F.one_hot(labels, logits.shape[1]).bool()
    return logits[keep].reshape(len(logits), -1)


def non_target(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """(batch, classes - 1) softmax at T over every class but the gold one, in class order."""
    return F.softmax(non_target_logits(logits, labels) / temperature, dim=1)


def non_target_log(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """The log of `non_target`, as a log-softmax."""
    return F.log_softmax(non_target_logits(logits, labels) / temperature, dim=1)


def nkd_losses(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    s_gold = F.log_softmax(student, dim=1).gather(1, labels[:, None])[:, 0]
    t_gold = F.softmax(teacher, dim=1).gather(1, labels[:, None])[:, 0].detach()
    target = -(t_gold * s_gold).mean()
    t_non = non_target(teacher, labels, temperature).detach()
    log_s_non = non_target_log(student, labels, temperature)
    rest = -gamma * temperature**2 * (t_non * log_s_non).sum(dim=1).mean()
    return target, rest


@register_method("nkd")
@dataclass(kw_only=True)
class NormalizedKD(DistillationMethod):
    version: ClassVar[str] = "2"  # 2: log-softmax instead of log(clamp(softmax, 1e-12))
    temperature: float = 1.0  # ImageNet value (CIFAR-100: 3)
    gamma: float = 1.5  # ImageNet value (CIFAR-100: 3.5)

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        target, rest = nkd_losses(out.logits, teacher_logits, labels, self.temperature, self.gamma)
        return {"ce": F.cross_entropy(out.logits, labels), "target": target, "non_target": rest}
