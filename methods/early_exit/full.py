"""No early exit: the last layer's classifier, the reference for speed-ups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.early_exit.protocol import EarlyExitMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


@register_method("full-depth")
@dataclass(kw_only=True)
class FullDepth(EarlyExitMethod):
    exits_early: ClassVar[bool] = False

    def loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        return F.cross_entropy(logits[-1], labels)

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        return torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
