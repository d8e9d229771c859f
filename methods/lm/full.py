"""The full softmax head: one row of d weights (and a bias) per vocabulary token; with a warm start
(retrofit) it is the pretrained head itself, kept untouched as the reference."""

from __future__ import annotations

from dataclasses import dataclass

from harness.registries import register_method
from tasks.lm.protocol import HeadContext, OutputHeadMethod


@register_method("full")
@dataclass(kw_only=True)
class FullSoftmax(OutputHeadMethod):
    tied: bool = True  # from scratch: share the input embedding's weights (the task ties them)

    def make_head(self, context: HeadContext):  # type: ignore[no-untyped-def]
        from tasks.lm.heads import FullHead

        if context.pretrained_head:
            return FullHead(context.dim, context.vocab, context.warm_start, bias=False)
        return FullHead(context.dim, context.vocab)
