"""Universal Self-KD (Yang et al., ICCV 2023): no teacher. The target label is made from the student's own
gold probability; non-target labels are Zipf's law over a ranking of the classes that a weak linear head
on the penultimate stage helps make.

Follows the official yzd-v/cls_KD `mmcls/models/dis_losses/uskd.py` and the feature its
`mmcls/models/classifiers/distiller.py` hands the loss (commit 1e5d48f): the rank score is
w_i / (1 - w_gold + 1e-6) + s_i / (1 - s_gold + 1e-6) with w the weak head's probabilities and s the
student's log-softmax (not its probabilities); the weak head reads the globally pooled penultimate stage
of the backbone; student log probabilities are log-softmaxes throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.lazy import lazy_module
from harness.registries import register_method
from methods.distillation.nkd import non_target_log
from tasks.distillation.protocol import DistillationMethod

torch = lazy_module("torch")
nn = lazy_module("torch.nn")
F = lazy_module("torch.nn.functional")


def zipf_non_target_labels(rank_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(batch, classes - 1): the class ranked r-th by `rank_scores` gets 1/r, the gold class is dropped, and
    the rest is renormalised to sum to one; columns in class order."""
    ranks = rank_scores.argsort(dim=1, descending=True).argsort(dim=1) + 1  # 1 = best
    zipf = 1.0 / ranks.to(rank_scores.dtype)
    keep = ~F.one_hot(labels, rank_scores.shape[1]).bool()
    rest = zipf[keep].reshape(len(labels), -1)
    return rest / rest.sum(dim=1, keepdim=True)


def rank_scores(student: torch.Tensor, weak: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The official ranking score: weak probabilities and student log probabilities, each over one
    minus its gold value."""
    p_w = F.softmax(weak, dim=1)
    log_s = F.log_softmax(student, dim=1)
    w_gold, s_gold = p_w.gather(1, labels[:, None]), log_s.gather(1, labels[:, None])
    return p_w / (1 - w_gold + 1e-6) + log_s / (1 - s_gold + 1e-6)


def uskd_losses(
    student: torch.Tensor, weak: torch.Tensor, labels: torch.Tensor, mu: float
) -> dict[str, torch.Tensor]:
    classes = student.shape[1]
    log_s_gold = F.log_softmax(student, dim=1).gather(1, labels[:, None])[:, 0]
    square = log_s_gold.detach().exp() ** 2
    soft = square + 1 - square.mean()
    target = -(soft * log_s_gold).mean()
    smooth = 0.9 * F.one_hot(labels, classes) + 0.1 / classes
    weak_loss = -mu * (smooth * F.log_softmax(weak, dim=1)).sum(dim=1).mean()
    with torch.no_grad():
        z = zipf_non_target_labels(rank_scores(student, weak, labels), labels)
    rest = -(z * non_target_log(student, labels, 1.0)).sum(dim=1).mean()
    return {"target": target, "non_target": rest, "weak": weak_loss}


@register_method("uskd")
@dataclass(kw_only=True)
class UniversalSelfKD(DistillationMethod):
    # 2: rank score on the student's log-softmax, weak head on the penultimate stage, log-softmax losses
    version: ClassVar[str] = "2"
    uses_teacher = False
    alpha: float = 1.0  # ImageNet values (CIFAR-100: 0.1, 0.1, 0.1)
    beta: float = 0.1
    mu: float = 0.005

    def extra_heads(self, feature_dim: int, penultimate_dim: int, classes: int) -> dict[str, nn.Module]:
        return {"weak": nn.Linear(penultimate_dim, classes)}

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        parts = uskd_losses(out.logits, heads["weak"](out.penultimate), labels, self.mu)
        return {
            "ce": F.cross_entropy(out.logits, labels),
            "target": self.alpha * parts["target"],
            "non_target": self.beta * parts["non_target"],
            "weak": parts["weak"],
        }
