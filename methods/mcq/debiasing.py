"""Scorers that leave the model alone: the plain letter argmax, three debiasing peers, and cloze scoring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.registries import register_method
from tasks.mcq.protocol import MCQMethod, divide_prior, softmax
from tasks.mcq.scoring import Scorer
from tasks.mcq.suites import Question


@register_method("zero-shot")
@dataclass(kw_only=True)
class ZeroShot(MCQMethod):
    """Softmax over the option letters' logits: the biased baseline every other method is measured by."""

    def probabilities(self, scorer: Scorer, questions: Sequence[Question]) -> np.ndarray:
        return softmax(scorer.letter_logits(questions))


def cyclic_probabilities(scorer: Scorer, questions: Sequence[Question]) -> np.ndarray:
    """(shifts, questions, options): each cyclic shift's probabilities, mapped back to the original order
    (option j sits at position (j + shift) mod k in shift `shift`)."""
    k = scorer.options
    out = np.zeros((k, len(questions), k))
    for shift in range(k):
        observed = softmax(scorer.letter_logits([q.rotated(shift) for q in questions]))
        out[shift] = observed[:, (np.arange(k) + shift) % k]
    return out


@register_method("cyclic-permutation")
@dataclass(kw_only=True)
class CyclicPermutation(MCQMethod):
    """Every option is shown at every position once (k passes a question); probabilities are averaged,
    so a preference for a position spreads evenly over the options."""

    def probabilities(self, scorer: Scorer, questions: Sequence[Question]) -> np.ndarray:
        return cyclic_probabilities(scorer, questions).mean(axis=0)


class PositionPriorDivision(MCQMethod):
    """A method that fits a prior over option positions and divides the test probabilities by it."""

    prior_ = None  # (options,) learned by fit (not a parameter, hence no annotation)

    def probabilities(self, scorer: Scorer, questions: Sequence[Question]) -> np.ndarray:
        assert self.prior_ is not None, "fit first"
        return divide_prior(softmax(scorer.letter_logits(questions)), self.prior_)


@register_method("pride")
@dataclass(kw_only=True)
class PriDe(PositionPriorDivision):
    """Prior estimation debiasing (Zheng et al., ICLR 2024). Under cyclic shifts each option visits each
    position once, so the mean over shifts of log P_observed(position i) is the log prior of position i
    up to a constant; the prior is its softmax, averaged over the calibration questions, and test
    probabilities are divided by it (one pass a test question).

    Followed: chujiezheng/LLM-MCQ-Bias at 2ae2f40c77006f7a00a4675bdfb30151c2406691, `code/debias_utils.py`
    (`simple`: one sample's prior) and `code/debias_pride.py` (the samples' priors averaged; a test
    question's scores log P - log prior). The same formula, held out on purpose: the official draws its
    prior samples from the test questions themselves (5% of them, scored with the full permutation
    average), here they come from the calibration split (`calibration_share` of it) and every test
    question gets one pass. Logs clip at 1e-12 where the official adds 1e-10 (priors differ by under
    1e-8). A letter's probability is the benchmark's shared one (one token form per letter,
    `Scorer.letter_ids`), where the official's `eval_clm_utils.py` softmaxes over both forms (" A" and
    "A") and adds them."""

    calibration_share: float = 1.0  # share of the calibration split used to estimate the prior

    def fit(self, scorer: Scorer, calibration: Sequence[Question]) -> None:
        count = max(1, round(len(calibration) * self.calibration_share))
        observed = cyclic_probabilities(scorer, calibration[:count])  # (shifts, questions, options)
        log_prior = np.log(np.clip(by_position_of(observed), 1e-12, None)).mean(axis=0)  # (questions, k)
        self.prior_ = softmax(log_prior).mean(axis=0)


def by_position_of(observed: np.ndarray) -> np.ndarray:
    """(shifts, questions, positions) from cyclic probabilities given in option order: in shift s,
    position i holds option (i - s) mod k."""
    k = observed.shape[-1]
    return np.stack([observed[s][:, (np.arange(k) - s) % k] for s in range(k)])


@register_method("contextual-calibration")
@dataclass(kw_only=True)
class ContextualCalibration(PositionPriorDivision):
    """Contextual calibration (Zhao et al., 2021): the letter distribution on content-free questions
    ("N/A", "[MASK]", empty: question and options alike) is the model's prior over positions; test
    probabilities are divided by it. Needs no calibration data.

    Followed: tonyzhaozh/few-shot-learning at e04d8643be91c2cce63f33e07760ff75d5aa3ad0,
    `run_classification.py` (`get_p_content_free`, `eval_accuracy` with mode "diagonal_W"): each label's
    probability is its token's under the softmax over the whole vocabulary, averaged over the
    content-free inputs before it is normalised over the labels, so an input that puts more mass on the
    letters weighs more (version 1 normalised each input over the letters first); a test question's
    letter distribution times diag(1 / prior)."""

    version: ClassVar[str] = "2"  # the official average of unnormalised content-free probabilities
    content_free: tuple[str, ...] = ("N/A", "[MASK]", "")

    def fit(self, scorer: Scorer, calibration: Sequence[Question]) -> None:
        blanks = [Question(text, (text,) * scorer.options, 0) for text in self.content_free]
        mass = np.exp(scorer.letter_logits(blanks, log_probabilities=True)).mean(axis=0)
        self.prior_ = mass / mass.sum()


@register_method("cloze")
@dataclass(kw_only=True)
class Cloze(MCQMethod):
    """The option texts scored as continuations of `Question: .. Answer:` (summed log-probability), with
    no letters at all: immune to letter anchoring by construction, and the reference for what the model
    knows. Batched: each context runs once and its cache serves all the options (the scores of one pass
    per option, to float rounding)."""

    def probabilities(self, scorer: Scorer, questions: Sequence[Question]) -> np.ndarray:
        return softmax(scorer.cloze_log_likelihoods(questions))
