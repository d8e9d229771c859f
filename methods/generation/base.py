"""Plain top-k sampling from the base model, which has never seen the domain: the diversity and
coherence reference, with the lowest fidelity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from harness.registries import register_method
from tasks.generation.protocol import GenerationMethod


@register_method("base")
@dataclass(kw_only=True)
class BaseSampling(GenerationMethod):
    sampler: ClassVar[Literal["base", "expert"]] = "base"
