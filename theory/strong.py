"""Set terms charged round by round through the distance to the optimum, under strong convexity
(theory/DERIVATION.md section 4.8, eqs. 4.42-4.50).

The Gram forms of theory/gram.py (A4G, section 4.7) take the workers' deviations a_i(w) = grad f_i(w) -
grad F(w) at their worst over the whole region the iterates may visit. When F is mu-strongly convex
(A7), the iterates' distance to w* obeys a scalar recursion, and each round's set term is charged with
G(w*), the Gram matrix at the optimum, plus a term that grows with that distance:

    sqrt(E ||sum_i c_i a_i(w_t)||^2) <= sqrt(c^T G* c) + kappa(c) r_t            (4.42)
    sqrt(E tr(Q G(w_t)))             <= sqrt(tr(Q G*)) + kappa_tr(Q) r_t         (4.43)

with r_t >= sqrt(E ||w_t - w*||^2) from the recursions (4.45) (fastest-K) and (4.47) (LGC), started at
r_0 = sqrt(2 Delta / mu). `OptimumGram` holds G* and the slopes kappa, kappa_tr (eq. 4.44);
`coefficient_law` the timing's coefficient vectors (eq. 4.46); `StrongBound` runs the recursions and
returns the bounds (4.48) (fastest-K) and (4.49) (LGC; (4.49') for quadratic workers, A8) at any T. theory/tradeoff.py takes, per K, the
smaller of these and the bounds of theory/bounds.py (both hold; eq. 4.50).
"""
from __future__ import annotations

import numpy as np

from theory.algorithms import algorithm as algorithm_entry
from theory.errors import require
from theory.schedule import schedule_rounds
from theory.gram import schedule_coefficients

LAW_ROUNDS = 2000  # Monte Carlo rounds for an independent-per-round coefficient law (eq. 4.46)
HELD_DRAWS = 400  # Monte Carlo draws of a set held for the whole run (eq. 4.46)
T_CAP = 20000  # rounds the recursions run at most; beyond, the last round's terms (eq. 4.50)
LAMBDAS = (2.0**-20, 0.125, 0.5, 1.0, 2.0, 8.0)  # Young's parameters of eq. (4.49'), each a valid bound
THETAS = (0.125, 0.5, 1.0, 2.0, 8.0)


class OptimumGram:
    """The workers' deviations at the optimum and their slopes away from it (A7, eqs. 4.42-4.44).

    Separable problems (a_ik(w) = v_ik + s_ik (w_k - w*_k), e.g. quadratics with per-worker diagonal
    curvatures: v = a(w*), s_ik = h_ik - hbar_k): `OptimumGram.separable(values, slopes)`, exact. Otherwise
    `OptimumGram(gram, L=..., delta=...)`: G(w*), the smoothness L of every f_i and the Lipschitz constant delta
    of every a_i (A6). A7 constrains F only: an f_i may be nonconvex, so delta defaults to 2L (||H_i - H|| <= 2L),
    or to L with convex=True (every f_i convex: H_i, H in [0, L]). Give L, delta or both."""

    def __init__(self, gram, *, L: float | None = None, delta: float | None = None, convex: bool = False):
        g = np.asarray(gram, dtype=float)
        require(g.ndim == 2 and g.shape[0] == g.shape[1] and g.shape[0] >= 1,
                f"the Gram matrix at w* must be N x N, got shape {g.shape}")
        require(bool(np.all(np.isfinite(g))), "the Gram matrix at w* must be finite")
        require(L is not None or delta is not None, "the slopes at w* need L (smoothness of every f_i) or delta (A6)")
        require(L is None or (np.isfinite(L) and L > 0), f"L={L} must be a finite number > 0")
        require(delta is None or (np.isfinite(delta) and delta >= 0), f"delta={delta} must be a finite number >= 0")
        self.gram, self.n = (g + g.T) / 2, g.shape[0]
        self.L = np.inf if L is None else float(L)
        self.delta = float(delta) if delta is not None else (1.0 if convex else 2.0) * float(L)
        self.values = self.slopes = None

    quadratic = False  # every f_i quadratic (A8): F's Hessian constant, a_i affine; LGC's staleness eq. (4.49')

    @classmethod
    def separable(cls, values, slopes, *, hessian=None) -> "OptimumGram":
        """hessian: F's Hessian diag(H), given when every f_i is a quadratic (A8: a_ik exactly affine, H constant);
        LGC's delay is then charged in the H^2 metric (eq. 4.49')."""
        v, s = np.asarray(values, float), np.asarray(slopes, float)
        require(v.ndim == 2 and v.shape == s.shape, f"values and slopes must be (N, d) alike, got {v.shape}, {s.shape}")
        self = cls(v @ v.T, delta=float(np.abs(s).max()))  # the exact slopes below replace both forms
        self.values, self.slopes = v, s
        if hessian is not None:
            hd = np.asarray(hessian, float)
            require(hd.shape == (v.shape[1],) and bool(np.all(hd >= 0)), f"hessian must be d={v.shape[1]} numbers >= 0")
            self.quadratic, self.metric = True, hd
        return self

    def metric_traces(self, Q):
        """eq. (4.43) in the metric H^2 (A8): (tr(Q A*^T H^2 A*), its slope max_k h_k^2 s_k^T Q s_k under the root)."""
        require(self.quadratic, "the H^2 metric needs F's Hessian (OptimumGram.separable(..., hessian=...))")
        Q = np.asarray(Q, float)
        Q = Q[None] if Q.ndim == 2 else Q
        v, sl = self.values * self.metric, self.slopes * self.metric
        tr = np.einsum("nk,rnm,mk->r", v, Q, v).clip(min=0)
        return tr, np.sqrt(np.einsum("nk,rnm,mk->rk", sl, Q, sl).max(1).clip(min=0))

    def rows(self, C):
        """Per row c of C (R, N): (c^T G* c, kappa(c)), kappa a Lipschitz constant of sum_i c_i a_i(w) in
        ||w - w*|| (eq. 4.44): max_k |sum_i c_i s_ik| (separable), else
        min(delta min_m sum_i |c_i - m|, L sum_i |c_i - cbar|) (sum_i c_i a_i = sum_i (c_i - m) a_i
        = sum_i (c_i - cbar) grad f_i)."""
        C = np.atleast_2d(np.asarray(C, float))
        if self.values is not None:
            return np.square(C @ self.values).sum(1), np.abs(C @ self.slopes).max(1)
        g = np.einsum("rn,nm,rm->r", C, self.gram, C).clip(min=0)
        by_delta = self.delta * np.abs(C - np.median(C, axis=1, keepdims=True)).sum(1)
        with np.errstate(invalid="ignore"):  # L = inf (not given) times 0
            by_l = np.nan_to_num(self.L * np.abs(C - C.mean(1, keepdims=True)).sum(1), nan=np.inf)
        return g, np.minimum(by_delta, by_l)

    def traces(self, Q):
        """Per PSD matrix of Q (R, N, N): (tr(Q G*), kappa_tr(Q)) (eq. 4.44): kappa_tr^2 = max_k s_k^T Q s_k
        (separable), else N min(delta, L)^2 lambda_max(P Q P), P = I - 11^T/N."""
        Q = np.asarray(Q, float)
        Q = Q[None] if Q.ndim == 2 else Q
        tr = np.einsum("rnm,nm->r", Q, self.gram).clip(min=0)
        if self.values is not None:
            return tr, np.sqrt(np.einsum("nk,rnm,mk->rk", self.slopes, Q, self.slopes).max(1).clip(min=0))
        n = self.n
        P = np.eye(n) - 1.0 / n
        lam = np.linalg.eigvalsh(P @ Q @ P)[:, -1].clip(min=0)
        return tr, min(self.delta, self.L) * np.sqrt(n * lam)


def law_mode(timing, h: float) -> str | None:
    """'independent': round t's sets are a fresh draw from one law, independent of earlier rounds (eq. 4.46a);
    'held': the sets never change within the run's first h_eff rounds (eq. 4.46b); None: neither (sets that
    change at period starts), where this module gives no bound."""
    if timing.sets_independent(h):
        return "independent"
    if timing.set_change_period(h) > 1:
        return "held"
    return None


def applies(algorithm: str, semantics: str, timing, h: float) -> bool:
    """Whether this module bounds the run: fastest-k or lgc, abort semantics, and sets that law_mode knows."""
    return algorithm_entry(algorithm).strong_bound and semantics == "abort" and law_mode(timing, h) is not None


def _noise_parts(fast, blocks, k, n, B, M, sigma2):
    """Per round (..., N) of schedules: lgc-fresh's noise V_fresh (eq. 4.13) and the compensation's noise
    E_eps (eq. 4.17) of that round's block counts (not their means)."""
    b = B / M
    rep = ~fast & (blocks >= 1)
    s = rep.sum(-1)
    z = (~fast).sum(-1) - s
    inv = np.where(rep, 1.0 / np.maximum(blocks, 1), 0.0).sum(-1)  # sum_{j in S'} 1/m_j
    v_fresh = sigma2 * ((k + z) ** 2 / (n**2 * k * B) + inv / (n**2 * b))
    e_eps = sigma2 * (inv / (n**2 * b) + s**2 / (n**2 * k * B))
    return v_fresh, e_eps


def coefficient_law(timing, n: int, m_blocks: int, B: int, h: float, ks, optimum: OptimumGram, sigma2: float, *,
                    seed: int = 0, rounds: int | None = None) -> dict:
    """The set coefficients of eq. (4.46) through G* and the slopes, per K (abort semantics, eq. 2.4).

    independent: one row per K: xbar = E x, Cov x (fastest-K's bias and set noise, as 4.40); fbar, Cov f
      (lgc-fresh's bias and set noise), Q_D = E[c^D c^D^T] (the compensation's size); the sample noises as
      means over rounds.
    held: one row per draw of the held times and K: x, f, c^D of that draw, its own sample noises.
    Each form is a pair (g, kappa) for eqs. (4.42)-(4.43)."""
    mode = law_mode(timing, h)
    require(mode is not None, "the strong-convexity bound needs sets redrawn every round or held for the run")
    require(optimum.n == n, f"the Gram matrix at w* is for N={optimum.n} workers, the problem has N={n}")
    ks = np.asarray(ks, dtype=int)
    R = rounds or (LAW_ROUNDS if mode == "independent" else HELD_DRAWS)
    period = int(min(h, 2**62)) if np.isfinite(h) else 2**62
    fast = np.empty((R, len(ks), n), bool)
    blocks = np.empty((R, len(ks), n), int)
    for r in range(R):
        b = schedule_rounds(timing.block_finish_times(seed + r, 0, n, m_blocks, period=period), ks, semantics="abort")
        fast[r], blocks[r] = b.fast, b.blocks_done
    kk = ks[None, :].astype(float)
    x, dlt, f = schedule_coefficients(fast, blocks, kk[..., None])
    v_fresh, e_eps = _noise_parts(fast, blocks, kk, n, B, m_blocks, sigma2)
    out = {"mode": mode, "h_eff": float(timing.set_change_period(h)), "v_a": sigma2 / (ks * B)}
    if mode == "independent":
        def cov(c):  # (R, K, N) -> (K, N, N)
            m = c.mean(0)
            return np.einsum("rkn,rkm->knm", c, c) / R - np.einsum("kn,km->knm", m, m)

        out["x_bias"] = optimum.rows(x.mean(0))
        out["x_noise"] = optimum.traces(cov(x))
        out["f_bias"] = optimum.rows(f.mean(0))
        out["f_noise"] = optimum.traces(cov(f))
        out["d_bias"] = optimum.rows(dlt.mean(0))
        out["d_noise"] = optimum.traces(cov(dlt))
        # -Cov(x, c^D) symmetrised, its positive part: the fast set's and the compensation's set noises pull apart
        xd = np.einsum("rkn,rkm->knm", x, dlt) / R - np.einsum("kn,km->knm", x.mean(0), dlt.mean(0))
        lam, vec = np.linalg.eigh(-(xd + xd.transpose(0, 2, 1)) / 2)
        pos = np.einsum("knj,kj,kmj->knm", vec, lam.clip(min=0), vec)
        out["xd_cross"] = optimum.metric_traces(pos) if optimum.quadratic else optimum.traces(pos)
        out["rho"] = ((~fast & (blocks >= 1)).sum(-1) / n).mean(0)
        out["v_fresh"], out["e_eps"] = v_fresh.mean(0), e_eps.mean(0)
        out["quadratic"] = optimum.quadratic
        return {k: (tuple(np.asarray(a)[None] for a in v) if isinstance(v, tuple) else v) for k, v in out.items()}
    flat = lambda c: tuple(a.reshape(R, len(ks)) for a in optimum.rows(c.reshape(-1, n)))
    zero = (np.zeros((R, len(ks))), np.zeros((R, len(ks))))
    out.update(x_bias=flat(x), x_noise=zero, f_bias=flat(f), f_noise=zero, d_bias=flat(dlt), d_noise=zero,
               xd_cross=zero, rho=(~fast & (blocks >= 1)).sum(-1) / n, v_fresh=v_fresh, e_eps=e_eps)
    out["quadratic"] = optimum.quadratic
    return out


def contraction(eta, L: float, mu: float):
    """q = max(|1 - eta mu|, |1 - eta L|): ||w - eta grad F(w) - w*|| <= q ||w - w*|| for a mu-strongly convex,
    L-smooth F (eq. 4.45)."""
    eta = np.asarray(eta, float)
    return np.maximum(np.abs(1 - eta * mu), np.abs(1 - eta * L))


def _affine(form, r):
    """sqrt(g) + kappa r: the L2 bound of eqs. (4.42)-(4.43)."""
    g, k = form
    return np.sqrt(g) + k * r


def run_recursion(algorithm: str, law: dict, eta, L: float, mu: float, Delta: float, t_max: int) -> dict:
    """Per K, the realisation means of the per-round terms summed over rounds 0..t-1 for t = 0..t_max (arrays
    (t_max + 1, K)), and whether every realisation's state was nonincreasing at its last round.

    fastest-K (eq. 4.45): p_t = sqrt(g(xbar)) + kappa r_t, n_t = (sqrt(tr C_x G*) + kappa_tr r_t)^2,
      r_{t+1}^2 = (q r_t + eta p_t)^2 + eta^2 (V_A + n_t).
    LGC (eq. 4.47), through y_t = w_t - eta eps'_{t-1}: round 0's bias p_0 from xbar, later ones from fbar, plus the
      staleness s_t = kappa(cbar^D) eta l_{t-1}; b_t = p_t + s_t; n_t with C_f; E'_t >= E||eps'_{t-1}||^2,
      r^y_{t+1}^2 = (q r^y_t + L eta^2 sqrt(E'_t) + eta b_t)^2 + eta^2 (V_fresh + n_t),
      l_t^2 = (L r^w_t + b_t + sqrt(E'_t))^2 + V_A + n^x_t      (>= E||d_t||^2),
      E'_{t+1} = E_eps + (sqrt(tr C_D G*) + kappa_tr r^w_t)^2,  r^w_t = r^y_t + eta sqrt(E'_t),  E'_0 = 0."""
    eta = np.asarray(eta, float)
    q = contraction(eta, L, mu)
    r0 = np.sqrt(2.0 * Delta / mu)  # mu ||w_0 - w*||^2 / 2 <= F(w_0) - F* <= Delta
    shape = np.broadcast(law["x_bias"][0], eta).shape
    names = ("first", "bias", "stale", "noise", "e2", "cross", "s_eps", "s_xi")
    sums = {k: np.zeros((t_max + 1, shape[-1])) for k in names}
    ry = np.full(shape, r0)
    rw, e2, ell = ry.copy(), np.zeros(shape), np.zeros(shape)
    rw_prev = x_prev = e2_prev = None
    old = new = None
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(t_max):
            step = dict.fromkeys(names, 0.0)
            if algorithm == "fastest-k":
                p = _affine(law["x_bias"], ry)
                nz = _affine(law["x_noise"], ry) ** 2
                old, ry = ry, np.sqrt((q * ry + eta * p) ** 2 + eta**2 * (law["v_a"] + nz))
                new = ry
                step.update(bias=p**2, noise=nz)
            else:
                if t == 0:
                    p, b = _affine(law["x_bias"], rw), _affine(law["x_bias"], rw)
                    step["first"] = p**2
                else:
                    p = _affine(law["f_bias"], rw)
                    b = p + law["d_bias"][1] * eta * ell
                    step.update(bias=p**2, stale=b**2 - p**2)
                nz = _affine(law["f_noise"], rw) ** 2
                nx = _affine(law["x_noise"], rw) ** 2
                step.update(noise=nz, e2=e2)
                if t > 0:  # eq. (4.49'): E<H eps'_{t-1}, m_t>, with round t-1's ||xi'||^2 and -Cov(x, c^D)
                    kap = law["f_bias"][1] + law["d_bias"][1]
                    step["cross"] = (L**2 * law["rho"] * law["v_a"] + _affine(law["xd_cross"], rw_prev) ** 2
                                     + L * kap * np.sqrt(e2 * x_prev))
                    kd2 = (law["d_bias"][1] * eta) ** 2  # ||S_t||^2 <= kappa_D^2 eta^2 ||d_{t-1}||^2 (eq. 4.49')
                    step.update(s_eps=kd2 * e2_prev, s_xi=kd2 * x_prev)
                rw_prev, x_prev, e2_prev = rw, law["v_a"] + nx, e2
                ell_new = np.sqrt((L * rw + b + np.sqrt(e2)) ** 2 + law["v_a"] + nx)
                ry_new = np.sqrt((q * ry + L * eta**2 * np.sqrt(e2) + eta * b) ** 2 + eta**2 * (law["v_fresh"] + nz))
                e2_new = law["e_eps"] + _affine(law["d_noise"], rw) ** 2
                old = np.stack([ry, e2, ell])
                ry, e2, ell = ry_new, e2_new, ell_new
                rw = ry + eta * np.sqrt(e2)
                new = np.stack([ry, e2, ell])
            for k in names:
                sums[k][t + 1] = sums[k][t] + np.mean(np.broadcast_to(step[k], shape), axis=0)
    settled = np.all(new <= old * (1 + 1e-12), axis=tuple(range(new.ndim - 1)))
    return dict(sums=sums, settled=np.broadcast_to(settled, (shape[-1],)), t_max=t_max)


class StrongBound:
    """eqs. (4.48)-(4.49) per K at any T, for one problem and timing (the law is drawn once; the recursions
    are cached per step size)."""

    def __init__(self, algorithm: str, *, N, B, M, L, mu, sigma2, Delta, law: dict):
        require(algorithm_entry(algorithm).strong_bound, f"the strong-convexity bound is for fastest-k and lgc, not {algorithm}")
        require(mu is not None and 0 < mu <= L, f"mu={mu} must satisfy 0 < mu <= L={L}")
        self.algorithm, self.N, self.B, self.M, self.L, self.mu = algorithm, N, B, M, L, mu
        self.sigma2, self.Delta, self.law = sigma2, Delta, law
        self._cache: dict = {}

    def _sums(self, eta, t_need: int):
        key = np.asarray(eta, float).tobytes()
        got = self._cache.get(key)
        if got is None or got["t_max"] < t_need:
            t = min(max(t_need, 2 * (got["t_max"] if got else 0), 64), T_CAP)
            got = run_recursion(self.algorithm, self.law, eta, self.L, self.mu, self.Delta, t)
            self._cache[key] = got
        return got

    def use_step_sizes(self, eta) -> None:
        """Every K's step size, kept for later calls on a subset of K (their other K keep these)."""
        self._eta_ref = np.array(np.broadcast_to(np.asarray(eta, float), (self.law["v_a"].shape[-1],)))

    def __call__(self, eta, T, cols=None) -> dict:
        """dict(total, terms) per K: eq. (4.48) or (4.49) at T rounds (inf where it does not hold).
        cols: the positions (in the law's ks) of the K values eta and T are for (default: all); the others
        keep the step size of the last call, so a subset reuses its recursion."""
        n_all = self.law["v_a"].shape[-1]
        cols = np.arange(n_all) if cols is None else np.asarray(cols, int)
        if len(cols) == n_all:
            ref = np.array(np.broadcast_to(np.asarray(eta, float), (n_all,)))
        else:
            require(hasattr(self, "_eta_ref"), "a subset of K needs the step sizes of every K first")
            ref = self._eta_ref.copy()
            ref[cols] = np.broadcast_to(np.asarray(eta, float), (len(cols),))
        self._eta_ref = ref
        T_all = np.ones(n_all)
        T_all[cols] = np.broadcast_to(np.asarray(T, float), (len(cols),))
        out = self._evaluate(ref, T_all)
        return dict(total=out["total"][cols], terms={k: np.broadcast_to(v, (n_all,))[cols] for k, v in out["terms"].items()})

    def _evaluate(self, eta, T) -> dict:
        n_k = self.law["v_a"].shape[-1]
        Ts = np.maximum(T, 1.0)
        t_need = int(min(np.nanmax(np.where(np.isfinite(Ts), Ts, 1.0)), T_CAP))
        rec = self._sums(eta, t_need)
        cols = np.arange(n_k)
        ti = np.minimum(Ts, rec["t_max"]).astype(int)
        extra = Ts - ti  # rounds past the recursion: each charged the last round's terms (eq. 4.50)
        per = {}
        for k, s in rec["sums"].items():
            last = s[rec["t_max"]] - s[rec["t_max"] - 1]
            per[k] = (s[ti, cols] + extra * last) / Ts
        L, eta_, N, B = self.L, eta, self.N, self.B
        full_noise = L * eta_ * self.sigma2 / (N * B)
        opt = 2 * self.Delta / (eta_ * Ts)
        if self.algorithm == "fastest-k":  # eq. (4.48)
            terms = {"optimization": opt, "noise": L * eta_ * self.law["v_a"], "bias": per["bias"],
                     "sampling": L * eta_ * per["noise"]}
            ok = eta_ * L <= 1 + 1e-12
        else:  # eq. (4.49)
            v_fresh = np.mean(np.atleast_2d(self.law["v_fresh"]), axis=0)  # held: the mean over draws
            if self.law["quadratic"]:  # eq. (4.49'): the cross term exactly, S_t absorbed by -(1 - eta L)||m||^2
                kmax = np.max(np.atleast_2d(self.law["d_bias"][1]), axis=0) * eta_
                best = np.full(n_k, np.inf)
                for lam in LAMBDAS:
                    for th in THETAS:
                        ok_lt = (1 + 1 / lam) * (1 + th) * kmax**2 <= 1 - L * eta_
                        v = lam * per["bias"] + (1 + 1 / lam) * ((1 + 1 / th) * per["s_eps"] + per["s_xi"])
                        best = np.where(ok_lt & (v < best), v, best)
                stale = best + 2 * eta_**2 * per["cross"]
            else:  # eq. (4.49): S_t through the step length, the gradient at w_t through Young's inequality
                stale = per["stale"] + L**2 * eta_**2 / (1 - L * eta_) * per["e2"]
            terms = {"optimization": opt, "noise": full_noise, "variance": L * eta_ * v_fresh - full_noise,
                     "set_change": per["first"], "zero_block": per["bias"] + L * eta_ * per["noise"],
                     "staleness": stale}
            ok = eta_ * L < 1
        total = sum(terms.values())
        ok = ok & (T >= 1) & np.isfinite(total) & ((Ts <= rec["t_max"]) | rec["settled"])
        if self.law["mode"] == "held":
            ok = ok & (Ts <= self.law["h_eff"])  # the set must not change within the T rounds
        total = np.where(ok, total, np.inf)
        return dict(total=total, terms=terms)
