"""The exit path's own cost: batch-1 wall time of a plain forward against `full-depth` run through the
early-exit hooks (issue 20's target: a ratio of at least 0.98), on the real MiniLM-L6 asset and real
Rotten Tomatoes test sentences, with the same `_timing` code that gives the `wall_speedup` metric. The
heads are untrained (timing does not depend on their weights). One torch thread; the machine's load is
printed beside the figure, since a busy core slows both paths unevenly.

    python benchmarks/early_exit_overhead.py [--examples 200] [--repeats 5] [--methods full-depth,pabee]
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
import torch

from harness.registries import METHODS, TASKS
from tasks.early_exit import backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", default="full-depth,pabee")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    task = TASKS.get("early_exit/rotten-tomatoes")(timing_examples=args.examples)
    test = task.sets()["test"]
    encoder, tokenizer = backbone.load(task.model, "cpu")
    encoder.eval()
    layers, hidden = backbone.layer_count(encoder), encoder.config.hidden_size
    print(f"MiniLM-L6 ({layers} layers), batch 1, {args.examples} test sentences, 1 thread")
    for name in args.methods.split(","):
        method = METHODS.get(name)()
        modules = method.make_modules(hidden, layers, test.classes).eval()
        through = backbone.pooler(encoder) if method.uses_pooler else None
        uniforms = torch.rand(layers, len(test.labels))
        exits = torch.full((len(test.labels),), layers - 1)
        ratios = []
        for _ in range(args.repeats):
            ratio, _ = task._timing(
                encoder, tokenizer, modules, method, test, uniforms, exits, through, _Ctx()
            )
            ratios.append(ratio)
        load = os.getloadavg()[0]
        shown = ", ".join(f"{r:.3f}" for r in ratios)
        median = statistics.median(ratios)
        print(f"{name}: plain forward / exit path = {median:.3f} (median; {shown}), load {load:.1f}")


class _Ctx:
    device = "cpu"


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
