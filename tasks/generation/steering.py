"""STEER's score as a transformers `LogitsProcessor`: expert guidance and negative prompting.

At each step, for the prefix x<t generated so far (after the task's prompt):

    score = (1 + g) * log p_expert(. | prompt, x<t) - g * log p_base(. | prompt, x<t)
            - e * log p_expert(. | negative prompt, x<t)

renormalised (log-softmax), then `generate` keeps the top k = 10 and samples. g = e = 0 is plain sampling
from the expert (the processor only normalises). Followed: the official code, charlieoneill11/diverse-llm
`main/steer.py` (commit 74d2e77) and `main/inference.py` (commit 7fee60b): the main stream is the
expert's own logits (`generate` runs on the expert); the base stream reads the prompt and the generated
tokens; the negative stream reads the negative prompt (k pool examples joined by spaces) followed by the
generated tokens only, not the task's prompt, as the official `uncond` stream does; sampling is
`do_sample=True, top_k=10, renormalize_logits=True`. Where the official code recomputes the expert and base
on the whole prefix at every step without a cache and for batch row 0 only, both extra streams here keep
their own KV cache (tasks/generation/streams.py) and every row of a batch is its own sample. A stream whose
weight is 0 is never run. When the expert shares its bottom decoder layers with the base (`shared_layers`,
the embedded expert artifact trains only the top ones), the base stream starts from the main stream's own
hidden state after them (`TopLayersStream`); it gives the same log-probabilities as the full pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.functional import log_softmax
from transformers import LogitsProcessor

from tasks.generation.streams import CachedStream, LayerTap, TopLayersStream, decoder_stack


def steer_scores(
    expert: torch.Tensor,
    base: torch.Tensor | None,
    negative: torch.Tensor | None,
    g: float,
    e: float,
) -> torch.Tensor:
    """The renormalised STEER score from three (rows, vocab) log-probability tensors (a stream with
    weight 0 may be None)."""
    score = (1.0 + g) * expert
    if g:
        score = score - g * base  # type: ignore[operator]
    if e:
        score = score - e * negative  # type: ignore[operator]
    return log_softmax(score, dim=-1)


class SteerProcessor(LogitsProcessor):
    """The STEER score over `generate`'s expert logits. `base` is the base model (read on the same prompt
    as the main stream); `negative` a CachedStream of the expert over the rows' negative prompts.

    With `expert` and `shared_layers` > 0 (the expert's bottom layers are the base's, bit for bit), the
    base stream reuses the main stream's hidden state after them: a hook on the expert keeps it, so call
    `close()` (or use the processor as a context manager) once `generate` is done."""

    def __init__(
        self,
        g: float,
        e: float,
        base: Any = None,
        negative: CachedStream | None = None,
        expert: Any = None,
        shared_layers: int = 0,
    ) -> None:
        if g and base is None:
            raise ValueError("expert guidance (g != 0) needs the base model")
        if e and negative is None:
            raise ValueError("negative prompting (e != 0) needs a negative-prompt stream")
        self.g, self.e = g, e
        self.base_model, self.negative = base, negative
        self.base: CachedStream | TopLayersStream | None = None
        self.tap: LayerTap | None = None
        if g and expert is not None and shared_layers > 0:
            self.tap = LayerTap(decoder_stack(expert)[shared_layers - 1])  # type: ignore[index]
            self.shared_layers = shared_layers
        self.prompt_length: int | None = None
        # The streams' last log-probabilities, kept for inspection (tests compare them with plain passes).
        self.last_base_: torch.Tensor | None = None
        self.last_negative_: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        expert = log_softmax(scores.float(), dim=-1)
        if self.prompt_length is None:  # first step: input_ids is the prompt
            self.prompt_length = input_ids.shape[1]
            new = None
            if self.g and self.tap is None:
                self.base = CachedStream(self.base_model, input_ids, torch.ones_like(input_ids))
            elif self.g:
                self.base = TopLayersStream(self.base_model, self.shared_layers)
        else:
            new = input_ids[:, -1]
        if isinstance(self.base, TopLayersStream):
            hidden = self.tap.take()  # type: ignore[union-attr]
            if hidden.shape[:2] != (input_ids.shape[0], 1 if new is not None else input_ids.shape[1]):
                raise RuntimeError(
                    f"the expert's tapped hidden state {tuple(hidden.shape)} is not this step's "
                    f"{tuple(input_ids.shape)}: the processor must run on the expert's own `generate`"
                )
            base = self.base.next_logprobs(hidden)
        else:
            base = self.base.next_logprobs(new) if self.base is not None else None
        negative = self.negative.next_logprobs(new) if self.e else None  # type: ignore[union-attr]
        if self.tap is not None:
            self.tap.value = None  # the negative stream ran the expert too: keep only the main stream's
        self.last_base_, self.last_negative_ = base, negative
        return steer_scores(expert, base, negative, self.g, self.e).to(scores.dtype)

    def close(self) -> None:
        """Remove the hook on the expert (a no-op without one)."""
        if self.tap is not None:
            self.tap.close()

    def __enter__(self) -> SteerProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
