"""MCQ tasks: a question suite, a causal LM and the letter prompt; a method fits on the calibration split
and gives option probabilities on the test split.

The prompt is a parameter (`prompt`, `prompt_option`; see tasks.mcq.prompts), defaulting to the anchored-bias
paper's prompt byte for byte. Adding these parameters changed every MCQ run's key, so earlier records are
recomputed once; their results, and the committed baselines (kept by task and method), are unchanged.
`mcq/file` with `shuffle: false` keeps the file's question and option order, so each question can be
compared with another harness's score of it.

Methods that edit weights also get a logit-lens curve (each layer's mean anchoring score on the test
questions, before and after the edit) and their edit description kept in the run's record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.errors import UserError
from harness.health import HEALTH_METRIC, report_health
from harness.registries import register_task
from tasks.mcq.metrics import MAX_OPTIONS, MCQ_METRICS, mcq_metrics
from tasks.mcq.prompts import DEFAULT_PROMPT, PromptTemplate, prompt_template
from tasks.mcq.protocol import MCQMethod
from tasks.mcq.scoring import Scorer
from tasks.mcq.suites import LETTERS, OFFLINE_SUITES, Split, check_sizes, in_order, split

SMOKE = {"calibration": 8, "test": 12, "lens_questions": 8}
CPU = {"calibration": 60, "test": 160, "lens_questions": 80}
PAPER = {"model": "gpt2", "calibration": 200, "test": 1000, "lens_questions": 300}


@dataclass(kw_only=True)
class MCQTask(Task):
    local_inputs: ClassVar[tuple[str, ...]] = ("model",)
    family: ClassVar[str] = "mcq"
    method_protocol: ClassVar[type] = MCQMethod
    metrics: ClassVar[tuple[Metric, ...]] = (*MCQ_METRICS, HEALTH_METRIC)
    primary_metric: ClassVar[str] = "accuracy"
    tradeoff: ClassVar[tuple[str, str] | None] = ("anchored_rate", "accuracy")
    scales: ClassVar[dict] = {"smoke": SMOKE, "cpu": CPU, "paper": PAPER}
    # estimates (no cpu-scale record yet): a 135M model scoring 220 questions on a core; paper: a GPU each
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(expected_s=10.0),
        "cpu": Resources(memory_gb=2.0, expected_s=90.0),
        "paper": Resources(cpus=2.0, gpus=1, memory_gb=8.0, expected_s=900.0),
    }

    model: str = "smollm2-135m"  # the asset, a local checkpoint folder, or a hub id (gpt2, gpt2-medium, ..)
    options: int = 4
    calibration: int = 60  # questions a method may fit on
    test: int = 160
    batch_size: int = 16
    lens_questions: int = 80  # test questions the before/after logit-lens curve averages over (0: none)
    prompt: str = DEFAULT_PROMPT  # a template name (anchored-bias, newlines) or a {question}/{choices} layout
    prompt_option: str = ""  # each option's format, with {letter} and {choice} (empty: the template's)

    def split(self, seed: int) -> Split:
        raise NotImplementedError

    def template(self) -> PromptTemplate:
        """The prompt the parameters name; a UserError naming the parameter when they name none."""
        if not 2 <= self.options <= MAX_OPTIONS:
            raise UserError(f"parameter 'options' must be 2 to {MAX_OPTIONS}, got {self.options}")
        return prompt_template(self.prompt, self.prompt_option)

    def check_inputs(self) -> None:
        self.template()
        check_sizes(self.calibration, self.test)  # the generated suites split only in their runs

    def artifact_keys(self, method: MCQMethod, seed: int, scale: str) -> tuple[str, ...]:
        from tasks import causal_lm

        return causal_lm.artifact_keys((self.model,), (self, method))

    def run(self, method: MCQMethod, ctx: RunContext) -> dict[str, float]:
        from tasks.causal_lm import load

        try:
            template = self.template()
        except UserError as err:
            raise UserError(f"task '{self.name}': {err}") from None
        with ctx.phase("load"):
            data = self.split(ctx.seed)  # first: a bad source fails before the model is loaded
            model, tokenizer = load(self.model, ctx.artifacts, ctx.device)
        scorer = Scorer(model, tokenizer, self.options, ctx.device, self.batch_size, template)
        with ctx.phase("fit"):
            method.fit(scorer, data.calibration)
        with ctx.phase("evaluate"):
            start = time.perf_counter()
            probabilities = method.probabilities(scorer, data.test)
            seconds = time.perf_counter() - start
        gold = np.array([q.answer for q in data.test])
        table = np.asarray(probabilities)
        predicted = table.argmax(axis=1)
        ctx.samples(
            {
                "question_id": np.arange(len(gold)),  # the question's place in the seed's test split
                "gold": [LETTERS[g] for g in gold],
                "prediction": [LETTERS[p] for p in predicted],
                "correct": predicted == gold,
                **{f"p_{LETTERS[i]}": table[:, i] for i in range(table.shape[1])},
                "question": [q.question for q in data.test],
            },
            index="question_id",
            prediction="prediction",
            label="gold",
        )
        values = mcq_metrics(probabilities, gold)
        values["questions_per_second"] = len(gold) / max(seconds, 1e-9)
        values[HEALTH_METRIC.name] = report_health(ctx, np.asarray(probabilities).argmax(axis=1), gold)
        if method.edits_ is not None:
            ctx.details["edits"] = method.edits_
        if self.lens_questions and method.edited_scorer_ is not None:
            with ctx.phase("lens"):
                ctx.details["curves"] = {"logit_lens": self._lens(scorer, method, data)}
        return values

    def _lens(self, base: Scorer, method: MCQMethod, data: Split) -> dict:
        """Each layer's mean anchoring score on the first test questions, before and after the edit (an
        attention swap runs towards the gold letter there, as the paper evaluates it)."""
        from tasks.mcq.anatomy import anatomy
        from tasks.mcq.lens import layer_curve, trace

        questions = data.test[: self.lens_questions]
        gold = np.array([q.answer for q in questions])
        series = {}
        for label, scorer, around in (
            ("before", base, None),
            ("after", method.edited_scorer_, method.lens_hook(gold)),
        ):
            body = anatomy(scorer.model)
            series[label] = layer_curve(body, scorer, trace(scorer, body, questions, around), gold)
        return {
            "title": f"{self.model}: anchoring score per layer",
            "x": "layer",
            "y": 'mean lens(" A") - lens(gold) of the MLP output, gold not A',
            "series": series,
        }


def _offline_task(suite: str, default_options: int) -> type[MCQTask]:
    _, about = OFFLINE_SUITES[suite]

    @dataclass(kw_only=True)
    class OfflineMCQTask(MCQTask):
        description: ClassVar[str] = f"{about}; generated offline, gold positions balanced"
        options: int = default_options

        def split(self, seed: int) -> Split:
            from tasks.mcq.suites import offline_split

            return offline_split(suite, self.options, self.calibration, self.test, seed)

    OfflineMCQTask.__name__ = OfflineMCQTask.__qualname__ = f"{suite.title()}MCQTask"
    return register_task(f"mcq/{suite}")(OfflineMCQTask)


OFFLINE_TASKS = {suite: _offline_task(suite, 2 if suite == "ioi" else 4) for suite in OFFLINE_SUITES}


def _hub_task(key: str, default_options: int) -> type[MCQTask]:
    from tasks.mcq.sources import HUB_SETS

    hub = HUB_SETS[key]

    @dataclass(kw_only=True)
    class HubMCQTask(MCQTask):
        local_inputs: ClassVar[tuple[str, ...]] = ("source",)
        offline: ClassVar[bool] = False
        description: ClassVar[str] = (
            f"{hub.hub_id} ({hub.split} split), {default_options}-option questions; gold positions rebalanced"
        )
        options: int = default_options
        source: str = hub.hub_id  # or a local file / folder in the same schema

        def split(self, seed: int) -> Split:
            from tasks.mcq.sources import load_questions

            return _split_loaded(load_questions(self.source, hub), self, seed)

    HubMCQTask.__name__ = HubMCQTask.__qualname__ = f"{key.title().replace('-', '')}MCQTask"
    return register_task(f"mcq/{key}")(HubMCQTask)


def _split_loaded(questions: list, task: MCQTask, seed: int) -> Split:  # type: ignore[type-arg]
    """Questions with the task's option count, split by the seed with gold positions rebalanced."""
    kept = _with_options(questions, task)
    return split(kept, task.calibration, task.test, np.random.default_rng([seed, 7919]))


def _with_options(questions: list, task: MCQTask) -> list:  # type: ignore[type-arg]
    """The questions with the task's option count, in their order."""
    kept = [q for q in questions if len(q.choices) == task.options]
    if not kept:
        counts = sorted({len(q.choices) for q in questions})
        raise UserError(f"task '{task.name}': no question has {task.options} options (found {counts})")
    return kept


HUB_TASKS = {key: _hub_task(key, 5 if key == "commonsense-qa" else 4) for key in (
    "mmlu", "arc-challenge", "arc-easy", "commonsense-qa", "openbookqa", "hellaswag"
)}  # fmt: skip


@register_task("mcq/file")
@dataclass(kw_only=True)
class FileMCQTask(MCQTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("path",)
    description: ClassVar[str] = "any local JSONL / CSV / parquet file with question, choices, answer"
    path: str
    shuffle: bool = True  # False: the file's question and option order (first ones calibrate)

    def split(self, seed: int) -> Split:
        from tasks.mcq.sources import load_questions

        questions = load_questions(self.path)
        if self.shuffle:
            return _split_loaded(questions, self, seed)
        return in_order(_with_options(questions, self), self.calibration, self.test)

    def check_inputs(self) -> None:
        super().check_inputs()
        self.split(0)  # reads and checks every row, no model: a bad row or too few questions fails now
