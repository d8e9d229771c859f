"""Random forest of fully grown trees on bootstrap samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.registries import register_method
from tasks.tabular.protocol import TabularMethod, with_imputation


@register_method("random-forest")
@dataclass(kw_only=True)
class RandomForestMethod(TabularMethod):
    n_estimators: int = 200
    max_features: str = "sqrt"
    min_samples_leaf: int = 1

    def make_estimator(self, seed: int, n_classes: int) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            n_jobs=1,  # the harness parallelises across runs, not inside one
            random_state=seed,
        )
        return with_imputation(forest, scale=False)
