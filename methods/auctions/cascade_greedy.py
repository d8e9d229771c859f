"""Cascade greedy: place ads one at a time where they add the most welfare under cascade users.

With the allocation so far, putting ad a in the empty position j adds reach_j p_aj b_a and costs the
positions below p_aj times their welfare (the users who now click a never read on), so it gains
p_aj (reach_j b_a - W_below_j). The pair with the largest gain is placed until none is positive, so a
position may stay empty when the ads below it are worth more than what could fill it (our greedy; the
paper's approximation is not public). Prices are thresholds by the payment identity
(tasks/auctions/protocol.py), which makes it truthful where the allocation is monotone in the bid; that
is not guaranteed here, and the task measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.registries import register_method
from tasks.auctions.clicks import cascade_clicks
from tasks.auctions.protocol import AuctionMechanism, threshold_price


def greedy_allocation(bids: np.ndarray, ctr: np.ndarray, read_on: np.ndarray) -> np.ndarray:
    n, m = ctr.shape
    positions = np.full(n, -1)
    free_ads, free_positions = np.ones(n, bool), np.ones(m, bool)
    p_at, value_at = np.zeros(m), np.zeros(m)
    for _ in range(min(n, m)):
        reach = np.concatenate(([1.0], np.cumprod(read_on * (1.0 - p_at))[:-1]))
        earned = reach * p_at * value_at
        below = np.concatenate((np.cumsum(earned[::-1])[::-1][1:], [0.0]))
        gain = ctr * (reach * bids[:, None] - below)
        gain[~free_ads] = -np.inf
        gain[:, ~free_positions] = -np.inf
        ad, position = np.unravel_index(np.argmax(gain), gain.shape)
        if gain[ad, position] <= 0:
            break
        positions[ad] = position
        free_ads[ad], free_positions[position] = False, False
        p_at[position], value_at[position] = ctr[ad, position], bids[ad]
    return positions


@register_method("cascade-greedy")
@dataclass(kw_only=True)
class CascadeGreedy(AuctionMechanism):
    def allocate(self, bids, setting):  # type: ignore[no-untyped-def]
        return greedy_allocation(np.maximum(bids, 0.0), setting.ctr, setting.read_on)

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
                return float(cascade_clicks(ctr, read_on, greedy_allocation(trial, ctr, read_on))[ad])

            out[k] = threshold_price(own_clicks, float(bids[ad]))
        return out
