"""Expected cutoff and round times E[t_cut(K)], E[R(K)] and straggler work E[m_j].

The equations: theory/DERIVATION.md (2.3)-(2.8') and its "Monte Carlo" paragraph.

Three routes, the most exact that applies (the model's `order_statistic_route`, theory/timing.py):
  closed form   shifted exponential: E[X_(K:N)] = shift + (H_N - H_{N-K}) / rate   (eq. 2.7)
  integration   any i.i.d. continuous model: E[X_(K:N)] = int_0^1 Q(u) beta_{K,N-K+1}(u) du  (eq. 2.8)
  Monte Carlo   everything else (boundary wait, heterogeneous, deterministic, trace, per-block
                blocks), using the schedule semantics of theory/schedule.py (eqs. 2.3, 2.4), with
                a standard error over independent rounds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from theory.algorithms import NAMES, algorithm as algorithm_entry
from theory.errors import require
from theory.schedule import comm_time
from theory.timing import (
    MC_ROUNDS, ShiftedExponential, TimingModel, expected_order_statistic_groups, quantile_order_statistic,
)


# ----------------------------------------------------------------------------- i.i.d. order statistics
def harmonic_cumsum(n: int) -> np.ndarray:
    """H_0..H_n as an array of length n + 1."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def shifted_exp_order_stats(model: ShiftedExponential, n: int, ks) -> np.ndarray:
    """E[X_(K:N)] for every K in ks, eq. (2.7), vectorized."""
    return model.expected_order_statistics(ks, n)


def expected_order_statistic(model: TimingModel, k: int, n: int) -> float:
    """E[X_(k:n)] of an i.i.d. model by quadrature of its quantile function (eq. 2.8), whatever
    closed form it has (the check of eq. 2.7); infinite where the integral diverges."""
    require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")
    if not model.order_statistic_finite(k, n):
        return float("inf")
    return quantile_order_statistic(model.ppf, k, n)


def expected_cutoffs(model: TimingModel, n: int, ks=None) -> np.ndarray:
    """E[t_cut(K)] = E[X_(K:N)] by closed form or integration (i.i.d., even-split models only)."""
    ks = np.arange(1, n + 1) if ks is None else np.asarray(ks, dtype=int)
    require(model.iid and not model.per_block, f"{model.name} needs Monte Carlo (round_stats)")
    return model.expected_order_statistics(ks, n)


# ----------------------------------------------------------------------------- Monte Carlo rounds
@dataclass(frozen=True)
class RoundStats:
    """Per-K Monte Carlo means (arrays indexed like `ks`) with standard errors over rounds.

    wall: R(K) without communication; m_mean: mean m_j over stragglers; m_inv: mean over
    stragglers of 1{m_j >= 1} / m_j; zero_frac: fraction of stragglers with m_j = 0.
    """

    ks: np.ndarray
    t_cut: np.ndarray
    t_cut_se: np.ndarray
    wall: np.ndarray
    wall_se: np.ndarray
    m_mean: np.ndarray
    m_inv: np.ndarray
    zero_frac: np.ndarray
    rounds: int
    wait: np.ndarray  # E[R(K) - t_cut(K)], the boundary wait
    wait_se: np.ndarray
    m_inv_se: np.ndarray | None = None  # Monte Carlo standard errors of m_inv and zero_frac
    zero_frac_se: np.ndarray | None = None


def _blocks_of_level(levels: np.ndarray, m_blocks: int, semantics: str) -> np.ndarray:
    """m_j for a straggler with `done` = level blocks finished by t_cut (eqs. 2.3, 2.4)."""
    extra = 1 if semantics == "boundary" else 0
    return np.minimum(levels + extra, m_blocks - 1)


def _even_split_round(x: np.ndarray, m_blocks: int, semantics: str):
    """One round of an even-split model, every K at once, in O(N M log N).

    Sorted times x_(1) <= ... <= x_(N); for K, t = x_(K). A straggler with time x has
    done = floor(M t / x) blocks by t (block m ends at x (m+1)/M, eq. 2.2), so the stragglers in
    level k are those with M t/(k+1) < x <= M t/k; counts come from searchsorted. Under boundary
    semantics a level-k straggler stops at x (k+1)/M (eq. 2.3), largest for the largest x of
    the level. Returns per-K arrays (t_cut, wall, sum m, sum 1{m>=1}/m, #zero).
    """
    n = x.size
    xs = np.sort(x)
    t = xs
    kk = np.arange(1, n + 1)
    # c[k] = number of positions with x <= M t / k, at least K (k = 1..M); c[0] = N
    c = np.empty((m_blocks + 1, n), dtype=np.int64)
    c[0] = n
    for k in range(1, m_blocks + 1):
        c[k] = np.maximum(np.searchsorted(xs, m_blocks * t / k, side="right"), kk)
    counts = np.empty((m_blocks + 1, n), dtype=np.int64)
    counts[:m_blocks] = c[:m_blocks] - c[1:]
    counts[m_blocks] = c[m_blocks] - kk  # ties with t: all blocks done by t
    levels = np.arange(m_blocks + 1)
    m_of = _blocks_of_level(levels, m_blocks, semantics).astype(float)
    m_of[m_blocks] = m_blocks - 1
    inv = np.where(m_of >= 1, 1.0 / np.maximum(m_of, 1), 0.0)
    m_sum = m_of @ counts
    inv_sum = inv @ counts
    zeros = (m_of == 0).astype(float) @ counts
    wall = t.copy()
    if semantics == "boundary":
        # level 0: the slowest straggler, if it has not finished one block by t
        lvl0 = counts[0] > 0
        wall = np.where(lvl0, np.maximum(wall, xs[-1] / m_blocks), wall)
        for k in range(1, m_blocks):
            has = counts[k] > 0
            top = xs[np.maximum(c[k] - 1, 0)] * (k + 1) / m_blocks
            wall = np.where(has, np.maximum(wall, top), wall)
    return t, wall, m_sum, inv_sum, zeros


def _generic_round(finish: np.ndarray, ks: np.ndarray, semantics: str):
    """Per-block models: per K, directly from the (N, M) finish times (eqs. 2.3, 2.4)."""
    n, m_blocks = finish.shape
    x = finish[:, -1]
    order = np.argsort(x, kind="stable")
    out = np.zeros((5, len(ks)))
    for col, k in enumerate(ks):
        t = x[order[k - 1]]
        strag = order[k:]
        done = (finish[strag] <= t).sum(axis=1)
        m = _blocks_of_level(done, m_blocks, semantics)
        wall = t
        if semantics == "boundary" and len(strag):
            stop = finish[strag, np.minimum(done, m_blocks - 1)]
            wall = max(t, float(stop.max()))
        out[:, col] = (t, wall, m.sum(), np.where(m >= 1, 1.0 / np.maximum(m, 1), 0.0).sum(), (m == 0).sum())
    return out


def round_stats(
    model: TimingModel, n: int, m_blocks: int, *, semantics: str = "boundary", ks=None,
    rounds: int = MC_ROUNDS, seed: int = 0, progress: Callable[[int], None] | None = None,
) -> RoundStats:
    """Monte Carlo E[t_cut(K)], E[R(K)] (boundary wait included), E[m_j] over independent rounds.

    Round r uses model.block_finish_times(seed, r, N, M, period=1): independent periods, the
    same draws `sim` and `dist` see. Deterministic models need one round; trace replay uses
    each recorded round once. Memory O(N + len(ks)): the rounds enter running means and sums
    of squared deviations (Welford's update), not a (rounds, len(ks)) array (1.4 GB at N = 10^6).
    `progress(r)` is called after each round r = 1..rounds (a progress bar; theory prints nothing).
    """
    require(n >= 1, f"N={n} must be >= 1")
    require(m_blocks >= 1, f"M={m_blocks} must be >= 1")
    require(semantics in ("boundary", "abort"), f"semantics={semantics!r} must be 'boundary' or 'abort'")
    require(rounds >= 2, f"rounds={rounds} must be >= 2")
    ks = np.arange(1, n + 1) if ks is None else np.asarray(ks, dtype=int)
    require(bool(np.all((ks >= 1) & (ks <= n))), f"K must satisfy 1 <= K <= N={n}")
    rounds = model.periods() or rounds
    # fixed or replayed times can tie exactly with block boundaries: there, use the finish
    # matrix itself (float-identical to the schedule code) unless N is large
    exact_path = model.per_block or (model.fixed_times() and n <= 2000)
    mean = np.zeros((6, len(ks)))  # rows: t_cut, wall, sum m, sum 1{m>=1}/m, #zero, wait R - t_cut
    m2 = np.zeros((6, len(ks)))
    one = np.empty((6, len(ks)))
    for r in range(rounds):
        if exact_path:
            one[:5] = _generic_round(model.block_finish_times(seed, r, n, m_blocks), ks, semantics)
        else:
            x = model.block_finish_times(seed, r, n, 1)[:, 0]
            for row, v in enumerate(_even_split_round(x, m_blocks, semantics)):
                one[row] = v[ks - 1]
        one[5] = one[1] - one[0]
        delta = one - mean
        mean += delta / (r + 1)
        m2 += delta * (one - mean)
        if progress is not None:
            progress(r + 1)
    strag = np.maximum(n - ks, 1)
    se = np.sqrt(m2 / (rounds - 1) / rounds) if rounds > 1 else np.zeros_like(mean)
    return RoundStats(
        ks=ks, t_cut=mean[0], t_cut_se=se[0], wall=mean[1], wall_se=se[1],
        m_mean=mean[2] / strag, m_inv=mean[3] / strag, zero_frac=mean[4] / strag, rounds=rounds,
        wait=mean[5], wait_se=se[5], m_inv_se=se[3] / strag, zero_frac_se=se[4] / strag,
    )


# ----------------------------------------------------------------------------- E[R(K)] per algorithm
ROUND_ALGORITHMS = NAMES  # the table, theory/algorithms.py
EXACT_MAX_N = 1000  # integrate order statistics up to this N; Monte Carlo beyond (speed)


@dataclass(frozen=True)
class CommModel:
    """comm = alpha + beta * model_bytes * messages (eq. 2.5); zero by default."""

    alpha: float = 0.0
    beta: float = 0.0
    model_bytes: float = 0.0

    def __post_init__(self):
        for k in ("alpha", "beta", "model_bytes"):
            require(getattr(self, k) >= 0, f"{k}={getattr(self, k)} must be >= 0")

    def time(self, messages):
        return comm_time(self.alpha, self.beta, self.model_bytes, np.asarray(messages, dtype=float))


@dataclass(frozen=True)
class RoundTimes:
    """E[R(K)] of one algorithm for every K in ks, its standard error (0 when exact), the route
    used ("closed form", "integration", "monte carlo"), and the straggler statistics that the
    bounds need (RoundStats fields, Monte Carlo)."""

    algorithm: str
    ks: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    method: str
    t_cut: np.ndarray
    stats: RoundStats


MC_ROUNDS_MAX = 2000  # expected_round_times: up to this many rounds while N M rounds <= MC_ELEMENTS
MC_ELEMENTS = 2_000_000


def default_rounds(n: int, m_blocks: int) -> int:
    """Rounds for E[R] and the straggler statistics: 2000 for small N M (K* must not move with the Monte
    Carlo seed), fewer for large N M at a fixed cost of about MC_ELEMENTS draws, never under 30."""
    return int(min(MC_ROUNDS_MAX, max(30, MC_ELEMENTS // (n * m_blocks))))


def _exact_cutoffs(model: TimingModel, n: int, ks: np.ndarray):
    route = model.order_statistic_route
    if model.per_block or route == "monte carlo" or (route == "integration" and n > EXACT_MAX_N):
        return None, "monte carlo"
    return expected_cutoffs(model, n, ks), route


def expected_round_times(
    model: TimingModel, n: int, m_blocks: int, algorithm: str, *, semantics: str = "boundary", ks=None,
    comm: CommModel = CommModel(), report_latency: float = 0.0, deadline: float | None = None,
    rounds: int | None = None, seed: int = 0, progress: Callable[[int], None] | None = None,
    peer_s: int | None = None,
) -> RoundTimes:
    """E[R(K)] for `algorithm` for every K in ks (README "Algorithms", round-time column; eqs. 2.3-2.6).

    full-sync: E[max_i X_i] + comm(N messages), the same for every K;
    fastest-k: E[R(K)] + comm(K);  lgc: E[R(K)] + comm(N);  lgc-fresh: lgc's + report_latency;
    anytime-minibatch: deadline + comm(N) (deadline defaults to E[t_cut(K)], so K sets it);
    rennala, malenia: the Monte Carlo mean of their rounds at S = peer_s (theory/peers.py, eq. 6.2-6.3)
    plus comm(one message per block), the same for every K.
    E[R(K)] is exact under abort semantics (R = t_cut) for i.i.d. even-split models, Monte Carlo
    under boundary semantics (the wait for the blocks in flight, eq. 2.3).
    """
    entry = algorithm_entry(algorithm)
    require(report_latency >= 0, f"report_latency={report_latency} must be >= 0")
    ks = np.arange(1, n + 1) if ks is None else np.asarray(ks, dtype=int)
    rounds = default_rounds(n, m_blocks) if rounds is None else rounds
    stats = round_stats(model, n, m_blocks, semantics=semantics, ks=ks, rounds=rounds, seed=seed, progress=progress)
    exact, method = _exact_cutoffs(model, n, ks)
    t_cut = stats.t_cut if exact is None else exact
    zeros = np.zeros(len(ks))
    if entry.round_end == "all":
        top, m2 = _exact_cutoffs(model, n, np.array([n]))
        if top is None:
            full = round_stats(model, n, m_blocks, semantics=semantics, ks=[n], rounds=rounds, seed=seed)
            top, se = full.t_cut, full.t_cut_se
        else:
            se = zeros[:1]
        mean = np.full(len(ks), float(top[0])) + comm.time(entry.messages(n, 0))
        return RoundTimes(algorithm, ks, mean, np.full(len(ks), float(se[0])), m2, t_cut, stats)
    if entry.round_end == "blocks":
        from theory.peers import peer_schedule

        require(peer_s is not None and peer_s >= 1, f"{algorithm} needs peer_s = S >= 1, got {peer_s}")
        walls = []
        for t in range(rounds):
            s = peer_schedule(algorithm, model.block_finish_times(seed, t, n, m_blocks), peer_s)
            walls.append(s.wall + float(comm.time(sum(s.blocks))))
        mean, se = float(np.mean(walls)), float(np.std(walls, ddof=1) / np.sqrt(rounds)) if rounds > 1 else 0.0
        return RoundTimes(algorithm, ks, np.full(len(ks), mean), np.full(len(ks), se), "monte carlo", t_cut, stats)
    if entry.round_end == "deadline":
        dl = t_cut if deadline is None else np.full(len(ks), float(deadline))
        require(bool(np.all(dl > 0)), f"deadline={deadline} must be > 0")
        se = stats.t_cut_se if (deadline is None and exact is None) else zeros
        return RoundTimes(algorithm, ks, dl + comm.time(entry.messages(ks, n - ks)), se, method if deadline is None else "given", t_cut, stats)
    if semantics == "abort":
        mean, se = t_cut.copy(), (stats.t_cut_se if exact is None else zeros)
    elif exact is None:
        mean, se, method = stats.wall.copy(), stats.wall_se, "monte carlo"
    else:  # exact cutoff plus the Monte Carlo boundary wait: a control variate, smaller error
        mean, se, method = exact + stats.wait, stats.wait_se, method + " + monte carlo wait"
    mean = mean + comm.time(entry.messages(ks, n - ks))  # every straggler reports (boundary, M >= 2)
    if entry.waits_for_reports:
        mean = mean + report_latency
    return RoundTimes(algorithm, ks, mean, se, method, t_cut, stats)


# ----------------------------------------------------------------------------- independent, non-identical
def heterogeneous_cutoff(model, n: int, k: int) -> float:
    """E[t_cut(K)] of HeterogeneousSpeed with a fixed slow set (hold="times" or "speed")."""
    return expected_order_statistic_groups(model.worker_groups(n), k)
