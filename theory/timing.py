"""Timing models: the laws of the mini-batch times X_i a user picks (README "Timing models"; theory/DERIVATION.md
section 2). i.i.d. across workers: ShiftedExponential (the default, eq. 2.7 in closed form), Pareto, LogNormal;
not i.i.d.: HeterogeneousSpeed (a slow fraction of the workers) and Deterministic (fixed per-worker times).

Each writes what it knows in closed form; the interface, its general routes (integration, Monte Carlo) and
the seeded draws live in theory/timing_model.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.errors import require
from theory.timing_model import TIME_MAX, TimingModel, even_split_finish_times, rng_for


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
        tail = float(np.exp(-self.rate * (TIME_MAX - self.shift))) if self.shift < TIME_MAX else 1.0
        self.require_finite_draws(tail, f"shift={self.shift}, rate={self.rate}")

    def sample(self, rng, size):
        return self.shift + rng.exponential(1.0 / self.rate, size=size)

    def mean(self) -> float:
        return self.shift + 1.0 / self.rate

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < self.shift, 0.0, -np.expm1(-self.rate * (x - self.shift)))

    def ppf(self, u):
        return self.shift - np.log1p(-np.asarray(u, dtype=float)) / self.rate

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < self.shift, 0.0, self.rate * np.exp(-self.rate * np.maximum(x - self.shift, 0.0)))

    order_statistic_route = "closed form"

    def expected_order_statistic(self, k: int, n: int) -> float:
        """E[X_(k:n)] = shift + (H_n - H_{n-k}) / rate (eq. 2.7)."""
        require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")
        return self.shift + float(np.sum(1.0 / np.arange(n - k + 1, n + 1))) / self.rate

    def expected_order_statistics(self, ks, n: int) -> np.ndarray:
        """eq. (2.7) for every k in ks, from one table of harmonic numbers H_0..H_n."""
        ks = np.asarray(ks, dtype=int)
        require(bool(np.all((ks >= 1) & (ks <= n))), f"K must satisfy 1 <= K <= N={n}")
        h = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])
        return self.shift + (h[n] - h[n - ks]) / self.rate


@dataclass
class Pareto(TimingModel):
    """X = scale * (1 + Lomax(alpha)): Pareto with minimum `scale` and tail index `alpha`.

    Heavy-tailed stragglers; E[X_(k:n)] is finite only when alpha * (n - k + 1) > 1."""

    scale: float = 1.0
    alpha: float = 3.0
    per_block: bool = False
    name: str = "pareto"

    def __post_init__(self):
        require(self.scale > 0, f"scale={self.scale} must be > 0")
        require(self.alpha > 0, f"alpha={self.alpha} must be > 0")
        tail = (self.scale / TIME_MAX) ** self.alpha if self.scale < TIME_MAX else 1.0
        self.require_finite_draws(tail, f"scale={self.scale}, alpha={self.alpha}; alpha >= 0.05 keeps scale 1 finite")

    def sample(self, rng, size):
        return self.scale * (1.0 + rng.pareto(self.alpha, size=size))

    def mean(self) -> float:
        return self.alpha * self.scale / (self.alpha - 1.0) if self.alpha > 1 else float("inf")

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < self.scale, 0.0, 1.0 - (self.scale / np.maximum(x, self.scale)) ** self.alpha)

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        xs = np.maximum(x, self.scale)
        return np.where(x < self.scale, 0.0, self.alpha * self.scale**self.alpha / xs ** (self.alpha + 1))

    def ppf(self, u):
        return self.scale * (1.0 - np.asarray(u, dtype=float)) ** (-1.0 / self.alpha)

    def order_statistic_finite(self, k: int, n: int) -> bool:
        return self.alpha * (n - k + 1) > 1  # else the integral diverges (class docstring)


@dataclass
class LogNormal(TimingModel):
    """X = shift + exp(mu + sigma Z), Z ~ N(0, 1)."""

    mu: float = 0.0
    sigma: float = 0.5
    shift: float = 0.0
    per_block: bool = False
    name: str = "lognormal"

    def __post_init__(self):
        require(self.sigma > 0, f"sigma={self.sigma} must be > 0")
        require(self.shift >= 0, f"shift={self.shift} must be >= 0")
        from scipy.special import ndtr

        tail = float(ndtr((self.mu - np.log(TIME_MAX - self.shift)) / self.sigma)) if self.shift < TIME_MAX else 1.0
        self.require_finite_draws(tail, f"mu={self.mu}, sigma={self.sigma}, shift={self.shift}; "
                                  f"mu + 8 sigma < 690 keeps draws finite")

    def sample(self, rng, size):
        return self.shift + rng.lognormal(self.mu, self.sigma, size=size)

    def mean(self) -> float:
        return self.shift + float(np.exp(self.mu + self.sigma**2 / 2))

    def cdf(self, x):
        from scipy.special import ndtr

        y = np.asarray(x, dtype=float) - self.shift
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (np.log(np.where(y > 0, y, 1.0)) - self.mu) / self.sigma
        return np.where(y > 0, ndtr(z), 0.0)

    def pdf(self, x):
        y = np.asarray(x, dtype=float) - self.shift
        ys = np.where(y > 0, y, 1.0)
        dens = np.exp(-((np.log(ys) - self.mu) ** 2) / (2 * self.sigma**2)) / (ys * self.sigma * np.sqrt(2 * np.pi))
        return np.where(y > 0, dens, 0.0)

    def ppf(self, u):
        from scipy.special import ndtri

        return self.shift + np.exp(self.mu + self.sigma * ndtri(np.asarray(u, dtype=float)))


@dataclass
class HeterogeneousSpeed(TimingModel):
    """A fraction of the workers is `slowdown` times slower: X_i = s_i * Y_i, Y_i ~ shift + Exp(rate).

    slow_workers="first": workers 0..n_slow-1 are slow for ever (n_slow = round(fraction * N));
    "random": the slow set is redrawn at the start of every straggling period (stream 1).
    hold="times" (default): the drawn X_i are held for the h rounds of a period (eq. 2.2);
    hold="speed": only the speed factors s_i are held; the noise Y_i is redrawn every round.
    Not i.i.d. across workers, so its order statistics come from Monte Carlo.
    """

    slow_fraction: float = 0.2
    slowdown: float = 3.0
    shift: float = 1.0
    rate: float = 1.0
    slow_workers: str = "first"
    hold: str = "times"
    per_block: bool = False
    name: str = "heterogeneous"
    iid: bool = False

    def __post_init__(self):
        require(0.0 <= self.slow_fraction <= 1.0, f"slow_fraction={self.slow_fraction} must be in [0, 1]")
        require(self.slowdown >= 1.0, f"slowdown={self.slowdown} must be >= 1")
        require(self.shift >= 0, f"shift={self.shift} must be >= 0")
        require(self.rate > 0, f"rate={self.rate} must be > 0")
        top = TIME_MAX / self.slowdown  # the slow workers' times are slowdown x (shift + Exp(rate))
        tail = float(np.exp(-self.rate * (top - self.shift))) if self.shift < top else 1.0
        self.require_finite_draws(tail, f"shift={self.shift}, rate={self.rate}, slowdown={self.slowdown}")
        require(self.slow_workers in ("first", "random"),
                f"slow_workers={self.slow_workers!r} must be 'first' or 'random'")
        require(self.hold in ("times", "speed"), f"hold={self.hold!r} must be 'times' or 'speed'")
        self._base = ShiftedExponential(self.shift, self.rate)

    def speed_factors(self, n_workers: int, rng: np.random.Generator | None = None) -> np.ndarray:
        n_slow = int(round(self.slow_fraction * n_workers))
        s = np.ones(n_workers)
        if self.slow_workers == "first" or rng is None:
            s[:n_slow] = self.slowdown
        else:
            s[rng.permutation(n_workers)[:n_slow]] = self.slowdown
        return s

    def sample(self, rng, size):
        size = (size,) if np.isscalar(size) else tuple(size)
        return self._base.sample(rng, size) * self.speed_factors(size[-1], rng)

    def mean(self) -> float:
        """Mean over a uniformly chosen worker."""
        return self._base.mean() * (1.0 + self.slow_fraction * (self.slowdown - 1.0))

    def worker_groups(self, n_workers: int) -> list:
        """[(cdf, count), ...]: groups of independent workers with identical cdfs (the slow set
        has round(slow_fraction N) workers, held or redrawn alike)."""
        n_slow = int(round(self.slow_fraction * n_workers))
        base = self._base
        return [(base.cdf, n_workers - n_slow), (lambda x: base.cdf(x / self.slowdown), n_slow)]

    def set_change_period(self, h: float) -> float:
        """hold='speed' redraws the noise every round, so the fast set changes every round."""
        return 1.0 if self.hold == "speed" else float(h)

    def sets_independent(self, h: float) -> bool:
        """Also the speeds must not be held across rounds: a fixed slow set, or one redrawn every round."""
        return self.set_change_period(h) == 1 and (self.slow_workers == "first" or h == 1)

    def block_finish_times(self, seed, round_index, n_workers, blocks, *, period=1):
        require(blocks >= 1, f"M={blocks} must be >= 1")
        require(period >= 1, f"straggling period h={period} must be >= 1")
        p = round_index // period
        if self.hold == "times":
            rng = rng_for(seed, p)
            s = self.speed_factors(n_workers, rng_for(seed, p, 1))
        else:  # speed factors held for the period, noise fresh every round
            rng = rng_for(seed, round_index, 2)
            s = self.speed_factors(n_workers, rng_for(seed, p, 1))
        if self.per_block:
            t = self._base.sample(rng, (blocks, n_workers)).T * s[:, None] / blocks
            return np.cumsum(t, axis=1)
        return even_split_finish_times(self._base.sample(rng, (n_workers,)) * s, blocks)


@dataclass
class Deterministic(TimingModel):
    """Fixed per-worker times (the fixed computation model of Tyurin and Richtarik).

    `times` lists X_i for every worker; without it, a fraction `slow_fraction` of the workers
    (the first ones) takes `slowdown` time units and the rest 1."""

    times: tuple = ()
    slow_fraction: float = 0.2
    slowdown: float = 2.0
    per_block: bool = False
    name: str = "deterministic"
    iid: bool = False

    def __post_init__(self):
        self.times = tuple(float(t) for t in self.times)
        for t in self.times:
            require(t > 0, f"deterministic time {t} must be > 0")
        require(0.0 <= self.slow_fraction <= 1.0, f"slow_fraction={self.slow_fraction} must be in [0, 1]")
        require(self.slowdown > 0, f"slowdown={self.slowdown} must be > 0")
        big = max((*self.times, self.slowdown, 1.0))
        self.require_finite_draws(float(big > TIME_MAX), f"largest time {big:g}")

    def worker_times(self, n_workers: int) -> np.ndarray:
        if self.times:
            require(len(self.times) == n_workers,
                    f"deterministic model has {len(self.times)} times, but N={n_workers}")
            return np.array(self.times)
        x = np.ones(n_workers)
        x[: int(round(self.slow_fraction * n_workers))] = self.slowdown
        return x

    def sample(self, rng, size):
        size = (size,) if np.isscalar(size) else tuple(size)
        return np.broadcast_to(self.worker_times(size[-1]), size).copy()

    def periods(self) -> int:
        return 1  # every round draws the same times

    def fixed_times(self) -> bool:
        return True

    def set_change_period(self, h: float) -> float:
        return np.inf  # the fast set never changes

    def mean(self) -> float:
        if self.times:
            return float(np.mean(self.times))
        return 1.0 + self.slow_fraction * (self.slowdown - 1.0)
