"""L2-regularised logistic regression on standardised features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.registries import register_method
from tasks.tabular.protocol import TabularMethod, with_imputation


@register_method("logreg")
@dataclass(kw_only=True)
class LogisticRegressionMethod(TabularMethod):
    C: float = 1.0  # inverse regularisation strength
    max_iter: int = 2000

    def make_estimator(self, seed: int, n_classes: int) -> Any:
        from sklearn.linear_model import LogisticRegression

        return with_imputation(
            LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=seed), scale=True
        )
