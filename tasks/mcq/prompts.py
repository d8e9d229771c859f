"""How a question becomes the prompt the model reads: named templates, or a free format string.

A template has a `layout` with the placeholders {question} and {choices}, and an `option` format with
{letter} and {choice}, written once per option and concatenated into {choices}. Rendering keeps each
option letter's character offset, since the edits and the logit lens act on the letter tokens.

Named templates (the task parameter `prompt`):
- `anchored-bias`, the default: the anchored-bias paper's one-line prompt,
  `Question: Q Answer Choices: A: x B: y Answer:`, byte for byte the prompt of every earlier run;
- `newlines`: `Question: Q\\nA. x\\nB. y\\nAnswer:`, the layout lm-eval-style harnesses use.
Any other value of `prompt` is a free layout with {question} and {choices} exactly once each; its options
are written with `prompt_option` (default `{letter}. {choice}\\n`). `{question}\\n{choices}Answer:` is
lm-eval's MMLU prompt. Literal braces are doubled ({{ and }}). A named template takes `prompt_option` too.
The cloze method scores option texts after the template's `cloze` context (the layout without choices for
a free layout).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from harness.errors import UserError
from tasks.mcq.suites import LETTERS, Question

LAYOUT_FIELDS = ("question", "choices")
OPTION_FIELDS = ("letter", "choice")
FREE_OPTION = "{letter}. {choice}\n"


@dataclass(frozen=True)
class PromptTemplate:
    layout: str  # with {question} and {choices}
    option: str  # with {letter} and {choice}, one per option, concatenated
    cloze: str = ""  # with {question}: the context cloze scoring continues; empty: layout without choices

    def render(self, question: Question) -> tuple[str, list[int]]:
        """The prompt text and the character offset of each option letter in it."""
        choices, offsets = "", []
        for letter, choice in zip(LETTERS, question.choices, strict=False):
            text, starts = _fill(self.option, {"letter": letter, "choice": choice})
            offsets.append(len(choices) + starts["letter"])
            choices += text
        text, starts = _fill(self.layout, {"question": question.question, "choices": choices})
        return text, [starts["choices"] + offset for offset in offsets]

    def cloze_context(self, question: Question) -> str:
        if self.cloze:
            return _fill(self.cloze, {"question": question.question})[0]
        return _fill(self.layout, {"question": question.question, "choices": ""})[0]


TEMPLATES = {
    "anchored-bias": PromptTemplate(
        "Question: {question} Answer Choices:{choices} Answer:",
        " {letter}: {choice}",
        "Question: {question} Answer:",
    ),
    "newlines": PromptTemplate(
        "Question: {question}\n{choices}Answer:", "{letter}. {choice}\n", "Question: {question}\nAnswer:"
    ),
}
DEFAULT_PROMPT = "anchored-bias"
DEFAULT_TEMPLATE = TEMPLATES[DEFAULT_PROMPT]


def prompt_template(prompt: str, option: str = "") -> PromptTemplate:
    """The template a task's `prompt` and `prompt_option` parameters name; a UserError naming the
    parameter for an unknown name or a bad placeholder."""
    if prompt in TEMPLATES:
        base = TEMPLATES[prompt]
    elif "{" in prompt:
        _check(prompt, LAYOUT_FIELDS, "prompt")
        base = PromptTemplate(prompt, FREE_OPTION)
    else:
        raise UserError(
            f"parameter 'prompt': {prompt!r} is neither a template ({', '.join(TEMPLATES)}) nor a format "
            "string with {question} and {choices}"
        )
    if not option:
        return base
    _check(option, OPTION_FIELDS, "prompt_option")
    return PromptTemplate(base.layout, option, base.cloze)


def _check(fmt: str, required: tuple[str, ...], parameter: str) -> None:
    expected = " and ".join("{" + name + "}" for name in required)
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as err:
        raise UserError(
            f"parameter '{parameter}': {fmt!r} is not a format string ({err}); it needs {expected}, "
            "and literal braces are written {{ and }}"
        ) from None
    fields = [field for _, field, _, _ in parsed if field is not None]
    for _, field, spec, conversion in parsed:
        if field is not None and field not in required:
            raise UserError(
                f"parameter '{parameter}': unknown placeholder {{{field}}} in {fmt!r}; it takes {expected} "
                "(literal braces are written {{ and }})"
            )
        if field is not None and (spec or conversion):
            raise UserError(
                f"parameter '{parameter}': placeholder {{{field}}} takes no format spec or conversion"
            )
    for name in required:
        if fields.count(name) != 1:
            raise UserError(
                f"parameter '{parameter}': {fmt!r} has {{{name}}} {fields.count(name)} times; "
                f"expected {expected} once each"
            )


def _fill(fmt: str, values: dict[str, str]) -> tuple[str, dict[str, int]]:
    """`fmt` with its placeholders replaced (values are inserted, never formatted, so braces in a question
    stay as they are), and where each placeholder's value starts in the result."""
    text, starts = "", {}
    for literal, field, _, _ in string.Formatter().parse(fmt):
        text += literal
        if field is not None:
            starts[field] = len(text)
            text += values[field]
    return text, starts
