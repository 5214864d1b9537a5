"""The workers' dissimilarity as a Gram matrix, and the set terms as quadratic forms in it
(theory/DERIVATION.md section 4.7, eqs. 4.35-4.40).

Assumption A4 bounds the workers' gradient deviations a_i(w) = grad f_i(w) - grad F(w) by one number,
zeta^2 >= (1/N) sum_i ||a_i(w)||^2, and Lemma 2 (eq. 4.8) then charges every set term
||sum_i c_i a_i(w)||^2 at the worst alignment, N ||c||^2 zeta^2. A4G (eq. 4.35) knows more: the Gram
matrix G(w)_ij = <a_i(w), a_j(w)>, through an *envelope* that returns, for coefficient vectors c,

    per_row(C)[r] >= sup_w c_r^T G(w) c_r        (C: rows c_r)                         (4.35)
    sup_trace(Q)  >= sup_w tr(Q G(w))            (Q: a PSD N x N matrix)

with the sup over the region the iterates stay in (as for zeta^2). Two envelopes:
GramPoints (G measured at points, e.g. by `lgc estimate`; G(w) in their convex hull) and
SeparableEnvelope (separable problems, a_ik depends on w_k only: exact over a box).

`set_forms` turns an envelope and the timing model into the expectations the bounds need,
by Monte Carlo over rounds drawn as the trainers draw them (abort semantics, eq. 2.4):

  g_bias   E sup_w ||a_{A_t}(w)||^2, c = 1_A/K - 1/N                 fastest-K's bias (4.36)
  g_fresh  E sup_w ||beta_t||^2, c = z/(N K) on A, 0 on S', -1/N on Z  lgc-fresh's bias, lgc's
                                                                         unchanged-set bias (4.37)
  g_delta  E sup_w ||Delta_t(w)||^2, c = 1/N on S', -s/(N K) on A      the compensation's set part (4.38)
  g_change E sup_w ||P_t||^2 at a period start, c = x_t + c^Delta_{t-1}  lgc's set change (4.39)
  g_ibias, g_ivar  sup_w ||sum (pi_i/K - 1/N) a_i||^2, sup_w tr(Cov(1_A) G)/K^2  fastest-K,
                                                                         independent sets (4.40)
"""
from __future__ import annotations

import numpy as np

from theory.errors import require
from theory.schedule import schedule_rounds

FORM_KEYS = ("g_bias", "g_fresh", "g_delta", "g_change", "g_ibias", "g_ivar")
SET_FORM_ROUNDS = 2000  # Monte Carlo rounds for set_forms (each round: two schedules, every K)


class GramPoints:
    """G(w) measured at P points, gram (P, N, N); A4G: at every iterate G(w) lies in their convex hull,
    so every linear functional of G is at most its largest value over the points (eq. 4.35)."""

    def __init__(self, gram):
        g = np.asarray(gram, dtype=float)
        g = g[None] if g.ndim == 2 else g
        require(g.ndim == 3 and g.shape[1] == g.shape[2] and g.shape[0] >= 1,
                f"gram must be an N x N matrix or a list of them, got shape {g.shape}")
        require(bool(np.all(np.isfinite(g))), "gram must be finite")
        self.gram = (g + g.transpose(0, 2, 1)) / 2
        self.n = g.shape[1]

    def per_row(self, C) -> np.ndarray:
        C = np.atleast_2d(np.asarray(C, float))
        return np.einsum("rn,pnm,rm->rp", C, self.gram, C).max(axis=1).clip(min=0)

    def sup_trace(self, Q) -> float:
        return float(max(np.einsum("nm,nm->", np.asarray(Q, float), g) for g in self.gram))

    def zeta2(self) -> float:
        """(1/N) tr G at its largest point: A4's zeta^2 as these points know it."""
        return float(max(np.trace(g) for g in self.gram) / self.n)


class SeparableEnvelope:
    """A separable problem, a_i(w)_k a function of w_k alone, on a box: values (P, N, d) holds a_ik at P
    grid points of each coordinate's interval. sup over the box of ||sum_i c_i a_i(w)||^2 is the sum over
    coordinates of the largest (sum_i c_i a_ik)^2 over the grid (exact where each coordinate's square is
    convex, e.g. quadratics with P = 2, the interval's ends; a fine grid otherwise)."""

    def __init__(self, values, *, inflate: float = 1.0):
        v = np.asarray(values, dtype=float)
        require(v.ndim == 3, f"values must be (points, N, d), got shape {v.shape}")
        self.values, self.n, self.inflate = v, v.shape[1], float(inflate)
        self._flat = np.ascontiguousarray(v.transpose(1, 2, 0).reshape(v.shape[1], -1))  # (N, d P): one BLAS product

    def per_row(self, C) -> np.ndarray:
        C = np.atleast_2d(np.asarray(C, float))
        s = (C @ self._flat).reshape(len(C), self.values.shape[2], self.values.shape[0])
        return self.inflate * np.square(s, out=s).max(axis=2).sum(axis=1)  # the grid axis last: a contiguous max

    def sup_trace(self, Q) -> float:
        q = np.einsum("pnd,nm,pmd->pd", self.values, np.asarray(Q, float), self.values)
        return self.inflate * float(q.max(axis=0).sum())

    def zeta2(self) -> float:
        return self.sup_trace(np.eye(self.n)) / self.n


def coefficients(finish, ks):
    """Per K (rows) the coefficient vectors of one abort round (eq. 2.4) with finish times (N, M):
    x = 1_A/K - 1/N, c^Delta (1/N on S', -s/(N K) on A), f = x + c^Delta (lgc-fresh's bias).
    Finish times (R, N, M) of R rounds: each of x, c^Delta, f is (R, |ks|, N), all rounds in one
    schedule_rounds call."""
    ks = np.asarray(ks, dtype=int)
    finish = np.asarray(finish, dtype=float)
    if finish.ndim == 2:
        b = schedule_rounds(finish, ks, semantics="abort")
        return schedule_coefficients(b.fast, b.blocks_done, ks[:, None])
    r, n, m_blocks = finish.shape
    b = schedule_rounds(np.repeat(finish, len(ks), axis=0), np.tile(ks, r), semantics="abort")
    shape = (r, len(ks), n)
    return schedule_coefficients(b.fast.reshape(shape), b.blocks_done.reshape(shape), ks[None, :, None])


def schedule_coefficients(fast, blocks_done, k):
    """x, c^Delta, f (as `coefficients`) of recorded rounds: fast masks and block counts (..., N), k
    broadcastable to their leading axes."""
    fast = np.asarray(fast, dtype=bool)
    n = fast.shape[-1]
    kk = np.asarray(k, dtype=float)
    rep = ~fast & (np.asarray(blocks_done) >= 1)  # S'_t: stragglers that report a block
    s = rep.sum(axis=-1, keepdims=True)
    x = fast / kk - 1.0 / n
    dlt = rep / n - fast * s / (n * kk)
    return x, dlt, x + dlt


def schedule_forms(fast, blocks_done, k: int, h: float, envelope) -> dict:
    """eqs. (4.36)-(4.40) for one K from recorded schedules (S, T, N) (seeds x rounds): the means over
    these rounds instead of the timing law's (as straggler_statistics does for m_inv, zero_frac);
    g_change over the rounds t >= 1 that start a period of h (t % h == 0; none for h = inf)."""
    fast = np.asarray(fast, dtype=bool)
    blocks_done = np.asarray(blocks_done)
    require(fast.ndim == 3 and fast.shape == blocks_done.shape, f"fast and blocks_done must be (S, T, N), got "
                                                               f"{fast.shape} and {blocks_done.shape}")
    require(envelope.n == fast.shape[-1], f"the Gram envelope is for N={envelope.n} workers, the schedules have "
                                          f"N={fast.shape[-1]}")
    x, dlt, f = schedule_coefficients(fast, blocks_done, k)
    mean = lambda c: float(_sum_per_row(envelope, c.reshape(-1, 1, c.shape[-1]))[0] / max(c.size // c.shape[-1], 1))
    out = {"g_bias": mean(x), "g_fresh": mean(f), "g_delta": mean(dlt)}
    t = np.arange(fast.shape[1])
    starts = (t >= 1) & (t % h == 0) if np.isfinite(h) else np.zeros(len(t), dtype=bool)
    out["g_change"] = mean((x[:, 1:] + dlt[:, :-1])[:, starts[1:]]) if starts.any() else 0.0
    flat = x.reshape(-1, x.shape[-1])
    mu = flat.mean(axis=0)
    out["g_ibias"] = float(envelope.per_row(mu)[0])
    out["g_ivar"] = max(envelope.sup_trace(np.cov(flat, rowvar=False, bias=True)), 0.0)
    return out


_CACHE: dict = {}
ROW_CHUNK = 512  # coefficient rows per envelope call


def _sum_per_row(envelope, c) -> np.ndarray:
    """Sum over the first axis of envelope.per_row for c (R, K, N): per K, sum_t gbar(c_t)."""
    flat = c.reshape(-1, c.shape[-1])
    v = np.concatenate([envelope.per_row(flat[i:i + ROW_CHUNK]) for i in range(0, len(flat), ROW_CHUNK)])
    return v.reshape(c.shape[:2]).sum(axis=0)


def set_forms(timing, n: int, m_blocks: int, h: float, ks, envelope, *, rounds: int = SET_FORM_ROUNDS,
              seed: int = 0) -> dict:
    """The expectations of eqs. (4.36)-(4.40) per K, by Monte Carlo over `rounds` independent replicates
    (seed + r), each the round pair (t-1, t) around a set change: t = the set-change period h_eff (its
    first round) when finite (sets that change every round within periods of h held speeds: t runs over
    the period's rounds), else one round (no set changes). Abort semantics (eq. 2.4)."""
    ks = np.asarray(ks, dtype=int)
    require(envelope.n == n, f"the Gram envelope is for N={envelope.n} workers, the problem has N={n}")
    key = (id(envelope), repr(timing), n, m_blocks, float(h), tuple(ks.tolist()), rounds, seed)
    if key in _CACHE:
        return _CACHE[key][1]
    h_eff = timing.set_change_period(h)
    period = int(min(h, 2**62)) if np.isfinite(h) else 2**62
    t1 = int(h_eff) if np.isfinite(h_eff) and h_eff < 2**62 else None
    # sets that change every round inside a longer period of held speeds: every position in the period
    cycle = int(h) if (t1 == 1 and np.isfinite(h) and 1 < h < 2**20) else 1
    names = ("g_bias", "g_fresh", "g_delta", "g_change")
    sums = {k: np.zeros(len(ks)) for k in names}
    sx, sxx = np.zeros((len(ks), n)), np.zeros((len(ks), n, n))
    chunk = max(1, (1 << 18) // (len(ks) * n))  # rounds per batch of envelope calls: O(2^18) floats
    for lo in range(0, rounds, chunk):
        m = min(chunk, rounds - lo)
        ts = [None if t1 is None else t1 + r % cycle for r in range(lo, lo + m)]
        draws = lambda back: np.stack([timing.block_finish_times(seed + r, (t or 0) - back, n, m_blocks, period=period)
                                       for r, t in zip(range(lo, lo + m), ts)])
        rows = dict(zip(("g_bias", "g_delta", "g_fresh"), coefficients(draws(0), ks)))  # each (m, |ks|, N)
        # the round before the set change; else 0: no set changes after round 0 (phi = 0)
        rows["g_change"] = rows["g_bias"] + coefficients(draws(1), ks)[1] if t1 is not None else np.zeros_like(rows["g_bias"])
        for k in names:
            sums[k] += _sum_per_row(envelope, rows[k])
        sx += rows["g_bias"].sum(axis=0)
        sxx += np.einsum("rkn,rkm->knm", rows["g_bias"], rows["g_bias"])
    out = {k: v / rounds for k, v in sums.items()}
    mean, second = sx / rounds, sxx / rounds
    out["g_ibias"] = envelope.per_row(mean)
    out["g_ivar"] = np.array([envelope.sup_trace(second[j] - np.outer(mean[j], mean[j]))
                              for j in range(len(ks))]).clip(min=0)  # rounding can leave -1e-20 where Cov = 0
    _CACHE[key] = (envelope, out)  # the envelope is kept alive with its entry: its id cannot be reused
    return out
