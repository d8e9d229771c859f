"""A collapsed tabular learner for the health-figure tests: it predicts the training folds' most frequent
class for every row (scikit-learn's DummyClassifier), a real model that has learnt nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lb_diagnostics import DiagnosticMethod

from harness.registries import register_method
from tasks.tabular.protocol import TabularMethod


@register_method("probe-one-class")
@dataclass(kw_only=True)
class OneClass(TabularMethod):
    strategy: str = field(default="most_frequent", metadata={"help": "DummyClassifier's rule, from metadata"})
    # a comment above a field documents it
    # over two lines
    spare: int = 0
    unused: float = 1.5  # a trailing comment documents it

    def make_estimator(self, seed: int, n_classes: int) -> Any:
        from sklearn.dummy import DummyClassifier

        return DummyClassifier(strategy=self.strategy, random_state=seed)


@register_method("probe-markup-raise")
@dataclass(kw_only=True)
class MarkupRaise(DiagnosticMethod):
    """Fails with a message that reads as rich markup: the terminal must print it as text."""

    def score(self, seed: int) -> float:
        raise ValueError("bad [/x] value [bold]")
