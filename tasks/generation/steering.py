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

How the score is computed (the same score, fewer output heads): a log-probability is the logit less the
row's log-normaliser, a constant of the row that the final log-softmax removes, so the score is the
log-softmax of (1 + g) z_expert - g z_base - e z_negative on raw logits z. And the output head is linear:
when the base's head is the expert's (tied embeddings the fine-tuning left alone, as in the embedded
artifact), g z_base + e z_negative = W (g h_base + e h_negative) + (g + e) b, one 49,152-wide matmul for the
two extra streams instead of two (`folded_score`). Equal to `steer_scores` on the three log-probabilities
up to float rounding (tests/test_generation.py checks it). When that head is also the expert's own, the
processor puts a `FusedHead` in the expert's place for the length of `generate`: the extra streams run
inside the expert's forward pass, once its decoder is done, and the main stream's logits and the extra ones
come out of one matmul over twice the rows (cheaper than two at batch 16); `close()` puts the head back.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.functional import log_softmax
from transformers import LogitsProcessor

from tasks.generation.streams import CachedStream, LayerTap, TopLayersStream, decoder_stack, output_head


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


def same_head(one: torch.nn.Linear, other: torch.nn.Linear) -> bool:
    """Whether two output heads compute the same logits (the same weights and biases, bit for bit)."""
    if one is other:
        return True
    if (one.bias is None) != (other.bias is None):
        return False
    same_bias = one.bias is None or torch.equal(one.bias, other.bias)  # type: ignore[arg-type]
    return same_bias and torch.equal(one.weight, other.weight)


def head_logits(terms: list[tuple[float, torch.Tensor, torch.nn.Linear]]) -> torch.Tensor:
    """sum_i w_i head_i(h_i) over (weight w_i, hidden (rows, width), head_i) terms, with one matmul for the
    terms that share one head object (make equal heads one object first: `same_head`)."""
    total: torch.Tensor | None = None
    groups: list[tuple[torch.nn.Linear, torch.Tensor, float]] = []
    for weight, hidden, head in terms:
        for index, (seen, mixed, weights) in enumerate(groups):
            if seen is head:
                groups[index] = (seen, mixed + weight * hidden, weights + weight)
                break
        else:
            groups.append((head, weight * hidden, weight))
    for head, mixed, weights in groups:
        logits = torch.nn.functional.linear(mixed, head.weight)
        if head.bias is not None:
            logits = logits + weights * head.bias
        total = logits if total is None else total + logits
    return total.float()  # type: ignore[union-attr]


def folded_score(
    expert_logits: torch.Tensor, g: float, e: float, extra: list[tuple[float, torch.Tensor, torch.nn.Linear]]
) -> torch.Tensor:
    """The renormalised STEER score from the expert's raw logits and the extra streams' (weight, hidden,
    head) terms (weight g for the base, e for the negative stream): log_softmax((1 + g) z_expert -
    sum weight * head(hidden))."""
    if not extra:  # plain sampling, computed as it always was (the expert's tokens stay bit for bit)
        return steer_scores(log_softmax(expert_logits.float(), dim=-1), None, None, 0.0, 0.0)
    return _score(expert_logits, g, head_logits(extra))


def _score(expert_logits: torch.Tensor, g: float, extra_logits: torch.Tensor) -> torch.Tensor:
    return log_softmax((1.0 + g) * expert_logits.float() - extra_logits.float(), dim=-1)


class FusedHead(torch.nn.Module):
    """Stands in for the expert's output head while STEER decodes, when the extra streams' heads are the
    expert's own (no bias): the step's extra streams run first (their inputs, the main stream's new tokens
    and its tapped hidden state, are known once the expert's decoder is done), and one matmul over the
    main stream's last hidden states and the streams' mixture g h_base + e h_negative gives the expert's
    logits (returned to `generate`; equal to the head's own up to float rounding, bit for bit at batch 16
    and 32 on MKL) and the extra logits (kept for the processor), where there were two matmuls of half the
    rows (at batch 16: 47 ms for the one, 2 x 33 ms for the two, one thread)."""

    def __init__(self, head: torch.nn.Linear, processor: SteerProcessor) -> None:
        super().__init__()
        self.head = head
        self.processor = processor  # not a submodule: a plain attribute
        self.tokens: torch.Tensor | None = None  # the input_ids of the expert's forward pass under way

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        tokens, self.tokens = self.tokens, None
        if tokens is None or hidden.ndim != 3 or hidden.shape[1] != 1:
            return self.head(hidden)  # not a last-position step of generate: the plain head
        extra = self.processor._advance(tokens)
        mixture = sum(weight * state for weight, state, _ in extra)
        rows = hidden.shape[0]
        both = torch.nn.functional.linear(torch.cat([hidden[:, 0], mixture]), self.head.weight)  # type: ignore[list-item]
        self.processor._pending = both[rows:]
        return both[:rows].unsqueeze(1)


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
        # the extra streams' output heads, equal ones made one object so that their matmuls fold into one
        self.base_head = output_head(base) if g else None
        self.negative_head = output_head(negative.model) if e else None  # type: ignore[union-attr]
        both = self.base_head is not None and self.negative_head is not None
        if both and same_head(self.base_head, self.negative_head):  # type: ignore[arg-type]
            self.negative_head = self.base_head
        # The streams' last hidden states, kept for inspection (tests compare them with plain passes).
        self.last_base_hidden_: torch.Tensor | None = None
        self.last_negative_hidden_: torch.Tensor | None = None
        self._pending: torch.Tensor | None = None  # this step's extra logits, from the fused head
        self._fused: tuple[Any, str, torch.nn.Linear, Any] | None = None
        if expert is not None and (g or e):
            self._install_fused_head(expert)

    def _install_fused_head(self, expert: Any) -> None:
        """Put a FusedHead in place of the expert's head when every extra stream's head is that head."""
        head = expert.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear) or head.bias is not None:
            return
        heads = [h for h in (self.base_head, self.negative_head) if h is not None]
        if not all(h is head or same_head(h, head) for h in heads):
            return
        name = next((n for n, module in expert.named_children() if module is head), None)
        if name is None:
            return
        self.base_head = head if self.base_head is not None else None
        self.negative_head = head if self.negative_head is not None else None
        fused = FusedHead(head, self)

        def see_inputs(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            fused.tokens = kwargs.get("input_ids", args[0] if args else None)

        hook = expert.register_forward_pre_hook(see_inputs, with_kwargs=True)
        setattr(expert, name, fused)
        self._fused = (expert, name, head, hook)

    @property
    def last_base_(self) -> torch.Tensor | None:
        """The base stream's last next-token log-probabilities (None before the first step or if g = 0)."""
        return _logprobs(self.base_head, self.last_base_hidden_)

    @property
    def last_negative_(self) -> torch.Tensor | None:
        """The negative stream's last next-token log-probabilities (None before the first step or if
        e = 0)."""
        return _logprobs(self.negative_head, self.last_negative_hidden_)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._pending is not None:  # the fused head computed this step's extra logits already
            extra_logits, self._pending = self._pending, None
            return _score(scores, self.g, extra_logits).to(scores.dtype)  # type: ignore[return-value]
        extra = self._advance(input_ids)
        return folded_score(scores, self.g, self.e, extra).to(scores.dtype)  # type: ignore[arg-type]

    def _advance(self, tokens: torch.Tensor) -> list[tuple[float, torch.Tensor, torch.nn.Linear]]:
        """Run the extra streams one step; `tokens` is the prompt on the first step, else ends with each
        row's new token. Returns the (weight, hidden state, head) terms of the streams that run."""
        if self.prompt_length is None:  # first step: tokens are the prompt
            self.prompt_length = tokens.shape[1]
            new = None
            if self.g and self.tap is None:
                self.base = CachedStream(self.base_model, tokens, torch.ones_like(tokens))
            elif self.g:
                self.base = TopLayersStream(self.base_model, self.shared_layers)
        else:
            new = tokens[:, -1]
        if isinstance(self.base, TopLayersStream):
            hidden = self.tap.take()  # type: ignore[union-attr]
            if hidden.shape[:2] != (tokens.shape[0], 1 if new is not None else tokens.shape[1]):
                raise RuntimeError(
                    f"the expert's tapped hidden state {tuple(hidden.shape)} is not this step's "
                    f"{tuple(tokens.shape)}: the processor must run on the expert's own `generate`"
                )
            base = self.base.next_hidden(hidden)
        else:
            base = self.base.next_hidden(new) if self.base is not None else None
        negative = self.negative.next_hidden(new) if self.e else None  # type: ignore[union-attr]
        if self.tap is not None:
            self.tap.value = None  # the negative stream ran the expert too: keep only the main stream's
        self.last_base_hidden_, self.last_negative_hidden_ = base, negative
        streams = ((self.g, base, self.base_head), (self.e, negative, self.negative_head))
        return [(weight, hidden, head) for weight, hidden, head in streams if weight]

    def close(self) -> None:
        """Remove the hooks on the expert and give it back its own head (a no-op without them)."""
        if self.tap is not None:
            self.tap.close()
        if self._fused is not None:
            expert, name, head, hook = self._fused
            setattr(expert, name, head)
            hook.remove()
            self._fused = None

    def __enter__(self) -> SteerProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _logprobs(head: torch.nn.Linear | None, hidden: torch.Tensor | None) -> torch.Tensor | None:
    return None if head is None or hidden is None else log_softmax(head(hidden).float(), dim=-1)
