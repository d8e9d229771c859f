"""Generalised second price, the classic baseline: one click rate per ad, positions ranked in order.

It assumes what classic position auctions assume: ad i has one click rate c_i wherever it is shown (our
choice of a context-free estimate: the mean of its standalone click probabilities over positions) and
position j is worth more than position j + 1. Ads are ranked by bid x c_i and take positions 0, 1, ... in
rank order (an ad bidding 0 is not shown); the ad in rank k pays per click the least bid that keeps its
rank, score_{k+1} / c_k, and 0 when no ad is ranked below it. Not truthful: shading a bid to drop a rank
can pay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.registries import register_method
from tasks.auctions.protocol import AuctionMechanism


def ranking(bids: np.ndarray, ctr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ads with a positive score in rank order (ties: lower index first), the scores, the rates."""
    rates = ctr.mean(axis=1)
    scores = bids * rates
    order = np.argsort(-scores, kind="stable")
    return order[scores[order] > 0], scores, rates


@register_method("gsp")
@dataclass(kw_only=True)
class GeneralizedSecondPrice(AuctionMechanism):
    def allocate(self, bids, setting):  # type: ignore[no-untyped-def]
        ranked, _, _ = ranking(bids, setting.ctr)
        positions = np.full(setting.n_ads, -1)
        shown = ranked[: setting.n_positions]
        positions[shown] = np.arange(len(shown))
        return positions

    def prices(self, bids, setting, positions, bidders):  # type: ignore[no-untyped-def]
        ranked, scores, rates = ranking(bids, setting.ctr)
        out = np.zeros(len(bidders))
        for k, ad in enumerate(bidders):
            rank = positions[ad]
            if rank >= 0 and rank + 1 < len(ranked):
                out[k] = scores[ranked[rank + 1]] / rates[ad]
        return out
