"""Aggregation and certificates for partition-based poisoning defenses (DPA, FA, and their run-off variants).

Conventions, shared by every function here:
- `logits` has shape (models, samples, classes); a model's round-1 vote is its argmax, ties to the smaller
  class.
- Classes are ranked by votes, ties to the smaller index, so class a beats class b in a count exactly when
  `gap(a, b) = votes_a - votes_b + [b > a] >= 1`.
- Run-off round 2: a model counts for the first finalist only when its logit for it is strictly greater
  than for the second, so a model with equal logits votes for the second; equal round-2 counts go to the
  smaller class.
- A certificate is the smallest number of poisoned training samples that could change the prediction,
  or a lower bound on it; the certified radius is that number minus one. Every bound below counts the
  attacker as stronger than it is (each poisoned sample may rewrite the whole output of every model it
  reaches), so the radius is sound; tests check it by exhaustive search on small tables.
- DPA: one poisoned sample reaches one model. FA: one poisoned sample reaches the d models that train on
  its bucket (`bucket_models`, shape (buckets, d)).

The run-off rules and certificates follow the official code, k1rezaei/Run-Off-Election at commit
ad20adb91dd62a6e7d09fc66f204301159aeeb69: `dpa_roe_certify.py` (DPA+ROE, with the pair table of
`dp_calc.py`, here in closed form) and `fa_roe_certify.py` (FA+ROE). Where papers.md is less precise, that
code wins: round 2 counts strict preferences (`scores[m1] > scores[c]`), and FA+ROE's pair term weighs each
model `1 + 2[v = pred] - [v = c1] - [v = c2]` against the unclipped sum of the two round-1 gaps.
"""

from __future__ import annotations

import numpy as np

INFINITE = np.iinfo(np.int32).max // 4


def votes(logits: np.ndarray) -> np.ndarray:
    """(models, samples) argmax votes."""
    return logits.argmax(axis=-1)


def vote_counts(model_votes: np.ndarray, classes: int) -> np.ndarray:
    """(samples, classes) number of models voting each class."""
    samples = model_votes.shape[1]
    flat = (np.arange(samples)[None, :] * classes + model_votes).ravel()
    return np.bincount(flat, minlength=samples * classes).reshape(samples, classes)


def ranking(counts: np.ndarray) -> np.ndarray:
    """(samples, classes) class indices, best first: more votes first, ties to the smaller index."""
    classes = counts.shape[1]
    key = counts.astype(np.int64) * classes + (classes - 1 - np.arange(classes))
    return np.argsort(-key, axis=1, kind="stable")


def pairwise_gaps(counts: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(samples, classes): gap(a, c) for every class c, with a (samples,) one class per sample."""
    classes = counts.shape[1]
    own = np.take_along_axis(counts, a[:, None], axis=1)
    return own - counts + (np.arange(classes)[None, :] > a[:, None])


def logit_of(logits: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(models, samples): every model's logit for class a, with a (samples,) one class per sample."""
    return logits[:, np.arange(a.size), a]


def strict_preferences(logits: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(samples, classes): number of models whose logit for class a is strictly above that for class c
    (the official round-2 count: equal logits do not count for a)."""
    return (logit_of(logits, a)[:, :, None] > logits).sum(axis=0)


def plurality(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DPA/FA prediction: the class with most votes (ties to the smaller index), and the vote counts."""
    counts = vote_counts(votes(logits), logits.shape[-1])
    return ranking(counts)[:, 0], counts


def run_off(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROE prediction: round 1 keeps the top two classes by votes; in round 2 every model votes between
    them by its own logits, for the first finalist only when strictly greater (official rule). Returns the
    winner, the other finalist and the round-1 counts."""
    counts = vote_counts(votes(logits), logits.shape[-1])
    order = ranking(counts)
    first, second = order[:, 0], order[:, 1]
    prefer_first = (logit_of(logits, first) > logit_of(logits, second)).sum(axis=0)
    first_wins = 2 * prefer_first - logits.shape[0] + (second > first) >= 1
    winner = np.where(first_wins, first, second)
    return winner, np.where(first_wins, second, first), counts


def _ceil_half(x: np.ndarray) -> np.ndarray:
    return -((-np.maximum(x, 0)) // 2)


def two_gap_cost(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Fewest single-model changes that lower two gaps by at least i and j, when one change lowers them by
    (2, 1) or (1, 2) at most: max(ceil(i/2), ceil(j/2), ceil((i+j)/3)) (the closed form of the DP
    A[i,j] = 1 + min(A[i-2,j-1], A[i-1,j-2]))."""
    i, j = np.maximum(i, 0), np.maximum(j, 0)
    return np.maximum(np.maximum(_ceil_half(i), _ceil_half(j)), -((-(i + j)) // 3))


def _off_diagonal_min(values: np.ndarray, p: np.ndarray) -> np.ndarray:
    """min over c != p of values[:, c]."""
    masked = values.astype(np.int64).copy()
    np.put_along_axis(masked, p[:, None], INFINITE, axis=1)
    return masked.min(axis=1)


def _radius(cost: np.ndarray) -> np.ndarray:
    """Radius from a lower bound on the poisoned samples needed. Any change needs at least one, so a bound
    of 0 (round 2 counting equal logits against the winner, which then wins only by them) is raised to 1;
    the official code asserts it never sees 0."""
    return np.maximum(cost, 1) - 1


def dpa_certificate(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DPA: prediction and radius floor((gap - 1) / 2) against the strongest other class."""
    pred, counts = plurality(logits)
    gaps = pairwise_gaps(counts, pred)
    return pred, _off_diagonal_min(_ceil_half(gaps), pred) - 1


def dpa_roe_certificate(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DPA+ROE (official `dpa_roe_certify.py`): the attack must either push the winner out of the top two
    (round 1) or make some class c reach the final and beat the winner there (round 2); the radius is the
    cheaper of the two, minus 1. Round 2 counts only the models strictly preferring the winner, since a
    model with equal logits may end up voting for c."""
    models, _, classes = logits.shape
    pred, other, counts = run_off(logits)
    gaps_p = np.maximum(pairwise_gaps(counts, pred), 0)  # (samples, classes)
    # Round 1: two classes c1 != c2 (neither the winner) must both overtake the winner.
    pair_cost = two_gap_cost(gaps_p[:, :, None], gaps_p[:, None, :]).astype(np.int64)
    c = np.arange(classes)
    is_pred = c[None, :] == pred[:, None]
    excluded = np.eye(classes, dtype=bool)[None] | is_pred[:, :, None] | is_pred[:, None, :]
    round1 = np.where(excluded, INFINITE, pair_cost).reshape(len(pred), -1).min(axis=1)
    # Round 2: c must beat the other finalist in round 1 (c == other: free) and the winner in round 2.
    reach = _ceil_half(pairwise_gaps(counts, other))
    np.put_along_axis(reach, other[:, None], 0, axis=1)
    duel = 2 * strict_preferences(logits, pred) - models + (np.arange(classes)[None, :] > pred[:, None])
    round2 = _off_diagonal_min(np.maximum(reach, _ceil_half(duel)), pred)
    return pred, _radius(np.minimum(round1, round2))


def bucket_sums(weights: np.ndarray, bucket_models: np.ndarray) -> np.ndarray:
    """(buckets, samples): for each bucket, the summed per-model weights of the models it reaches.

    When bucket b reaches models (b + s) mod M for a fixed set of shifts s (FA's layout), the sum is one
    shifted copy of `weights` per shift, with no (buckets, d, samples) intermediate."""
    weights = weights.astype(np.int16)
    buckets = bucket_models.shape[0]
    shifts = bucket_models[0]
    if buckets == weights.shape[0] and np.array_equal(
        bucket_models, (np.arange(buckets)[:, None] + shifts[None, :]) % buckets
    ):
        total = np.zeros_like(weights)
        for s in shifts:
            total += np.roll(weights, -int(s), axis=0)
        return total
    return weights[bucket_models].sum(axis=1)


def greedy_buckets(sums: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """Fewest buckets whose largest reductions add up to `needed` (per sample): a lower bound on the
    poisoned samples needed, since any set of buckets reduces the gap by at most the sum of its sums.
    0 when nothing is needed; INFINITE when even every bucket is not enough."""
    top = int(sums.max(initial=0))
    samples = sums.shape[1]
    if top == 0:
        return np.where(needed <= 0, 0, INFINITE)
    # Histogram of bucket sums per sample, then walk the values from the largest down.
    flat = (np.arange(samples, dtype=np.int64)[None, :] * (top + 1) + sums).ravel()
    hist = np.bincount(flat, minlength=samples * (top + 1)).reshape(samples, top + 1)[:, ::-1][:, :-1]
    values = np.arange(top, 0, -1)[None, :]
    cum_count = hist.cumsum(axis=1)
    cum_sum = (hist * values).cumsum(axis=1)
    reached = cum_sum >= needed[:, None]
    level = reached.argmax(axis=1)
    idx = level[:, None]
    before_sum = np.take_along_axis(cum_sum - hist * values, idx, axis=1)[:, 0]
    before_count = np.take_along_axis(cum_count - hist, idx, axis=1)[:, 0]
    value = np.take_along_axis(np.broadcast_to(values, hist.shape), idx, axis=1)[:, 0]
    count = before_count + -((-(needed - before_sum)) // value)
    count = np.where(reached.any(axis=1), count, INFINITE)
    return np.where(needed <= 0, 0, count)


def _gap_weights(model_votes: np.ndarray, a: np.ndarray, c: int) -> np.ndarray:
    """Per model, how much rewriting it can lower gap(a, c): 2 if it votes a, 0 if it votes c, else 1."""
    return 1 + (model_votes == a[None, :]).astype(np.int16) - (model_votes == c)


def fa_certificate(logits: np.ndarray, bucket_models: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FA: plurality over all models; the radius closes the gap to each class greedily, bucket by bucket."""
    model_votes = votes(logits)
    pred, counts = plurality(logits)
    gaps = pairwise_gaps(counts, pred)
    cost = np.full(gaps.shape, INFINITE, dtype=np.int64)
    for c in range(logits.shape[-1]):
        sums = bucket_sums(_gap_weights(model_votes, pred, c), bucket_models)
        cost[:, c] = greedy_buckets(sums, gaps[:, c])
    return pred, _off_diagonal_min(cost, pred) - 1


def fa_roe_certificate(logits: np.ndarray, bucket_models: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FA+ROE (official `fa_roe_certify.py`): the two attacks of DPA+ROE, each gap closed greedily bucket
    by bucket. A pair of round-1 gaps needs as many buckets as the harder of the two alone and as their
    unclipped sum does, where one model can lower the sum by `1 + 2[v = pred] - [v = c1] - [v = c2]`."""
    models, samples, classes = logits.shape
    d = bucket_models.shape[1]
    model_votes = votes(logits)
    pred, other, counts = run_off(logits)
    # Per class, how many of each bucket's models vote it; every per-bucket reduction below is a sum of
    # these (one model's 1 + [v = a] - [v = c] summed over the bucket is d + voters_a - voters_c).
    voters = [bucket_sums(model_votes == c, bucket_models) for c in range(classes)]
    voters_pred = bucket_sums(model_votes == pred[None, :], bucket_models)
    voters_other = bucket_sums(model_votes == other[None, :], bucket_models)
    gaps_p = pairwise_gaps(counts, pred)
    single = np.stack(
        [greedy_buckets(d + voters_pred - voters[c], gaps_p[:, c]) for c in range(classes)], axis=1
    )
    joint_base = d + 2 * voters_pred
    round1 = np.full(samples, INFINITE, dtype=np.int64)
    for c1 in range(classes):
        for c2 in range(c1 + 1, classes):
            joint = greedy_buckets(joint_base - voters[c1] - voters[c2], gaps_p[:, c1] + gaps_p[:, c2])
            cost = np.maximum(np.maximum(single[:, c1], single[:, c2]), joint)
            valid = (pred != c1) & (pred != c2)
            round1 = np.where(valid, np.minimum(round1, cost), round1)
    gaps_o = pairwise_gaps(counts, other)
    pred_logit = logit_of(logits, pred)
    round2 = np.full(samples, INFINITE, dtype=np.int64)
    for c in range(classes):
        reach = greedy_buckets(d + voters_other - voters[c], gaps_o[:, c])
        reach = np.where(other == c, 0, reach)
        prefers_pred = pred_logit > logits[:, :, c]  # strictly, as round 2 counts it
        duel_need = 2 * prefers_pred.sum(axis=0) - models + (c > pred)
        duel = greedy_buckets(2 * bucket_sums(prefers_pred, bucket_models), duel_need)
        round2 = np.where(pred != c, np.minimum(round2, np.maximum(reach, duel)), round2)
    return pred, _radius(np.minimum(round1, round2))


def certified_accuracy(
    pred: np.ndarray, radius: np.ndarray, labels: np.ndarray, radii: list[int]
) -> dict[int, float]:
    """Share of samples predicted right with a radius of at least r, for each r."""
    correct = pred == labels
    return {r: float(np.mean(correct & (radius >= r))) for r in radii}
