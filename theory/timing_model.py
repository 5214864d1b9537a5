"""The timing-model interface: how long each worker takes for its mini-batch and its blocks.

The models a user picks: README "Timing models"; the equations: theory/DERIVATION.md section 2.

One interface for every model (as scipy.stats' base class does for distributions): a model
writes `sample` and `mean`, and whatever else it knows in closed form; the base class supplies
the general routes, so callers never ask which model they hold. The laws themselves:
theory/timing.py and theory/timing_workers.py.

    model.sample(rng, size)            -> mini-batch times X, shape `size`
    model.mean() / model.cdf(x) / model.pdf(x) / model.ppf(u)
        cdf: closed form, else the integral of pdf; ppf: closed form, else the root of cdf
    model.order_statistic_route        -> "closed form", "integration" or "monte carlo"
    model.expected_order_statistic(k, n) -> E[X_(k:n)], k-th smallest of n: closed form,
        else integration of the quantile function (i.i.d. models with a distribution, eq. 2.8),
        else Monte Carlo over the model's own rounds (`order_statistic_mc`, with its error)
    model.block_finish_times(seed, round_index, n_workers, blocks, period=1) -> (N, M)
    model.periods() / model.fixed_times() / model.set_change_period(h): what Monte Carlo and
        the bounds need to know about the draws (module theory.order_stats, theory.tradeoff)

Draws are seeded by (seed, period index): rng_for(seed, p) gives the same generator in any
backend, and worker i's times are row i of the draw, so `sim`, `dist` and the theory's Monte
Carlo see identical times. The straggling period h holds the drawn times for h rounds:
round t uses period p = t // h (eq. 2.2).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple, Optional

import numpy as np

from theory.errors import require


def rng_for(seed: int, period_index: int, stream: int = 0) -> np.random.Generator:
    """The generator of one straggling period: a pure function of (seed, period, stream)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(period_index), int(stream)])))


def even_split_finish_times(x: np.ndarray, blocks: int) -> np.ndarray:
    """(N, M) block finish times when worker i spreads its mini-batch time X_i evenly over its
    M blocks: block m ends at X_i (m+1)/M (eq. 2.2). Computed as the (M, N) product and returned transposed (a
    column-major view): the same products, and at N = 10^4, M = 5 an eighth of the time of the row-major one,
    whose inner loop is one row of M."""
    return ((np.arange(1, blocks + 1) / blocks)[:, None] * np.asarray(x)[None, :]).T


class MonteCarlo(NamedTuple):
    """A Monte Carlo mean over independent rounds and its standard error."""

    mean: float
    se: float
    rounds: int


MC_ROUNDS = 200  # default Monte Carlo rounds


def quantile_order_statistic(ppf, k: int, n: int) -> float:
    """E[X_(k:n)] = int_0^1 Q(u) beta_{k,n-k+1}(u) du for i.i.d. X with quantile function Q (eq. 2.8).

    The beta(k, n-k+1) density is evaluated in log space (no overflow for n in the thousands)
    and the interval is split around its bulk, so sharp densities are integrated accurately.
    """
    from scipy import integrate, special

    a, b = float(k), float(n - k + 1)
    log_norm = special.betaln(a, b)

    def integrand(u):
        if u <= 0.0 or u >= 1.0:
            return 0.0
        logd = (a - 1) * np.log(u) + (b - 1) * np.log1p(-u) - log_norm
        return float(ppf(u)) * np.exp(logd)

    mean = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    cuts = sorted({0.0, 1.0, *[float(np.clip(mean + z * sd, 0.0, 1.0)) for z in (-12, -4, -1, 0, 1, 4, 12)]})
    scale = abs(float(ppf(mean))) + 1e-300
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        if hi > lo:
            val, _ = integrate.quad(integrand, lo, hi, epsabs=1e-13 * scale, epsrel=1e-11, limit=200)
            total += val
    return total


def expected_order_statistic_groups(groups, k: int) -> float:
    """E[X_(k)] for independent workers in groups of identical cdfs: [(cdf, count), ...].

    E[X_(k)] = int_0^inf P(#{i: X_i <= x} < k) dx for non-negative X (eq. 2.8'), with the count
    a sum of independent binomials (a convolution). Used for the heterogeneous-speed model and
    for i.i.d. models that know their cdf but not their quantile function.
    """
    from scipy import integrate, stats

    n = sum(c for _, c in groups)
    require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")

    def survival(x):
        pmf = np.array([1.0])
        for cdf, count in groups:
            if count:
                pmf = np.convolve(pmf, stats.binom.pmf(np.arange(count + 1), count, float(cdf(x))))
        return float(pmf[:k].sum())

    total, lo, width = 0.0, 0.0, 1.0
    while True:  # integrate on doubling intervals until the survival function is negligible
        val, _ = integrate.quad(survival, lo, lo + width, epsabs=1e-12, epsrel=1e-10, limit=200)
        total += val
        lo += width
        width *= 2
        if survival(lo) < 1e-14:
            return total


TIME_MAX = 1e300  # a draw above this overflows once summed over blocks, rounds and the carry-over (float64 < 1.8e308)
TAIL_MAX = 1e-15  # the largest probability a law may give to draws above TIME_MAX


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

    # ------------------------------------------------------------------ the distribution
    def _overrides(self, method: str) -> bool:
        return getattr(type(self), method) is not getattr(TimingModel, method)

    @property
    def has_distribution(self) -> bool:
        """A pdf, cdf or quantile function in closed form (the model writes one of them)."""
        return any(self._overrides(m) for m in ("pdf", "cdf", "ppf"))

    def pdf(self, x):
        require(False, f"timing model {self.name!r} has no density; its order statistics come from Monte Carlo")

    def cdf(self, x):
        """P(X <= x): the integral of the density from 0 (times are >= 0)."""
        require(self._overrides("pdf"), f"timing model {self.name!r} has no distribution function; "
                                        f"its order statistics come from Monte Carlo")
        from scipy import integrate

        def one(v):
            return integrate.quad(self.pdf, 0.0, v, epsabs=1e-13, epsrel=1e-12, limit=200)[0] if v > 0 else 0.0

        return np.vectorize(one)(np.asarray(x, float))

    def ppf(self, u):
        """The quantile function: the root of cdf(x) = u."""
        require(self._overrides("cdf") or self._overrides("pdf"),
                f"timing model {self.name!r} has no quantile function; its order statistics come from Monte Carlo")
        from scipy import optimize

        def one(v):
            hi = max(self.mean(), 1.0)
            while self.cdf(hi) < v:
                hi *= 2
            return optimize.brentq(lambda x: self.cdf(x) - v, 0.0, hi, xtol=1e-14)

        return np.vectorize(one)(np.asarray(u, float))

    def require_finite_draws(self, tail: float, params: str) -> None:
        """Refuse a law whose draws overflow: lognormal mu=1000 drew inf times, then NaN round times and a
        fast set chosen on NaN. tail = P(X > TIME_MAX) (the law's closed form) must be at most TAIL_MAX;
        `params` names the law's values."""
        require(tail <= TAIL_MAX,
                f"timing model {self.name!r} ({params}) draws times above {TIME_MAX:g} with probability {tail:.3g} "
                f"(at most {TAIL_MAX:g} allowed): they overflow to inf and the round times to NaN; choose a lighter tail")

    # ------------------------------------------------------------------ order statistics
    @property
    def order_statistic_route(self) -> str:
        """How `expected_order_statistic` is computed: "closed form", "integration" (an i.i.d.
        model with a quantile function or a cdf in closed form) or "monte carlo" (a density
        alone would need an integral inside an integral: Monte Carlo is faster)."""
        closed = self._overrides("ppf") or self._overrides("cdf")
        return "integration" if (self.iid and closed) else "monte carlo"

    def order_statistic_finite(self, k: int, n: int) -> bool:
        """Is E[X_(k:n)] finite? (Heavy tails can make it infinite.)"""
        return True

    def expected_order_statistic(self, k: int, n: int) -> float:
        """E[X_(k:n)], the k-th smallest of n mini-batch times, by the model's route."""
        require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")
        if not self.order_statistic_finite(k, n):
            return float("inf")
        if self.order_statistic_route == "integration" and self._overrides("ppf"):
            return quantile_order_statistic(self.ppf, k, n)
        if self.order_statistic_route == "integration":  # a cdf (or a density): eq. (2.8')
            return expected_order_statistic_groups([(self.cdf, n)], k)
        return self.order_statistic_mc(k, n).mean

    def expected_order_statistics(self, ks, n: int) -> np.ndarray:
        """E[X_(k:n)] for every k in ks."""
        return np.array([self.expected_order_statistic(int(k), n) for k in np.asarray(ks, dtype=int)])

    def order_statistic_mc(self, k: int, n: int, *, rounds: int = MC_ROUNDS, seed: int = 0) -> MonteCarlo:
        """E[X_(k:n)] by Monte Carlo over the rounds `sim` and `dist` see (period r of `seed`),
        at most the model's distinct periods; standard error over the rounds."""
        require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")
        rounds = min(rounds, self.periods() or rounds)
        x = np.array([np.sort(self.block_finish_times(seed, r, n, 1)[:, 0])[k - 1] for r in range(rounds)])
        se = float(x.std(ddof=1) / np.sqrt(rounds)) if rounds > 1 else 0.0
        return MonteCarlo(float(x.mean()), se, rounds)

    # ------------------------------------------------------------------ the draws
    def periods(self) -> Optional[int]:
        """Distinct straggling periods the model draws (None: unlimited); Monte Carlo needs no more."""
        return None

    def fixed_times(self) -> bool:
        """Fixed or replayed times, which can tie exactly with block boundaries."""
        return False

    def set_change_period(self, h: float) -> float:
        """Rounds between changes of the fast set: the straggling period h (its times are held
        for h rounds, eq. 2.2)."""
        return float(h)

    def sets_independent(self, h: float) -> bool:
        """Every round's times are a fresh draw from one law, independent of earlier rounds (the
        fast set's inclusion law is then the same every round: fastest-K's eq. 4.11')."""
        return self.set_change_period(h) == 1 and not self.fixed_times()

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
