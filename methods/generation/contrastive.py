"""Expert guidance only (STEER's contrastive half, e = 0): (1 + g) log p_expert - g log p_base, which
moves probability towards what the fine-tuning taught and away from the generic base distribution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.registries import register_method
from tasks.generation.protocol import GenerationMethod


@register_method("contrastive")
@dataclass(kw_only=True)
class ExpertGuidance(GenerationMethod):
    # 2: the extra streams' output heads folded into one matmul (the same score, other float rounding)
    version: ClassVar[str] = "2"
    g: float = 0.2

    def guidance(self) -> float:
        return self.g
