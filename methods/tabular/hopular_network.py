"""Hopular's network (ml-jku/hopular `hopular/blocks.py`, commit 3e0c39f), in our own words.

A sample is F features (the target is the last one). Each feature is embedded from its value and a mask
bit into E dims, plus a feature-type and a position embedding, then projected per feature. Blocks refine
the (N, F*E) sample states with two continuous modern Hopfield lookups (multi-head attention,
beta = scaling / sqrt(head dim)), each residual onto its layer-normed input as in the official block:

- sample-sample: each sample queries the embedded whole training set as stored patterns (keys and
  values are the training rows' embeddings, targets unmasked); while training a sample may not retrieve
  itself (its own row is masked out of the softmax), at prediction time every training row may be read;
- feature-feature: within a sample, each feature queries the sample's original input embeddings.

A summarisation layer maps the final state to every feature's reconstruction (one value per numeric
feature, logits per categorical one, the target included).

Encoded input (what `embed` reads): `values` (N, F) float, a numeric feature's standardised value or a
categorical feature's code, and `state` (N, F) long: OBSERVED, MASKED (the mask bit set, value zeroed)
or MISSING (value and mask bit both zero, as the official collate leaves a missing entry).

The sample-sample lookup is N x M per head, in time and (kept for the backward pass) in memory. It runs in
chunks of queries whose association matrix holds at most `chunk` entries, and while training each chunk
is recomputed in the backward pass (activation checkpointing, as the official block wraps its lookups in
fairscale's `checkpoint_wrapper`), so peak memory grows with `chunk`, not with N * M; time stays N * M.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

OBSERVED, MASKED, MISSING = 0, 1, 2


def _uniform_(tensor: torch.Tensor, fan_in: int) -> torch.Tensor:
    """PyTorch's Linear init, which the official `reset_parameters` uses (kaiming_uniform, a=sqrt(5))."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.init.uniform_(tensor, -bound, bound)


class FeatureEmbedding(nn.Module):
    """Per feature, Linear([value or one-hot, mask bit] -> E) + type + position embeddings, then
    GELU, dropout, LayerNorm and a Linear(E -> E) of its own."""

    def __init__(self, sizes: Sequence[int], categorical: Sequence[bool], dim: int, dropout: float) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.dim = dim
        n = len(sizes)
        numeric = [i for i in range(n) if not categorical[i]]
        self.register_buffer("numeric_index", torch.tensor(numeric, dtype=torch.long))
        self.register_buffer(
            "categorical_index", torch.tensor([i for i in range(n) if categorical[i]], dtype=torch.long)
        )
        cat_sizes = [sizes[i] for i in range(n) if categorical[i]]
        # Numeric: weights for the value and for the mask bit. Categorical: one row per category and one
        # for the mask bit, in one table with per-feature offsets. Biases per feature.
        self.numeric_value = nn.Parameter(torch.empty(len(self.numeric_index), dim))
        self.numeric_mask = nn.Parameter(torch.empty(len(self.numeric_index), dim))
        self.numeric_bias = nn.Parameter(torch.empty(len(self.numeric_index), dim))
        offsets = [sum(s + 1 for s in cat_sizes[:j]) for j in range(len(cat_sizes))]
        self.register_buffer("category_offset", torch.tensor(offsets, dtype=torch.long))
        self.register_buffer("category_count", torch.tensor(cat_sizes, dtype=torch.long))
        self.category_table = nn.Parameter(torch.empty(sum(s + 1 for s in cat_sizes), dim))
        self.category_bias = nn.Parameter(torch.empty(len(cat_sizes), dim))
        self.type_embedding = nn.Parameter(torch.empty(2, dim))
        self.register_buffer("types", torch.tensor([int(c) for c in categorical]))
        self.position_embedding = nn.Parameter(torch.empty(n, dim))
        self.dropout = nn.Dropout(dropout)
        self.norm_weight = nn.Parameter(torch.ones(n, dim))
        self.norm_bias = nn.Parameter(torch.zeros(n, dim))
        self.proj_weight = nn.Parameter(torch.empty(n, dim, dim))
        self.proj_bias = nn.Parameter(torch.empty(n, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for t in (self.numeric_value, self.numeric_mask, self.numeric_bias):
            _uniform_(t, 2)  # Linear(1 + 1 -> E)
        for j, size in enumerate(self.category_count.tolist()):
            start = int(self.category_offset[j])
            _uniform_(self.category_table.data[start : start + size + 1], size + 1)
            _uniform_(self.category_bias.data[j], size + 1)
        _uniform_(self.type_embedding, self.dim)
        _uniform_(self.position_embedding, self.dim)
        _uniform_(self.proj_weight, self.dim)
        _uniform_(self.proj_bias, self.dim)

    def forward(self, values: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(N, F) values and states -> (N, F, E)."""
        n, f = values.shape
        out = values.new_zeros(n, f, self.dim)
        if len(self.numeric_index):
            v = values[:, self.numeric_index]
            s = state[:, self.numeric_index]
            observed = (s == OBSERVED).to(v.dtype).unsqueeze(-1)
            masked = (s == MASKED).to(v.dtype).unsqueeze(-1)
            out[:, self.numeric_index] = (
                (v.unsqueeze(-1) * observed) * self.numeric_value
                + masked * self.numeric_mask
                + self.numeric_bias
            )
        if len(self.categorical_index):
            s = state[:, self.categorical_index]
            codes = values[:, self.categorical_index].long().clamp(min=0)
            codes = torch.where(s == MASKED, self.category_count, codes)  # the mask-bit row
            rows = self.category_table[codes + self.category_offset]
            out[:, self.categorical_index] = (
                rows * (s != MISSING).to(rows.dtype).unsqueeze(-1) + self.category_bias
            )
        out = out + self.type_embedding[self.types] + self.position_embedding
        out = self.dropout(nn.functional.gelu(out))
        out = nn.functional.layer_norm(out, (self.dim,), eps=1e-12) * self.norm_weight + self.norm_bias
        return torch.einsum("nfe,fed->nfd", out, self.proj_weight) + self.proj_bias


class HopfieldLookup(nn.Module):
    """One continuous modern Hopfield update (hflayers' association with its normalisations off):
    softmax(beta * Q K^T) V over `heads` heads, dropout on the association weights, output projection."""

    def __init__(self, dim: int, heads: int, head_dim: int, scaling: float, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.beta = scaling / math.sqrt(head_dim)
        self.query = nn.Linear(dim, heads * head_dim)
        self.key = nn.Linear(dim, heads * head_dim)
        self.value = nn.Linear(dim, heads * head_dim)
        self.out = nn.Linear(heads * head_dim, dim)
        self.dropout = dropout

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, heads * head_dim) -> (B, heads, L, head_dim)."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(-2, -3)

    def associate(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        forbid: torch.Tensor | None,
        keep: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projected queries (B, h, L, d) against keys/values (B, h, M, d); `forbid` (L, M) True where a
        query may not read a stored pattern. Returns the retrieved (B, L, dim) and, when `keep`, the
        association weights (B, h, L, M); otherwise the fused kernel computes the same without them."""
        p = self.dropout if self.training else 0.0
        if keep:
            logits = self.beta * q @ k.transpose(-1, -2)
            if forbid is not None:
                logits = logits.masked_fill(forbid, float("-inf"))
            weights = torch.softmax(logits, dim=-1)
            retrieved = (nn.functional.dropout(weights, p) if p else weights) @ v
        else:
            weights = None
            allowed = None if forbid is None else ~forbid
            retrieved = nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, dropout_p=p, scale=self.beta
            )
        return self.out(retrieved.transpose(-2, -3).flatten(-2)), weights

    def forward(
        self,
        state: torch.Tensor,
        stored: torch.Tensor,
        own_rows: torch.Tensor | None = None,
        chunk: int = 0,
        keep_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`own_rows` (L,): each query's own row among the stored patterns (-1: none), which it may not
        read; the mask is built a chunk at a time, so no L x M matrix is ever held whole."""
        q = self.split(self.query(state))
        k, v = self.split(self.key(stored)), self.split(self.value(stored))
        length = q.shape[-2]
        # Queries per chunk so that one chunk's association matrix holds at most `chunk` entries.
        rows = max(1, chunk // (self.heads * k.shape[-2])) if chunk else length
        stored_index = torch.arange(k.shape[-2], device=k.device)

        def forbid(start: int, stop: int) -> torch.Tensor | None:
            return None if own_rows is None else own_rows[start:stop, None] == stored_index

        if length <= rows:
            return self.associate(q, k, v, forbid(0, length), keep_weights)
        parts, kept = [], []
        for start in range(0, length, rows):
            qc = q[..., start : start + rows, :]
            fc = forbid(start, start + rows)
            if torch.is_grad_enabled() and self.training:
                out, weights = checkpoint(self.associate, qc, k, v, fc, keep_weights, use_reentrant=False)
            else:
                out, weights = self.associate(qc, k, v, fc, keep_weights)
            parts.append(out)
            if weights is not None:
                kept.append(weights.detach())
        return torch.cat(parts, dim=-2), (torch.cat(kept, dim=-2) if keep_weights else None)


class HopularBlock(nn.Module):
    def __init__(
        self,
        features: int,
        dim: int,
        heads: int,
        sample_head_dim: int,
        feature_head_dim: int,
        scaling: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.features, self.dim = features, dim
        self.sample_norm = nn.LayerNorm(features * dim, eps=1e-12)
        self.sample_lookup = HopfieldLookup(features * dim, heads, sample_head_dim, scaling, dropout)
        self.feature_norm = nn.LayerNorm(dim, eps=1e-12)
        self.feature_lookup = HopfieldLookup(dim, heads, feature_head_dim, scaling, dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        embedded: torch.Tensor,
        own_rows: torch.Tensor | None,
        chunk: int,
        keep_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (N, F*E) current states; memory (M, F*E) the embedded training set; embedded (N, F, E) the
        samples' own input embeddings; own_rows (N,) each sample's row in the memory (-1: none)."""
        h = self.sample_norm(x).unsqueeze(0)
        retrieved, weights = self.sample_lookup(
            h, self.sample_norm(memory).unsqueeze(0), own_rows, chunk, keep_weights
        )
        h = (h + retrieved).squeeze(0).unflatten(-1, (self.features, self.dim))
        h = self.feature_norm(h)
        refined, _ = self.feature_lookup(h, self.feature_norm(embedded))
        return (h + refined).flatten(-2), weights


class HopularNetwork(nn.Module):
    def __init__(
        self,
        sizes: Sequence[int],
        categorical: Sequence[bool],
        dim: int = 32,
        heads: int = 8,
        blocks: int = 8,
        hidden_size: int = 0,
        scaling: float = 1.0,
        input_dropout: float = 0.1,
        lookup_dropout: float = 0.1,
        output_dropout: float = 0.01,
    ) -> None:
        super().__init__()
        f = len(sizes)
        self.sizes = list(sizes)
        # hidden_size 0: the official default, heads that split the state evenly (F*E // heads, E // heads).
        sample_head = hidden_size or max(1, f * dim // heads)
        feature_head = hidden_size or max(1, dim // heads)
        self.embedding = FeatureEmbedding(sizes, categorical, dim, input_dropout)
        self.blocks = nn.ModuleList(
            HopularBlock(f, dim, heads, sample_head, feature_head, scaling, lookup_dropout)
            for _ in range(blocks)
        )
        self.summary_dropout = nn.Dropout(output_dropout)
        self.summary_norm = nn.LayerNorm(f * dim, eps=1e-12)
        self.summary = nn.Linear(f * dim, sum(sizes))

    def forward(
        self,
        values: torch.Tensor,
        state: torch.Tensor,
        memory_values: torch.Tensor,
        memory_state: torch.Tensor,
        own_rows: torch.Tensor | None = None,
        chunk: int = 0,
        keep_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Reconstructions (N, sum(sizes)) of every feature, and (when `keep_weights`) each block's
        sample-sample association weights (1, heads, N, M)."""
        embedded = self.embedding(values, state)
        memory = self.embedding(memory_values, memory_state).flatten(-2)
        x = embedded.flatten(-2)
        kept = []
        for block in self.blocks:
            x, weights = block(x, memory, embedded, own_rows, chunk, keep_weights)
            if weights is not None:
                kept.append(weights)
        x = self.summary_norm(self.summary_dropout(nn.functional.gelu(x)))
        return self.summary(x), kept
