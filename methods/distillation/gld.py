"""Graph-on-logits distillation (InfiGFusion, arXiv 2505.13893), adapted to class logits.

Over a batch, each sample keeps its top-k class probabilities; their outer products, summed, make a
co-activation graph over the classes. The student's and the teacher's graphs are compared by the sorted
weighted degrees of their nodes: a 1-D Wasserstein distance between node statistics, which lower-bounds
Gromov-Wasserstein, costs O(C log C), and does not change when one graph's classes are permuted.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from methods.distillation.kd import kd_loss
from tasks.distillation.protocol import DistillationMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


def coactivation_graph(logits: torch.Tensor, top_k: int, temperature: float) -> torch.Tensor:
    """(classes, classes): sum over the batch of v v^T, v the probabilities with all but the top k zeroed."""
    probs = F.softmax(logits / temperature, dim=1)
    top = probs.topk(min(top_k, probs.shape[1]), dim=1)
    kept = torch.zeros_like(probs).scatter(1, top.indices, top.values)
    return kept.T @ kept / len(logits)


def graph_distance(
    student: torch.Tensor, teacher: torch.Tensor, top_k: int, temperature: float
) -> torch.Tensor:
    """Mean squared difference of the two graphs' sorted weighted degrees."""
    deg_s = coactivation_graph(student, top_k, temperature).sum(dim=1).sort().values
    deg_t = coactivation_graph(teacher, top_k, temperature).sum(dim=1).sort().values
    return ((deg_s - deg_t) ** 2).mean()


@register_method("gld")
@dataclass(kw_only=True)
class GraphOnLogits(DistillationMethod):
    weight: float = 10.0
    top_k: int = 5
    temperature: float = 1.0

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        return {
            "ce": F.cross_entropy(out.logits, labels),
            "gld": self.weight * graph_distance(out.logits, teacher_logits, self.top_k, self.temperature),
        }


@register_method("kd+gld")
@dataclass(kw_only=True)
class KDWithGraphOnLogits(GraphOnLogits):
    kd_temperature: float = 4.0
    alpha: float = 0.9

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        return {
            "ce": (1 - self.alpha) * F.cross_entropy(out.logits, labels),
            "kd": self.alpha * kd_loss(out.logits, teacher_logits, self.kd_temperature),
            "gld": self.weight * graph_distance(out.logits, teacher_logits, self.top_k, self.temperature),
        }
