"""Training and evaluating a body with a head on a token stream; perplexity is exp(mean NLL per token)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


def batches(
    tokens: torch.Tensor, batch: int, block: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(len(tokens) - block - 1, (batch,), generator=generator).to(tokens.device)
    index = starts[:, None] + torch.arange(block + 1, device=tokens.device)[None, :]
    window = tokens[index].long()
    return window[:, :-1], window[:, 1:]


def fit(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    params: list[torch.nn.Parameter],
    sample: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    lr: float,
    every: Callable[[int], None] | None = None,
) -> None:
    """AdamW with a cosine schedule; `forward(x, y)` returns the mean NLL of a batch."""
    if not params or steps <= 0:
        return
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * 0.5 * (1 + math.cos(math.pi * s / steps)),
    )
    for step in range(steps):
        x, y = sample()
        loss = forward(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if every is not None:
            every(step)


@torch.no_grad()
def perplexity(
    nll_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tokens: torch.Tensor,
    block: int,
    max_tokens: int,
) -> float:
    """Over consecutive windows of the stream (each token predicted once, with up to `block` of context)."""
    total, count = 0.0, 0
    usable = min(len(tokens) - 1, max_tokens) if max_tokens else len(tokens) - 1
    for start in range(0, usable - 1, block):
        end = min(start + block, usable)
        x = tokens[start:end].long()[None]
        y = tokens[start + 1 : end + 1].long()[None]
        nll = nll_of(x, y)
        total += float(nll.sum())
        count += nll.numel()
    return math.exp(total / max(count, 1))


def time_logits(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    positions: int,
    device: torch.device,
    repeats: int = 5,
) -> float:
    """Seconds of `logits_of` over seconds of `reference` on one (positions, dim) input, best of repeats."""
    import time

    h = torch.randn(positions, dim, device=device)

    def best(fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
        fn(h)
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(h)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.no_grad():
        return best(logits_of) / best(reference)


def counts(tokens: np.ndarray, vocab: int) -> np.ndarray:
    return np.bincount(tokens, minlength=vocab).astype(np.int64)
