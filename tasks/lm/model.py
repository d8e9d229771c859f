"""A small GPT-style decoder body (pre-norm blocks, learned positions) for the from-scratch setting.

The body maps token ids (B, T) to final hidden states (B, T, d); the output head is the method's.
"""

from __future__ import annotations

import torch
from torch import nn


class DecoderBody(nn.Module):
    def __init__(self, vocab: int, dim: int, layers: int, heads: int, block: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.position_embedding = nn.Embedding(block, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        steps = idx.shape[1]
        positions = torch.arange(steps, device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(positions)
        mask = nn.Transformer.generate_square_subsequent_mask(steps, device=idx.device)
        return self.norm(self.blocks(x, mask=mask, is_causal=True))
