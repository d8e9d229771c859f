"""Logit lens and attribution: which layers, neurons and heads push the answer towards "A".

The lens reads a vector written into the residual stream as if it were the final state:
`lens(v)[tok] = W_U[tok] . norm_f(v) + b_U[tok]`. The anchoring score of a vector for a question is
`lens(v)[" A"] - lens(v)[gold letter]` (papers.md, section 1). Differences between tokens do not depend on
the constant shifts TransformerLens folds into its weights, so reading the raw checkpoint gives the same
numbers as the paper's notebook (ruizheliUOA/Anchored_Bias_GPT2 at
203ece453f3cc2124e40b4d957e052f5e092c114, `demos/mitigate_mlp.ipynb`). Two of its quantities do depend on
that processing and are read as TransformerLens holds them: a value vector's norm (`flagged_neurons`)
and the unembedding columns the value-vector update adds (`processed_unembedding`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import UserError
from tasks.mcq.anatomy import Anatomy, input_major
from tasks.mcq.scoring import BatchHook, Scorer
from tasks.mcq.suites import Question


@dataclass
class Trace:
    """Last-position activations of every layer, one row per question (CPU tensors)."""

    mlp_out: Any  # (questions, layers, dim) what each MLP writes into the residual stream
    neurons: Any  # (questions, layers, neurons) post-activation values a_i, the MLP out-projection's input
    heads: Any  # (questions, layers, heads * head_dim) attention outputs before the out projection
    logits: np.ndarray  # (questions, options) letter logits of the same pass


def trace(
    scorer: Scorer, body: Anatomy, questions: Sequence[Question], around: BatchHook | None = None
) -> Trace:
    """One scoring pass over `questions` with hooks that keep the last position of every layer; `around`
    may alter each batch's pass as a method would (an attention swap)."""
    import torch

    n, layers = len(questions), body.layers
    dim = body.unembedding.shape[1]
    neurons = body.value_vectors(0).shape[0]
    out = Trace(
        torch.zeros(n, layers, dim),
        torch.zeros(n, layers, neurons),
        torch.zeros(n, layers, body.heads * body.head_dim),
        np.zeros((n, scorer.options)),
    )
    current: dict[str, Any] = {}

    def keep(target: Any, layer: int, from_input: bool):  # type: ignore[no-untyped-def]
        def hook(module, inputs, output):  # type: ignore[no-untyped-def]
            value = inputs[0] if from_input else output
            value = value[0] if isinstance(value, tuple) else value
            target[torch.from_numpy(current["rows"]), layer] = value[:, -1].detach().float().cpu()

        return hook

    handles = []
    for layer in range(layers):
        handles.append(body.mlp(layer).register_forward_hook(keep(out.mlp_out, layer, False)))
        handles.append(body.mlp_out(layer).register_forward_hook(keep(out.neurons, layer, True)))
        handles.append(body.attention_out(layer).register_forward_hook(keep(out.heads, layer, True)))

    @contextlib.contextmanager
    def note_rows(rows: np.ndarray, letters: Any) -> Iterator[None]:
        current["rows"] = rows
        with around(rows, letters) if around else contextlib.nullcontext():
            yield

    try:
        out.logits = scorer.letter_logits(questions, hook=note_rows)
    finally:
        for handle in handles:
            handle.remove()
    return out


def letter_direction(body: Anatomy, scorer: Scorer, gold: np.ndarray) -> tuple[Any, Any]:
    """(W_U[" A"] - W_U[gold letter]) per question (questions, dim), and the bias difference (questions,)."""
    import torch

    # Only the letters' rows leave the device: the whole (vocab, dim) matrix would be copied per call.
    ids = torch.tensor(scorer.letter_ids, device=body.unembedding.device)
    letters = body.unembedding.detach()[ids].float().cpu()  # (options, dim)
    gold_index = torch.from_numpy(gold)
    direction = letters[0][None, :] - letters[gold_index]
    if body.unembedding_bias is None:
        return direction, torch.zeros(len(gold))
    bias = body.unembedding_bias.detach()[ids].float().cpu()
    return direction, bias[0] - bias[gold_index]


def centres_writes(body: Anatomy) -> bool:
    """Whether the model normalises with LayerNorm (GPT-2), whose every reader of the residual stream
    subtracts the mean: TransformerLens then stores each writing weight less its mean over d_model
    (`center_writing_weights`) and its folded W_U likewise (`fold_ln`); RMSNorm models get neither."""
    import torch

    return isinstance(body.final_norm, torch.nn.LayerNorm)


def processed_unembedding(body: Anatomy, ids: Any) -> Any:
    """(len(ids), dim) columns W_U[:, t] of the unembedding as the paper's notebook holds it: a
    TransformerLens model loaded with fold_ln, center_writing_weights and center_unembed. Folding
    multiplies each row u_t by the final norm's weight w; a LayerNorm model's columns are then centred
    over d_model, and centring the unembedding subtracts the mean over the vocabulary:
    c(w * (u_t - mean_t' u_t')), c the centring over d_model (the identity for RMSNorm). Followed:
    TransformerLensOrg/TransformerLens at b8bfb53cd86f36c483406cb9934fe65d9555fb7f (2024-06, the notebook's
    time), `HookedTransformer.fold_layer_norm` and `center_unembed`."""
    import torch

    norm = body.final_norm
    if not (isinstance(norm, torch.nn.LayerNorm) or _scales_by_its_weight(norm)):
        # e.g. Gemma's RMSNorm scales by (1 + w): folding w in would edit the wrong direction
        raise UserError(
            f"the value-vector edit knows LayerNorm and RMSNorm with a plain weight; this model's final "
            f"norm is {type(norm).__name__}"
        )
    unembed = body.unembedding.detach()
    mean = unembed.mean(dim=0, dtype=torch.float32)  # (dim,) over the whole vocabulary
    rows = unembed[torch.as_tensor(ids, device=unembed.device)].float() - mean
    rows = rows * norm.weight.detach().float()
    return (rows - rows.mean(dim=1, keepdim=True) if centres_writes(body) else rows).cpu()


def _scales_by_its_weight(norm: Any) -> bool:
    """Whether `norm` is an RMSNorm-like module that multiplies its normalised input by `weight` alone
    (Llama's, Qwen's), tried on a random input against a copy whose weight is all ones."""
    import torch

    weight = getattr(norm, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1 or getattr(norm, "bias", None) is not None:
        return False
    probe = copy.deepcopy(norm).float().cpu()
    x = torch.randn(3, weight.numel(), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        scaled = probe(x)
        probe.weight.fill_(1.0)
        unit = probe(x)
    return torch.allclose(scaled, unit * weight.detach().float().cpu(), rtol=1e-4, atol=1e-5)


def anchoring_scores(body: Anatomy, vectors: Any, direction: Any, bias: Any) -> Any:
    """lens(v)[" A"] - lens(v)[gold] for vectors (questions, ..., dim) against per-question directions."""
    import torch

    with torch.no_grad():
        norm = copy.deepcopy(body.final_norm).float().cpu()  # the traces live on the CPU
        normed = norm(vectors)
    shape = (len(direction),) + (1,) * (vectors.dim() - 2) + (direction.shape[-1],)
    return (normed * direction.reshape(shape)).sum(dim=-1) + bias.reshape(shape[:-1])


def layer_curve(body: Anatomy, scorer: Scorer, traced: Trace, gold: np.ndarray) -> list[float]:
    """Per layer, the mean anchoring score of the MLP output over the questions whose gold is not "A"."""
    keep = np.flatnonzero(gold != 0)
    if len(keep) == 0:
        return [0.0] * body.layers
    direction, bias = letter_direction(body, scorer, gold[keep])
    scores = anchoring_scores(body, traced.mlp_out[keep], direction, bias)  # (questions, layers)
    return [float(v) for v in scores.mean(dim=0)]


@dataclass(frozen=True)
class NeuronFinding:
    layer: int
    neuron: int
    contribution: float  # mean |a_i| * ||W_out[i]|| over the fitted questions
    anchoring: float  # mean lens difference of a_i W_out[i] + b_out
    activation: float  # mean a_i: its sign says which way an update of W_out[i] reaches the output


def flagged_neurons(
    body: Anatomy,
    scorer: Scorer,
    traced: Trace,
    rows: np.ndarray,
    gold: np.ndarray,
    layer: int,
    top: int = 10,
    gap_threshold: float = 4.0,
) -> list[NeuronFinding]:
    """The paper's detector on one layer: the `top` neurons by |a_i| * ||W_out[i]||, kept when their own
    lens difference (" A" minus gold) exceeds `gap_threshold`; in contribution order. W_out[i] is the
    value vector as the notebook's TransformerLens model holds it: less its mean over d_model when the
    model normalises with LayerNorm (`centres_writes`)."""
    import torch

    values = body.value_vectors(layer).detach().float().cpu()  # (neurons, dim)
    bias = body.mlp_out_bias(layer)
    bias = torch.zeros(values.shape[1]) if bias is None else bias.detach().float().cpu()
    activations = traced.neurons[torch.from_numpy(rows), layer]  # (questions, neurons)
    norms = (values - values.mean(dim=1, keepdim=True) if centres_writes(body) else values).norm(dim=1)
    contribution = (activations.abs() * norms[None, :]).mean(dim=0)
    best = contribution.topk(min(top, len(contribution))).indices
    written = activations[:, best, None] * values[best][None] + bias  # (questions, top, dim)
    direction, lens_bias = letter_direction(body, scorer, gold[rows])
    anchoring = anchoring_scores(body, written, direction, lens_bias).mean(dim=0)  # (top,)
    return [
        NeuronFinding(
            layer,
            int(best[i]),
            float(contribution[best[i]]),
            float(anchoring[i]),
            float(activations[:, best[i]].mean()),
        )
        for i in range(len(best))
        if float(anchoring[i]) > gap_threshold
    ]


def head_scores(body: Anatomy, scorer: Scorer, traced: Trace, rows: np.ndarray, gold: np.ndarray) -> Any:
    """(layers, heads) mean anchoring score of each head's own write into the residual stream."""
    import torch

    direction, bias = letter_direction(body, scorer, gold[rows])
    out = torch.zeros(body.layers, body.heads)
    size = body.head_dim
    for layer in range(body.layers):
        projection = input_major(body.attention_out(layer)).detach().float().cpu()  # (heads * size, dim)
        z = traced.heads[torch.from_numpy(rows), layer]  # (questions, heads * size)
        writes = torch.stack(
            [
                z[:, h * size : (h + 1) * size] @ projection[h * size : (h + 1) * size]
                for h in range(body.heads)
            ],
            dim=1,
        )  # (questions, heads, dim)
        out[layer] = anchoring_scores(body, writes, direction, bias).mean(dim=0)
    return out
