"""DPA+ROE (Rezaei et al., 2023): DPA's models, aggregated by a run-off election between the top two."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.registries import register_method
from tasks.poisoning.certify import dpa_roe_certificate
from tasks.poisoning.protocol import PoisoningMethod


@register_method("dpa+roe")
@dataclass(kw_only=True)
class DPARunOff(PoisoningMethod):
    scheme = "dpa"
    version: ClassVar[str] = "2"  # 2: round 2 counts strict preferences, as the official dpa_roe_certify.py

    def certify(self, logits, bucket_models):  # type: ignore[no-untyped-def]
        return dpa_roe_certificate(logits)
