"""Milliseconds per auction of every auction mechanism at n = 50 ads, m = 10 positions.

One auction is an allocation and the prices of every ad at truthful bids, as the auctions tasks time
it. Instances come from the auctions/mnl and auctions/cascade generators (seed 0); each mechanism is
timed on the users it was built for (and on the other user model too: GSP and separable VCG ignore
it). Goal: under 50 ms for the exact MNL welfare mechanism. Run with one thread:
`OMP_NUM_THREADS=1 python benchmarks/auction_speed.py [--auctions 20]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from harness.registries import METHODS, TASKS
from tasks.auctions.evaluation import outcome

MECHANISMS = ("gsp", "vcg-separable", "mnl-welfare", "mnl-revenue", "cascade-greedy", "cascade-dp")
GOAL_MS = {"mnl-welfare": 50.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--auctions", type=int, default=20, help="auctions timed per mechanism and user model"
    )
    parser.add_argument("--ads", type=int, default=50)
    parser.add_argument("--positions", type=int, default=10)
    args = parser.parse_args()
    print(
        f"n = {args.ads} ads, m = {args.positions} positions, {args.auctions} auctions, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; median (max) ms per auction"
    )
    print(f"{'mechanism':<16}{'mnl users':>20}{'cascade users':>20}")
    for name in MECHANISMS:
        mechanism = METHODS.get(name)()
        cells = []
        for users in ("mnl", "cascade"):
            task = TASKS.get(f"auctions/{users}")(
                n_ads=args.ads, n_positions=args.positions, auctions=args.auctions
            )
            times = []
            for instance in task.load_instances(0):
                start = time.perf_counter()
                outcome(mechanism, instance, instance.values, range(instance.setting.n_ads))
                times.append(1000.0 * (time.perf_counter() - start))
            cells.append(f"{statistics.median(times):.2f} ({max(times):.2f})")
        goal = f"   goal < {GOAL_MS[name]:.0f} ms" if name in GOAL_MS else ""
        print(f"{name:<16}{cells[0]:>20}{cells[1]:>20}{goal}")


if __name__ == "__main__":
    main()
