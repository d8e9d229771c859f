"""A causal LM reading one prefix per row, extended a token at a time, with its own KV cache.

STEER reads three streams at every decoding step: the expert on the prompt (the main stream, `generate`'s
own), the base model on the same prompt, and the expert on a negative prompt. The two extra streams live
here. Rows are left-padded: Llama-architecture models need explicit `position_ids` (the cumulative sum of
the attention mask) with left padding, since their forward pass does not derive them from the mask.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch.nn.functional import log_softmax


def left_padded(
    rows: list[list[int]], pad_id: int, device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), both (rows, longest): each row's tokens at the right, pad and mask 0 to their left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long, device=device)
            mask[i, width - len(row) :] = 1
    return ids, mask


def cache_argument(model: Any) -> str:
    """The forward argument that takes the KV cache: `cache` from transformers 5.x, `past_key_values`
    before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class CachedStream:
    """Next-token log-probabilities of `model` after each row's prefix; `advance` appends one token a row.

    The first call reads the whole (left-padded) prefix; every later call reads one new token through the
    KV cache, so a step costs one token's forward pass whatever the prefix length."""

    def __init__(self, model: Any, ids: torch.Tensor, mask: torch.Tensor) -> None:
        if ids.shape != mask.shape or ids.ndim != 2:
            raise ValueError(
                f"ids {tuple(ids.shape)} and mask {tuple(mask.shape)} must be one (rows, tokens)"
            )
        self.model = model
        self.prefix, self.mask = ids, mask
        self.cache: Any = None

    @torch.no_grad()
    def next_logprobs(self, new_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(rows, vocab) log-probabilities of the next token; `new_tokens` (rows,) extends every prefix by
        one token first (None on the first call, which reads the prefix)."""
        if self.cache is None:
            if new_tokens is not None:
                raise ValueError("the first call reads the prefix: give no new tokens")
            feed = self.prefix
            positions = (self.mask.cumsum(-1) - 1).clamp_min(0)
        else:
            if new_tokens is None:
                raise ValueError("every call after the first extends the prefix: give one token a row")
            feed = new_tokens.reshape(-1, 1).to(self.prefix.device)
            self.mask = torch.cat([self.mask, torch.ones_like(feed)], dim=1)
            positions = self.mask.sum(-1, keepdim=True) - 1
        out = self.model(
            input_ids=feed,
            attention_mask=self.mask,
            position_ids=positions,
            use_cache=True,
            **{cache_argument(self.model): self.cache},
        )
        self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        return log_softmax(out.logits[:, -1].float(), dim=-1)


@torch.no_grad()
def uncached_logprobs(model: Any, prefix: list[int]) -> torch.Tensor:
    """(vocab,) next-token log-probabilities after one unpadded prefix, in one plain forward pass: what a
    cached stream must equal."""
    ids = torch.tensor([prefix], dtype=torch.long, device=next(model.parameters()).device)
    return log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
