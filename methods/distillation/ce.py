"""Cross-entropy only: the student trained without a teacher, the reference every method is measured by."""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.distillation.protocol import DistillationMethod

F = lazy_module("torch.nn.functional")


@register_method("ce")
@dataclass(kw_only=True)
class CrossEntropy(DistillationMethod):
    uses_teacher = False
    label_smoothing: float = 0.0

    def losses(self, out, heads, teacher_logits, labels):  # type: ignore[no-untyped-def]
        return {"ce": F.cross_entropy(out.logits, labels, label_smoothing=self.label_smoothing)}
