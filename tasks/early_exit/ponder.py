"""PonderNet's exit distribution, prior and loss as PALBERT's official code computes them; shared by
`pondernet` and `palbert`.

Followed: tinkoff-ai/palbert at 52a79af319aa963d27bca22083cf3fe81ccaabee, `src/modeling/palbert_fast.py`
(`PAlbertModel.forward`, training branch) and `src/loss.py` (`RegularizationLoss`).

- p_i = lambda_i * prod_{j<i} (1 - lambda_j) on every layer, the last one included: no remainder is added,
  so p sums to 1 - prod_i (1 - lambda_i) when nothing is truncated.
- Truncation: a layer reached once the mass before it has passed 1 - eps gets the constant eps / L (L the
  model's layer count), as `masked_fill(current_pdf, current_cdf > 1 - eps, eps / L)` does.
- Training stops computing layers once every example of the batch has passed 1 - eps; the layers not
  computed get eps / L in the KL term and no CE term (the official loss zips the exit probabilities with
  the logits of the layers computed).
- The geometric prior puts lambda_p (1 - lambda_p)^i on layer i and the tail mass (1 - lambda_p)^(L-1) on
  the last layer; it is not renormalised.
- Q-exit at inference reads the untruncated CDF and exits once it is strictly above the threshold.

Probabilities are kept in log space (from the halting logits) so the KL term stays finite where a float
product of sigmoids would underflow; where both are finite the values are the official ones.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F  # noqa: N812


class TruncatedExit:
    """The training-time exit distribution built one layer at a time, as the official forward loop does."""

    def __init__(self, total_layers: int, eps: float) -> None:
        self.total_layers, self.eps = total_layers, eps
        self.fill = eps / total_layers
        self.log_pdf: list[torch.Tensor] = []
        self.cdf: torch.Tensor | None = None
        self._log_survive: torch.Tensor | None = None

    def add(self, halting_logit: torch.Tensor) -> None:
        """Append the next layer's (batch,) exit probability from its halting logit."""
        if self.cdf is None or self._log_survive is None:
            self.cdf = torch.zeros_like(halting_logit)
            self._log_survive = torch.zeros_like(halting_logit)
        log_p = F.logsigmoid(halting_logit) + self._log_survive
        log_p = torch.where(self.cdf > 1 - self.eps, torch.full_like(log_p, math.log(self.fill)), log_p)
        self._log_survive = self._log_survive + F.logsigmoid(-halting_logit)
        self.cdf = self.cdf + log_p.exp()
        self.log_pdf.append(log_p)

    def passed(self) -> bool:
        """Has every example's mass passed 1 - eps (so the official loop stops computing layers)?"""
        return self.cdf is not None and bool((self.cdf > 1 - self.eps).all())

    def log_distribution(self) -> torch.Tensor:
        """(total_layers, batch) log exit probabilities; layers not computed get log(eps / L)."""
        rows = list(self.log_pdf)
        rows += [torch.full_like(rows[0], math.log(self.fill))] * (self.total_layers - len(rows))
        return torch.stack(rows)


def _run(halting_logits: torch.Tensor, eps: float, total_layers: int | None) -> tuple[TruncatedExit, int]:
    """Feed the rows until the batch has passed 1 - eps; returns the distribution and the layers used."""
    exits = TruncatedExit(total_layers or halting_logits.shape[0], eps)
    used = 0
    for row in halting_logits:
        exits.add(row)
        used += 1
        if exits.passed():
            break
    if used < exits.total_layers and not exits.passed():
        raise ValueError(
            f"halting logits for {halting_logits.shape[0]} of {exits.total_layers} layers, but the batch "
            "has not passed 1 - eps there: the later layers are needed"
        )
    return exits, used


def exit_distribution(
    halting_logits: torch.Tensor, eps: float = 0.05, total_layers: int | None = None
) -> torch.Tensor:
    """(total_layers, batch) training-time exit probabilities from (layers, batch) halting logits. Given
    only the layers computed before the batch passed 1 - eps, the rest are filled with eps / L."""
    exits, _ = _run(halting_logits, eps, total_layers)
    return exits.log_distribution().exp()


def geometric_prior(layers: int, rate: float, like: torch.Tensor) -> torch.Tensor:
    """(layers,) the official prior: rate (1 - rate)^i, with what is left, (1 - rate)^(layers-1), last."""
    steps = torch.arange(layers, dtype=like.dtype, device=like.device)
    prior = rate * (1 - rate) ** steps
    prior[-1] = (1 - rate) ** (layers - 1)
    return prior


def ponder_loss(
    logits: torch.Tensor,
    halting_logits: torch.Tensor,
    labels: torch.Tensor,
    beta: float,
    prior_rate: float,
    eps: float = 0.05,
    total_layers: int | None = None,
) -> torch.Tensor:
    """sum_i mean_batch(p_i * CE_i) over the layers computed + beta * KL(prior || p), the KL averaged over
    the batch (`KLDivLoss(reduction="batchmean")`). logits (layers, batch, classes) and halting logits
    (layers, batch) of the same layers; layers after the one where the batch passed 1 - eps are ignored."""
    exits, used = _run(halting_logits, eps, total_layers)
    log_p = exits.log_distribution()
    ce = torch.stack([F.cross_entropy(layer, labels, reduction="none") for layer in logits[:used]])
    task = (log_p[:used].exp() * ce).sum(dim=0).mean()
    prior = geometric_prior(exits.total_layers, prior_rate, log_p)[:, None]
    kl = (prior * (prior.log() - log_p)).sum(dim=0).mean()
    return task + beta * kl


def exit_cdf(halting_logits: torch.Tensor) -> torch.Tensor:
    """(batch,) untruncated CDF after this prefix of layers: 1 - prod_i (1 - lambda_i)."""
    return -torch.expm1(F.logsigmoid(-halting_logits).sum(dim=0))


def q_exit(halting_logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """(batch,) bool: is the exit distribution's CDF over this prefix of layers above `threshold`?"""
    return exit_cdf(halting_logits) > threshold
