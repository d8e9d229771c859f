"""Many small networks as one: weights carry a leading model axis, convolutions are grouped by model.

`forward_own` runs each model on its own batch (models, n, ...); `forward_shared` runs every model on
one batch (n, ...), as at test time. Both return (models, n, classes).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class BatchedLinear(nn.Module):
    def __init__(self, models: int, fan_in: int, fan_out: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(models, fan_in, fan_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(models, 1, fan_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (models, n, fan_in) -> (models, n, fan_out)
        return torch.baddbmm(self.bias, x, self.weight)


class BatchedMLP(nn.Module):
    def __init__(self, models: int, image_shape: tuple[int, ...], hidden: int, classes: int) -> None:
        super().__init__()
        self.models = models
        self.hidden = BatchedLinear(models, math.prod(image_shape), hidden)
        self.out = BatchedLinear(models, hidden, classes)

    def forward_own(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x.flatten(2))))

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_own(x.flatten(1).unsqueeze(0).expand(self.models, -1, -1))


class BatchedCNN(nn.Module):
    """conv3x3(c1)-ReLU-maxpool-conv3x3(c2)-ReLU-global average pool-linear, per model."""

    def __init__(self, models: int, image_shape: tuple[int, ...], hidden: int, classes: int) -> None:
        super().__init__()
        channels = image_shape[0]
        c1, c2 = max(4, hidden // 4), max(8, hidden // 2)
        self.models, self.channels = models, channels
        self.conv1 = nn.Conv2d(models * channels, models * c1, 3, padding=1, groups=models)
        self.conv2 = nn.Conv2d(models * c1, models * c2, 3, padding=1, groups=models)
        self.head = BatchedLinear(models, c2, classes)

    def _features(self, x: torch.Tensor) -> torch.Tensor:  # (n, models*channels, h, w) -> (models, n, c2)
        h = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = torch.relu(self.conv2(h)).mean(dim=(2, 3))
        return h.reshape(h.shape[0], self.models, -1).transpose(0, 1)

    def forward_own(self, x: torch.Tensor) -> torch.Tensor:
        models, n = x.shape[:2]
        stacked = x.transpose(0, 1).reshape(n, models * self.channels, *x.shape[-2:])
        return self.head(self._features(stacked))

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._features(x.repeat(1, self.models, 1, 1)))
