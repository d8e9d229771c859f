"""Decoupled KD (Zhao et al., CVPR 2022): KD split into a target-class binary term (TCKD) and a
non-target term (NCKD) over the other classes, weighted alpha and beta, at temperature T."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.distillation.protocol import DistillationMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


def dkd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    beta: float,
    temperature: float,
) -> torch.Tensor:
    gold = F.one_hot(labels, student.shape[1]).bool()
    p_s, p_t = F.softmax(student / temperature, dim=1), F.softmax(teacher / temperature, dim=1)
    # Binary (gold, rest) distributions.
    b_s = torch.stack([p_s[gold], 1 - p_s[gold]], dim=1).clamp_min(1e-12)
    b_t = torch.stack([p_t[gold], 1 - p_t[gold]], dim=1).clamp_min(1e-12)
    tckd = (b_t * (b_t.log() - b_s.log())).sum(dim=1).mean()
    # Distributions over the non-target classes only (the gold logit pushed to -inf).
    log_s = F.log_softmax((student / temperature).masked_fill(gold, -1e9), dim=1)
    log_t = F.log_softmax((teacher / temperature).masked_fill(gold, -1e9), dim=1)
    nckd = (log_t.exp() * (log_t - log_s)).masked_fill(gold, 0.0).sum(dim=1).mean()
    return (alpha * tckd + beta * nckd) * temperature**2


@register_method("dkd")
@dataclass(kw_only=True)
class DecoupledKD(DistillationMethod):
    alpha: float = 1.0
    beta: float = 8.0  # the paper's CIFAR-100 value
    temperature: float = 4.0
    warmup: float = 20 / 240  # share of training over which the DKD term ramps up (paper: 20 of 240 epochs)

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        ramp = min(1.0, out.progress / self.warmup) if self.warmup > 0 else 1.0
        return {
            "ce": F.cross_entropy(out.logits, labels),
            "kd": ramp
            * dkd_loss(out.logits, teacher_logits, labels, self.alpha, self.beta, self.temperature),
        }
