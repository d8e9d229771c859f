"""Plain top-k sampling from the fine-tuned expert: STEER with g = e = 0."""

from __future__ import annotations

from dataclasses import dataclass

from harness.registries import register_method
from tasks.generation.protocol import GenerationMethod


@register_method("expert")
@dataclass(kw_only=True)
class ExpertSampling(GenerationMethod):
    pass
