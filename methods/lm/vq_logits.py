"""VQ-Logits (arXiv 2505.10202): K code vectors scattered to the vocabulary by a token->code map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.registries import register_method
from tasks.lm.protocol import HeadContext, OutputHeadMethod


@register_method("vq-logits")
@dataclass(kw_only=True)
class VQLogits(OutputHeadMethod):
    # 2: codes start at their tokens' mean warm-start vector, biases at the within-code unigram log-share
    version = "2"
    codes: int = 1024  # K
    mapping: Literal["kmeans", "frequency", "random"] = "kmeans"  # kmeans needs a warm-start embedding
    learn_mapping: bool = False  # reassign tokens to their nearest code after each training phase
    token_bias: bool = True  # tells the tokens of one code apart

    def make_head(self, context: HeadContext):  # type: ignore[no-untyped-def]
        import torch

        from tasks.lm.heads import VQLogitsHead, code_means, frequency_buckets, kmeans

        k = min(self.codes, context.vocab)
        generator = torch.Generator().manual_seed(context.seed)
        mapping_kind = (
            self.mapping if (self.mapping != "kmeans" or context.warm_start is not None) else "frequency"
        )
        if mapping_kind == "kmeans":
            codebook, assignment = kmeans(context.warm_start, k, context.seed)
        elif mapping_kind == "frequency":
            assignment = frequency_buckets(torch.as_tensor(context.token_counts), k)
            codebook = torch.randn(k, context.dim, generator=generator) * context.dim**-0.5
        else:
            assignment = torch.randint(k, (context.vocab,), generator=generator)
            codebook = torch.randn(k, context.dim, generator=generator) * context.dim**-0.5
        counts = torch.as_tensor(context.token_counts, dtype=torch.float32) + 1.0
        if context.warm_start is not None:
            codebook = code_means(context.warm_start.float(), assignment, k, codebook)
        head = VQLogitsHead(codebook, assignment, self.token_bias)
        if self.token_bias:
            with torch.no_grad():  # start as a unigram model within each code
                code_total = torch.zeros(k).index_add(0, assignment, counts)
                head.bias.copy_(counts.log() - code_total[assignment].log())
        head.reference_vectors = context.warm_start  # for learn_mapping
        head.mapping_kind = mapping_kind
        return head
