"""Hopular as a scikit-learn classifier: encoding, BERT-style masking, the full-batch training loop.

Followed: ml-jku/hopular at commit 3e0c39f (`hopular/blocks.py` Hopular.training_step, on_train_epoch_end,
configure_optimizers; `hopular/auxiliary/data.py` DataModule.scale_and_noise_collate and setup;
`hopular/interactive.py` for the defaults, which are this class's).

- Encoding: numeric features standardised with the training mean and (unbiased) std, categorical ones
  coded by their sorted training values; the target is the last categorical feature.
- Masking, every training step, independently per entry: with `mask_probability` (0.025) the entry is
  masked (value zeroed, mask bit set), with `replace_probability` (0.175) replaced by a random draw
  (a standard normal for a numeric feature, a uniform category for a categorical one), else kept. The
  target is always masked. The loss reads every non-missing entry (the official `noise_probability` is
  1.0): the mean over features of per-feature MSE or cross-entropy, and the target's cross-entropy.
- Loss `a * L_features + (1 - a) * L_target`; `a` and the learning rate follow the same cosine,
  a_e = final + (initial - final) * (1 + cos(pi * e / cycle_epochs)) / 2 at epoch e. The official CLI runs
  5,000 epochs of a 10,000-epoch cycle, so both end halfway: a goes 1 -> 0.5 and lr 1e-3 -> 5e-4.
- LAMB inside Lookahead; by default (one step, alpha 0.005, not synchronised) the slow weights are an
  exponential moving average of the fast ones. Gradient norm clipped at 1. Full batch: one step an epoch.
- Model selection as the official checkpointing does it: every `validation_every` epochs the slow weights
  are scored (accuracy) on a stratified `validation_fraction` of the rows that neither train nor sit in the
  memory; the first best is kept. With `validation_fraction=0` the last slow weights are kept.
- Deterministic on the CPU for a `random_state` (and a thread count): initialisation, dropout and masks are
  drawn from generators seeded by it, inside a forked torch RNG, so the global torch state is untouched.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from methods.tabular.hopular_network import MASKED, MISSING, OBSERVED, HopularNetwork
from methods.tabular.hopular_optim import Lamb, Lookahead


def corrupt(
    values: torch.Tensor,
    state: torch.Tensor,
    sizes: torch.Tensor,
    categorical: torch.Tensor,
    mask_probability: float,
    replace_probability: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style noise on observed entries (missing ones stay missing); the last column, the target, is
    always masked. Returns new (values, state)."""
    u = torch.rand(values.shape, generator=generator, device=values.device)
    observed = state == OBSERVED
    masked = observed & (u < mask_probability)
    replaced = observed & (u >= mask_probability) & (u < mask_probability + replace_probability)
    normal = torch.randn(values.shape, generator=generator, device=values.device)
    category = torch.floor(torch.rand(values.shape, generator=generator, device=values.device) * sizes)
    draw = torch.where(categorical, category, normal)
    values = torch.where(replaced, draw, torch.where(masked, torch.zeros_like(values), values))
    state = torch.where(masked, torch.full_like(state, MASKED), state)
    values[:, -1] = 0.0
    state[:, -1] = MASKED
    return values, state


class HopularClassifier(ClassifierMixin, BaseEstimator):
    """Hopular (Schäfl et al. 2022) for classification; the defaults are the official CLI's."""

    def __init__(
        self,
        *,
        categorical_features: Any = None,
        feature_size: int = 32,
        hidden_size: int = 0,
        num_heads: int = 8,
        num_blocks: int = 8,
        scaling_factor: float = 1.0,
        input_dropout: float = 0.1,
        lookup_dropout: float = 0.1,
        output_dropout: float = 0.01,
        memory_ratio: float = 1.0,
        mask_probability: float = 0.025,
        replace_probability: float = 0.175,
        initial_feature_loss_weight: float = 1.0,
        final_feature_loss_weight: float = 0.0,
        learning_rate: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.1,
        lookahead_steps: int = 1,
        lookahead_alpha: float = 0.005,
        lookahead_synchronize: bool = False,
        epochs: int = 5000,
        cycle_epochs: int = 10000,
        gradient_clip: float = 1.0,
        validation_fraction: float = 0.2,
        validation_every: int = 10,
        max_lookup_entries: int = 2**24,
        device: str = "auto",
        random_state: Any = None,
    ) -> None:
        self.categorical_features = categorical_features
        self.feature_size = feature_size
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.num_blocks = num_blocks
        self.scaling_factor = scaling_factor
        self.input_dropout = input_dropout
        self.lookup_dropout = lookup_dropout
        self.output_dropout = output_dropout
        self.memory_ratio = memory_ratio
        self.mask_probability = mask_probability
        self.replace_probability = replace_probability
        self.initial_feature_loss_weight = initial_feature_loss_weight
        self.final_feature_loss_weight = final_feature_loss_weight
        self.learning_rate = learning_rate
        self.betas = betas
        self.weight_decay = weight_decay
        self.lookahead_steps = lookahead_steps
        self.lookahead_alpha = lookahead_alpha
        self.lookahead_synchronize = lookahead_synchronize
        self.epochs = epochs
        self.cycle_epochs = cycle_epochs
        self.gradient_clip = gradient_clip
        self.validation_fraction = validation_fraction
        self.validation_every = validation_every
        self.max_lookup_entries = max_lookup_entries
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = self.device != "cpu"  # CUDA kernels need not be bit-reproducible
        return tags

    # ---- encoding -------------------------------------------------------------------------------------

    def _categorical_mask(self, n_features: int) -> np.ndarray:
        spec = self.categorical_features
        mask = np.zeros(n_features, dtype=bool)
        if spec is None:
            return mask
        spec = np.asarray(spec)
        if spec.dtype == bool:
            if spec.shape != (n_features,):
                raise ValueError(
                    f"categorical_features: a boolean mask needs {n_features} entries, got {spec.shape}"
                )
            return spec.copy()
        if spec.size and (spec.min() < 0 or spec.max() >= n_features):
            raise ValueError(
                f"categorical_features: indices must lie in [0, {n_features}), got {spec.tolist()}"
            )
        mask[spec.astype(int)] = True
        return mask

    def _encode(self, X: np.ndarray, y: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, state) tensors with the target as the last column (masked when `y` is None)."""
        n, d = X.shape
        values = np.zeros((n, d + 1))
        state = np.full((n, d + 1), OBSERVED, dtype=np.int64)
        missing = np.isnan(X)
        for j in range(d):
            column = X[:, j]
            if self.is_categorical_[j]:
                codes = np.searchsorted(self.categories_[j], column)
                known = ~missing[:, j] & (codes < len(self.categories_[j]))
                known[known] &= self.categories_[j][codes[known]] == column[known]
                values[:, j] = np.where(known, codes, 0)
                state[~known, j] = MISSING  # unseen categories read as missing
            else:
                values[:, j] = np.where(missing[:, j], 0.0, (column - self.mean_[j]) / self.scale_[j])
                state[missing[:, j], j] = MISSING
        if y is None:
            state[:, d] = MASKED
        else:
            values[:, d] = y
        return (
            torch.tensor(values, dtype=torch.float32, device=self.device_),
            torch.tensor(state, dtype=torch.long, device=self.device_),
        )

    def _fit_encoding(self, X: np.ndarray) -> None:
        d = X.shape[1]
        self.is_categorical_ = self._categorical_mask(d)
        self.categories_ = [
            np.unique(X[~np.isnan(X[:, j]), j]) if self.is_categorical_[j] else None for j in range(d)
        ]
        self.mean_ = np.zeros(d)
        self.scale_ = np.ones(d)
        for j in np.flatnonzero(~self.is_categorical_):
            observed = X[~np.isnan(X[:, j]), j]
            if len(observed):
                self.mean_[j] = observed.mean()
            if len(observed) > 1 and observed.std(ddof=1) > 0:
                self.scale_[j] = observed.std(ddof=1)
        sizes = [max(1, len(c)) if c is not None else 1 for c in self.categories_] + [len(self.classes_)]
        self.sizes_ = sizes
        categorical = [*self.is_categorical_.tolist(), True]
        self._categorical = torch.tensor(categorical, device=self.device_)
        self._sizes = torch.tensor(sizes, dtype=torch.float32, device=self.device_)
        # Where each feature's outputs start in the network's output.
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        self._starts_t = torch.tensor(self._starts, device=self.device_)
        self._numeric_columns = torch.tensor(np.flatnonzero(~self.is_categorical_), device=self.device_)
        self._categorical_columns = torch.tensor(np.flatnonzero(self.is_categorical_), device=self.device_)

    # ---- training -------------------------------------------------------------------------------------

    def _losses(
        self, output: torch.Tensor, values: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Mean per-feature reconstruction loss over non-missing entries (MSE for a numeric feature,
        cross-entropy for a categorical one), and the target's cross-entropy."""
        per_feature = []
        valid = (state[:, :-1] != MISSING).to(output.dtype)
        counts = valid.sum(0)
        if len(self._numeric_columns):
            cols = self._numeric_columns
            err = (output[:, self._starts_t[cols]] - values[:, cols]).square() * valid[:, cols]
            per_feature.append(err.sum(0)[counts[cols] > 0] / counts[cols][counts[cols] > 0])
        for j in self._categorical_columns.tolist():
            rows = valid[:, j] > 0
            if bool(rows.any()):
                start = int(self._starts[j])
                logits = output[rows, start : start + self.sizes_[j]]
                per_feature.append(torch.nn.functional.cross_entropy(logits, values[rows, j].long()).view(1))
        target = torch.nn.functional.cross_entropy(output[:, self._starts[-1] :], values[:, -1].long())
        losses = torch.cat(per_feature) if per_feature else output.new_zeros(0)
        return (losses.mean() if len(losses) else None), target

    def _schedule(self, epoch: int, start: float, end: float) -> float:
        phase = (epoch % self.cycle_epochs) / self.cycle_epochs
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * phase))

    def _target_proba(self, values: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        self.network_.eval()
        with torch.no_grad():
            output, _ = self.network_(
                values, state, self.memory_values_, self.memory_state_, chunk=self.max_lookup_entries
            )
        return torch.softmax(output[:, self._starts[-1] :].double(), dim=-1)

    def fit(self, X: Any, y: Any) -> HopularClassifier:
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"HopularClassifier needs at least 2 classes in y; got 1 class ({self.classes_[0]!r})"
            )
        if not 0 <= self.mask_probability + self.replace_probability <= 1:
            raise ValueError("mask_probability + replace_probability must lie in [0, 1]")
        self.device_ = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        )
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        train, held_out = self._split(y_index, seed)
        if len(train) < 2:
            raise ValueError(f"HopularClassifier needs at least 2 training rows; got {len(train)}")
        self._fit_encoding(X[train])
        fork_devices = [self.device_] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices, device_type=self.device_.type):
            torch.manual_seed(seed)
            self._train(X, y_index, train, held_out, seed)
        return self

    def _split(self, y_index: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(y_index))
        counts = np.bincount(y_index)
        n_val = round(self.validation_fraction * len(rows))
        if self.validation_fraction <= 0 or n_val < len(counts) or counts.min() < 2:
            return rows, rows[:0]
        from sklearn.model_selection import train_test_split

        train, held_out = train_test_split(rows, test_size=n_val, stratify=y_index, random_state=seed)
        return np.sort(train), np.sort(held_out)

    def _train(
        self, X: np.ndarray, y: np.ndarray, train: np.ndarray, held_out: np.ndarray, seed: int
    ) -> None:
        self.memory_values_, self.memory_state_ = self._encode(X[train], y[train])
        self.network_ = HopularNetwork(
            self.sizes_,
            self._categorical.tolist(),
            dim=self.feature_size,
            heads=self.num_heads,
            blocks=self.num_blocks,
            hidden_size=self.hidden_size,
            scaling=self.scaling_factor,
            input_dropout=self.input_dropout,
            lookup_dropout=self.lookup_dropout,
            output_dropout=self.output_dropout,
        ).to(self.device_)
        optimizer = Lookahead(
            Lamb(
                self.network_.parameters(),
                lr=self.learning_rate,
                betas=tuple(self.betas),
                weight_decay=self.weight_decay,
            ),
            steps=self.lookahead_steps,
            alpha=self.lookahead_alpha,
            synchronize=self.lookahead_synchronize,
        )
        generator = torch.Generator(device=self.device_).manual_seed(seed)
        n = len(train)
        # A training row may not retrieve itself from the memory (the official `memory_mask`).
        own_rows = torch.arange(n, device=self.device_)
        if len(held_out):
            val_values, val_state = self._encode(X[held_out], None)
            val_y = torch.tensor(y[held_out], device=self.device_)
        best, best_state = -1.0, None
        self.history_ = []
        for epoch in range(self.epochs):
            self.network_.train()
            values, state = corrupt(
                self.memory_values_,
                self.memory_state_,
                self._sizes,
                self._categorical,
                self.mask_probability,
                self.replace_probability,
                generator,
            )
            memory_rows, own = slice(None), own_rows
            if self.memory_ratio < 1.0:
                keep = max(1, int(self.memory_ratio * n))
                memory_rows = torch.randperm(n, generator=generator, device=self.device_)[:keep]
                own = torch.full_like(own_rows, -1)
                own[memory_rows] = torch.arange(keep, device=self.device_)
            output, _ = self.network_(
                values,
                state,
                self.memory_values_[memory_rows],
                self.memory_state_[memory_rows],
                own_rows=own,
                chunk=self.max_lookup_entries,
            )
            feature_loss, target_loss = self._losses(output, self.memory_values_, self.memory_state_)
            a = self._schedule(epoch, self.initial_feature_loss_weight, self.final_feature_loss_weight)
            loss = target_loss if feature_loss is None else a * feature_loss + (1 - a) * target_loss
            for group in optimizer.param_groups:
                group["lr"] = self._schedule(epoch, self.learning_rate, 0.0)
            optimizer.zero_grad()
            loss.backward()
            if self.gradient_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.network_.parameters(), self.gradient_clip)
            optimizer.step()
            last = epoch == self.epochs - 1
            if len(held_out) and ((epoch + 1) % self.validation_every == 0 or last):
                with optimizer.slow_weights():
                    accuracy = float(
                        (self._target_proba(val_values, val_state).argmax(1) == val_y).double().mean()
                    )
                    self.history_.append((epoch + 1, float(loss.detach()), accuracy))
                    if accuracy > best:
                        best, best_state = (
                            accuracy,
                            {k: v.clone() for k, v in self.network_.state_dict().items()},
                        )
        if best_state is None:
            with optimizer.slow_weights():
                best_state = {k: v.clone() for k, v in self.network_.state_dict().items()}
        self.network_.load_state_dict(best_state)
        self.network_.eval()
        self.best_validation_accuracy_ = best if len(held_out) else math.nan
        self.n_iter_ = self.epochs

    # ---- prediction -----------------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
        values, state = self._encode(X, None)
        return self._target_proba(values, state).cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def sample_lookup_weights(self, X: Any | None = None) -> list[np.ndarray]:
        """Each block's sample-sample association weights (heads, rows, memory rows): for the training rows
        as training sees them (dropout off, self-lookup forbidden) when `X` is None, else for `X` as
        prediction sees it. For tests and inspection."""
        check_is_fitted(self, "network_")
        if X is None:
            values, state = self.memory_values_.clone(), self.memory_state_.clone()
            state[:, -1] = MASKED
            values[:, -1] = 0.0
            own_rows = torch.arange(len(values), device=self.device_)
        else:
            X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
            values, state = self._encode(X, None)
            own_rows = None
        self.network_.eval()
        with torch.no_grad():
            _, weights = self.network_(
                values,
                state,
                self.memory_values_,
                self.memory_state_,
                own_rows=own_rows,
                chunk=self.max_lookup_entries,
                keep_weights=True,
            )
        return [w[0].cpu().numpy() for w in weights]
