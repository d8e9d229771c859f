"""Universal Self-KD (Yang et al., ICCV 2023; yzd-v/cls_KD): no teacher. The target label is made from the
student's own gold probability; non-target labels are Zipf's law over a ranking that a weak linear head
on an intermediate feature helps make."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from methods.distillation.nkd import non_target
from tasks.distillation.protocol import DistillationMethod

torch = lazy_module("torch")
nn = lazy_module("torch.nn")
F = lazy_module("torch.nn.functional")


def zipf_non_target_labels(rank_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(batch, classes - 1): the class ranked r-th by `rank_scores` gets 1/r, the gold class is dropped, and
    the rest is renormalised to sum to one; columns in class order."""
    ranks = rank_scores.argsort(dim=1, descending=True).argsort(dim=1) + 1  # 1 = best
    zipf = 1.0 / ranks.float()
    keep = ~F.one_hot(labels, rank_scores.shape[1]).bool()
    rest = zipf[keep].reshape(len(labels), -1)
    return rest / rest.sum(dim=1, keepdim=True)


def uskd_losses(
    student: torch.Tensor, weak: torch.Tensor, labels: torch.Tensor, mu: float
) -> dict[str, torch.Tensor]:
    classes = student.shape[1]
    p_s = F.softmax(student, dim=1)
    s_gold = p_s.gather(1, labels[:, None])[:, 0]
    soft = (s_gold.detach() ** 2 + 1 - (s_gold.detach() ** 2).mean()).detach()
    target = -(soft * torch.log(s_gold.clamp_min(1e-12))).mean()
    smooth = 0.9 * F.one_hot(labels, classes) + 0.1 / classes
    weak_loss = -mu * (smooth * F.log_softmax(weak, dim=1)).sum(dim=1).mean()
    with torch.no_grad():
        p_w = F.softmax(weak, dim=1)
        w_gold = p_w.gather(1, labels[:, None])
        scores = p_w / (1 - w_gold).clamp_min(1e-12) + p_s / (1 - s_gold[:, None]).clamp_min(1e-12)
        z = zipf_non_target_labels(scores, labels)
    rest = -(z * torch.log(non_target(student, labels, 1.0).clamp_min(1e-12))).sum(dim=1).mean()
    return {"target": target, "non_target": rest, "weak": weak_loss}


@register_method("uskd")
@dataclass(kw_only=True)
class UniversalSelfKD(DistillationMethod):
    uses_teacher = False
    alpha: float = 1.0  # ImageNet values (CIFAR-100: 0.1, 0.1, 0.1)
    beta: float = 0.1
    mu: float = 0.005

    def extra_heads(self, feature_dim: int, middle_dim: int, classes: int) -> dict[str, nn.Module]:
        return {"weak": nn.Linear(middle_dim, classes)}

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        parts = uskd_losses(out.logits, heads["weak"](out.middle), labels, self.mu)
        return {
            "ce": F.cross_entropy(out.logits, labels),
            "target": self.alpha * parts["target"],
            "non_target": self.beta * parts["non_target"],
            "weak": parts["weak"],
        }
