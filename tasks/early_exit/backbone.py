"""Encoders for early exit: loading, per-layer [CLS] states, and real layer-by-layer inference.

Per-layer states come from the model's own hidden states, so a BERT-style stack and an ALBERT-style
shared layer both work. Early-exit inference stops the model's forward pass from a hook on its layer
module(s) as soon as the exit rule fires, so the measured time is the time of the layers actually run;
the same hook lets a training forward stop early (PALBERT's 1 - eps stop).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import UserError


def checkpoint(model: str) -> str:
    if model == "minilm-l6":
        from harness.assets import resolve

        return str(resolve("minilm-l6"))
    path = Path(model).expanduser()
    return str(path) if path.exists() else model


def load(model: str, device: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    folder = checkpoint(model)
    try:
        encoder = AutoModel.from_pretrained(folder).to(device)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise UserError(
            f"encoder '{model}' could not be loaded ({str(err).splitlines()[0]}); give the asset "
            "minilm-l6, a local checkpoint folder, or a hub id with a network"
        ) from None
    return encoder, tokenizer


def layer_count(encoder: Any) -> int:
    return int(encoder.config.num_hidden_layers)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(batch, hidden) from (batch, tokens, hidden): the [CLS] position, or the mean over real tokens
    (what sentence encoders such as all-MiniLM-L6-v2 were trained to use)."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.to(hidden.dtype)[:, :, None]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def pooler(encoder: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The encoder's own pooler as a map of one pooled (batch, hidden) state, or None when it has none:
    BERT's `pooler.dense` + `pooler.activation`, ALBERT's `pooler` + `pooler_activation` (both tanh)."""
    module = getattr(encoder, "pooler", None)
    if isinstance(module, nn.Linear) and getattr(encoder, "pooler_activation", None) is not None:
        activation = encoder.pooler_activation
        return lambda state: activation(module(state))
    if module is not None and hasattr(module, "dense") and hasattr(module, "activation"):
        return lambda state: module.activation(module.dense(state))
    return None


def layer_states(encoder: Any, batch: dict[str, torch.Tensor], pooling: str) -> torch.Tensor:
    """(layers + 1, batch, hidden): pooled states after the embeddings and after every layer."""
    out = encoder(**batch, output_hidden_states=True)
    return torch.stack([pool(h, batch["attention_mask"], pooling) for h in out.hidden_states])


def layer_modules(encoder: Any) -> list[nn.Module]:
    """The modules whose successive outputs are the layers' states (ALBERT: one shared group, reused)."""
    inner = encoder.encoder
    if hasattr(inner, "layer"):
        return list(inner.layer)
    if hasattr(inner, "albert_layer_groups"):
        return list(inner.albert_layer_groups)
    raise UserError(
        f"{type(encoder).__name__}: cannot find its layers (expected encoder.layer or "
        "encoder.albert_layer_groups)"
    )


def embedding_module(encoder: Any) -> nn.Module:
    """The module whose output is hidden_states[0] (ALBERT maps its small embeddings up first)."""
    inner = encoder.encoder
    return (
        inner.embedding_hidden_mapping_in
        if hasattr(inner, "embedding_hidden_mapping_in")
        else encoder.embeddings
    )


class ExitSignal(Exception):  # noqa: N818 - control flow, not an error
    """Raised from a layer hook to stop the forward pass."""


@torch.no_grad()
def incremental_exit(encoder: Any, batch: dict[str, torch.Tensor], on_state) -> int:  # type: ignore[no-untyped-def]
    """`run_layers` without gradients: real early-exit inference."""
    return run_layers(encoder, batch, on_state)


def run_layers(encoder: Any, batch: dict[str, torch.Tensor], on_state) -> int:  # type: ignore[no-untyped-def]
    """Run the encoder, calling on_state(i, hidden) with the (batch, tokens, hidden) states after the
    embeddings (i = 0) and after each layer (i = 1, 2, ...); stop the forward pass when it returns True
    for a layer. Returns the 0-based index of the last layer run."""
    count = {"states": 0}

    def hook(module, inputs, output):  # type: ignore[no-untyped-def]
        hidden = output[0] if isinstance(output, tuple) else output
        index = count["states"]
        count["states"] += 1
        if on_state(index, hidden) and index > 0:
            raise ExitSignal

    handles = [embedding_module(encoder).register_forward_hook(hook)]
    handles += [m.register_forward_hook(hook) for m in layer_modules(encoder)]
    try:
        encoder(**batch)
    except ExitSignal:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return count["states"] - 2
