"""Negative prompting only (STEER's other half, g = 0): log p_expert - e log p_expert(. | negative prompt),
the negative prompt being k examples drawn from a pool of real and earlier synthetic examples, so each
output moves away from what is already there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.registries import register_method
from tasks.generation.protocol import GenerationMethod


@register_method("negative")
@dataclass(kw_only=True)
class NegativePrompting(GenerationMethod):
    # 2: the extra streams' output heads folded into one matmul (the same score, other float rounding)
    version: ClassVar[str] = "2"
    e: float = 0.2
    k: int = 5

    def negative_weight(self) -> float:
        return self.e

    def negatives(self) -> int:
        return self.k if self.e else 0
