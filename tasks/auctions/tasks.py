"""Position-auction tasks: auctions inside generated content, with MNL or cascade users.

A task is a set of auctions (drawn with the run's seed, or read from a file), the users' model and the
value distribution it declares; a mechanism is run on every auction at truthful bids and its incentives
are searched on the first `misreport_instances` auctions (see tasks/auctions/evaluation.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.errors import UserError
from harness.registries import register_task
from tasks.auctions.evaluation import evaluate
from tasks.auctions.instances import Instance, generate, read_instances
from tasks.auctions.protocol import AuctionMechanism, UserModel
from tasks.auctions.values import ValueDistribution

AUCTION_METRICS = (
    Metric("welfare", True, tolerance=1e-3, description="mean sum of value x clicks per auction"),
    Metric("revenue", True, tolerance=1e-3, description="mean sum of price x clicks per auction"),
    Metric(
        "welfare_ratio",
        True,
        tolerance=1e-3,
        required=False,
        description="mean welfare / optimal welfare per auction (where the optimum is computable)",
    ),
    Metric(
        "welfare_ratio_min", True, tolerance=1e-3, required=False, description="worst auction's welfare ratio"
    ),
    Metric(
        "revenue_ratio",
        True,
        tolerance=1e-3,
        required=False,
        description="total revenue / total optimal virtual surplus (Myerson's bound on expected revenue)",
    ),
    Metric(
        "misreport_share",
        False,
        tolerance=1e-3,
        required=False,
        description="share of checked bidders with a profitable misreport on the bid grid",
    ),
    Metric(
        "misreport_gain",
        False,
        tolerance=1e-4,
        required=False,
        description="mean best utility gain from misreporting per checked bidder, value units",
    ),
    Metric("ir_violations", False, description="share of bidders with negative utility at truthful bids"),
    Metric(
        "ads_shown",
        True,
        gate=False,
        description="mean number of ads placed per auction (neither good nor bad)",
    ),
    Metric("ms_per_auction", False, gate=False, description="milliseconds to allocate and price one auction"),
)
# Alternative bids, as multiples of the bidder's value (0: stay out).
MISREPORT_GRID = (0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 1.5, 2.0)


@dataclass(kw_only=True)
class AuctionTask(Task):
    family: ClassVar[str] = "auctions"
    method_protocol: ClassVar[type] = AuctionMechanism
    metrics: ClassVar[tuple[Metric, ...]] = AUCTION_METRICS
    primary_metric: ClassVar[str] = "welfare"
    # cpu: runs took 1 s at the median (2 cores shared with other jobs)
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(expected_s=0.5),
        "cpu": Resources(expected_s=1.0),
        "paper": Resources(expected_s=120.0),
    }
    tradeoff: ClassVar[tuple[str, str] | None] = ("welfare", "revenue")

    value_distribution: Literal["uniform", "lognormal"] = "uniform"
    value_low: float = 0.0  # uniform
    value_high: float = 1.0
    value_mu: float = 0.0  # lognormal: log-values ~ N(mu, sigma^2)
    value_sigma: float = 0.5
    misreport_grid: tuple[float, ...] = MISREPORT_GRID
    misreport_instances: int = 20  # auctions whose bidders are searched for profitable misreports
    misreport_bidders: int = 0  # per searched auction, the highest-value bidders; 0: every bidder
    exact_limit: int = 100_000  # cascade users: most allocations enumerated for the exact optimum

    def prior(self) -> ValueDistribution:
        return ValueDistribution(
            self.value_distribution, self.value_low, self.value_high, self.value_mu, self.value_sigma
        )

    def load_instances(self, seed: int) -> list[Instance]:
        raise NotImplementedError

    def check_inputs(self) -> None:
        self.prior()
        if any(not math.isfinite(g) or g < 0 for g in self.misreport_grid):
            raise UserError(
                f"task '{self.name}': misreport_grid must hold non-negative multiples of the value"
            )
        for field in ("misreport_instances", "misreport_bidders", "exact_limit"):
            if getattr(self, field) < 0:
                raise UserError(f"task '{self.name}': {field} must be 0 or more, got {getattr(self, field)}")

    def run(self, method: AuctionMechanism, ctx: RunContext) -> dict[str, float]:
        self.check_inputs()
        with ctx.phase("instances"):
            instances = self.load_instances(ctx.seed)
        per_auction: dict[str, list] = {}
        with ctx.phase("auctions"):
            metrics, details = evaluate(
                method,
                instances,
                self.misreport_grid,
                self.misreport_instances,
                self.misreport_bidders,
                self.exact_limit,
                per_auction,
            )
        ctx.details.update(details)
        ctx.samples(per_auction, index="auction")
        return metrics


@dataclass(kw_only=True)
class GeneratedAuctionTask(AuctionTask):
    """Auctions drawn by the seeded generator of tasks/auctions/instances.py."""

    user_model: ClassVar[UserModel]
    scales: ClassVar[dict] = {
        "smoke": {"n_ads": 4, "n_positions": 3, "auctions": 20, "misreport_instances": 5},
        "cpu": {},
        "paper": {
            "n_ads": 50,
            "n_positions": 10,
            "auctions": 200,
            "misreport_instances": 10,
            "misreport_bidders": 10,
        },
    }

    n_ads: int = 6
    n_positions: int = 4
    auctions: int = 200  # per seed
    base_logit: float = -1.5  # mean logit of a standalone click probability
    ad_spread: float = 0.5  # std of the ads' quality, logits
    position_decay: float = 0.3  # logit lost per position further down
    context_noise: float = 1.0  # std of the (ad, position) term; 0: separable weights

    def check_inputs(self) -> None:
        super().check_inputs()
        for field in ("n_ads", "n_positions", "auctions"):
            if getattr(self, field) < 1:
                raise UserError(f"task '{self.name}': {field} must be at least 1, got {getattr(self, field)}")
        if self.ad_spread < 0 or self.context_noise < 0:
            raise UserError(f"task '{self.name}': ad_spread and context_noise must be non-negative")

    def continuation(self) -> tuple[float, float]:
        return (1.0, 1.0)

    def load_instances(self, seed: int) -> list[Instance]:
        return generate(
            np.random.default_rng([seed, 0]),
            self.auctions,
            self.n_ads,
            self.n_positions,
            self.user_model,
            self.prior(),
            self.base_logit,
            self.ad_spread,
            self.position_decay,
            self.context_noise,
            self.continuation(),
        )


@register_task("auctions/mnl")
@dataclass(kw_only=True)
class MNLAuctionTask(GeneratedAuctionTask):
    description: ClassVar[str] = "generated position auctions, MNL users (cpu: 6 ads, 4 positions)"
    user_model: ClassVar[UserModel] = "mnl"


@register_task("auctions/cascade")
@dataclass(kw_only=True)
class CascadeAuctionTask(GeneratedAuctionTask):
    description: ClassVar[str] = "generated position auctions, cascade users (cpu: 6 ads, 4 positions)"
    user_model: ClassVar[UserModel] = "cascade"

    continuation_low: float = 0.6  # continuation probabilities q_j ~ U[low, high] per position
    continuation_high: float = 0.95

    def check_inputs(self) -> None:
        super().check_inputs()
        if not 0 <= self.continuation_low <= self.continuation_high <= 1:
            raise UserError(
                f"task '{self.name}': need 0 <= continuation_low <= continuation_high <= 1, got "
                f"{self.continuation_low}, {self.continuation_high}"
            )

    def continuation(self) -> tuple[float, float]:
        return (self.continuation_low, self.continuation_high)


@register_task("auctions/file")
@dataclass(kw_only=True)
class FileAuctionTask(AuctionTask):
    """The file's auctions, the same for every seed (the mechanisms are deterministic)."""

    description: ClassVar[str] = "auctions from a local JSON or parquet file (ctr, values, continuation)"
    scales: ClassVar[dict] = {"smoke": {"misreport_instances": 5}, "cpu": {}, "paper": {}}
    local_inputs: ClassVar[tuple[str, ...]] = ("path",)  # its content, not its name, is in the run key

    path: str
    user_model: Literal["mnl", "cascade"] = "mnl"

    def check_inputs(self) -> None:
        super().check_inputs()
        read_instances(self.path, self.user_model, self.prior())

    def load_instances(self, seed: int) -> list[Instance]:
        return read_instances(self.path, self.user_model, self.prior())
