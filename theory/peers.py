"""The optimal-time peers of Tyurin & Richtarik (NeurIPS 2023): their rounds from block finish times.

"Optimal Time Complexities of Parallel Stochastic Optimization Methods Under a Fixed Computation
Model" (arXiv:2305.12387). One stochastic gradient of the paper is one block of b samples here.
Every worker computes blocks one after another at the current point; within a round its block
stream continues past its M blocks at the round's drawn speed (stream_finish_times, eq. 6.1).

  Rennala SGD: the server steps once it holds S block gradients, from
    whichever workers (fast workers contribute several): d = (1/S) sum of the S blocks (eq. 6.2).
  Malenia SGD: the server waits until every worker has B_i >= 1 blocks and
    (1/N sum_i 1/B_i)^(-1) >= S/N, then d = sum_i pi_i (1/B_i) sum of worker i's blocks
    (pi_i = 1/N in the paper) (eq. 6.3); for other pi_i the condition is sum_i pi_i^2/B_i <= 1/S
    (eq. 6.3'), which is the paper's at pi_i = 1/N.

The server steps at the arrival that completes the condition; work in flight is dropped and
every worker restarts at the new point (the paper lets a stale gradient finish and discards it;
dropping it is never slower). The round's schedule is a RoundSchedule whose `blocks[i]` is B_i
(it may exceed M) and whose `fast` lists the contributing workers in order of their first block.
Equations: theory/DERIVATION.md section 6.
"""
from __future__ import annotations

import math

import numpy as np

from theory.algorithms import ALGORITHMS
from theory.errors import require
from theory.schedule import RoundSchedule

PEERS = tuple(a.name for a in ALGORITHMS if a.peer)  # rennala, malenia
TIE_RTOL = 1e-12  # relative: finish times closer than this are one instant (ties: worker index)


def stream_finish_times(finish: np.ndarray, count: int) -> np.ndarray:
    """(N, count) finish times of each worker's first `count` blocks from the round's start (eq. 6.1):
    block q = r M + m (0 <= m < M) ends at r X_i + finish[i, m], X_i = finish[i, M-1]."""
    finish = np.asarray(finish, dtype=float)
    n, m_blocks = finish.shape
    q = np.arange(count)
    return (q // m_blocks)[None, :] * finish[:, -1:] + finish[:, q % m_blocks]


def blocks_done_by(finish: np.ndarray, t: float) -> np.ndarray:
    """B_i(t): blocks of worker i's stream finished by time t (inclusive), counted on the very floats
    stream_finish_times gives (eq. 6.1): floor(t / X_i) is only a first guess, since t - r X_i can
    round below a block's finish time that equals t (a block ending exactly at t would be missed)."""
    finish = np.asarray(finish, dtype=float)
    n, m_blocks = finish.shape
    x = finish[:, -1]

    def end(i, q):  # the finish time of block q of worker i, exactly as stream_finish_times computes it
        return (q // m_blocks) * x[i] + finish[i, q % m_blocks]

    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        r = int(np.floor(t / x[i]))
        q = r * m_blocks + int(np.searchsorted(finish[i], t - r * x[i], side="right"))
        while end(i, q) <= t:
            q += 1
        while q > 0 and end(i, q - 1) > t:
            q -= 1
        out[i] = q
    return out


def _arrivals(finish: np.ndarray, counts: np.ndarray):
    """Every block of every worker's stream up to counts[i], sorted by time (ties: worker index,
    then block order): (times, workers)."""
    times, workers = [], []
    for i, c in enumerate(counts):
        times.append(stream_finish_times(finish[i:i + 1], int(c))[0])
        workers.append(np.full(int(c), i))
    times, workers = np.concatenate(times), np.concatenate(workers)
    order = np.argsort(times, kind="stable")
    # Times equal in exact arithmetic (fixed-time models: 3 * 0.7 and 2.1) can differ in the last
    # bits; times within TIE_RTOL of the previous one count as one instant, ordered by worker index.
    t = times[order]
    instant = np.concatenate([[0], np.cumsum(np.diff(t) > TIE_RTOL * np.abs(t[1:]))])
    order = order[np.lexsort((t, workers[order], instant))]
    return times[order], workers[order]


def _schedule(blocks: np.ndarray, first: np.ndarray, stop: float, comm: float, round_index: int) -> RoundSchedule:
    used = np.flatnonzero(blocks > 0)
    fast = tuple(int(i) for i in used[np.argsort(first[used], kind="stable")])
    return RoundSchedule(round=round_index, fast=fast, blocks_done=tuple(int(v) for v in blocks), t_cut=float(stop),
                         wall=float(stop) + comm, comm=comm)


def rennala_schedule(finish: np.ndarray, s: int, *, comm: float = 0.0, round_index: int = 0) -> RoundSchedule:
    """Rennala SGD's round: the S earliest blocks of all streams; R_t = time of the S-th (eq. 6.2)."""
    finish = np.asarray(finish, dtype=float)
    require(s >= 1, f"S={s} must be >= 1")
    n = finish.shape[0]
    times, workers = _arrivals(finish, np.full(n, s))  # no worker contributes more than S
    blocks = np.bincount(workers[:s], minlength=n)
    first = np.full(n, np.inf)
    for k in range(s - 1, -1, -1):
        first[workers[k]] = times[k]
    return _schedule(blocks, first, times[s - 1], comm, round_index)


def malenia_condition(blocks, s: int, weights=None) -> bool:
    """Every B_i >= 1 and sum_i pi_i^2 / B_i <= 1/S (eq. 6.3'), pi_i = w_i / sum_j w_j: the step's
    variance is at most sigma_b^2 / S. With weights None (pi_i = 1/N, the paper's) it is
    (1/N sum_i 1/B_i)^(-1) >= S/N, i.e. sum_i 1/B_i <= N^2 / S (eq. 6.3); written as
    sum_i w_i^2 / B_i <= (sum_i w_i)^2 / S, exact in the integers for w = 1 or data sizes."""
    b = np.asarray(blocks, dtype=float)
    w = np.ones(len(b)) if weights is None else np.asarray(weights, dtype=float)
    if np.any(b < 1):
        return False
    return math.fsum(w * w / b) <= math.fsum(w) ** 2 / s * (1 + 1e-12)


def malenia_blocks_enough(s: int, weights, n: int) -> int:
    """q such that B_i = q for every i satisfies malenia_condition: q >= S sum_i pi_i^2 (ceil(S/N)
    when pi = 1/N); one more than the smallest at a float tie, which only lengthens the search."""
    if weights is None:
        return -(-s // n)
    w = np.asarray(weights, dtype=float)
    return max(1, math.ceil(s * math.fsum(w * w) / math.fsum(w) ** 2 * (1 + 1e-12)))


def malenia_schedule(finish: np.ndarray, s: int, *, weights=None, comm: float = 0.0,
                     round_index: int = 0) -> RoundSchedule:
    """Malenia SGD's round: blocks arrive in time order until malenia_condition holds (eq. 6.3,
    weights pi_i by eq. 6.3'). It stops at the first arrival where the harmonic-mean condition
    holds with equality allowed (>=); the paper's is strict (>), which differs only at exact
    equality and is immaterial to its guarantee (the variance bound sigma_b^2/S holds at equality).

    It holds at the latest when every worker has malenia_blocks_enough blocks (ceil(S/N) for
    pi = 1/N: harmonic mean >= minimum), so only the arrivals up to that time are generated."""
    finish = np.asarray(finish, dtype=float)
    require(s >= 1, f"S={s} must be >= 1")
    n = finish.shape[0]
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        require(weights.shape == (n,) and bool(np.all(weights > 0)),
                f"Malenia weights {weights.tolist()} must be {n} positive numbers (one per worker)")
    q = malenia_blocks_enough(s, weights, n)
    t_max = float(np.max(stream_finish_times(finish, q)[:, -1]))
    times, workers = _arrivals(finish, blocks_done_by(finish, t_max))
    blocks = np.zeros(n, dtype=np.int64)
    first = np.full(n, np.inf)
    for t, i in zip(times, workers):
        if blocks[i] == 0:
            first[i] = t
        blocks[i] += 1
        if blocks[i] == 1 and np.any(blocks == 0):
            continue
        if malenia_condition(blocks, s, weights):
            return _schedule(blocks, first, t, comm, round_index)
    raise AssertionError("unreachable: the condition holds once every worker has malenia_blocks_enough blocks")


def peer_schedule(algorithm: str, finish: np.ndarray, s: int, *, weights=None, comm: float = 0.0,
                  round_index: int = 0):
    """The round of a peer; `weights` (pi_i up to scale, None for 1/N) matter to Malenia only
    (Rennala's d is sample-weighted, eq. 6.2)."""
    require(algorithm in PEERS, f"algorithm={algorithm!r} must be one of {', '.join(PEERS)}")
    if algorithm == "rennala":
        return rennala_schedule(finish, s, comm=comm, round_index=round_index)
    return malenia_schedule(finish, s, weights=weights, comm=comm, round_index=round_index)


def peer_round_times(q):
    """E[R] of a peer's rounds (theory.round_kinds.RoundTimesQuery q, S = q.param): the Monte Carlo mean
    over q.rounds rounds of the papers' schedule plus comm(one message per block), the same for every
    K (eqs. 6.2-6.3). Returns (mean, se, route) like the other kinds."""
    name, s_blocks = q.entry.name, q.param
    require(s_blocks is not None and s_blocks >= 1, f"{name} needs peer_s = S >= 1, got {s_blocks}")
    walls = []
    for t in range(q.rounds):
        s = peer_schedule(name, q.model.block_finish_times(q.seed, t, q.n, q.m_blocks), s_blocks)
        walls.append(s.wall + float(q.comm.time(sum(s.blocks_done))))
    mean, se = float(np.mean(walls)), float(np.std(walls, ddof=1) / np.sqrt(q.rounds)) if q.rounds > 1 else 0.0
    return np.full(len(q.ks), mean), np.full(len(q.ks), se), "monte carlo"


def default_s(algorithm: str, sigma2_block: float, eps: float, n_workers: int) -> int:
    """S from the papers' theorems: Rennala max(ceil(sigma^2/eps), 1), Malenia max(ceil(sigma^2/eps), N),
    sigma^2 the variance of one block gradient (sigma_sample^2 / b) and eps the target E||grad f||^2
    (eq. 6.7)."""
    require(algorithm in PEERS, f"algorithm={algorithm!r} must be one of {', '.join(PEERS)}")
    require(eps > 0, f"target eps={eps} must be > 0")
    require(sigma2_block >= 0, f"sigma^2={sigma2_block} must be >= 0")
    s = max(math.ceil(sigma2_block / eps), 1)
    return s if algorithm == "rennala" else max(s, n_workers)
