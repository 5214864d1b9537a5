"""The fast sets each round of the error model sees (theory/DERIVATION.md section 8, eqs. 8.5, 8.6; section 2's
schedules): per round, per draw and K, the fast set's and the reporting stragglers' mean deviations, their noise
factors and rho_t, from the timing model's own draws (theory/predict.py simulates the rule on them).
"""
from __future__ import annotations

import numpy as np

from theory.schedule import arrival_order, schedule_rounds


class RoundSets:
    """Per round, per draw and K: the fast set's and the reporting stragglers' mean deviations and noise factors
    (section 2's schedules on the timing model's draws; abort rounds of one straggling period are computed once)."""

    def __init__(self, timing, n, m_blocks, b_size, h, ks, semantics, a, seed):
        self.timing, self.n, self.m, self.B, self.ks, self.semantics, self.a = timing, n, m_blocks, b_size, ks, semantics, a
        self.period = int(min(h, 2**62)) if np.isfinite(h) else 2**62
        self.seed = seed
        self.cache: dict = {}
        self.start = None

    def key(self, t: int):
        """Rounds with one key have one schedule: a straggling period's under abort semantics (eq. 2.2), else each
        round (boundary: the carry-over chain)."""
        return ("period", t // self.period) if self.semantics == "abort" else ("round", t)

    def round(self, t: int):
        key = self.key(t)
        if key in self.cache:
            return self.cache[key]
        out = [self.one(s, t) for s in range(self.a.shape[0])]
        res = tuple(stack_draws(v) for v in zip(*out))
        if self.semantics == "abort":
            self.cache = {key: res}
        return res

    def one(self, s, t):
        fin = self.timing.block_finish_times(self.seed + s, t, self.n, self.m, period=self.period)
        ks = self.ks
        if self.semantics == "abort":
            return self._abort(fin, self.a[s])
        if self.start is None:  # boundary: the carry-over chain of eq. (2.3') per draw and K
            self.start = np.zeros((self.a.shape[0], len(ks), self.n))
        r = schedule_rounds(fin, ks, self.start[s], semantics="boundary")
        self.start[s] = r.next_start()
        return self._from_schedule(r.fast, r.blocks_done, self.a[s])

    def _from_schedule(self, fast, blocks, a):
        """From (K, N) fast masks and block counts (any semantics; O(K N))."""
        rep = ~fast & (blocks >= 1)
        cnt = rep.sum(1)
        bias_a = (fast.astype(float) @ a) / self.ks[:, None]
        bias_s = (rep.astype(float) @ a) / np.maximum(cnt, 1)[:, None]
        inv = np.where(rep, 1.0 / np.maximum(blocks, 1), 0.0).sum(1)
        return self._pack(bias_a, bias_s, inv, cnt)

    def _abort(self, fin, a):
        """Abort rounds (eqs. 2.1, 2.4) for every K from one sort: A_t is a prefix of the arrival order, so its
        deviations sum to a prefix sum; a straggler has m_j >= m iff its m-th block ends by t_cut (m <= M-1),
        so the counts of m_j >= m, and sum 1/m_j over the reporters, come from sorted block-finish columns."""
        ks, m = self.ks, self.m
        x = fin[:, -1]
        order = arrival_order(x)
        t_cut = x[order[ks - 1]]
        rows = np.take(a, order, axis=0)  # the deviations in arrival order (np.take: a third of a[order]'s time)
        if m == 1:  # no partial blocks: nobody reports
            bias_a = prefix_sums(rows, ks) / ks[:, None]
            return self._pack(bias_a, np.zeros_like(bias_a), np.zeros(len(ks)), np.zeros(len(ks), int))
        # (M - 1, N): block j's finish times in arrival order, rows contiguous (even_split_finish_times returns
        # the transpose of a row-major (M, N) array: no copy; at N = 10^4 the gather and the check below then
        # take a tenth of their time on row-major (N, M) columns)
        cols = np.take(np.ascontiguousarray(fin.T[: m - 1]), order, axis=1)
        # work spread evenly: every column in the arrival order, {first block ends by t_cut} a prefix of it
        even = bool(np.all(cols[:, 1:] >= cols[:, :-1]))
        if not even:  # per-block times: each column in its own order
            cols = np.sort(fin.T[: m - 1], axis=1)
        ge = np.stack([np.searchsorted(cols[j], t_cut, side="right") for j in range(m - 1)]) - ks  # m_j >= j+1
        ge = np.concatenate([ge, np.zeros((1, len(ks)), int)])
        inv = ((ge[:-1] - ge[1:]) / np.arange(1, m)[:, None]).sum(0)  # sum over reporters of 1/m_j
        cnt = ge[0]
        # the workers whose first block ends by t_cut: the fast set and the reporters, a prefix of the first
        # blocks' order (the arrival order when work is spread evenly)
        if even:
            sums = prefix_sums(rows, np.concatenate([ks, ks + cnt]))
            ca, c0 = sums[: len(ks)], sums[len(ks):]
        else:
            ca = prefix_sums(rows, ks)
            c0 = prefix_sums(np.take(a, np.argsort(fin[:, 0], kind="stable"), axis=0), ks + cnt)
        bias_a = ca / ks[:, None]
        bias_s = (c0 - ca) / np.maximum(cnt, 1)[:, None]
        return self._pack(bias_a, bias_s, inv, cnt)

    def _pack(self, bias_a, bias_s, inv, cnt):
        """The means' deviations, their noise factors (per-sample variance multipliers) and rho_t."""
        b = self.B / self.m
        var_a = 1.0 / (self.ks * self.B)  # the mean of K B samples
        var_s = inv / b / np.maximum(cnt, 1) ** 2  # the mean of the reporters' partial means (m_j b samples each)
        return bias_a, bias_s, var_a, var_s, cnt / self.n


def prefix_sums(rows: np.ndarray, at) -> np.ndarray:
    """(len(at), D): the sum of rows[:p] for each p of `at` (0 <= p <= len(rows)). The sums over the segments
    between consecutive p, then their running sum: one pass over the rows, not a running sum of every row (at
    N = 10^4, D = 8: 0.05 ms against 0.25 ms; the same sums, added in another order)."""
    u, back = np.unique(at, return_inverse=True)
    out = np.zeros((len(u), rows.shape[1]))
    pos = u > 0
    p = u[pos]
    if p.size:
        out[pos] = np.cumsum(np.add.reduceat(rows[: p[-1]], np.concatenate([[0], p[:-1]]), axis=0), axis=0)
    return out[back]


def stack_draws(arrays) -> np.ndarray:
    """np.stack of the draws' arrays (one draw, the common case at large N: a view, not a copy)."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
