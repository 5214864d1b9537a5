"""Monte Carlo of round statistics: E[t_cut(K)], E[R(K)] without communication, E[m_j] and the
zero-block fraction, with standard errors, for any timing model and either semantics.

The equations: theory/DERIVATION.md (2.3)-(2.4), (2.3') and its "Monte Carlo" paragraph. The rounds
run the schedule code of theory/schedule.py on the trainers' draws (block_finish_times(seed, r, ...)):
abort rounds are independent (eq. 2.4; even-split models by a vectorised count over every K), the
boundary semantics' carry-over makes the rounds a Markov chain over start offsets (eq. 2.3'), whose
standard error comes from batch means. theory/order_stats.py picks the route and adds communication.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from theory.errors import require
from theory.schedule import DEFAULT_SEMANTICS, require_semantics, schedule_rounds
from theory.timing_model import MC_ROUNDS, TimingModel


@dataclass(frozen=True)
class RoundStats:
    """Per-K Monte Carlo means (arrays indexed like `ks`) with standard errors over rounds.

    wall: R(K) without communication; m_mean: mean m_j over stragglers; m_inv: mean over
    stragglers of 1{m_j >= 1} / m_j; zero_frac: fraction of stragglers with m_j = 0;
    wait: R(K) - t_cut(K) (lgc-fresh's wait for the reports; 0 otherwise); excess: R(K) minus
    the K-th smallest mini-batch time of the same draws without carry-over (0 under abort).
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
    wait: np.ndarray  # E[R(K) - t_cut(K)]
    wait_se: np.ndarray
    excess: np.ndarray  # E[R(K) - X_(K:N)] on the same draws: the carry-over's delay plus the wait (eq. 2.3')
    excess_se: np.ndarray
    m_inv_se: np.ndarray | None = None  # Monte Carlo standard errors of m_inv and zero_frac
    zero_frac_se: np.ndarray | None = None


CHUNK = 1 << 14  # K values per chunk: every per-round temporary is (M + 1) x CHUNK, not (M + 1) x N.
# A multiple of 64: the level sums (a BLAS product) then round every column as one product over all K
# would (widths not a multiple of the kernel's, 7 say, change the last bit of some sums).


def _even_split_round(x: np.ndarray, m_blocks: int, ks: np.ndarray | None = None) -> np.ndarray:
    """One abort round of an even-split model, every K in ks at once, in O(N log N + |ks| M log N)
    (eq. 2.4).

    Sorted times x_(1) <= ... <= x_(N); for K, t = x_(K). A straggler with time x has
    done = floor(M t / x) blocks by t (block m ends at x (m+1)/M, eq. 2.2), so the stragglers in
    level k are those with M t/(k+1) < x <= M t/k; counts come from searchsorted, and
    m_j = min(level, M-1). Returns (5, |ks|): per K (default 1..N) t_cut, wall, sum m,
    sum 1{m>=1}/m, #zero. The K are taken CHUNK at a time: memory O(N + |ks|), not O(N M).
    """
    xs = np.sort(x)
    ks = np.arange(1, xs.size + 1) if ks is None else np.asarray(ks, dtype=np.int64)
    out = np.empty((5, ks.size))
    for lo in range(0, ks.size, CHUNK):
        kk = ks[lo:lo + CHUNK]
        out[:, lo:lo + kk.size] = _even_split_chunk(xs, kk, m_blocks)
    return out


def _even_split_chunk(xs: np.ndarray, kk: np.ndarray, m_blocks: int) -> np.ndarray:
    """_even_split_round for the K in kk, given the sorted times xs (column by column the same
    arithmetic for any chunk that is a multiple of 64 wide, so the chunking does not change a bit)."""
    n = xs.size
    t = xs[kk - 1]
    # c[k] = number of positions with x <= M t / k, at least K (k = 1..M); c[0] = N
    c = np.empty((m_blocks + 1, kk.size), dtype=np.int64)
    c[0] = n
    for k in range(1, m_blocks + 1):
        q = m_blocks * t / k  # every count lies between those of min(q) and max(q): search only there
        a, b = np.searchsorted(xs, (q.min(), q.max()), side="right")  # (fewer cache misses, same counts)
        c[k] = np.maximum(np.searchsorted(xs[a:b], q, side="right") + a, kk)
    counts = np.empty((m_blocks + 1, kk.size), dtype=np.int64)
    counts[:m_blocks] = c[:m_blocks] - c[1:]
    counts[m_blocks] = c[m_blocks] - kk  # ties with t: all blocks done by t
    levels = np.arange(m_blocks + 1)
    m_of = np.minimum(levels, m_blocks - 1).astype(float)
    inv = np.where(m_of >= 1, 1.0 / np.maximum(m_of, 1), 0.0)
    out = np.empty((5, kk.size))
    out[0] = t
    out[1] = t
    out[2] = m_of @ counts
    out[3] = inv @ counts
    out[4] = (m_of == 0).astype(float) @ counts
    return out


def _batch_stats(batch, ks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(6, B) per-K (t_cut, R without comm, sum m, sum 1{m>=1}/m, #zero, X_(K:N)) of a
    RoundBatch on mini-batch times x (the last row: the cutoff had nobody carried over)."""
    strag = ~batch.fast
    m = np.where(strag, batch.blocks_done, 0)
    inv = np.where(strag & (m >= 1), 1.0 / np.maximum(m, 1), 0.0)
    free = np.sort(x)[ks - 1]
    return np.stack([batch.t_cut, batch.wall, m.sum(axis=1), inv.sum(axis=1), (strag & (m == 0)).sum(axis=1), free])


def _generic_round(finish: np.ndarray, ks: np.ndarray):
    """Abort rounds of any model, every K, by the schedule code itself (eq. 2.4)."""
    return _batch_stats(schedule_rounds(finish, ks, semantics="abort"), ks, finish[:, -1])[:5]


CHAIN_BUDGET = 1 << 16  # floats per (K-chunk x N x M) array of the chain: memory O(max(N M, this)), not O(N^2 M)
CHAIN_WORK = 200_000_000  # default rounds x |ks| x N x M of a chain
CHAIN_MAX_WORK = 1_000_000_000  # refuse beyond: about 30 s on the 2-core build machine (README, optimize-k row)
CHAIN_MIN_ROUNDS = 30


def _chain_rounds(model, n, m_blocks, ks, rounds, seed, period, wait_reports, comm):
    """Boundary semantics: the Markov chain over start offsets (eq. 2.3'), one chain per K.
    Round r uses block_finish_times(seed, r, N, M, period=h), the offsets start at 0: exactly the
    schedules `sim` computes for this seed, K and h. The K are taken a chunk at a time, each chunk
    through every round before the next (the chains are independent), so only one chunk's offsets
    and (chunk, N, M) temporaries are alive: O(N M + |ks|) memory. Yields, per chunk and round,
    (columns, r, rows of _batch_stats with R without comm)."""
    comm = np.broadcast_to(np.asarray(comm, dtype=float), ks.shape)
    chunk = max(1, CHAIN_BUDGET // (n * m_blocks))
    for lo in range(0, len(ks), chunk):
        sl = slice(lo, lo + chunk)
        start = np.zeros((len(ks[sl]), n))
        for r in range(rounds):
            finish = model.block_finish_times(seed, r, n, m_blocks, period=period)
            b = schedule_rounds(finish, ks[sl], start, semantics="boundary", comm=comm[sl],
                                wait_reports=wait_reports)
            start = b.next_start()
            one = _batch_stats(b, ks[sl], finish[:, -1])
            one[1] -= comm[sl]
            yield sl, r, one[None]


ROUND_BUDGET = 1 << 18  # elements of one chunk of rounds' (rounds, |ks|, M, N) comparison and (rounds, 6, |ks|) rows
BROADCAST_MAX = 1 << 16  # |ks| M N per round up to which the rounds are compared at once, not searched one by one


def _even_split_rounds(xs: np.ndarray, kk: np.ndarray, m_blocks: int) -> np.ndarray:
    """_even_split_chunk for many rounds at once: xs (R, N), each row sorted; returns (R, 5, |kk|).
    The same counts (x <= M t / k, eq. 2.4) by a comparison over every worker instead of a binary
    search: O(R |kk| M N) work in a few numpy calls, for small |kk| M N (BROADCAST_MAX)."""
    n = xs.shape[1]
    t = xs[:, kk - 1]  # (R, |kk|)
    q = m_blocks * t[:, :, None] / np.arange(1, m_blocks + 1)  # (R, |kk|, M): M t / k, as _even_split_chunk
    c = np.maximum(np.count_nonzero(xs[:, None, None, :] <= q[..., None], axis=-1), kk[:, None])
    counts = np.empty(c.shape[:2] + (m_blocks + 1,), dtype=np.int64)  # (R, |kk|, level)
    counts[..., 0] = n - c[..., 0]
    counts[..., 1:m_blocks] = c[..., :-1] - c[..., 1:]
    counts[..., m_blocks] = c[..., -1] - kk  # ties with t: all blocks done by t
    m_of = np.minimum(np.arange(m_blocks + 1), m_blocks - 1).astype(float)
    inv = np.where(m_of >= 1, 1.0 / np.maximum(m_of, 1), 0.0)
    return np.stack([t, t, counts @ m_of, counts @ inv, counts @ (m_of == 0).astype(float)], axis=1)


def _abort_rounds(model, n, m_blocks, ks, rounds, seed):
    """Abort semantics: independent rounds (eq. 2.4), a chunk of rounds at a time. Yields, per chunk,
    (every column, its first round r0, the (rounds, 6, |ks|) rows of _batch_stats; the last row, the
    carry-free cutoff, is t_cut itself). Round r draws block_finish_times(seed, r, ...), one call per
    round (the draws are seeded per round); small |ks| M N compare all the chunk's rounds at once."""
    # fixed or replayed times can tie exactly with block boundaries: there, use the finish
    # matrix itself (float-identical to the schedule code) unless N is large
    exact_path = model.per_block or (model.fixed_times() and n <= 2000)
    broadcast = not exact_path and len(ks) * m_blocks * n <= BROADCAST_MAX
    step = max(1, ROUND_BUDGET // (len(ks) * max(6, m_blocks * n))) if broadcast else 1  # else memory O(N + |ks|)
    for r0 in range(0, rounds, step):
        rs = range(r0, min(rounds, r0 + step))
        one = np.empty((len(rs), 6, len(ks)))
        if broadcast:
            xs = np.sort([model.block_finish_times(seed, r, n, 1)[:, 0] for r in rs], axis=1)
            one[:, :5] = _even_split_rounds(xs, ks, m_blocks)
        for i, r in enumerate(rs if not broadcast else ()):
            if exact_path:
                one[i, :5] = _generic_round(model.block_finish_times(seed, r, n, m_blocks), ks)
            else:
                one[i, :5] = _even_split_round(model.block_finish_times(seed, r, n, 1)[:, 0], m_blocks, ks)
        one[:, 5] = one[:, 0]
        yield slice(None), r0, one


def check_chain_size(n: int, m_blocks: int, n_ks: int, rounds: int) -> None:
    """Refuse a boundary chain whose rounds x |ks| x N x M block updates exceed CHAIN_MAX_WORK: every
    K carries its own N offsets (eq. 2.3'), so all K at N = 10^5 would be 10^10 updates a round."""
    work = float(rounds) * n_ks * n * m_blocks
    n_max = int(np.sqrt(CHAIN_MAX_WORK / (rounds * m_blocks)))
    require(work <= CHAIN_MAX_WORK,
            f"boundary semantics at N={n}, M={m_blocks}: E[R] is a Monte Carlo of one Markov chain of N workers "
            f"per K, {rounds} rounds x {n_ks} K x N M = {work:.3g} block updates, over the limit "
            f"{CHAIN_MAX_WORK:.0e} (every K: N <= {n_max} at these M and rounds); use --semantics abort, "
            f"fewer K (--ks) or fewer --mc-rounds (>= 2)")


MC_ROUNDS_MAX = 2000  # expected_round_times: up to this many rounds while N M rounds <= MC_ELEMENTS
MC_ELEMENTS = 2_000_000


def default_rounds(n: int, m_blocks: int) -> int:
    """Rounds for E[R] and the straggler statistics: 2000 for small N M (K* must not move with the Monte
    Carlo seed), fewer for large N M at a fixed cost of about MC_ELEMENTS draws, never under 30."""
    return int(min(MC_ROUNDS_MAX, max(30, MC_ELEMENTS // (n * m_blocks))))


def chain_rounds(n: int, m_blocks: int, n_ks: int) -> int:
    """Default rounds of a boundary chain: default_rounds, cut to CHAIN_WORK block updates, never under
    CHAIN_MIN_ROUNDS (the batch-means standard error states what fewer rounds cost)."""
    return int(max(CHAIN_MIN_ROUNDS, min(default_rounds(n, m_blocks), CHAIN_WORK // (n_ks * n * m_blocks))))


def round_stats(
    model: TimingModel, n: int, m_blocks: int, *, semantics: str = DEFAULT_SEMANTICS, ks=None,
    rounds: int = MC_ROUNDS, seed: int = 0, period: int = 1, wait_reports: bool = False, comm=0.0,
    progress: Callable[[int], None] | None = None,
) -> RoundStats:
    """Monte Carlo E[t_cut(K)], E[R(K)], E[m_j] and the zero-block fraction.

    Abort: independent rounds r = 0..R-1 with block_finish_times(seed, r, N, M, period=1), the
    same draws `sim` and `dist` see; standard error std / sqrt(R). Deterministic models need one
    round; trace replay uses each recorded round once.
    Boundary: the chain of eq. (2.3') over rounds 0..R-1 (straggling period `period`, comm
    `comm` per K, lgc-fresh's `wait_reports`), started from zero offsets as a run is; standard
    error from the means of 10 consecutive batches of rounds (consecutive rounds are correlated).
    Memory O(N M + len(ks)): the rounds enter running means and sums of squared deviations
    (merged a chunk of rounds at a time), not a (rounds, len(ks)) array (1.4 GB at N = 10^6); abort
    rounds of small |ks| M N are computed a chunk of rounds at once (ROUND_BUDGET elements), the chain
    runs a chunk of K at a time; a chain over CHAIN_MAX_WORK block updates is refused (check_chain_size).
    `progress(r)` is called as the work of r rounds is done (per chunk of rounds; a progress bar; theory
    prints nothing).
    """
    require(n >= 1, f"N={n} must be >= 1")
    require(m_blocks >= 1, f"M={m_blocks} must be >= 1")
    require_semantics(semantics)
    require(rounds >= 2, f"rounds={rounds} must be >= 2")
    require(period >= 1, f"straggling period h={period} must be >= 1")
    ks = np.arange(1, n + 1) if ks is None else np.asarray(ks, dtype=int)
    require(bool(np.all((ks >= 1) & (ks <= n))), f"K must satisfy 1 <= K <= N={n}")
    if semantics == "boundary":  # even fixed times give a chain of rounds (the offsets move)
        check_chain_size(n, m_blocks, len(ks), rounds)
        per_round = _chain_rounds(model, n, m_blocks, ks, rounds, seed, period, wait_reports, comm)
        steps = -(-len(ks) // max(1, CHAIN_BUDGET // (n * m_blocks))) * rounds  # chunks x rounds
    else:
        rounds = model.periods() or rounds
        per_round = _abort_rounds(model, n, m_blocks, ks, rounds, seed)
        steps = rounds
    # rows: t_cut, wall, sum m, sum 1{m>=1}/m, #zero, wait R - t_cut, excess R - X_(K:N)
    mean = np.zeros((7, len(ks)))
    m2 = np.zeros((7, len(ks)))
    n_batches = min(10, rounds)
    batch_of = np.repeat(np.arange(n_batches), [len(b) for b in np.array_split(np.arange(rounds), n_batches)])
    # batch means for the chain only (abort's standard error comes from m2): 560 bytes per K otherwise
    batch_sum = np.zeros((n_batches, 7, len(ks))) if semantics == "boundary" else None
    done = shown = 0
    for sl, r0, six in per_round:  # six: (rounds of the chunk, 6, K of the chunk), rounds r0, r0 + 1, ...
        nr = six.shape[0]
        for row in range(7):  # row by row: temporaries of (nr, len(ks)), not 7 times that
            v = six[:, row] if row < 5 else six[:, 1] - six[:, 0] if row == 5 else six[:, 1] - six[:, 5]
            # merge the chunk's mean and squared deviations into the running ones (Chan et al.'s
            # pairwise update; for one round it is Welford's)
            c_mean = v.mean(axis=0)
            delta = c_mean - mean[row, sl]
            mean[row, sl] += delta * (nr / (r0 + nr))
            m2[row, sl] += ((v - c_mean) ** 2).sum(axis=0) + delta ** 2 * (r0 * nr / (r0 + nr))
            if batch_sum is not None:
                np.add.at(batch_sum[:, row], (batch_of[r0:r0 + nr], sl), v)
        done += nr
        if progress is not None and done * rounds // steps > shown:  # rounds' worth of work done
            shown = done * rounds // steps
            progress(shown)
    strag = np.maximum(n - ks, 1)
    if rounds < 2:
        se = np.zeros_like(mean)
    elif semantics == "boundary":  # batch means: consecutive rounds of the chain are correlated
        sizes = np.bincount(batch_of, minlength=n_batches)[:, None, None]
        se = (batch_sum / sizes).std(axis=0, ddof=1) / np.sqrt(n_batches)
    else:  # in place: no (7, |ks|) temporaries
        m2 /= rounds - 1
        m2 /= rounds
        se = np.sqrt(m2, out=m2)
    return RoundStats(
        ks=ks, t_cut=mean[0], t_cut_se=se[0], wall=mean[1], wall_se=se[1],
        m_mean=mean[2] / strag, m_inv=mean[3] / strag, zero_frac=mean[4] / strag, rounds=rounds,
        wait=mean[5], wait_se=se[5], excess=mean[6], excess_se=se[6], m_inv_se=se[3] / strag,
        zero_frac_se=se[4] / strag,
    )


def straggler_statistics(fast, blocks_done) -> dict:
    """m_inv, zero_frac and zero_sq (the bound's inputs) from recorded schedules: boolean fast masks
    and block counts, arrays (R, N) or (N,). Averaged over every straggler of every round;
    zero_sq = E[(z_t / (N - K))^2] over rounds with stragglers."""
    fast = np.atleast_2d(np.asarray(fast, dtype=bool))
    blocks_done = np.atleast_2d(np.asarray(blocks_done))
    strag = ~fast
    n = max(int(strag.sum()), 1)
    m = blocks_done[strag]
    per_round = strag.sum(1)
    has = per_round > 0
    zfrac = ((blocks_done == 0) & strag).sum(1)[has] / per_round[has]
    return {
        "m_inv": float(np.where(m >= 1, 1.0 / np.maximum(m, 1), 0.0).sum() / n),
        "zero_frac": float((m == 0).sum() / n),
        "zero_sq": float(np.mean(zfrac**2)) if has.any() else 0.0,
        "m_mean": float(m.sum() / n),
    }
