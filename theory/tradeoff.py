"""The error-time trade-off and the optimal straggler threshold K* (theory/DERIVATION.md section 5).

For each K: E[R(K)] from theory/order_stats.py, the rounds that fit a wall-clock budget,
T(K) = floor(tau / E[R(K)]) (eq. 5.1), and the bound of theory/bounds.py at T(K) (eq. 5.2);
or, for a target error eps, the fewest rounds T_eps(K) whose bound is <= eps and the time
E[R(K)] T_eps(K) (eq. 5.3). K* minimizes the chosen criterion; it is reported as the bound
gives it, N included. The step size is the largest the bound allows (eta_max; lgc: eqs. 4.22, 4.28, 4.31) or
a given one, or optimized per K on request (eq. 5.4).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theory import bounds, gram
from theory.algorithms import algorithm as algorithm_entry
from theory.errors import require
from theory.order_stats import CommModel, expected_round_times
from theory.schedule import DEFAULT_SEMANTICS, require_semantics
from theory.set_models import fastest_k_set_model, inclusion_from_timing, independent_sets, set_change_period
from theory.timing import ShiftedExponential
from theory.timing_model import TimingModel

DEFAULT_ETA_L = 0.5  # default step size eta = 0.5 / L
ETA_GRID = 24  # step sizes tried per K when optimizing eta (log-spaced up to eta_max), then refined


@dataclass(frozen=True)
class Problem:
    """What the trade-off needs besides K: workers, batches, constants, timing."""

    N: int
    M: int
    B: int
    L: float
    sigma2: float
    zeta2: float
    Delta: float
    timing: TimingModel = field(default_factory=ShiftedExponential)
    h: float = 1
    semantics: str = DEFAULT_SEMANTICS
    comm: CommModel = field(default_factory=CommModel)
    report_latency: float = 0.0
    delta: float | None = None  # Lipschitz constant of grad f_i - grad F (A6), optional
    # the workers' Gram envelope (A4G, theory/gram.py: GramPoints or SeparableEnvelope), optional: the set
    # terms become quadratic forms in it (DERIVATION.md section 4.7) under abort semantics
    dissimilarity: object | None = field(default=None, compare=False)
    # strong convexity (A7, DERIVATION.md section 4.8), optional: F is mu-strongly convex; with it, fastest-K's and
    # lgc's set terms are charged round by round through G(w*) and the distance to w* (theory/strong.py), and each K
    # keeps the smaller bound. optimum: the Gram matrix at w* and its slopes (theory.strong.OptimumGram); absent,
    # N zeta2 (I - 11^T/N), L and delta (absent: 2L, a nonconvex f_i allowed; pass delta=L when every f_i is
    # convex) stand in for it (eq. 4.44)
    mu: float | None = None
    optimum: object | None = field(default=None, compare=False)

    def __post_init__(self):
        require(self.N >= 1, f"N={self.N} must be >= 1")
        require(self.M >= 1, f"M={self.M} must be >= 1")
        require(self.B >= 1 and self.B % self.M == 0, f"B={self.B} must be a positive multiple of M={self.M}")
        require(self.L > 0, f"L={self.L} must be > 0")
        for k in ("sigma2", "zeta2", "Delta"):
            require(getattr(self, k) >= 0, f"{k}={getattr(self, k)} must be >= 0")
        require(self.h >= 1, f"straggling period h={self.h} must be >= 1")
        require(self.delta is None or self.delta >= 0, f"delta={self.delta} must be >= 0")
        require_semantics(self.semantics)
        require(self.dissimilarity is None or self.dissimilarity.n == self.N,
                f"the Gram matrix is for N={getattr(self.dissimilarity, 'n', None)} workers, the problem has N={self.N}")
        require(self.mu is None or 0 < self.mu <= self.L, f"mu={self.mu} must satisfy 0 < mu <= L={self.L} "
                                                          f"(strong convexity; absent: not assumed)")
        require(self.optimum is None or self.optimum.n == self.N,
                f"the Gram matrix at w* is for N={getattr(self.optimum, 'n', None)} workers, the problem has N={self.N}")

    @classmethod
    def from_constants(cls, constants, *, N: int, M: int, B: int, **settings) -> "Problem":
        """The Problem of `constants` for N workers, M blocks and B samples: L, sigma2, zeta2, Delta
        and the optional delta, mu and gram (the workers' Gram matrices, DERIVATION.md 4.7) of a
        theory.constants.Constants, a constants mapping (validated) or the path of a constants
        JSON; `settings` are the other fields (timing, h, semantics, comm, report_latency, optimum).
        The one way optimize-k and `--k auto` turn a constants file into a Problem."""
        from theory.constants import GRAM_KEY, KEYS, OPTIONAL_KEYS, Constants, read_constants, validate_constants

        if isinstance(constants, dict):
            c = validate_constants(dict(constants), source="constants")
        else:
            read = constants if isinstance(constants, Constants) else read_constants(constants)
            c = {k: getattr(read, k) for k in KEYS + OPTIONAL_KEYS + (GRAM_KEY,)}
        g = c.get(GRAM_KEY)
        require(g is None or len(g[0]) == N, f"the constants' gram is for N={len(g[0]) if g else 0} workers, but the "
                                             f"problem has N={N} (estimate the constants with the same workers, or "
                                             f"remove gram from the file)")
        return cls(N=N, M=M, B=B, L=c["L"], sigma2=c["sigma2"], zeta2=c["zeta2"], Delta=c["Delta"],
                   delta=c.get("delta"), mu=c.get("mu"),
                   dissimilarity=None if g is None else gram.GramPoints(g), **settings)


@dataclass(frozen=True)
class Tradeoff:
    algorithm: str
    criterion: str  # "budget" or "target"
    ks: np.ndarray
    round_time: np.ndarray
    round_time_se: np.ndarray
    round_time_method: str
    rounds: np.ndarray  # T(K): within the budget, or needed for the target
    eta: np.ndarray
    bound: np.ndarray  # at T(K)
    terms: dict
    time: np.ndarray  # budget criterion: the time used, T E[R]; target: time to reach it
    k_star: int
    budget: float | None
    target: float | None
    m_mean: np.ndarray
    m_inv: np.ndarray
    zero_frac: np.ndarray
    near_best: np.ndarray | None = None  # K whose criterion is within the Monte Carlo error of K*'s

    def rows(self) -> list[dict]:
        out = []
        for i, k in enumerate(self.ks):
            r = {"K": int(k), "E[R]": float(self.round_time[i]), "E[R]_se": float(self.round_time_se[i]),
                 "near_best": bool(self.near_best[i]) if self.near_best is not None else None,
                 "T": float(self.rounds[i]), "eta": float(self.eta[i]), "bound": float(self.bound[i]),
                 "time": float(self.time[i]), "E[m_j]": float(self.m_mean[i])}
            r.update({f"term:{n}": float(v[i]) for n, v in self.terms.items()})
            out.append(r)
        return out


BOUND_CHUNK = 1 << 13  # K values per bound evaluation: its temporaries are O(chunk), not O(N)


def _bound(algorithm, prob: Problem, ks, eta, T, stats_idx, stats, set_model, h_eff, inclusion=None, strong=None):
    """The bound (eq. 5.2) per K, evaluated BOUND_CHUNK K values at a time (elementwise in K,
    so the chunks give the same numbers as one call; only the memory differs). strong: (StrongBound, the
    positions of ks in its law), whose bound (eqs. 4.48-4.49) replaces the other where smaller (eq. 4.50)."""
    n = len(ks)
    if strong is not None:
        box = _bound(algorithm, prob, ks, eta, T, stats_idx, stats, set_model, h_eff, inclusion)
        sc = strong[0](eta, T, cols=strong[1])
        take = sc["total"] < box["total"]
        names = list(box["terms"]) + [k for k in sc["terms"] if k not in box["terms"]]
        pick = lambda d, k: np.broadcast_to(d["terms"].get(k, 0.0), take.shape)
        return dict(total=np.where(take, sc["total"], box["total"]),
                    terms={k: np.where(take, pick(sc, k), pick(box, k)) for k in names})
    if n <= BOUND_CHUNK:
        return _bound_chunk(algorithm, prob, ks, eta, T, stats_idx, stats, set_model, h_eff, inclusion)
    eta, T = np.broadcast_to(eta, n), np.broadcast_to(T, n)
    total, terms = np.empty(n), None
    for lo in range(0, n, BOUND_CHUNK):
        sl = slice(lo, lo + BOUND_CHUNK)
        inc = None if inclusion is None else {k: np.broadcast_to(v, n)[sl] for k, v in inclusion.items()}
        b = _bound_chunk(algorithm, prob, ks[sl], eta[sl], T[sl], stats_idx[sl], stats, set_model, h_eff, inc)
        if terms is None:
            terms = {k: np.empty(n) for k in b["terms"]}
        total[sl] = b["total"]
        for k, v in b["terms"].items():
            terms[k][sl] = v
    return dict(total=total, terms=terms)


def _bound_chunk(algorithm, prob: Problem, ks, eta, T, stats_idx, stats, set_model, h_eff, inclusion=None):
    zero_frac = np.clip(stats.zero_frac[stats_idx], 0, 1)
    return bounds.evaluate(
        algorithm, N=prob.N, K=ks, B=prob.B, M=prob.M, eta=eta, T=T, L=prob.L, sigma2=prob.sigma2,
        zeta2=prob.zeta2, Delta=prob.Delta, h=h_eff, m_inv=np.clip(stats.m_inv[stats_idx], 0, 1 - zero_frac),
        zero_frac=zero_frac, delta=prob.delta, set_model=set_model, **(inclusion or {}))


def _rounds_for_target(algorithm, prob, ks, eta, target, stats, idx, set_model, h_eff, inclusion=None, t_max=1e15,
                       strong=None):
    """Fewest rounds T with bound(T) <= target, per K (bisection, eq. 5.3); inf if never."""
    f = lambda T: _bound(algorithm, prob, ks, eta, T, idx, stats, set_model, h_eff, inclusion, strong)["total"]
    hi = np.full(len(ks), t_max)
    ok = f(hi) <= target
    lo = np.zeros(len(ks))
    hi = np.where(ok, hi, np.inf)
    for _ in range(64):
        live = ok & (hi - lo > 1)
        if not live.any():
            break
        mid = np.where(live, np.floor((lo + hi) / 2), hi)
        good = f(np.where(live, mid, 1.0)) <= target
        hi = np.where(live & good, mid, hi)
        lo = np.where(live & ~good, mid, lo)
    return hi


def _refine_eta(algorithm, prob, ks, grid, best, rt, stats, idx, set_model, h_eff, budget, inclusion=None, iters=25,
                strong=None):
    """Golden-section search in log eta between the grid neighbours of the best grid point."""
    T = np.floor(budget / rt.mean)
    f = lambda e: _bound(algorithm, prob, ks, e, T, idx, stats, set_model, h_eff, inclusion, strong)
    lg = np.log(grid)
    i = np.argmin(np.abs(lg - np.log(best["eta"])[None, :]), axis=0)
    cols = np.arange(len(ks))
    lo = lg[np.maximum(i - 1, 0), cols]
    hi = lg[np.minimum(i + 1, len(grid) - 1), cols]
    r = (np.sqrt(5) - 1) / 2
    a, b = hi - r * (hi - lo), lo + r * (hi - lo)
    fa, fb = f(np.exp(a))["total"], f(np.exp(b))["total"]
    for _ in range(iters):
        left = fa <= fb
        hi = np.where(left, b, hi)
        lo = np.where(left, lo, a)
        b_new = np.where(left, a, lo + r * (hi - lo))
        a_new = np.where(left, hi - r * (hi - lo), b)
        fb_new = np.where(left, fa, np.nan)
        fa_new = np.where(left, np.nan, fb)
        a, b = a_new, b_new
        fresh = f(np.exp(np.where(left, a, b)))["total"]
        fa = np.where(left, fresh, fa_new)
        fb = np.where(left, fb_new, fresh)
    e = np.exp(np.where(fa <= fb, a, b))
    out = f(e)
    take = out["total"] < best["total"]
    return dict(T=best["T"], eta=np.where(take, e, best["eta"]), total=np.where(take, out["total"], best["total"]),
                terms={k: np.where(take, out["terms"][k], best["terms"][k]) for k in best["terms"]})


MC_Z = 2.0  # "within the Monte Carlo error": two standard errors


def _near_best(algorithm, prob, ks, best, crit, rt, stats, set_model, h_eff, budget, inclusion, strong=None) -> np.ndarray:
    """K whose criterion can lie below K*'s within the Monte Carlo error: E[R], m_inv and zero_frac moved by
    MC_Z standard errors each way (every corner), carried through T = floor(tau / E[R]) and the bound at each
    K's step size (budget); target: the time T_eps E[R] with E[R] moved. Intervals overlapping K*'s."""
    near = np.zeros(len(ks), dtype=bool)
    if not np.isfinite(crit).any():
        return near
    i_star = int(np.argmin(crit))
    cand = np.flatnonzero(np.isfinite(crit) & (crit <= 2 * crit[i_star] + 1e-300))  # the others cannot be near
    d_r = MC_Z * rt.se[cand]
    if budget is None:
        t = best["T"][cand]
        lo, hi = t * np.maximum(rt.mean[cand] - d_r, 0), t * (rt.mean[cand] + d_r)
    else:
        from types import SimpleNamespace

        zero = np.zeros(len(cand))
        d_m = zero if stats.m_inv_se is None else MC_Z * stats.m_inv_se[cand]
        d_z = zero if stats.zero_frac_se is None else MC_Z * stats.zero_frac_se[cand]
        lo_v = hi_v = None  # running min and max over the 8 corners: 2 arrays, not 8 (N = 10^6)
        for sr in (-1, 1):
            T = np.floor(budget / np.maximum(rt.mean[cand] + sr * d_r, 1e-300))
            for sm in (-1, 1):
                for sz in (-1, 1):
                    zf = np.clip(stats.zero_frac[cand] + sz * d_z, 0, 1)
                    st = SimpleNamespace(zero_frac=zf, m_inv=np.clip(stats.m_inv[cand] + sm * d_m, 0, 1 - zf))
                    inc = None if inclusion is None else {k: v[cand] for k, v in inclusion.items()}
                    sub = None if strong is None else (strong[0], strong[1][cand])
                    b = _bound(algorithm, prob, ks[cand], best["eta"][cand], T, np.arange(len(cand)), st, set_model,
                               h_eff, inc, sub)["total"]
                    b = np.where(np.isnan(b), np.inf, b)
                    lo_v = b if lo_v is None else np.minimum(lo_v, b)
                    hi_v = b if hi_v is None else np.maximum(hi_v, b)
        lo, hi = np.minimum(lo_v, crit[cand]), np.maximum(hi_v, crit[cand])
    j_star = int(np.flatnonzero(cand == i_star)[0])
    near[cand] = lo <= hi[j_star]
    near[i_star] = True
    return near


STRONG_MAX_CELLS = 1 << 16  # N x len(ks) up to which the strong-convexity bound is drawn (its law is O(N^2 K))


def _strong_bound(algorithm, prob: Problem, ks, seed):
    """(StrongBound, positions) when prob.mu is given and the bound of DERIVATION.md section 4.8 applies (fastest-k
    or lgc, abort semantics, sets redrawn every round or held for the run), else None."""
    from theory import strong

    if prob.mu is None or not strong.applies(algorithm, prob.semantics, prob.timing, prob.h):
        return None
    require(prob.N * len(ks) <= STRONG_MAX_CELLS, f"mu with N={prob.N} and {len(ks)} values of K: the strong-convexity "
                                                   f"bound is drawn for N x K <= {STRONG_MAX_CELLS} (give fewer K)")
    opt = prob.optimum
    if opt is None:  # eq. (4.44) from A4 and A6 alone: c^T G* c <= N zeta2 ||c - cbar||^2; delta absent: 2L
        opt = strong.OptimumGram(prob.N * prob.zeta2 * (np.eye(prob.N) - 1.0 / prob.N), L=prob.L, delta=prob.delta)
    law = strong.coefficient_law(prob.timing, prob.N, prob.M, prob.B, prob.h, ks, opt, prob.sigma2, seed=seed)
    sb = strong.StrongBound(algorithm, N=prob.N, B=prob.B, M=prob.M, L=prob.L, mu=prob.mu, sigma2=prob.sigma2,
                            Delta=prob.Delta, law=law)
    return sb, np.arange(len(ks))


def tradeoff(
    algorithm: str, prob: Problem, *, budget: float | None = None, target: float | None = None,
    eta: float | None = None, optimize_eta: bool = False, ks=None, rounds: int | None = None, seed: int = 0,
    set_model: str = "auto", round_times=None,
) -> Tradeoff:
    """The bound and time over K and the optimal K* (budget criterion unless `target` is given).

    eta: one step size for every K (K where it exceeds eta_max(K) get an infinite bound);
    default 1/(2L), half the descent-lemma limit. optimize_eta: instead, minimize the
    criterion over step sizes in (0, eta_max(K)] per K (eq. 5.4).
    round_times: a precomputed RoundTimes for these ks.
    For full-sync, whose bound and round time do not depend on K, K* = N.
    """
    require((budget is None) != (target is None), "give exactly one of budget (tau) or target (error)")
    if budget is not None:
        require(budget > 0, f"budget={budget} must be > 0")
    if target is not None:
        require(target > 0, f"target={target} must be > 0")
    if eta is not None:
        require(eta > 0, f"eta={eta} must be > 0")
    n = prob.N
    ks = np.arange(1, n + 1) if ks is None else np.asarray(ks, dtype=int)
    require(bool(np.all((ks >= 1) & (ks <= n))), f"K must satisfy 1 <= K <= N={n}")
    require(not (optimize_eta and eta is not None), "give eta or optimize_eta, not both")
    if eta is None:
        eta = DEFAULT_ETA_L / prob.L
    rt = round_times or expected_round_times(
        prob.timing, n, prob.M, algorithm, semantics=prob.semantics, ks=ks, comm=prob.comm,
        report_latency=prob.report_latency, rounds=rounds, seed=seed, period=prob.h)
    stats = rt.stats
    idx = np.arange(len(ks))
    h_eff = set_change_period(prob.timing, prob.h)
    if set_model == "auto":
        # the set model is about the K-worker fast set A_t (theory/algorithms.py waits_for_k)
        set_model = fastest_k_set_model(prob.timing, prob.h) if algorithm_entry(algorithm).waits_for_k else "persistent"
        if algorithm == "fastest-k" and independent_sets(prob.timing, prob.h):
            set_model = "independent"  # timing-aware bias from the inclusion law of A_t (eq. 4.11')
    inclusion = inclusion_from_timing(prob.timing, n, prob.M, prob.h, ks, seed=seed) if set_model == "independent" else None
    if prob.dissimilarity is not None and prob.semantics == "abort":  # the Gram forms, eqs. (4.36)-(4.40)
        forms = gram.set_forms(prob.timing, n, prob.M, prob.h, ks, prob.dissimilarity, seed=seed)
        inclusion = dict(inclusion or {}, **forms)
    strong = _strong_bound(algorithm, prob, ks, seed)
    if optimize_eta:
        emax = bounds.eta_max(algorithm, n, ks, prob.L, set_model, delta=prob.delta)
        grid = emax[None, :] * np.logspace(-3, 0, ETA_GRID)[:, None]  # (G, K)
    else:
        grid = np.full(len(ks), float(eta))[None, :]
    if optimize_eta and target is not None:
        grid = grid[::2]  # each point costs a bisection
    best_val = np.full(len(ks), np.inf)
    best = None
    for g in grid:
        if budget is not None:
            T = np.floor(budget / rt.mean)
            b = _bound(algorithm, prob, ks, g, T, idx, stats, set_model, h_eff, inclusion, strong)
            val = b["total"]
        else:
            T = _rounds_for_target(algorithm, prob, ks, g, target, stats, idx, set_model, h_eff, inclusion, strong=strong)
            b = _bound(algorithm, prob, ks, g, np.where(np.isfinite(T), T, 1e15), idx, stats, set_model, h_eff, inclusion,
                       strong)
            val = T * rt.mean
        if best is None:  # the first grid point: taken as it is (no copies: O(N) memory at N = 10^6)
            best = dict(T=T, eta=g, total=b["total"], terms={k: np.asarray(v, dtype=float) for k, v in b["terms"].items()})
            best_val = val
            continue
        better = val < best_val
        best["T"] = np.where(better, T, best["T"])
        best["eta"] = np.where(better, g, best["eta"])
        best["total"] = np.where(better, b["total"], best["total"])
        for k, v in b["terms"].items():
            best["terms"][k] = np.where(better, v, best["terms"][k])
        best_val = np.where(better, val, best_val)
    if optimize_eta and budget is not None:
        best = _refine_eta(algorithm, prob, ks, grid, best, rt, stats, idx, set_model, h_eff, budget, inclusion,
                           strong=strong)
    with np.errstate(invalid="ignore"):  # T = 0 rounds of an infinite E[R]: no time, nan by design
        time = best["T"] * rt.mean
    crit = best["total"] if budget is not None else time
    crit = np.where(np.isnan(crit), np.inf, crit)  # nan is no bound: it must not win the argmin
    if algorithm_entry(algorithm).round_end == "all" or not np.isfinite(crit).any():
        k_star = n
    else:
        k_star = int(ks[int(np.argmin(crit))])
    if strong is not None:
        strong[0].use_step_sizes(best["eta"])  # the subsets of _near_best keep the chosen step sizes
    near = _near_best(algorithm, prob, ks, best, crit, rt, stats, set_model, h_eff, budget, inclusion, strong)
    return Tradeoff(
        algorithm=algorithm, criterion="budget" if budget is not None else "target", ks=ks,
        round_time=rt.mean, round_time_se=rt.se, round_time_method=rt.method, rounds=best["T"], eta=best["eta"],
        bound=best["total"], terms=best["terms"], time=time, k_star=k_star, budget=budget, target=target,
        m_mean=stats.m_mean, m_inv=stats.m_inv, zero_frac=stats.zero_frac, near_best=near,
    )


