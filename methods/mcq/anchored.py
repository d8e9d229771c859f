"""The anchored-bias fixes (papers.md, section 1): find what writes " A" into the last position, then
update those MLP value vectors or recalibrate those attention heads. Fitted on the calibration split,
applied to a copy of the model, evaluated on the test split.

Followed: ruizheliUOA/Anchored_Bias_GPT2 at 203ece453f3cc2124e40b4d957e052f5e092c114,
`demos/mitigate_mlp.ipynb` (`mlp_lens_detector`, `coefficient_dim_contribution_detector`, `fix_mlp` and
its walk over the layers), on its TransformerLens model (fold_ln, center_writing_weights, center_unembed):
see tasks/mcq/lens.py for the quantities that processing changes. The repository has no attention
notebook at that commit (its only demo is the MLP one): the swap follows the paper's description.

Choices the paper's per-question demo leaves open, made here for a held-out evaluation:
- The detector runs on the calibration questions the model anchors on (gold is not "A", the model says
  "A"); contributions and lens differences are their means. The "correct" unembedding in the update is the
  mean of those questions' gold letters, since one edit must serve every gold position.
- The update is signed by the neuron's mean activation (see `edit_value_vectors`).
- One edit by default: the demo evaluates one value-vector update at a time.
- The swap needs the correct letter, which a test question does not reveal. Each option c is therefore
  scored under its own hypothesis: one pass with " A" <-> c swapped in the chosen heads, read at c.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness.registries import register_method
from tasks.mcq.protocol import MCQMethod, softmax
from tasks.mcq.scoring import BatchHook, Scorer
from tasks.mcq.suites import LETTERS, Question


def fit_rows(logits: np.ndarray, gold: np.ndarray, anchored_only: bool) -> np.ndarray:
    """Calibration rows the detectors average over: gold is not the first option and, when
    `anchored_only`, the model picked the first option anyway (all non-"A" rows if none did)."""
    wrong = gold != 0
    rows = np.flatnonzero(wrong & (logits.argmax(axis=1) == 0)) if anchored_only else np.array([], int)
    return rows if len(rows) else np.flatnonzero(wrong)


def edit_value_vectors(
    scorer: Scorer,
    calibration: Sequence[Question],
    top_neurons: int,
    gap_threshold: float,
    alpha_anchor: float,
    alpha_correct: float,
    max_layers: int,
    anchored_only: bool,
) -> dict[str, Any]:
    """Walk the layers last to first and update the first flagged neuron of each:
    W_out[i] <- W_out[i] + s * (-alpha_anchor * W_U[:, " A"] + alpha_correct * W_U[:, correct]), edits
    scorer.model. W_U is the notebook's TransformerLens unembedding (`processed_unembedding`: the final
    norm's weight folded in, centred); adding it to the raw W_out[i] is the notebook's edit of the centred
    TransformerLens W_out[i], as every reader of the residual stream centres its input (LayerNorm) or
    TransformerLens left W_out raw (RMSNorm). s is the sign of the neuron's mean activation: GPT-2's GELU
    neurons that carry the anchor fire positive (s = 1, the notebook's formula), while a Llama's gated
    SiLU neuron may carry it with a negative activation, and the unsigned update would then push towards
    " A"."""
    import torch

    from tasks.mcq.anatomy import anatomy
    from tasks.mcq.lens import flagged_neurons, processed_unembedding, trace

    body = anatomy(scorer.model)
    traced = trace(scorer, body, calibration)
    gold = np.array([q.answer for q in calibration])
    rows = fit_rows(traced.logits, gold, anchored_only)
    letters = processed_unembedding(body, scorer.letter_ids)  # (options, dim)
    anchor, correct = letters[0], letters[torch.from_numpy(gold[rows])].mean(dim=0)
    neurons = []
    for layer in reversed(range(body.layers)):
        found = flagged_neurons(body, scorer, traced, rows, gold, layer, top_neurons, gap_threshold)
        if not found:
            continue
        pick = found[0]
        sign = 1.0 if pick.activation >= 0 else -1.0
        update = sign * (-alpha_anchor * anchor + alpha_correct * correct)
        with torch.no_grad():
            row = body.value_vectors(layer)[pick.neuron]
            row += update.to(row.device, row.dtype)
        neurons.append(
            {
                "layer": layer,
                "neuron": pick.neuron,
                "contribution": round(pick.contribution, 6),
                "anchoring": round(pick.anchoring, 6),
                "mean_activation": round(pick.activation, 6),
            }
        )
        if max_layers and len(neurons) >= max_layers:
            break
    shares = np.bincount(gold[rows], minlength=scorer.options) / max(len(rows), 1)
    return {
        "neurons": neurons,
        "fit_questions": len(rows),
        "correct_letters": {LETTERS[i]: float(s) for i, s in enumerate(shares) if s},
    }


def find_heads(
    scorer: Scorer, calibration: Sequence[Question], count: int, anchored_only: bool
) -> dict[int, list[int]]:
    """The `count` heads whose own write has the largest positive mean anchoring score."""
    from tasks.mcq.anatomy import anatomy
    from tasks.mcq.lens import head_scores, trace

    body = anatomy(scorer.model)
    traced = trace(scorer, body, calibration)
    gold = np.array([q.answer for q in calibration])
    scores = head_scores(body, scorer, traced, fit_rows(traced.logits, gold, anchored_only), gold)
    flat = scores.flatten()
    chosen: dict[int, list[int]] = {}
    for index in flat.argsort(descending=True)[:count].tolist():
        if float(flat[index]) <= 0:
            break
        chosen.setdefault(index // body.heads, []).append(index % body.heads)
    return chosen


def hypothesis_probabilities(
    scorer: Scorer, heads: dict[int, list[int]], questions: Sequence[Question]
) -> np.ndarray:
    """Option c's logit read from a pass with " A" <-> c swapped in `heads` (no swap for "A" itself)."""
    from tasks.mcq.anatomy import anatomy
    from tasks.mcq.attention import swapped

    if not heads:
        return softmax(scorer.letter_logits(questions))
    body = anatomy(scorer.model)
    scores = np.zeros((len(questions), scorer.options))
    for c in range(scorer.options):

        def hook(rows, letters, c=c):  # type: ignore[no-untyped-def]
            return swapped(body, heads, letters[:, 0], letters[:, c])

        scores[:, c] = scorer.letter_logits(questions, hook=hook if c else None)[:, c]
    return softmax(scores)


@dataclass(kw_only=True)
class _Anchored(MCQMethod):
    anchored_only: bool = True  # fit on the calibration questions the model anchors on

    def edit(self, edited: Scorer, calibration: Sequence[Question]) -> dict[str, Any]:
        """Edit `edited.model` in place and describe the edit."""
        raise NotImplementedError

    def fit(self, scorer: Scorer, calibration: Sequence[Question]) -> None:
        edited = scorer.with_model(copy.deepcopy(scorer.model))
        self.edits_ = self.edit(edited, calibration)
        self.edited_scorer_ = edited

    def probabilities(self, scorer: Scorer, questions: Sequence[Question]) -> np.ndarray:
        assert self.edited_scorer_ is not None, "fit first"
        return softmax(self.edited_scorer_.letter_logits(questions))


@dataclass(kw_only=True)
class _ValueVectorEdit(_Anchored):
    top_neurons: int = 10
    gap_threshold: float = 4.0
    alpha_anchor: float = 1.0  # a1
    alpha_correct: float = 8.0  # a2
    # How many layers get an edit, walking last to first (0: every layer with a flagged neuron). The demo
    # evaluates one edit at a time, so one is the default; every layer over-corrects (see the README).
    max_layers: int = 1

    def edit(self, edited: Scorer, calibration: Sequence[Question]) -> dict[str, Any]:
        return {
            "mlp": edit_value_vectors(
                edited, calibration, self.top_neurons, self.gap_threshold, self.alpha_anchor,
                self.alpha_correct, self.max_layers, self.anchored_only,
            )
        }  # fmt: skip


@dataclass(kw_only=True)
class _AttentionSwap(_Anchored):
    heads: int = 3  # heads recalibrated: the largest positive mean anchoring scores
    heads_ = None  # layer -> heads, learned by fit (not a parameter, hence no annotation)

    def edit(self, edited: Scorer, calibration: Sequence[Question]) -> dict[str, Any]:
        from tasks.mcq.attention import install

        install(edited.model)
        self.heads_ = find_heads(edited, calibration, self.heads, self.anchored_only)
        return {"heads": [{"layer": layer, "head": h} for layer, hs in self.heads_.items() for h in hs]}

    def probabilities(self, scorer: Scorer, questions: Sequence[Question]) -> np.ndarray:
        assert self.edited_scorer_ is not None, "fit first"
        return hypothesis_probabilities(self.edited_scorer_, self.heads_ or {}, questions)

    def lens_hook(self, gold: np.ndarray) -> BatchHook | None:
        """The lens curve after the edit runs the swap the paper evaluates: " A" <-> the gold letter."""
        import torch

        from tasks.mcq.anatomy import anatomy
        from tasks.mcq.attention import swapped

        assert self.edited_scorer_ is not None, "fit first"
        body, heads = anatomy(self.edited_scorer_.model), self.heads_ or {}

        def hook(rows, letters):  # type: ignore[no-untyped-def]
            index = torch.as_tensor(gold[rows], device=letters.device)
            return swapped(body, heads, letters[:, 0], letters[torch.arange(len(rows)), index])

        return hook


@register_method("anchor-mlp")
@dataclass(kw_only=True)
class AnchorMLP(_ValueVectorEdit):
    """Value-vector update of the neurons the logit lens flags as writing " A"."""

    version: ClassVar[str] = "2"  # the notebook's TransformerLens W_U and centred W_out norms


@register_method("anchor-attn")
@dataclass(kw_only=True)
class AnchorAttn(_AttentionSwap):
    """Attention recalibration of the heads whose writes favour " A" most."""


@register_method("anchor-mlp+attn")
@dataclass(kw_only=True)
class AnchorMLPAttn(_AttentionSwap, _ValueVectorEdit):
    """Both: value vectors first, then the heads found on the edited model."""

    version: ClassVar[str] = "2"  # as anchor-mlp

    def edit(self, edited: Scorer, calibration: Sequence[Question]) -> dict[str, Any]:
        return {
            **_ValueVectorEdit.edit(self, edited, calibration),
            **_AttentionSwap.edit(self, edited, calibration),
        }
