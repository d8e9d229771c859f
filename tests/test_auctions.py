"""The auctions family: exact optima against enumeration, incentives searched on bid grids, payment
bounds, the cases where the classic and the logit-aware mechanisms must agree, and the file task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.artifacts import ArtifactCache
from harness.context import RunContext
from harness.errors import UserError
from harness.registries import METHODS, TASKS
from tasks.auctions.clicks import cascade_clicks, mnl_clicks
from tasks.auctions.evaluation import best_misreport, evaluate, outcome, profitable, utility
from tasks.auctions.exact import all_allocations, allocation_count, brute_force, optimum
from tasks.auctions.instances import Instance, generate, read_instances
from tasks.auctions.mnl import best_matching, click_steps
from tasks.auctions.protocol import AuctionSetting, threshold_prices
from tasks.auctions.tasks import MISREPORT_GRID
from tasks.auctions.values import ValueDistribution

MECHANISMS = ("gsp", "vcg-separable", "mnl-welfare", "mnl-revenue", "cascade-greedy", "cascade-dp")
UNIFORM = ValueDistribution()


def mechanism(name: str):  # type: ignore[no-untyped-def]
    return METHODS.get(name)()


def small_instances(seed: int, count: int, user_model: str = "mnl", prior=UNIFORM, **kw) -> list[Instance]:  # type: ignore[no-untyped-def]
    """Instances of random sizes n <= 6, m <= 4."""
    rng = np.random.default_rng(seed)
    out: list[Instance] = []
    for _ in range(count):
        n, m = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        settings = {"base_logit": -1.0, "ad_spread": 0.7, "position_decay": 0.3, "context_noise": 1.0, **kw}
        out += generate(rng, 1, n, m, user_model, prior, continuation=(0.5, 1.0), **settings)  # type: ignore[arg-type]
    return out


def setting(ctr, user_model="mnl", prior=UNIFORM, continuation=None) -> AuctionSetting:  # type: ignore[no-untyped-def]
    return AuctionSetting(np.asarray(ctr, float), user_model, prior, continuation)


# --- the exact MNL optimum -------------------------------------------------------------------------


def test_enumeration_counts_every_allocation():
    for n, m in [(1, 1), (3, 2), (6, 4), (4, 6)]:
        ad_at = all_allocations(n, m)
        assert len(ad_at) == allocation_count(n, m) == len({tuple(r) for r in ad_at})
        for row in ad_at:
            shown = row[row >= 0]
            assert len(set(shown)) == len(shown)
    assert allocation_count(6, 4) == 1 + 4 * 6 + 6 * 30 + 4 * 120 + 360


def test_mnl_welfare_allocation_equals_brute_force_on_every_small_instance():
    instances = small_instances(0, 400) + small_instances(1, 100, context_noise=0.0, base_logit=0.5)
    mnl = mechanism("mnl-welfare")
    unique = 0
    for instance in instances:
        values, s = instance.values, instance.setting
        positions, value = best_matching(values, s.weights)
        best, best_value, gap = brute_force(values, s)
        assert value == pytest.approx(best_value, rel=1e-12, abs=1e-15)
        assert float(values @ mnl_clicks(s.weights, positions)) == pytest.approx(best_value, rel=1e-12)
        if gap > 1e-9:
            unique += 1
            assert positions.tolist() == best.tolist()
            assert mnl.allocate(values, s).tolist() == best.tolist()
    assert unique > 450


def test_vcg_prices_are_the_threshold_integral_of_the_clicks():
    """Clarke pivots and the payment identity over the convex optimum are two formulas for one price."""
    mnl = mechanism("mnl-welfare")
    for instance in small_instances(2, 60):
        values, s = instance.values, instance.setting
        positions = mnl.allocate(values, s)
        prices = mnl.prices(values, s, positions, range(s.n_ads))
        clicks = mnl_clicks(s.weights, positions)
        for ad in np.flatnonzero(positions >= 0):
            steps = click_steps(values, s.weights, int(ad), float(values[ad]))
            assert sum(jump for _, jump in steps) == pytest.approx(clicks[ad], rel=1e-9)
            threshold = sum(t * jump for t, jump in steps) / clicks[ad]
            assert prices[ad] == pytest.approx(threshold, rel=1e-7, abs=1e-12)


def test_myerson_with_one_position_is_second_price_with_the_reserve_by_hand():
    """m = 1, values U[0, 1]: phi(b) = 2b - 1, the ad with the largest phi x p wins (if phi > 0) and pays
    per click z with (2z - 1) p_win = max(0, best other (2b - 1) p)."""
    ctr = [[0.2], [0.4], [0.1]]
    s = setting(ctr)
    myerson = mechanism("mnl-revenue")
    for bids, winner, price in [
        ([0.9, 0.8, 0.95], 1, (1 + (2 * 0.9 - 1) * 0.2 / 0.4) / 2),  # 0.6 x 0.4 beats 0.8 x 0.2, 0.9 x 0.1
        ([0.9, 0.45, 0.3], 0, 0.5),  # alone above the reserve 1/2
        ([0.4, 0.45, 0.3], -1, 0.0),  # nobody above the reserve
    ]:
        bids = np.array(bids)
        positions = myerson.allocate(bids, s)
        assert (np.flatnonzero(positions >= 0).tolist() or [-1]) == [winner]
        if winner >= 0:
            assert myerson.prices(bids, s, positions, [winner])[0] == pytest.approx(price, rel=1e-9)


def test_lognormal_virtual_value_is_increasing_and_inverted_exactly():
    for sigma in (0.25, 0.5, 1.0, 1.5):
        prior = ValueDistribution("lognormal", mu=0.3, sigma=sigma)
        v = np.exp(0.3 + sigma * np.linspace(-8, 8, 20001))
        assert (np.diff(prior.virtual_value(v)) > 0).all()
        for value in (prior.reserve, 1.0, 3.0):
            assert prior.inverse_virtual_value(float(prior.virtual_value(value))) == pytest.approx(
                value, rel=1e-9
            )
        assert float(prior.virtual_value(prior.reserve)) == pytest.approx(0.0, abs=1e-9)
    # uniform: phi(v) = 2v - high, the reserve high / 2
    assert ValueDistribution(high=4.0).reserve == 2.0
    with pytest.raises(UserError, match="value_sigma <= 1.5"):
        ValueDistribution("lognormal", sigma=2.0)


# --- incentives ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnl-welfare", "mnl-revenue"])
@pytest.mark.parametrize(
    "prior", [UNIFORM, ValueDistribution("lognormal", sigma=0.6)], ids=["uniform", "lognormal"]
)
def test_vcg_and_myerson_have_no_profitable_misreport_on_their_grid(name, prior):
    mech = mechanism(name)
    grid = (*MISREPORT_GRID, 0.6, 1.01, 1.3, 3.0)
    instances = small_instances(3, 40, prior=prior)
    checked = 0
    for instance in instances:
        values = instance.values
        positions, prices = outcome(mech, instance, values, range(instance.setting.n_ads))
        truthful = (values - prices) * instance.setting.clicks(positions)
        for bidder in range(instance.setting.n_ads):
            bid, u = best_misreport(mech, instance, bidder, grid, float(truthful[bidder]))
            assert not profitable(instance, bidder, u - truthful[bidder]), (bidder, bid, u, truthful[bidder])
            checked += 1
    assert checked > 100


def test_gsp_rewards_shading_on_a_hand_made_auction():
    """Three ads with the same click probabilities (0.5 on top, 0.45 below, so MNL weights 1 and 9/11),
    values 10, 8, 2. Truthful, ad 0 is on top and pays 8 per click: (10 - 8) x 1 / (1 + 1 + 9/11) = 0.710.
    Bidding 5 it drops below ad 1 and pays ad 2's 2: (10 - 2) x (9/11) / (1 + 1 + 9/11) = 2.323."""
    s = setting([[0.5, 0.45]] * 3, prior=ValueDistribution(high=10.0))
    instance = Instance(s, np.array([10.0, 8.0, 2.0]))
    gsp = mechanism("gsp")
    denominator = 1 + 1 + 9 / 11
    truthful = utility(gsp, instance, 0, 10.0)
    assert truthful == pytest.approx(2 / denominator)
    assert utility(gsp, instance, 0, 5.0) == pytest.approx(8 * (9 / 11) / denominator)
    bid, best = best_misreport(gsp, instance, 0, MISREPORT_GRID, truthful)
    assert profitable(instance, 0, best - truthful) and bid < 8.0
    # the same auction under MNL-aware VCG: no gain from the same shading
    vcg = mechanism("mnl-welfare")
    assert utility(vcg, instance, 0, 5.0) <= utility(vcg, instance, 0, 10.0) + 1e-12


def test_gsp_is_caught_misreporting_on_generated_auctions_and_vcg_is_not():
    instances = small_instances(4, 30)
    gsp = evaluate(mechanism("gsp"), instances, MISREPORT_GRID, 30, 0, 10_000)
    vcg = evaluate(mechanism("mnl-welfare"), instances, MISREPORT_GRID, 30, 0, 10_000)
    assert gsp[0]["misreport_share"] > 0.05 and "misreport_example" in gsp[1]
    assert vcg[0]["misreport_share"] == 0.0 and vcg[0]["welfare_ratio"] == pytest.approx(1.0, abs=1e-12)


# --- payments --------------------------------------------------------------------------------------


@pytest.mark.parametrize("user_model", ["mnl", "cascade"])
@pytest.mark.parametrize("name", MECHANISMS)
def test_payments_never_exceed_bid_times_clicks_and_unshown_ads_pay_nothing(name, user_model):
    mech = mechanism(name)
    rng = np.random.default_rng(5)
    instances = small_instances(6, 25, user_model) + generate(
        rng, 3, 12, 5, user_model, UNIFORM, -1.5, 0.5, 0.3, 1.0, (0.6, 0.95)
    )
    for instance in instances:
        bids = instance.values
        positions, prices = outcome(mech, instance, bids, range(instance.setting.n_ads))
        clicks = instance.setting.clicks(positions)
        assert (prices >= 0).all()
        assert (prices * clicks <= bids * clicks * (1 + 1e-9) + 1e-15).all()
        assert (prices[positions < 0] == 0).all() and (clicks[positions < 0] == 0).all()


def test_threshold_prices_integrate_step_functions_exactly():
    jumps = {0: [(0.3, 0.2), (0.71, 0.3)], 1: [(0.05, 0.4)], 2: [(0.5, 0.1)]}

    def clicks_at(ads, zs):  # type: ignore[no-untyped-def]
        return np.array([sum(d for t, d in jumps[int(a)] if z >= t) for a, z in zip(ads, zs, strict=True)])

    # payments sum_k jump_k x t_k: 0.3 x 0.2 + 0.71 x 0.3 = 0.273 (clicks 0.5); 0.05 x 0.4; ad 2 bids
    # below its step (no clicks, no price)
    prices = threshold_prices(clicks_at, np.array([1.0, 0.9, 0.2]), [0, 1, 2])
    assert prices == pytest.approx([0.273 / 0.5, 0.05, 0.0], abs=1e-6)
    assert threshold_prices(clicks_at, np.array([1.0]), []).shape == (0,)


# --- where the classic and the logit-aware mechanisms coincide --------------------------------------


def test_separable_vcg_and_mnl_welfare_agree_with_one_position():
    """With one position, an MNL user clicks the ad shown with its standalone p, as the separable model
    says: both pick the largest bid x p and charge the second."""
    rng = np.random.default_rng(7)
    separable, mnl = mechanism("vcg-separable"), mechanism("mnl-welfare")
    for _ in range(50):
        n = int(rng.integers(1, 8))
        s = setting(rng.uniform(0.05, 0.6, (n, 1)) * rng.uniform(0.5, 1.0))
        bids = rng.uniform(0, 1, n)
        a, b = separable.allocate(bids, s), mnl.allocate(bids, s)
        assert a.tolist() == b.tolist()
        pa, pb = separable.prices(bids, s, a, range(n)), mnl.prices(bids, s, b, range(n))
        assert pa == pytest.approx(pb, rel=1e-9, abs=1e-15)


def test_separable_vcg_and_mnl_welfare_agree_when_clicks_are_rare():
    """p_ij = alpha_i beta_j x 1e-6: the MNL denominator is 1 + O(1e-6), so clicks are independent and
    separable, and the two mechanisms give the same allocation and prices to O(1e-6)."""
    rng = np.random.default_rng(8)
    separable, mnl = mechanism("vcg-separable"), mechanism("mnl-welfare")
    for _ in range(50):
        n, m = int(rng.integers(2, 8)), int(rng.integers(2, 5))
        alpha, beta = rng.uniform(0.2, 1.0, n), np.sort(rng.uniform(0.2, 1.0, m))[::-1]
        s = setting(1e-6 * np.outer(alpha, beta))
        bids = rng.uniform(0.1, 1, n)
        a, b = separable.allocate(bids, s), mnl.allocate(bids, s)
        assert a.tolist() == b.tolist()
        pa, pb = separable.prices(bids, s, a, range(n)), mnl.prices(bids, s, b, range(n))
        assert pa == pytest.approx(pb, abs=1e-5)  # prices per click are O(0.1); the gap O(1e-6)
        assert np.abs(pa - pb).max() > 0 or n <= 1  # the models still differ, by the tiny externality


# --- cascade ---------------------------------------------------------------------------------------


def test_cascade_clicks_by_hand():
    ctr = np.array([[0.5, 0.4, 0.3], [0.2, 0.1, 0.6]])
    q = np.array([0.9, 0.8, 0.7])
    # ad 1 in position 0, position 1 empty, ad 0 in position 2: reach 1, 0.9 x 0.8, 0.9 x 0.8 x 0.8
    clicks = cascade_clicks(ctr, q, np.array([2, 0]))
    assert clicks.tolist() == pytest.approx([0.9 * 0.8 * 0.8 * 0.3, 0.2])
    # a batch: the same allocation and ad 0 alone in position 1 (reach 0.9)
    batch = cascade_clicks(ctr, q, np.array([[2, 0], [1, -1]]))
    assert np.allclose(batch, [[0.9 * 0.8 * 0.8 * 0.3, 0.2], [0.9 * 0.4, 0.0]], rtol=1e-15, atol=0)


def test_cascade_dp_is_exact_when_rates_do_not_depend_on_the_position():
    rng = np.random.default_rng(9)
    dp = mechanism("cascade-dp")
    for _ in range(150):
        n, m = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        q = float(rng.uniform(0.3, 1.0))
        s = setting(
            np.repeat(rng.uniform(0.05, 0.9, (n, 1)), m, axis=1), "cascade", continuation=np.full(m, q)
        )
        values = rng.uniform(0, 1, n)
        positions = dp.allocate(values, s)
        best = optimum(values, s, 10**6)
        assert float(values @ s.clicks(positions)) == pytest.approx(best, rel=1e-12)


def test_cascade_approximations_stay_below_the_enumerated_optimum_and_greedy_is_exact_on_one_position():
    instances = small_instances(10, 150, "cascade")
    ratios = {"cascade-greedy": [], "cascade-dp": []}
    for instance in instances:
        best = optimum(instance.values, instance.setting, 10**6)
        for name in ratios:
            positions = mechanism(name).allocate(instance.values, instance.setting)
            ratio = float(instance.values @ instance.setting.clicks(positions)) / best
            assert ratio <= 1 + 1e-12
            if instance.setting.n_positions == 1 and name == "cascade-greedy":
                assert ratio == pytest.approx(1.0, rel=1e-12)
            ratios[name].append(ratio)
    assert np.mean(ratios["cascade-greedy"]) > 0.9 and np.mean(ratios["cascade-dp"]) > 0.85


# --- tasks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_name", ["auctions/mnl", "auctions/cascade"])
def test_tasks_run_at_smoke_scale_and_report_their_metrics(task_name, tmp_path):
    cls = TASKS.get(task_name)
    task = cls(**cls.params_for_scale("smoke", {}, "test"))
    ctx = RunContext(0, "cpu", 1, ArtifactCache(tmp_path))
    metrics = task.run(mechanism("gsp"), ctx)
    required = {m.name for m in cls.metrics if m.required}
    assert required <= set(metrics) and {"welfare_ratio", "revenue_ratio", "misreport_share"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values()) and 0 < metrics["welfare_ratio"] <= 1
    again = task.run(mechanism("gsp"), RunContext(0, "cpu", 1, ArtifactCache(tmp_path)))
    assert {k: v for k, v in again.items() if k != "ms_per_auction"} == {
        k: v for k, v in metrics.items() if k != "ms_per_auction"
    }
    other_seed = task.load_instances(1)[0].values
    assert not np.array_equal(other_seed, task.load_instances(0)[0].values)


def test_large_cascade_auctions_have_no_exact_ratio(tmp_path):
    task = TASKS.get("auctions/cascade")(
        n_ads=12, n_positions=6, auctions=2, misreport_instances=0, exact_limit=1000
    )
    metrics = task.run(mechanism("gsp"), RunContext(0, "cpu", 1, ArtifactCache(tmp_path)))
    assert "welfare_ratio" not in metrics and "misreport_share" not in metrics and metrics["welfare"] > 0


def test_separable_generator_setting_gives_separable_weights():
    (instance,) = generate(np.random.default_rng(0), 1, 5, 3, "mnl", UNIFORM, -1.0, 0.5, 0.3, 0.0)
    w = instance.setting.weights
    assert np.allclose(w / w[:, :1], (w / w[:, :1])[0])


def write_json(path, instances):  # type: ignore[no-untyped-def]
    path.write_text(json.dumps(instances))
    return str(path)


GOOD = {"ctr": [[0.3, 0.2], [0.1, 0.4], [0.2, 0.2]], "values": [0.5, 0.9, 0.1], "continuation": [0.9, 0.8]}


def test_file_task_reads_json_and_parquet_alike(tmp_path):
    import polars as pl

    json_path = write_json(tmp_path / "a.json", {"instances": [GOOD, GOOD]})
    parquet_path = tmp_path / "a.parquet"
    pl.DataFrame([GOOD, GOOD]).write_parquet(parquet_path)
    for path in (json_path, str(parquet_path)):
        (first, _) = read_instances(path, "cascade", UNIFORM)
        assert first.setting.ctr.tolist() == GOOD["ctr"] and first.values.tolist() == GOOD["values"]
        assert first.setting.continuation.tolist() == GOOD["continuation"]
    task = TASKS.get("auctions/file")(path=json_path, user_model="cascade")
    task.check_inputs()
    metrics = task.run(mechanism("cascade-dp"), RunContext(0, "cpu", 1, ArtifactCache(tmp_path)))
    assert 0 < metrics["welfare_ratio"] <= 1 + 1e-12


@pytest.mark.parametrize(
    ("content", "user_model", "message"),
    [
        ([{**GOOD, "ctr": None}], "mnl", r"instance 0: field 'ctr' is missing; expected n rows"),
        (
            [GOOD, {**GOOD, "ctr": [[0.3, 0.2], [0.1], [0.2, 0.2]]}],
            "mnl",
            r"instance 1: field 'ctr' row 1 has 1",
        ),
        (
            [{**GOOD, "ctr": [[0.3, 1.0], [0.1, 0.4], [0.2, 0.2]]}],
            "mnl",
            r"row 0 position 1 is 1.0; expected a cl",
        ),
        ([{**GOOD, "ctr": [[0.3, "x"], [0.1, 0.4], [0.2, 0.2]]}], "mnl", r"field 'ctr' row 0 entry 1 is 'x'"),
        ([{**GOOD, "values": [0.5, 0.9]}], "mnl", r"field 'values' has 2 entries; expected 3"),
        ([{**GOOD, "values": [0.5, 1.9, 0.1]}], "mnl", r"'values' entry 1 is 1.9 is outside the uniform"),
        ([{"ctr": GOOD["ctr"], "values": GOOD["values"]}], "cascade", r"field 'continuation' is missing"),
        (
            [{**GOOD, "continuation": [0.9, 1.2]}],
            "cascade",
            r"'continuation' entry 1 is 1.2; expected a prob",
        ),
        ([], "mnl", r"holds no auction instances"),
        ({"auctions": []}, "mnl", r"expected a JSON list of instances"),
        ([3], "mnl", r"instance 0: expected an object"),
    ],
)
def test_bad_instance_files_are_one_line_errors_naming_file_and_field(tmp_path, content, user_model, message):
    path = write_json(tmp_path / "bad.json", content)
    with pytest.raises(UserError, match=message) as err:
        TASKS.get("auctions/file")(path=path, user_model=user_model).check_inputs()
    assert "\n" not in str(err.value) and str(tmp_path / "bad.json") in str(err.value)


def test_unreadable_instance_files_are_one_line_errors(tmp_path):
    (tmp_path / "x.json").write_text("[{")
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    (tmp_path / "x.csv").write_text("a,b\n")
    for name, message in [
        ("x.json", r"x.json: line 1, column 3: malformed JSON"),
        ("x.parquet", r"x.parquet: not a readable parquet file"),
        ("x.csv", r"expected a .json or .parquet file"),
        ("missing.json", r"auction instances file .*missing.json does not exist"),
    ]:
        with pytest.raises(UserError, match=message):
            read_instances(str(tmp_path / name), "mnl", UNIFORM)


def test_shipped_auction_boards_plan():
    from harness import leaderboard as lb

    board = lb.load("auctions")
    plan = board.plan()
    assert {r.method for r in plan} == set(MECHANISMS)
    assert {TASKS.get(t.name).family for t in board.tasks} == {"auctions"} and len(board.seeds) == 3
    quick = {r.task for r in lb.load("quick").plan()}
    assert {"auctions/mnl", "auctions/cascade"} <= quick
