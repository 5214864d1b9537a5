"""Data sets the trainers use: CIFAR-10 (official python format) and embedded synthetic problems.

Every classification data set is an `ArrayDataset`: tensors that the `sim` backend moves to
the device once (CIFAR-10 stays uint8 there; augmentation and normalisation happen on the
device per round).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class ArrayDataset:
    """A classification data set held in memory.

    x_train, x_test: (n, C, H, W) uint8 images or float32 features of shape in_shape.
    y_train, y_test: (n,) int64 labels in 0..num_classes-1.
    mean, std: per-channel normalisation applied after augmentation (None: inputs used as is).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: Optional[tuple] = None
    std: Optional[tuple] = None
    augmentable: bool = False  # images for which random crop + flip make sense
    # how it was made: (loader name, its arguments); lgc.task checks that a data set passed to a run
    # of a config is the one that config builds (the run cache keys on the config)
    origin: Optional[tuple] = None

    @property
    def in_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def to(self, device) -> "ArrayDataset":
        return ArrayDataset(self.name, self.x_train.to(device), self.y_train.to(device),
                            self.x_test.to(device), self.y_test.to(device), self.num_classes,
                            self.mean, self.std, self.augmentable, self.origin)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float in [0, 1], then (x - mean) / std per channel; float inputs unchanged
        unless mean/std are set."""
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        if self.mean is not None:
            m = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            s = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
            x = (x - m) / s
        return x
