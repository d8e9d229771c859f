"""The expert: the base model fine-tuned on the domain's training examples, built once as an artifact.

Each example is trained as `prompt + " " + example + EOS` with the loss on the example's tokens and the
EOS only, so the expert learns to answer the task's prompt with one example and stop. To fit a 2-core CPU
(at most 10 minutes), only the top `layers` decoder layers and the final norm are trained (AdamW, linear
warm-up over the first 10% of steps, then linear decay); the embeddings, tied to the output head, stay the
base model's, so base and expert share the tokenizer and the output space. The artifact keeps only the
trained tensors (57 MB for the default top 4 layers) and the seconds the fine-tuning took, with the thread
count and load average it took them under; the expert is the base checkpoint with them loaded over it. That
expert shares the base's bottom layers bit for bit, which STEER's base stream uses
(tasks/generation/streams.py). Held-out examples never reach this module: it is given the training ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError

TUNED_FILE = "tuned.safetensors"


@dataclass(frozen=True)
class FineTuning:
    examples: int  # training examples used (a fixed subset, the same for every seed)
    epochs: int
    layers: int  # top decoder layers trained
    lr: float
    batch: int


def training_subset(train: list[str], count: int) -> list[str]:
    """The first `count` examples of a fixed shuffle (seed 0): the same expert for every run seed."""
    order = np.random.default_rng(0).permutation(len(train))
    return [train[i] for i in order[: min(count, len(train))]]


def examples_digest(examples: list[str]) -> str:
    return hashlib.sha256("\n".join(examples).encode()).hexdigest()


def decoder_layers(model: Any) -> list[Any]:
    body = getattr(model, "model", None)
    layers = getattr(body, "layers", None)
    if layers is None:
        raise UserError(
            f"{type(model).__name__}: fine-tuning needs a decoder with model.layers (Llama-style); "
            "give a fine-tuned `expert` checkpoint instead"
        )
    return list(layers)


def tuned_parameters(model: Any, layers: int) -> dict[str, Any]:
    """name -> parameter of the top `layers` decoder layers and the final norm."""
    stack = decoder_layers(model)
    chosen = {id(p) for layer in stack[len(stack) - layers :] for p in layer.parameters()}
    norm = getattr(model.model, "norm", None)
    if norm is not None:
        chosen |= {id(p) for p in norm.parameters()}
    return {name: p for name, p in model.named_parameters() if id(p) in chosen}


def fine_tune(
    model: Any, tokenizer: Any, prompt: str, examples: list[str], settings: FineTuning, out: Path
) -> None:
    """Train `model` in place on `examples` and write the trained tensors and timing into `out`."""
    import torch
    from safetensors.torch import save_file

    if not 1 <= settings.layers <= len(decoder_layers(model)):
        raise UserError(
            f"parameter 'finetune_layers' must be 1 to {len(decoder_layers(model))}, got {settings.layers}"
        )
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    torch.manual_seed(0)
    for p in model.parameters():
        p.requires_grad_(False)
    tuned = tuned_parameters(model, settings.layers)
    for p in tuned.values():
        p.requires_grad_(True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    rows = [
        prompt_ids + tokenizer(" " + x, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for x in examples
    ]
    steps = settings.epochs * math.ceil(len(rows) / settings.batch)
    optimizer = torch.optim.AdamW(list(tuned.values()), lr=settings.lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    rng = np.random.default_rng(0)
    losses = []
    model.train()
    device = next(model.parameters()).device
    for _ in range(settings.epochs):
        order = rng.permutation(len(rows))
        for begin in range(0, len(rows), settings.batch):
            chunk = [rows[i] for i in order[begin : begin + settings.batch]]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), tokenizer.eos_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            labels = torch.full_like(ids, -100)
            for i, row in enumerate(chunk):
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
                labels[i, len(prompt_ids) : len(row)] = torch.tensor(row[len(prompt_ids) :])
            loss = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
            ).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    model.eval()
    save_file({k: v.detach().cpu().contiguous() for k, v in tuned.items()}, str(out / TUNED_FILE))
    seconds = time.perf_counter() - start
    window = max(1, len(losses) // 10)
    (out / "meta.json").write_text(
        json.dumps(
            {
                "seconds": seconds,
                "steps": len(losses),
                "examples": len(examples),
                "first_loss": float(np.mean(losses[:window])),
                "last_loss": float(np.mean(losses[-window:])),
                "settings": asdict(settings),
                # what the time was measured under: torch's threads and the 1-minute load average of the
                # machine before and after (other processes on the cores slow it several times over)
                "torch_threads": torch.get_num_threads(),
                "load_average": [load_before, os.getloadavg()[0]],
            }
        )
    )


def load_tuned(model: Any, folder: Path) -> dict[str, Any]:
    """Load the artifact's tensors over `model` (the base checkpoint) and return its meta."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(folder / TUNED_FILE))
    own = dict(model.named_parameters())
    unknown = sorted(set(tensors) - set(own))
    if unknown:
        raise UserError(f"{folder}: tensors {unknown[:3]} are not parameters of the base model")
    with torch.no_grad():
        for name, value in tensors.items():
            own[name].copy_(value.to(own[name].device))
    return json.loads((folder / "meta.json").read_text())
