"""Certification speed (poisoning issue): 10,000 test samples x 1,200 models x 10 classes.

Prints the wall seconds of each aggregation and certificate on random logits (target: at most 2 s for
DPA and DPA+ROE). FA's certificates are timed at k*d = 1,200 too (k = 50, d = 24).
Usage: OMP_NUM_THREADS=1 python benchmarks/certify_speed.py (one thread, as the figures are quoted)
"""

from __future__ import annotations

import time

import numpy as np

from tasks.poisoning import certify, partition


def main() -> None:
    rng = np.random.default_rng(0)
    samples, models, classes = 10_000, 1_200, 10
    # Models that mostly agree, as trained ones do: a per-sample favourite class plus noise.
    favourite = rng.integers(0, classes, size=samples)
    logits = rng.normal(size=(models, samples, classes)).astype(np.float32)
    logits[:, np.arange(samples), favourite] += 1.5
    bucket_models = partition.fa_bucket_models(50, 24)
    for name, run in (
        ("dpa", lambda: certify.dpa_certificate(logits)),
        ("dpa+roe", lambda: certify.dpa_roe_certificate(logits)),
        ("fa", lambda: certify.fa_certificate(logits, bucket_models)),
        ("fa+roe", lambda: certify.fa_roe_certificate(logits, bucket_models)),
    ):
        start = time.perf_counter()
        _, radius = run()
        seconds = time.perf_counter() - start
        print(
            f"{name:8s} {samples:,} samples x {models:,} models x {classes} classes: {seconds:.2f} s "
            f"(median radius {np.median(radius):.0f})"
        )


if __name__ == "__main__":
    main()
