"""PABEE (Zhou et al., 2020): layer i's loss weighted by i; exit once the argmax has stayed the same for
`patience` consecutive layers."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.early_exit.protocol import EarlyExitMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


@register_method("pabee")
@dataclass(kw_only=True)
class PABEE(EarlyExitMethod):
    exit_params = ("patience",)
    patience: int = 6  # the paper's default for 12-layer ALBERT

    def loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        weights = range(1, len(logits) + 1)
        return sum(
            w * F.cross_entropy(layer, labels) for w, layer in zip(weights, logits, strict=True)
        ) / sum(weights)

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        if len(logits) <= self.patience:
            return torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        predictions = logits[-(self.patience + 1) :].argmax(dim=-1)  # this layer and `patience` before it
        return (predictions == predictions[-1]).all(dim=0)
