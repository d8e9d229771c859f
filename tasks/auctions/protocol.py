"""What an auction mechanism provides: an allocation rule and a payment rule, given the bids.

A mechanism sees the bids and the setting (the click estimates, the user model, the value distribution
the task declares), never the values. It returns, for each ad, a position (-1: not shown) and a price per
click; the advertiser pays that price on each click, so an expected payment is price x click probability
under the users' real behaviour, an ad nobody clicks pays nothing, and a price at most the bid keeps
every truthful bidder's utility non-negative. A mechanism may assume a user model other than the task's
(classic GSP assumes one click rate per ad); it is then evaluated under the task's users all the same.

`threshold_price` beside the protocol is the payment identity that any mechanism with a monotone
allocation can use: Myerson's lemma makes it the only price under which truthful bidding is optimal.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.components import Method
from tasks.auctions.clicks import cascade_clicks, mnl_clicks, mnl_weights
from tasks.auctions.values import ValueDistribution

UserModel = Literal["mnl", "cascade"]


@dataclass(frozen=True, eq=False)
class AuctionSetting:
    """One auction's public data."""

    ctr: np.ndarray  # (n ads, m positions): standalone click probability, in (0, 1)
    user_model: UserModel
    prior: ValueDistribution  # the distribution advertisers' values are drawn from
    continuation: np.ndarray | None = None  # (m,): cascade only, P(read on past position j), in [0, 1]

    @property
    def n_ads(self) -> int:
        return self.ctr.shape[0]

    @property
    def n_positions(self) -> int:
        return self.ctr.shape[1]

    @property
    def weights(self) -> np.ndarray:
        """The MNL weights exp(rho_ij)."""
        return mnl_weights(self.ctr)

    @property
    def read_on(self) -> np.ndarray:
        """Continuation probabilities; a setting without them (MNL users) reads on with certainty."""
        return np.ones(self.n_positions) if self.continuation is None else self.continuation

    def clicks(self, positions: np.ndarray) -> np.ndarray:
        """Every ad's click probability under this setting's users."""
        if self.user_model == "mnl":
            return mnl_clicks(self.weights, positions)
        return cascade_clicks(self.ctr, self.read_on, positions)


class AuctionMechanism(Method):
    protocol_of = "auctions"

    @abc.abstractmethod
    def allocate(self, bids: np.ndarray, setting: AuctionSetting) -> np.ndarray:
        """The position of each ad (n ints, -1 when not shown; no position twice)."""

    @abc.abstractmethod
    def prices(
        self, bids: np.ndarray, setting: AuctionSetting, positions: np.ndarray, bidders: Sequence[int]
    ) -> np.ndarray:
        """The price per click of each ad in `bidders` (0 for one not shown), given `positions`, the
        allocation this mechanism made at `bids`. Only the listed bidders' prices are asked for, so a
        misreport search pays for one bidder's price at a time."""


def threshold_price(
    own_clicks: Callable[[float], float], bid: float, grid: int = 8, tol: float = 1e-7
) -> float:
    """Price per click from the payment identity: P = b x(b) - integral_0^b x(z) dz, price = P / x(b),
    where x(z) is the bidder's click probability when it bids z and the others keep their bids.

    x is a step function (finitely many allocations). It is evaluated on `grid` equal steps of [0, b],
    and every step whose ends differ is bisected down to `tol` x b, so each jump is located to that
    precision. A jump hidden between two grid points with equal x (x rising and falling back, which a
    monotone allocation never does) is missed; for a monotone allocation the price is exact to tol.
    """
    if bid <= 0:
        return 0.0
    top = own_clicks(bid)
    if top <= 0:
        return 0.0
    width = tol * bid

    def integral(a: float, b: float, xa: float, xb: float) -> float:
        if xa == xb:
            return xa * (b - a)
        if b - a <= width:
            return 0.5 * (xa + xb) * (b - a)
        c = 0.5 * (a + b)
        xc = own_clicks(c)
        return integral(a, c, xa, xc) + integral(c, b, xc, xb)

    points = np.linspace(0.0, bid, grid + 1)
    xs = [own_clicks(float(z)) for z in points[:-1]] + [top]
    area = sum(integral(float(points[k]), float(points[k + 1]), xs[k], xs[k + 1]) for k in range(grid))
    # Negative only when x fell as the bid rose (a non-monotone allocation); the platform never pays an
    # advertiser, so that price is 0 (our choice).
    return max(0.0, bid * top - area) / top
