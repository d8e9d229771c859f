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

import numba
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


def dpa_certificate(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DPA: prediction and radius floor((gap - 1) / 2) against the strongest other class."""
    pred, counts = plurality(logits)
    gaps = pairwise_gaps(counts, pred)
    return pred, _off_diagonal_min(_ceil_half(gaps), pred) - 1


def dpa_roe_certificate(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DPA+ROE (official `dpa_roe_certify.py`): the attack must either push the winner out of the top two
    (round 1: two classes c1 != c2, neither the winner, both overtake it, at `two_gap_cost` of their gaps)
    or make some class c reach the final (c == the other finalist: free) and beat the winner there
    (round 2); the radius is the cheaper of the two, minus 1. Round 2 counts only the models strictly
    preferring the winner, since a model with equal logits may end up voting for c."""
    _check_table(logits)
    pred, radius = _new_outputs(logits.shape[1])
    _dpa_roe_kernel(logits, pred, radius)
    return pred, radius


def fa_certificate(logits: np.ndarray, bucket_models: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FA: plurality over all models; the radius closes the gap to each class greedily, bucket by bucket
    (a model can lower gap(pred, c) by 2 if it votes pred, 0 if it votes c, else 1)."""
    _check_table(logits)
    pred, radius = _new_outputs(logits.shape[1])
    bucket_models, shifts = _bucket_layout(bucket_models, logits.shape[0])
    _fa_kernel(logits, bucket_models, shifts, False, pred, radius)
    return pred, radius


def fa_roe_certificate(logits: np.ndarray, bucket_models: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FA+ROE (official `fa_roe_certify.py`): the two attacks of DPA+ROE, each gap closed greedily bucket
    by bucket. A pair of round-1 gaps needs as many buckets as the harder of the two alone and as their
    unclipped sum does, where one model can lower the sum by `1 + 2[v = pred] - [v = c1] - [v = c2]`."""
    _check_table(logits)
    pred, radius = _new_outputs(logits.shape[1])
    bucket_models, shifts = _bucket_layout(bucket_models, logits.shape[0])
    _fa_kernel(logits, bucket_models, shifts, True, pred, radius)
    return pred, radius


def greedy_buckets(sums: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """Per sample (column of the (buckets, samples) `sums`, all >= 0), the fewest buckets whose largest
    reductions add up to `needed`: a lower bound on the poisoned samples needed, since any set of buckets
    reduces the gap by at most the sum of its sums. 0 when nothing is needed; INFINITE when even every
    bucket is not enough."""
    sums = np.ascontiguousarray(np.asarray(sums, dtype=np.int64).T)
    hist = np.zeros(int(sums.max(initial=0)) + 1, dtype=np.int64)
    return np.array([_greedy(row, len(row), int(n), hist) for row, n in zip(sums, needed, strict=True)])


def certified_accuracy(
    pred: np.ndarray, radius: np.ndarray, labels: np.ndarray, radii: list[int]
) -> dict[int, float]:
    """Share of samples predicted right with a radius of at least r, for each r."""
    correct = pred == labels
    return {r: float(np.mean(correct & (radius >= r))) for r in radii}


# --- Compiled kernels (numba). The certificates loop over samples, and per sample over models, buckets
# and class pairs with early exits; written as whole-array numpy they made (models, samples, classes)
# temporaries and ran every pair's greedy count in full, 20-50x slower. numba compiles these loops once
# (cached on disk) and runs them on the calling thread only.


def _check_table(logits: np.ndarray) -> None:
    if logits.ndim != 3 or logits.shape[2] < 2 or logits.shape[0] < 1:
        raise ValueError(f"logits must be (models, samples, classes >= 2), got shape {logits.shape}")


def _new_outputs(samples: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(samples, dtype=np.int64), np.zeros(samples, dtype=np.int64)


def _bucket_layout(bucket_models: np.ndarray, models: int) -> tuple[np.ndarray, np.ndarray]:
    """The bucket->models table as int64, and FA's shifts when bucket b reaches models (b + s) mod M for
    every b (then bucket sums are shifted copies, which vectorise); an empty shift array otherwise."""
    bucket_models = np.ascontiguousarray(bucket_models, dtype=np.int64)
    shifts = bucket_models[0] % models
    buckets = bucket_models.shape[0]
    cyclic = buckets == models and np.array_equal(
        bucket_models, (np.arange(buckets)[:, None] + shifts[None, :]) % models
    )
    return bucket_models, (shifts if cyclic else np.zeros(0, dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def _half_up(x: int) -> int:
    """ceil(max(x, 0) / 2) of one integer."""
    return (max(x, 0) + 1) // 2


@numba.njit(cache=True, nogil=True)
def _tally(logits, t, vote, counts):  # type: ignore[no-untyped-def]
    """Sample t: each model's argmax vote (ties to the smaller class) and the votes per class."""
    counts[:] = 0
    for m in range(logits.shape[0]):
        best, value = 0, logits[m, t, 0]
        for c in range(1, logits.shape[2]):
            if logits[m, t, c] > value:
                best, value = c, logits[m, t, c]
        vote[m] = best
        counts[best] += 1


@numba.njit(cache=True, nogil=True)
def _finalists(logits, t, counts):  # type: ignore[no-untyped-def]
    """Sample t: (plurality winner, run-off winner, other finalist) from the round-1 counts."""
    first = 0
    for c in range(1, counts.size):
        if counts[c] > counts[first]:
            first = c
    second = -1
    for c in range(counts.size):
        if c != first and (second < 0 or counts[c] > counts[second]):
            second = c
    prefer_first = 0
    for m in range(logits.shape[0]):
        if logits[m, t, first] > logits[m, t, second]:
            prefer_first += 1
    if 2 * prefer_first - logits.shape[0] + (1 if second > first else 0) >= 1:
        return first, first, second
    return first, second, first


@numba.njit(cache=True, nogil=True)
def _greedy(reducers, n, need, hist):  # type: ignore[no-untyped-def]
    """Fewest of reducers[:n] (each >= 0), largest first, that add up to `need`; INFINITE if all do not.
    Mostly the largest value alone suffices (consensus tables); otherwise a histogram walk."""
    if need <= 0:
        return 0
    top = 0
    for b in range(n):
        top = max(top, reducers[b])
    if top <= 0:
        return INFINITE
    at_top = 0
    for b in range(n):
        at_top += 1 if reducers[b] == top else 0
    if at_top * top >= need:
        return (need + top - 1) // top
    hist[: top + 1] = 0
    for b in range(n):
        hist[reducers[b]] += 1
    count, total = 0, 0
    for value in range(top, 0, -1):
        if total + hist[value] * value >= need:
            return count + (need - total + value - 1) // value
        total += hist[value] * value
        count += hist[value]
    return INFINITE


@numba.njit(cache=True, nogil=True)
def _bucket_sums(per_model, bucket_models, shifts, out):  # type: ignore[no-untyped-def]
    """out[w, b] = sum of per_model[w] over the models bucket b reaches (FA's shifted copies when
    `shifts` is given)."""
    out[:] = 0
    models = per_model.shape[1]
    for w in range(per_model.shape[0]):
        if shifts.size:
            for s in shifts:
                for b in range(models - s):
                    out[w, b] += per_model[w, b + s]
                for b in range(models - s, models):
                    out[w, b] += per_model[w, b + s - models]
        else:
            for b in range(bucket_models.shape[0]):
                for j in range(bucket_models.shape[1]):
                    out[w, b] += per_model[w, bucket_models[b, j]]


@numba.njit(cache=True, nogil=True)
def _unpack(packed, c, bits, per_word, out):  # type: ignore[no-untyped-def]
    """out[b] = class c's field of the packed per-bucket counts."""
    word, shift, mask = c // per_word, bits * (c % per_word), (1 << bits) - 1
    for b in range(out.size):
        out[b] = (packed[word, b] >> shift) & mask


@numba.njit(cache=True, nogil=True)
def _dpa_roe_kernel(logits, pred_out, radius_out):  # type: ignore[no-untyped-def]
    models, samples, classes = logits.shape
    vote = np.zeros(models, dtype=np.int64)
    counts = np.zeros(classes, dtype=np.int64)
    gaps = np.zeros(classes, dtype=np.int64)
    prefer = np.zeros(classes, dtype=np.int64)
    for t in range(samples):
        _tally(logits, t, vote, counts)
        _, pred, other = _finalists(logits, t, counts)
        for c in range(classes):
            gaps[c] = max(counts[pred] - counts[c] + (1 if c > pred else 0), 0)
        best = INFINITE
        for c1 in range(classes):  # round 1: the closed form of dp_calc's pair table
            for c2 in range(c1 + 1, classes):
                if c1 != pred and c2 != pred:
                    i, j = gaps[c1], gaps[c2]
                    best = min(best, max(_half_up(i), _half_up(j), (i + j + 2) // 3))
        prefer[:] = 0  # round 2: models strictly preferring the winner to each class
        for m in range(models):
            own = logits[m, t, pred]
            for c in range(classes):
                prefer[c] += 1 if own > logits[m, t, c] else 0
        for c in range(classes):
            if c == pred:
                continue
            reach = 0 if c == other else _half_up(counts[other] - counts[c] + (1 if c > other else 0))
            best = min(best, max(reach, _half_up(2 * prefer[c] - models + (1 if c > pred else 0))))
        pred_out[t] = pred
        # Any change needs at least one poisoned sample, so a bound of 0 (round 2 counting equal logits
        # against the winner, which then wins only by them) is raised to 1; the official code asserts it
        # never sees 0.
        radius_out[t] = max(best, 1) - 1


@numba.njit(cache=True, nogil=True)
def _fa_kernel(logits, bucket_models, shifts, run_off, pred_out, radius_out):  # type: ignore[no-untyped-def]
    """FA (run_off False) or FA+ROE certificates. Per bucket b and class c, voters_c[b] is how many of
    b's d models vote c and prefer_c[b] how many strictly prefer the winner to c; both are summed over
    buckets packed `per_word` classes to an int64 (fields of `bits` bits hold counts up to d), so one
    pass of adds serves every class. Rewriting bucket b lowers gap(a, c) by d + voters_a[b] - voters_c[b]
    and the round-2 duel margin by 2 prefer_c[b]."""
    models, samples, classes = logits.shape
    buckets, d = bucket_models.shape
    bits = 1
    while (1 << bits) <= d:  # fields hold counts 0..d
        bits += 1
    per_word = 63 // bits
    words = (classes + per_word - 1) // per_word
    vote = np.zeros(models, dtype=np.int64)
    counts = np.zeros(classes, dtype=np.int64)
    prefer = np.zeros(classes, dtype=np.int64)
    vote_code = np.zeros((words, models), dtype=np.int64)
    prefer_code = np.zeros((words, models), dtype=np.int64)
    voters_packed = np.zeros((words, buckets), dtype=np.int64)
    prefer_packed = np.zeros((words, buckets), dtype=np.int64)
    voters = np.zeros((classes, buckets), dtype=np.int32)
    reducers = np.zeros(buckets, dtype=np.int32)
    single = np.zeros(classes, dtype=np.int64)
    hist = np.zeros(3 * d + 2, dtype=np.int64)
    for t in range(samples):
        _tally(logits, t, vote, counts)
        plural, pred, other = _finalists(logits, t, counts)
        if not run_off:
            pred = plural
        vote_code[:] = 0
        for m in range(models):
            vote_code[vote[m] // per_word, m] = 1 << (bits * (vote[m] % per_word))
        _bucket_sums(vote_code, bucket_models, shifts, voters_packed)
        for c in range(classes):
            _unpack(voters_packed, c, bits, per_word, voters[c])
        best = INFINITE
        if run_off:  # round 2 first: its bound often prunes most of round 1's pairs
            prefer[:] = 0
            prefer_code[:] = 0
            for m in range(models):
                own = logits[m, t, pred]
                for c in range(classes):
                    if own > logits[m, t, c]:  # strictly, as round 2 counts it
                        prefer[c] += 1
                        prefer_code[c // per_word, m] += 1 << (bits * (c % per_word))
            _bucket_sums(prefer_code, bucket_models, shifts, prefer_packed)
            for c in range(classes):
                if c == pred:
                    continue
                reach = 0
                if c != other:
                    for b in range(buckets):
                        reducers[b] = d + voters[other, b] - voters[c, b]
                    gap = counts[other] - counts[c] + (1 if c > other else 0)
                    reach = _greedy(reducers, buckets, gap, hist)
                if reach >= best:
                    continue
                _unpack(prefer_packed, c, bits, per_word, reducers)
                for b in range(buckets):
                    reducers[b] *= 2
                need = 2 * prefer[c] - models + (1 if c > pred else 0)
                best = min(best, max(reach, _greedy(reducers, buckets, need, hist)))
        for c in range(classes):
            if c == pred:
                continue
            for b in range(buckets):
                reducers[b] = d + voters[pred, b] - voters[c, b]
            single[c] = _greedy(reducers, buckets, counts[pred] - counts[c] + (1 if c > pred else 0), hist)
            if not run_off:
                best = min(best, single[c])
        if run_off:  # round 1: two classes c1, c2 (neither the winner) both overtake it
            for c1 in range(classes):
                for c2 in range(c1 + 1, classes):
                    if c1 == pred or c2 == pred:
                        continue
                    bound = max(single[c1], single[c2])
                    if bound >= best:
                        continue
                    for b in range(buckets):
                        reducers[b] = d + 2 * voters[pred, b] - voters[c1, b] - voters[c2, b]
                    need = 2 * counts[pred] - counts[c1] - counts[c2] + (1 if c1 > pred else 0)
                    need += 1 if c2 > pred else 0
                    best = min(best, max(bound, _greedy(reducers, buckets, need, hist)))
        pred_out[t] = pred
        radius_out[t] = max(best, 1) - 1 if run_off else best - 1
