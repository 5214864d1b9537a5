"""A numpy simulation of the plain-SGD rules (DERIVATION.md section 3, written out here, independent of lgc)
on problems with exact constants, for the bound tests (tests/test_bounds*.py).

Problems are separable, f_i(w) = sum_k h_ik phi(w_k - c_ik), with per-worker curvatures h_ik (so
grad f_i - grad F changes with w and lgc's one-round delay matters, unlike a shared Hessian):
  quadratic: phi(x) = x^2 / 2;   logcosh: phi(x) = log cosh x (non-quadratic, bounded gradients).
Their constants: L = max h (A2), delta = sup_w max_i ||J a_i(w)|| (A6, diagonal Jacobians),
zeta2 = sup (1/N) sum_i ||a_i(w)||^2 (A4; for the quadratic over the box the iterates visited,
the only points where the proofs apply A4; for logcosh over all w), Delta = F(w_0) - F*.
A stochastic gradient is the exact one plus Gaussian noise of variance sigma2 per sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.round_stats import straggler_statistics


@dataclass
class Problem:
    kind: str  # "quadratic" or "logcosh"
    h: np.ndarray  # (N, d) curvatures
    c: np.ndarray  # (N, d) centres
    sigma2: float

    @property
    def n(self):
        return self.h.shape[0]

    def grads(self, w):
        """Per-worker exact gradients: w (S, d) -> (S, N, d)."""
        x = w[:, None, :] - self.c[None]
        return self.h[None] * (x if self.kind == "quadratic" else np.tanh(x))

    def minimizer(self):
        if self.kind == "quadratic":
            return (self.h * self.c).sum(0) / self.h.sum(0)
        lo, hi = self.c.min(0) - 1.0, self.c.max(0) + 1.0  # sum_i h tanh(w - c) is increasing in w
        for _ in range(80):
            mid = (lo + hi) / 2
            pos = (self.h * np.tanh(mid[None] - self.c)).sum(0) > 0
            hi, lo = np.where(pos, mid, hi), np.where(pos, lo, mid)
        return (lo + hi) / 2

    def value(self, w):
        x = w[None] - self.c
        return float(np.mean(np.sum(self.h * (x**2 / 2 if self.kind == "quadratic" else np.logaddexp(x, -x) - np.log(2)), 1)))

    def _coordinate_grid(self, box):
        lo, hi = box if box is not None else (self.c.min(0) - 12.0, self.c.max(0) + 12.0)
        return np.linspace(lo, hi, 4001)  # (G, d)

    def zeta2(self, box=None):
        """sup (1/N) sum_i ||a_i||^2: separable, so the per-coordinate sups add. Quadratic: a convex
        function of each w_k, largest at an end of the box; logcosh: a fine grid (+1%)."""
        g = self._coordinate_grid(box)
        x = g[:, None, :] - self.c[None]
        gi = self.h[None] * (x if self.kind == "quadratic" else np.tanh(x))
        a2 = ((gi - gi.mean(1, keepdims=True)) ** 2).mean(1)  # (G, d)
        return float(a2.max(0).sum()) * (1.0 if self.kind == "quadratic" else 1.01)

    def envelope(self, box=None):
        """The workers' Gram envelope (A4G, theory/gram.py SeparableEnvelope) over the same region as zeta2:
        a_ik depends on w_k alone. Quadratic: affine in w_k, exact at the box's ends; logcosh: the grid
        (+1%, as zeta2)."""
        from theory.gram import SeparableEnvelope

        if self.kind == "quadratic":
            g = np.stack(box) if box is not None else self._coordinate_grid(None)[[0, -1]]
        else:
            g = self._coordinate_grid(box)
        gi = self.h[None] * ((g[:, None, :] - self.c[None]) if self.kind == "quadratic" else np.tanh(g[:, None, :] - self.c[None]))
        return SeparableEnvelope(gi - gi.mean(1, keepdims=True), inflate=1.0 if self.kind == "quadratic" else 1.01)

    def delta(self):
        """Lipschitz constant of a_i: max over workers and w of the largest |diagonal Jacobian entry|."""
        if self.kind == "quadratic":
            return float(np.abs(self.h - self.h.mean(0)).max())
        x = self._coordinate_grid(None)[:, None, :] - self.c[None]
        j = self.h[None] / np.cosh(x) ** 2
        return float(np.abs(j - j.mean(1, keepdims=True)).max()) * 1.01

    @property
    def L(self):
        return float(self.h.max())

    def per_coordinate(self, w0):
        """A shared-Hessian quadratic's exact statistics per coordinate k, the error model's bands at their finest:
        (h_k, Delta_k = h_k (w0_k - w*_k)^2 / 2, zeta2_k = (1/N) sum_i a_ik^2, a = the deviations at w*)."""
        ws, hk = self.minimizer(), self.h[0]
        a = self.grads(ws[None])[0]
        return hk, hk / 2 * (w0 - ws) ** 2, (a**2).mean(0), a


def make_problem(kind, *, n=6, d=3, seed=0, sigma2=1.0, spread=1.0, curvature=(0.3, 1.0), same=False):
    rng = np.random.default_rng(seed)
    h = rng.uniform(*curvature, size=(n, d))
    c = rng.normal(0, spread, size=(n, d)) + 1.0
    h[0, 0] = curvature[1]  # L = the top of the range exactly
    if same:  # identical workers: zeta2 = 0 = delta
        h, c = np.repeat(h[:1], n, 0), np.repeat(c[:1], n, 0)
    return Problem(kind, h, c, sigma2)


def finish_times(timing, *, n, m_blocks, rounds, seeds, h):
    """Block finish times (S, T, N, M), drawn as the trainers draw them."""
    return np.array([[timing.block_finish_times(s, t, n, m_blocks, period=h) for t in range(rounds)]
                     for s in range(seeds)])


def schedules(finish, k, semantics="boundary"):
    """Fast masks and block counts (S, T, N): theory/schedule.py's schedule_round (eqs. 2.1, 2.3,
    2.4), vectorized over rounds (test_bound_sim checks the two agree)."""
    m_blocks = finish.shape[-1]
    x = finish[..., -1]
    rank = np.argsort(np.argsort(x, axis=-1, kind="stable"), axis=-1, kind="stable")
    fast = rank < k
    t_cut = np.take_along_axis(x, np.argsort(x, axis=-1, kind="stable")[..., k - 1:k], axis=-1)
    done = (finish <= t_cut[..., None]).sum(-1)
    m = np.minimum(done + (1 if semantics == "boundary" else 0), m_blocks - 1)
    return fast, np.where(fast, m_blocks, m)


def simulate(alg, prob: Problem, fast, blocks, *, k, b_size, m_blocks, eta, w0, warmup=0, seed=0, momentum=0.0,
             out=None):
    """(1/T) sum_t ||grad F(w_t)||^2 averaged over seeds, vectorized over the S seeds; and the
    box [min, max] of every iterate (for zeta2). Rules: full-sync (3.1), fastest-K, lgc (3.3),
    lgc-fresh (3.4), server step w <- w - eta v, v <- momentum v + d (plain SGD at momentum 0).
    out: a dict that receives per-seed arrays "grad2" (the mean above) and "gap" (F(w_T) - F*)."""
    S, T, n = fast.shape
    d = prob.h.shape[1]
    b = b_size // m_blocks
    rng = np.random.default_rng(1000 + seed)
    w = np.repeat(np.asarray(w0, float)[None], S, 0)
    u = np.zeros((S, d))
    vel = np.zeros((S, d))
    acc = np.zeros(S)
    lo, hi = w[0].copy(), w[0].copy()
    for t in range(T):
        gi = prob.grads(w)  # (S, N, d)
        g = gi.mean(1)
        acc += (g * g).sum(1)
        z = rng.normal(0, np.sqrt(prob.sigma2 / (d * b)), size=(S, n, m_blocks, d))  # block noise means
        full = gi + z.mean(2)
        if t < warmup or alg == "full-sync":
            step, u = full.mean(1), np.zeros((S, d))
        else:
            fm = fast[:, t]  # (S, N)
            bl = blocks[:, t]
            g_a = (full * fm[..., None]).sum(1) / k
            rep = (~fm) & (bl >= 1)
            cnt = np.cumsum(z, axis=2)  # partial sums over the first m blocks
            idx = np.clip(bl - 1, 0, m_blocks - 1)
            part = np.take_along_axis(cnt, idx[:, :, None, None], axis=2)[:, :, 0] / np.maximum(bl, 1)[..., None]
            gp = gi + part
            s_cnt = rep.sum(1)
            rho = (s_cnt / n)[:, None]
            g_s = (gp * rep[..., None]).sum(1) / np.maximum(s_cnt, 1)[:, None]
            if alg == "fastest-k":
                step = g_a
            elif alg == "lgc-fresh":
                step = (1 - rho) * g_a + rho * g_s
            else:
                step = g_a + u
                u = rho * (g_s - g_a)
        vel = momentum * vel + step
        w = w - eta * vel
        lo, hi = np.minimum(lo, w.min(0)), np.maximum(hi, w.max(0))
    if out is not None:
        out["grad2"] = acc / T
        out["gap"] = np.array([prob.value(x) for x in w]) - prob.value(prob.minimizer())
    return float(acc.mean() / T), (lo, hi)


def stats(fast, blocks):
    """The bound's straggler statistics of these schedules (m_inv, zero_frac, zero_sq)."""
    st = straggler_statistics(fast.reshape(-1, fast.shape[-1]), blocks.reshape(-1, blocks.shape[-1]))
    return {k: st[k] for k in ("m_inv", "zero_frac", "zero_sq")}
