"""Cascade DP: the best allocation under cascade users among those that keep one order of the ads.

With one click rate c per ad and one continuation probability q, swapping two adjacent ads shows that
the optimal allocation shows its ads in decreasing b c / (1 - q (1 - c)). Here ads are ranked by that
index with c_i their mean standalone click probability and q the mean continuation (our choice), and a
dynamic programme over (ad rank, position) finds exactly the best allocation whose ads appear in rank
order, each position filled or left empty: O(n m). It is the exact optimum when click rates do not
depend on the position and q is constant (the tests check this), an approximation otherwise, and the
task measures its ratio to the optimum. Prices are thresholds by the payment identity
(tasks/auctions/protocol.py); the ranking moves with the bid, so monotonicity is not guaranteed and the
task measures the misreports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.registries import register_method
from tasks.auctions.protocol import AuctionMechanism, cascade_threshold_prices


def dp_allocation(bids: np.ndarray, ctr: np.ndarray, read_on: np.ndarray) -> np.ndarray:
    """Positions of the ads; `bids` may be a batch (B, n) of bid vectors, each allocated on its own.
    An ad bidding 0 adds nothing and is never placed (placing needs a strict gain)."""
    batch = np.maximum(np.atleast_2d(bids), 0.0)
    size, n = batch.shape
    m = ctr.shape[1]
    rate, q = ctr.mean(axis=1), float(read_on.mean())
    order = np.argsort(-batch * (rate / (1.0 - q * (1.0 - rate))), axis=1, kind="stable")
    v, p = np.take_along_axis(batch, order, axis=1), ctr[order]  # (B, n), (B, n, m) in rank order
    # value[:, k, j]: the best welfare per unit of reach from position j on, with ads ranked k.. left.
    value = np.zeros((size, n + 1, m + 1))
    place_here = np.zeros((size, n, m), bool)
    skip_ad = np.zeros((size, n, m), bool)
    for j in range(m - 1, -1, -1):
        place = v * p[:, :, j] + read_on[j] * (1.0 - p[:, :, j]) * value[:, 1:, j + 1]
        empty = read_on[j] * value[:, :n, j + 1]
        best_here = np.maximum(place, empty)
        place_here[:, :, j] = place > empty
        column = np.maximum.accumulate(best_here[:, ::-1], axis=1)[:, ::-1]
        value[:, :n, j] = column
        skip_ad[:, :, j] = value[:, 1:, j] >= best_here  # the next ranks do as well without this ad
    positions = np.full((size, n), -1)
    rows = np.arange(size)
    k, j = np.zeros(size, np.int64), np.zeros(size, np.int64)
    for _ in range(n + m):
        live = (k < n) & (j < m)
        if not live.any():
            break
        kk, jj = np.minimum(k, n - 1), np.minimum(j, m - 1)
        skip = live & skip_ad[rows, kk, jj]
        put = live & ~skip & place_here[rows, kk, jj]
        positions[rows[put], order[rows[put], kk[put]]] = jj[put]
        k = k + (skip | put)
        j = j + (live & ~skip)
    return positions if np.ndim(bids) == 2 else positions[0]


@register_method("cascade-dp")
@dataclass(kw_only=True)
class CascadeDP(AuctionMechanism):
    def allocate(self, bids, setting):  # type: ignore[no-untyped-def]
        return dp_allocation(bids, setting.ctr, setting.read_on)

    def prices(self, bids, setting, positions, bidders):  # type: ignore[no-untyped-def]
        return cascade_threshold_prices(dp_allocation, np.maximum(bids, 0.0), setting, positions, bidders)
