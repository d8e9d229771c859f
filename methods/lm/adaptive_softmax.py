"""Adaptive softmax (Grave et al., 2017) as torch ships it: frequent tokens in a head cluster, rare ones in
tail clusters of reduced dimension."""

from __future__ import annotations

from dataclasses import dataclass

from harness.registries import register_method
from tasks.lm.protocol import HeadContext, OutputHeadMethod


@register_method("adaptive-softmax")
@dataclass(kw_only=True)
class AdaptiveSoftmax(OutputHeadMethod):
    cutoffs: tuple[int, ...] = (2000, 10000)
    div_value: float = 4.0

    def make_head(self, context: HeadContext):  # type: ignore[no-untyped-def]
        import torch

        from tasks.lm.heads import AdaptiveHead

        order = torch.argsort(
            torch.as_tensor(context.token_counts, dtype=torch.float64), descending=True, stable=True
        )
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order))
        cutoffs = [c for c in self.cutoffs if c < context.vocab]
        return AdaptiveHead(context.dim, context.vocab, rank, cutoffs, self.div_value)
