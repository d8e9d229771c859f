"""DeeBERT (Xin et al., 2020): a classifier per layer; exit once the prediction's entropy is low enough."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.early_exit.protocol import EarlyExitMethod

F = lazy_module("torch.nn.functional")


@register_method("deebert")
@dataclass(kw_only=True)
class DeeBERT(EarlyExitMethod):
    exit_params = ("entropy_threshold",)
    entropy_threshold: float = 0.3  # nats

    def loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        return sum(F.cross_entropy(layer, labels) for layer in logits) / len(logits)

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        log_p = F.log_softmax(logits[-1], dim=-1)
        return -(log_p.exp() * log_p).sum(dim=-1) < self.entropy_threshold
