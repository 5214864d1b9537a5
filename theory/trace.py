"""Trace files of measured block times, their replay as a timing model, and an MLE fit.

Trace CSV (format v1, written by the `dist` backend, one row per finished block):

    round,worker,block,start_s,end_s

`block` counts from 0; times are seconds >= 0 on any clock (only differences matter); each
(round, worker, block) appears once. A worker that stopped early (a straggler) has fewer rows
in that round than the others.

From a trace, worker i's mini-batch time in round t is X_{t,i} = M_t * (mean duration of its
recorded blocks), where M_t is the most blocks any worker of round t recorded: the full sum
for workers that finished, the even-split extrapolation (eq. 2.2) for stragglers. Replay cycles
through the recorded rounds; the fit is the maximum-likelihood shifted exponential of the
X_{t,i} (eq. 2.9).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from theory.errors import require
from theory.timing import ShiftedExponential
from theory.timing_model import TimingModel, even_split_finish_times

TRACE_FIELDS = ("round", "worker", "block", "start_s", "end_s")
TRACE_FORMAT_VERSION = 1


def read_trace(text: str, *, source: str = "trace") -> np.ndarray:
    """Parse a trace CSV into a structured array with the TRACE_FIELDS; errors name the line."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    require(bool(lines), f"{source}: empty trace file")
    rows = list(csv.reader(lines))
    header = tuple(c.strip() for c in rows[0])
    require(header == TRACE_FIELDS, f"{source}: header must be {','.join(TRACE_FIELDS)}, got {','.join(header)}")
    out, seen = [], {}
    for lineno, row in enumerate(rows[1:], start=2):
        require(len(row) == 5, f"{source}: row {lineno} has {len(row)} fields, expected 5")
        try:
            r, w, b, s, e = int(row[0]), int(row[1]), int(row[2]), float(row[3]), float(row[4])
        except ValueError as err:
            require(False, f"{source}: malformed row {lineno}: {err}")
        require(r >= 0 and w >= 0 and b >= 0, f"{source}: row {lineno}: round, worker, block must be >= 0")
        require(np.isfinite(s) and np.isfinite(e) and 0 <= s <= e,
                f"{source}: row {lineno}: need 0 <= start_s <= end_s, finite (start_s={s}, end_s={e})")
        require((r, w, b) not in seen, f"{source}: row {lineno} repeats round {r}, worker {w}, block {b} "
                                       f"(row {seen.get((r, w, b))})")
        seen[(r, w, b)] = lineno
        out.append((r, w, b, s, e))
    require(bool(out), f"{source}: trace has a header but no rows")
    return np.array(out, dtype=[("round", "i8"), ("worker", "i8"), ("block", "i8"), ("start_s", "f8"), ("end_s", "f8")])


def load_trace(path: str | Path) -> np.ndarray:
    from theory.schedule import read_text_file

    return read_trace(read_text_file(path, "trace file"), source=str(path))


def trace_to_csv(rows) -> str:
    buf = io.StringIO()
    buf.write(f"# lgc trace v{TRACE_FORMAT_VERSION}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TRACE_FIELDS)
    for r in rows:
        w.writerow([int(r[0]), int(r[1]), int(r[2]), repr(float(r[3])), repr(float(r[4]))])
    return buf.getvalue()


def batch_times_from_trace(trace: np.ndarray) -> np.ndarray:
    """(R, N) mini-batch times X_{t,i}, even-split extrapolation for stragglers (module doc)."""
    rounds = np.unique(trace["round"])
    n = int(trace["worker"].max()) + 1
    x = np.full((len(rounds), n), np.nan)
    for ti, r in enumerate(rounds):
        rows = trace[trace["round"] == r]
        m_round = int(rows["block"].max()) + 1
        for i in range(n):
            wi = rows[rows["worker"] == i]
            if len(wi):
                x[ti, i] = m_round * float(np.mean(wi["end_s"] - wi["start_s"]))
    require(not np.isnan(x).any(), "trace: some worker has no block in some round; cannot replay it")
    return x


@dataclass
class TraceReplay(TimingModel):
    """Replays the mini-batch times of a trace: round t uses recorded round (t // h) mod R."""

    times: np.ndarray = field(default_factory=lambda: np.ones((1, 1)))
    per_block: bool = False
    name: str = "trace"
    iid: bool = False

    def __post_init__(self):
        self.times = np.asarray(self.times, dtype=float)
        require(self.times.ndim == 2 and self.times.size > 0, "trace replay needs an (R, N) array of times")
        require(bool(np.all(self.times > 0)), "trace replay: every mini-batch time must be > 0")

    @classmethod
    def from_csv(cls, path: str) -> "TraceReplay":
        return cls(times=batch_times_from_trace(load_trace(path)))

    def sample(self, rng, size):
        size = (size,) if np.isscalar(size) else tuple(size)
        require(size[-1] == self.times.shape[1], f"trace has N={self.times.shape[1]} workers, asked for {size[-1]}")
        n_rows = int(np.prod(size[:-1])) if len(size) > 1 else 1
        idx = rng.integers(0, self.times.shape[0], size=n_rows)
        return self.times[idx].reshape(size)

    def mean(self) -> float:
        return float(self.times.mean())

    def periods(self) -> int:
        return self.times.shape[0]  # each recorded round once

    def fixed_times(self) -> bool:
        return True

    def block_finish_times(self, seed, round_index, n_workers, blocks, *, period=1):
        require(blocks >= 1, f"M={blocks} must be >= 1")
        require(period >= 1, f"straggling period h={period} must be >= 1")
        require(n_workers == self.times.shape[1], f"trace has N={self.times.shape[1]} workers, run has N={n_workers}")
        return even_split_finish_times(self.times[(round_index // period) % self.times.shape[0]], blocks)


def fit_shifted_exponential(x) -> ShiftedExponential:
    """Maximum-likelihood shifted exponential: shift = min x, rate = 1 / (mean x - min x) (eq. 2.9)."""
    x = np.asarray(x, dtype=float).ravel()
    require(x.size >= 2, f"need at least 2 times to fit, got {x.size}")
    spread = float(x.mean() - x.min())
    require(spread > 0, "all times are equal; a shifted exponential cannot be fitted (use deterministic)")
    return ShiftedExponential(shift=float(x.min()), rate=1.0 / spread)


def fit_shifted_exponential_csv(path: str) -> ShiftedExponential:
    return fit_shifted_exponential(batch_times_from_trace(load_trace(path)))
