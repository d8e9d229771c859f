"""Reverse KL (the mode-seeking direction of MiniLLM, Gu et al. 2024, here token-level and without its
policy gradient): KL(student || teacher) at temperature T times T^2 on the teacher's k stored channels,
both distributions renormalised over them (the teacher's mass elsewhere is not stored); exact at k =
vocabulary size."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from methods.lm_distillation.sft import next_token_ce
from tasks.lm_distillation.protocol import LMDistillationMethod, TopKLogits, source_log_probs

torch = lazy_module("torch")


def reverse_kl(student: torch.Tensor, teacher: TopKLogits, temperature: float) -> torch.Tensor:
    """Mean over positions of sum_i q_i (log q_i - log p_i) * T^2, i over the teacher's k channels."""
    log_p = source_log_probs(teacher, temperature)
    log_q = (student.gather(-1, teacher.ids) / temperature).log_softmax(dim=-1)
    return (log_q.exp() * (log_q - log_p)).sum(dim=-1).mean() * temperature**2


@register_method("lm-reverse-kd")
@dataclass(kw_only=True)
class ReverseKD(LMDistillationMethod):
    temperature: float = 1.0
    alpha: float = 0.5  # weight of the KL term; CE gets 1 - alpha

    def losses(self, student, targets, teacher):  # type: ignore[no-untyped-def]
        return {
            "ce": (1 - self.alpha) * next_token_ce(student, targets),
            "reverse_kd": self.alpha * reverse_kl(student, teacher, self.temperature),
        }
