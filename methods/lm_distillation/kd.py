"""Token-level KD (Hinton et al. 2015, per next-token position): forward KL(teacher || student) at
temperature T times T^2, the teacher's distribution renormalised over its k stored logits (exact at
k = vocabulary size), the student's over the whole vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from methods.lm_distillation.sft import next_token_ce
from tasks.lm_distillation.protocol import (
    LMDistillationMethod,
    TopKLogits,
    source_log_probs,
    student_log_probs_at,
)

torch = lazy_module("torch")


def forward_kl(student: torch.Tensor, teacher: TopKLogits, temperature: float) -> torch.Tensor:
    """Mean over positions of sum_i p_i (log p_i - log q_i) * T^2, i over the teacher's k channels."""
    log_p = source_log_probs(teacher, temperature)
    log_q = student_log_probs_at(student, teacher.ids, temperature)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean() * temperature**2


@register_method("lm-kd")
@dataclass(kw_only=True)
class TokenLevelKD(LMDistillationMethod):
    temperature: float = 1.0  # T of both softmaxes; LM distillation (MiniLLM, DistiLLM) uses 1
    alpha: float = 0.5  # weight of the KL term; CE gets 1 - alpha

    def losses(self, student, targets, teacher):  # type: ignore[no-untyped-def]
        return {
            "ce": (1 - self.alpha) * next_token_ce(student, targets),
            "kd": self.alpha * forward_kl(student, teacher, self.temperature),
        }
