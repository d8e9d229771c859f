"""Multi-layer perceptron trained with Adam, on standardised features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.registries import register_method
from tasks.tabular.protocol import TabularMethod, with_imputation


@register_method("mlp")
@dataclass(kw_only=True)
class MLPMethod(TabularMethod):
    hidden_layer_sizes: tuple[int, ...] = (128,)
    alpha: float = 1e-4  # L2 penalty
    learning_rate_init: float = 1e-3
    max_iter: int = 300  # epochs

    def make_estimator(self, seed: int, n_classes: int) -> Any:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        mlp = MLPClassifier(
            hidden_layer_sizes=self.hidden_layer_sizes,
            alpha=self.alpha,
            learning_rate_init=self.learning_rate_init,
            max_iter=self.max_iter,
            random_state=seed,
        )
        return with_imputation(mlp, scale=True)
