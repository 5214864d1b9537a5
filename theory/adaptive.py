"""K chosen online (`lgc train --k auto`): refit the timing model from the rounds a run has
measured, and re-pick K from the trade-off for the budget that remains (DERIVATION.md section 7).

One place for both backends: `sim` and `dist` hand each round's schedule (A_t, t_cut, start,
busy: what the protocol observed) to a KController; its decisions depend on nothing else, so
the same schedules give the same K in either backend.

    ctl = KController(AutoK(budget=400.0), problem, "lgc", eta=0.05)
    for each round t:  K = ctl.k  ...run the round...  ctl.observe(observe(schedule))

observe (eq. 7.1): A_t's workers report their mini-batch time X_i = busy_i - start_i; a straggler
j only tells that X_j > t_cut - start_j (right-censored: under abort semantics it stopped at t_cut).
fit_window (eqs. 7.2-7.4): the censored maximum-likelihood shifted exponential of the window,
pooled over workers, and per worker where a likelihood-ratio test says a worker differs (then a
per-worker fit, shrunk toward the pool by one pseudo-observation).
KController.refit (eq. 7.5): K* of theory.tradeoff under the fitted model for the remaining budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from theory.algorithms import algorithm as algorithm_entry
from theory.errors import require
from theory.schedule import RoundSchedule
from theory.timing import ShiftedExponential, TimingModel
from theory.timing_workers import WorkerShiftedExponential

ALPHA = 0.01  # family-wise level of the per-worker likelihood-ratio tests (eq. 7.3)


# ----------------------------------------------------------------------------- what a round shows
@dataclass(frozen=True)
class Observation:
    """One round as the protocol observed it (eq. 7.1), per worker: `times[i]` its mini-batch
    time X_i when it finished (nan otherwise), `censor[i]` the time it had worked without
    finishing when the round closed (nan when it finished); `wall` the round's time on the clock
    the budget is counted on."""

    round: int
    times: tuple
    censor: tuple
    wall: float

    def as_list(self) -> list:
        return [self.round, list(self.times), list(self.censor), self.wall]

    @classmethod
    def from_list(cls, v) -> "Observation":
        return cls(int(v[0]), tuple(float(x) for x in v[1]), tuple(float(x) for x in v[2]), float(v[3]))


def observe(s: RoundSchedule, *, wall: Optional[float] = None) -> Observation:
    """eq. (7.1): X_i = busy_i - start_i for i in A_t (exact); X_j > t_cut - start_j for a
    straggler (censored; a straggler that started after t_cut tells nothing). `wall`: the clock's
    increment (default the schedule's R_t). The schedule must record start and busy (schedule
    format >= 2: every run writes them; a replayed file of format 1 cannot drive --k auto)."""
    require(len(s.busy) == s.n_workers, f"schedule round {s.round} records no busy times: --k auto needs the "
                                        f"measured times of A_t (schedule format >= 2)")
    start, busy, fast = s.starts(), np.asarray(s.busy, dtype=float), s.fast_mask()
    times = np.where(fast, busy - start, np.nan)
    censor = np.where(fast, np.nan, s.t_cut - start)
    censor = np.where(~fast & (censor <= 0), np.nan, censor)  # busy with round t-1 through t_cut: no information
    return Observation(s.round, tuple(float(x) for x in times), tuple(float(x) for x in censor),
                       float(s.wall if wall is None else wall))


# ----------------------------------------------------------------------------- the censored fit
def _exposure(x: np.ndarray, c: np.ndarray, shift) -> np.ndarray:
    """Per worker (column): sum over its finished rounds of x - shift, plus over its censored
    rounds of (c - shift)_+ (the time at risk beyond the shift; eq. 7.2)."""
    shift = np.broadcast_to(np.asarray(shift, dtype=float), (x.shape[1],))
    return np.nansum(x - shift, axis=0) + np.nansum(np.maximum(c - shift, 0.0), axis=0)


def _rate(events, exposure, shift):
    """d / E, with E floored far below any measured spread: equal times (a deterministic
    cluster) give a very large rate, the deterministic limit, not a division by zero."""
    floor = 1e-9 * np.maximum(np.asarray(shift, dtype=float), 1.0) * np.maximum(events, 1)
    return np.asarray(events, dtype=float) / np.maximum(exposure, floor)


def censored_shifted_exponential(x: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Pooled maximum-likelihood (shift, rate) of right-censored shifted-exponential times
    (eq. 7.2): shift = the smallest finished time, rate = finished count / time at risk.
    x, c: (R, N) arrays, nan where not observed."""
    x, c = np.asarray(x, dtype=float), np.asarray(c, dtype=float)
    done = np.isfinite(x)
    require(int(done.sum()) >= 2, f"the window holds {int(done.sum())} finished mini-batch times; a fit needs >= 2")
    shift = float(np.nanmin(x))
    return shift, float(_rate(done.sum(), _exposure(x, c, shift).sum(), shift))


@dataclass(frozen=True)
class Fit:
    """The fitted timing model of a window: per-worker (shift, rate), the pooled law, the
    workers fitted on their own (`distinct`) and their likelihood-ratio statistics."""

    shifts: np.ndarray
    rates: np.ndarray
    pooled_shift: float
    pooled_rate: float
    distinct: tuple
    lr: np.ndarray
    events: np.ndarray
    rounds: int

    def model(self, per_block: bool = False) -> TimingModel:
        """ShiftedExponential when no worker differs (the i.i.d. route optimize-k takes, closed
        form eq. 2.7), else the per-worker model (Monte Carlo)."""
        if not self.distinct:
            return ShiftedExponential(self.pooled_shift, self.pooled_rate, per_block=per_block)
        return WorkerShiftedExponential(tuple(self.shifts), tuple(self.rates), per_block=per_block)


def lr_threshold(n_workers: int, alpha: float = ALPHA) -> float:
    """The chi^2 (2 degrees of freedom: a worker's own shift and rate) quantile at level alpha / N
    (Bonferroni over the N tests, eq. 7.3): P(chi^2_2 > q) = exp(-q / 2)."""
    return -2.0 * math.log(alpha / n_workers)


def fit_window(obs: Sequence[Observation], *, alpha: float = ALPHA) -> Fit:
    """eqs. (7.2)-(7.4): the pooled censored fit; then, one worker at a time, the worker whose
    likelihood-ratio statistic against the pool of the others is largest is fitted on its own
    when it exceeds lr_threshold, and the pool is refitted without it (a slow worker inflates
    the pool, so every worker would look different from a pool that still holds it). A worker
    fitted on its own has its rate shrunk toward the pool by one pseudo-event (eq. 7.4)."""
    require(len(obs) >= 1, "no rounds to fit")
    x = np.array([o.times for o in obs], dtype=float)
    c = np.array([o.censor for o in obs], dtype=float)
    n = x.shape[1]
    d = np.isfinite(x).sum(axis=0)
    own_shift = np.where(d > 0, np.nanmin(np.where(np.isfinite(x), x, np.inf), axis=0), np.nan)
    e_own = _exposure(x, c, np.where(d > 0, own_shift, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r_own = _rate(d, e_own, np.where(d > 0, own_shift, 0.0))
        ll_own = np.where(d > 0, d * np.log(r_own) - r_own * e_own, 0.0)  # d = 0: the supremum, rate -> 0
    rest = np.arange(n)
    shift_p, rate_p = censored_shifted_exponential(x, c)
    distinct: list[int] = []
    while True:
        ll_pool = d[rest] * math.log(rate_p) - rate_p * _exposure(x[:, rest], c[:, rest], shift_p)
        lr_rest = 2.0 * (ll_own[rest] - ll_pool)
        j = int(np.argmax(lr_rest))
        if lr_rest[j] <= lr_threshold(n, alpha) or rest.size == 1 or int(d[np.delete(rest, j)].sum()) < 2:
            break
        distinct.append(int(rest[j]))
        rest = np.delete(rest, j)
        shift_p, rate_p = censored_shifted_exponential(x[:, rest], c[:, rest])
    lr = 2.0 * (ll_own - (d * math.log(rate_p) - rate_p * _exposure(x, c, shift_p)))  # against the final pool
    shifts, rates = np.full(n, shift_p), np.full(n, rate_p)
    for i in distinct:  # eq. (7.4): the posterior mean of rate_i under a Gamma(1, 1/rate_pool) prior
        s_i = own_shift[i] if d[i] > 0 else shift_p
        shifts[i] = s_i
        rates[i] = (d[i] + 1.0) / (_exposure(x[:, [i]], c[:, [i]], s_i)[0] + 1.0 / rate_p)
    return Fit(shifts=shifts, rates=rates, pooled_shift=shift_p, pooled_rate=rate_p, distinct=tuple(sorted(distinct)),
               lr=lr, events=d, rounds=len(obs))


# ----------------------------------------------------------------------------- the controller
@dataclass(frozen=True)
class AutoK:
    """Settings of K chosen online: refit every `every` rounds on the last `window` rounds, the
    first time after `first` rounds (K = N until then: every worker's time is observed), for a
    time budget `budget` on the run's clock; `alpha` of the per-worker tests (eq. 7.3)."""

    budget: float
    every: int = 10
    window: int = 40
    first: int = 10
    alpha: float = ALPHA
    mc_rounds: Optional[int] = None  # Monte Carlo rounds of E[R] and the straggler statistics (tradeoff's default)
    seed: int = 0

    def __post_init__(self):
        require(math.isfinite(self.budget) and self.budget > 0, f"budget={self.budget} must be > 0")
        require(self.every >= 1, f"k_refit={self.every} must be >= 1")
        require(self.window >= 2, f"k_window={self.window} must be >= 2 (a fit needs two finished times; "
                                  f"a round at K = 1 finishes one)")
        require(self.first >= 1, f"k_first_fit={self.first} must be >= 1")
        require(0 < self.alpha < 1, f"alpha={self.alpha} must be in (0, 1)")


class KController:
    """Chooses the K of every round from the rounds observed so far (eq. 7.5).

    problem: the run's theory.tradeoff.Problem (its timing model is replaced by each fit);
    eta: the run's step size (the bound at that eta). `k` is the K of the next round.
    """

    def __init__(self, settings: AutoK, problem, algorithm: str, *, eta: float):
        require(algorithm_entry(algorithm).waits_for_k,
                f"--k auto needs an algorithm that waits for K workers, not {algorithm}")
        self.settings, self.problem, self.algorithm, self.eta = settings, problem, algorithm, float(eta)
        self.k = problem.N  # until the first fit: every worker's time is observed uncensored
        self.seen = 0
        self.clock = 0.0
        self.obs: list[Observation] = []
        self.history: list[dict] = []

    def due(self, after: int = 0) -> bool:
        """Is a refit due once `after` more rounds are observed?"""
        s, seen = self.settings, self.seen + after
        return seen >= s.first and (seen - s.first) % s.every == 0

    def observe(self, o: Observation, *, clock: Optional[float] = None) -> Optional[dict]:
        """Record round o (the clock advances by o.wall, or is set to `clock`: dist's shared
        clock); after the rounds a refit is due, refit and return its record."""
        self.obs = (self.obs + [o])[-self.settings.window:]
        self.seen += 1
        self.clock = self.clock + o.wall if clock is None else float(clock)
        return self.refit(o.round) if self.due() else None

    def refit(self, t: int) -> dict:
        """Fit the window (eqs. 7.2-7.4) and pick K* for the remaining budget (eq. 7.5). Past the
        budget, or when what remains holds no round of any K (every bound infinite), K stays as it
        is: there is no remaining time to optimise."""
        from theory.tradeoff import tradeoff

        s = self.settings
        fit = fit_window(self.obs, alpha=s.alpha)
        remaining = s.budget - self.clock
        k_before, round_time = self.k, None
        if remaining > 0:
            prob = replace(self.problem, timing=fit.model(self.problem.timing.per_block))
            res = tradeoff(self.algorithm, prob, budget=remaining, eta=self.eta, rounds=s.mc_rounds, seed=s.seed)
            if np.isfinite(res.bound).any():  # else no K fits a round in what remains (tradeoff then says N)
                self.k = int(res.k_star)
                round_time = float(res.round_time[list(res.ks).index(self.k)])
        rec = {"round": int(t), "window": [int(self.obs[0].round), int(self.obs[-1].round)], "clock": self.clock,
               "remaining": remaining, "pooled": not fit.distinct, "distinct": list(fit.distinct),
               "shift": [float(v) for v in fit.shifts], "rate": [float(v) for v in fit.rates],
               "lr": [float(v) for v in fit.lr], "k_before": int(k_before), "k": int(self.k),
               "expected_round_time": round_time}
        self.history.append(rec)
        return rec

    # checkpoints: plain containers (lgc.checkpoint loads with weights_only)
    def state_dict(self) -> dict:
        return {"k": int(self.k), "seen": int(self.seen), "clock": float(self.clock),
                "obs": [o.as_list() for o in self.obs], "history": [dict(h) for h in self.history]}

    def load_state_dict(self, st: dict) -> None:
        self.k, self.seen, self.clock = int(st["k"]), int(st["seen"]), float(st["clock"])
        require(1 <= self.k <= self.problem.N, f"checkpoint: K={self.k} must satisfy 1 <= K <= N={self.problem.N}")
        self.obs = [Observation.from_list(v) for v in st["obs"]]
        self.history = [dict(h) for h in st["history"]]
