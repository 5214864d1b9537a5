"""One worker process of the `dist` backend: its blocks, its report, the shared server step.

Every rank keeps a replica of the server state (w_t, momentum, u_{t-1}). A round:

1. the worker processes its mini-batch block by block (the samples `sim` uses, through the
   problem's `block_gradient`), sleeping after each block until the timing model's finish
   time when stragglers are injected (one time unit = `unit_ms` milliseconds);
2. the fast set comes from real arrival order (RoundCoordinator): a straggler looks at the
   round's `closed` key while it works; at the cutoff it stops (abort, the default: the block
   in flight is dropped) or, under boundary semantics, counts the block in flight, reports
   without waiting for it, and sleeps out its overrun at the start of the next round, which it
   thus starts late (eq. 2.3'; lgc-fresh waits for the blocks it counts);
3. one reduction (gather to rank 0 + broadcast on CPU, all-reduce otherwise) sums the
   pi-weighted gradient sums every worker forms from what it knows locally (its A_t
   membership, its m_j) and every worker's report row (arrival position, m_j, block times);
4. every rank builds the round plan from the gathered reports (lgc.protocol.round_plan: the
   groups, whose samples enter, rho_t), normalises the sums into gA_t, gS_t (or sum_i pi_i g_i)
   with lgc.protocol.group_norms, and applies lgc.rules.aggregate and lgc.rules.server_step on
   identical inputs: the replicas stay equal.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Protocol, Sequence

import numpy as np
from theory.algorithms import algorithm as algorithm_entry
import torch
import torch.distributed as dist

from lgc import rules
from lgc.dist.coordinator import RoundCoordinator, StoreInconsistent
from lgc.dist.stopping import RoundStop, Stop
from lgc.protocol import RunState, group_norms, local_weight, plan_groups, round_plan
from theory.schedule import RoundSchedule

if TYPE_CHECKING:
    from lgc.config import DistOptions, TrainConfig

# columns of a worker's report row (then M block starts and M block ends); _CKPT: rank 0 asks
# every rank to checkpoint after this round (a time-based decision travels with the reports);
# times in seconds from the worker's round start: _START its late start (the carry-over,
# eq. 2.3'), _BUSY when its work of the round ends (a straggler's block in flight included)
_POS, _M, _DONE, _ARRIVE, _LOSS, _NSAMP, _CKPT, _START, _BUSY = range(9)
_REPORT_FIXED = REPORT_FIXED = 9


class WorkerProblem(Protocol):
    """What a worker needs from the training problem (built by lgc.dist.problem)."""

    def initial_params(self) -> torch.Tensor:
        """Flat float32 parameters w_0 (identical on every rank)."""

    def block_gradient(self, w: torch.Tensor, round_index: int, worker: int, block: int):
        """(sum of per-sample gradients over the block's b samples (flat), sum of losses)."""


@dataclass(frozen=True)
class DistSettings:
    """The round protocol's parameters: the run's TrainConfig and DistOptions (lgc/config.py),
    whose fields read as attributes (settings.n_workers, settings.unit_ms), and what is derived
    from them (time in the timing model's units unless `_s`/`_ms`)."""

    config: "TrainConfig"
    options: "DistOptions"
    deadline: Optional[float] = None  # anytime-minibatch: lgc.protocol.anytime_deadline
    pi: Optional[tuple] = None

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("config", "options"):  # pickling, and before __init__
            raise AttributeError(name)
        for part in (self.config, self.options):
            if hasattr(part, name):
                return getattr(part, name)
        raise AttributeError(f"DistSettings has no {name!r}")

    @property
    def checkpoint_every(self) -> int:
        """Rounds between checkpoints (config 0: only at the end)."""
        return self.config.checkpoint_every or self.config.rounds

    @property
    def checkpoint_every_s(self) -> float:
        """Seconds after which rank 0 also asks for a checkpoint (0: rounds only)."""
        from lgc.config import CHECKPOINT_EVERY_S

        return CHECKPOINT_EVERY_S if self.config.checkpoint_every else 0.0

    @property
    def block_size(self) -> int:
        return self.batch_size // self.blocks

    @property
    def unit_s(self) -> float:
        return self.unit_ms / 1000.0

    def weights_pi(self) -> np.ndarray:
        if self.pi is None:
            return np.full(self.n_workers, 1.0 / self.n_workers)
        return np.asarray(self.pi, dtype=np.float64)

    def is_full_round(self, t: int) -> bool:
        """Warm-up rounds and full-sync wait for every worker (K = N)."""
        return t < self.warmup_rounds or algorithm_entry(self.algorithm).round_end == "all"


@dataclass
class RoundResult:
    """What every rank knows after a round (rank 0 records it)."""

    schedule: RoundSchedule
    wall_s: float
    loss: float
    samples: int
    report: np.ndarray  # (N, REPORT_FIXED + 2M) worker reports
    rho: float = 0.0
    checkpoint: bool = False  # rank 0 asked for a checkpoint after this round (Worker.checkpoint_request)


def model_finish_times(timing_model, settings: DistSettings, t: int) -> np.ndarray:
    """(N, M) block finish times of round t in time units: the draws `sim` uses (same seed)."""
    return np.asarray(timing_model.block_finish_times(settings.seed, t, settings.n_workers, settings.blocks,
                                                      period=settings.straggling_period), dtype=np.float64)


class Worker:
    """The round loop of process `rank`, which is worker `worker_id` (the same unless some
    workers died and became permanent stragglers: then `dead` lists them, they report m_j = 0
    every round, and the live workers run as ranks 0..N-|dead|-1). The process group must be
    initialised by the caller."""

    def __init__(self, rank: int, settings: DistSettings, problem: WorkerProblem, coord: RoundCoordinator,
                 timing_model, *, replay: Optional[Sequence[RoundSchedule]] = None, device="cpu",
                 dead: Sequence[int] = ()):
        live = [i for i in range(settings.n_workers) if i not in set(dead)]
        self.rank = rank
        self.worker_id = live[rank]
        self.n_procs = len(live)
        self.s = settings
        self.problem = problem
        self.coord = coord
        self.timing = timing_model
        self.replay = replay
        self.device = torch.device(device)
        self.pi = settings.weights_pi()
        self.dead = tuple(sorted(dead))
        self.reduce = "allreduce"  # or "gather" (set by the runner; see _sum_over_workers)
        self.checkpoint_request = False  # set by rank 0's runner before a round
        self.busy_until: Optional[float] = None  # perf_counter time the block in flight of the last round ends
        self.k_control = None  # --k auto: the round's K (theory.adaptive.KController, set by the runner)
        self.last_refit = None  # --k auto: the refit made after the last round (its record), if any

    def k_of(self, t: int) -> int:
        """K of round t: N in warm-up and full-sync rounds, the controller's choice under --k auto."""
        if self.s.is_full_round(t):
            return self.s.n_workers
        return self.k_control.k if self.k_control is not None else self.s.threshold_k

    def _observe(self, t: int, sched: RoundSchedule, clock: float, *, loss: float, dev2: float) -> None:
        """--k auto: the round as every rank saw it (DERIVATION.md eq. 7.1 and section 7's dist
        paragraph): a replayed round from the file's row, as sim observes it; a measured round from
        the reduced reports, identical on every rank. Each rank's measured R_t differs slightly, so
        before a refit rank 0's clock (its run's `time`) is broadcast and every rank budgets with it. loss, dev2:
        the round's training loss and ||gS - gA||^2 from the reduced sums, the same on every rank (eqs. 7.7-7.9)."""
        from theory.adaptive import observe

        ctl = self.k_control
        if self.replay is not None:  # the file's walls: the same clock on every rank
            self.last_refit = ctl.observe(observe(self.replay[t], loss=loss, dev2=dev2))
            return
        shared = None
        if ctl.due(after=1):
            buf = torch.tensor([clock], dtype=torch.float64, device=self.device)
            dist.broadcast(buf, src=0)
            shared = float(buf.item())
        self.last_refit = ctl.observe(observe(sched, loss=loss, dev2=dev2), clock=shared)

    # ------------------------------------------------------------------ one worker's blocks
    def _finish_times_s(self, t: int) -> Optional[np.ndarray]:
        if not self.s.inject or self.replay is not None:
            return None
        f = model_finish_times(self.timing, self.s, t)
        return np.asarray(f[self.worker_id], dtype=np.float64) * self.s.unit_s

    def _work(self, t: int, w: torch.Tensor):
        """Process blocks until the round's stopping rule (lgc.dist.stopping.RoundStop) ends them.
        Returns the report row, the gradient sum over the reported blocks and the round's start."""
        s, M, r = self.s, self.s.blocks, self.worker_id
        rule = RoundStop.for_round(s, t, r, k=self.k_of(t), replay=self.replay, finish=self._finish_times_s(t),
                                   coord=self.coord)
        row = np.zeros(_REPORT_FIXED + 2 * M)
        prev = cur = None  # gradient sums over done-1 and done blocks
        prev_loss = cur_loss = 0.0
        done, pos, stop = 0, 0, None
        t0 = s0 = time.perf_counter()
        busy, self.busy_until = self.busy_until, None
        if busy is not None and busy > t0:  # still finishing last round's block in flight (eq. 2.3')
            if rule.closed_while_busy(busy, t0):
                stop = Stop(0, busy_until=busy)  # busy through this round's cutoff: starts nothing
            s0 = busy
        row[_START] = s0 - t0
        for m in range(rule.planned if stop is None else 0):
            if rule.stops_before(m, time.perf_counter() - t0):
                break
            start = time.perf_counter()
            g, loss = self.problem.block_gradient(w, t, r, m)
            if r == s.slow_worker and s.slow_ms > 0:
                time.sleep(s.slow_ms / 1000.0)
            closed, target = rule.wait_block(m, s0)
            end = time.perf_counter()
            prev, prev_loss = cur, cur_loss
            cur = g if cur is None else cur + g
            cur_loss = cur_loss + float(loss)
            done += 1
            stop = rule.after_block(done, closed, target, end - t0)
            row[_REPORT_FIXED + m] = start - t0
            row[_REPORT_FIXED + M + m] = (stop.block_end if stop is not None and stop.block_end is not None
                                          else end) - t0
            if stop is not None:
                break
        if stop is not None:
            m_rep = stop.m_rep
            self.busy_until = stop.busy_until
        elif done == M:
            pos, m_rep, arrived = rule.arrive()
            if arrived is not None:
                row[_ARRIVE] = arrived - t0
        else:
            m_rep = done
        rule.end_round(t0)
        row[_BUSY] = (self.busy_until if self.busy_until is not None else time.perf_counter()) - t0
        if m_rep == done:
            gsum, lsum = cur, cur_loss
        elif m_rep == done - 1:
            gsum, lsum = prev, prev_loss
        else:  # pragma: no cover - m_rep is done or done-1 by construction
            raise AssertionError((m_rep, done))
        # the trace lists finished blocks: an injected block cut short at the cutoff is not one
        dropped = stop is not None and stop.dropped
        row[_POS], row[_M], row[_DONE] = pos, m_rep, done - int(dropped)
        row[_LOSS], row[_NSAMP] = lsum, m_rep * s.block_size
        return row, gsum, t0

    # ------------------------------------------------------------------ the shared step
    def _schedule_from_reports(self, t: int, rep: np.ndarray, wall_s: float) -> RoundSchedule:
        s, M = self.s, self.s.blocks
        full = s.is_full_round(t)
        if self.replay is not None:
            fast = tuple(self.replay[t].fast)
        else:
            k_t = self.k_of(t)
            if algorithm_entry(s.algorithm).round_end == "deadline" and not full:
                k_t = s.n_workers  # every worker that finished all M blocks by the deadline
            pos = rep[:, _POS]
            arrived = [i for i in np.argsort(pos, kind="stable") if 1 <= pos[i] <= k_t]
            fast = tuple(int(i) for i in arrived)
        if self.replay is not None and full:  # all M blocks were computed; record the file's round
            blocks = tuple(int(v) for v in self.replay[t].blocks_done)
        else:
            blocks = tuple(int(M) if i in fast else int(rep[i, _M]) for i in range(s.n_workers))
        arrive = rep[:, _ARRIVE]
        if algorithm_entry(s.algorithm).round_end == "deadline" and not full and s.deadline is not None:
            t_cut = float(s.deadline)  # the deadline closes the round (eq. 2.6)
        else:
            t_cut = float(arrive[fast[-1]]) / s.unit_s if fast else float(wall_s) / s.unit_s
        timed = self.replay is None  # measured late starts and busy times (a replay follows the file)
        return RoundSchedule(round=t, fast=fast, blocks_done=blocks, t_cut=t_cut, wall=wall_s / s.unit_s,
                             start=tuple(float(v) for v in rep[:, _START] / s.unit_s) if timed else (),
                             busy=tuple(float(v) for v in rep[:, _BUSY] / s.unit_s) if timed else ())

    def _check_round(self, t: int, rep: np.ndarray, sched: RoundSchedule) -> None:
        """The round as the reports (arrival positions from the store) describe it must be one the
        protocol can produce: positions distinct in 1..N, m_j and blocks done in 0..M, and |A_t| = K
        (N - dead in warm-up and full-sync rounds). Every rank sees the same reports, so all stop."""
        s, M = self.s, self.s.blocks
        pos = rep[:, _POS]
        arrived = pos[pos != 0]
        problems = []
        if not (np.all(arrived == np.round(arrived)) and np.all((arrived >= 1) & (arrived <= self.n_procs))
                and len(set(arrived.tolist())) == len(arrived)):
            problems.append(f"arrival positions {sorted(arrived.astype(int).tolist())}, expected distinct 1..{self.n_procs}")
        for col, name in ((_M, "m_j"), (_DONE, "blocks done")):
            v = rep[:, col]
            if not np.all((v == np.round(v)) & (v >= 0) & (v <= M)):
                problems.append(f"{name} {v.astype(int).tolist()}, expected 0..{M}")
        if self.replay is None and not (algorithm_entry(s.algorithm).round_end == "deadline" and not s.is_full_round(t)):
            k = self.n_procs if s.is_full_round(t) else self.k_of(t)
            if len(sched.fast) != k:
                problems.append(f"|A_t| = {len(sched.fast)}, expected K = {k}")
        if problems:
            raise StoreInconsistent(f"round {t}: {'; '.join(problems)}")

    def _sum_over_workers(self, buf: torch.Tensor) -> torch.Tensor:
        """The sum of every worker's `buf`, identical on every rank.

        "gather": every worker sends its buffer to rank 0 as soon as it is done, rank 0 adds
        them in rank order and broadcasts the sum: two message hops after the last straggler
        stops, where a ring all-reduce needs 2(N-1) (gloo on CPU; memory N buffers on rank 0).
        "allreduce": dist.all_reduce (NCCL, CUDA tensors, large models).
        """
        if self.reduce != "gather":
            dist.all_reduce(buf)
            return buf
        n = self.n_procs
        if self.rank != 0:
            dist.send(buf, dst=0)
        else:
            parts = [torch.empty_like(buf) for _ in range(n - 1)]
            reqs = [dist.irecv(parts[j - 1], src=j) for j in range(1, n)]
            for q in reqs:
                q.wait()
            for p in parts:
                buf += p
        dist.broadcast(buf, src=0)
        return buf

    def _is_fast(self, t: int, row: np.ndarray) -> bool:
        """Is this worker in A_t? Known locally once its blocks are done (its arrival position)."""
        s = self.s
        full = s.is_full_round(t)
        if self.replay is not None and not full:
            return self.worker_id in self.replay[t].fast
        if algorithm_entry(s.algorithm).round_end == "deadline" and not full:
            return row[_POS] >= 1
        return 1 <= row[_POS] <= self.k_of(t)

    def step(self, state: RunState) -> RoundResult:
        """Run round state.round; updates `state` in place on every rank.

        One all-reduce carries the pi-weighted gradient sums, which every worker can form from
        what it knows locally (lgc.protocol.local_weight: its own A_t membership and m_j), and
        every worker's report row; the normalisers (sum of pi over A_t, rho_t, sum of m_i) come
        from lgc.protocol.group_norms on the gathered reports, so gA_t = sum_{A_t} pi_i g_i /
        sum_{A_t} pi_i is sum_i w_fast[i] g_i exactly as the rule defines it (eq. 3.2).
        """
        s, M, b, r, t = self.s, self.s.blocks, self.s.block_size, self.worker_id, state.round
        if self.k_control is not None and self.replay is not None and not s.is_full_round(t):
            from lgc.protocol import check_round_k

            check_round_k(self.replay[t], self.k_of(t))
        self.coord.heartbeat(t)
        row, gsum, t0 = self._work(t, state.w)
        row[_CKPT] = float(self.checkpoint_request)
        self.coord.reported(t)
        fast = self._is_fast(t, row)
        m_mine = M if fast else int(row[_M])
        warm = t < s.warmup_rounds
        slots = plan_groups(s.algorithm, warmup=warm)
        P, width = state.w.numel(), row.size
        buf = torch.zeros(len(slots) * P + s.n_workers * width, dtype=state.w.dtype, device=self.device)
        for k, name in enumerate(slots):
            coef = local_weight(name, pi_i=float(self.pi[r]), fast=fast, m=m_mine, batch_size=s.batch_size,
                                block_size=b)
            if coef != 0.0 and gsum is not None:
                buf[k * P:(k + 1) * P] = gsum * coef
        off = len(slots) * P + r * width
        buf[off:off + width] = torch.as_tensor(row, dtype=buf.dtype, device=self.device)
        buf = self._sum_over_workers(buf)
        rep = buf[len(slots) * P:].view(s.n_workers, width).to("cpu", torch.float64).numpy()
        sched = self._schedule_from_reports(t, rep, 0.0)
        self._check_round(t, rep, sched)
        fast_mask = sched.fast_mask()
        plan = round_plan(s.algorithm, fast_mask, sched.blocks_done, self.pi, s.batch_size, b, warmup=warm)
        norms = group_norms(fast_mask, sched.blocks_done, self.pi, absent=self.dead)
        grads = {}
        for k, name in enumerate(slots):
            if name not in plan.per_sample:  # lgc: no straggler finished a block (rho_t = 0)
                grads[name] = None
                continue
            g = buf[k * P:(k + 1) * P]
            grads[name] = g / norms[name] if norms[name] > 0 else g
        d, state.rule = rules.aggregate(s.algorithm, grads, plan.rho, state.rule, warmup=warm)
        state.w, state.server = rules.server_step(state.w, d, state.server, lr=s.lr, momentum=s.momentum,
                                                  weight_decay=s.weight_decay)
        wall_s = time.perf_counter() - t0
        sched = self._schedule_from_reports(t, rep, wall_s)
        # the training loss over the samples that entered d_t (the plan's workers, as in sim)
        used = plan.counts > 0
        n = float(rep[used, _NSAMP].sum())
        loss = float(rep[used, _LOSS].sum()) / n if n > 0 else math.nan
        state.round = t + 1
        state.clock += sched.wall
        if self.k_control is not None:
            from lgc.protocol import deviation_norm2

            self._observe(t, sched, state.clock, loss=loss, dev2=deviation_norm2(grads))
        return RoundResult(schedule=sched, wall_s=wall_s, loss=loss, samples=int(n), report=rep, rho=plan.rho,
                           checkpoint=bool(rep[:, _CKPT].max() > 0))
