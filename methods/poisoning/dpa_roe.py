"""DPA+ROE (Rezaei et al., 2023): DPA's models, aggregated by a run-off election between the top two."""

from __future__ import annotations

from dataclasses import dataclass

from harness.registries import register_method
from tasks.poisoning.certify import dpa_roe_certificate
from tasks.poisoning.protocol import PoisoningMethod


@register_method("dpa+roe")
@dataclass(kw_only=True)
class DPARunOff(PoisoningMethod):
    scheme = "dpa"

    def certify(self, logits, bucket_models):  # type: ignore[no-untyped-def]
        return dpa_roe_certificate(logits)
