"""From block finish times to a round's schedule: A_t, t_cut, m_j and R_t (DERIVATION.md section 2).

Both trainers (`sim` computes it, `dist` measures it) and the theory's Monte Carlo use
this one definition, so `sim` predicts what `dist` measures. Equations: DERIVATION.md (2.1)-(2.4).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

from theory.errors import require

Semantics = Literal["boundary", "abort"]
SCHEDULE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class RoundSchedule:
    """One round. `blocks[i]` is M for i in A_t and m_j (0..M-1) for a straggler j.

    fast: the K workers of A_t in arrival order (ties by worker index).
    t_cut: the K-th smallest mini-batch time (time units from the round's start).
    wall: the round's wall time R_t, communication included.
    """

    round: int
    fast: tuple[int, ...]
    blocks: tuple[int, ...]
    t_cut: float
    wall: float
    comm: float = 0.0

    @property
    def n_workers(self) -> int:
        return len(self.blocks)

    def fast_mask(self) -> np.ndarray:
        m = np.zeros(self.n_workers, dtype=bool)
        m[list(self.fast)] = True
        return m


def arrival_order(batch_times: np.ndarray) -> np.ndarray:
    """Workers sorted by mini-batch time X_i, ties broken by worker index (eq. 2.1)."""
    return np.argsort(np.asarray(batch_times), kind="stable")


def schedule_round(
    finish: np.ndarray,
    k: int,
    *,
    semantics: Semantics = "boundary",
    comm: float = 0.0,
    round_index: int = 0,
) -> RoundSchedule:
    """The schedule of one round from block finish times.

    Args:
      finish: (N, M) array; finish[i, m] = time (from the round's start) at which worker i
        finishes its (m+1)-th block; non-decreasing along m. X_i = finish[i, M-1].
      k: straggler threshold K, 1 <= K <= N. K = N is full-sync's schedule.
      semantics: "boundary" (default): a straggler finishes the block in flight at t_cut and
        stops at that block boundary (eq. 2.3); "abort": only blocks finished by t_cut count,
        and the round closes at t_cut (eq. 2.4).
      comm: communication time added to the round (alpha + beta * bytes, eq. 2.5).
    """
    finish = np.asarray(finish, dtype=float)
    require(finish.ndim == 2 and finish.shape[1] >= 1, f"finish times must be (N, M), got shape {finish.shape}")
    n, m_blocks = finish.shape
    require(1 <= k <= n, f"K={k} must satisfy 1 <= K <= N={n}")
    x = finish[:, -1]
    order = arrival_order(x)
    fast = order[:k]
    t_cut = float(x[order[k - 1]])
    blocks = np.full(n, m_blocks, dtype=int)
    stop = t_cut
    for j in order[k:]:
        done = int(np.searchsorted(finish[j], t_cut, side="right"))  # blocks finished by t_cut
        if semantics == "boundary":
            # the block in flight at t_cut is finished (eq. 2.3); at most M-1 blocks report
            in_flight = min(done, m_blocks - 1)
            stop = max(stop, float(finish[j, in_flight]))
            blocks[j] = min(done + 1, m_blocks - 1)
        elif semantics == "abort":
            blocks[j] = min(done, m_blocks - 1)
        else:
            require(False, f"semantics={semantics!r} must be 'boundary' or 'abort'")
    if semantics == "abort" or k == n:
        stop = t_cut
    return RoundSchedule(
        round=round_index, fast=tuple(int(i) for i in fast), blocks=tuple(int(b) for b in blocks),
        t_cut=t_cut, wall=stop + comm, comm=comm,
    )


def comm_time(alpha: float, beta: float, model_bytes: float, messages):
    """comm = alpha + beta * model_bytes * messages (eq. 2.5); zero by default.
    messages: a count, or a numpy array of counts (one comm time each)."""
    if alpha == 0.0 and beta == 0.0:
        return 0.0 * messages
    return alpha + beta * model_bytes * messages


# ----------------------------------------------------------------------------- schedule file
SCHEDULE_FIELDS = ("round", "fast", "blocks", "t_cut", "wall", "comm")


def schedule_to_csv(rounds: Iterable[RoundSchedule]) -> str:
    """Schedule file v1: one row per round; `fast` and `blocks` are space-separated ints."""
    buf = io.StringIO()
    buf.write(f"# lgc schedule v{SCHEDULE_FORMAT_VERSION}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCHEDULE_FIELDS)
    for r in rounds:
        w.writerow([r.round, " ".join(map(str, r.fast)), " ".join(map(str, r.blocks)),
                    repr(r.t_cut), repr(r.wall), repr(r.comm)])
    return buf.getvalue()


def schedule_from_csv(text: str, *, source: str = "schedule") -> list[RoundSchedule]:
    """Parse a schedule file; a malformed one raises TheoryInputError naming the line."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    require(bool(lines), f"{source}: empty schedule file")
    rows = list(csv.reader(lines))
    require(tuple(rows[0]) == SCHEDULE_FIELDS,
            f"{source}: header must be {','.join(SCHEDULE_FIELDS)}, got {','.join(rows[0])}")
    out: list[RoundSchedule] = []
    for lineno, row in enumerate(rows[1:], start=2):
        try:
            rnd, fast, blocks, t_cut, wall, comm = row
            out.append(RoundSchedule(
                round=int(rnd), fast=tuple(int(v) for v in fast.split()),
                blocks=tuple(int(v) for v in blocks.split()),
                t_cut=float(t_cut), wall=float(wall), comm=float(comm)))
        except ValueError as e:
            require(False, f"{source}: malformed row {lineno}: {e}")
        r = out[-1]
        require(r.round >= 0 and all(b >= 0 for b in r.blocks), f"{source}: row {lineno}: round and blocks must be >= 0")
        for name in ("t_cut", "wall", "comm"):
            v = getattr(r, name)
            require(np.isfinite(v) and v >= 0, f"{source}: row {lineno}: {name}={v} must be a finite number >= 0")
    n = len(out[0].blocks) if out else 0
    for r in out:
        require(len(r.blocks) == n and all(0 <= i < n for i in r.fast) and len(set(r.fast)) == len(r.fast),
                f"{source}: round {r.round} is inconsistent (N={n}, fast={r.fast})")
    return out


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
    require(len(s.blocks) == n, f"schedule round {s.round} has {len(s.blocks)} workers, run has N={n}")
    fm = s.fast_mask()
    for i, b in enumerate(s.blocks):
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
    return RoundSchedule(round=round_index, fast=fast, blocks=tuple(int(b) for b in blocks),
                         t_cut=float(deadline), wall=float(deadline) + comm, comm=comm)
