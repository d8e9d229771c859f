"""Hopular (Schäfl et al. 2022, "Hopular: Modern Hopfield Networks for Tabular Data").

Followed: the official code ml-jku/hopular at commit 3e0c39fdc59568349373af573ee52c03305ca105 --
`hopular/blocks.py` (embedding, Hopfield and Hopular blocks, loss, annealing, optimiser set-up),
`hopular/optim.py` (LAMB, Lookahead, delayed cosine schedule), `hopular/auxiliary/data.py` (masking,
memory, standardisation) and `hopular/interactive.py` (the defaults). Where `../shared/papers.md` and the
code differ, the code wins: the sample lookup's head size splits the sample state evenly (CLI
`hidden_size=0`, not 32), the output dropout is 0.01, and the feature-loss weight and the learning rate
follow a cosine over a 10,000-epoch cycle of which 5,000 epochs run, so the weight goes 1 -> 0.5, not to 0.
Lookahead runs asynchronously (one step, alpha 0.005): its slow weights are a moving average of the fast
ones and are what is validated and kept. The network, encoding and training loop are in
`hopular_network.py` and `hopular_classifier.py`, LAMB and Lookahead in `hopular_optim.py`.

Settings. `paper` is the official configuration (8 blocks, 8 heads, 32 dims a feature, 5,000 full-batch
epochs); on a CPU that is hours a fit (breast_cancer: about 4.6 s an epoch on one thread), so it is for a
GPU. `cpu` keeps the architecture and the schedules' shapes at a size two cores run in minutes: 1 block,
2 heads of 8 dims, 8 dims a feature, 150 epochs of a 300-epoch cycle (both cosines still end halfway),
the learning rate 20x (LAMB's step is relative to each weight's norm, so fewer steps need larger ones),
Lookahead's alpha 0.15 so its average spans the same share of training (about 4%), and no dropout on
the association weights (drawing those masks was a third of an epoch's time). Each hyperparameter is a
parameter: left unset (None) it takes the setting's value, set it overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from harness.registries import register_method
from tasks.tabular.protocol import TabularMethod

PAPER = {
    "feature_size": 32,
    "hidden_size": 0,  # 0: heads split the state evenly (F*E // heads for samples, E // heads for features)
    "num_heads": 8,
    "num_blocks": 8,
    "scaling_factor": 1.0,
    "input_dropout": 0.1,
    "lookup_dropout": 0.1,
    "output_dropout": 0.01,
    "memory_ratio": 1.0,
    "mask_probability": 0.025,
    "replace_probability": 0.175,
    "initial_feature_loss_weight": 1.0,
    "final_feature_loss_weight": 0.0,
    "learning_rate": 1e-3,
    "weight_decay": 0.1,
    "lookahead_steps": 1,
    "lookahead_alpha": 0.005,
    "epochs": 5000,
    "cycle_epochs": 10000,
    "gradient_clip": 1.0,
    "validation_fraction": 0.2,
    "validation_every": 10,
}
CPU = {
    **PAPER,
    "feature_size": 8,
    "hidden_size": 8,
    "num_heads": 2,
    "num_blocks": 1,
    "lookup_dropout": 0.0,
    "learning_rate": 0.02,
    "lookahead_alpha": 0.15,
    "epochs": 150,
    "cycle_epochs": 300,
}
SETTINGS = {"paper": PAPER, "cpu": CPU}


@register_method("hopular")
@dataclass(kw_only=True)
class HopularMethod(TabularMethod):
    categories_native: ClassVar[bool] = True
    paper_sized: ClassVar[bool] = True  # its defaults need a GPU: `families:` adds it at paper scale only
    check_params: ClassVar[dict[str, Any]] = {"setting": "cpu"}

    setting: Literal["paper", "cpu"] = "paper"
    feature_size: int | None = None  # dims a feature is embedded in
    hidden_size: int | None = None  # dims a head (0: split evenly)
    num_heads: int | None = None
    num_blocks: int | None = None
    scaling_factor: float | None = None  # beta = scaling_factor / sqrt(head dims)
    input_dropout: float | None = None
    lookup_dropout: float | None = None  # on the association weights
    output_dropout: float | None = None
    memory_ratio: float | None = None  # share of the training rows each training step may look up
    mask_probability: float | None = None
    replace_probability: float | None = None
    initial_feature_loss_weight: float | None = None
    final_feature_loss_weight: float | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    lookahead_steps: int | None = None
    lookahead_alpha: float | None = None
    epochs: int | None = None  # full-batch steps
    cycle_epochs: int | None = None  # period of the cosine schedules
    gradient_clip: float | None = None  # max gradient norm (0: none)
    validation_fraction: float | None = None  # rows held out to pick the best epoch (0: keep the last)
    validation_every: int | None = None

    def hyperparameters(self) -> dict[str, Any]:
        """The setting's values with the parameters that were set laid over them."""
        chosen = {k: v for k, v in self.params().items() if k != "setting" and v is not None}
        return {**SETTINGS[self.setting], **chosen}

    def make_estimator(self, seed: int, n_classes: int) -> Any:
        from methods.tabular.hopular_classifier import HopularClassifier

        return HopularClassifier(**self.hyperparameters(), random_state=seed)
