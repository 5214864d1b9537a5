"""When a dist worker stops its round: one policy object per round (RoundStop).

Five things decide it, and each is a field here rather than a flag inside the worker's loop:
  semantics   abort: the block in flight at the cutoff is dropped; boundary: it counts (at most
              M-1 blocks), the worker reports without waiting for it and finishes it at the start
              of the next round, which it thus starts late (eq. 2.3')
  replay      a replayed schedule says how many blocks the worker computes, not arrival order
  injection   blocks end at the timing model's finish times (seconds from the worker's start):
              the cutoff can fall while a block is in flight, so the worker watches the round's
              `closed` key while it sleeps
  deadline    anytime-minibatch: blocks that end after the deadline do not count, and the round
              lasts the deadline (eq. 2.6)
  reports     lgc-fresh's server waits for the blocks it counts, so a block in flight at the
              cutoff is finished before the report
The worker (lgc.dist.worker.Worker._work) computes blocks and asks this object before and after
each one; the decisions are the ones sim's schedule makes from the same times (theory/schedule.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from lgc.dist.coordinator import sleep_until
from theory.algorithms import algorithm as algorithm_entry


@dataclass(frozen=True)
class Stop:
    """A worker's decision to end its round: it reports m_rep blocks. `dropped`: the last block it
    computed was cut at the cutoff (abort; not a finished block in the trace); `block_end`: the
    perf_counter time its last block ends (a block in flight at the cutoff, boundary semantics);
    `busy_until`: it is still busy with that block until then (slept out in the next round)."""

    m_rep: int
    dropped: bool = False
    block_end: Optional[float] = None
    busy_until: Optional[float] = None


class RoundStop:
    """The stopping rule of one worker in one round (see the module docstring)."""

    def __init__(self, *, t: int, blocks: int, k: int, full: bool, abort: bool, anytime: bool,
                 waits_for_reports: bool, planned: int, finish: Optional[np.ndarray], deadline_s: Optional[float],
                 replayed: bool, coord):
        self.t, self.M, self.k, self.full, self.abort, self.anytime = t, blocks, k, full, abort, anytime
        self.waits_for_reports, self.planned, self.finish, self.deadline_s = waits_for_reports, planned, finish, deadline_s
        self.coord = coord
        self.free = not replayed and not full  # arrival order decides, not a file
        self.watch = self.free and not anytime and finish is not None  # injected blocks: wake at the cutoff
        self.measured_deadline = deadline_s is not None and finish is None and not replayed  # real block times

    @classmethod
    def for_round(cls, settings, t: int, worker: int, *, k: int, replay, finish: Optional[np.ndarray],
                  coord) -> "RoundStop":
        """The rule of `worker` in round t: `finish` its injected block finish times [s] (None when
        blocks run at real speed or a schedule is replayed), `k` the round's K."""
        full = settings.is_full_round(t)
        entry = algorithm_entry(settings.algorithm)
        anytime = entry.round_end == "deadline" and not full
        planned = settings.blocks
        if replay is not None and not full:  # the file's blocks: all M for a fast worker, else its m_j
            sched = replay[t]
            planned = settings.blocks if worker in sched.fast else sched.blocks_done[worker]
        deadline_s = settings.deadline * settings.unit_s if (anytime and settings.deadline is not None) else None
        return cls(t=t, blocks=settings.blocks, k=k, full=full, abort=settings.semantics == "abort", anytime=anytime,
                   waits_for_reports=entry.waits_for_reports, planned=planned, finish=finish, deadline_s=deadline_s,
                   replayed=replay is not None, coord=coord)

    def closed_while_busy(self, busy: float, t0: float) -> bool:
        """A worker still finishing last round's block in flight (eq. 2.3') until `busy`: True if
        this round closes first (it then starts nothing and stays busy); else it sleeps until `busy`."""
        if self.watch and self.coord.wait_closed(self.t, busy - t0):
            return True
        sleep_until(busy)
        return False

    def stops_before(self, m: int, elapsed: float) -> bool:
        """Anytime-minibatch: block m would end after the deadline (injected times), or the
        deadline has passed (real block times)."""
        if self.deadline_s is None:
            return False
        if self.finish is not None:
            return bool(self.finish[m] > self.deadline_s)
        return self.measured_deadline and elapsed >= self.deadline_s

    def wait_block(self, m: int, s0: float) -> tuple[bool, Optional[float]]:
        """Sleep until block m's injected finish time s0 + finish[m] (s0: the worker's start of the
        round); watching the cutoff, wake when the round closes first. Returns (the round closed
        while the block was in flight, the block's finish time)."""
        if self.finish is None:
            return False, None
        target = s0 + self.finish[m]
        if self.watch:
            return self.coord.wait_closed(self.t, target - time.perf_counter()), target
        sleep_until(target)
        return False, target

    def after_block(self, done: int, closed_in_flight: bool, target: Optional[float],
                    elapsed: float) -> Optional[Stop]:
        """The decision after the worker's `done`-th block ended `elapsed` seconds into the round
        (None: go on, or arrive once all M are done)."""
        if closed_in_flight and self.abort:  # the block in flight at the cutoff is dropped
            return Stop(done - 1, dropped=True)
        if closed_in_flight:  # boundary: it counts (at most M-1 blocks); the server does not wait for it
            m_rep = min(done, self.M - 1)
            if self.waits_for_reports and m_rep == done:
                sleep_until(target)  # lgc-fresh waits for the blocks it counts
                return Stop(m_rep, block_end=target)
            return Stop(m_rep, block_end=target, busy_until=target)
        if self.measured_deadline and elapsed > self.deadline_s:  # finished after the deadline: does not count
            return Stop(done - 1)
        if done < self.M and self.free and not self.anytime and self.coord.closed(self.t):
            return Stop(done - 1 if self.abort else done)  # boundary: stop after the block in flight
        return None

    def arrive(self) -> tuple[int, int, Optional[float]]:
        """All M blocks done: (arrival position, 0 in a replayed round; the blocks it reports: M, or
        M-1 for a worker that arrived after the K-th; the perf_counter time it arrived, or None)."""
        if not (self.free or self.full):  # replay: a fast worker per the file
            return 0, self.M, None
        pos = self.coord.arrive(self.t, self.k)
        return pos, self.M if (pos <= self.k or self.anytime) else self.M - 1, time.perf_counter()

    def end_round(self, t0: float) -> None:
        """Anytime-minibatch: the round lasts the deadline."""
        if self.deadline_s is not None:
            sleep_until(t0 + self.deadline_s)
