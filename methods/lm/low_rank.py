"""A low-rank factorised head: h -> (d x r) -> (r x V)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.registries import register_method
from tasks.lm.protocol import HeadContext, OutputHeadMethod


@register_method("low-rank")
@dataclass(kw_only=True)
class LowRank(OutputHeadMethod):
    rank: int = 64

    def make_head(self, context: HeadContext):  # type: ignore[no-untyped-def]
        from tasks.lm.heads import LowRankHead

        return LowRankHead(context.dim, context.vocab, self.rank)
