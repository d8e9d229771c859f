"""Advertisers' values per click: the distribution a task declares, with Myerson's virtual values.

A revenue-optimal mechanism (Myerson 1981) allocates by virtual value phi(v) = v - (1 - F(v)) / f(v) and
excludes a bidder whose phi is not positive; the value where phi crosses zero is the reserve price.
Both distributions here are regular (phi increasing), so no ironing is needed: uniform always, lognormal
for sigma <= 1.5 (checked on a fine grid in the tests; at sigma = 2 phi dips, below the reserve, and the
ironing that would need is not implemented, so a larger sigma is refused).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.errors import UserError

MAX_LOGNORMAL_SIGMA = 1.5
DistributionName = Literal["uniform", "lognormal"]


@dataclass(frozen=True)
class ValueDistribution:
    """Values i.i.d. across advertisers. uniform: on [low, high]; lognormal: exp(N(mu, sigma^2))."""

    name: DistributionName = "uniform"
    low: float = 0.0
    high: float = 1.0
    mu: float = 0.0
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if self.name == "uniform" and not (
            math.isfinite(self.low) and math.isfinite(self.high) and 0 <= self.low < self.high
        ):
            raise UserError(
                f"uniform value distribution needs 0 <= value_low < value_high, got {self.low}, {self.high}"
            )
        if self.name == "lognormal" and not (
            math.isfinite(self.mu) and 0 < self.sigma <= MAX_LOGNORMAL_SIGMA
        ):
            raise UserError(
                f"lognormal value distribution needs 0 < value_sigma <= {MAX_LOGNORMAL_SIGMA} (regular: "
                f"increasing virtual value, no ironing needed), got value_sigma={self.sigma}"
            )
        if self.name not in ("uniform", "lognormal"):
            raise UserError(f"value distribution '{self.name}': expected 'uniform' or 'lognormal'")

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.name == "uniform":
            return rng.uniform(self.low, self.high, size)
        return rng.lognormal(self.mu, self.sigma, size)

    def support_problem(self, value: float) -> str | None:
        """Why `value` cannot come from this distribution, or None."""
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if self.name == "uniform" and not self.low <= value <= self.high:
            return f"{value!r} is outside the uniform distribution's support [{self.low}, {self.high}]"
        if self.name == "lognormal" and value <= 0:
            return f"{value!r} is not positive (lognormal values are)"
        return None

    def virtual_value(self, v: np.ndarray | float) -> np.ndarray:
        """phi(v) = v - (1 - F(v)) / f(v), elementwise."""
        v = np.asarray(v, dtype=float)
        if self.name == "uniform":
            return 2.0 * v - self.high
        # For the lognormal (1 - F) / f = v * sigma * M(z), M the normal's Mills ratio at z = (ln v - mu) /
        # sigma, written with erfcx so that it stays finite far in both tails.
        from scipy.special import erfcx

        # phi -> -inf as v -> 0 (a bid of 0, outside the support, gets -inf).
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            z = (np.log(np.maximum(v, 1e-300)) - self.mu) / self.sigma
            mills = math.sqrt(math.pi / 2.0) * erfcx(z / math.sqrt(2.0))
            return np.where(v > 0, v * (1.0 - self.sigma * mills), -np.inf)

    def inverse_virtual_value(self, t: float) -> float:
        """The value whose virtual value is `t` (phi is increasing); t = 0 gives the reserve price."""
        if self.name == "uniform":
            return (t + self.high) / 2.0
        from scipy.optimize import brentq

        def gap(log_v: float) -> float:
            return float(self.virtual_value(math.exp(log_v))) - t

        lo, hi = self.mu - 12 * self.sigma, self.mu + 2 * self.sigma
        while gap(hi) < 0:
            hi += 2 * self.sigma
        return math.exp(brentq(gap, lo, hi, xtol=1e-13, rtol=1e-13))

    @property
    def reserve(self) -> float:
        """The lowest value with a positive virtual value, clipped to the support."""
        r = self.inverse_virtual_value(0.0)
        return max(r, self.low) if self.name == "uniform" else r
