"""Models: ResNet-18 (CIFAR variant), a small CNN, an MLP, softmax regression.

The user's view: README "Data, partitions and models".

    make_model(name, num_classes, in_shape, *, width=None, norm="group") -> nn.Module

Every model maps (n, *in_shape) to logits (n, num_classes) and treats samples independently
(GroupNorm by default), so the gradient of a weighted sum of per-sample losses over many
workers' samples equals the weighted sum of the workers' own gradients: the `sim` backend's
batched passes rely on it. norm="batch" uses BlockBatchNorm2d, whose statistics are taken per
block of `block_size` consecutive samples (one worker's block, as a real worker computes it).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from lgc.errors import check

MODELS = ("resnet18", "cnn", "mlp", "softmax")
NORMS = ("group", "batch")


class BlockBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm with statistics per block of `block_size` consecutive samples (ghost batch
    norm). The trainer sets block_size = b, so a batched pass over many workers' blocks
    normalises each block as the worker itself would. block_size None: plain BatchNorm."""

    block_size: Optional[int] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block_size
        if not self.training or b is None or x.shape[0] <= b:
            return super().forward(x)
        n, c, h, w = x.shape
        check(n % b == 0, f"batch of {n} samples is not a whole number of blocks of {b}")
        xb = x.view(n // b, b, c, h, w)
        mean = xb.mean(dim=(1, 3, 4), keepdim=True)
        var = xb.var(dim=(1, 3, 4), keepdim=True, unbiased=False)
        y = ((xb - mean) / torch.sqrt(var + self.eps)).view(n, c, h, w)
        with torch.no_grad():  # running statistics: the mean over blocks
            m = self.momentum if self.momentum is not None else 0.1
            cnt = b * h * w
            self.running_mean.mul_(1 - m).add_(m * mean.mean(dim=0).view(-1))
            self.running_var.mul_(1 - m).add_(m * var.mean(dim=0).view(-1) * cnt / max(cnt - 1, 1))
            self.num_batches_tracked += 1
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    return BlockBatchNorm2d(channels)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = _norm(norm, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(norm, cout))

    def forward(self, x):
        out = torch.relu(self.n1(self.conv1(x)))
        out = self.n2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (He et al. 2016, CIFAR variant): 3x3 stem, no max-pool, four
    stages of two basic blocks with width, 2, 4, 8 x width channels (width 64: the usual model)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 64, norm: str = "group"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), _norm(norm, width), nn.ReLU())
        layers, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, cout, stride, norm), BasicBlock(cout, cout, 1, norm)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):  # (n, C, H, W) -> (n, classes)
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class SmallCNN(nn.Module):
    """conv(3x3, w) - relu - pool - conv(3x3, 2w) - relu - pool - global mean - linear."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.features(x)
        return self.head(x.mean(dim=(2, 3)))


def make_model(
    name: str, num_classes: int, in_shape, *, width: Optional[int] = None, norm: str = "group",
) -> nn.Module:
    """The model `name` for inputs of shape in_shape; `width` scales channels / hidden units
    (defaults: resnet18 64, cnn 32, mlp 128; small widths for tests)."""
    check(name in MODELS, f"model={name!r} must be one of {', '.join(MODELS)}")
    check(norm in NORMS, f"norm={norm!r} must be one of {', '.join(NORMS)}")
    check(width is None or width >= 1, f"width={width} must be >= 1")
    in_shape = tuple(int(s) for s in in_shape)
    dim = math.prod(in_shape)
    if name == "resnet18":
        check(len(in_shape) == 3, f"resnet18 needs image inputs (C, H, W), got in_shape={in_shape}")
        return ResNet18(num_classes, in_shape[0], width or 64, norm)
    if name == "cnn":
        check(len(in_shape) == 3 and min(in_shape[1:]) >= 4,
              f"cnn needs image inputs (C, H, W) with H, W >= 4, got in_shape={in_shape}")
        return SmallCNN(num_classes, in_shape[0], width or 32)
    if name == "mlp":
        w = width or 128
        return nn.Sequential(nn.Flatten(), nn.Linear(dim, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, num_classes))
    return nn.Sequential(nn.Flatten(), nn.Linear(dim, num_classes))  # softmax regression
