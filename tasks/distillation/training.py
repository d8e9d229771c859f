"""Training and evaluation loops: the whole set moved to the device once, batches drawn by index.

On a GPU the loops use channels-last memory and bf16 autocast; on the CPU plain float32. Randomness
(initialisation, batch order, augmentation) comes from the run's seed, so a CPU run is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from tasks.distillation.networks import Network
from tasks.distillation.protocol import DistillationMethod, StudentOutput, aligned_gradients


@dataclass(frozen=True)
class Schedule:
    epochs: int
    batch_size: int
    optimizer: str  # "sgd" (momentum 0.9) or "adam"
    lr: float
    weight_decay: float
    augment: str  # "none" or "flip-crop" (random 4-pixel-padded crop and horizontal flip)


def make_optimizer(params, schedule: Schedule) -> torch.optim.Optimizer:  # type: ignore[no-untyped-def]
    if schedule.optimizer == "adam":
        return torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    return torch.optim.SGD(
        params, lr=schedule.lr, momentum=0.9, weight_decay=schedule.weight_decay, nesterov=True
    )


def augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    if kind == "none":
        return x
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator, device="cpu") < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(
        0, 9, (2,), generator=generator
    ).tolist()  # one offset per batch: cheap, still random
    return padded[:, :, dy : dy + h, dx : dx + w]


def _autocast(device: torch.device):  # type: ignore[no-untyped-def]
    return (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )


def train(
    model: Network,
    x: torch.Tensor,
    y: torch.Tensor,
    schedule: Schedule,
    seed: int,
    method: DistillationMethod | None = None,
    teacher: Callable[[torch.Tensor], torch.Tensor] | None = None,
    teacher_logits: torch.Tensor | None = None,
) -> nn.ModuleDict:
    """Train `model` (cross-entropy when `method` is None). The teacher's logits come precomputed for the
    whole set when there is no augmentation, else from `teacher` per batch. Returns the extra heads."""
    device = x.device
    classes = int(y.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    heads = nn.ModuleDict(
        method.extra_heads(model.feature_dim, model.penultimate_dim, classes) if method else {}
    )
    heads.to(device)
    params = [*model.parameters(), *heads.parameters()]
    optimizer = make_optimizer(params, schedule)
    steps = schedule.epochs * math.ceil(len(y) / schedule.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    model.train()
    heads.train()
    step = 0
    for epoch in range(1, schedule.epochs + 1):
        order = torch.randperm(len(y), generator=generator).to(device)
        for batch in order.split(schedule.batch_size):
            if len(batch) < 2:
                continue  # batch norm needs two samples
            xb = augment(x[batch], schedule.augment, generator)
            with _autocast(device):
                penultimate, pooled = model.features(xb)
                out = StudentOutput(model.fc(pooled), pooled, penultimate, step / max(1, steps), epoch)
                if method is None:
                    terms = {"ce": F.cross_entropy(out.logits, y[batch])}
                else:
                    t_logits = None
                    if method.uses_teacher:
                        t_logits = teacher_logits[batch] if teacher_logits is not None else teacher(xb)
                    terms = method.losses(
                        out, heads, t_logits.float() if t_logits is not None else None, y[batch]
                    )
            optimizer.zero_grad(set_to_none=True)
            if method is not None and method.align_gradients and len(terms) > 1:
                ce = terms["ce"]
                rest = sum(v for k, v in terms.items() if k != "ce")
                g_ce = torch.autograd.grad(ce, params, retain_graph=True, allow_unused=True)
                g_kd = torch.autograd.grad(rest, params, allow_unused=True)
                for p, merged in zip(params, aligned_gradients(list(g_ce), list(g_kd)), strict=True):
                    p.grad = merged
            else:
                sum(terms.values()).backward()
            optimizer.step()
            scheduler.step()
            step += 1
    return heads


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    model.eval()
    with _autocast(x.device):
        return torch.cat([model(chunk).float() for chunk in x.split(batch_size)])


def top_k_accuracy(logits: torch.Tensor, y: torch.Tensor, k: int) -> float:
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == y[:, None]).any(dim=1).float().mean())
