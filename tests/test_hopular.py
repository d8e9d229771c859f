"""Hopular: masking rates, the sample-sample lookup's masks, LAMB and Lookahead by hand, the schedules,
determinism, categorical input through the task, and scikit-learn's estimator checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.registries import METHODS, TASKS
from harness.spec import make_spec
from harness.store import ResultStore
from harness.worker import WorkerOptions, run_spec
from methods.tabular.hopular import CPU, PAPER, HopularMethod
from methods.tabular.hopular_classifier import HopularClassifier, corrupt
from methods.tabular.hopular_network import MASKED, MISSING, OBSERVED, HopularNetwork
from methods.tabular.hopular_optim import Lamb, Lookahead

# A model small enough to fit in well under a second, that still learns blobs.
TINY = {
    "feature_size": 8,
    "num_heads": 1,
    "num_blocks": 1,
    "hidden_size": 8,
    "epochs": 40,
    "cycle_epochs": 80,
    "learning_rate": 0.1,
    "lookahead_alpha": 1.0,
    "validation_fraction": 0.0,
    "device": "cpu",
}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blobs(n=120, seed=0, features=3, classes=3):
    from sklearn.datasets import make_blobs

    return make_blobs(n_samples=n, n_features=features, centers=classes, random_state=seed)


def test_masking_rates_over_many_draws():
    n, sizes = 20_000, [1, 1, 4, 3]  # two numeric features, two categorical ones, the target (3 classes)
    categorical = torch.tensor([False, False, True, True])
    gen = torch.Generator().manual_seed(0)
    values = torch.stack(
        [
            torch.randn(n),
            torch.randn(n),
            torch.randint(0, 4, (n,)).float(),
            torch.randint(0, 3, (n,)).float(),
        ],
        1,
    )
    state = torch.full((n, 4), OBSERVED)
    state[:500, 1] = MISSING
    masked = changed_numeric = changed_cat = 0
    replacements = []
    draws = 20
    for _ in range(draws):
        v, s = corrupt(
            values, state, torch.tensor(sizes, dtype=torch.float32), categorical, 0.025, 0.175, gen
        )
        assert (s[:, -1] == MASKED).all() and (v[:, -1] == 0).all()  # the target is always masked
        assert (s[:500, 1] == MISSING).all()  # missing stays missing
        observed = state[:, :3] == OBSERVED
        masked += int((s[:, :3] == MASKED).sum())
        assert (v[:, :3][s[:, :3] == MASKED] == 0).all()  # a masked entry is zeroed
        kept = s[:, :3] == OBSERVED
        changed_numeric += int((kept[:, :2] & (v[:, :2] != values[:, :2])).sum())
        changed_cat += int((kept[:, 2] & (v[:, 2] != values[:, 2])).sum())
        replacements.append(v[:, 0][kept[:, 0] & (v[:, 0] != values[:, 0])])
        assert set(v[:, 2].unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    n_observed = int(observed.sum()) * draws
    n_numeric = int(observed[:, :2].sum()) * draws
    # binomial standard errors: 1.4e-4, 4.3e-4 and 5.3e-4; the tolerances are about five of them
    assert masked / n_observed == pytest.approx(0.025, abs=7e-4)
    assert changed_numeric / n_numeric == pytest.approx(0.175, abs=2e-3)
    # a uniform redraw of 4 categories keeps the value a quarter of the time
    assert changed_cat / (n * draws) == pytest.approx(0.175 * 3 / 4, abs=2.5e-3)
    drawn = torch.cat(replacements)
    assert abs(float(drawn.mean())) < 0.02 and float(drawn.std()) == pytest.approx(1.0, abs=0.02)


def test_training_lookup_never_reads_the_sample_itself(monkeypatch):
    """The association weights of every training step: zero on the diagonal (each row against itself),
    rows summing to one over the other training rows; with a memory subsample, zero at the row itself."""
    seen = []
    forward = HopularNetwork.forward

    def spy(self, values, state, mv, ms, own_rows=None, chunk=0, keep_weights=False):
        out, weights = forward(self, values, state, mv, ms, own_rows, chunk, keep_weights=self.training)
        if self.training:
            seen.append((own_rows.clone(), [w.detach() for w in weights]))
        return out, weights

    monkeypatch.setattr(HopularNetwork, "forward", spy)
    X, y = _blobs(60)
    HopularClassifier(**{**TINY, "epochs": 3, "num_blocks": 2, "num_heads": 2}, random_state=0).fit(X, y)
    assert len(seen) == 3
    for own, weights in seen:
        assert torch.equal(own, torch.arange(60))
        for w in weights:  # (1, heads, 60, 60)
            assert w.shape == (1, 2, 60, 60)
            assert torch.all(torch.diagonal(w, dim1=-2, dim2=-1) == 0)
            assert torch.allclose(w.sum(-1), torch.ones(1, 2, 60))

    seen.clear()
    HopularClassifier(**{**TINY, "epochs": 2, "memory_ratio": 0.5}, random_state=1).fit(X, y)
    for own, weights in seen:
        in_memory = own >= 0
        assert int(in_memory.sum()) == 30 and sorted(own[in_memory].tolist()) == list(range(30))
        for w in weights:  # (1, 1, 60, 30): zero where a row meets itself in the subsample
            assert w.shape == (1, 1, 60, 30)
            assert torch.all(w[0, :, in_memory.nonzero()[:, 0], own[in_memory]] == 0)
            assert torch.allclose(w.sum(-1), torch.ones(1, 1, 60))


def test_prediction_reads_only_training_rows_and_may_read_itself():
    X, y = _blobs(80)
    clf = HopularClassifier(**{**TINY, "validation_fraction": 0.25, "epochs": 10}, random_state=0).fit(X, y)
    n_memory = len(clf.memory_values_)
    assert n_memory == 60  # the 20 validation rows neither train nor sit in the memory
    weights = clf.sample_lookup_weights(X[:7])
    assert [w.shape for w in weights] == [(1, 7, 60)]
    assert np.allclose(weights[0].sum(-1), 1.0, atol=1e-5)
    # At prediction time a row equal to a training row may retrieve that row; in training it may not.
    train_rows = clf.sample_lookup_weights(None)[0]
    assert np.all(np.diagonal(train_rows, axis1=-2, axis2=-1) == 0)
    memory_X = clf.memory_values_[:, :-1].numpy() * clf.scale_ + clf.mean_
    as_test = clf.sample_lookup_weights(memory_X)[0]
    assert np.diagonal(as_test, axis1=-2, axis2=-1).min() > 0


def test_fused_and_chunked_lookups_match_the_explicit_one():
    X, y = _blobs(70)
    clf = HopularClassifier(**TINY, random_state=0).fit(X, y)
    full = clf.predict_proba(X)
    clf.max_lookup_entries = 16  # one query a chunk
    assert np.allclose(clf.predict_proba(X), full, atol=1e-6)
    values, state = clf._encode(X, None)
    net = clf.network_.eval()
    with torch.no_grad():
        fused, _ = net(values, state, clf.memory_values_, clf.memory_state_)
        explicit, _ = net(values, state, clf.memory_values_, clf.memory_state_, keep_weights=True)
    assert torch.allclose(fused, explicit, atol=1e-5)


def test_chunked_training_gives_the_unchunked_gradients():
    torch.manual_seed(0)
    net = HopularNetwork(
        [1, 1, 3],
        [False, False, True],
        dim=8,
        heads=2,
        blocks=2,
        hidden_size=4,
        input_dropout=0,
        lookup_dropout=0,
        output_dropout=0,
    ).train()
    values = torch.cat([torch.randn(50, 2), torch.randint(0, 3, (50, 1)).float()], 1)
    state = torch.zeros(50, 3, dtype=torch.long)
    own = torch.arange(50)
    grads = []
    for chunk in (0, 2 * 50 * 3):  # whole, then three queries a chunk (checkpointed)
        net.zero_grad()
        out, _ = net(values, state, values, state, own_rows=own, chunk=chunk)
        out.square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def _lamb_reference(w, g, lr, beta1, beta2, eps, wd):
    """One LAMB step from zero moments, written out: Adam's bias-corrected step plus decay, times the
    trust ratio min(||w||, 10) / ||step||."""
    m, v = (1 - beta1) * g, (1 - beta2) * g * g
    step = m / (np.sqrt(v) + eps) + wd * w
    step_size = lr * math.sqrt(1 - beta2) / (1 - beta1)
    return w - step_size * min(np.linalg.norm(w), 10.0) / np.linalg.norm(step) * step


def test_lamb_step_by_hand():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = Lamb([w], lr=0.1, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.5)
    w.grad = torch.tensor([1.0, -2.0])
    opt.step()
    # m_hat / sqrt(v_hat) = sign(g): step = (1 + 1.5, -1 + 2) = (2.5, 1); trust 5 / |step|; step size 0.1
    by_hand = np.array([3.0, 4.0]) - 0.1 * 5 / math.hypot(2.5, 1.0) * np.array([2.5, 1.0])
    assert np.allclose(w.detach().numpy(), by_hand, atol=1e-5)
    assert np.allclose(
        w.detach().numpy(),
        _lamb_reference(np.array([3.0, 4.0]), np.array([1.0, -2.0]), 0.1, 0.9, 0.99, 1e-6, 0.5),
    )
    big = torch.nn.Parameter(torch.full((4,), 30.0))  # norm 60: the trust ratio uses 10
    opt = Lamb([big], lr=0.1)
    big.grad = torch.ones(4)
    opt.step()
    expected = _lamb_reference(np.full(4, 30.0), np.ones(4), 0.1, 0.9, 0.999, 1e-6, 0.0)
    assert np.allclose(big.detach().numpy(), expected, atol=1e-5)
    assert np.allclose(expected, 30.0 - 0.1 * math.sqrt(0.001) / 0.1 * 10 / 2, atol=1e-3)


def test_lookahead_asynchronous_is_a_moving_average_and_synchronous_pulls_back():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    opt = Lookahead(torch.optim.SGD([w], lr=1.0), steps=1, alpha=0.25, synchronize=False)
    slow = 0.0
    for _ in range(3):
        w.grad = torch.tensor([-1.0])  # the fast weight climbs by 1 a step
        opt.step()
        slow += 0.25 * (w.item() - slow)
    assert w.item() == 3.0 and float(opt.slow[0]) == pytest.approx(slow)
    with opt.slow_weights():
        assert w.item() == pytest.approx(slow)
    assert w.item() == 3.0
    w2 = torch.nn.Parameter(torch.tensor([0.0]))
    opt = Lookahead(torch.optim.SGD([w2], lr=1.0), steps=2, alpha=0.5, synchronize=True)
    for _ in range(2):
        w2.grad = torch.tensor([-1.0])
        opt.step()
    assert w2.item() == 1.0 == float(opt.slow[0])  # 0 + 0.5 * (2 - 0), and the fast weight restarts there


def test_schedules_follow_the_official_cosine():
    clf = HopularClassifier()  # the official 5,000 of a 10,000-epoch cycle
    assert clf._schedule(0, 1.0, 0.0) == 1.0
    assert clf._schedule(5000, 1.0, 0.0) == pytest.approx(0.5)
    assert clf._schedule(2500, 1e-3, 0.0) == pytest.approx(1e-3 * (1 + math.cos(math.pi / 4)) / 2)
    assert clf._schedule(10000, 1.0, 0.0) == 1.0  # a new cycle restarts


def test_same_seed_same_predictions_other_seed_other():
    X, y = _blobs(90, features=4)
    a = HopularClassifier(**TINY, random_state=3).fit(X, y).predict_proba(X)
    b = HopularClassifier(**TINY, random_state=3).fit(X, y).predict_proba(X)
    c = HopularClassifier(**TINY, random_state=4).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    HopularClassifier(**TINY, random_state=3).fit(X, y)
    assert torch.equal(torch.rand(1), before)  # the global torch RNG is left as it was


def test_categorical_features_are_embedded_and_unseen_codes_read_as_missing():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 3, 150)
    size = rng.normal(size=150)
    y = (colour == 2) ^ (size > 1)
    X = np.column_stack([size, colour.astype(float)])
    X[:5, 1] = np.nan
    clf = HopularClassifier(**{**TINY, "epochs": 60}, categorical_features=[1], random_state=0).fit(X, y)
    assert clf.sizes_ == [1, 3, 2] and clf.is_categorical_.tolist() == [False, True]
    assert (clf.predict(X) == y).mean() > 0.85
    values, state = clf._encode(np.array([[0.0, 7.0], [0.0, np.nan], [0.0, 2.0]]), None)
    assert state[:, 1].tolist() == [MISSING, MISSING, OBSERVED] and values[2, 1] == 2
    with pytest.raises(ValueError, match="categorical_features"):
        HopularClassifier(**TINY, categorical_features=[5]).fit(X, y)


def test_method_settings_resolve_and_overrides_win():
    assert HopularMethod().hyperparameters() == PAPER
    assert HopularMethod(setting="cpu").hyperparameters() == CPU
    tuned = HopularMethod(setting="cpu", num_blocks=2, learning_rate=0.01).hyperparameters()
    assert tuned == {**CPU, "num_blocks": 2, "learning_rate": 0.01}
    est = HopularMethod(setting="cpu").make_estimator(7, 2)
    assert est.random_state == 7 and est.num_blocks == 1 and est.epochs == 150
    assert PAPER["num_blocks"] == 8 and PAPER["epochs"] == 5000 and PAPER["mask_probability"] == 0.025


def test_hopular_joins_tabular_at_its_cpu_setting_but_not_quick():
    from harness import leaderboard

    tabular = leaderboard.load("tabular")
    hop = [m for m in tabular.methods if m.name == "hopular"]
    assert len(hop) == 1 and hop[0].params == {"setting": "cpu"}
    assert "hopular" not in [m.name for m in leaderboard.load("quick").methods]
    paper = leaderboard.load("tabular-paper")
    assert {t.name for t in paper.tasks} == {"tabular/openml"}
    assert all(t.params["folds"] in (4, 5) for t in paper.tasks) and len(paper.tasks) == 17
    assert "hopular" in [m.name for m in paper.methods] and paper.scale == "paper"


def test_local_table_with_text_columns_runs_through_the_task(tmp_path):
    rng = np.random.default_rng(1)
    rows = ["size,colour,label"]
    for _ in range(100):
        colour = rng.choice(["red", "blue", "green"])
        size = rng.normal(2 if colour == "red" else 0, 1)
        cell = "" if rng.random() < 0.05 else f"{size:.3f}"
        rows.append(f"{cell},{colour},{'big' if size > 1 else 'small'}")
    csv = tmp_path / "t.csv"
    csv.write_text("\n".join(rows) + "\n")
    spec = make_spec(
        TASKS.get("tabular/table"),
        METHODS.get("hopular"),
        0,
        "smoke",
        {"path": str(csv), "target": "label"},
        {k: v for k, v in TINY.items() if k != "device"},
    )
    record = run_spec(spec, ResultStore(tmp_path), WorkerOptions(str(tmp_path)), "test")
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["accuracy"]["value"] > 0.7


@pytest.mark.slow
def test_scikit_learn_estimator_checks():
    """Every check of `check_estimator` passes; none is skipped for this estimator (the array-API check
    skips itself unless SCIPY_ARRAY_API is set, which it is not here)."""
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(HopularClassifier(**TINY, random_state=0), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {"check_array_api_input"}


@pytest.mark.slow
def test_cpu_setting_on_breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    clf = HopularMethod(setting="cpu").make_estimator(0, 2).fit(Xtr, ytr)
    assert (clf.predict(Xte) == yte).mean() > 0.93
