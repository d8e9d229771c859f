"""PonderNet (Banino et al., 2021) and PALBERT (Balagansky & Gavrilov, 2022) on an encoder's layers.

Both learn a halting probability lambda_i per layer and train with sum_i p_i CE_i + beta KL(prior || p).
PonderNet's lambda head is one linear layer on the layer's state and exits by sampling Bernoulli(lambda_i);
PALBERT's reads the layer's and the previous layer's states (each plus a learned layer embedding) through
three Linear+Tanh layers, and exits deterministically where the exit distribution's CDF passes a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.lazy import lazy_module
from harness.registries import register_method
from tasks.early_exit.protocol import EarlyExitMethod

torch = lazy_module("torch")
nn = lazy_module("torch.nn")


@register_method("pondernet")
@dataclass(kw_only=True)
class PonderNet(EarlyExitMethod):
    beta: float = 0.5
    prior_rate: float = 0.1

    def make_modules(self, hidden, layers, classes):  # type: ignore[no-untyped-def]
        modules = super().make_modules(hidden, layers, classes)
        modules["halting"] = nn.Linear(hidden, 1)
        return modules

    def lambdas(self, states, modules):  # type: ignore[no-untyped-def]
        """(layers, batch) halting probabilities from states (layers + 1, batch, hidden)."""
        return torch.sigmoid(modules["halting"](states[1:])).squeeze(-1)

    def loss(self, logits, states, modules, labels):  # type: ignore[no-untyped-def]
        from tasks.early_exit.ponder import ponder_loss

        return ponder_loss(logits, self.lambdas(states, modules), labels, self.beta, self.prior_rate)

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        return uniforms[-1] < self.lambdas(states, modules)[-1]


@register_method("palbert")
@dataclass(kw_only=True)
class PALBERT(PonderNet):
    exit_params = ("threshold",)
    threshold: float = 0.5  # Q-exit at the median of the exit distribution

    def make_modules(self, hidden, layers, classes):  # type: ignore[no-untyped-def]
        modules = EarlyExitMethod.make_modules(self, hidden, layers, classes)
        stack = []
        for i in range(3):
            stack += [nn.Linear(2 * hidden if i == 0 else hidden, hidden), nn.Tanh()]
        modules["halting"] = nn.Sequential(*stack, nn.Linear(hidden, 1))
        modules["layer_embedding"] = nn.Embedding(layers + 1, hidden)
        return modules

    def lambdas(self, states, modules):  # type: ignore[no-untyped-def]
        positions = modules["layer_embedding"].weight[: len(states), None, :]
        placed = states + positions
        return torch.sigmoid(modules["halting"](torch.cat([placed[1:], placed[:-1]], dim=-1))).squeeze(-1)

    def exits_at(self, logits, states, modules, uniforms):  # type: ignore[no-untyped-def]
        from tasks.early_exit.ponder import q_exit

        total = len(modules["classifiers"])
        return q_exit(self.lambdas(states, modules), self.threshold, total)
