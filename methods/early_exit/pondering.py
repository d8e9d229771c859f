"""PonderNet (Banino et al., 2021) and PALBERT (Balagansky & Gavrilov, 2022) on an encoder's layers.

Followed: tinkoff-ai/palbert at 52a79af319aa963d27bca22083cf3fe81ccaabee, `src/modeling/palbert_fast.py`
(`PAlbertModel`, `PAlbertForSequenceClassification`, `LambdaLayer`), `src/loss.py` and the README's two
commands (PALBERT: `--lambda-layer-arch linear_cat --num-lambda-layers 3`; PonderNet with ALBERT:
`--lambda-layer-arch linear --num-lambda-layers 1 --exit-criteria sample`), both `--beta 0.5` with the
default `--lambda-p 0.1`, epsilon 0.05 and `--classifier_dropout 0.1`. Where `../shared/papers.md` is vaguer,
this code is the reference.

Both are the official pondering model: each layer's state goes through the backbone's pooler (ALBERT's
tanh pooler; BERT's likewise) and one classifier shared by every layer, both behind dropout 0.1 in
training; a halting head gives lambda_i = sigmoid(head(dropout(x_i))); the loss and exit distribution are
`tasks.early_exit.ponder`'s, and a training forward stops once the whole batch has passed 1 - eps.
- PonderNet: x_i is the layer's pooled state, the head one Linear(h, 1); exit by sampling Bernoulli(lambda_i).
- PALBERT: x_i = [s_i ; s_{i-1}] with zeros for s_0 before the first layer, the head 3 x [Linear(2h, 2h) +
  Tanh] + Linear(2h, 1); s_i is the pooled state, plus a learned layer embedding only with
  `layer_embedding` (off in the README's command; initialised N(0, 0.02) as ALBERT's initializer_range
  would); Q-exit where the CDF first passes `threshold`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.early_exit.protocol import EarlyExitMethod, LayerByLayerLoss

torch = lazy_module("torch")
nn = lazy_module("torch.nn")


@register_method("pondernet")
@dataclass(kw_only=True)
class PonderNet(EarlyExitMethod):
    version: ClassVar[str] = "2"  # the official distribution, prior, 1 - eps stop, pooler, shared classifier
    uses_pooler: ClassVar[bool] = True
    beta: float = 0.5
    prior_rate: float = 0.1
    eps: float = 0.05
    dropout: float = 0.1

    def make_modules(self, hidden, layers, classes):  # type: ignore[no-untyped-def]
        shared = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(hidden, classes))
        return nn.ModuleDict(
            {
                "classifiers": nn.ModuleList([shared] * layers),
                "halting": nn.Sequential(nn.Dropout(self.dropout), *self.halting_layers(hidden)),
            }
        )

    def halting_layers(self, hidden: int) -> list:
        return [nn.Linear(hidden, 1)]

    def halting_input(self, state, previous, layer: int, modules):  # type: ignore[no-untyped-def]
        """The halting head's input at 0-based `layer` and the `previous` the next layer will see."""
        return state, None

    def halting_logits(self, states, modules):  # type: ignore[no-untyped-def]
        """(layers, batch) halting logits from states (layers + 1, batch, hidden), embeddings first."""
        rows, previous = [], None
        for layer, state in enumerate(states[1:]):
            x, previous = self.halting_input(state, previous, layer, modules)
            rows.append(modules["halting"](x).squeeze(-1))
        return torch.stack(rows)

    def loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        from tasks.early_exit.ponder import ponder_loss

        return ponder_loss(
            logits, self.halting_logits(states, modules), labels, self.beta, self.prior_rate, self.eps
        )

    def layer_by_layer(self, modules, labels, layers):  # type: ignore[no-untyped-def]
        return _PonderPass(self, modules, labels, layers)

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        return uniforms[-1] < torch.sigmoid(self.halting_logits(states, modules)[-1])


@register_method("palbert")
@dataclass(kw_only=True)
class PALBERT(PonderNet):
    version: ClassVar[str] = "2"  # as pondernet, and the official lambda head without layer embedding
    exit_params = ("threshold",)
    threshold: float = 0.5  # Q-exit at the median of the exit distribution
    layer_embedding: bool = False

    def make_modules(self, hidden, layers, classes):  # type: ignore[no-untyped-def]
        modules = super().make_modules(hidden, layers, classes)
        if self.layer_embedding:
            embedding = nn.Embedding(layers, hidden)
            nn.init.normal_(embedding.weight, std=0.02)
            modules["layer_embedding"] = embedding
        return modules

    def halting_layers(self, hidden: int) -> list:
        stack: list = []
        for _ in range(3):
            stack += [nn.Linear(2 * hidden, 2 * hidden), nn.Tanh()]
        return [*stack, nn.Linear(2 * hidden, 1)]

    def halting_input(self, state, previous, layer: int, modules):  # type: ignore[no-untyped-def]
        if self.layer_embedding:
            state = state + modules["layer_embedding"].weight[layer]
        previous = torch.zeros_like(state) if previous is None else previous
        return torch.cat([state, previous], dim=-1), state

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        from tasks.early_exit.ponder import q_exit

        return q_exit(self.halting_logits(states, modules), self.threshold)


class _PonderPass(LayerByLayerLoss):
    """The official training forward: each layer's halting logit as it comes, stopping once the whole
    batch has passed 1 - eps; the loss is `ponder_loss` on the layers computed."""

    def __init__(self, method: PonderNet, modules, labels, layers: int) -> None:  # type: ignore[no-untyped-def]
        from tasks.early_exit.ponder import TruncatedExit

        self.method, self.modules, self.labels, self.layers = method, modules, labels, layers
        self.exits = TruncatedExit(layers, method.eps)
        self.logits: list = []
        self.halting: list = []
        self.previous = None

    def add(self, logits, state) -> bool:  # type: ignore[no-untyped-def]
        x, self.previous = self.method.halting_input(state, self.previous, len(self.halting), self.modules)
        halting = self.modules["halting"](x).squeeze(-1)
        self.exits.add(halting)
        self.logits.append(logits)
        self.halting.append(halting)
        return self.exits.passed()

    def total(self):  # type: ignore[no-untyped-def]
        from tasks.early_exit.ponder import ponder_loss

        m = self.method
        return ponder_loss(
            torch.stack(self.logits),
            torch.stack(self.halting),
            self.labels,
            m.beta,
            m.prior_rate,
            m.eps,
            total_layers=self.layers,
        )
