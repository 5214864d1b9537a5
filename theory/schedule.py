"""From block finish times to a round's schedule: A_t, t_cut, m_j, R_t and the carry-over (DERIVATION.md section 2).

Both trainers (`sim` computes it, `dist` measures it) and the theory's Monte Carlo use
this one definition, so `sim` predicts what `dist` measures. Equations: DERIVATION.md (2.1)-(2.4).

A round is one step of a Markov chain over per-worker start offsets: worker i begins round t
`start[i]` time units after the round starts (0 unless it was still finishing round t-1's
block in flight), so its blocks finish at start[i] + finish[i, m]. Under abort semantics
nobody carries over (every start is 0); under boundary semantics a straggler finishes the
block in flight at t_cut and starts round t+1 late by how far that block ran past R_t
(eq. 2.3). `next_start` gives round t+1's offsets from round t's schedule.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from theory.errors import require

Semantics = Literal["abort", "boundary"]
SEMANTICS = ("abort", "boundary")
DEFAULT_SEMANTICS: Semantics = "abort"  # the paper's and its lab code's
SCHEDULE_FORMAT_VERSION = 3  # v3: the column `blocks` is `blocks_done`; v2 added start, busy


def require_semantics(semantics) -> None:
    """The one check of a semantics value (TheoryInputError naming the valid ones)."""
    require(semantics in SEMANTICS, f"semantics={semantics!r} must be {' or '.join(map(repr, SEMANTICS))}")


@dataclass(frozen=True)
class RoundSchedule:
    """One round. `blocks_done[i]` is M for i in A_t and m_j (0..M-1) for a straggler j (one name
    per quantity: `blocks` is M, `blocks_done` the per-worker counts, rounds.csv's `partial_blocks`
    the round's sum of m_j).

    fast: the K workers of A_t in arrival order (ties by worker index).
    t_cut: the K-th smallest finish time start_i + X_i (time units from the round's start).
    wall: the round's wall time R_t, communication included.
    start: per worker, the late start carried over from round t-1 (empty: all 0).
    busy: per worker, when its work of this round ends (time units from the round's start):
      its X for the fast workers, the end of the block in flight at t_cut for a straggler
      under boundary semantics, t_cut under abort (empty: t_cut for every straggler).
    """

    round: int
    fast: tuple[int, ...]
    blocks_done: tuple[int, ...]
    t_cut: float
    wall: float
    comm: float = 0.0
    start: tuple[float, ...] = ()
    busy: tuple[float, ...] = ()

    @property
    def n_workers(self) -> int:
        return len(self.blocks_done)

    def fast_mask(self) -> np.ndarray:
        m = np.zeros(self.n_workers, dtype=bool)
        m[list(self.fast)] = True
        return m

    def starts(self) -> np.ndarray:
        """start as an array (zeros when the round records none)."""
        return np.asarray(self.start, dtype=float) if self.start else np.zeros(self.n_workers)

    def next_start(self) -> np.ndarray:
        """Round t+1's start offsets: max(0, busy_i - R_t) (eq. 2.3'); zeros without `busy`."""
        if not self.busy:
            return np.zeros(self.n_workers)
        return np.maximum(np.asarray(self.busy, dtype=float) - self.wall, 0.0)


def arrival_order(batch_times: np.ndarray) -> np.ndarray:
    """Workers sorted by mini-batch time X_i, ties broken by worker index (eq. 2.1).

    Where no two times are equal the order is unique, so numpy's default sort gives the stable sort's permutation
    (measured at N = 10^4: 0.12 ms against 0.72 ms); where two are equal the stable sort breaks the tie."""
    x = np.asarray(batch_times)
    order = np.argsort(x)
    xs = x[order]
    if bool(np.any(xs[1:] == xs[:-1])) or bool(np.isnan(xs[-1:]).any()):
        order = np.argsort(x, kind="stable")
    return order


@dataclass(frozen=True)
class RoundBatch:
    """Rounds of the same finish times under several (K, start) pairs, arrays with a leading
    batch axis B: t_cut, wall (B,); fast (bool), blocks_done (int), busy (B, N)."""

    t_cut: np.ndarray
    wall: np.ndarray
    fast: np.ndarray
    blocks_done: np.ndarray
    busy: np.ndarray
    order: np.ndarray

    def next_start(self) -> np.ndarray:
        """(B, N) round t+1's start offsets, max(0, busy - R_t) (eq. 2.3')."""
        return np.maximum(self.busy - self.wall[:, None], 0.0)


def schedule_rounds(
    finish: np.ndarray, ks, start: np.ndarray | None = None, *, semantics: Semantics = DEFAULT_SEMANTICS,
    comm=0.0, wait_reports: bool = False,
) -> RoundBatch:
    """Vectorised core of schedule_round: B rounds on the same (N, M) finish times, or each on its own
    ((B, N, M) finish times: many rounds' draws at once).

    ks: (B,) thresholds; start: (B, N) start offsets (zeros when None); comm: scalar or (B,).
    wait_reports (lgc-fresh): the server waits until every reported block is done.
    """
    finish = np.asarray(finish, dtype=float)
    require(finish.ndim in (2, 3) and finish.shape[-1] >= 1,
            f"finish times must be (N, M) or (B, N, M), got shape {finish.shape}")
    require_semantics(semantics)
    n, m_blocks = finish.shape[-2:]
    ks = np.atleast_1d(np.asarray(ks, dtype=int))
    require(bool(np.all((ks >= 1) & (ks <= n))), f"K={ks.tolist()} must satisfy 1 <= K <= N={n}")
    b = ks.size
    require(finish.ndim == 2 or len(finish) == b, f"(B, N, M) finish times need B={b} rows, got {len(finish)}")
    start = np.zeros((b, n)) if start is None else np.broadcast_to(np.asarray(start, dtype=float), (b, n))
    ends = start[:, :, None] + (finish if finish.ndim == 3 else finish[None])  # (B, N, M): eq. 2.2 shifted by the carry-over
    x = ends[:, :, -1]
    order = np.argsort(x, axis=1, kind="stable")  # eq. 2.1 on start_i + X_i
    rows = np.arange(b)
    t_cut = x[rows, order[rows, ks - 1]]
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n)[None, :].repeat(b, 0), axis=1)
    fast = rank < ks[:, None]
    done = (ends <= t_cut[:, None, None]).sum(axis=2)  # blocks finished by t_cut
    if semantics == "abort":  # eq. 2.4: the block in flight is dropped, the straggler stops at t_cut
        m = np.minimum(done, m_blocks - 1)
        busy_strag = np.maximum(start, t_cut[:, None])
    else:  # eq. 2.3: the block in flight is finished; a worker still busy with round t-1 at t_cut starts nothing
        began = start < t_cut[:, None]
        in_flight = np.minimum(done, m_blocks - 1)
        m = np.where(began, np.minimum(done + 1, m_blocks - 1), 0)
        busy_strag = np.where(began, np.take_along_axis(ends, in_flight[:, :, None], axis=2)[:, :, 0], start)
    blocks = np.where(fast, m_blocks, m)
    busy = np.where(fast, x, busy_strag)
    stop = t_cut
    if wait_reports:  # lgc-fresh: the round closes when the last reported block is done
        last = np.take_along_axis(ends, np.maximum(blocks - 1, 0)[:, :, None], axis=2)[:, :, 0]
        stop = np.maximum(t_cut, np.where(~fast & (blocks >= 1), last, -np.inf).max(axis=1))
    wall = stop + np.broadcast_to(np.asarray(comm, dtype=float), (b,))
    return RoundBatch(t_cut=t_cut, wall=wall, fast=fast, blocks_done=blocks.astype(int), busy=busy, order=order)


def schedule_round(
    finish: np.ndarray,
    k: int,
    *,
    semantics: Semantics = DEFAULT_SEMANTICS,
    comm: float = 0.0,
    round_index: int = 0,
    start=None,
    wait_reports: bool = False,
) -> RoundSchedule:
    """The schedule of one round from block finish times.

    Args:
      finish: (N, M) array; finish[i, m] = time (from worker i's own start) at which worker i
        finishes its (m+1)-th block; non-decreasing along m. X_i = finish[i, M-1].
      k: straggler threshold K, 1 <= K <= N. K = N is full-sync's schedule.
      semantics: "abort" (default): only blocks finished by t_cut count, and the round closes
        at t_cut (eq. 2.4); "boundary": a straggler finishes the block in flight at t_cut (it
        counts) and starts round t+1 late by its overrun; the round still closes at t_cut
        (eq. 2.3).
      comm: communication time added to the round (alpha + beta * bytes, eq. 2.5).
      start: (N,) start offsets carried over from round t-1 (previous.next_start()); zeros if None.
      wait_reports: lgc-fresh: the round waits until every reported block is done (eq. 2.3).
    """
    finish = np.asarray(finish, dtype=float)
    require(finish.ndim == 2 and finish.shape[1] >= 1, f"finish times must be (N, M), got shape {finish.shape}")
    n = finish.shape[0]
    require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")
    s0 = np.zeros(n) if start is None else np.asarray(start, dtype=float)
    r = schedule_rounds(finish, [k], s0[None, :], semantics=semantics, comm=comm, wait_reports=wait_reports)
    return RoundSchedule(
        round=round_index, fast=tuple(int(i) for i in r.order[0, :k]), blocks_done=tuple(int(v) for v in r.blocks_done[0]),
        t_cut=float(r.t_cut[0]), wall=float(r.wall[0]), comm=comm,
        start=tuple(float(v) for v in s0), busy=tuple(float(v) for v in r.busy[0]),
    )


def comm_time(alpha: float, beta: float, model_bytes: float, messages):
    """comm = alpha + beta * model_bytes * messages (eq. 2.5); zero by default.
    messages: a count, or a numpy array of counts (one comm time each)."""
    if alpha == 0.0 and beta == 0.0:
        return 0.0 * messages
    return alpha + beta * model_bytes * messages


# ----------------------------------------------------------------------------- schedule file
SCHEDULE_FIELDS_V1 = ("round", "fast", "blocks", "t_cut", "wall", "comm")
SCHEDULE_FIELDS_V2 = (*SCHEDULE_FIELDS_V1, "start", "busy")
SCHEDULE_FIELDS = ("round", "fast", "blocks_done", "t_cut", "wall", "comm", "start", "busy")


def _floats(values) -> str:
    return " ".join(repr(float(v)) for v in values)


def schedule_to_csv(rounds: Iterable[RoundSchedule]) -> str:
    """Schedule file v3: one row per round; `fast` and `blocks_done` are space-separated ints,
    `start` and `busy` space-separated floats (empty: no carry-over recorded). v1 files (no
    start, busy) and v2 files (the column `blocks_done` named `blocks`) are still read."""
    buf = io.StringIO()
    buf.write(f"# lgc schedule v{SCHEDULE_FORMAT_VERSION}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCHEDULE_FIELDS)
    for r in rounds:
        w.writerow([r.round, " ".join(map(str, r.fast)), " ".join(map(str, r.blocks_done)),
                    repr(r.t_cut), repr(r.wall), repr(r.comm), _floats(r.start), _floats(r.busy)])
    return buf.getvalue()


def schedule_from_csv(text: str, *, source: str = "schedule") -> list[RoundSchedule]:
    """Parse a schedule file; a malformed one raises TheoryInputError naming the line."""
    check_schedule_version(text, source)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    require(bool(lines), f"{source}: empty schedule file")
    rows = list(csv.reader(lines))
    require(tuple(rows[0]) in (SCHEDULE_FIELDS, SCHEDULE_FIELDS_V2, SCHEDULE_FIELDS_V1),
            f"{source}: header must be {','.join(SCHEDULE_FIELDS)}, got {','.join(rows[0])}")
    width = len(rows[0])
    out: list[RoundSchedule] = []
    for lineno, row in enumerate(rows[1:], start=2):
        require(len(row) == width, f"{source}: malformed row {lineno}: {len(row)} fields, expected {width}")
        try:
            rnd, fast, blocks, t_cut, wall, comm = row[:6]
            start, busy = row[6:] if width == len(SCHEDULE_FIELDS) else ("", "")
            out.append(RoundSchedule(
                round=int(rnd), fast=tuple(int(v) for v in fast.split()),
                blocks_done=tuple(int(v) for v in blocks.split()),
                t_cut=float(t_cut), wall=float(wall), comm=float(comm),
                start=tuple(float(v) for v in start.split()), busy=tuple(float(v) for v in busy.split())))
        except ValueError as e:
            require(False, f"{source}: malformed row {lineno}: {e}")
        r = out[-1]
        require(r.round >= 0 and all(b >= 0 for b in r.blocks_done), f"{source}: row {lineno}: round and blocks must be >= 0")
        for name in ("t_cut", "wall", "comm"):
            v = getattr(r, name)
            require(np.isfinite(v) and v >= 0, f"{source}: row {lineno}: {name}={v} must be a finite number >= 0")
        require(all(np.isfinite(v) and v >= 0 for v in r.start + r.busy),
                f"{source}: row {lineno}: start and busy must be finite numbers >= 0")
    n = len(out[0].blocks_done) if out else 0
    for r in out:
        require(len(r.blocks_done) == n and all(0 <= i < n for i in r.fast) and len(set(r.fast)) == len(r.fast)
                and len(r.start) in (0, n) and len(r.busy) in (0, n),
                f"{source}: round {r.round} is inconsistent (N={n}, fast={r.fast})")
    return out


def check_schedule_version(text: str, source: str) -> None:
    """A `# lgc schedule vN` line must name a version this code reads (1..SCHEDULE_FORMAT_VERSION):
    a file from a newer version may mean something else by the same columns."""
    for ln in text.splitlines():
        m = re.fullmatch(r"#\s*lgc schedule v(\S*)\s*", ln.strip())
        if m:
            v = m.group(1)
            require(v.isdigit() and 1 <= int(v) <= SCHEDULE_FORMAT_VERSION,
                    f"{source}: schedule format v{v} is not readable here (versions 1..{SCHEDULE_FORMAT_VERSION})")


def read_text_file(path, what: str) -> str:
    """The text of an input file (a schedule, a trace); a missing or binary file is one
    TheoryInputError naming it."""
    p = Path(path)
    require(p.is_file(), f"{what} {str(p)!r} does not exist")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        text = "\x00"
    require("\x00" not in text, f"{what} {str(p)!r} is not a text (CSV) file")
    return text


def load_schedule(path) -> list[RoundSchedule]:
    """schedule_from_csv of a file (`--schedule-file`)."""
    return schedule_from_csv(read_text_file(path, "schedule file"), source=str(path))


def check_schedule(s: RoundSchedule, n: int, m_blocks: int) -> None:
    """Validate a (replayed) schedule against the run's N and M."""
    require(len(s.blocks_done) == n, f"schedule round {s.round} has {len(s.blocks_done)} workers, run has N={n}")
    fm = s.fast_mask()
    for i, b in enumerate(s.blocks_done):
        if fm[i]:
            require(b == m_blocks, f"schedule round {s.round}: fast worker {i} has {b} blocks, expected M={m_blocks}")
        else:
            require(0 <= b <= m_blocks - 1, f"schedule round {s.round}: straggler {i} has m={b}, expected 0..{m_blocks - 1}")


def schedule_deadline(
    finish: np.ndarray, deadline: float, *, comm: float = 0.0, round_index: int = 0
) -> RoundSchedule:
    """Anytime-minibatch (Ferdinand et al., ICLR 2019): every block finished by a fixed
    deadline counts (0..M per worker); the round lasts deadline + comm (eq. 2.6).
    `fast` lists the workers that finished all M blocks, in arrival order."""
    finish = np.asarray(finish, dtype=float)
    require(deadline > 0, f"deadline={deadline} must be > 0")
    n, m_blocks = finish.shape
    blocks = np.array([int(np.searchsorted(finish[i], deadline, side="right")) for i in range(n)])
    order = arrival_order(finish[:, -1])
    fast = tuple(int(i) for i in order if blocks[i] == m_blocks)
    return RoundSchedule(round=round_index, fast=fast, blocks_done=tuple(int(b) for b in blocks),
                         t_cut=float(deadline), wall=float(deadline) + comm, comm=comm)
