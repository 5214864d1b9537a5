"""Timing models with per-worker laws: a fitted one and one whose speeds change mid-run.

WorkerShiftedExponential: worker i's mini-batch time is shift_i + Exp(rate_i), independently
(the model `--k auto` fits from measured rounds, theory/adaptive.py, DERIVATION.md eq. 7.3).

SpeedChange: any timing model whose listed workers become `slowdown` times slower from round
`change_round` on (the motivating case of `--k auto`: one worker 5x slower at round 100). It
wraps the base model's block finish times, so `sim` and dist's injected delays see the change
at the same round. Built by theory/timing_factory.py from the `change_*` timing parameters of
any model (README "Timing models").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from theory.errors import require
from theory.timing import ShiftedExponential
from theory.timing_model import TimingModel


@dataclass
class WorkerShiftedExponential(TimingModel):
    """Independent, non-identical shifted exponentials: X_i = shift_i + Exp(rate_i).

    Not i.i.d., so E[R(K)] and the straggler statistics come from Monte Carlo over the rounds
    `sim` would draw (round r from seed r, eq. 2.2); the order statistic itself also has the
    convolution route of eq. (2.8') over groups of workers with equal laws."""

    shifts: tuple = (1.0,)
    rates: tuple = (1.0,)
    per_block: bool = False
    name: str = "worker-shifted-exp"
    iid: bool = False

    def __post_init__(self):
        self.shifts = tuple(float(s) for s in self.shifts)
        self.rates = tuple(float(r) for r in self.rates)
        require(len(self.shifts) == len(self.rates) >= 1,
                f"shifts ({len(self.shifts)}) and rates ({len(self.rates)}) need one value per worker")
        require(all(np.isfinite(s) and s >= 0 for s in self.shifts), f"shifts={self.shifts} must be finite and >= 0")
        require(all(np.isfinite(r) and r > 0 for r in self.rates), f"rates={self.rates} must be finite and > 0")

    def _check_n(self, n: int) -> None:
        require(n == len(self.shifts), f"per-worker model has N={len(self.shifts)} workers, asked for {n}")

    def sample(self, rng, size):
        size = (size,) if np.isscalar(size) else tuple(size)
        self._check_n(size[-1])
        return np.asarray(self.shifts) + rng.exponential(1.0, size=size) / np.asarray(self.rates)

    def mean(self) -> float:
        """Mean over a uniformly chosen worker."""
        return float(np.mean(np.asarray(self.shifts) + 1.0 / np.asarray(self.rates)))

    def expected_order_statistic(self, k: int, n: int) -> float:
        """E[X_(k:n)] by eq. (2.8'), workers grouped by equal (shift, rate)."""
        self._check_n(n)
        from theory.timing_model import expected_order_statistic_groups

        laws: dict = {}
        for s, r in zip(self.shifts, self.rates):
            laws[(s, r)] = laws.get((s, r), 0) + 1
        return expected_order_statistic_groups([(ShiftedExponential(s, r).cdf, c) for (s, r), c in laws.items()], k)


def _worker_list(workers) -> tuple:
    if isinstance(workers, (int, np.integer)) and not isinstance(workers, bool):
        workers = [workers]
    require(isinstance(workers, (list, tuple)) and len(workers) >= 1,
            f"change_workers={workers!r} must be a worker index or a list of them")
    for w in workers:
        require(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 0,
                f"change_workers: {w!r} must be an integer >= 0")
    require(len(set(workers)) == len(workers), f"change_workers={list(workers)} lists a worker twice")
    return tuple(int(w) for w in workers)


@dataclass
class SpeedChange(TimingModel):
    """`base`, except that from round `change_round` on the workers in `workers` take `slowdown`
    times as long (slowdown < 1: faster) for every block: their finish times are multiplied by
    `slowdown` (eq. 7.6). Rounds before the change are the base model's draws, bit for bit.

    The law changes with the round, so what the theory asks of a model (mean, order statistics)
    is answered for the rounds before the change (the base model's answers); optimize-k on the
    changed cluster takes the base model with the new speeds (e.g. `heterogeneous`)."""

    base: TimingModel = field(default_factory=ShiftedExponential)
    change_round: int = 0
    workers: tuple = (0,)
    slowdown: float = 5.0
    name: str = "speed-change"

    def __post_init__(self):
        require(isinstance(self.change_round, (int, np.integer)) and not isinstance(self.change_round, bool)
                and self.change_round >= 0, f"change_round={self.change_round!r} must be an integer >= 0")
        self.workers = _worker_list(self.workers)
        require(np.isfinite(self.slowdown) and self.slowdown > 0, f"change_slowdown={self.slowdown} must be > 0")
        self.iid = False
        self.per_block = self.base.per_block
        self.name = f"{self.base.name}+change"

    def _check_n(self, n: int) -> None:
        require(max(self.workers) < n, f"change_workers={list(self.workers)} must be < N={n}")

    # what the theory asks: the base model's answers (the rounds before the change)
    def sample(self, rng, size):
        return self.base.sample(rng, size)

    def mean(self) -> float:
        return self.base.mean()

    def periods(self) -> Optional[int]:
        return self.base.periods()

    def fixed_times(self) -> bool:
        return self.base.fixed_times()

    def set_change_period(self, h: float) -> float:
        return self.base.set_change_period(h)

    def block_finish_times(self, seed, round_index, n_workers, blocks, *, period=1):
        self._check_n(n_workers)
        finish = np.array(self.base.block_finish_times(seed, round_index, n_workers, blocks, period=period), dtype=float)
        if round_index >= self.change_round:
            finish[list(self.workers)] *= self.slowdown  # eq. 7.6
        return finish


CHANGE_PARAMS = ("change_round", "change_workers", "change_slowdown")


def split_change_params(params: dict) -> tuple[dict, Optional[dict]]:
    """(the base model's parameters, SpeedChange's or None). change_round=R turns the change on;
    change_workers (default [0]) and change_slowdown (default 5) without it are an error."""
    base = {k: v for k, v in params.items() if k not in CHANGE_PARAMS}
    given = {k: params[k] for k in CHANGE_PARAMS if k in params}
    if not given:
        return base, None
    require("change_round" in given, f"timing parameter {sorted(given)[0]} needs change_round=R (the round of the change)")
    v = given["change_round"]
    require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"change_round={v!r} must be an integer >= 0")
    s = given.get("change_slowdown", 5.0)
    require(isinstance(s, (int, float)) and not isinstance(s, bool) and np.isfinite(s) and s > 0,
            f"change_slowdown={s!r} must be a finite number > 0")
    return base, {"change_round": v, "workers": _worker_list(given.get("change_workers", [0])), "slowdown": float(s)}
