"""Classic position-auction VCG: the welfare-maximising ranking and VCG prices when click rates are
separable, p_ij = alpha_i beta_j, and clicks independent (no ad takes clicks from another).

The separable rates are the least-squares fit of log p_ij by a_i + b_j (our choice; it recovers alpha and
beta exactly when p is separable). Ads ranked by bid x alpha_i take the positions in decreasing beta; the
ad in rank k pays in expectation sum_{j >= k} (beta_(j) - beta_(j+1)) score_(j+1), the welfare the others
lose because it is there, i.e. per click that over alpha_k beta_(k). Truthful when its assumptions hold;
under MNL or cascade users they do not, except in the cases the tests check (one position, tiny rates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.registries import register_method
from tasks.auctions.protocol import AuctionMechanism


def separable_fit(ctr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) with log alpha_i + log beta_j the least-squares fit of log p_ij."""
    logs = np.log(ctr)
    rows, cols = logs.mean(axis=1), logs.mean(axis=0)
    return np.exp(rows), np.exp(cols - logs.mean())


@register_method("vcg-separable")
@dataclass(kw_only=True)
class SeparableVCG(AuctionMechanism):
    def _ranks(self, bids, ctr):  # type: ignore[no-untyped-def]
        alpha, beta = separable_fit(ctr)
        scores = bids * alpha
        order = np.argsort(-scores, kind="stable")
        slots = np.argsort(-beta, kind="stable")
        return order[scores[order] > 0], scores, alpha, beta, slots

    def allocate(self, bids, setting):  # type: ignore[no-untyped-def]
        ranked, _, _, _, slots = self._ranks(bids, setting.ctr)
        positions = np.full(setting.n_ads, -1)
        shown = ranked[: setting.n_positions]
        positions[shown] = slots[: len(shown)]
        return positions

    def prices(self, bids, setting, positions, bidders):  # type: ignore[no-untyped-def]
        ranked, scores, alpha, beta, slots = self._ranks(bids, setting.ctr)
        m = setting.n_positions
        betas = np.append(beta[slots], 0.0)  # in rank order, then none
        below = np.append(scores[ranked], 0.0)[1:]  # score of the ad one rank lower, 0 when none
        below = np.append(below, np.zeros(max(0, m - len(below))))
        rank_of = {int(ad): r for r, ad in enumerate(ranked)}
        out = np.zeros(len(bidders))
        for k, ad in enumerate(bidders):
            if positions[ad] < 0:
                continue
            r = rank_of[int(ad)]
            shown = min(len(ranked), m)
            payment = float(np.sum((betas[r:shown] - betas[r + 1 : shown + 1]) * below[r:shown]))
            out[k] = payment / (alpha[ad] * betas[r])
        return out
