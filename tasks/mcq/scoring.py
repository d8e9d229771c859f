"""The scoring engine: one forward pass per question, option-letter logits at the last position.

The prompt is a task parameter (tasks.mcq.prompts); by default the anchored-bias paper's
`Question: .. Answer Choices: A: x B: y .. Answer:`. The prediction is the argmax over the letter tokens
(" A", " B", ..) at the prompt's last position. Questions are sorted by length and run
in left-padded batches with an attention mask and explicit position ids (cumulative sum of the mask):
Llama-family models do not derive positions from the mask, and without them padding would shift every
real token's position. Only the last position goes through the output head (`logits_to_keep=1`).
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

    def letter_logits(self, questions: Sequence[Question], hook: BatchHook | None = None) -> np.ndarray:
        """(questions, options) logits of the option letters at each prompt's last position."""
        import torch

        out = np.zeros((len(questions), self.options), dtype=np.float64)
        letter_ids = torch.tensor(self.letter_ids, device=self.device)
        with torch.no_grad():
            for rows, inputs, letters in self.batches(questions):
                with hook(rows, letters) if hook else contextlib.nullcontext():
                    logits = self.model(**inputs, logits_to_keep=1).logits[:, -1]
                out[rows] = logits[:, letter_ids].double().cpu().numpy()
        return out


def option_log_likelihoods(
    model: Any,
    tokenizer: Any,
    questions: Sequence[Question],
    device: str,
    template: PromptTemplate = DEFAULT_TEMPLATE,
) -> np.ndarray:
    """(questions, options) summed log-probability of each option's text after the template's cloze
    context (`Question: .. Answer:` by default), one forward pass per option: the usual cloze scoring, the
    baseline the engine's speed is compared to."""
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
