"""Dual-Head KD (Yang et al.; penghui-yang/DHKD): the logit-level loss trains an auxiliary head on the
shared feature while cross-entropy trains the main head, so the binary KL cannot collapse the classifier.
`binarykl-same-head` is the naive combination the paper shows collapsing; `dhkd+ga` adds gradient
alignment, as the official `helper/optimizer.py` (commit 7976c69) does it: the KD gradient projected off
the CE gradient over the whole flattened gradient vector (see `aligned_gradients`). BinaryKL keeps its
finite log-sigmoid form, where the official float32 code overflows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.distillation.protocol import DistillationMethod

torch = lazy_module("torch")
nn = lazy_module("torch.nn")
F = lazy_module("torch.nn.functional")


def binary_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per class KL(Bern(sigmoid(t/T)) || Bern(sigmoid(s/T))) * T^2, summed over classes, / batch."""
    log_ps, log_qs = F.logsigmoid(teacher / temperature), F.logsigmoid(student / temperature)
    log_pn, log_qn = F.logsigmoid(-teacher / temperature), F.logsigmoid(-student / temperature)
    kl = log_ps.exp() * (log_ps - log_qs) + log_pn.exp() * (log_pn - log_qn)
    return kl.sum() / len(student) * temperature**2


def binary_kl_norm(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """d = sigmoid((s - t)/T); KL(Bern(1/2) || Bern(d)) * T^2 summed over classes, / batch (0 when s = t)."""
    diff = (student - teacher) / temperature
    kl = -math.log(2.0) - 0.5 * (F.logsigmoid(diff) + F.logsigmoid(-diff))
    return kl.sum() / len(student) * temperature**2


def auxiliary_head(feature_dim: int, classes: int, nonlinear: bool) -> nn.Module:
    if not nonlinear:
        return nn.Linear(feature_dim, classes)
    return nn.Sequential(
        nn.Linear(feature_dim, 200), nn.Dropout(0.1), nn.BatchNorm1d(200), nn.ReLU(), nn.Linear(200, classes)
    )


@register_method("dhkd")
@dataclass(kw_only=True)
class DualHeadKD(DistillationMethod):
    gamma: float = 1.0  # CE weight
    alpha: float = 1.0  # BinaryKL-Norm weight (ImageNet: 0.1)
    temperature: float = 2.0
    nonlinear_head: bool = True  # ImageNet: a linear head

    def extra_heads(self, feature_dim: int, penultimate_dim: int, classes: int) -> dict[str, nn.Module]:
        return {"aux": auxiliary_head(feature_dim, classes, self.nonlinear_head)}

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        aux = heads["aux"](out.pooled)
        return {
            "ce": self.gamma * F.cross_entropy(out.logits, labels),
            "kd": self.alpha * binary_kl_norm(aux, teacher_logits, self.temperature),
        }


@register_method("dhkd+ga")
@dataclass(kw_only=True)
class DualHeadKDAligned(DualHeadKD):
    version: ClassVar[str] = "2"  # 2: the projection over every parameter, as the official code
    align_gradients = True


@register_method("binarykl-same-head")
@dataclass(kw_only=True)
class BinaryKLSameHead(DistillationMethod):
    alpha: float = 1.0
    temperature: float = 2.0

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        return {
            "ce": F.cross_entropy(out.logits, labels),
            "kd": self.alpha * binary_kl(out.logits, teacher_logits, self.temperature),
        }
