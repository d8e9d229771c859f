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


def _attacked_tables(logits: np.ndarray, groups: list[tuple[int, ...]], budget: int) -> np.ndarray:
    """Every table reachable by poisoning `budget` samples, each rewriting the models of one group to any
    ranking (or leaving a model as it was): (models, variants, classes), one variant per column."""
    classes = logits.shape[2]
    options = _rankings(classes)
    variants = []
    for chosen in itertools.combinations(range(len(groups)), budget):
        touched = sorted({m for g in chosen for m in groups[g]})
        per_model = [np.vstack([logits[m, 0][None], options]) for m in touched]
        for combo in itertools.product(*per_model):
            table = logits[:, 0].copy()
            table[touched] = np.array(combo)
            variants.append(table)
    return np.stack(variants, axis=1)


def _min_attack(logits, groups, predict, limit):
    """Smallest number of poisoned samples that changes the prediction (limit + 1 when none within limit)."""
    original = predict(logits)[0]
    for budget in range(1, limit + 1):
        if (predict(_attacked_tables(logits, groups, budget)) != original).any():
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
    votes_a = sum(1 for row in table if row[a] > row[b] or (row[a] == row[b] and a < b))
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
