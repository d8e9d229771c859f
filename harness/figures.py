"""Figures a task declares for the HTML report, beyond the per-task chart of its primary metric.

A task names what its family's papers plot, as data (no drawing code): the report draws each declaration
from the per-seed metric values of the board's complete cells, so a figure works the same from fresh
records and from a saved baseline. `Task.tradeoff` (two metrics against each other) is drawn as well.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDots:
    """One dot-and-whisker panel per metric: each method's mean with its 95% interval over seeds
    (e.g. distillation's gain over a CE-only student, auctions' welfare and revenue ratios)."""

    metrics: tuple[str, ...]
    title: str = ""


@dataclass(frozen=True)
class MetricSeries:
    """Metrics that share a prefix and differ by a suffix, drawn as one line per method against the suffix:
    a number is a position on the x axis (poisoning's `certified_accuracy_r8` is radius 8), a letter or
    word a category (mcq's `accuracy_gold_B`). `at_zero` names a metric that is the series at x = 0
    (certified accuracy at radius 0 is the clean accuracy)."""

    prefix: str
    x_label: str
    y_label: str
    title: str = ""
    at_zero: str | None = None
    log_x: bool = False  # numeric suffixes spread over powers of two read better on a symmetric-log axis


Figure = MetricDots | MetricSeries

# The figures of the families whose task modules do not declare their own yet (a task's `figures`, when
# not empty, replaces these): what each family's papers plot.
FAMILY_FIGURES: dict[str, tuple[Figure, ...]] = {
    "poisoning": (
        MetricSeries(
            "certified_accuracy_r",
            "radius (poisoned training samples)",
            "certified accuracy",
            title="certified accuracy against radius",
            at_zero="clean_accuracy",
            log_x=True,
        ),
    ),
    "distillation": (MetricDots(("gain_over_ce",), title="gain over a CE-only student"),),
    "mcq": (
        MetricSeries("accuracy_gold_", "gold position", "accuracy", title="accuracy per gold position"),
        MetricDots(("anchored_rate",), title="share of answers on the first option"),
    ),
    "auctions": (MetricDots(("welfare_ratio", "revenue_ratio"), title="welfare and revenue ratios"),),
}


def figures_of(task_cls: type) -> tuple[Figure, ...]:
    return getattr(task_cls, "figures", ()) or FAMILY_FIGURES.get(getattr(task_cls, "family", ""), ())
