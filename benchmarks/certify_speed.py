"""Certification speed (issue 20): 10,000 test samples x 10 classes, one thread.

Prints the wall and CPU seconds of each certificate on random logits, with the machine's load average
(the wall time on a busy machine is the CPU time stretched by the load). Targets: DPA+ROE at k = 1,200
under 0.5 s; FA+ROE at k = 50, d = 16 under 1 s and at k*d = 1,200 (k = 50, d = 24) under 2 s. The
certificates are compiled numba loops (tasks.poisoning.certify); the first call compiles or loads them
from numba's cache and is not timed.
Usage: OMP_NUM_THREADS=1 python benchmarks/certify_speed.py (one thread, as the figures are quoted)
"""

from __future__ import annotations

import os
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
    fa16 = np.ascontiguousarray(logits[: 50 * 16])
    cases = (
        ("dpa k=1200", lambda: certify.dpa_certificate(logits)),
        ("dpa+roe k=1200", lambda: certify.dpa_roe_certificate(logits)),
        ("fa k=50 d=24", lambda: certify.fa_certificate(logits, partition.fa_bucket_models(50, 24))),
        ("fa+roe k=50 d=16", lambda: certify.fa_roe_certificate(fa16, partition.fa_bucket_models(50, 16))),
        ("fa+roe k=50 d=24", lambda: certify.fa_roe_certificate(logits, partition.fa_bucket_models(50, 24))),
    )
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"{samples:,} samples x {classes} classes, one thread (OMP_NUM_THREADS={threads})")
    for name, run in cases:
        run()  # compile or load the kernels
        start, cpu = time.perf_counter(), time.process_time()
        _, radius = run()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"{name:17s} wall {seconds:6.3f} s  cpu {cpu_seconds:6.3f} s  "
            f"(median radius {np.median(radius):.0f}; load average {load})"
        )


if __name__ == "__main__":
    main()
