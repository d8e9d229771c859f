"""Deep Partition Aggregation (Levine & Feizi, 2021): plurality vote of k models on disjoint partitions."""

from __future__ import annotations

from dataclasses import dataclass

from harness.registries import register_method
from tasks.poisoning.certify import dpa_certificate
from tasks.poisoning.protocol import PoisoningMethod


@register_method("dpa")
@dataclass(kw_only=True)
class DPA(PoisoningMethod):
    scheme = "dpa"

    def certify(self, logits, bucket_models):  # type: ignore[no-untyped-def]
        return dpa_certificate(logits)
