"""PABEE (Zhou et al., 2020): layer i's loss weighted by i; exit once the argmax has stayed the same for
`patience` consecutive layers.

Followed: JetRunner/PABEE at 6080b3ee425e905f70a0bc47d4ddffa497851bf3, `pabee/modeling_albert.py` and
`pabee/modeling_bert.py` (`AlbertModel.forward` / `BertModel.forward` and the classification heads'
loss). The loss is sum_i i * CE_i / sum_i i over layers i = 1..L. The counter starts at 0 after layer 1,
goes up by one at each layer whose argmax equals the layer before's and back to 0 otherwise; the model
exits at the first layer where it reaches `patience`, i.e. once `patience` + 1 layers in a row agree
(`patience` 6 exits after layer 7 at the earliest), else after the last layer. The official checks the
batch as a whole (its inference script runs batch 1); here each example is its own. `patience` 0 is the
official's switch for "no early exit": every example takes the last layer's classifier.

Left as in this benchmark's other early-exit heads (full-depth, DeeBERT), so that the exit rules are
compared on the same heads: each layer's classifier is one Linear on the task's pooled state, where the
official passes each layer's [CLS] state through the backbone's one pooler and, in training, a dropout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.early_exit.protocol import EarlyExitMethod

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


@register_method("pabee")
@dataclass(kw_only=True)
class PABEE(EarlyExitMethod):
    # 2: `patience` 0 never exits early, as the official (version 1 exited every example after layer 1)
    version: ClassVar[str] = "2"
    exit_params = ("patience",)
    patience: int = 6  # the paper's default for 12-layer ALBERT; 0: no early exit

    @property
    def exits_early(self) -> bool:  # type: ignore[override]
        """Patience 0 never exits early: the timed path then runs no intermediate head, as full-depth."""
        return self.patience > 0

    def loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        weights = range(1, len(logits) + 1)
        return sum(
            w * F.cross_entropy(layer, labels) for w, layer in zip(weights, logits, strict=True)
        ) / sum(weights)

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        if self.patience == 0 or len(logits) <= self.patience:
            return torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        predictions = logits[-(self.patience + 1) :].argmax(dim=-1)  # this layer and `patience` before it
        return (predictions == predictions[-1]).all(dim=0)
