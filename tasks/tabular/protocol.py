"""What a tabular method must provide: a fresh, unfitted classifier with `fit` and `predict_proba`."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from harness.components import Method


class TabularMethod(Method):
    protocol_of = "tabular"
    # True for a method that embeds categorical features itself: it then reads each categorical feature
    # as one column of codes 0..k-1 (NaN when missing), and the task sets the estimator's
    # `categorical_features` (indices, scikit-learn's convention) before fitting; others read one-hot
    # columns.
    categories_native: ClassVar[bool] = False

    @abc.abstractmethod
    def make_estimator(self, seed: int, n_classes: int) -> Any:
        """An unfitted estimator (scikit-learn API: fit(X, y), predict_proba(X), classes_)."""


def with_imputation(estimator: Any, scale: bool) -> Any:
    """Missing values filled with the training median (and features standardised when `scale`)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [SimpleImputer(strategy="median", keep_empty_features=True)]
    if scale:
        steps.append(StandardScaler())
    return make_pipeline(*steps, estimator)
