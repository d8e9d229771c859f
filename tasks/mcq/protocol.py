"""What an MCQ method provides: option probabilities for test questions, after an optional fit.

`fit` sees the calibration split only (with gold answers); `probabilities` sees test questions without
their answers. A method that edits weights does so on a copy of the model, exposes the edited scorer as
`edited_scorer_` (for the before/after logit-lens plot) and describes the edit in `edits_` (layers,
neurons, heads), which the run's record keeps.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.components import Method
from tasks.mcq.scoring import BatchHook, Scorer
from tasks.mcq.suites import Question


class MCQMethod(Method):
    protocol_of = "mcq"
    edits_: dict[str, Any] | None = None
    edited_scorer_: Scorer | None = None

    def fit(self, scorer: Scorer, calibration: Sequence[Question]) -> None:
        """Learn from the calibration split; most scorers need nothing."""

    def lens_hook(self, gold: np.ndarray) -> BatchHook | None:
        """How the edited model's lens curve should run its passes, given the lens questions' gold
        answers; None for a plain pass. A diagnostic only: predictions never see gold."""
        return None

    @abc.abstractmethod
    def probabilities(self, scorer: Scorer, questions: Sequence[Question]) -> np.ndarray:
        """(questions, options) probability of each option, in each question's own option order."""


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def divide_prior(probabilities: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """P(option) proportional to P_observed(option's position) / prior(position), renormalised: the
    debiasing step shared by PriDe and contextual calibration. A uniform prior leaves P unchanged."""
    out = probabilities / np.clip(prior, 1e-12, None)
    return out / out.sum(axis=-1, keepdims=True)
