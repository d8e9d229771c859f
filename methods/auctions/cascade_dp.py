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
from tasks.auctions.clicks import cascade_clicks
from tasks.auctions.protocol import AuctionMechanism, threshold_price


def dp_allocation(bids: np.ndarray, ctr: np.ndarray, read_on: np.ndarray) -> np.ndarray:
    n, m = ctr.shape
    rate, q = ctr.mean(axis=1), float(read_on.mean())
    index = bids * rate / (1.0 - q * (1.0 - rate))
    order = np.argsort(-index, kind="stable")
    order = order[bids[order] > 0]
    k_ads = len(order)
    p, v = ctr[order], bids[order]
    # value[k, j]: the best welfare per unit of reach from position j on, with ads order[k:] left.
    value = np.zeros((k_ads + 1, m + 1))
    place_here = np.zeros((k_ads, m), bool)
    skip_ad = np.zeros((k_ads, m), bool)
    for j in range(m - 1, -1, -1):
        place = v * p[:, j] + read_on[j] * (1.0 - p[:, j]) * value[1:, j + 1]
        empty = read_on[j] * value[:k_ads, j + 1]
        best_here = np.maximum(place, empty)
        place_here[:, j] = place > empty
        column = np.maximum.accumulate(best_here[::-1])[::-1]
        value[:k_ads, j] = column
        skip_ad[:, j] = np.append(column[1:], 0.0) >= best_here
    positions = np.full(n, -1)
    k = j = 0
    while k < k_ads and j < m:
        if skip_ad[k, j]:
            k += 1
        elif place_here[k, j]:
            positions[order[k]] = j
            k, j = k + 1, j + 1
        else:
            j += 1
    return positions


@register_method("cascade-dp")
@dataclass(kw_only=True)
class CascadeDP(AuctionMechanism):
    def allocate(self, bids, setting):  # type: ignore[no-untyped-def]
        return dp_allocation(np.maximum(bids, 0.0), setting.ctr, setting.read_on)

    def prices(self, bids, setting, positions, bidders):  # type: ignore[no-untyped-def]
        bids = np.maximum(bids, 0.0)
        ctr, read_on = setting.ctr, setting.read_on
        out = np.zeros(len(bidders))
        for k, ad in enumerate(bidders):
            if positions[ad] < 0:
                continue
            trial = bids.copy()

            def own_clicks(z: float, ad: int = ad, trial: np.ndarray = trial) -> float:
                trial[ad] = z
                return float(cascade_clicks(ctr, read_on, dp_allocation(trial, ctr, read_on))[ad])

            out[k] = threshold_price(own_clicks, float(bids[ad]))
        return out
