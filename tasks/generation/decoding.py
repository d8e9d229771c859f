"""Batched sampling through `generate` with a method's logits processor, and the growing negative pool.

The pool starts as the training examples (never a held-out one) and every output joins it once its batch
is done, as in the official STEERPipeline, which samples one output at a time and appends each to its
`running_examples`; with `batch_size` 1 this is that loop, larger batches add their outputs together.
Each row's negative prompt is k distinct pool examples joined by spaces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tasks.generation.protocol import GenerationMethod, Models
from tasks.generation.streams import CachedStream, left_padded


class NegativePool:
    def __init__(self, examples: list[str]) -> None:
        if not examples:
            raise ValueError("the negative pool needs at least one example")
        self.examples = list(examples)

    def prompt(self, k: int, rng: np.random.Generator) -> str:
        """k distinct pool examples (all of them when the pool is smaller), joined by spaces."""
        picked = rng.choice(len(self.examples), size=min(k, len(self.examples)), replace=False)
        return " ".join(self.examples[i] for i in picked)

    def add(self, outputs: list[str]) -> None:
        self.examples.extend(o for o in outputs if o)


@dataclass
class Samples:
    texts: list[str]
    tokens: int  # generated tokens, up to and including each row's EOS
    seconds: float  # wall time of the generation (every stream, the negative prompts' reading included)
    negative_prompts: list[str]


def first_line(text: str) -> str:
    """An output is one example: the text before its first line break."""
    return text.strip().split("\n", 1)[0].strip()


@torch.no_grad()
def sample(
    method: GenerationMethod,
    models: Models,
    tokenizer: Any,
    prompt: str,
    pool: NegativePool,
    count: int,
    batch_size: int,
    max_new_tokens: int,
    top_k: int,
    seed: int,
    device: str,
) -> Samples:
    """`count` outputs of `method`, `batch_size` rows at a time, sampled with torch seeded by `seed`."""
    from transformers import GenerationConfig, LogitsProcessorList

    model = models.base if method.sampler == "base" else models.expert
    eos = tokenizer.eos_token_id
    config = GenerationConfig(
        do_sample=True,
        top_k=top_k,
        top_p=1.0,
        temperature=1.0,
        max_new_tokens=max_new_tokens,
        renormalize_logits=True,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    rng = np.random.default_rng([seed, 11])
    torch.manual_seed(seed)
    texts: list[str] = []
    negatives: list[str] = []
    tokens, seconds = 0, 0.0
    k = method.negatives()
    while len(texts) < count:
        rows = min(batch_size, count - len(texts))
        start = time.perf_counter()
        negative = None
        if k:
            batch_negatives = [pool.prompt(k, rng) for _ in range(rows)]
            negatives += batch_negatives
            encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] or [eos] for t in batch_negatives]
            negative = CachedStream(models.expert, *left_padded(encoded, eos, device))
        ids = torch.tensor([prompt_ids] * rows, dtype=torch.long, device=device)
        processor = method.processor(models, negative)
        try:
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                logits_processor=LogitsProcessorList([processor]),
            )
        finally:
            getattr(processor, "close", lambda: None)()  # a processor's hooks on the models go
        seconds += time.perf_counter() - start
        generated = out[:, ids.shape[1] :].tolist()
        outputs = []
        for row in generated:
            length = row.index(eos) + 1 if eos in row else len(row)
            tokens += length
            outputs.append(first_line(tokenizer.decode(row[:length], skip_special_tokens=True)))
        texts += outputs
        pool.add(outputs)
    return Samples(texts, tokens, seconds, negatives)
