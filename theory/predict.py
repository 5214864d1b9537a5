"""The predictive error model of each rule: the recommended K* (theory/DERIVATION.md section 8, eqs. 8.1-8.8).

The bounds of theory/bounds.py are guarantees; their argmin over K sits near N whenever the terms that fall
with K are loose (section 4.6). This module forecasts the error instead, in the spirit of the Noisy Quadratic
Model (Zhang et al., NeurIPS 2019: a quadratic per curvature band, noise and momentum included) and of the
gradient noise scale (McCandlish et al. 2018): a *surrogate* problem built from the measured statistics,

    F(w) = sum_j (h_j / 2) ||e_j||^2,   f_i(w) = F(w) + <a_i, w>,   sum_i a_i = 0          (8.1)

in J curvature bands (e_j: the error w - w* in band j, `DIMS` coordinates each), with the workers' deviations
a_i isotropic and scaled so that band j carries zeta2_j of the dissimilarity (8.2, 8.2'), or with the workers'
measured Gram matrix where one is given (8.2'', theory/predict_gram.py), the start drawn at
F(w_0) - F* = Delta_j in band j (8.3), and per-sample noise of variance sigma2_j in band j (8.4). The rule
(full-sync, fastest-k, lgc, lgc-fresh; fastest-K is lgc with u = 0) runs on it with the same timing law as the
trainers (the schedules of theory/schedule.py on the timing model's own draws), momentum and warm-up rounds
included (8.5, 8.6), vectorised in numpy over draws x K x coordinates. The prediction is the mean over draws of
the loss gap F(w_T) - F* at each K's T rounds (8.7) and of (1/T) sum_t ||grad F(w_t)||^2 (8.8), each with its
standard error over the draws. The model is a Monte Carlo surrogate, exact for its own assumptions (a shared
Hessian, constant deviations, Gaussian noise); section 8 names what it approximates. Pure numpy, no torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.algorithms import BOUND_NAMES
from theory.errors import require
from theory.predict_curv import set_curvatures, set_transition, worker_curvatures
from theory.predict_gram import gram_columns
from theory.predict_sets import RoundSets, stack_draws
from theory.schedule import require_semantics

DIMS = 8  # random coordinates per band above EXACT_N workers: the expectation does not depend on it, its variance does
EXACT_N = 64  # up to N workers the deviations are exact in expectation (eq. 8.2'): N - 1 coordinates per band
DRAWS = (4, 32)  # timing draws where sets are held (the standard error is over them): as many as DRAW_WORK allows
DRAW_WORK = 2e7  # draws x K x coordinates x rounds of the deviations' simulation (about a second of numpy)
ROUND_CAP = 20000  # rounds simulated at most; a K whose T exceeds it is predicted at the cap (section 8)
LAW_ROUNDS = 2000  # schedules drawn for the law of sets drawn afresh every round (eq. 8.6')
LARGE_N = 2000  # N from which one draw is simulated (optimize-k at N = 10^4 stays within seconds)
MODELLED = BOUND_NAMES  # the rules of eqs. (3.1)-(3.4), those with a bound: _inputs writes each one's round
PRIOR_RATIO = 4.0  # the scalar constants' prior spectrum (eq. 8.12): bands a factor 4 apart, as lgc estimate's
PRIOR_BANDS = 12  # at most this many factors below L: a cost guard (4^-12 L is below 1/(eta T) at ROUND_CAP rounds)


@dataclass(frozen=True)
class Bands:
    """Curvature bands of the surrogate (8.1): curvature h_j and band j's share of Delta, sigma2 and zeta2.

    Shares are normalised when the model runs, so the scalar constants (L, sigma2, zeta2, Delta; `lgc optimize-k`'s
    flags override a file's) fix the totals and the bands only their split."""

    h: tuple
    delta: tuple
    sigma2: tuple
    zeta2: tuple
    workers: tuple | None = None  # optional N x J per-worker curvatures r_ij (eq. 8.5''a; theory/predict_curv.py)
    dims: int = DIMS  # random coordinates per band of the deviations above EXACT_N workers (eq. 8.2'; `prior`'s fewer)

    def __post_init__(self):
        n = len(self.h)
        require(n >= 1, "bands: need at least one curvature band")
        for name in ("h", "delta", "sigma2", "zeta2"):
            v = np.asarray(getattr(self, name), dtype=float)
            require(v.shape == (n,) and bool(np.all(np.isfinite(v))) and bool(np.all(v >= 0)),
                    f"bands: {name} must be {n} finite numbers >= 0, got {list(getattr(self, name))}")
        require(bool(np.all(np.asarray(self.h, float) > 0)), f"bands: every curvature h must be > 0, got {list(self.h)}")
        if self.workers is not None:
            r = np.asarray(self.workers, dtype=float)
            require(r.ndim == 2 and r.shape[0] >= 1 and r.shape[1] == n and bool(np.all(np.isfinite(r) & (r > 0))),
                    f"bands: workers must be N rows of {n} finite curvatures > 0 (one per band), got shape {r.shape}")
        require(int(self.dims) == self.dims and self.dims >= 1, f"bands: dims must be an integer >= 1, got {self.dims}")

    @classmethod
    def scalar(cls, L: float) -> "Bands":
        """One band at curvature L holding all of Delta, sigma2 and zeta2 (the prior's limit mu = L)."""
        return cls(h=(float(L),), delta=(1.0,), sigma2=(1.0,), zeta2=(1.0,))

    @classmethod
    def prior(cls, L: float, *, floor: float, mu: float | None = None) -> "Bands":
        """The scalar constants' prior spectrum (eq. 8.12): curvatures spread uniformly over [mu, L] ([0, L] without
        mu), the start, the workers' optima and the noise isotropic, so that an interval [a, b] of curvature holds
        Delta, sigma2 and zeta2 in proportion to (b^2 - a^2) / 2, b - a and (b^3 - a^3) / 3. Bands a factor
        PRIOR_RATIO apart from L down to max(floor, mu), the rest in one band; each band at its mean curvature
        (a + b) / 2. One band at L when mu >= L (the old fallback, Bands.scalar). Its bands share the DIMS random
        coordinates of one band (at least 2 each, `dims`), so the model costs about what one band at L did."""
        low = float(mu or 0.0)
        require(L > 0 and floor > 0 and low >= 0, f"bands: the prior needs L > 0, floor > 0, mu >= 0; got L={L}, "
                                                  f"floor={floor}, mu={mu}")
        if low >= L:
            return cls.scalar(L)
        stop = max(floor, low, L * PRIOR_RATIO ** -PRIOR_BANDS)
        edges = [float(L)]
        while edges[-1] / PRIOR_RATIO > stop * (1 + 1e-12):
            edges.append(edges[-1] / PRIOR_RATIO)
        edges.append(low)
        b, a = np.array(edges[:-1]), np.array(edges[1:])
        f = lambda x: tuple(float(v) for v in x)
        return cls(h=f((a + b) / 2), delta=f((b**2 - a**2) / 2), sigma2=f(b - a),
                   zeta2=f((b**3 - a**3) / 3), dims=max(2, DIMS // len(b)))

    @classmethod
    def from_json(cls, d: dict) -> "Bands":
        """The constants JSON's optional "bands" object (theory/constants.py)."""
        w = d.get("workers")
        return cls(**{k: tuple(float(v) for v in d[k]) for k in ("h", "delta", "sigma2", "zeta2")},
                   workers=None if w is None else tuple(tuple(float(v) for v in row) for row in w))

    def totals(self, L: float, sigma2: float, zeta2: float, Delta: float) -> dict:
        """Per-band values with the given totals (shares of a zero total split evenly); curvatures capped at L
        (A2: no direction is curvier than the smoothness the step was chosen for)."""
        def split(share, total):
            s = np.asarray(share, float)
            s = s / s.sum() if s.sum() > 0 else np.full(len(s), 1.0 / len(s))
            return total * s

        return dict(h=np.minimum(np.asarray(self.h, float), L), delta=split(self.delta, Delta),
                    sigma2=split(self.sigma2, sigma2), zeta2=split(self.zeta2, zeta2))


@dataclass(frozen=True)
class Prediction:
    """Per K of `ks`: rounds T, the predicted loss gap F(w_T) - F* (8.7) and mean squared gradient norm (8.8),
    each with its standard error over `draws` surrogates; `capped`: T above ROUND_CAP (predicted at the cap)."""

    ks: np.ndarray
    rounds: np.ndarray
    gap: np.ndarray
    gap_se: np.ndarray
    grad2: np.ndarray
    grad2_se: np.ndarray
    draws: int
    capped: np.ndarray
    gram: bool = False  # the deviations had the given Gram matrix (eq. 8.2''), not the isotropic one (8.2')
    curvatures: bool = False  # the workers had their own curvatures (eq. 8.5''), not F's shared Hessian (8.1)
    fit_shift: np.ndarray | None = None  # per K: <abar_run, e_T>, the fitted objective's extra decrease (eq. 8.14')

    def k_star(self, quantity: str = "gap") -> int:
        """The K of least predicted error (the loss gap by default, or "grad2"); ties to the larger K."""
        return least_k(self.ks, self.gap if quantity == "gap" else self.grad2)


def least_k(ks, values) -> int:
    """The K of ks whose value is least among the finite ones; ties to the larger K."""
    v = np.where(np.isfinite(values), values, np.inf)
    return int(np.asarray(ks)[np.flatnonzero(v == v.min())[-1]])


def _deviations(rng, bands: dict, n: int, draws: int, dims: int):
    """Per draw, the workers' deviations a (S, N, J D), centred over workers, with (1/N) sum_i ||a_i||^2 = zeta2_j
    in band j (8.2); and the coordinates' curvatures (J D,). For N <= EXACT_N a band's D = N - 1 columns are an
    orthonormal basis of the centred vectors, scaled: the sum over them of any (c^T a_k)^2 is then exactly its
    expectation over isotropic deviations, N zeta2_j ||c - cbar||^2 / (N - 1) (eq. 8.2'); above, D random columns."""
    J = len(bands["h"])
    exact = n <= EXACT_N
    D = max(n - 1, 1) if exact else dims
    out = np.zeros((draws, n, J * D))
    for j in range(J):
        for s in range(draws):
            z = rng.standard_normal((n, D))
            z -= z.mean(0)
            if exact and n > 1:
                z = np.linalg.qr(z)[0] * np.sqrt(n / (n - 1))
            elif n > 1:
                z *= np.sqrt(n / max((z**2).sum(), 1e-300))
            out[s, :, j * D:(j + 1) * D] = z * np.sqrt(bands["zeta2"][j])
    return out, np.repeat(bands["h"], D)


def _inputs(algorithm: str, stats, eta, sig_j, warm: bool, n: int, b_size: int):
    """One round's inputs to the state x = (e, v, u) of every coordinate (eqs. 8.4-8.6), from its schedule stats
    (bias_a, bias_s (K, D); var_a, var_s, rho (K,)): the deviations' part of d (K, D), of the new u (K, D), and the
    covariance its noise adds to the state of a band, sum_c q_c b_c b_c^T sigma2_j (K, J, 3, 3)."""
    bias_a, bias_s, var_a, var_s, rho = stats
    K = len(eta)
    Bm = np.zeros((K, 3, 2))  # columns: the fast set's noise xi_A, the reporters' xi_S
    Bm[:, 0, 0], Bm[:, 1, 0] = -eta, 1.0
    zero = np.zeros_like(bias_a)
    if warm:  # full-sync: the mean of N B samples, sum_i a_i = 0 (eq. 3.1); lgc's u reset (section 3)
        q, dA, dU = np.stack([np.full(K, 1.0 / (n * b_size)), np.zeros(K)], -1), zero, zero
    else:
        q, r = np.stack([var_a, var_s], -1), rho[:, None]
        if algorithm == "fastest-k":  # eq. (3.2): d = gA
            dA, dU = bias_a, zero
        elif algorithm == "lgc":  # eq. (3.3): d_t = gA_t + u_{t-1}, u_t = rho_t (gS_t - gA_t)
            dA, dU = bias_a, r * (bias_s - bias_a)
            Bm[:, 2, 0], Bm[:, 2, 1] = -rho, rho
        elif algorithm == "lgc-fresh":  # eq. (3.4): d = (1 - rho) gA + rho gS
            dA, dU = (1 - r) * bias_a + r * bias_s, zero
            Bm[:, 0, 0], Bm[:, 0, 1] = -eta * (1 - rho), -eta * rho
            Bm[:, 1, 0], Bm[:, 1, 1] = 1 - rho, rho
        else:
            require(False, f"the error model has no round for algorithm={algorithm!r}")
    Q = np.einsum("kac,kc,kbc->kab", Bm, q, Bm)[:, None] * sig_j[None, :, None, None]
    return dA, dU, Q


def _set_law(sets, algorithm, eta, sig_j, band, n, b_size, rounds: int):
    """Independent sets (a fresh draw every round, eq. 4.46a): the inputs' means over the law (dA, dU (K, D)) and
    the covariance per round of noise plus the sets' fluctuation around those means (K, J, 3, 3) (eq. 8.6')."""
    K, D = len(eta), sets.a.shape[2]
    sa, su = np.zeros((K, D)), np.zeros((K, D))
    saa, suu, sau = np.zeros((K, D)), np.zeros((K, D)), np.zeros((K, D))
    Q = np.zeros((K, len(sig_j), 3, 3))
    for t in range(rounds):
        dA, dU, q = _inputs(algorithm, sets.one(0, t), eta, sig_j, False, n, b_size)
        sa += dA
        su += dU
        saa += dA * dA
        suu += dU * dU
        sau += dA * dU
        Q += q
    ma, mu_ = sa / rounds, su / rounds
    cov = lambda s2, x, y: s2 / rounds - x * y  # per coordinate, summed per band below
    per = lambda c: np.stack([c[:, band == j].sum(1) for j in range(len(sig_j))], 1)  # (K, J)
    caa, cuu, cau = per(cov(saa, ma, ma)), per(cov(suu, mu_, mu_)), per(cov(sau, ma, mu_))
    b_a = np.stack([-eta, np.ones(K), np.zeros(K)], -1)[:, None]  # a fluctuation of d's deviations part
    b_u = np.array([0.0, 0.0, 1.0])  # of the new u
    out = (caa[..., None, None] * b_a[..., :, None] * b_a[..., None, :] + cuu[..., None, None] * np.outer(b_u, b_u)
           + cau[..., None, None] * (b_a[..., :, None] * b_u + b_u[:, None] * b_a[..., None, :]))
    return ma, mu_, Q / rounds + out


def predict_errors(algorithm: str, bands: Bands, *, L: float, sigma2: float, zeta2: float, Delta: float, N: int,
                   M: int, B: int, timing, h: float = 1, semantics: str = "abort", ks, rounds=None, eta,
                   momentum: float = 0.0, warmup: int = 0, draws: int | None = None, dims: int | None = None, seed: int = 0,
                   law_rounds: int | None = None, method: str = "auto", target: float | None = None,
                   gram=None) -> Prediction:
    """The surrogate's predicted errors per K (eqs. 8.1-8.8).

    ks: thresholds; rounds: T per K (e.g. floor(tau / E[R(K)])); eta: one step size or one per K; momentum: the
    server's heavy ball mu (eq. 3.6, as torch.optim.SGD); warmup: full-sync rounds first (u reset after them).
    draws: timing draws averaged where sets persist (default: DRAWS within DRAW_WORK, one from N = LARGE_N).
    dims: random coordinates per band of the deviations above EXACT_N workers (default: bands.dims, eq. 8.2').

    The error splits into parts whose cross terms vanish in expectation (eq. 8.6): the start's, propagated exactly;
    the noise's (and, for sets drawn afresh every round, the sets' fluctuation's), whose covariance is propagated
    exactly; and the deviations' mean part, simulated on the schedules (sets held over rounds: Monte Carlo over
    `draws` timing draws) or on the law's mean coefficients (independent sets: deterministic, law_rounds rounds).
    method: "auto" (the law where sets are independent), "simulate" (the schedules, always), "law" (required).
    target: instead of `rounds`, each K's T is the fewest rounds whose predicted mean ||grad F||^2 (8.8) is at most
    target (inf if not within ROUND_CAP rounds), the quantity the bounds' target criterion uses (eq. 5.3).
    gram: the workers' Gram matrix (N x N, centred; theory.predict_gram.model_gram of the measured ones) or one per
    band: the deviations then have it (eq. 8.2''), scaled per band to the bands' zeta2 split, instead of being
    isotropic (8.2'); exact for every set, so which workers are fast meets which deviations they hold.
    bands.workers (N x J, N <= 64): each worker's own curvature per band (eq. 8.5''): every round's map then has the
    fast set's (and lgc's reporters') mean curvature, the sets are simulated on the drawn schedules (method
    "law" refused), and the start's and noise's parts are exact in expectation given the drawn sets."""
    require(algorithm in MODELLED, f"algorithm={algorithm!r} has no error model; must be one of {', '.join(MODELLED)}")
    require_semantics(semantics)
    ks = np.atleast_1d(np.asarray(ks, dtype=int))
    require(ks.size >= 1 and bool(np.all((ks >= 1) & (ks <= N))), f"K must satisfy 1 <= K <= N={N}")
    require((rounds is None) != (target is None), "give exactly one of rounds or target")
    require(target is None or target > 0, f"target={target} must be > 0")
    T = np.broadcast_to(np.asarray(ROUND_CAP if target is not None else rounds, dtype=float), ks.shape)
    eta = np.broadcast_to(np.asarray(eta, dtype=float), ks.shape).copy()
    require(bool(np.all(eta > 0)), "eta must be > 0")
    require(0 <= momentum < 1, f"momentum={momentum} must be in [0, 1)")
    require(warmup >= 0, f"warmup={warmup} must be >= 0")
    dims = bands.dims if dims is None else dims
    require(method in ("auto", "simulate", "law"), f"method={method!r} must be 'auto', 'simulate' or 'law'")
    independent = semantics == "abort" and timing.sets_independent(h) and algorithm != "full-sync"
    require(method != "law" or independent, "method='law' needs abort semantics and sets drawn afresh every round")
    curv = bands.workers is not None  # eq. (8.5''): the round's map depends on its sets, which are simulated
    require(method != "law" or not curv, "method='law' has no per-worker curvatures (bands.workers): use 'simulate'")
    independent = independent and method != "simulate" and not curv
    T_max = float(np.nanmax(np.where(np.isfinite(T), np.clip(T, 1, ROUND_CAP), 1)))
    bt = bands.totals(L, sigma2, zeta2, Delta)
    hj, K, J = bt["h"], len(ks), len(bt["h"])
    if gram is not None:  # eq. (8.2''): the same deviations in every draw, a square root of each band's G_j
        cols, D = gram_columns(gram, bt["zeta2"], N)
    else:
        D = max(N - 1, 1) if N <= EXACT_N else dims  # as _deviations makes them (8.2')
    auto = int(np.clip(DRAW_WORK / (len(ks) * D * T_max), *DRAWS))
    S = 1 if independent else (draws or (auto if N < LARGE_N else 1))
    if gram is not None:
        a, hd = np.broadcast_to(cols, (S,) + cols.shape), np.repeat(hj, D)
    else:
        a, hd = _deviations(np.random.default_rng(seed), bt, N, S, dims)
    band = np.repeat(np.arange(J), a.shape[2] // J)
    n_dev = a.shape[2]
    if curv:  # r_ij as J more columns of the deviations: the sets' means of them are r_A, r_S' (eq. 8.5''b)
        r = worker_curvatures(bands.workers, hj, N)
        a = np.concatenate([a, np.broadcast_to(r, (S,) + r.shape)], axis=2)
    Tk = np.where(np.isfinite(T), np.clip(T, 0, ROUND_CAP), 0).astype(int)
    t_end = int(Tk.max())
    sets = RoundSets(timing, N, M, B, h, ks, semantics, a, seed)
    if independent:
        R = law_rounds or int(np.clip(4e6 // (N * K), 200, LAW_ROUNDS))
        law = tuple(x[None] for x in _set_law(sets, algorithm, eta, bt["sigma2"], band, N, B, R))
    A = set_transition(eta, np.broadcast_to(hj, (K, J)), 0.0, momentum)  # eq. (8.5)'s A(h_j)
    At = np.swapaxes(A, -1, -2)
    last_key = None
    x0 = np.zeros((S, K, J, 3))  # the start's part (the same in every draw unless the sets move it, 8.5'')
    x0[..., 0] = np.sqrt(2 * bt["delta"] / hj)  # (8.3): h_j e_j^2 / 2 = Delta_j
    P = np.zeros((S, K, J, 3, 3))  # the noise part's covariance (8.6)
    e = np.zeros((S, K, n_dev))  # the deviations' mean part
    h_eff, h_u = hd, 0.0  # the round's curvature of d and of the new u in e (eq. 8.5''b; shared Hessian: h, 0)
    At_round, Atr_round = A, At
    v, u = np.zeros_like(e), np.zeros_like(e)
    grad_sum = np.zeros((S, K))
    dev_sum, shift = np.zeros_like(e), np.full((S, K), np.nan)  # eq. (8.14'): the directions' deviations, summed
    gap, grad2 = np.full((S, K), np.nan), np.full((S, K), np.nan)
    ek = eta[None, :, None]
    T_hit = np.full(K, np.inf)
    hj2 = hj**2
    reported = set(Tk.tolist())  # budget: the rounds at which some K's T ends
    for t in range(t_end + 1):
        g_b = hd * e
        g2 = (g_b**2).sum(2) + (hj2 * x0[..., 0] ** 2).sum(2) + (hj2 * P[..., 0, 0]).sum(2)
        if target is None:
            done = Tk == t if t in reported else None
        else:  # the first round whose mean over draws reaches the target, for the K not there yet
            done = (t >= 1) & ~(T_hit <= t) & (grad_sum.mean(0) / max(t, 1) <= target)
            T_hit[done] = t
        if done is not None and done.any():  # eqs. (8.7), (8.8) at T = t: w_T's gap, and the mean over rounds 0..T-1
            f = (hd / 2 * e**2).sum(2) + (hj / 2 * x0[..., 0] ** 2).sum(2) + (hj / 2 * P[..., 0, 0]).sum(2)
            gap[:, done] = f[:, done]
            shift[:, done] = (dev_sum * e).sum(2)[:, done] / max(t, 1)  # <abar_run, e_T> (8.14')
            grad2[:, done] = grad_sum[:, done] / max(t, 1)
        grad_sum += g2
        if t == t_end or (target is not None and bool(np.all(T_hit < np.inf))):
            break
        warm = t < warmup or algorithm == "full-sync"
        if warm:
            P[..., 2, :] = P[..., :, 2] = 0.0  # u reset (section 3)
            x0[..., 2] = 0.0
            u = np.zeros_like(e)
        if independent and not warm:
            dA, dU, Q = law
        else:
            key = ("warm",) if warm else sets.key(t)
            if key != last_key:  # a straggling period's rounds share their inputs (abort semantics)
                stats = sets.round(t) if not warm else (np.zeros((S, K, a.shape[2])),) * 2 + (np.zeros((S, K)),) * 3
                if curv:  # split off the sets' mean curvatures (the last J columns) from their deviations
                    r_a, r_s = stats[0][..., n_dev:], stats[1][..., n_dev:]
                    stats = (stats[0][..., :n_dev], stats[1][..., :n_dev]) + tuple(stats[2:])
                ins = [_inputs(algorithm, [x[s] for x in stats], eta, bt["sigma2"], warm, N, B) for s in range(S)]
                dA, dU, Q = (stack_draws(x) for x in zip(*ins))
                last_key = key
                if curv and not warm:  # eq. (8.5''c): this round's map, per draw, K and band
                    he, hu = set_curvatures(algorithm, r_a, r_s, stats[4])
                    At_round = set_transition(eta, he, hu, momentum)
                    Atr_round = np.swapaxes(At_round, -1, -2)
                    h_eff, h_u = he[..., band], hu[..., band]
                elif curv:  # full-sync and warm-up rounds: every worker, F's curvature (8.5)
                    At_round, Atr_round, h_eff, h_u = A, At, hd, 0.0
        d_e = h_eff * e if curv else g_b
        v = momentum * v + d_e + dA + u  # eq. (8.5), heavy ball as eq. (3.6); u = 0 but for lgc
        dev_sum = dev_sum + dA + u
        u = dU + h_u * e if curv else dU  # (8.5''b): lgc's u_t carries rho_t (r_S' - r_A) e_t, e_t before the step
        e = e - ek * v
        P = At_round @ P @ Atr_round + Q  # (8.6): u's column read before it is overwritten
        x0 = (At_round @ x0[..., None])[..., 0]
    # over the timing draws; one draw (independent sets: deterministic given the law's rounds): nan, not estimated
    se = lambda x: x.std(0, ddof=1) / np.sqrt(S) if S > 1 else np.full(x.shape[1], np.nan)
    if target is not None:
        T = T_hit
    fin = np.isfinite(T)
    return Prediction(ks=ks, rounds=T.copy(), gap=np.where(fin, gap.mean(0), np.nan), gap_se=se(gap),
                      grad2=np.where(fin, grad2.mean(0), np.nan), grad2_se=se(grad2), draws=S,
                      capped=np.isfinite(T) & (T > ROUND_CAP), gram=gram is not None, curvatures=curv,
                      fit_shift=np.where(fin, shift.mean(0), np.nan))
