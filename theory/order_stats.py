"""Expected cutoff and round times E[t_cut(K)], E[R(K)] and straggler work E[m_j].

The equations: theory/DERIVATION.md (2.3)-(2.8') and its "Monte Carlo" paragraph.

Three routes, the most exact that applies (the model's `order_statistic_route`, theory/timing_model.py):
  closed form   shifted exponential: E[X_(K:N)] = shift + (H_N - H_{N-K}) / rate   (eq. 2.7)
  integration   any i.i.d. continuous model: E[X_(K:N)] = int_0^1 Q(u) beta_{K,N-K+1}(u) du  (eq. 2.8)
  Monte Carlo   everything else (heterogeneous, deterministic, trace, per-block blocks; E[m_j];
                boundary semantics, whose carry-over makes the rounds a Markov chain), running
                the schedule code of theory/schedule.py (eqs. 2.3, 2.4) on the trainers' draws,
                with a standard error (over independent rounds, or batch means of the chain):
                theory/round_stats.py (its RoundStats and round_stats importable from here too).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from theory.algorithms import NAMES, algorithm as algorithm_entry
from theory.errors import require
from theory.round_kinds import RoundTimesQuery
from theory.round_stats import RoundStats, chain_rounds, default_rounds, round_stats  # the last also re-exported
from theory.schedule import DEFAULT_SEMANTICS, comm_time
from theory.timing import ShiftedExponential
from theory.timing_model import TimingModel, expected_order_statistic_groups, quantile_order_statistic


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


def round_count(model: TimingModel, n: int, m_blocks: int, algorithm: str, *, semantics: str, n_ks: int,
                rounds: int | None = None) -> int:
    """The Monte Carlo rounds expected_round_times draws (its progress runs to this): the given rounds or the
    default, the boundary chain's (cut by its cost, |ks| N M a round, the standard error says so) or, under
    abort, a trace's recorded rounds."""
    chained = semantics == "boundary" and algorithm_entry(algorithm).waits_for_k
    rounds = _rounds_or_default(rounds, n, m_blocks, n_ks, chained)
    return rounds if chained else (model.periods() or rounds)


def _rounds_or_default(rounds, n, m_blocks, n_ks, chained) -> int:
    if rounds is not None:
        return rounds
    return chain_rounds(n, m_blocks, n_ks) if chained else default_rounds(n, m_blocks)


def _exact_cutoffs(model: TimingModel, n: int, ks: np.ndarray):
    route = model.order_statistic_route
    if model.per_block or route == "monte carlo" or (route == "integration" and n > EXACT_MAX_N):
        return None, "monte carlo"
    return expected_cutoffs(model, n, ks), route


def expected_round_times(
    model: TimingModel, n: int, m_blocks: int, algorithm: str, *, semantics: str = DEFAULT_SEMANTICS, ks=None,
    comm: CommModel = CommModel(), report_latency: float = 0.0, deadline: float | None = None,
    rounds: int | None = None, seed: int = 0, period: int = 1, progress: Callable[[int], None] | None = None,
    peer_s: int | None = None,
) -> RoundTimes:
    """E[R(K)] for `algorithm` for every K in ks (README "Algorithms", round-time column; eqs. 2.3-2.6).

    full-sync: E[max_i X_i] + comm(N messages), the same for every K;
    fastest-k: E[R(K)] + comm(K);  lgc: E[R(K)] + comm(N);  lgc-fresh: lgc's + report_latency;
    anytime-minibatch: deadline + comm(N) (deadline defaults to E[t_cut(K)], so K sets it);
    rennala, malenia: the Monte Carlo mean of their rounds at S = peer_s (theory/peers.py, eq. 6.2-6.3)
    plus comm(one message per block), the same for every K.
    Abort semantics (eq. 2.4): R = t_cut + comm, exact for i.i.d. even-split models (eqs. 2.7,
    2.8). Boundary semantics (eq. 2.3'): the server still closes at t_cut (lgc-fresh: when the
    reports are in), but the stragglers' carry-over delays later cutoffs; E[R] is E[X_(K:N)]
    plus the chain's Monte Carlo excess R - X_(K:N) on the same draws (a control variate), with
    straggling period `period`.
    """
    entry = algorithm_entry(algorithm)
    require(report_latency >= 0, f"report_latency={report_latency} must be >= 0")
    ks = np.arange(1, n + 1) if ks is None else np.asarray(ks, dtype=int)
    messages = entry.messages(ks, n - ks)  # every straggler reports where the rule uses them (M >= 2)
    # full-sync and anytime-minibatch carry nothing over (eqs. 2.1, 2.6): independent rounds
    chained = semantics == "boundary" and entry.waits_for_k
    rounds = _rounds_or_default(rounds, n, m_blocks, len(ks), chained)
    stats = round_stats(model, n, m_blocks, semantics=semantics if chained else "abort", ks=ks, rounds=rounds,
                        seed=seed, period=period, wait_reports=entry.waits_for_reports,
                        comm=comm.time(messages) if chained else 0.0, progress=progress)
    exact, method = _exact_cutoffs(model, n, ks)
    param = {"deadline": deadline, "peer_s": peer_s}.get(entry.round_kind.parameter)  # the kind's own parameter
    query = RoundTimesQuery(model=model, n=n, m_blocks=m_blocks, ks=ks, entry=entry, comm=comm, rounds=rounds,
                            seed=seed, param=param, report_latency=report_latency, chained=chained, stats=stats,
                            exact=exact, method=method)
    mean, se, method = entry.round_kind.expected_round_times(query)  # theory/round_kinds.py
    return RoundTimes(algorithm, ks, mean, se, method, query.t_cut, stats)


# E[R] of the round kind "all" (theory/round_kinds.py calls it): (mean, se, route)
def full_round_times(q: RoundTimesQuery):
    """Every worker's mini-batch: E[max_i X_i] + comm(N messages), the same for every K (eq. 2.1)."""
    top, method = _exact_cutoffs(q.model, q.n, np.array([q.n]))
    if top is None:
        full = round_stats(q.model, q.n, q.m_blocks, semantics="abort", ks=[q.n], rounds=q.rounds, seed=q.seed)
        top, se = full.t_cut, full.t_cut_se
    else:
        se = np.zeros(1)
    mean = np.full(len(q.ks), float(top[0])) + q.comm.time(q.entry.messages(q.n, 0))
    return mean, np.full(len(q.ks), float(se[0])), method


# ----------------------------------------------------------------------------- independent, non-identical
def heterogeneous_cutoff(model, n: int, k: int) -> float:
    """E[t_cut(K)] of HeterogeneousSpeed with a fixed slow set (hold="times" or "speed")."""
    return expected_order_statistic_groups(model.worker_groups(n), k)
