"""Support vector machine on standardised features, its scores Platt-scaled into probabilities
(sigmoid calibration fitted by internal 5-fold cross-validation, as libsvm's `probability=True` did)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.registries import register_method
from tasks.tabular.protocol import TabularMethod, with_imputation


@register_method("svm")
@dataclass(kw_only=True)
class SupportVectorMethod(TabularMethod):
    C: float = 1.0
    kernel: str = "rbf"
    gamma: str = "scale"

    def make_estimator(self, seed: int, n_classes: int) -> Any:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        svc = SVC(C=self.C, kernel=self.kernel, gamma=self.gamma, random_state=seed)
        platt = CalibratedClassifierCV(estimator=svc, method="sigmoid", cv=5, ensemble=False)
        return with_imputation(platt, scale=True)
