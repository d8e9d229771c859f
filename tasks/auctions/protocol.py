"""What an auction mechanism provides: an allocation rule and a payment rule, given the bids.

A mechanism sees the bids and the setting (the click estimates, the user model, the value distribution
the task declares), never the values. It returns, for each ad, a position (-1: not shown) and a price per
click; the advertiser pays that price on each click, so an expected payment is price x click probability
under the users' real behaviour, an ad nobody clicks pays nothing, and a price at most the bid keeps
every truthful bidder's utility non-negative. A mechanism may assume a user model other than the task's
(classic GSP assumes one click rate per ad); it is then evaluated under the task's users all the same.

`threshold_prices` beside the protocol is the payment identity that any mechanism with a monotone
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
BATCH_CELLS = 1536  # (bid, ad, position) cells a round of cascade threshold prices evaluates, about


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


def threshold_prices(
    clicks_at: Callable[[np.ndarray, np.ndarray], np.ndarray],
    bids: np.ndarray,
    ads: Sequence[int],
    grid: int = 8,
    tol: float = 1e-7,
    batch: int = 64,
) -> np.ndarray:
    """Prices per click of `ads` from the payment identity: P = b x(b) - integral_0^b x(z) dz and
    price = P / x(b), where x(z) is the ad's click probability when it bids z and the others keep their
    bids. `clicks_at(ads, zs)` gives x for many (ad, bid) pairs at once, so a mechanism can batch them.

    x is a step function (finitely many allocations). It is evaluated on `grid` equal steps of [0, b],
    and every step whose ends differ is split again, all such steps of all ads in one batch per round,
    until it is narrower than `tol` x b: each jump is located to that precision. A jump hidden between two
    points with equal x (x rising and falling back, which a monotone allocation never does) is missed;
    for a monotone allocation the price is exact to tol.
    """
    ads = np.asarray(ads, dtype=np.int64)
    b = bids[ads].astype(float)
    if not len(ads):
        return np.zeros(0)
    fractions = np.linspace(0.0, 1.0, grid + 1)
    owner = np.repeat(np.arange(len(ads)), grid + 1)
    z = (b[:, None] * fractions).ravel()
    x = clicks_at(ads[owner], z).reshape(len(ads), grid + 1)
    top = x[:, -1]
    area = np.zeros(len(ads))
    # open steps: (index into ads, left end, right end, x there)
    who = np.repeat(np.arange(len(ads)), grid)
    lo, hi = (b[:, None] * fractions[:-1]).ravel(), (b[:, None] * fractions[1:]).ravel()
    x_lo, x_hi = x[:, :-1].ravel(), x[:, 1:].ravel()
    while len(who):
        flat = x_lo == x_hi
        narrow = ~flat & (hi - lo <= tol * b[who])
        np.add.at(area, who[flat], x_lo[flat] * (hi - lo)[flat])
        np.add.at(area, who[narrow], 0.5 * (x_lo + x_hi)[narrow] * (hi - lo)[narrow])
        keep = ~(flat | narrow)
        who, lo, hi, x_lo, x_hi = who[keep], lo[keep], hi[keep], x_lo[keep], x_hi[keep]
        if not len(who):
            break
        # Split every open step into `parts`, about `batch` bids a round: where a call costs little more
        # for more bids (small auctions), fewer, wider rounds are faster than halving.
        parts = int(np.clip(batch // len(who), 2, 16))
        inner = lo[:, None] + (hi - lo)[:, None] * (np.arange(1, parts) / parts)
        x_inner = clicks_at(np.repeat(ads[who], parts - 1), inner.ravel()).reshape(len(who), parts - 1)
        edges = np.concatenate([lo[:, None], inner, hi[:, None]], axis=1)
        x_edges = np.concatenate([x_lo[:, None], x_inner, x_hi[:, None]], axis=1)
        who = np.repeat(who, parts)
        lo, hi = edges[:, :-1].ravel(), edges[:, 1:].ravel()
        x_lo, x_hi = x_edges[:, :-1].ravel(), x_edges[:, 1:].ravel()
    # Negative only when x fell as the bid rose (a non-monotone allocation); the platform never pays an
    # advertiser, so that price is 0 (our choice).
    payment = np.maximum(b * top - area, 0.0)
    return np.where(top > 0, payment / np.where(top > 0, top, 1.0), 0.0)


def cascade_threshold_prices(
    allocation: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    bids: np.ndarray,
    setting: AuctionSetting,
    positions: np.ndarray,
    bidders: Sequence[int],
) -> np.ndarray:
    """Threshold prices of `bidders` under an allocation rule that takes a batch of bid vectors and
    cascade users with the setting's continuation probabilities (0 for an ad not shown)."""
    ctr, read_on = setting.ctr, setting.read_on
    bidders = np.asarray(bidders, dtype=np.int64)

    def clicks_at(ads: np.ndarray, zs: np.ndarray) -> np.ndarray:
        trial = np.repeat(bids[None], len(ads), axis=0)
        trial[np.arange(len(ads)), ads] = zs
        return cascade_clicks(ctr, read_on, allocation(trial, ctr, read_on))[np.arange(len(ads)), ads]

    out = np.zeros(len(bidders))
    shown = positions[bidders] >= 0
    batch = max(2, BATCH_CELLS // ctr.size)
    out[shown] = threshold_prices(clicks_at, bids, bidders[shown], batch=batch)
    return out
