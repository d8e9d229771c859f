"""VQ-Logits speed (LM issue): V = 50,257, d = 768, 4,096 positions, K = 1,024, on this machine.

Prints, for the full head and the VQ head, the forward logit computation, forward+backward of the loss,
and the loss computed the fast way (log-sum-exp over codes weighted by their token mass), in ms, with
the ratios. Usage: python benchmarks/vq_logits_speed.py [--threads N]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    full = FullHead(D, V)
    vq = VQLogitsHead(torch.randn(K, D) * D**-0.5, torch.randint(K, (V,)), token_bias=True)
    h = torch.randn(N, D, requires_grad=True)
    y = torch.randint(V, (N,))

    def backward(head, loss_of):  # type: ignore[no-untyped-def]
        def run() -> None:
            head.zero_grad(set_to_none=True)
            h.grad = None
            loss_of(head).mean().backward()

        return run

    with torch.no_grad():
        fwd_full, fwd_vq = best_ms(lambda: full.logits(h)), best_ms(lambda: vq.logits(h))
        loss_full = best_ms(lambda: full.nll(h, y))
        loss_vq_fast = best_ms(lambda: vq.nll(h, y))
        loss_vq_naive = best_ms(lambda: torch.nn.functional.cross_entropy(vq.logits(h), y, reduction="none"))
    fb_full = best_ms(backward(full, lambda m: m.nll(h, y)))
    fb_vq = best_ms(backward(vq, lambda m: m.nll(h, y)))
    print(f"V={V:,} d={D} positions={N:,} K={K:,} threads={args.threads}")
    print(
        f"logits forward:        full {fwd_full:8.1f} ms   vq {fwd_vq:8.1f} ms   "
        f"speed-up {fwd_full / fwd_vq:5.1f}x"
    )
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
