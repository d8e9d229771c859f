"""DeeBERT (Xin et al., 2020): a classifier per layer; exit once the prediction's entropy is low enough.

Followed: castorini/DeeBERT at 563eac1c23dc274eceaf4309cae110012f6b7bb1, `examples/run_highway_glue.py`
(`train(...)` then `train(..., train_highway=True)`, as `scripts/train_highway.sh` runs it) and
`transformers/modeling_highway_bert.py` (`BertForSequenceClassification.forward`). Training has two
stages of the same length: first the backbone and the final classifier on the final classifier's CE
(the optimizer holds every parameter whose name lacks "highway"), then the exit ("highway") heads alone on
the sum of their CEs, the final layer's highway excluded, with the backbone out of the optimizer, so it
is left exactly as the first stage made it. `training="joint"` keeps the earlier variant: everything at
once on the mean CE over all layers.

Exit (`BertEncoder.forward`, `entropy`): after layer i, exit with the highway's logits when their entropy
-sum p ln p (nats) is below `entropy_threshold`, strictly; else the final classifier after the last layer.
The official also tests the last layer's highway, one its training leaves untrained (its loss excludes
it); here the last layer is always the final classifier. Its evaluation runs batch 1; here each example
is its own.

Left as in this benchmark's other methods: each exit head is one Linear on the task's pooled state (the
official highway adds a copy of BERT's pooler before its dropout and Linear).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.early_exit.protocol import EarlyExitMethod, TrainingStage

F = lazy_module("torch.nn.functional")


@register_method("deebert")
@dataclass(kw_only=True)
class DeeBERT(EarlyExitMethod):
    version: ClassVar[str] = "2"  # the official two-stage training
    exit_params = ("entropy_threshold",)
    entropy_threshold: float = 0.3  # nats
    training: Literal["two-stage", "joint"] = "two-stage"

    def stages(self, modules):  # type: ignore[no-untyped-def]
        classifiers = modules["classifiers"]
        if self.training == "joint":
            return super().stages(modules)
        return [
            TrainingStage(backbone=True, heads=list(classifiers[-1].parameters()), loss=self.final_loss),
            TrainingStage(
                backbone=False,
                heads=[p for head in classifiers[:-1] for p in head.parameters()],
                loss=self.exit_heads_loss,
            ),
        ]

    def final_loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        return F.cross_entropy(logits[-1], labels)

    def exit_heads_loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        return sum(F.cross_entropy(layer, labels) for layer in logits[:-1])

    def loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        """The joint variant's loss (the two-stage training uses each stage's own)."""
        return sum(F.cross_entropy(layer, labels) for layer in logits) / len(logits)

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        log_p = F.log_softmax(logits[-1], dim=-1)
        return -(log_p.exp() * log_p).sum(dim=-1) < self.entropy_threshold
