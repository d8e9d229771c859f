"""The scoring engine: one forward pass per question, option-letter logits at the last position.

The prompt is a task parameter (tasks.mcq.prompts); by default the anchored-bias paper's
`Question: .. Answer Choices: A: x B: y .. Answer:`. The prediction is the argmax over the letter tokens
(" A", " B", ..) at the prompt's last position. Questions are sorted by length and run
in left-padded batches with an attention mask and explicit position ids (cumulative sum of the mask):
Llama-family models do not derive positions from the mask, and without them padding would shift every
real token's position. Only the last position goes through the output head (`logits_to_keep=1`).
A prompt is encoded as the model's own tokenizer does by default (`add_special_tokens=True`): SmolLM2's
and GPT-2's tokenizers add no BOS token. The anchored-bias notebook runs GPT-2 through TransformerLens,
which prepends `<|endoftext|>`; that is a setting of its library, not of the method, and is not copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import UserError
from tasks.mcq.prompts import DEFAULT_TEMPLATE, PromptTemplate
from tasks.mcq.suites import LETTERS, Question

# Called around each batch's forward pass with (rows of the batch, (batch, options) letter key positions).
BatchHook = Callable[[np.ndarray, Any], contextlib.AbstractContextManager]


def prompt(question: Question, template: PromptTemplate = DEFAULT_TEMPLATE) -> tuple[str, list[int]]:
    """The prompt text and the character offset of each option letter in it."""
    return template.render(question)


def letter_token_ids(tokenizer: Any, options: int) -> list[int]:
    """One token id per option letter: the leading-space form (" A") when it is a single token, else the
    bare letter; the two forms are never mixed within a question set."""
    for form in (" {}", "{}"):
        ids = [
            tokenizer.encode(form.format(letter), add_special_tokens=False) for letter in LETTERS[:options]
        ]
        if all(len(i) == 1 for i in ids):
            return [i[0] for i in ids]
    raise UserError(f"the tokenizer splits the option letters A..{LETTERS[options - 1]} into several tokens")


@dataclass(frozen=True)
class Encoded:
    ids: list[list[int]]
    letter_positions: np.ndarray  # (questions, options) token index of each option letter


class Scorer:
    """Letter logits of a model on a list of questions, batched; hooks may watch or alter each batch."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        options: int,
        device: str,
        batch_size: int = 16,
        template: PromptTemplate = DEFAULT_TEMPLATE,
    ) -> None:
        self.model, self.tokenizer, self.options = model, tokenizer, options
        self.device, self.batch_size, self.template = device, batch_size, template
        self.letter_ids = letter_token_ids(tokenizer, options)

    def with_model(self, model: Any) -> Scorer:
        return Scorer(model, self.tokenizer, self.options, self.device, self.batch_size, self.template)

    def encode(self, questions: Sequence[Question]) -> Encoded:
        ids, positions = [], []
        for q in questions:
            if len(q.choices) != self.options:
                raise UserError(f"a question has {len(q.choices)} options, the task expects {self.options}")
            text, letters = self.template.render(q)
            enc = self.tokenizer(text, return_offsets_mapping=True)
            offsets = enc["offset_mapping"]
            row = []
            for char in letters:
                hits = [t for t, (s, e) in enumerate(offsets) if s <= char < e]
                if not hits:
                    raise UserError(
                        f"the tokenizer maps no token to option letter {text[char]!r} of: {text[:80]}"
                    )
                row.append(hits[0])
            ids.append(list(enc["input_ids"]))
            positions.append(row)
        return Encoded(ids, np.asarray(positions, dtype=np.int64))

    def batches(self, questions: Sequence[Question]) -> Iterator[tuple[np.ndarray, dict[str, Any], Any]]:
        """(rows, model inputs, letter key positions in padded coordinates), longest questions first."""
        import torch

        encoded = self.encode(questions)
        order = np.argsort([-len(i) for i in encoded.ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encoded.ids[r]) for r in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                n = len(encoded.ids[r])
                ids[i, width - n :] = torch.tensor(encoded.ids[r])
                mask[i, width - n :] = 1
            pad = width - np.array([len(encoded.ids[r]) for r in rows])
            letters = torch.from_numpy(encoded.letter_positions[rows] + pad[:, None])
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
            yield rows, {k: v.to(self.device) for k, v in inputs.items()}, letters.to(self.device)

    def letter_logits(
        self, questions: Sequence[Question], hook: BatchHook | None = None, log_probabilities: bool = False
    ) -> np.ndarray:
        """(questions, options) logits of the option letters at each prompt's last position; with
        `log_probabilities`, their log-probabilities under the softmax over the whole vocabulary."""
        import torch

        out = np.zeros((len(questions), self.options), dtype=np.float64)
        letter_ids = torch.tensor(self.letter_ids, device=self.device)
        with torch.no_grad():
            for rows, inputs, letters in self.batches(questions):
                with hook(rows, letters) if hook else contextlib.nullcontext():
                    logits = self.model(**inputs, logits_to_keep=1).logits[:, -1]
                if log_probabilities:
                    logits = logits.float().log_softmax(dim=-1)
                out[rows] = logits[:, letter_ids].double().cpu().numpy()
        return out

    def cloze_log_likelihoods(self, questions: Sequence[Question]) -> np.ndarray:
        """(questions, options) summed log-probability of each option's text after the template's cloze
        context: the scores of `option_log_likelihoods` (same token ids), computed in batches of
        `batch_size` questions sorted by length. Per batch, the token prefix all its contexts share runs
        once; the rest of each context runs once on that cache (left-padded), and its last position gives
        every option's first token; options of two or more tokens then run on their question's cache,
        grouped by length so that nothing is padded. One pass per option would run each context k
        times and keep logits at every context position."""
        import torch

        contexts = [self.tokenizer.encode(self.template.cloze_context(q)) for q in questions]
        tails = [
            [self.tokenizer.encode(" " + c, add_special_tokens=False) for c in q.choices] for q in questions
        ]
        out = np.zeros((len(questions), len(questions[0].choices)))
        order = np.argsort([-len(c) for c in contexts], kind="stable")
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                out[rows] = self._cloze_batch([contexts[r] for r in rows], [tails[r] for r in rows])
        return out

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any, **kwargs: Any) -> Any:
        """One forward pass on top of `cache` (or none); `mask` covers the cache's tokens and the new ones."""
        if cache is not None:
            kwargs[_cache_argument(self.model)] = cache
        return self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=True,
            **kwargs,
        )

    def _cloze_batch(self, contexts: list[list[int]], tails: list[list[list[int]]]) -> np.ndarray:
        """(questions, options) cloze scores of one batch."""
        import copy

        import torch

        scores = np.zeros((len(contexts), len(tails[0])))
        # 1. The shared token prefix (each context keeps at least its last token for step 2).
        shared = min(len(c) for c in contexts) - 1
        for i in range(max(shared, 0)):
            if any(c[i] != contexts[0][i] for c in contexts):
                shared = i
                break
        shared = max(shared, 0)
        cache = None
        if shared:
            ids = torch.tensor([contexts[0][:shared]])
            output = self._forward(
                ids, torch.ones_like(ids), torch.arange(shared)[None], None, logits_to_keep=1
            )
            cache = _cache_of(output)
            cache.batch_repeat_interleave(len(contexts))
        # 2. The rest of each context, left-padded after the shared part; its last position predicts
        # every option's first token.
        width = max(len(c) - shared for c in contexts)
        ids = torch.zeros((len(contexts), width), dtype=torch.long)
        mask = torch.zeros((len(contexts), shared + width), dtype=torch.long)
        positions = torch.zeros((len(contexts), width), dtype=torch.long)
        mask[:, :shared] = 1
        for i, context in enumerate(contexts):
            n = len(context) - shared
            ids[i, width - n :] = torch.tensor(context[shared:])
            mask[i, shared + width - n :] = 1
            positions[i, width - n :] = torch.arange(shared, len(context))
        output = self._forward(ids, mask, positions, cache, logits_to_keep=1)
        cache = _cache_of(output)
        first = output.logits[:, -1].log_softmax(dim=-1).double().cpu().numpy()
        for qi, options in enumerate(tails):
            for oi, tail in enumerate(options):
                scores[qi, oi] = first[qi, tail[0]] if tail else 0.0
        # 3. Options of two or more tokens: their other tokens, on their question's cache, by length.
        cells = [
            (qi, oi) for qi, options in enumerate(tails) for oi, tail in enumerate(options) if len(tail) > 1
        ]
        for length in sorted({len(tails[qi][oi]) - 1 for qi, oi in cells}):
            group = [(qi, oi) for qi, oi in cells if len(tails[qi][oi]) - 1 == length]
            rows = torch.tensor([qi for qi, _ in group])
            tokens = torch.tensor([tails[qi][oi] for qi, oi in group])  # (rows, length + 1)
            group_cache = copy.deepcopy(cache)
            group_cache.batch_select_indices(rows.to(self.device))
            group_mask = torch.cat([mask[rows], torch.ones((len(group), length), dtype=torch.long)], dim=1)
            starts = torch.tensor([len(contexts[qi]) for qi, _ in group])
            logits = self._forward(
                tokens[:, :-1], group_mask, starts[:, None] + torch.arange(length)[None], group_cache
            ).logits
            rest = logits.log_softmax(dim=-1).gather(2, tokens[:, 1:, None].to(logits.device))[:, :, 0]
            for (qi, oi), value in zip(group, rest.sum(dim=1).double().cpu().numpy(), strict=True):
                scores[qi, oi] += value
        return scores


def _cache_of(output: Any) -> Any:
    return output.cache if "cache" in output else output.past_key_values


def _cache_argument(model: Any) -> str:
    """The forward argument taking a key/value cache: `cache` in transformers 5, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def option_log_likelihoods(
    model: Any,
    tokenizer: Any,
    questions: Sequence[Question],
    device: str,
    template: PromptTemplate = DEFAULT_TEMPLATE,
) -> np.ndarray:
    """(questions, options) summed log-probability of each option's text after the template's cloze
    context (`Question: .. Answer:` by default), one forward pass per option: the usual cloze scoring, the
    reference `Scorer.cloze_log_likelihoods` (batched, the cloze method's) is checked and timed against."""
    import torch

    options = len(questions[0].choices)
    out = np.zeros((len(questions), options))
    with torch.no_grad():
        for qi, q in enumerate(questions):
            context = tokenizer.encode(template.cloze_context(q))
            for oi, choice in enumerate(q.choices):
                tail = tokenizer.encode(" " + choice, add_special_tokens=False)
                ids = torch.tensor([context + tail], device=device)
                logp = model(input_ids=ids).logits[0, :-1].log_softmax(dim=-1)
                targets = ids[0, len(context) :]
                out[qi, oi] = float(logp[len(context) - 1 :].gather(1, targets[:, None]).sum())
    return out
