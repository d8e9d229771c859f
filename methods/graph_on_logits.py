"""The graph-on-logits formula (InfiGFusion, arXiv 2505.13893), shared by the two method families that use
it: `distillation` (10-class image logits, one graph per batch) and `lm_distillation` (vocabulary logits,
one graph per sequence over the union of the top-k channels of its positions).

Each row (an image, or a position of a sequence) keeps its top-k scores and zeroes the rest; the outer
products of those vectors, averaged over the rows, make a co-activation graph over the channels (classes
or vocabulary tokens). Two graphs are compared by the sorted weighted degrees of their nodes: a 1-D
Wasserstein distance between node statistics, which lower-bounds Gromov-Wasserstein, costs O(n log n),
and does not change when one graph's channels are permuted. The official repositories
(Reallm-Labs/InfiGFusion, commit 3fb9411; wyy-code/InfiGFusion) publish no loss code, so this follows the
paper's text (and ../shared/papers.md section 7).

A pure formula on tensors: a module of `methods/`, not of a family package, so that both families import
it and neither imports the other.
"""

from __future__ import annotations

from typing import Literal

from harness.lazy import lazy_module

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")

GraphValues = Literal["logits", "probabilities"]


def coactivation_graph(
    logits: torch.Tensor, top_k: int, temperature: float, values: GraphValues = "logits"
) -> torch.Tensor:
    """(channels, channels): mean over the rows of v v^T, v the row's logits / T (or their softmax) with
    all but the top k zeroed."""
    scores = logits / temperature
    if values == "probabilities":
        scores = F.softmax(scores, dim=1)
    top = scores.topk(min(top_k, scores.shape[1]), dim=1)
    kept = torch.zeros_like(scores).scatter(1, top.indices, top.values)
    return kept.T @ kept / len(logits)


def graph_distance(
    student: torch.Tensor,
    teacher: torch.Tensor,
    top_k: int,
    temperature: float,
    values: GraphValues = "logits",
) -> torch.Tensor:
    """Mean squared difference of the two (rows, channels) score tables' graphs' sorted weighted degrees."""
    deg_s = coactivation_graph(student, top_k, temperature, values).sum(dim=1).sort().values
    deg_t = coactivation_graph(teacher, top_k, temperature, values).sum(dim=1).sort().values
    return ((deg_s - deg_t) ** 2).mean()
