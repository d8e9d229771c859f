"""MNL welfare: the matching that maximises welfare under MNL users, with VCG payments.

Welfare sum_i b_i w_i / (1 + sum w) is maximised exactly by Dinkelbach's iteration over assignment
problems (tasks/auctions/mnl.py). An ad pays the welfare the others lose because it takes part,
W*_{-i} - (W* - b_i clicks_i), per click that over its clicks; an ad not shown pays nothing. Truthful and
individually rational under MNL users: the allocation maximises the reported welfare exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.registries import register_method
from tasks.auctions.clicks import mnl_clicks
from tasks.auctions.mnl import best_matching
from tasks.auctions.protocol import AuctionMechanism


@register_method("mnl-welfare")
@dataclass(kw_only=True)
class MNLWelfareVCG(AuctionMechanism):
    def allocate(self, bids, setting):  # type: ignore[no-untyped-def]
        return best_matching(np.maximum(bids, 0.0), setting.weights)[0]

    def prices(self, bids, setting, positions, bidders):  # type: ignore[no-untyped-def]
        bids = np.maximum(bids, 0.0)
        weights = setting.weights
        clicks = mnl_clicks(weights, positions)
        shown = np.flatnonzero(positions >= 0)
        w = weights[shown, positions[shown]]
        numerator, denominator = float(bids[shown] @ w), 1.0 + float(w.sum())
        welfare = numerator / denominator
        out = np.zeros(len(bidders))
        for k, ad in enumerate(bidders):
            if positions[ad] < 0:
                continue
            w_ad = weights[ad, positions[ad]]
            # The optimum without the ad is at least the value of the same matching without it.
            start = (numerator - bids[ad] * w_ad) / (denominator - w_ad)
            others = bids.copy()
            others[ad] = 0.0
            without = best_matching(others, weights, start)[1]
            payment = without - (welfare - bids[ad] * clicks[ad])
            # 0 <= payment <= bid x clicks holds exactly; the clip only removes rounding (1e-17).
            out[k] = min(max(payment / clicks[ad], 0.0), bids[ad])
        return out
