"""What a language-model distillation method provides: named loss terms on the student's next-token logits
against one source model's stored top-k logits.

A batch is `batch` windows of `length` tokens; at every position the student gives logits over the whole
vocabulary and the source gives its k largest logits (values and ids, the artifact the task stores). The
task sums the terms a method returns; with two source models (InfiGFusion's fusion setting) it asks once
per source and averages each term over the sources, so "ce", which does not depend on the source, is
counted once. The helpers below are the pieces token-level losses share: the source's distribution over
its k channels and the student's log-probabilities at those channels.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.components import Method
from harness.errors import UserError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TopKLogits:
    """A source model's k largest next-token logits at each position of a batch, largest first."""

    values: torch.Tensor  # (batch, length, k) float logits
    ids: torch.Tensor  # (batch, length, k) long vocabulary ids

    @property
    def k(self) -> int:
        return int(self.values.shape[-1])

    def first(self, k: int) -> TopKLogits:
        """The k largest of the stored ones (they are stored largest first)."""
        return TopKLogits(self.values[..., :k], self.ids[..., :k])


class LMDistillationMethod(Method):
    protocol_of = "lm_distillation"

    def teacher_channels(self) -> int:
        """The fewest of a source's top logits per position the method needs stored; the task refuses a
        method that needs more than it stored."""
        return 1

    def check_param_ranges(self) -> None:
        """A one-line error for a parameter out of range (the task calls it before loading anything)."""
        for name, value in self.params().items():
            bad = (
                ("temperature" in name and not value > 0 and "must be > 0")
                or (name == "alpha" and not 0 <= value <= 1 and "must be in [0, 1]")
                or (name == "weight" and not value >= 0 and "must be >= 0")
                or (name == "top_k" and not value >= 1 and "must be at least 1")
            )
            if bad:
                raise UserError(f"method '{self.name}': parameter '{name}' {bad}, got {value}")

    @abc.abstractmethod
    def losses(
        self, student: torch.Tensor, targets: torch.Tensor, teacher: TopKLogits
    ) -> dict[str, torch.Tensor]:
        """Named loss terms for one batch: `student` (batch, length, vocab) logits, `targets` (batch,
        length) the next tokens; "ce" is the supervised term."""


def source_log_probs(teacher: TopKLogits, temperature: float) -> torch.Tensor:
    """(batch, length, k) the source's log-probabilities at temperature T, renormalised over its k stored
    channels: exactly its distribution when k is the vocabulary size."""
    return (teacher.values / temperature).log_softmax(dim=-1)


def student_log_probs_at(student: torch.Tensor, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """(batch, length, k) the student's full-vocabulary log-probabilities at temperature T, read at `ids`."""
    return (student / temperature).log_softmax(dim=-1).gather(-1, ids)
