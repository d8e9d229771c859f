"""STEER (arXiv 2308.07645): expert guidance and negative prompting together,
(1 + g) log p_expert - g log p_base - e log p_expert(. | negative prompt), renormalised, top-k 10.
The paper's defaults g = 0.2, e = 0.2, k = 5 (the official code's STEERPipeline defaults to e = 0.6 and
k = 10, its example call to g = e = 0.2, k = 10; papers.md's k = 5 is kept).

Followed: charlieoneill11/diverse-llm at 7bc6fc0 (`main/steer.py` `STEER.__call__`, unchanged in its
formula since 74d2e77; `main/inference.py` `STEERPipeline`), as tasks/generation/steering.py computes it:
its score on random logits equals the official's after `renormalize_logits` to 0 (the three
log-probabilities) and to 1.5e-8 in probability (the folded head)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.registries import register_method
from tasks.generation.protocol import GenerationMethod


@register_method("steer")
@dataclass(kw_only=True)
class Steer(GenerationMethod):
    # 2: the extra streams' output heads folded into one matmul (the same score, other float rounding)
    version: ClassVar[str] = "2"
    g: float = 0.2
    e: float = 0.2
    k: int = 5

    def guidance(self) -> float:
        return self.g

    def negative_weight(self) -> float:
        return self.e

    def negatives(self) -> int:
        return self.k if self.e else 0
