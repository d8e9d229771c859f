"""MNL revenue: Myerson's optimal mechanism under MNL users for the task's value distribution.

Each bid is replaced by its virtual value phi(b) = b - (1 - F(b)) / f(b); an ad with phi <= 0 is left
out (so the reserve price is phi^-1(0)), and the matching that maximises the virtual welfare
sum_i phi_i w_i / (1 + sum w) is chosen exactly (Dinkelbach, tasks/auctions/mnl.py). It pays its
threshold: its click probability is a step function of its virtual value t (the slope of the convex
optimum V(t)); at each step t_k where it rises by d_k the ad pays d_k phi^-1(t_k), so the expected
payment is sum_k d_k phi^-1(t_k) and the price per click that over its clicks (Myerson's payment
identity). The distribution is regular, so no ironing is needed. Truthful under MNL users, and with
i.i.d. values its expected revenue is the optimum among truthful, individually rational mechanisms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.registries import register_method
from tasks.auctions.clicks import mnl_clicks
from tasks.auctions.mnl import best_matching, click_steps
from tasks.auctions.protocol import AuctionMechanism


@register_method("mnl-revenue")
@dataclass(kw_only=True)
class MNLMyerson(AuctionMechanism):
    def allocate(self, bids, setting):  # type: ignore[no-untyped-def]
        virtual = np.maximum(setting.prior.virtual_value(bids), 0.0)
        return best_matching(virtual, setting.weights)[0]

    def prices(self, bids, setting, positions, bidders):  # type: ignore[no-untyped-def]
        virtual = np.maximum(setting.prior.virtual_value(bids), 0.0)
        clicks = mnl_clicks(setting.weights, positions)
        out = np.zeros(len(bidders))
        for k, ad in enumerate(bidders):
            if positions[ad] < 0:
                continue
            steps = click_steps(virtual, setting.weights, ad, float(virtual[ad]))
            payment = sum(jump * setting.prior.inverse_virtual_value(t) for t, jump in steps)
            # every threshold is at most the bid; the clip only removes root-finding rounding
            out[k] = min(payment / clicks[ad], float(bids[ad]))
        return out
