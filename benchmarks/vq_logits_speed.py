"""VQ-Logits speed (LM issue): V = 50,257, d = 768, 4,096 positions, K = 1,024, on this machine.

Prints, for the full head and the VQ head, the forward logit computation, forward+backward of the loss,
and the loss computed the fast way (log-sum-exp over codes weighted by their token mass), in ms, with
the ratios. The logits forward is timed at each thread count of --threads (default 1 and 2), full and
VQ alternating in one process, with the machine's load average; VQ both into a (V, N) buffer reused across
calls and into a fresh tensor (whose page faults the buffer spares), against the two-pass torch gather it
replaced (index_select, then the bias add). Usage: python benchmarks/vq_logits_speed.py [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from tasks.lm.heads import FullHead, VQLogitsHead

V, D, N, K = 50_257, 768, 4_096, 1_024


def best_ms(fn, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def two_pass_logits(head: VQLogitsHead, h: torch.Tensor) -> torch.Tensor:
    """The gather before issue 20: index_select into a fresh (V, N) tensor, then the bias added in place."""
    scattered = (head.codebook @ h.T).index_select(0, head.mapping)
    scattered += head.bias[:, None]
    return scattered.T


def logits_forward(full: FullHead, vq: VQLogitsHead, h: torch.Tensor, rounds: int = 3) -> None:
    """Full and VQ logits alternating (best of `rounds` each), so both see the same machine load."""
    buffer = torch.empty(V, N)
    runs = {
        "full": lambda: full.logits(h),
        "vq, reused buffer": lambda: vq.logits(h, out=buffer),
        "vq, fresh output": lambda: vq.logits(h),
        "vq, two-pass (before)": lambda: two_pass_logits(vq, h),
    }
    best = dict.fromkeys(runs, float("inf"))
    for run in runs.values():
        run()  # warm-up (and the kernel's compile or cache load)
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], 1000 * (time.perf_counter() - start))
    line = "  ".join(
        f"{name} {ms:7.1f} ms ({best['full'] / ms:4.1f}x)" for name, ms in best.items() if name != "full"
    )
    print(f"logits forward, {torch.get_num_threads()} thread(s): full {best['full']:7.1f} ms  {line}")
    print(f"  load average while measuring: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.manual_seed(0)
    full = FullHead(D, V)
    vq = VQLogitsHead(torch.randn(K, D) * D**-0.5, torch.randint(K, (V,)), token_bias=True)
    h = torch.randn(N, D, requires_grad=True)
    y = torch.randint(V, (N,))
    print(f"V={V:,} d={D} positions={N:,} K={K:,}")
    with torch.no_grad():
        for threads in args.threads:
            torch.set_num_threads(threads)
            logits_forward(full, vq, h)
    torch.set_num_threads(args.threads[-1])

    def backward(head, loss_of):  # type: ignore[no-untyped-def]
        def run() -> None:
            head.zero_grad(set_to_none=True)
            h.grad = None
            loss_of(head).mean().backward()

        return run

    with torch.no_grad():
        loss_full = best_ms(lambda: full.nll(h, y))
        loss_vq_fast = best_ms(lambda: vq.nll(h, y))
        loss_vq_naive = best_ms(lambda: torch.nn.functional.cross_entropy(vq.logits(h), y, reduction="none"))
    fb_full = best_ms(backward(full, lambda m: m.nll(h, y)))
    fb_vq = best_ms(backward(vq, lambda m: m.nll(h, y)))
    print(f"losses at {args.threads[-1]} thread(s) (load average {load()}):")
    print(
        f"loss forward:          full {loss_full:8.1f} ms   vq {loss_vq_fast:8.1f} ms   speed-up "
        f"{loss_full / loss_vq_fast:5.1f}x   (vq through V-sized logits: {loss_vq_naive:.1f} ms)"
    )
    print(
        f"loss forward+backward: full {fb_full:8.1f} ms   vq {fb_vq:8.1f} ms   "
        f"speed-up {fb_full / fb_vq:5.1f}x"
    )
    print(
        f"head parameters:       full {full.parameter_count():,}   vq {vq.parameter_count():,} "
        f"({100 * (1 - vq.parameter_count() / full.parameter_count()):.1f}% fewer)"
    )


if __name__ == "__main__":
    main()
