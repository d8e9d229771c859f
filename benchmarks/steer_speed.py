"""STEER's decoding speed against plain sampling from the expert, and the expert's fine-tuning time.

Both decode the same prompt through `generate` with top-k 10, the same batch and exactly the same number
of new tokens (EOS is held back until the last step), on the real SmolLM2-135M pair of the
generation/rotten-tomatoes task (cpu settings), through the task's own path (`Models.of`, the method's
processor). STEER runs three streams a step (the expert's, the base's and the expert's on the negative
prompts, which it reads first), so the goal is at least 1/3 of plain sampling's tokens per second. The
fine-tuning time is the expert artifact's own record (built when the results folder has none yet), or,
with `--build`, a fresh build into a temporary artifact folder timed here (goal: at most 600 s).
One torch thread; the 1-minute load average is printed beside every figure, since other processes on the
cores slow both several times over: `python benchmarks/steer_speed.py [--batch 16] [--build]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per row")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", default=os.environ.get("LOGITBENCH_RESULTS", "logitbench-results"))
    parser.add_argument("--build", action="store_true", help="time a fresh fine-tuning of the expert too")
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    from harness.artifacts import ArtifactCache
    from harness.context import RunContext
    from harness.registries import METHODS, TASKS
    from tasks.causal_lm import load
    from tasks.generation.decoding import NegativePool
    from tasks.generation.expert import training_subset
    from tasks.generation.protocol import Models
    from tasks.generation.streams import CachedStream, left_padded

    torch.set_num_threads(1)
    task = TASKS.get("generation/rotten-tomatoes")()
    artifacts = Path(args.results) / "artifacts"
    ctx = RunContext(0, "cpu", 1, ArtifactCache(artifacts))
    data = task.domain()
    train = training_subset(data.train, task.finetune_examples)
    base, tokenizer = load(task.base, ctx.artifacts, "cpu")
    expert, _ = task.expert_model(ctx, task.the_prompt(), train, tokenizer)
    models = Models.of(base, expert)
    eos = tokenizer.eos_token_id
    config = GenerationConfig(
        do_sample=True, top_k=10, max_new_tokens=args.tokens, min_new_tokens=args.tokens,
        renormalize_logits=True, eos_token_id=eos, pad_token_id=eos,
    )  # fmt: skip
    prompt = tokenizer(task.the_prompt(), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt] * args.batch)
    pool = NegativePool(train)
    rng = np.random.default_rng(0)

    def decode(method_name: str) -> tuple[float, float]:
        """(tokens per wall second, tokens per CPU second of this process)."""
        method = METHODS.get(method_name)()
        negative = None
        start, cpu_start = time.perf_counter(), time.process_time()
        if k := method.negatives():
            rows = [tokenizer(pool.prompt(k, rng), add_special_tokens=False)["input_ids"] for _ in ids]
            negative = CachedStream(expert, *left_padded(rows, eos, "cpu"))
        processor = method.processor(models, negative)
        with torch.no_grad():
            out = expert.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                logits_processor=LogitsProcessorList([processor]),
            )  # fmt: skip
        processor.close()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        assert out.shape[1] - ids.shape[1] == args.tokens
        return args.batch * args.tokens / seconds, args.batch * args.tokens / cpu_seconds

    decode("expert")  # warm-up
    load_before = load_average()
    # The two alternate, so both see the same load; the figures are each one's best, and the ratio is
    # the median over the adjacent pairs (less at the mercy of a burst on the shared cores than a ratio
    # of bests taken minutes apart). Beside wall time, the process's CPU time (one thread): other
    # processes on the cores slow it too (shared caches, hyperthreads), but less than the wall clock.
    runs: dict[str, list[tuple[float, float]]] = {"expert": [], "steer": []}
    for _ in range(args.repeats):
        for name, speeds in runs.items():
            speeds.append(decode(name))
    speeds = {name: max(v[0] for v in values) for name, values in runs.items()}
    cpu_speeds = {name: max(v[1] for v in values) for name, values in runs.items()}
    pairs = list(zip(runs["expert"], runs["steer"], strict=True))
    ratio = float(np.median([s[0] / e[0] for e, s in pairs]))
    cpu_ratio = float(np.median([s[1] / e[1] for e, s in pairs]))
    print(
        f"SmolLM2-135M pair, batch {args.batch}, {args.tokens} new tokens, top-k 10, torch threads 1, "
        f"load average {load_before:.2f} -> {load_average():.2f}; base and expert share "
        f"{models.shared_layers} of {len(base.model.layers)} decoder layers"
    )
    print(
        f"expert sampling        {speeds['expert']:8.1f} tokens/s    {cpu_speeds['expert']:8.1f} tokens/CPU-s"
    )
    print(
        f"steer (g=e=0.2, k=5)   {speeds['steer']:8.1f} tokens/s    {cpu_speeds['steer']:8.1f} tokens/CPU-s"
        f"   ratio {ratio:.3f} wall, {cpu_ratio:.3f} CPU (medians of {args.repeats} adjacent pairs; "
        "goal >= 0.33)"
    )

    folder = ctx.artifacts.path("generation-expert", task.expert_identity(task.the_prompt(), train))
    meta = json_of(folder / "meta.json")
    scratch = None
    if args.build:
        scratch = Path(tempfile.mkdtemp(prefix="steer-speed-"))
        converted = artifacts / "causal-lm-converted"  # the base checkpoint, reused, not rebuilt
        (scratch / converted.name).symlink_to(converted.resolve(), target_is_directory=True)
        fresh = RunContext(0, "cpu", 1, ArtifactCache(scratch))
        task.expert_model(fresh, task.the_prompt(), train, tokenizer)
        identity = task.expert_identity(task.the_prompt(), train)
        meta = json_of(fresh.artifacts.path("generation-expert", identity) / "meta.json")
    loads = meta.get("load_average")
    under = f"load average {loads[0]:.2f} -> {loads[1]:.2f}" if loads else "load not recorded"
    print(
        f"expert fine-tuning     {meta['seconds']:8.0f} s ({'built now' if args.build else 'as recorded'}, "
        f"{under}, torch threads {meta.get('torch_threads', '?')}; {meta['examples']} examples, "
        f"top {task.finetune_layers} layers, {task.finetune_epochs} epoch; goal <= 600 s)"
    )
    if scratch is not None:
        shutil.rmtree(scratch)


def json_of(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
