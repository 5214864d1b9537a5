"""A batched numpy simulation of the plain-SGD rules on quadratics, for the K* check.

Every K and every seed of a setting run at once (arrays (K, S, ...)), so a whole K sweep over
20 seeds costs about what one run costs in the trainers. The rules are lgc/rules.py's, written
out vectorised (an exact equivalent; tests/test_kstar_check.py checks it against lgc.validate,
whose trajectories tests/test_validation.py checks against `lgc.sim`):

  weights (lgc.rules.group_weights): w_fast = pi_i / sum_{A_t} pi on A_t; stragglers with
    m_j >= 1 report, rho_t = sum of their pi_j, w_strag = pi_j / rho_t;
  directions (lgc.rules.aggregate, DERIVATION.md eqs. 3.1, 3.3): full-sync d = sum_i pi_i g_i;
    fastest-K d = gA_t; lgc d = gA_t + u_{t-1}, u_t = rho_t (gS_t - gA_t); lgc-fresh (eq. 3.4)
    d = (1 - rho_t) gA_t + rho_t gS_t (gA_t when rho_t = 0); warm-up rounds run full-sync and reset u;
  server (lgc.rules.server_step, eq. 3.6): w <- w - eta d (plain SGD, no momentum).

Schedules (theory/schedule.py, eqs. 2.1, 2.2, 2.4): worker i finishes block m at X_i (m+1)/M;
A_t is the K smallest X_i (ties by index); under abort semantics a straggler counts the blocks
finished by t_cut = X_(K), at most M - 1, and R_t = t_cut (no communication time; lgc-fresh's wait
for the reports adds nothing, since under abort every reported block ends by t_cut).

The problem: f_i(w) = 1/2 sum_k h_ik (w_k - c_ik)^2 with per-worker curvatures h_ik (a shared
Hessian is the case h_ik = h_k), per-sample gradient grad f_i(w) + xi, xi ~ N(0, (sigma^2/d) I_d)
(lgc.data.synthetic.QuadraticProblem's noise), so a block of b = B/M samples has mean noise
N(0, sigma^2/(d b) I_d). Its constants (DERIVATION.md section 1): L = max h_ik (A2); sigma^2 (A3);
zeta^2 = sup over a box of (1/N) sum_i ||grad f_i - grad F||^2 (A4, exact: a separable convex
quadratic, largest at a corner; the box W of DERIVATION.md eq. 4.41', box(noise_sd(B))); delta = max |h_ik - hbar_k| (A6); Delta = F(w_0) - F*.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theory.algorithms import ALGORITHMS


@dataclass(frozen=True)
class Quadratic:
    h: np.ndarray  # (N, d) curvatures
    c: np.ndarray  # (N, d) worker optima
    w0: np.ndarray  # (d,)
    sigma2: float
    name: str = "quadratic"
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n(self) -> int:
        return self.h.shape[0]

    @property
    def d(self) -> int:
        return self.h.shape[1]

    @property
    def hbar(self) -> np.ndarray:
        return self.h.mean(0)

    @property
    def w_star(self) -> np.ndarray:
        return (self.h * self.c).sum(0) / self.h.sum(0)

    def F(self, w) -> float:
        x = np.asarray(w, float)[None] - self.c
        return float(np.mean(np.sum(0.5 * self.h * x * x, axis=1)))

    @property
    def L(self) -> float:
        return float(self.h.max())

    @property
    def Delta(self) -> float:
        return self.F(self.w0) - self.F(self.w_star)

    @property
    def delta(self) -> float:
        """A6: grad f_i - grad F = (h_i - hbar) w - (h_i c_i - mean h c), Lipschitz constant max |h_i - hbar|."""
        return float(np.abs(self.h - self.hbar).max())

    def box(self, margin=1.0):
        """The region where zeta^2 and the Gram envelope are taken (DERIVATION.md 4.7, the region W): per
        coordinate, the interval spanned by w_0, w* and every worker's optimum c_ik (so every set's own minimiser),
        widened by `margin` (a number or one per coordinate; noise_sd(B) makes it valid in expectation)."""
        pts = np.vstack([self.w0[None], self.w_star[None], self.c])
        m = np.broadcast_to(np.asarray(margin, float), (self.d,))
        return pts.min(0) - m, pts.max(0) + m

    def noise_sd(self, batch: int) -> np.ndarray:
        """Per coordinate, s_k with s_k^2 = v / (h_k (2L - h_k)), v = sigma^2 / (d B) one worker's mini-batch noise
        per coordinate, h_k = min_i h_ik: the largest variance of the noise part of a full-sync or fastest-K iterate
        at any K and eta <= 1/L (DERIVATION.md eq. 4.41')."""
        hk = self.h.min(0)
        return np.sqrt(self.sigma2 / (self.d * batch) / (hk * (2 * self.L - hk)))

    def zeta2(self, margin=1.0) -> float:
        """sup over box(margin) of (1/N) sum_i ||a_i(w)||^2, a_i = grad f_i - grad F: per coordinate a convex
        quadratic in w_k, so its sup is at an end of [lo_k, hi_k] (exact; everywhere when delta = 0)."""
        return float(self.zeta2_per_coordinate(margin).sum())

    def zeta2_per_coordinate(self, margin=1.0) -> np.ndarray:
        """zeta2's terms: per coordinate k, the sup over [lo_k, hi_k] of (1/N) sum_i a_ik(w_k)^2 (d,)."""
        lo, hi = self.box(margin)

        def a2(wk):  # (d,) -> (d,)
            g = self.h * (wk[None] - self.c)
            return ((g - g.mean(0)) ** 2).mean(0)

        return np.maximum(a2(lo), a2(hi))

    def dissimilarity(self, margin=1.0):
        """The workers' Gram envelope over box(margin) (A4G, theory/gram.py): a_ik(w) = h_ik (w_k - c_ik) -
        mean_j h_jk (w_k - c_jk) depends on w_k alone and is affine in it, so every (sum_i c_i a_ik)^2 is
        convex in w_k and largest at an end of [lo_k, hi_k]: exact with the two ends (constant when delta = 0)."""
        from theory.gram import SeparableEnvelope

        key = ("envelope", tuple(np.broadcast_to(np.asarray(margin, float), (self.d,))))
        if key not in self._cache:
            ends = np.stack(self.box(margin))  # (2, d)
            g = self.h[None] * (ends[:, None, :] - self.c[None])  # (2, N, d)
            self._cache[key] = SeparableEnvelope(g - g.mean(1, keepdims=True))
        return self._cache[key]

    @property
    def mu(self) -> float:
        """F's Hessian is diag(hbar): F is mu-strongly convex with mu = min_k hbar_k (A7, exact)."""
        return float(self.hbar.min())

    def optimum(self):
        """The workers' deviations at w* and their slopes (theory.strong.OptimumGram, DERIVATION.md eq. 4.44):
        a_ik(w) = a_ik(w*) + (h_ik - hbar_k)(w_k - w*_k), exact."""
        from theory.strong import OptimumGram

        g = self.h * (self.w_star[None] - self.c)
        return OptimumGram.separable(g - g.mean(0), self.h - self.hbar, hessian=self.hbar)

    def constants(self, margin=1.0) -> dict:
        return {"L": self.L, "sigma2": self.sigma2, "zeta2": self.zeta2(margin), "Delta": self.Delta}


def from_shared(quad) -> Quadratic:
    """lgc.data.synthetic.QuadraticProblem (one Hessian for all workers, pi uniform) as a Quadratic."""
    n = quad.n_workers
    return Quadratic(h=np.repeat(np.asarray(quad.h, float)[None], n, 0), c=np.asarray(quad.c, float),
                     w0=np.asarray(quad.w0, float), sigma2=float(quad.sigma2), name="shared-H")


def schedule(x: np.ndarray, k: int, m_blocks: int):
    """Fast masks, block counts and R_t (abort semantics, eqs. 2.1, 2.2, 2.4) from mini-batch times x (..., N).
    Block m of worker i ends at x_i (m+1)/M, computed as theory.schedule does (same floats at ties)."""
    order = np.argsort(x, axis=-1, kind="stable")
    rank = np.argsort(order, axis=-1, kind="stable")
    fast = rank < k
    t_cut = np.take_along_axis(x, order[..., k - 1:k], axis=-1)
    finish = x[..., None] * (np.arange(1, m_blocks + 1) / m_blocks)
    done = (finish <= t_cut[..., None]).sum(-1)
    blocks = np.where(fast, m_blocks, np.minimum(done, m_blocks - 1))
    return fast, blocks, t_cut[..., 0]


def draw_times(timing, seeds: int, rounds: int, n: int, period: float, seed: int = 0) -> np.ndarray:
    """Mini-batch times X (S, T, N): one draw of timing.sample per straggling period, held for `period`
    rounds (eq. 2.2). For models whose sample() draws i.i.d. rows with fixed per-worker laws
    (shifted exponential; heterogeneous speeds with slow_workers='first')."""
    p = int(min(period, rounds))
    periods = -(-rounds // p)
    rng = np.random.default_rng([seed, 7919])
    x = timing.sample(rng, (seeds, periods, n))
    return np.repeat(x, p, axis=1)[:, :rounds]


# full-sync and the rules that close a round at the K-th arrival (fastest-k, lgc, lgc-fresh)
SIMULATED = tuple(a.name for a in ALGORITHMS if a.round_end in ("all", "k"))


def simulate(prob: Quadratic, algorithm: str, x: np.ndarray, ks, *, m_blocks: int, batch: int, eta: float,
             warmup: int = 0, noise=None, seed: int = 0, loss_gap: bool = False):
    """||grad F(w_t)||^2 for t = 0..T-1, (len(ks), S, T), for every K in ks and seed at once; loss_gap: also
    F(w_t) - F* = sum_k hbar_k (w_k - w*_k)^2 / 2 (F's Hessian is diag(hbar)), the pair (grad_sq, gap).

    x: (S, T, N) mini-batch times. noise: (S, T, N, M, d) block-mean noises (lgc.validate.block_noise)
    or None (drawn here, N(0, sigma^2/(d b)) per coordinate, shared by every K of a seed and round)."""
    if algorithm not in SIMULATED:
        raise ValueError(f"algorithm={algorithm!r}: simulated here are {', '.join(SIMULATED)}")
    ks = np.asarray(ks, int)
    S, T, n = x.shape
    d, nk = prob.d, len(ks)
    b = batch // m_blocks
    rng = np.random.default_rng([seed, 104723])
    scale = np.sqrt(prob.sigma2 / (d * b))
    fast = np.empty((nk, S, T, n), bool)
    blocks = np.empty((nk, S, T, n), int)
    for j, k in enumerate(ks):
        fast[j], blocks[j], _ = schedule(x, int(k), m_blocks)
    pi = 1.0 / n
    h, c = prob.h, prob.c
    hbar, hc = prob.hbar, (prob.h * prob.c).mean(0)
    w = np.broadcast_to(prob.w0, (nk, S, d)).copy()
    u = np.zeros((nk, S, d))
    out = np.empty((nk, S, T))
    gap = np.empty((nk, S, T)) if loss_gap else None
    steps = np.arange(1, m_blocks + 1)[:, None]
    for t in range(T):
        gF = hbar * w - hc
        out[:, :, t] = (gF * gF).sum(-1)
        if loss_gap:
            gap[:, :, t] = 0.5 * (hbar * (w - prob.w_star) ** 2).sum(-1)
        z = noise[:, t] if noise is not None else rng.standard_normal((S, n, m_blocks, d)) * scale
        run = np.cumsum(z, axis=2) / steps  # (S, N, M, d): mean noise of the first m blocks
        exact = h * (w[:, :, None, :] - c)  # (K, S, N, d)
        g = exact + run[None, :, :, -1]
        if algorithm == "full-sync" or t < warmup:
            w = w - eta * g.mean(2)
            u[:] = 0.0
            continue
        f = fast[:, :, t]  # (K, S, N)
        m = blocks[:, :, t]
        wf = f / f.sum(-1, keepdims=True)  # pi_i / sum_A pi (uniform pi)
        gA = np.einsum("ksn,ksnd->ksd", wf, g)
        if algorithm == "fastest-k":
            w = w - eta * gA
            continue
        rep = (~f) & (m >= 1)
        rho = rep.sum(-1) * pi  # (K, S)
        idx = np.clip(m - 1, 0, m_blocks - 1)
        part = np.take_along_axis(np.broadcast_to(run[None], (nk,) + run.shape),
                                  idx[..., None, None], axis=3)[:, :, :, 0]
        gp = exact + part
        ws = np.where(rep, pi / np.where(rho > 0, rho, 1.0)[..., None], 0.0)
        gS = np.einsum("ksn,ksnd->ksd", ws, gp)
        if algorithm == "lgc-fresh":
            w = w - eta * np.where((rho > 0)[..., None], (1.0 - rho[..., None]) * gA + rho[..., None] * gS, gA)
            continue
        w = w - eta * (gA + u)
        u = np.where((rho > 0)[..., None], rho[..., None] * (gS - gA), 0.0)
    return (out, gap) if loss_gap else out


def budget_mean(grad_sq: np.ndarray, wall: np.ndarray, tau: float):
    """Per K and seed: (1/T_s) sum_{t < T_s} ||grad F(w_t)||^2 over the T_s rounds that end within the
    budget (sum of R_t <= tau; at least one round), and T_s. grad_sq (K, S, T), wall (K, S, T)."""
    done = np.cumsum(wall, axis=-1) <= tau
    t_s = np.maximum(done.sum(-1), 1)
    keep = np.arange(grad_sq.shape[-1]) < t_s[..., None]
    return (grad_sq * keep).sum(-1) / t_s, t_s


def budget_final(gap: np.ndarray, wall: np.ndarray, tau: float) -> np.ndarray:
    """Per K and seed: F(w_{T_s}) - F*, the loss gap after the T_s rounds that end within the budget (at least
    one; T_s as budget_mean's). gap (K, S, T) with T > T_s."""
    t_s = np.maximum((np.cumsum(wall, axis=-1) <= tau).sum(-1), 1)
    return np.take_along_axis(gap, t_s[..., None], axis=-1)[..., 0]
