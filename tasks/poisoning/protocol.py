"""What a poisoning method provides: a partition scheme and an aggregation with its certificate."""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

import numpy as np

from harness.components import Method


class PoisoningMethod(Method):
    protocol_of = "poisoning"
    # "dpa": k disjoint partitions, one model each; "fa": k*d buckets, each reaching d of k*d models.
    scheme: ClassVar[Literal["dpa", "fa"]]

    @abc.abstractmethod
    def certify(self, logits: np.ndarray, bucket_models: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Prediction and certified radius per test sample from the base models' logits
        (models, samples, classes); `bucket_models` is the FA map (None for DPA)."""
