"""The anchored-bias paper's metrics, from option probabilities and gold positions."""

from __future__ import annotations

import numpy as np

from harness.components import Metric
from tasks.mcq.suites import LETTERS

MAX_OPTIONS = 5

MCQ_METRICS = (
    Metric("accuracy", True, tolerance=0.01),
    Metric("anchored_rate", False, tolerance=0.01, description="share of predictions on the first option"),
    Metric("recall_std", False, tolerance=0.01, description="std of the accuracy per gold position"),
    Metric("first_minus_gold", False, tolerance=0.01, description="mean P(first option) - P(gold option)"),
    *(
        Metric(f"accuracy_gold_{letter}", True, tolerance=0.02, required=False,
               description=f"accuracy on the questions whose answer is {letter}")
        for letter in LETTERS[:MAX_OPTIONS]
    ),
    Metric("questions_per_second", True, gate=False, description="test questions scored a second"),
)  # fmt: skip


def mcq_metrics(probabilities: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Accuracy, anchored rate, recall std across gold positions, mean P(first) - P(gold), and the
    accuracy for each gold position present."""
    predicted = probabilities.argmax(axis=1)
    correct = predicted == gold
    positions = [p for p in range(probabilities.shape[1]) if (gold == p).any()]
    recall = {p: float(correct[gold == p].mean()) for p in positions}
    rows = np.arange(len(gold))
    out = {
        "accuracy": float(correct.mean()),
        "anchored_rate": float((predicted == 0).mean()),
        "recall_std": float(np.std(list(recall.values()))),
        "first_minus_gold": float((probabilities[:, 0] - probabilities[rows, gold]).mean()),
    }
    out.update({f"accuracy_gold_{LETTERS[p]}": r for p, r in recall.items()})
    return out
