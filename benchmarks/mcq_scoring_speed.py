"""MCQ scoring engine speed (MCQ issue): questions per second on SmolLM2-135M on this CPU.

The engine (one left-padded, batched forward pass per question, letter logits at the last position)
against the usual per-option log-likelihood loop (one pass per option, summed log-probabilities of the
option's text), on the same generated 4-option questions; and the batched cloze scoring (the cloze
method's: each context once, its key/value cache shared by the options) against that loop, the two
alternating chunk by chunk so that both see the same machine load, with the largest score difference and
the load average. Also prints both scorings' accuracy: the letter format versus cloze scoring of the
option texts shows the anchoring the mcq methods address.
Usage: python benchmarks/mcq_scoring_speed.py [--threads 1] [--questions 64] [--suite capitals]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from harness.artifacts import ArtifactCache
from harness.store import default_results_dir
from tasks.causal_lm import load
from tasks.mcq.scoring import Scorer, option_log_likelihoods
from tasks.mcq.suites import offline_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--suite", default="capitals")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="smollm2-135m")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    artifacts = default_results_dir() / "artifacts"
    if not artifacts.parent.exists():
        artifacts = tempfile.mkdtemp(prefix="lb-bench-")
    model, tokenizer = load(args.model, ArtifactCache(artifacts), "cpu")
    questions = offline_split(args.suite, 4, 0, args.questions, seed=0).test
    gold = np.array([q.answer for q in questions])
    scorer = Scorer(model, tokenizer, 4, "cpu", args.batch_size)
    scorer.letter_logits(questions[:4])  # warm-up

    start = time.perf_counter()
    letters = scorer.letter_logits(questions)
    engine = time.perf_counter() - start
    scorer.cloze_log_likelihoods(questions[:4])  # warm-up
    cloze, batched = np.zeros((len(questions), 4)), np.zeros((len(questions), 4))
    loop = batched_seconds = 0.0
    chunk = args.batch_size
    for lo in range(0, len(questions), chunk):  # alternate, so both see the same load
        part = questions[lo : lo + chunk]
        start = time.perf_counter()
        cloze[lo : lo + chunk] = option_log_likelihoods(model, tokenizer, part, "cpu")
        loop += time.perf_counter() - start
        start = time.perf_counter()
        batched[lo : lo + chunk] = scorer.cloze_log_likelihoods(part)
        batched_seconds += time.perf_counter() - start
    load_average = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    n = len(questions)
    print(f"model {args.model}, {n} {args.suite} questions, 4 options, {args.threads} thread(s)")
    print(f"engine (batch {args.batch_size}, one pass a question): {n / engine:7.2f} questions/s")
    print(f"per-option log-likelihood loop (4 passes a question): {n / loop:7.2f} questions/s")
    print(f"speed-up: {loop / engine:.2f}x")
    print(
        f"cloze batched (batch {args.batch_size} questions, shared context cache): "
        f"{n / batched_seconds:7.2f} questions/s, {loop / batched_seconds:.2f}x the loop; "
        f"largest score difference {float(np.abs(batched - cloze).max()):.1e}"
    )
    print(f"load average after measuring: {load_average}")
    print(
        f"accuracy: letter format {float((letters.argmax(1) == gold).mean()):.3f} "
        f"(answers 'A' {float((letters.argmax(1) == 0).mean()):.3f}); "
        f"cloze over option texts {float((cloze.argmax(1) == gold).mean()):.3f}"
    )


if __name__ == "__main__":
    main()
