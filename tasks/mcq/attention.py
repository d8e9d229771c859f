"""Attention recalibration: exchange, in chosen heads at the final query, the attention weight on the
" A" letter's key position with that on another option letter's.

transformers lets a model route its attention through a registered function; ours computes ordinary
eager attention (grouped-query heads repeated as Llama does) and, when a swap is set on the attention
module, exchanges the two weights after the softmax. With no swap set it is plain attention, so a model
switched to it scores exactly as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tasks.mcq.anatomy import Anatomy

IMPLEMENTATION = "logitbench_recalibrated"
SWAP_ATTRIBUTE = "_logitbench_swap"


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):  # type: ignore[no-untyped-def]
    import torch

    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    swap = getattr(module, SWAP_ATTRIBUTE, None)
    if swap is not None:
        weights = _swapped(weights, *swap)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _swapped(weights: Any, heads: list[int], first: Any, other: Any) -> Any:
    """weights (batch, heads, queries, keys) with the last query's weights on key `first[b]` and key
    `other[b]` exchanged in `heads`."""
    import torch

    out = weights.clone()
    rows = torch.arange(weights.shape[0], device=weights.device)
    for head in heads:
        a = weights[rows, head, -1, first]
        b = weights[rows, head, -1, other]
        out[rows, head, -1, first] = b
        out[rows, head, -1, other] = a
    return out


def install(model: Any) -> None:
    """Route `model`'s attention through the recalibrating function (registered once per process)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(IMPLEMENTATION, _attention)
    AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)
    model.set_attn_implementation(IMPLEMENTATION)


@contextlib.contextmanager
def swapped(body: Anatomy, heads: dict[int, list[int]], first: Any, other: Any) -> Iterator[None]:
    """Within the block, the listed heads (layer -> heads) swap the last query's weights on the key
    positions `first` (batch,) and `other` (batch,)."""
    modules = [body.attention(layer) for layer in heads]
    for module, layer in zip(modules, heads, strict=True):
        setattr(module, SWAP_ATTRIBUTE, (heads[layer], first, other))
    try:
        yield
    finally:
        for module in modules:
            delattr(module, SWAP_ATTRIBUTE)
