"""Where the parts of a causal LM live, for GPT-2 and Llama-family models alike.

The anchored-bias methods read and edit the MLP's value vectors (GPT-2 `mlp.c_proj`, Llama
`mlp.down_proj`) and the attention's output projection per head. GPT-2's `Conv1D` stores its weight as
(in, out) and `nn.Linear` as (out, in); `input_major` hides that: it returns an (in, out) view of either,
so row i is what input unit i writes into the residual stream, and editing the view edits the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import UserError


@dataclass(frozen=True)
class Anatomy:
    blocks: list[Any]  # the transformer layers, first to last
    final_norm: Any  # the norm the output head reads through
    unembedding: Any  # (vocab, dim) output embedding
    unembedding_bias: Any  # (vocab,) or None
    mlp_name: str  # attribute of a block holding the MLP
    mlp_out_name: str  # attribute of the MLP holding its output projection
    attention_name: str  # attribute of a block holding the attention
    attention_out_name: str  # attribute of the attention holding its output projection
    heads: int
    head_dim: int

    @property
    def layers(self) -> int:
        return len(self.blocks)

    def mlp(self, layer: int) -> Any:
        return getattr(self.blocks[layer], self.mlp_name)

    def mlp_out(self, layer: int) -> Any:
        return getattr(self.mlp(layer), self.mlp_out_name)

    def attention(self, layer: int) -> Any:
        return getattr(self.blocks[layer], self.attention_name)

    def attention_out(self, layer: int) -> Any:
        return getattr(self.attention(layer), self.attention_out_name)

    def value_vectors(self, layer: int) -> Any:
        """(neurons, dim) view: row i is neuron i's value vector; writing to it edits the model."""
        return input_major(self.mlp_out(layer))

    def mlp_out_bias(self, layer: int) -> Any:
        return self.mlp_out(layer).bias


def input_major(projection: Any) -> Any:
    """(in, out) view of a projection's weight, for `nn.Linear` and GPT-2's `Conv1D` alike."""
    import torch

    if isinstance(projection, torch.nn.Linear):
        return projection.weight.T
    if type(projection).__name__ == "Conv1D":
        return projection.weight
    raise UserError(f"unsupported projection type {type(projection).__name__} (expected Linear or Conv1D)")


def anatomy(model: Any) -> Anatomy:
    """The parts of a GPT-2 (`transformer.h`) or Llama-family (`model.layers`) causal LM."""
    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    head = model.get_output_embeddings()
    if hasattr(model, "transformer") and hasattr(model.transformer, "h"):
        return Anatomy(
            list(model.transformer.h), model.transformer.ln_f, head.weight, head.bias,
            "mlp", "c_proj", "attn", "c_proj", heads, head_dim,
        )  # fmt: skip
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "layers") and hasattr(inner, "norm"):
        first = inner.layers[0]
        if hasattr(first, "mlp") and hasattr(first.mlp, "down_proj") and hasattr(first, "self_attn"):
            return Anatomy(
                list(inner.layers), inner.norm, head.weight, head.bias,
                "mlp", "down_proj", "self_attn", "o_proj", heads, head_dim,
            )  # fmt: skip
    raise UserError(
        f"model type '{config.model_type}' is not supported by the anchored-bias methods "
        "(supported: GPT-2 and Llama-family layouts)"
    )
