"""Certificates checked by exhaustive search: no attack within the radius changes the prediction."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.poisoning import certify


def _rankings(classes: int) -> np.ndarray:
    """Every strict ranking of the classes, as logit vectors."""
    return np.array(list(itertools.permutations(range(classes))), dtype=np.float64)


def _orderings_with_ties(classes: int) -> np.ndarray:
    """Every ordering of the classes, equal logits allowed, as logit vectors (13 for 3 classes). A model
    with equal logits votes one class in round 1 and may vote another in round 2, which no strict ranking
    does, so the run-off's attacker is only complete with these."""
    seen: dict[tuple, np.ndarray] = {}
    for vector in itertools.product(range(classes), repeat=classes):
        v = np.array(vector, dtype=np.float64)
        seen.setdefault(tuple(np.sign(v[:, None] - v[None, :]).ravel()), v)
    return np.array(list(seen.values()))


def _attacked_tables(
    logits: np.ndarray, groups: list[tuple[int, ...]], budget: int, ties: bool = False
) -> np.ndarray:
    """Every table reachable by poisoning `budget` samples, each rewriting the models of one group to any
    ranking (with `ties`, any ordering) or leaving a model as it was: (models, variants, classes)."""
    classes = logits.shape[2]
    options = _orderings_with_ties(classes) if ties else _rankings(classes)
    variants = []
    for chosen in itertools.combinations(range(len(groups)), budget):
        touched = sorted({m for g in chosen for m in groups[g]})
        per_model = [np.vstack([logits[m, 0][None], options]) for m in touched]
        for combo in itertools.product(*per_model):
            table = logits[:, 0].copy()
            table[touched] = np.array(combo)
            variants.append(table)
    return np.stack(variants, axis=1)


def _min_attack(logits, groups, predict, limit, ties=False):
    """Smallest number of poisoned samples that changes the prediction (limit + 1 when none within limit)."""
    original = predict(logits)[0]
    for budget in range(1, limit + 1):
        if (predict(_attacked_tables(logits, groups, budget, ties)) != original).any():
            return budget
    return limit + 1


tables = st.tuples(st.integers(3, 5), st.integers(2, 3), st.integers(0, 10_000)).map(
    lambda t: np.random.default_rng(t[2]).integers(0, 3, size=(t[0], 1, t[1])).astype(np.float64)
)


@settings(max_examples=60, deadline=None)
@given(tables)
def test_dpa_radius_is_sound_and_tight(logits):
    _, radius = certify.dpa_certificate(logits)
    groups = [(m,) for m in range(logits.shape[0])]
    attack = _min_attack(logits, groups, lambda x: certify.plurality(x)[0], int(radius[0]) + 1)
    assert attack == radius[0] + 1


@settings(max_examples=60, deadline=None)
@given(tables)
def test_dpa_roe_radius_is_sound(logits):
    _, radius = certify.dpa_roe_certificate(logits)
    groups = [(m,) for m in range(logits.shape[0])]
    attack = _min_attack(logits, groups, lambda x: certify.run_off(x)[0], int(radius[0]) + 1)
    assert attack >= radius[0] + 1


def _fa_groups(models: int, d: int) -> np.ndarray:
    """Bucket b reaches models b, b+1, ..., b+d-1 (mod models)."""
    return (np.arange(models)[:, None] + np.arange(d)[None, :]) % models


fa_tables = st.tuples(st.integers(4, 5), st.integers(2, 3), st.integers(0, 10_000)).map(
    lambda t: np.random.default_rng(t[2]).integers(0, 3, size=(t[0], 1, t[1])).astype(np.float64)
)


@pytest.mark.parametrize("variant", ["fa", "fa+roe"])
@settings(max_examples=25, deadline=None)
@given(logits=fa_tables)
def test_fa_radii_are_sound(variant, logits):
    groups = _fa_groups(logits.shape[0], 2)
    if variant == "fa":
        _, radius = certify.fa_certificate(logits, groups)
        predict = lambda x: certify.plurality(x)[0]  # noqa: E731
    else:
        _, radius = certify.fa_roe_certificate(logits, groups)
        predict = lambda x: certify.run_off(x)[0]  # noqa: E731
    limit = min(int(radius[0]) + 1, 2)
    attack = _min_attack(logits, [tuple(g) for g in groups], predict, limit)
    assert attack >= min(radius[0] + 1, limit + 1)


def _run_off_direct(table: np.ndarray) -> int:
    """The two rounds written out plainly for one sample: table is (models, classes)."""
    models, classes = table.shape
    counts = [0] * classes
    for row in table:
        counts[int(np.argmax(row))] += 1
    order = sorted(range(classes), key=lambda c: (-counts[c], c))
    a, b = order[0], order[1]
    votes_a = sum(1 for row in table if row[a] > row[b])  # equal logits vote for the second finalist
    votes_b = models - votes_a
    return a if (votes_a > votes_b or (votes_a == votes_b and a < b)) else b


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 100_000), st.integers(2, 12), st.integers(2, 6), st.integers(1, 5))
def test_run_off_matches_a_direct_implementation(seed, models, classes, samples):
    logits = np.random.default_rng(seed).integers(0, 4, size=(models, samples, classes)).astype(np.float64)
    winner, _, _ = certify.run_off(logits)
    assert winner.tolist() == [_run_off_direct(logits[:, t]) for t in range(samples)]


def test_ties_go_to_the_smaller_class():
    logits = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # one vote each
    assert certify.plurality(logits)[0].tolist() == [0]
    assert certify.run_off(logits)[0].tolist() == [0]
    assert certify.vote_counts(np.array([[2], [2]]), 3).tolist() == [[0, 0, 2]]


def test_two_gap_cost_equals_the_recursion():
    size = 12
    table = np.zeros((size + 1, size + 1), dtype=int)
    for i in range(size + 1):
        for j in range(size + 1):
            if i == 0 and j == 0:
                continue
            table[i, j] = 1 + min(table[max(i - 2, 0), max(j - 1, 0)], table[max(i - 1, 0), max(j - 2, 0)])
    i, j = np.meshgrid(np.arange(size + 1), np.arange(size + 1), indexing="ij")
    assert (certify.two_gap_cost(i, j) == table).all()


def test_greedy_buckets_against_sorting():
    rng = np.random.default_rng(0)
    sums = rng.integers(0, 6, size=(30, 50))
    needed = rng.integers(-2, 80, size=50)
    got = certify.greedy_buckets(sums, needed)
    for t in range(50):
        ordered = np.sort(sums[:, t])[::-1].cumsum()
        expected = (
            0
            if needed[t] <= 0
            else (int(np.argmax(ordered >= needed[t])) + 1 if ordered[-1] >= needed[t] else certify.INFINITE)
        )
        assert got[t] == expected


def test_certified_accuracy_counts_only_correct_predictions():
    pred, radius, labels = np.array([0, 1, 2, 0]), np.array([3, 0, 5, -1]), np.array([0, 1, 1, 1])
    assert certify.certified_accuracy(pred, radius, labels, [0, 1, 4]) == {0: 0.5, 1: 0.25, 4: 0.0}


def _consensus(models: int, classes: int, seed: int, agree: float = 0.85) -> np.ndarray:
    """Tables where most models favour class 0, so radii above zero occur and get checked."""
    rng = np.random.default_rng(seed)
    logits = rng.integers(0, 3, size=(models, 1, classes)).astype(np.float64)
    logits[rng.random(models) < agree, 0, 0] += 3
    return logits


@pytest.mark.parametrize("seed", range(12))
def test_positive_radii_survive_exhaustive_attack(seed):
    dpa_table = _consensus(7, 3, seed)
    for certificate, predict in (
        (certify.dpa_roe_certificate, lambda x: certify.run_off(x)[0]),
        (certify.dpa_certificate, lambda x: certify.plurality(x)[0]),
    ):
        _, radius = certificate(dpa_table)
        groups = [(m,) for m in range(7)]
        assert _min_attack(dpa_table, groups, predict, int(radius[0]) + 1) >= radius[0] + 1
    fa_table = _consensus(6, 3, seed, agree=1.0)
    groups = _fa_groups(6, 2)
    for certificate, predict in (
        (certify.fa_roe_certificate, lambda x: certify.run_off(x)[0]),
        (certify.fa_certificate, lambda x: certify.plurality(x)[0]),
    ):
        _, radius = certificate(fa_table, groups)
        assert radius[0] >= 1, "a unanimous table must certify something"
        assert _min_attack(fa_table, [tuple(g) for g in groups], predict, int(radius[0])) >= radius[0] + 1


# --- The official run-off code (k1rezaei/Run-Off-Election, dpa_roe_certify.py, fa_roe_certify.py and
# dp_calc.py at ad20adb), one sample at a time, loop by loop, to check the vectorised certificates against.

_OFFICIAL_INF = 10**9


def _official_pair_table(size: int) -> np.ndarray:
    """dp_calc.find_array: fewest changes closing two round-1 gaps in DPA, with its own base cases."""
    table = np.zeros((size, size), dtype=int)
    for i in range(size):
        for j in range(size):
            if i == 0 and j == 0:
                table[i, j] = 0
            elif (i <= 1 and j <= 2) or (i <= 2 and j <= 1):
                table[i, j] = 1
            elif j <= 1:
                table[i, j] = (i + 1) // 2
            elif i <= 1:
                table[i, j] = (j + 1) // 2
            else:
                table[i, j] = 1 + min(table[i - 2, j - 1], table[i - 1, j - 2])
    return table


def _official_finalists(table: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Round-1 counts, the run-off winner and the other finalist, as both official scripts decide them."""
    models, classes = table.shape
    counts = np.bincount(table.argmax(axis=1), minlength=classes)
    m1, m2 = (int(c) for c in np.argsort(-counts, kind="stable")[:2])
    elec = 2 * int((table[:, m1] > table[:, m2]).sum()) - models
    pred = m1 if elec > 0 or (elec == 0 and m1 <= m2) else m2
    return counts, pred, m1 + m2 - pred


def _official_dpa_roe(table: np.ndarray, pair_table: np.ndarray) -> tuple[int, int]:
    models, classes = table.shape
    counts, pred, sec = _official_finalists(table)

    def gap(a: int, c: int) -> int:
        return int(counts[a] - counts[c] + (c > a))

    def ceil_half(x: int) -> int:
        return (max(0, x) + 1) // 2

    round1 = min(
        (
            pair_table[max(gap(pred, c1), 0), max(gap(pred, c2), 0)]
            for c1 in range(classes)
            for c2 in range(classes)
            if len({c1, c2, pred}) == 3
        ),
        default=_OFFICIAL_INF,
    )
    round2 = min(
        max(
            ceil_half(gap(sec, c)),
            ceil_half(2 * int((table[:, pred] > table[:, c]).sum()) - models + (c > pred)),
        )
        for c in range(classes)
        if c != pred
    )
    return pred, max(min(round1, round2), 1) - 1  # the official asserts the minimum is positive


def _official_fa_roe(table: np.ndarray, bucket_models: np.ndarray) -> tuple[int, int]:
    models, classes = table.shape
    counts, pred, sec = _official_finalists(table)
    votes = table.argmax(axis=1)[bucket_models]  # (buckets, d)

    def gap(a: int, c: int) -> int:
        return int(counts[a] - counts[c] + (c > a))

    def sample_cert(need: int, reducers: np.ndarray) -> int:  # get_sample_cert
        ordered = sorted(reducers.tolist(), reverse=True)
        used = 0
        while need > 0:
            if used == len(ordered):
                return _OFFICIAL_INF  # the official script would index past the end here
            need -= ordered[used]
            used += 1
        return used

    def single(a: int, c: int) -> int:
        return sample_cert(gap(a, c), (1 + (votes == a) - (votes == c)).sum(axis=1))

    round1 = _OFFICIAL_INF
    for c1 in range(classes):
        for c2 in range(c1):
            if pred in (c1, c2):
                continue
            reducers = (1 + 2 * (votes == pred) - (votes == c1) - (votes == c2)).sum(axis=1)
            both = sample_cert(gap(pred, c1) + gap(pred, c2), reducers)
            round1 = min(round1, max(single(pred, c1), single(pred, c2), both))
    round2 = _OFFICIAL_INF
    for c in range(classes):
        if c == pred:
            continue
        prefers = table[bucket_models, pred] > table[bucket_models, c]
        duel = sample_cert(
            2 * int((table[:, pred] > table[:, c]).sum()) - models + (c > pred), 2 * prefers.sum(axis=1)
        )
        round2 = min(round2, max(single(sec, c), duel))
    return pred, max(min(round1, round2), 1) - 1


def _issue_fa_example() -> tuple[np.ndarray, np.ndarray]:
    """Issue 15, item 9: k = 5, d = 2, shifts [5, 1]; round-1 votes [4, 3, 3]."""
    rows = [
        [2, 1, 3],
        [2, 1, 3],
        [2, 3, 1],
        [3, 1, 2],
        [2, 1, 3],
        [3, 2, 1],
        [3, 2, 1],
        [2, 3, 1],
        [3, 2, 1],
        [2, 3, 1],
    ]
    logits = np.array(rows, dtype=np.float64)[:, None, :]
    return logits, (np.arange(10)[:, None] + np.array([5, 1])[None, :]) % 10


def test_fa_roe_pair_term_as_official_on_the_issue_example():
    logits, bucket_models = _issue_fa_example()
    assert certify.vote_counts(certify.votes(logits), 3).tolist() == [[4, 3, 3]]
    pred, radius = certify.fa_roe_certificate(logits, bucket_models)
    assert (pred[0], radius[0]) == (0, 1)  # the clipped pair term with weights 1 + 2[v = pred] gave 0
    assert _official_fa_roe(logits[:, 0], bucket_models) == (0, 1)
    # and 1 is the truth: no single bucket flips the run-off, some pair of buckets does
    groups = [tuple(g) for g in bucket_models]
    assert _min_attack(logits, groups, lambda x: certify.run_off(x)[0], 2) == 2


def test_round_two_counts_equal_logits_for_the_second_finalist():
    logits = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])[:, None, :]
    # round 1: votes [2, 1] (the tied model votes 0); round 2: only model 0 strictly prefers 0, so 1 wins
    winner, other, counts = certify.run_off(logits)
    assert (winner[0], other[0], counts.tolist()) == (1, 0, [[2, 1]])
    assert certify.dpa_roe_certificate(logits)[0].tolist() == [1]
    assert certify.fa_roe_certificate(logits, np.arange(3)[:, None])[0].tolist() == [1]
    # counting the tied model against the winner leaves no margin: radius 0 (the official would assert)
    assert certify.dpa_roe_certificate(logits)[1].tolist() == [0]
    assert _official_dpa_roe(logits[:, 0], _official_pair_table(8)) == (1, 0)


def test_two_gap_cost_equals_the_official_table():
    size = 40
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    assert (certify.two_gap_cost(i, j) == _official_pair_table(size)).all()


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_run_off_certificates_equal_the_official_code(seed, tied):
    rng = np.random.default_rng(seed)
    models, samples, classes, d = 12, 300, 4, 3
    if tied:
        logits = rng.integers(0, 3, size=(models, samples, classes)).astype(np.float64)
    else:
        logits = rng.normal(size=(models, samples, classes))
    logits[rng.random((models, samples)) < rng.random(samples), 0] += (
        3  # class 0 favoured, to varying degrees
    )
    bucket_models = (np.arange(models)[:, None] + rng.permutation(models)[:d][None, :]) % models
    pairs = _official_pair_table(2 * models + 4)
    dpa_pred, dpa_radius = certify.dpa_roe_certificate(logits)
    fa_pred, fa_radius = certify.fa_roe_certificate(logits, bucket_models)
    for t in range(samples):
        assert (dpa_pred[t], dpa_radius[t]) == _official_dpa_roe(logits[:, t], pairs), t
        assert (fa_pred[t], fa_radius[t]) == _official_fa_roe(logits[:, t], bucket_models), t
    assert fa_radius.max() >= 2 and dpa_radius.max() >= 2


def _check_run_off_against_exhaustive_attack(models: int, seed: int) -> None:
    """On a small table with equal logits about, DPA+ROE's and FA+ROE's radii equal the official code's,
    never exceed what an exhaustive attacker (who may also write equal logits) needs, and on these
    consensus tables equal it: the official bounds are tight there, and so must ours be."""
    rng = np.random.default_rng(seed)
    logits = rng.integers(0, 3, size=(models, 1, 3)).astype(np.float64)
    logits[rng.random(models) < rng.uniform(0.4, 1.0), 0, 0] += 3
    predict = lambda x: certify.run_off(x)[0]  # noqa: E731
    pred, radius = certify.dpa_roe_certificate(logits)
    assert (pred[0], radius[0]) == _official_dpa_roe(logits[:, 0], _official_pair_table(2 * models + 4))
    attack = _min_attack(logits, [(m,) for m in range(models)], predict, int(radius[0]) + 1, ties=True)
    assert attack == radius[0] + 1
    groups = _fa_groups(models, 2)
    pred, radius = certify.fa_roe_certificate(logits, groups)
    assert (pred[0], radius[0]) == _official_fa_roe(logits[:, 0], groups)
    assert radius[0] <= 1, "exhaustive search below covers two poisoned samples"
    attack = _min_attack(logits, [tuple(g) for g in groups], predict, int(radius[0]) + 1, ties=True)
    assert attack == radius[0] + 1


@pytest.mark.parametrize("seed", range(4))
def test_run_off_radii_match_an_exhaustive_attack_with_ties(seed):
    _check_run_off_against_exhaustive_attack(5, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(16))
def test_run_off_radii_match_an_exhaustive_attack_with_ties_six_models(seed):
    _check_run_off_against_exhaustive_attack(6, seed)


@pytest.mark.parametrize("seed", range(2))
def test_compiled_certificates_equal_the_official_code_with_ten_classes(seed):
    """Ten classes exercise the pruned pair loop and several packed fields per bucket word; a
    non-cyclic bucket table exercises the general bucket sums."""
    rng = np.random.default_rng(100 + seed)
    models, samples, classes, d = 30, 120, 10, 5
    logits = rng.normal(size=(models, samples, classes)).astype(np.float32)
    favourite = rng.integers(0, classes, size=samples)
    logits[:, np.arange(samples), favourite] += rng.uniform(0.0, 3.0, size=samples)
    cyclic = (np.arange(models)[:, None] + rng.permutation(models)[:d][None, :]) % models
    scattered = np.stack([rng.permutation(models)[:d] for _ in range(models)])
    pairs = _official_pair_table(2 * models + 4)
    dpa_pred, dpa_radius = certify.dpa_roe_certificate(logits)
    for bucket_models in (cyclic, scattered):
        fa_pred, fa_radius = certify.fa_roe_certificate(logits, bucket_models)
        for t in range(samples):
            assert (fa_pred[t], fa_radius[t]) == _official_fa_roe(logits[:, t], bucket_models), t
    for t in range(samples):
        assert (dpa_pred[t], dpa_radius[t]) == _official_dpa_roe(logits[:, t], pairs), t
    assert len(set(dpa_radius.tolist())) > 3
