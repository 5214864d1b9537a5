"""Embedded synthetic problems that need no download (README "Data, partitions and models").

(a) `make_classification`: a 10-class problem of small images (default 3x8x8), each class a
    mixture of two Gaussian prototypes; made non-IID by the partitioners (main-label split),
    for the quick profile.
(b) `make_quadratic`: non-IID quadratics with exactly known constants (theory checks):

    f_i(w) = 1/2 (w - c_i)^T H (w - c_i),   H = diag(h_1..h_d) shared by all workers,
    per-sample stochastic gradient H (w - c_i) + xi,  xi ~ N(0, (sigma^2/d) I_d),
    F = sum_i pi_i f_i,  grad F(w) = H (w - cbar),  cbar = sum_i pi_i c_i,
    L = max h,  zeta^2 = (1/N) sum_i ||H (c_i - cbar)||^2,  Delta = F(w_0) - F(cbar).

    A "sample" of worker i is a noise vector xi; the per-sample loss
    l(w; c_i, xi) = f_i(w) + xi^T w has exactly that gradient, so the trainers treat the
    quadratic like any other model (QuadraticModel) and the weighted-loss trick applies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from lgc.data import ArrayDataset
from lgc.errors import check
from lgc.sampling import STREAM_NOISE, worker_rng


# ----------------------------------------------------------------------------- (a) classification
def make_classification(
    n_train: int = 20000, n_test: int = 2000, *, num_classes: int = 10, in_shape=(3, 8, 8),
    signal: float = 0.2, modes: int = 2, seed: int = 0,
) -> ArrayDataset:
    """x = prototype[y, k] + N(0, I), k uniform in 0..modes-1; prototypes N(0, signal^2 I).

    `signal` sets the difficulty (per-pixel prototype scale); two modes per class make a
    linear model worse than an MLP or CNN. Balanced labels; float32 features.
    """
    check(n_train >= num_classes and n_test >= 1, f"n_train={n_train}, n_test={n_test}: need n_train >= {num_classes} and n_test >= 1")
    check(signal > 0, f"signal={signal} must be > 0")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 7919])))
    dim = int(np.prod(in_shape))
    protos = rng.normal(0.0, signal, size=(num_classes, modes, dim))

    def draw(n):
        y = rng.permutation(np.arange(n) % num_classes)
        k = rng.integers(0, modes, size=n)
        x = protos[y, k] + rng.normal(size=(n, dim))
        return torch.from_numpy(x.astype(np.float32).reshape(n, *in_shape)), torch.from_numpy(y.astype(np.int64))

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    origin = ("synthetic", {"n_train": n_train, "n_test": n_test, "num_classes": num_classes,
                            "in_shape": tuple(in_shape), "signal": signal, "modes": modes, "seed": seed})
    return ArrayDataset("synthetic", x_train, y_train, x_test, y_test, num_classes, origin=origin)


# ----------------------------------------------------------------------------- (b) quadratics
@dataclass(frozen=True)
class QuadraticProblem:
    """Non-IID quadratics (module docstring). Arrays are float64 numpy; constants exact."""

    h: np.ndarray  # (d,) diagonal of H
    c: np.ndarray  # (N, d) worker optima c_i
    sigma2: float  # per-sample gradient variance
    pi: np.ndarray  # (N,) worker weights, sum 1
    w0: np.ndarray  # (d,) starting point

    @property
    def dim(self) -> int:
        return len(self.h)

    @property
    def n_workers(self) -> int:
        return len(self.c)

    @property
    def cbar(self) -> np.ndarray:
        """The minimiser of F: cbar = sum_i pi_i c_i."""
        return self.pi @ self.c

    @property
    def L(self) -> float:
        return float(np.max(self.h))

    @property
    def zeta2(self) -> float:
        """(1/N) sum_i ||grad f_i(w) - grad F(w)||^2 = (1/N) sum_i ||H (c_i - cbar)||^2, for every w."""
        dev = (self.c - self.cbar) * self.h
        return float(np.mean(np.sum(dev * dev, axis=1)))

    def F(self, w) -> float:
        d = np.asarray(w, dtype=float)[None, :] - self.c
        return float(self.pi @ (0.5 * np.sum(d * d * self.h, axis=1)))

    @property
    def F_star(self) -> float:
        return self.F(self.cbar)

    @property
    def Delta(self) -> float:
        return self.F(self.w0) - self.F_star

    def grad_F(self, w) -> np.ndarray:
        return self.h * (np.asarray(w, dtype=float) - self.cbar)

    def constants(self) -> dict:
        return {"L": self.L, "sigma2": self.sigma2, "zeta2": self.zeta2, "Delta": self.Delta}

    def noise(self, seed: int, round_index: int, worker: int, n: int) -> np.ndarray:
        """Worker's n per-sample noise vectors xi in this round, (n, d) float32; a pure
        function of (seed, round, worker), drawn row by row (the first k rows do not depend on n)."""
        rng = worker_rng(seed, round_index, worker, STREAM_NOISE)
        return (rng.standard_normal((n, self.dim)) * np.sqrt(self.sigma2 / self.dim)).astype(np.float32)

    def inputs(self, worker: int, xi: np.ndarray) -> torch.Tensor:
        """QuadraticModel's input rows [c_i | xi] for samples xi of worker i, (n, 2d) float32."""
        c = np.broadcast_to(self.c[worker].astype(np.float32), xi.shape)
        return torch.from_numpy(np.concatenate([c, xi], axis=1))


def make_quadratic(
    n_workers: int, dim: int = 10, *, seed: int = 0, h_min: float = 0.1, h_max: float = 1.0,
    spread: float = 1.0, sigma2: float = 1.0, w0_scale: float = 2.0, pi: Optional[np.ndarray] = None,
) -> QuadraticProblem:
    """h evenly spaced in [h_min, h_max]; c_i ~ N(0, spread^2 I_d); w_0 ~ N(0, w0_scale^2 I_d)."""
    check(n_workers >= 1, f"N={n_workers} must be >= 1")
    check(dim >= 1, f"dim={dim} must be >= 1")
    check(0 < h_min <= h_max, f"h_min={h_min}, h_max={h_max}: need 0 < h_min <= h_max")
    check(spread >= 0 and sigma2 >= 0, f"spread={spread}, sigma2={sigma2} must be >= 0")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 104729])))
    h = np.linspace(h_min, h_max, dim)
    c = rng.normal(0.0, spread, size=(n_workers, dim))
    w0 = rng.normal(0.0, w0_scale, size=dim)
    pi = np.full(n_workers, 1.0 / n_workers) if pi is None else np.asarray(pi, dtype=float)
    check(pi.shape == (n_workers,) and np.all(pi >= 0) and abs(pi.sum() - 1) < 1e-9,
          f"pi must be {n_workers} non-negative weights summing to 1")
    return QuadraticProblem(h=h, c=c, sigma2=float(sigma2), pi=pi, w0=w0)


class QuadraticModel(nn.Module):
    """Parameters w (d,). forward(x) with rows [c | xi] returns the per-sample losses
    l(w; c, xi) = 1/2 (w - c)^T H (w - c) + xi^T w, whose gradient is H (w - c) + xi."""

    returns_loss = True

    def __init__(self, problem: QuadraticProblem):
        super().__init__()
        self.d = problem.dim
        self.w = nn.Parameter(torch.tensor(problem.w0, dtype=torch.float32))
        self.register_buffer("h", torch.tensor(problem.h, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (n, 2d) -> (n,)
        c, xi = x[:, : self.d], x[:, self.d:]
        diff = self.w[None, :] - c
        return 0.5 * (diff * diff * self.h).sum(dim=1) + xi @ self.w
