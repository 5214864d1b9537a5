"""K chosen online (`lgc train --k auto`): refit the timing model from the rounds a run has
measured, and re-pick K from the trade-off for the budget that remains (DERIVATION.md section 7).

One place for both backends: `sim` and `dist` hand each round's schedule (A_t, t_cut, start,
busy: what the protocol observed) to a KController; its decisions depend on nothing else, so
the same schedules give the same K in either backend.

    ctl = KController(AutoK(budget=400.0), problem, "lgc", eta=0.05)
    for each round t:  K = ctl.k  ...run the round...  ctl.observe(observe(schedule))

observe (eq. 7.1): A_t's workers report their mini-batch time X_i = busy_i - start_i; a straggler
j tells that X_j > t_cut - start_j (right-censored), and, under abort semantics with the work split
evenly, its m_j finished blocks put X_j in (M c_j/(m_j+1), M c_j/m_j] (interval-censored).
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
from scipy.stats import chi2

from theory.algorithms import algorithm as algorithm_entry
from theory.errors import require
from theory.schedule import RoundSchedule
from theory.timing import ShiftedExponential
from theory.timing_model import TimingModel
from theory.timing_workers import WorkerShiftedExponential

ALPHA = 0.01  # family-wise level of the per-worker likelihood-ratio tests (eq. 7.3)


# ----------------------------------------------------------------------------- what a round shows
@dataclass(frozen=True)
class Observation:
    """One round as the protocol observed it (eq. 7.1), per worker: `times[i]` its mini-batch
    time X_i when it finished (nan otherwise), `censor[i]` the time it had worked without
    finishing when the round closed (nan when it finished); `wall` the round's time on the clock
    the budget is counted on; `blocks[i]` the blocks it finished (M for A_t; empty in checkpoints
    written before the interval-censored fit: those rounds are right-censored only); `loss` the
    round's training loss at w_t and `dev2` its ||gS_t - gA_t||^2 (eqs. 7.7-7.9; nan where not measured)."""

    round: int
    times: tuple
    censor: tuple
    wall: float
    blocks: tuple = ()
    loss: float = math.nan
    dev2: float = math.nan

    def as_list(self) -> list:
        return [self.round, list(self.times), list(self.censor), self.wall, list(self.blocks), self.loss, self.dev2]

    @classmethod
    def from_list(cls, v) -> "Observation":
        blocks = tuple(int(b) for b in v[4]) if len(v) > 4 else ()
        extra = tuple(float(x) for x in v[5:7])  # checkpoints before eqs. 7.7-7.9: nan
        return cls(int(v[0]), tuple(float(x) for x in v[1]), tuple(float(x) for x in v[2]), float(v[3]), blocks, *extra)

    def interval(self, even_split: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per worker, the censored X in (lo, hi] (nan where X was seen or nothing is known). even_split (abort
        semantics, a mini-batch's work spread evenly over its M blocks, eq. 2.2): m_j = floor(M c_j / X_j), so
        X_j in (M c_j/(m_j+1), M c_j/m_j] (hi = inf for m_j = 0; eq. 7.1'); otherwise (c_j, inf)."""
        c = np.asarray(self.censor, dtype=float)
        if not (even_split and len(self.blocks) == len(c)):
            return c, np.where(np.isfinite(c), np.inf, np.nan)
        m = np.asarray(self.blocks, dtype=float)
        n_blocks = m.max()  # every worker of A_t reports M
        with np.errstate(divide="ignore"):
            hi = np.where(m > 0, n_blocks * c / np.maximum(m, 1), np.inf)
        return n_blocks * c / (m + 1), np.where(np.isfinite(c), hi, np.nan)


def observe(s: RoundSchedule, *, wall: Optional[float] = None, loss: float = math.nan,
            dev2: float = math.nan) -> Observation:
    """eq. (7.1): X_i = busy_i - start_i for i in A_t (exact); X_j > t_cut - start_j for a
    straggler (censored; a straggler that started after t_cut tells nothing). `wall`: the clock's
    increment (default the schedule's R_t). The schedule must record start and busy (schedule
    format >= 2: every run writes them; a replayed file of format 1 cannot drive --k auto).
    loss, dev2: the round's training loss and ||gS_t - gA_t||^2, for the error model's refit (eqs. 7.7-7.9)."""
    require(len(s.busy) == s.n_workers, f"schedule round {s.round} records no busy times: --k auto needs the "
                                        f"measured times of A_t (schedule format >= 2)")
    start, busy, fast = s.starts(), np.asarray(s.busy, dtype=float), s.fast_mask()
    times = np.where(fast, busy - start, np.nan)
    censor = np.where(fast, np.nan, s.t_cut - start)
    censor = np.where(~fast & (censor <= 0), np.nan, censor)  # busy with round t-1 through t_cut: no information
    return Observation(s.round, tuple(float(x) for x in times), tuple(float(x) for x in censor),
                       float(s.wall if wall is None else wall), tuple(int(b) for b in s.blocks_done), float(loss),
                       float(dev2))


# ----------------------------------------------------------------------------- the censored fit
def _exposure(x: np.ndarray, lo: np.ndarray, shift) -> np.ndarray:
    """Per worker (column): sum over its finished rounds of x - shift, plus over its censored
    rounds of (lo - shift)_+ (the time at risk beyond the shift; eq. 7.2)."""
    shift = np.broadcast_to(np.asarray(shift, dtype=float), (x.shape[1],))
    return np.nansum(x - shift, axis=0) + np.nansum(np.maximum(lo - shift, 0.0), axis=0)


def _widths(lo: np.ndarray, hi: np.ndarray, shift) -> np.ndarray:
    """(R, N): hi - max(lo, shift) for the finite intervals, nan elsewhere (eq. 7.2')."""
    shift = np.broadcast_to(np.asarray(shift, dtype=float), (lo.shape[1],))
    with np.errstate(invalid="ignore"):
        w = hi - np.maximum(lo, shift)
    return np.where(np.isfinite(w), np.maximum(w, 0.0), np.nan)


def _interval_terms(lam, w):
    """Per column: sum_l log(1 - exp(-lam w_l)) (the intervals' upper ends, eq. 7.2'), 0 where there are none."""
    lam = np.asarray(lam, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.log(-np.expm1(-lam[None] * w))
    return np.nansum(np.where(np.isfinite(w), t, np.nan), axis=0)


def _rate(events, exposure, w, shift, iters: int = 60):
    """The rate maximising events log lam - lam exposure + sum_l log(1 - exp(-lam w_l)) (eq. 7.2'): concave in
    lam, its score events/lam - exposure + sum_l w_l/(exp(lam w_l) - 1) falls from >= 0 at events/E to <= 0
    at (events + n_w)/E, n_w the number of intervals; Newton's steps kept inside that bracket (bisection
    where a step would leave it). Without intervals it is d / E. E is floored far below any measured spread:
    equal times (a deterministic cluster) give a very large rate, the deterministic limit, not a division
    by zero."""
    events = np.asarray(events, dtype=float)
    floor = 1e-9 * np.maximum(np.asarray(shift, dtype=float), 1.0) * np.maximum(events, 1)
    e = np.maximum(exposure, floor)
    has = np.isfinite(w)
    n_w = has.sum(axis=0)
    lo, hi = events / e, (events + n_w) / e
    if not n_w.any():
        return lo
    wz = np.where(has, w, 1.0)
    # the score is convex and decreasing: Newton's steps from a point where it is >= 0 rise to the root
    lam = np.where(lo > 0, lo, hi / 2)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for _ in range(iters):
            em = np.expm1(lam[None] * wz)
            score = np.where(lam > 0, events / lam, np.inf) - e + np.where(has, wz / em, 0.0).sum(axis=0)
            slope = -events / lam**2 - np.where(has, wz * wz * (em + 1) / (em * em), 0.0).sum(axis=0)
            up = score > 0
            lo, hi = np.where(up, lam, lo), np.where(up, hi, lam)
            step = lam - score / slope
            new = np.where((step >= lo) & (step <= hi), step, (lo + hi) / 2)
            done = np.all(np.abs(new - lam) <= 1e-11 * np.maximum(new, 1e-300)) or np.all(hi - lo <= 1e-11 * hi)
            lam = new
            if done:
                break
    return lam


def _loglik(events, exposure, w, lam):
    """eq. (7.2'): d log lam - lam E + sum_l log(1 - exp(-lam w_l)); 0 where nothing was observed (lam = 0)."""
    lam = np.asarray(lam, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.where(events > 0, events * np.log(lam), 0.0) - lam * exposure + _interval_terms(lam, w)
    return np.where(lam > 0, ll, 0.0)


def censored_shifted_exponential(x: np.ndarray, lo: np.ndarray, hi: np.ndarray | None = None) -> tuple[float, float]:
    """Pooled maximum-likelihood (shift, rate) of censored shifted-exponential times (eqs. 7.2, 7.2'):
    shift = the smallest finished time, rate = the root of the score (d / time at risk when every censored
    time is right-censored). x, lo, hi: (R, N) arrays, nan where not observed; X in (lo, hi] for a censored
    time (hi = inf or absent: right-censored at lo). Under abort semantics every lo is >= its round's
    finished times, so the likelihood increases in the shift up to the smallest finished time."""
    x, lo = np.asarray(x, dtype=float), np.asarray(lo, dtype=float)
    hi = np.where(np.isfinite(lo), np.inf, np.nan) if hi is None else np.asarray(hi, dtype=float)
    done = np.isfinite(x)
    require(int(done.sum()) >= 2, f"the window holds {int(done.sum())} finished mini-batch times; a fit needs >= 2")
    shift = float(np.nanmin(x))
    flat = lambda a: a.reshape(-1, 1)
    rate = _rate(np.array([done.sum()]), np.array([_exposure(x, lo, shift).sum()]), _widths(flat(lo), flat(hi), shift),
                 shift)
    return shift, float(rate[0])


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
    """The chi^2 quantile with 3 degrees of freedom at level alpha / N (Bonferroni over the N tests,
    eq. 7.3): the rate is a regular parameter (chi^2_1), the shift is not (its part of the statistic is
    about 2 Exp(1) = chi^2_2)."""
    return float(chi2.isf(alpha / n_workers, 3))


def fit_window(obs: Sequence[Observation], *, alpha: float = ALPHA, even_split: bool = False) -> Fit:
    """eqs. (7.2)-(7.4): the pooled censored fit; then, one worker at a time, the worker whose
    likelihood-ratio statistic against the pool of the others is largest is fitted on its own
    when it exceeds lr_threshold, and the pool is refitted without it (a slow worker inflates
    the pool, so every worker would look different from a pool that still holds it). A worker
    fitted on its own has its rate shrunk toward the pool by one pseudo-event (eq. 7.4).
    even_split: the rounds ran under abort semantics with each mini-batch's work split evenly over
    its blocks (not per_block), so a straggler's blocks narrow its time to an interval (eq. 7.1')."""
    require(len(obs) >= 1, "no rounds to fit")
    x = np.array([o.times for o in obs], dtype=float)
    lo, hi = (np.array(a, dtype=float) for a in zip(*(o.interval(even_split) for o in obs)))
    n = x.shape[1]
    d = np.isfinite(x).sum(axis=0)
    with np.errstate(all="ignore"):  # a worker that was never seen: no shift of its own
        own_shift = np.fmin(np.nanmin(np.where(np.isfinite(x), x, np.inf), axis=0),
                            np.nanmin(np.where(np.isfinite(lo), lo, np.inf), axis=0))
    own_shift = np.where(np.isfinite(own_shift), own_shift, 0.0)
    # below every own observation each term of l_i rises with the shift, so l_i there is <= its supremum: the
    # LR_i below can only be smaller than the exact statistic (the test errs toward the pool)
    e_own, w_own = _exposure(x, lo, own_shift), _widths(lo, hi, own_shift)
    r_own = _rate(d, e_own, w_own, own_shift)
    ll_own = _loglik(d, e_own, w_own, r_own)  # nothing finished and no interval: the supremum 0, rate -> 0

    def ll_pool(cols, shift, rate):
        return _loglik(d[cols], _exposure(x[:, cols], lo[:, cols], shift), _widths(lo[:, cols], hi[:, cols], shift),
                       np.full(len(cols), rate))

    rest = np.arange(n)
    shift_p, rate_p = censored_shifted_exponential(x, lo, hi)
    distinct: list[int] = []
    while True:
        lr_rest = 2.0 * (ll_own[rest] - ll_pool(rest, shift_p, rate_p))
        j = int(np.argmax(lr_rest))
        if lr_rest[j] <= lr_threshold(n, alpha) or rest.size == 1 or int(d[np.delete(rest, j)].sum()) < 2:
            break
        distinct.append(int(rest[j]))
        rest = np.delete(rest, j)
        shift_p, rate_p = censored_shifted_exponential(x[:, rest], lo[:, rest], hi[:, rest])
    lr = 2.0 * (ll_own - ll_pool(np.arange(n), shift_p, rate_p))  # against the final pool
    shifts, rates = np.full(n, shift_p), np.full(n, rate_p)
    for i in distinct:  # eq. (7.4): one pseudo-event at the pool's mean excess (a Gamma(1, 1/rate_pool) prior)
        s_i = float(np.nanmin(x[:, i])) if d[i] > 0 else shift_p
        col = [i]
        shifts[i] = s_i
        rates[i] = _rate(np.array([d[i] + 1.0]), _exposure(x[:, col], lo[:, col], s_i) + 1.0 / rate_p,
                         _widths(lo[:, col], hi[:, col], s_i), s_i)[0]
    return Fit(shifts=shifts, rates=rates, pooled_shift=shift_p, pooled_rate=rate_p, distinct=tuple(sorted(distinct)),
               lr=lr, events=d, rounds=len(obs))


# ----------------------------------------------------------------------------- the controller
@dataclass(frozen=True)
class AutoK:
    """Settings of K chosen online: refit every `every` rounds on the last `window` rounds, the
    first time after `first` rounds (K = N until then: every worker's time is observed), for a
    time budget `budget` on the run's clock; `alpha` of the per-worker tests (eq. 7.3); `criterion`: which
    K* is taken (eq. 7.5): "predict", the error model's (theory/predict_k.py, as optimize-k's recommended
    k_star) on the coefficients refitted from the run (eqs. 7.7-7.9), or "bound", the bound's."""

    budget: float
    every: int = 10
    window: int = 40
    first: int = 10
    alpha: float = ALPHA
    mc_rounds: Optional[int] = None  # Monte Carlo rounds of E[R] and the straggler statistics (tradeoff's default)
    seed: int = 0
    criterion: str = "predict"

    def __post_init__(self):
        from theory.predict_k import CRITERIA

        require(self.criterion in CRITERIA, f"k_criterion={self.criterion!r} must be one of {', '.join(CRITERIA)}")
        require(math.isfinite(self.budget) and self.budget > 0, f"budget={self.budget} must be > 0")
        require(self.every >= 1, f"k_refit={self.every} must be >= 1")
        require(self.window >= 2, f"k_window={self.window} must be >= 2 (a fit needs two finished times; "
                                  f"a round at K = 1 finishes one)")
        require(self.first >= 1, f"k_first_fit={self.first} must be >= 1")
        require(0 < self.alpha < 1, f"alpha={self.alpha} must be in (0, 1)")


class KController:
    """Chooses the K of every round from the rounds observed so far (eq. 7.5).

    problem: the run's theory.tradeoff.Problem (its timing model is replaced by each fit, its Delta by the
    remaining gap (7.7), and for the error model its sigma2 and zeta2 by their refits (7.8-7.9));
    eta, momentum: the run's step size and server momentum; bands: the error model's curvature bands
    (theory.predict.Bands; None: the scalar constants' prior spectrum, eq. 8.12). `k` is the K of the next round.
    """

    def __init__(self, settings: AutoK, problem, algorithm: str, *, eta: float, momentum: float = 0.0, bands=None):
        require(algorithm_entry(algorithm).waits_for_k,
                f"--k auto needs an algorithm that waits for K workers, not {algorithm}")
        self.settings, self.problem, self.algorithm, self.eta = settings, problem, algorithm, float(eta)
        self.momentum, self.bands = float(momentum), bands
        self.k = problem.N  # until the first fit: every worker's time is observed uncensored
        self.seen = 0
        self.clock = 0.0
        self.f0 = math.nan  # round 0's training loss: F*hat = f0 - Delta (eq. 7.7)
        self.obs: list[Observation] = []
        self.history: list[dict] = []

    def due(self, after: int = 0) -> bool:
        """Is a refit due once `after` more rounds are observed?"""
        s, seen = self.settings, self.seen + after
        return seen >= s.first and (seen - s.first) % s.every == 0

    def observe(self, o: Observation, *, clock: Optional[float] = None) -> Optional[dict]:
        """Record round o (the clock advances by o.wall, or is set to `clock`: dist's shared
        clock); after the rounds a refit is due, refit and return its record."""
        if self.seen == 0:
            self.f0 = o.loss
        self.obs = (self.obs + [o])[-self.settings.window:]
        self.seen += 1
        self.clock = self.clock + o.wall if clock is None else float(clock)
        return self.refit(o.round) if self.due() else None

    def coefficients(self):
        """The error model's coefficients for the remaining horizon, from the window (eqs. 7.7-7.9)."""
        from theory.adaptive_model import Coefficients, deviation_regressors, fit_noise, remaining_gap

        p = self.problem
        f_star = self.f0 - p.Delta if math.isfinite(self.f0) else None
        recent = self.obs[-min(self.settings.every, len(self.obs)):]  # the rounds since the previous refit
        gap, gap_fit = remaining_gap([o.loss for o in recent], f_star, p.Delta)
        rows = []
        for o in self.obs:
            fast = np.isfinite(np.asarray(o.times, dtype=float))
            x = None
            if math.isfinite(o.dev2) and len(o.blocks) == len(fast):
                x = deviation_regressors(int(fast.sum()), [b for b, f in zip(o.blocks, fast) if not f], N=p.N, B=p.B,
                                         M=p.M)
            if x is not None:
                rows.append((*x, o.dev2))
        x_z, x_s, y = (np.array(v, dtype=float) for v in zip(*rows)) if rows else (np.zeros(0),) * 3
        sigma2, zeta2, noise_fit = fit_noise(x_z, x_s, y, sigma2=p.sigma2, zeta2=p.zeta2)
        last = next((h for h in reversed(self.history) if h.get("noise_fit") in ("lsq", "scale", "kept")), None)
        if noise_fit == "constants" and last is not None:  # a window without reporters: the last refit's values stand
            sigma2, zeta2, noise_fit = last["sigma2"], last["zeta2"], "kept"
        return Coefficients(gap=gap, f_star=f_star, sigma2=sigma2, zeta2=zeta2, gap_fit=gap_fit, noise_fit=noise_fit)

    def refit(self, t: int) -> dict:
        """Fit the window (eqs. 7.2-7.4, 7.7-7.9) and pick K* for the remaining budget (eq. 7.5): the error
        model's (criterion "predict") or the bound's, both from the remaining gap. Past the budget, or when what
        remains holds no round of any K (every bound infinite and no K with a round), K stays as it is: there is
        no remaining time to optimise."""
        from theory.predict_k import recommend
        from theory.tradeoff import tradeoff

        s = self.settings
        even = self.problem.semantics == "abort" and not self.problem.timing.per_block  # eq. (7.1')
        fit = fit_window(self.obs, alpha=s.alpha, even_split=even)
        coef = self.coefficients()
        remaining = s.budget - self.clock
        k_before, round_time, k_bound = self.k, None, None
        if remaining > 0:
            # the bound keeps the constants' sigma2 and zeta2 (suprema it needs); both start from the remaining gap
            prob = replace(self.problem, timing=fit.model(self.problem.timing.per_block), Delta=coef.gap)
            res = tradeoff(self.algorithm, prob, budget=remaining, eta=self.eta, rounds=s.mc_rounds, seed=s.seed)
            k_bound = int(res.k_star)
            k_new = k_bound if np.isfinite(res.bound).any() else None  # else no K fits a round in what remains
            if s.criterion == "predict":
                choice = recommend(res, replace(prob, sigma2=coef.sigma2, zeta2=coef.zeta2), self.bands,
                                   momentum=self.momentum, warmup=0, seed=s.seed)
                k_new = int(choice.k_star) if not choice.note else k_new  # a note: the model did not choose
            if k_new is not None:
                self.k = k_new
                round_time = float(res.round_time[list(res.ks).index(self.k)])
        rec = {"round": int(t), "window": [int(self.obs[0].round), int(self.obs[-1].round)], "clock": self.clock,
               "remaining": remaining, "pooled": not fit.distinct, "distinct": list(fit.distinct),
               "shift": [float(v) for v in fit.shifts], "rate": [float(v) for v in fit.rates],
               "lr": [float(v) for v in fit.lr], "k_before": int(k_before), "k": int(self.k),
               "expected_round_time": round_time, "criterion": s.criterion, "k_bound": k_bound,
               "gap": coef.gap, "gap_fit": coef.gap_fit, "f_star": coef.f_star, "sigma2": coef.sigma2,
               "zeta2": coef.zeta2, "noise_fit": coef.noise_fit}
        self.history.append(rec)
        return rec

    # checkpoints: plain containers (lgc.checkpoint loads with weights_only)
    def state_dict(self) -> dict:
        return {"k": int(self.k), "seen": int(self.seen), "clock": float(self.clock), "f0": float(self.f0),
                "obs": [o.as_list() for o in self.obs], "history": [dict(h) for h in self.history]}

    def load_state_dict(self, st: dict) -> None:
        self.k, self.seen, self.clock = int(st["k"]), int(st["seen"]), float(st["clock"])
        self.f0 = float(st.get("f0", math.nan))  # checkpoints before eq. 7.7: the constants' Delta
        require(1 <= self.k <= self.problem.N, f"checkpoint: K={self.k} must satisfy 1 <= K <= N={self.problem.N}")
        self.obs = [Observation.from_list(v) for v in st["obs"]]
        self.history = [dict(h) for h in st["history"]]
