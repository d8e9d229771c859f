"""Base learners for partitioned training: many small models trained at once.

`mlp` and `cnn` put every base model into one tensor program (batched matrix products, grouped
convolutions), on the GPU when there is one; `logreg` fits scikit-learn models one by one for fast CPU
settings. Each returns the test logits of every model: (models, test samples, classes).
"""

from __future__ import annotations

import numpy as np

from harness.errors import UserError

LEARNERS = ("logreg", "mlp", "cnn")


def train_and_predict(
    learner: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    groups: list[np.ndarray],
    x_test: np.ndarray,
    classes: int,
    seed: int,
    epochs: int,
    hidden: int,
    device: str,
) -> np.ndarray:
    if learner == "logreg":
        return _logreg(x_train, y_train, groups, x_test, classes, seed)
    if learner in ("mlp", "cnn"):
        return _torch_batched(
            learner, x_train, y_train, groups, x_test, classes, seed, epochs, hidden, device
        )
    raise UserError(f"unknown learner '{learner}' (expected one of {', '.join(LEARNERS)})")


def _logreg(x_train, y_train, groups, x_test, classes, seed) -> np.ndarray:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    out = np.full((len(groups), len(x_test), classes), -1e9, dtype=np.float32)
    for m, index in enumerate(groups):
        labels = y_train[index]
        present = np.unique(labels)
        if len(present) == 1:  # a partition with one class votes for it everywhere
            out[m, :, present[0]] = 0.0
            continue
        model = LogisticRegression(C=1.0, max_iter=300, random_state=seed).fit(flat_train[index], labels)
        out[m][:, model.classes_] = model.predict_log_proba(flat_test)
    return out


def _torch_batched(kind, x_train, y_train, groups, x_test, classes, seed, epochs, hidden, device):  # type: ignore[no-untyped-def]
    import torch

    from tasks.poisoning.batched_nets import BatchedCNN, BatchedMLP

    torch.manual_seed(seed)
    models = len(groups)
    longest = max(1, max(len(g) for g in groups))
    index = np.zeros((models, longest), dtype=np.int64)
    mask = np.zeros((models, longest), dtype=np.float32)
    for m, g in enumerate(groups):
        index[m, : len(g)], mask[m, : len(g)] = g, 1.0
    dev = torch.device(device)
    xs = torch.from_numpy(x_train).to(dev)
    ys = torch.from_numpy(y_train).to(dev)
    idx, weight = torch.from_numpy(index).to(dev), torch.from_numpy(mask).to(dev)
    net = (BatchedMLP if kind == "mlp" else BatchedCNN)(models, x_train.shape[1:], hidden, classes).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    batch_x, batch_y = xs[idx], ys[idx]  # (models, longest, ...): gathered once, never copied per step
    count = weight.sum(dim=1).clamp(min=1)
    for _ in range(epochs):
        opt.zero_grad(set_to_none=True)
        logits = net.forward_own(batch_x)  # (models, longest, classes)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, classes), batch_y.reshape(-1), reduction="none"
        ).reshape(models, longest)
        ((loss * weight).sum(dim=1) / count).sum().backward()
        opt.step()
    with torch.no_grad():
        out = [net.forward_shared(chunk) for chunk in torch.from_numpy(x_test).to(dev).split(512)]
    return torch.cat(out, dim=1).float().cpu().numpy()
