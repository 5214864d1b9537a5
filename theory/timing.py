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


def even_split_finish_times(x: np.ndarray, blocks: int) -> np.ndarray:
    """(N, M) block finish times when worker i spreads its mini-batch time X_i evenly over its
    M blocks: block m ends at X_i (m+1)/M (eq. 2.2)."""
    return x[:, None] * (np.arange(1, blocks + 1) / blocks)[None, :]


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

    def ppf(self, u):  # pragma: no cover
        raise NotImplementedError(f"{self.name} has no quantile function; use Monte Carlo")

    def expected_order_statistic(self, k: int, n: int) -> float:
        """E[X_(k:n)] by integrating the order-statistic density in the quantile domain (eq. 2.8)."""
        require(self.iid, f"{self.name} is not i.i.d. across workers; use theory.order_stats Monte Carlo")
        from theory.order_stats import expected_order_statistic

        return expected_order_statistic(self, k, n)

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
        return even_split_finish_times(self.sample(rng, (n_workers,)), blocks)


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

    def ppf(self, u):
        return self.shift - np.log1p(-np.asarray(u, dtype=float)) / self.rate

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < self.shift, 0.0, self.rate * np.exp(-self.rate * np.maximum(x - self.shift, 0.0)))

    def expected_order_statistic(self, k: int, n: int) -> float:
        """E[X_(k:n)] = shift + (H_n - H_{n-k}) / rate (eq. 2.7)."""
        require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")
        return self.shift + float(np.sum(1.0 / np.arange(n - k + 1, n + 1))) / self.rate


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

    def mean(self) -> float:
        if self.times:
            return float(np.mean(self.times))
        return 1.0 + self.slow_fraction * (self.slowdown - 1.0)


# ----------------------------------------------------------------------------- factory
def _registry():
    from theory import trace

    return {
        "shifted-exp": ShiftedExponential,
        "pareto": Pareto,
        "lognormal": LogNormal,
        "heterogeneous": HeterogeneousSpeed,
        "deterministic": Deterministic,
        "trace": trace.TraceReplay.from_csv,
        "trace-fit": trace.fit_shifted_exponential_csv,
    }


MODEL_NAMES = ("shifted-exp", "pareto", "lognormal", "heterogeneous", "deterministic", "trace", "trace-fit")


def make_timing_model(name: str, **params) -> TimingModel:
    """Build a timing model by name; parameters are validated (TheoryInputError names the bad one).

    shifted-exp(shift=1, rate=1, per_block=False); pareto(scale=1, alpha=3, per_block=False);
    lognormal(mu=0, sigma=0.5, shift=0, per_block=False);
    heterogeneous(slow_fraction=0.2, slowdown=3, shift=1, rate=1, slow_workers="first", hold="times");
    deterministic(times=(), slow_fraction=0.2, slowdown=2); trace(path); trace-fit(path).
    """
    import inspect

    reg = _registry()
    require(name in reg, f"timing model {name!r} is unknown; valid: {', '.join(MODEL_NAMES)}")
    factory = reg[name]
    sig = inspect.signature(factory)
    allowed = [p for p in sig.parameters if p not in ("name", "iid", "self")]
    for k in params:
        require(k in allowed, f"timing model {name!r} has no parameter {k!r}; valid: {', '.join(allowed)}")
    for k in allowed:
        require(k in params or sig.parameters[k].default is not inspect.Parameter.empty,
                f"timing model {name!r} needs the parameter {k!r} (e.g. {k}=trace.csv)" if k == "path"
                else f"timing model {name!r} needs the parameter {k!r}")
    for k, v in params.items():
        default = sig.parameters[k].default
        if isinstance(default, bool):
            require(isinstance(v, bool), f"{k}={v!r} must be true or false")
        elif isinstance(default, (int, float)):
            require(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v),
                    f"{k}={v!r} must be a finite number")
        elif isinstance(default, str) or default is inspect.Parameter.empty:
            require(isinstance(v, str), f"{k}={v!r} must be a string")
        elif isinstance(default, tuple):
            require(isinstance(v, (list, tuple)), f"{k}={v!r} must be a list of numbers")
            for x in v:
                require(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x),
                        f"{k}: {x!r} must be a finite number")
    return factory(**params)
