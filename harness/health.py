"""Is a trained model alive? The health figure of its test predictions, and the `degenerate` flag.

A model that predicts one class for nearly everything (a collapsed student, a learner that never left
its initialisation) still gets finite metrics and would be stored as `ok`; its top-1 can even look like
chance rather than failure. Tasks that train or edit a classifier report the share of the most frequent
prediction as the never-gated metric `top_prediction_share`, and keep in the record's details
(`details["health"]`) that share, the same share of the true labels, the prediction entropy, and the
verdict:

    degenerate  <=>  top_prediction_share >= 0.95  and  the labels' own top share <= 0.85

The second condition keeps a faithful model of a skewed test set (95% one class) from being flagged: a
model is degenerate only when it concentrates its predictions at least 10 points more than the labels
do. Reports mark the cell, and `compare` treats a cell that turned degenerate as worse.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from harness.components import Metric

if TYPE_CHECKING:
    import numpy as np

HEALTH_METRIC_NAME = "top_prediction_share"
# A model is degenerate when this share of its test predictions is one class ...
DEGENERATE_SHARE = 0.95
# ... while the true labels' most frequent class holds at most this share.
LABEL_SHARE_LIMIT = 0.85
RULE = (
    f"{HEALTH_METRIC_NAME} >= {DEGENERATE_SHARE} while the test labels' most frequent class "
    f"holds <= {LABEL_SHARE_LIMIT}"
)

HEALTH_METRIC = Metric(
    HEALTH_METRIC_NAME,
    higher_is_better=False,
    gate=False,
    required=False,
    description="share of test predictions in the most frequent class (health figure, never gated)",
)


def _top_share(values: np.ndarray) -> float:
    import numpy as np

    _, counts = np.unique(values, return_counts=True)
    return float(counts.max() / counts.sum())


def prediction_health(predicted: Any, labels: Any) -> dict[str, Any]:
    """The health figures of `predicted` class ids against the true `labels` (same length, non-empty).

    `prediction_entropy` is in bits over the predicted classes; `entropy_ratio` divides it by the
    entropy of the labels (1: as spread as the labels, 0: one class)."""
    import numpy as np

    pred = np.asarray(predicted).ravel()
    gold = np.asarray(labels).ravel()
    if pred.size == 0 or pred.size != gold.size:
        raise ValueError(f"health needs as many predictions as labels, got {pred.size} and {gold.size}")
    top, label_top = _top_share(pred), _top_share(gold)
    entropy, label_entropy = _entropy_bits(pred), _entropy_bits(gold)
    return {
        HEALTH_METRIC_NAME: top,
        "label_top_share": label_top,
        "prediction_entropy": entropy,
        "entropy_ratio": entropy / label_entropy if label_entropy > 0 else 1.0,
        "predicted_classes": int(np.unique(pred).size),
        "label_classes": int(np.unique(gold).size),
        "degenerate": bool(top >= DEGENERATE_SHARE and label_top <= LABEL_SHARE_LIMIT),
        "rule": RULE,
    }


def _entropy_bits(values: np.ndarray) -> float:
    import numpy as np

    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(max(0.0, -sum(q * math.log2(q) for q in p)))


def report_health(ctx: Any, predicted: Any, labels: Any) -> float:
    """Keep the health figures in `ctx.details["health"]` and return the metric's value."""
    health = prediction_health(predicted, labels)
    ctx.details["health"] = health
    return health[HEALTH_METRIC_NAME]


def is_degenerate(details: Any) -> bool:
    """Whether a record's details say its model is degenerate (False when they say nothing)."""
    health = details.get("health") if isinstance(details, dict) else None
    return isinstance(health, dict) and health.get("degenerate") is True
