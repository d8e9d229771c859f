"""Hopular's fit time and memory on this CPU, one torch thread.

1. breast_cancer (569 rows, 30 features): fit seconds at the `cpu` setting on a stratified 80% (455 rows;
   20% of those held out for picking the epoch) and accuracy and log loss on the other 20%.
2. Peak memory of a fit at 2,500 / 5,000 / 10,000 rows (20 features, 2 classes, 2 epochs of the `cpu`
   setting, one of `paper`'s 8 blocks and 8 heads; each in a fresh process, ru_maxrss): the
   sample-sample lookup is N x M (M ~ N) a head in time; in memory the
   association matrix is held a chunk of queries at a time (`max_lookup_entries`, 2**24 entries by
   default) and recomputed in the backward pass, so memory grows with N times the feature width, not N^2.
   The row with `max_lookup_entries=0` is one unchunked lookup, the N^2 term the chunking removes.

    python benchmarks/hopular_fit.py [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

MEMORY_PROBE = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from sklearn.datasets import make_classification
from methods.tabular.hopular import HopularMethod
rows, entries, setting, epochs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)
est = HopularMethod(setting=setting, epochs=epochs, validation_fraction=0.0).make_estimator(0, 2)
est.set_params(max_lookup_entries=entries)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
est.fit(X, y)
print(json.dumps({"seconds": time.perf_counter() - start, "peak_mib": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mib": before / 1024}))
"""


def breast_cancer() -> None:
    import numpy as np
    import torch
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import log_loss
    from sklearn.model_selection import train_test_split

    from methods.tabular.hopular import HopularMethod

    torch.set_num_threads(1)
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    for seed in (0, 1, 2):
        est = HopularMethod(setting="cpu").make_estimator(seed, 2)
        start = time.perf_counter()
        est.fit(Xtr, ytr)
        seconds = time.perf_counter() - start
        proba = est.predict_proba(Xte)
        accuracy = float(np.mean(proba.argmax(1) == yte))
        print(
            f"breast_cancer cpu setting, seed {seed}, 1 thread: fit {seconds:.1f} s on {len(ytr)} rows, "
            f"accuracy {accuracy:.4f}, log loss {log_loss(yte, proba):.4f} on {len(yte)} rows"
        )


def memory() -> None:
    runs = [(2500, 2**24, "cpu", 2), (5000, 2**24, "cpu", 2), (10000, 2**24, "cpu", 2), (10000, 0, "cpu", 2)]
    runs += [(10000, 2**24, "paper", 1)]
    for rows, entries, setting, epochs in runs:
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, str(rows), str(entries), setting, str(epochs)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        label = "unchunked" if entries == 0 else f"chunks of {entries} entries"
        print(
            f"{rows:>6} rows, {setting} setting, {label}: peak RSS {result['peak_mib']:.0f} MiB "
            f"(imports {result['before_mib']:.0f} MiB), {epochs} epoch(s) {result['seconds']:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    breast_cancer()
    if not args.skip_memory:
        memory()


if __name__ == "__main__":
    main()
