"""FA+ROE (Rezaei et al., 2023): Finite Aggregation's models, aggregated by a run-off election."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.registries import register_method
from tasks.poisoning.certify import fa_roe_certificate
from tasks.poisoning.protocol import PoisoningMethod


@register_method("fa+roe")
@dataclass(kw_only=True)
class FiniteAggregationRunOff(PoisoningMethod):
    scheme = "fa"
    version: ClassVar[str] = "2"  # 2: official fa_roe_certify.py pair term and strict round 2

    def certify(self, logits, bucket_models):  # type: ignore[no-untyped-def]
        return fa_roe_certificate(logits, bucket_models)
