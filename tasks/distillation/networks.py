"""Teacher and student networks, written in torch (torchvision does not import beside the CPU build).

Every network exposes `features(x) -> (penultimate, pooled)`: `pooled` feeds the classifier `fc`;
`penultimate` is the globally pooled output of the stage before the last (an MLP's hidden layer before
the last one, or its flattened input when it has one hidden layer). USKD's weak head reads it, as the
official yzd-v/cls_KD `mmcls/models/classifiers/distiller.py` (commit 1e5d48f) reads `neck(fea_s[-2])`,
a ResNet-18's 256-channel third stage. Sizes follow the papers: CIFAR ResNets
(resnet20/56: 3 stages of basic blocks, 16-32-64 channels), wide ResNets (wrn-16-2, wrn-40-2), and the
ImageNet ResNet-18/34 (4 stages, 64-512 channels).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class Network(nn.Module):
    feature_dim: int
    penultimate_dim: int

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)[1])


class MLP(Network):
    def __init__(self, in_shape: tuple[int, ...], classes: int, hidden: tuple[int, ...] = (256, 128)) -> None:
        super().__init__()
        sizes = [math.prod(in_shape), *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.feature_dim, self.penultimate_dim = sizes[-1], sizes[-2]
        self.fc = nn.Linear(sizes[-1], classes)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.flatten(1)
        penultimate = h
        for layer in self.layers:
            penultimate, h = h, F.relu(layer(h))
        return penultimate, h


def _penultimate_and_last(stages: nn.ModuleList, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The globally pooled outputs of the stage before the last (its input when there is one stage) and
    of the last stage."""
    before = x
    for stage in stages:
        before, x = x, stage(x)
    return before.mean(dim=(2, 3)), x.mean(dim=(2, 3))


class SmallCNN(Network):
    """Two or three conv-BN-ReLU stages with pooling: the cpu-scale teacher and student."""

    def __init__(self, in_shape: tuple[int, ...], classes: int, widths: tuple[int, ...] = (32, 64)) -> None:
        super().__init__()
        stages, channels = [], in_shape[0]
        for w in widths:
            stages.append(
                nn.Sequential(
                    nn.Conv2d(channels, w, 3, padding=1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
            channels = w
        self.stages = nn.ModuleList(stages)
        self.feature_dim, self.penultimate_dim = channels, widths[-2] if len(widths) > 1 else in_shape[0]
        self.fc = nn.Linear(channels, classes)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _penultimate_and_last(self.stages, x)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(Network):
    """Basic-block ResNet: `blocks` per stage at `widths`; CIFAR stem (3x3) or ImageNet stem (7x7 + pool)."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        classes: int,
        blocks: tuple[int, ...],
        widths: tuple[int, ...],
        imagenet_stem: bool = False,
    ) -> None:
        super().__init__()
        first = widths[0]
        if imagenet_stem:
            self.stem = nn.Sequential(
                nn.Conv2d(in_shape[0], first, 7, 2, 3, bias=False),
                nn.BatchNorm2d(first),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_shape[0], first, 3, 1, 1, bias=False),
                nn.BatchNorm2d(first),
                nn.ReLU(inplace=True),
            )
        stages, cin = [], first
        for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
            layers = [BasicBlock(cin, w, 1 if i == 0 else 2)] + [BasicBlock(w, w, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.feature_dim, self.penultimate_dim = widths[-1], widths[-2] if len(widths) > 1 else first
        self.fc = nn.Linear(widths[-1], classes)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _penultimate_and_last(self.stages, self.stem(x))


def build(name: str, in_shape: tuple[int, ...], classes: int) -> Network:
    """A network by name: mlp, mlp-small, cnn, cnn-small, resnet20/32/56/110, wrn-16-2, wrn-40-2,
    resnet18, resnet34."""
    cifar_depths = {"resnet20": 3, "resnet32": 5, "resnet56": 9, "resnet110": 18}
    if name == "mlp":
        return MLP(in_shape, classes, (256, 128))
    if name == "mlp-small":
        return MLP(in_shape, classes, (64,))
    if name == "cnn":
        return SmallCNN(in_shape, classes, (32, 64, 128) if in_shape[-1] >= 16 else (32, 64))
    if name == "cnn-small":
        return SmallCNN(in_shape, classes, (16, 32))
    if name in cifar_depths:
        n = cifar_depths[name]
        return ResNet(in_shape, classes, (n, n, n), (16, 32, 64))
    if name.startswith("wrn-"):
        depth, k = (int(v) for v in name[4:].split("-"))
        n = (depth - 4) // 6
        return ResNet(in_shape, classes, (n, n, n), (16 * k, 32 * k, 64 * k))
    if name == "resnet18":
        return ResNet(in_shape, classes, (2, 2, 2, 2), (64, 128, 256, 512), imagenet_stem=True)
    if name == "resnet34":
        return ResNet(in_shape, classes, (3, 4, 6, 3), (64, 128, 256, 512), imagenet_stem=True)
    raise ValueError(f"unknown network '{name}'")


NETWORKS = (
    "mlp",
    "mlp-small",
    "cnn",
    "cnn-small",
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet110",
    "wrn-16-2",
    "wrn-40-2",
    "resnet18",
    "resnet34",
)
