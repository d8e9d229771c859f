"""The students: a truncated copy of the teacher, a small decoder from scratch, or a given checkpoint;
each shares the teacher's tokenizer, so the two vocabularies are the same channels.

- truncated: the teacher's embeddings, final norm and head with its first L decoder blocks (DistilBERT's
  and "shortened LLaMA"'s initialisation); with L = all blocks it is the teacher.
- scratch: a Llama-architecture decoder of width `dim` and depth L, randomly initialised from the run's
  seed, with a tied embedding and head over the teacher's vocabulary.
- a folder or hub id: any pretrained causal LM with the same tokenizer (e.g. a smaller model of the
  teacher's family).
"""

from __future__ import annotations

import copy
from typing import Any

from harness.errors import UserError


def truncated(teacher: Any, layers: int) -> Any:
    """A copy of `teacher` keeping its first `layers` decoder blocks."""
    from torch import nn

    from tasks.generation.expert import decoder_layers

    stack = decoder_layers(teacher)
    if not 1 <= layers <= len(stack):
        raise UserError(
            f"parameter 'student_layers' must be 1 to {len(stack)} (the teacher's blocks), got {layers}"
        )
    student = copy.deepcopy(teacher)
    student.model.layers = nn.ModuleList(list(student.model.layers)[:layers])
    student.config.num_hidden_layers = layers
    if getattr(student.config, "layer_types", None):
        student.config.layer_types = list(student.config.layer_types)[:layers]
    return student


def scratch(vocab: int, dim: int, layers: int, positions: int, seed: int) -> Any:
    """A randomly initialised Llama decoder: heads of 32 dimensions, MLP 4x wide, tied embedding."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if dim < 32 or dim % 32:
        raise UserError(f"parameter 'scratch_dim' must be a positive multiple of 32, got {dim}")
    if layers < 1:
        raise UserError(f"parameter 'student_layers' must be at least 1, got {layers}")
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=dim,
        intermediate_size=4 * dim,
        num_hidden_layers=layers,
        num_attention_heads=dim // 32,
        num_key_value_heads=dim // 32,
        max_position_embeddings=positions,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def trained_parameters(student: Any, embeddings: bool) -> list[Any]:
    """Every parameter, or all but the (tied) token embedding and output head."""
    params = list(student.parameters())
    if embeddings:
        return params
    frozen = {id(student.get_input_embeddings().weight), id(student.get_output_embeddings().weight)}
    for p in params:
        if id(p) in frozen:
            p.requires_grad_(False)
    return [p for p in params if id(p) not in frozen]


def parameter_count(model: Any) -> int:
    """Parameters, a tied embedding and head counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
