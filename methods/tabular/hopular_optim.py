"""LAMB and Lookahead as Hopular trains with them (ml-jku/hopular `hopular/optim.py`, commit 3e0c39f).

Ours, not a package's: torch-optimizer (last release 2021) and pytorch-optimizer ship LAMB and Lookahead,
but only the synchronising Lookahead, and Hopular's default is the other mode: with
`synchronize=False` the fast weights are never pulled back, so the slow weights are an exponential moving
average of them (`alpha` per `steps` updates) and are what validation and prediction use.

LAMB (You et al. 2019) with Adam's bias correction, as the official file has it: the Adam step
m_hat / (sqrt(v_hat) + eps) plus `weight_decay * w`, scaled by the trust ratio ||w|| / ||step|| per
tensor, with ||w|| clamped to [0, 10] and the ratio 1 when either norm is 0.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator

import torch


class Lamb(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or eps <= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Lamb: lr and eps must be positive, betas in [0, 1); got {lr}, {eps}, {betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                step_size = group["lr"] * math.sqrt(1 - beta2 ** state["step"]) / (1 - beta1 ** state["step"])
                adam_step = exp_avg / exp_avg_sq.sqrt().add(group["eps"])
                if group["weight_decay"]:
                    adam_step.add_(p, alpha=group["weight_decay"])
                weight_norm = p.norm().clamp(0.0, 10.0)
                adam_norm = adam_step.norm()
                trust = torch.where(
                    (weight_norm > 0) & (adam_norm > 0), weight_norm / adam_norm, torch.ones_like(adam_norm)
                )
                p.add_(adam_step * trust, alpha=-step_size)
        return loss


class Lookahead:
    """Slow weights that move `alpha` of the way towards the fast ones every `steps` updates of `inner`;
    with `synchronize` the fast weights then restart from the slow ones (Zhang et al. 2019)."""

    def __init__(
        self, inner: torch.optim.Optimizer, steps: int = 5, alpha: float = 0.8, synchronize: bool = True
    ) -> None:
        if steps < 1 or not 0 < alpha <= 1:
            raise ValueError(f"Lookahead: steps must be >= 1 and alpha in (0, 1]; got {steps}, {alpha}")
        self.inner = inner
        self.steps = steps
        self.alpha = alpha
        self.synchronize = synchronize
        self.params = [p for group in inner.param_groups for p in group["params"]]
        self.slow = [p.detach().clone() for p in self.params]
        self.count = 0

    @property
    def param_groups(self) -> list[dict]:
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        self.inner.step()
        self.count += 1
        if self.count % self.steps:
            return
        for p, slow in zip(self.params, self.slow, strict=True):
            slow.add_(p - slow, alpha=self.alpha)
            if self.synchronize:
                p.copy_(slow)

    @contextlib.contextmanager
    def slow_weights(self) -> Iterator[None]:
        """The model holds the slow weights inside the block and its fast weights again after it."""
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, slow in zip(self.params, self.slow, strict=True):
                p.copy_(slow)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, fast in zip(self.params, backup, strict=True):
                    p.copy_(fast)
