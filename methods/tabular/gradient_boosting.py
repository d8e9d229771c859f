"""Histogram gradient boosting (LightGBM-style), which handles missing values natively."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.registries import register_method
from tasks.tabular.protocol import TabularMethod


@register_method("hist-gb")
@dataclass(kw_only=True)
class HistGradientBoostingMethod(TabularMethod):
    learning_rate: float = 0.1
    max_iter: int = 100  # boosting rounds
    max_leaf_nodes: int = 31
    l2_regularization: float = 0.0

    def make_estimator(self, seed: int, n_classes: int) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=seed,
        )
