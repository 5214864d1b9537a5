"""Timing models: how long each worker takes for its mini-batch and its blocks (SPEC section 2).

One interface for every model (as scipy.stats does for distributions):

    model.sample(rng, size)            -> mini-batch times X, shape `size`
    model.mean() / model.cdf(x) / model.pdf(x)
    model.expected_order_statistic(k, n) -> E[X_(k:n)], k-th smallest of n (i.i.d. models)
    model.block_finish_times(seed, round_index, n_workers, blocks, period=1) -> (N, M)

Draws are seeded by (seed, period index): rng_for(seed, p) gives the same generator in any
backend, and worker i's times are row i of the draw, so `sim`, `dist` and the theory's Monte
Carlo see identical times. The straggling period h holds the drawn times for h rounds:
round t uses period p = t // h (eq. 2.2).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from theory.errors import require


def rng_for(seed: int, period_index: int, stream: int = 0) -> np.random.Generator:
    """The generator of one straggling period: a pure function of (seed, period, stream)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(period_index), int(stream)])))


class TimingModel(ABC):
    """A distribution of mini-batch times X_i (in time units: one fast mini-batch = 1)."""

    name: str = "model"
    iid: bool = True  # i.i.d. across workers (order statistics by integration); else Monte Carlo
    per_block: bool = False  # blocks take i.i.d. times (sum) instead of splitting X evenly

    @abstractmethod
    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        """Mini-batch times; for non-i.i.d. models the last axis indexes workers."""

    @abstractmethod
    def mean(self) -> float: ...

    def cdf(self, x):  # pragma: no cover - overridden where a closed form exists
        raise NotImplementedError(f"{self.name} has no cdf; use Monte Carlo")

    def pdf(self, x):  # pragma: no cover
        raise NotImplementedError(f"{self.name} has no pdf; use Monte Carlo")

    def block_finish_times(
        self, seed: int, round_index: int, n_workers: int, blocks: int, *, period: int = 1
    ) -> np.ndarray:
        """(N, M) finish times of each worker's blocks from the round's start.

        Work spread evenly (default): block m of worker i ends at X_i * (m+1)/M (eq. 2.2).
        Per-block variant: cumulative sums of i.i.d. block times of mean E[X]/M.
        """
        require(blocks >= 1, f"M={blocks} must be >= 1")
        require(period >= 1, f"straggling period h={period} must be >= 1")
        rng = rng_for(seed, round_index // period)
        if self.per_block:
            t = self.sample(rng, (blocks, n_workers)).T / blocks
            return np.cumsum(t, axis=1)
        x = self.sample(rng, (n_workers,))
        return x[:, None] * (np.arange(1, blocks + 1) / blocks)[None, :]


@dataclass
class ShiftedExponential(TimingModel):
    """X = shift + Exp(rate): the default (shift 1, rate 1)."""

    shift: float = 1.0
    rate: float = 1.0
    per_block: bool = False
    name: str = "shifted-exp"

    def __post_init__(self):
        require(self.shift >= 0, f"shift={self.shift} must be >= 0")
        require(self.rate > 0, f"rate={self.rate} must be > 0")

    def sample(self, rng, size):
        return self.shift + rng.exponential(1.0 / self.rate, size=size)

    def mean(self) -> float:
        return self.shift + 1.0 / self.rate

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < self.shift, 0.0, -np.expm1(-self.rate * (x - self.shift)))

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < self.shift, 0.0, self.rate * np.exp(-self.rate * np.maximum(x - self.shift, 0.0)))

    def expected_order_statistic(self, k: int, n: int) -> float:
        """E[X_(k:n)] = shift + (H_n - H_{n-k}) / rate (eq. 2.7)."""
        require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")
        return self.shift + float(np.sum(1.0 / np.arange(n - k + 1, n + 1))) / self.rate
