"""Cascade greedy: place ads one at a time where they add the most welfare under cascade users.

With the allocation so far, putting ad a in the empty position j adds reach_j p_aj b_a and costs the
positions below p_aj times their welfare (the users who now click a never read on), so it gains
p_aj (reach_j b_a - W_below_j). The pair with the largest gain is placed until none is positive, so a
position may stay empty when the ads below it are worth more than what could fill it (our greedy; the
paper's approximation is not public). Prices are thresholds by the payment identity
(tasks/auctions/protocol.py, batched over all the bids it tries), which makes it truthful where the
allocation is monotone in the bid; that is not guaranteed here, and the task measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.registries import register_method
from tasks.auctions.protocol import AuctionMechanism, cascade_threshold_prices


def greedy_allocation(bids: np.ndarray, ctr: np.ndarray, read_on: np.ndarray) -> np.ndarray:
    """Positions of the ads; `bids` may be a batch (B, n) of bid vectors, each allocated on its own."""
    batch = np.atleast_2d(bids)
    size, n = batch.shape
    m = ctr.shape[1]
    rows = np.arange(size)
    positions = np.full((size, n), -1)
    used = np.zeros((size, m), bool)
    p_at, value_at = np.zeros((size, m)), np.zeros((size, m))
    active = np.ones(size, bool)
    for _ in range(min(n, m)):
        reach = np.concatenate(
            [np.ones((size, 1)), np.cumprod(read_on * (1.0 - p_at), axis=1)[:, :-1]], axis=1
        )
        earned = reach * p_at * value_at
        below = np.concatenate(
            [np.cumsum(earned[:, ::-1], axis=1)[:, ::-1][:, 1:], np.zeros((size, 1))], axis=1
        )
        gain = ctr * (reach[:, None, :] * batch[:, :, None] - below[:, None, :])
        gain[positions >= 0] = -np.inf
        gain = np.where(used[:, None, :], -np.inf, gain).reshape(size, n * m)
        pick = gain.argmax(axis=1)
        active &= gain[rows, pick] > 0
        if not active.any():
            break
        go = rows[active]
        ad, position = np.divmod(pick[go], m)
        positions[go, ad] = position
        used[go, position] = True
        p_at[go, position], value_at[go, position] = ctr[ad, position], batch[go, ad]
    return positions if np.ndim(bids) == 2 else positions[0]


@register_method("cascade-greedy")
@dataclass(kw_only=True)
class CascadeGreedy(AuctionMechanism):
    def allocate(self, bids, setting):  # type: ignore[no-untyped-def]
        return greedy_allocation(np.maximum(bids, 0.0), setting.ctr, setting.read_on)

    def prices(self, bids, setting, positions, bidders):  # type: ignore[no-untyped-def]
        return cascade_threshold_prices(greedy_allocation, np.maximum(bids, 0.0), setting, positions, bidders)
