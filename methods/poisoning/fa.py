"""Finite Aggregation (Wang et al., 2022): k*d models, each sample's bucket reaching d of them."""

from __future__ import annotations

from dataclasses import dataclass

from harness.registries import register_method
from tasks.poisoning.certify import fa_certificate
from tasks.poisoning.protocol import PoisoningMethod


@register_method("fa")
@dataclass(kw_only=True)
class FiniteAggregation(PoisoningMethod):
    scheme = "fa"

    def certify(self, logits, bucket_models):  # type: ignore[no-untyped-def]
        return fa_certificate(logits, bucket_models)
