"""PonderNet's exit distribution and its regulariser, shared by `pondernet` and `palbert`.

p_i = lambda_i * prod_{j<i} (1 - lambda_j); the last layer takes what is left. Once the cumulative mass
passes 1 - eps, the rest is spread evenly over the remaining layers (PALBERT's truncation).
"""

from __future__ import annotations

import torch


def exit_distribution(
    lambdas: torch.Tensor, eps: float = 0.05, total_layers: int | None = None
) -> torch.Tensor:
    """(layers, batch) exit probabilities from (layers, batch) halting probabilities; columns sum to 1.
    Given the first rows of a deeper model's lambdas and its `total_layers`, the rows are the first rows
    of that model's distribution (what an exit rule needs before the later layers are computed)."""
    layers = total_layers or lambdas.shape[0]
    rows, survive, cumulative = [], torch.ones_like(lambdas[0]), torch.zeros_like(lambdas[0])
    spread = torch.zeros_like(lambdas[0])  # per-layer share once truncated
    truncated = torch.zeros_like(lambdas[0], dtype=torch.bool)
    for i in range(lambdas.shape[0]):
        p = survive if i == layers - 1 else lambdas[i] * survive
        p = torch.where(truncated, spread, p)
        rows.append(p)
        survive = survive * (1 - lambdas[i])
        cumulative = cumulative + p
        newly = ~truncated & (cumulative >= 1 - eps) & (i < layers - 1)
        spread = torch.where(newly, (1 - cumulative) / max(1, layers - 1 - i), spread)
        truncated = truncated | newly
    return torch.stack(rows)


def geometric_prior(layers: int, rate: float, like: torch.Tensor) -> torch.Tensor:
    """(layers,) truncated geometric distribution with success rate `rate`, renormalised."""
    steps = torch.arange(layers, dtype=like.dtype, device=like.device)
    prior = rate * (1 - rate) ** steps
    return prior / prior.sum()


def ponder_loss(
    logits: torch.Tensor, lambdas: torch.Tensor, labels: torch.Tensor, beta: float, prior_rate: float
) -> torch.Tensor:
    """sum_i mean_batch(p_i * CE_i) + beta * KL(prior || p), averaged over the batch."""
    from torch.nn import functional as F  # noqa: N812

    p = exit_distribution(lambdas)
    ce = torch.stack([F.cross_entropy(layer, labels, reduction="none") for layer in logits])
    prior = geometric_prior(len(p), prior_rate, p)[:, None]
    kl = (prior * (prior.log() - p.clamp_min(1e-12).log())).sum(dim=0)
    return (p * ce).sum(dim=0).mean() + beta * kl.mean()


def q_exit(lambdas: torch.Tensor, threshold: float, total_layers: int) -> torch.Tensor:
    """(batch,) bool: has the exit distribution's CDF over this prefix of layers reached `threshold`?"""
    return exit_distribution(lambdas, total_layers=total_layers).sum(dim=0) >= threshold
