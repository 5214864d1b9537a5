"""The optimal-time peers of Tyurin & Richtarik (NeurIPS 2023): their rounds from block finish times.

"Optimal Time Complexities of Parallel Stochastic Optimization Methods Under a Fixed Computation
Model" (arXiv:2305.12387). One stochastic gradient of the paper is one block of b samples here.
Every worker computes blocks one after another at the current point; within a round its block
stream continues past its M blocks at the round's drawn speed (stream_finish_times, eq. 6.1).

  Rennala SGD: the server steps once it holds S block gradients, from
    whichever workers (fast workers contribute several): d = (1/S) sum of the S blocks (eq. 6.2).
  Malenia SGD: the server waits until every worker has B_i >= 1 blocks and
    (1/N sum_i 1/B_i)^(-1) >= S/N, then d = sum_i pi_i (1/B_i) sum of worker i's blocks
    (pi_i = 1/N in the paper) (eq. 6.3).

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


def stream_finish_times(finish: np.ndarray, count: int) -> np.ndarray:
    """(N, count) finish times of each worker's first `count` blocks from the round's start (eq. 6.1):
    block q = r M + m (0 <= m < M) ends at r X_i + finish[i, m], X_i = finish[i, M-1]."""
    finish = np.asarray(finish, dtype=float)
    n, m_blocks = finish.shape
    q = np.arange(count)
    return (q // m_blocks)[None, :] * finish[:, -1:] + finish[:, q % m_blocks]


def blocks_done_by(finish: np.ndarray, t: float) -> np.ndarray:
    """B_i(t): blocks of worker i's stream finished by time t (inclusive), closed form of eq. 6.1."""
    finish = np.asarray(finish, dtype=float)
    n, m_blocks = finish.shape
    x = finish[:, -1]
    r = np.floor(t / x).astype(np.int64)
    rest = t - r * x
    return r * m_blocks + np.array([int(np.searchsorted(finish[i], rest[i], side="right")) for i in range(n)])


def _arrivals(finish: np.ndarray, counts: np.ndarray):
    """Every block of every worker's stream up to counts[i], sorted by time (ties: worker index,
    then block order): (times, workers)."""
    times, workers = [], []
    for i, c in enumerate(counts):
        times.append(stream_finish_times(finish[i:i + 1], int(c))[0])
        workers.append(np.full(int(c), i))
    times, workers = np.concatenate(times), np.concatenate(workers)
    order = np.lexsort((workers, times))
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


def malenia_condition(blocks, s: int) -> bool:
    """Every B_i >= 1 and (1/N sum_i 1/B_i)^(-1) >= S/N, i.e. sum_i 1/B_i <= N^2 / S (eq. 6.3)."""
    b = np.asarray(blocks, dtype=float)
    n = len(b)
    if np.any(b < 1):
        return False
    return math.fsum(1.0 / b) <= n * n / s * (1 + 1e-12)


def malenia_schedule(finish: np.ndarray, s: int, *, comm: float = 0.0, round_index: int = 0) -> RoundSchedule:
    """Malenia SGD's round: blocks arrive in time order until malenia_condition holds (eq. 6.3).

    It holds at the latest when every worker has ceil(S/N) blocks (harmonic mean >= minimum), so
    only the arrivals up to that time are generated."""
    finish = np.asarray(finish, dtype=float)
    require(s >= 1, f"S={s} must be >= 1")
    n = finish.shape[0]
    q = -(-s // n)
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
        if malenia_condition(blocks, s):
            return _schedule(blocks, first, t, comm, round_index)
    raise AssertionError("unreachable: the condition holds once every worker has ceil(S/N) blocks")


def peer_schedule(algorithm: str, finish: np.ndarray, s: int, *, comm: float = 0.0, round_index: int = 0):
    require(algorithm in PEERS, f"algorithm={algorithm!r} must be one of {', '.join(PEERS)}")
    fn = rennala_schedule if algorithm == "rennala" else malenia_schedule
    return fn(finish, s, comm=comm, round_index=round_index)


def default_s(algorithm: str, sigma2_block: float, eps: float, n_workers: int) -> int:
    """S from the papers' theorems: Rennala max(ceil(sigma^2/eps), 1), Malenia max(ceil(sigma^2/eps), N),
    sigma^2 the variance of one block gradient (sigma_sample^2 / b) and eps the target E||grad f||^2
    (eq. 6.7)."""
    require(algorithm in PEERS, f"algorithm={algorithm!r} must be one of {', '.join(PEERS)}")
    require(eps > 0, f"target eps={eps} must be > 0")
    require(sigma2_block >= 0, f"sigma^2={sigma2_block} must be >= 0")
    s = max(math.ceil(sigma2_block / eps), 1)
    return s if algorithm == "rennala" else max(s, n_workers)
