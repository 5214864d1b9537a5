"""The `sim` backend: N workers on one device and a virtual clock.

What a round computes: README "Algorithms"; theory/DERIVATION.md sections 2-3.

Per round t:
  1. the schedule (A_t, every m_j, R_t) from the timing model's block finish times
     (theory.timing + theory.schedule; abort semantics by default; under boundary semantics
     each straggler's late start carries into the next round, eq. 2.3') or a replayed file;
  2. the samples and weights the rule needs (lgc.sim.engines.round_plan) and their gradient
     means from batched passes (a GradientEngine: no Python loop over workers);
  3. d_t = lgc.rules.aggregate(...), w_{t+1} = lgc.rules.server_step(...);
  4. the virtual clock advances by R_t.

    sim = Simulator(TrainConfig(...)); row = sim.step()    # in-memory, for tests and scripts
    run_dir = train(TrainConfig(...))                        # run directory, cache, checkpoints

The round record (rounds.csv) and the rest of the round protocol: lgc.protocol.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import numpy as np
import torch

from lgc.config import TrainConfig
from lgc.errors import check
from theory.algorithms import algorithm as algorithm_entry
from lgc.protocol import (RunState, check_round_k, k_controller, load_replay, make_timing, round_k, round_parameter,
                          round_plan, round_record)
from lgc.rules import ServerState, aggregate, as_rule, server_step
from lgc.sim.engines import RoundBatch, sample_weights
from lgc.task import make_task
from theory.round_kinds import FULL, RoundContext
from theory.schedule import RoundSchedule, comm_time


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    check(dev.type != "cuda" or torch.cuda.is_available(), f"device={name!r} but CUDA is not available")
    return dev


class Simulator:
    """All N workers of one run, in memory. `step()` runs one round and returns its record."""

    def __init__(self, config: TrainConfig, *, engine=None, schedule: Optional[list] = None, dataset=None,
                 task=None, rule=None):
        """`schedule` replays instead of the timing model (else cfg.schedule_file); `dataset`: the
        config's data set already in memory; `task`: an lgc.Task to train instead of the config's
        (lgc.task.make_task); `rule`: an lgc.rules.Rule object instead of cfg.algorithm's."""
        cfg = config.resolved().validate()
        check(cfg.backend == "sim", f"backend={cfg.backend!r}: Simulator runs the sim backend only")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.timing = make_timing(cfg)
        self.task = make_task(cfg, self.device, dataset, task=task)
        self.model = self.task.model
        self.model.train()
        self.final_per_class = None  # each class's test accuracy after the last round (final.json)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        with torch.no_grad():
            self.w = torch.cat([p.detach().reshape(-1) for p in self.params]).float().clone()
        if engine is None:
            from lgc.sim.fused import make_engine

            engine = make_engine(cfg.engine, cfg.compile, self.device, self.task.loss_fn)
        self.engine = engine
        self.server = ServerState()
        self.aggregation = as_rule(cfg.algorithm if rule is None else rule)  # lgc.rules.Rule
        check(self.aggregation.kind == cfg.algorithm, f"the rule runs the rounds of {self.aggregation.kind!r}, "
                                                      f"the config names algorithm={cfg.algorithm!r}")
        self.rule = self.aggregation.init()
        self.round = 0
        self.clock = 0.0
        self.rows: list[dict] = []
        self.schedules: list[RoundSchedule] = []
        self.replay = load_replay(cfg, schedule)
        self.round_param = round_parameter(cfg, self.timing)  # the deadline, S: theory.round_kinds.RoundKind.parameter
        self.k_control = k_controller(cfg, 4.0 * self.w.numel())  # --k auto (theory.adaptive), else None

    # ------------------------------------------------------------------ schedule
    def schedule_for(self, t: int, warmup: bool) -> RoundSchedule:
        cfg = self.cfg
        n, m = cfg.n_workers, cfg.blocks
        if self.replay is not None:
            if self.k_control is not None and not warmup:
                check_round_k(self.replay[t], round_k(cfg, self.k_control, warmup))
            return self.replay[t]  # checked by load_replay
        finish = self.timing.block_finish_times(cfg.seed, t, n, m, period=cfg.straggling_period)
        entry = algorithm_entry(cfg.algorithm)
        kind = FULL if warmup else entry.round_kind  # theory/round_kinds.py; warm-up rounds are full-sync's
        ctx = RoundContext(entry=entry, k=round_k(cfg, self.k_control, warmup), round_index=t, semantics=cfg.semantics,
                           previous=self.schedules[-1] if self.schedules else None, weights=self.task.pi,
                           param=self.round_param)
        s, messages = kind.schedule(finish, ctx)
        comm = comm_time(cfg.comm_alpha, cfg.comm_beta, 4.0 * self.w.numel(), messages)
        return dataclasses.replace(s, wall=s.wall + comm, comm=comm) if comm else s

    # ------------------------------------------------------------------ one round
    def _load_w(self) -> None:
        with torch.no_grad():
            off = 0
            for p in self.params:
                p.copy_(self.w[off:off + p.numel()].view_as(p))
                off += p.numel()

    def step(self) -> dict:
        cfg, t = self.cfg, self.round
        check(t < cfg.rounds, f"run already has its {cfg.rounds} rounds")
        warm = t < cfg.warmup_rounds
        start = time.perf_counter()
        s = self.schedule_for(t, warm)
        fast_mask = s.fast_mask()
        plan = round_plan(cfg.algorithm, fast_mask, s.blocks_done, self.task.pi, cfg.batch_size, cfg.block_size,
                          warmup=warm)
        x, y = self.task.round_inputs(t, plan.counts)
        row = {"round": t, **self.task.iterate_metrics(self.w)}
        grads, loss = self.engine.grads(self.model, RoundBatch(x, y, sample_weights(plan, self.device)))
        d, self.rule = aggregate(self.aggregation, grads, plan.rho, self.rule, warmup=warm)
        self.w, self.server = server_step(self.w, d, self.server, lr=cfg.lr, momentum=cfg.momentum,
                                          weight_decay=cfg.weight_decay)
        self._load_w()
        self.clock += s.wall
        self.round += 1
        row.update(round_record(cfg.algorithm, warm, s, clock=self.clock, samples=int(plan.counts.sum()), rho=plan.rho,
                                loss=loss, lr=cfg.lr))
        if t == cfg.rounds - 1:  # the last evaluation: the whole test set, and each class's accuracy
            row.update(self.task.evaluate(per_class=True))
            self.final_per_class = row.pop("test_acc_per_class", None)
        elif cfg.eval_every and (t + 1) % cfg.eval_every == 0:
            row.update(self.task.evaluate(limit=cfg.eval_subset))  # a fixed subset, if asked (cheaper)
        row["wall_s"] = time.perf_counter() - start
        self.rows.append(row)
        self.schedules.append(s)
        if self.k_control is not None:  # the round as observed (eq. 7.1); a refit sets the next K
            from lgc.protocol import deviation_norm2
            from theory.adaptive import observe

            self.k_control.observe(observe(s, loss=row["loss"], dev2=deviation_norm2(grads)))
        return row

    def final_metrics(self) -> dict:
        out = {"rounds": self.round, "time": self.clock}
        if self.k_control is not None:
            from lgc.protocol import k_auto_summary

            out.update(k_auto_summary(self.k_control))
        out.update(self.task.iterate_metrics(self.w))
        if self.rows:
            last = self.rows[-1]
            out.update({k: v for k, v in last.items() if k == "loss" or k.startswith("test_")})  # a task's own metrics too
            if self.final_per_class is not None and self.round == self.cfg.rounds:
                out["test_acc_per_class"] = self.final_per_class
            if "grad_norm2" in last:
                out["grad_norm2_mean"] = float(np.mean([r["grad_norm2"] for r in self.rows]))
            wall = sum(r["wall_s"] for r in self.rows)
            out["wall_s"] = wall
            out["rounds_per_s"] = len(self.rows) / wall if wall > 0 else None
        return out

    # ------------------------------------------------------------------ checkpoint state
    def _check_state(self, st: dict, source: str) -> None:
        """A checkpoint of another model, run or hand edit is one UserError, not a traceback."""
        from lgc.checkpoint import validate_checkpoint

        keys = ("w", "round", "clock", "momentum", "u", "buffers", "rows", "schedule", "torch_rng")
        validate_checkpoint(st, source, rounds=self.cfg.rounds, n_params=self.w.numel(), keys=keys)
        how = "delete it or rerun with --force"
        t = st["round"]
        check(isinstance(st["rows"], list) and isinstance(st["schedule"], list)
              and len(st["rows"]) == t and len(st["schedule"]) == t,
              f"checkpoint {source}: holds {len(st['rows'])} rows for round {t}; {how}")
        named = dict(self.model.named_buffers())
        bufs = st["buffers"]
        check(isinstance(bufs, dict) and set(bufs) == set(named) and all(
            isinstance(v, torch.Tensor) and v.shape == named[k].shape for k, v in bufs.items()),
            f"checkpoint {source}: its model buffers do not match the model; {how}")
        rng = st["torch_rng"]
        check(isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == torch.get_rng_state().shape,
              f"checkpoint {source}: torch_rng is not a random-generator state; {how}")

    def state_dict(self) -> dict:
        buffers = {k: v.detach().cpu().clone() for k, v in self.model.named_buffers()}
        return {
            **RunState(self.w, self.server, self.rule, self.round, self.clock).checkpoint(),
            "buffers": buffers, "rows": [dict(r) for r in self.rows],
            "schedule": [[s.round, list(s.fast), list(s.blocks_done), s.t_cut, s.wall, s.comm, list(s.start), list(s.busy)]
                         for s in self.schedules],
            "k_auto": self.k_control.state_dict() if self.k_control is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
        }

    def load_state_dict(self, st: dict, *, source: str = "checkpoint") -> None:
        self._check_state(st, source)
        dev = self.device
        run = RunState.from_checkpoint(st, dev)
        self.w, self.server, self.rule, self.round, self.clock = run.w, run.server, run.rule, run.round, run.clock
        named = dict(self.model.named_buffers())
        with torch.no_grad():
            for k, v in st["buffers"].items():
                named[k].copy_(v.to(dev))
        self.rows = [dict(r) for r in st["rows"]]
        self.schedules = [RoundSchedule(round=r, fast=tuple(f), blocks_done=tuple(b), t_cut=tc, wall=wl, comm=cm,
                                        start=tuple(rest[0]) if rest else (), busy=tuple(rest[1]) if rest else ())
                          for r, f, b, tc, wl, cm, *rest in st["schedule"]]
        if self.k_control is not None:
            check(isinstance(st.get("k_auto"), dict), f"checkpoint {source}: lacks the --k auto state; delete it or "
                                                      f"rerun with --force")
            self.k_control.load_state_dict(st["k_auto"])
        torch.set_rng_state(st["torch_rng"])
        if st.get("cuda_rng") is not None and dev.type == "cuda":
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        self._load_w()
