"""The `sim` backend: N workers on one device and a virtual clock (SPEC sections 3 and 5).

Per round t:
  1. the schedule (A_t, every m_j, R_t) from the timing model's block finish times
     (theory.timing + theory.schedule; boundary semantics by default) or a replayed file;
  2. the samples and weights the rule needs (lgc.sim_grads.round_plan) and their gradient
     means from batched passes (a GradientEngine: no Python loop over workers);
  3. d_t = lgc.rules.aggregate(...), w_{t+1} = lgc.rules.server_step(...);
  4. the virtual clock advances by R_t.

    sim = Simulator(TrainConfig(...)); row = sim.step()    # in-memory, for tests and scripts
    run_dir = train(TrainConfig(...))                        # run directory, cache, checkpoints

rounds.csv schema (one row per round; units in brackets):
  round          t, from 0
  time           virtual time at the end of the round [time units: one fast mini-batch = 1]
  round_time     R_t, the round's wall time on the virtual clock [time units]
  wall_s         real seconds the round took on this machine [s]
  n_fast         |A_t| (N in full-sync and warm-up rounds)
  blocks         sum of m_j over the stragglers (anytime-minibatch: over all workers) [blocks]
  samples        samples whose gradients entered d_t
  rho            rho_t, pi-weight of the stragglers that finished >= 1 block
  loss           mean per-sample training loss over those samples, at w_t
  lr, warmup     step size; 1 in warm-up (full-sync) rounds
  test_loss, test_acc   after the round's update, every eval_every rounds and after the last
  grad_norm2, dist_opt, f_gap   quadratic only: ||grad F(w_t)||^2, ||w_t - w*||, F(w_t) - F*
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from lgc import runs
from lgc.checkpoint import load_checkpoint, save_checkpoint
from lgc.config import TrainConfig
from lgc.errors import UserError, check
from lgc.rules import RuleState, ServerState, aggregate, server_step
from lgc.sim_grads import RoundBatch, round_plan, sample_weights
from lgc.sim_task import make_task
from theory.errors import TheoryInputError
from theory.schedule import RoundSchedule, check_schedule, comm_time, schedule_deadline, schedule_from_csv, \
    schedule_round, schedule_to_csv

ROUND_FIELDS = ("round", "time", "round_time", "wall_s", "n_fast", "blocks", "samples", "rho", "loss", "lr",
                "warmup", "test_loss", "test_acc", "grad_norm2", "dist_opt", "f_gap")
RUN_KIND = "train"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    check(dev.type != "cuda" or torch.cuda.is_available(), f"device={name!r} but CUDA is not available")
    return dev


def make_timing(cfg: TrainConfig):
    """The timing model named in the config (theory.timing.make_timing_model when present)."""
    try:
        from theory.timing import make_timing_model
    except ImportError:  # the factory of the bound calculator has not landed: the default model only
        from theory.timing import ShiftedExponential

        check(cfg.timing == "shifted-exp", f"timing={cfg.timing!r}: only 'shifted-exp' is available in this build")
        return ShiftedExponential(**cfg.timing_params)
    return make_timing_model(cfg.timing, **cfg.timing_params)


def check_replayed_k(cfg, by_round) -> None:
    """A replayed schedule's |A_t| must be the run's K after warm-up (fastest-k, lgc, lgc-fresh),
    else config.json would record a K the run did not use."""
    if cfg.algorithm not in ("fastest-k", "lgc", "lgc-fresh"):
        return
    for t in range(cfg.warmup_rounds, cfg.rounds):
        k = len(by_round[t].fast)
        check(k == cfg.threshold_k, f"schedule round {t} has K={k} fast workers, run has K={cfg.threshold_k}")


def anytime_deadline(cfg: TrainConfig, timing_model) -> Optional[float]:
    """The anytime-minibatch deadline, shared by both backends: cfg.deadline, or by default the
    expected K-th fastest mini-batch time E[X_(K:N)] (the model's mean where it has no order
    statistic). None for the other algorithms."""
    if cfg.algorithm != "anytime-minibatch":
        return cfg.deadline
    if cfg.deadline is not None:
        return cfg.deadline
    try:
        return float(timing_model.expected_order_statistic(cfg.threshold_k, cfg.n_workers))
    except (AttributeError, NotImplementedError):
        return float(timing_model.mean())


class Simulator:
    """All N workers of one run, in memory. `step()` runs one round and returns its record."""

    def __init__(self, config: TrainConfig, *, engine=None, schedule: Optional[list] = None):
        cfg = config.resolved().validate()
        check(cfg.backend == "sim", f"backend={cfg.backend!r}: Simulator runs the sim backend only")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        try:
            self.timing = make_timing(cfg)
        except TheoryInputError as e:
            raise UserError(str(e)) from None
        self.task = make_task(cfg, self.device)
        self.model = self.task.model
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        with torch.no_grad():
            self.w = torch.cat([p.detach().reshape(-1) for p in self.params]).float().clone()
        if engine is None:
            from lgc.fused import make_engine

            engine = make_engine(cfg.engine, cfg.compile, self.device)
        self.engine = engine
        self.server = ServerState()
        self.rule = RuleState()
        self.round = 0
        self.clock = 0.0
        self.rows: list[dict] = []
        self.schedules: list[RoundSchedule] = []
        self.replay = self._load_replay(schedule)
        self.deadline = anytime_deadline(cfg, self.timing)

    # ------------------------------------------------------------------ schedule
    def _load_replay(self, schedule):
        if schedule is None and self.cfg.schedule_file:
            try:
                schedule = schedule_from_csv(Path(self.cfg.schedule_file).read_text(), source=self.cfg.schedule_file)
            except TheoryInputError as e:
                raise UserError(str(e)) from None
        if schedule is None:
            return None
        by_round = {s.round: s for s in schedule}
        check(all(t in by_round for t in range(self.cfg.rounds)),
              f"replayed schedule lacks rounds (has {len(by_round)}, run needs 0..{self.cfg.rounds - 1})")
        check_replayed_k(self.cfg, by_round)
        return by_round

    def schedule_for(self, t: int, warmup: bool) -> RoundSchedule:
        cfg = self.cfg
        n, m = cfg.n_workers, cfg.blocks
        if self.replay is not None:
            s = self.replay[t]
            if cfg.algorithm != "anytime-minibatch" or warmup:
                try:
                    check_schedule(s, n, m)
                except TheoryInputError as e:
                    raise UserError(str(e)) from None
            return s
        finish = self.timing.block_finish_times(cfg.seed, t, n, m, period=cfg.straggling_period)
        if cfg.algorithm == "anytime-minibatch" and not warmup:
            s = schedule_deadline(finish, self.deadline, round_index=t)
            messages = int(np.count_nonzero(np.asarray(s.blocks) > 0))
        else:
            k = n if (warmup or cfg.algorithm == "full-sync") else cfg.threshold_k
            s = schedule_round(finish, k, semantics=cfg.semantics, round_index=t)
            reporting = sum(1 for i, b in enumerate(s.blocks) if b > 0 and i not in s.fast)
            messages = k + (reporting if cfg.algorithm in ("lgc", "lgc-fresh") else 0)
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
        plan = round_plan(cfg.algorithm, fast_mask, s.blocks, self.task.pi, cfg.batch_size, cfg.block_size,
                          warmup=warm)
        x, y = self.task.round_inputs(t, plan.counts)
        row = {"round": t, **self.task.iterate_metrics(self.w)}
        grads, loss = self.engine.grads(self.model, RoundBatch(x, y, sample_weights(plan, self.device)))
        d, self.rule = aggregate(cfg.algorithm, grads, plan.rho, self.rule, warmup=warm)
        self.w, self.server = server_step(self.w, d, self.server, lr=cfg.lr, momentum=cfg.momentum,
                                          weight_decay=cfg.weight_decay)
        self._load_w()
        self.clock += s.wall
        self.round += 1
        blocks = np.asarray(s.blocks)
        row.update({
            "time": self.clock, "round_time": s.wall, "n_fast": len(s.fast),
            "blocks": int(blocks.sum() if cfg.algorithm == "anytime-minibatch" and not warm else blocks[~fast_mask].sum()),
            "samples": int(plan.counts.sum()), "rho": plan.rho, "loss": loss, "lr": cfg.lr, "warmup": int(warm),
        })
        if t == cfg.rounds - 1 or (cfg.eval_every and (t + 1) % cfg.eval_every == 0):
            row.update(self.task.evaluate())
        row["wall_s"] = time.perf_counter() - start
        self.rows.append(row)
        self.schedules.append(s)
        return row

    def final_metrics(self) -> dict:
        out = {"rounds": self.round, "time": self.clock}
        out.update(self.task.iterate_metrics(self.w))
        if self.rows:
            last = self.rows[-1]
            out.update({k: last[k] for k in ("loss", "test_loss", "test_acc") if k in last})
            if "grad_norm2" in last:
                out["grad_norm2_mean"] = float(np.mean([r["grad_norm2"] for r in self.rows]))
            wall = sum(r["wall_s"] for r in self.rows)
            out["wall_s"] = wall
            out["rounds_per_s"] = len(self.rows) / wall if wall > 0 else None
        return out

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict:
        buffers = {k: v.detach().cpu().clone() for k, v in self.model.named_buffers()}
        return {
            "round": self.round, "clock": self.clock, "w": self.w.detach().cpu().clone(),
            "momentum": None if self.server.momentum is None else self.server.momentum.detach().cpu().clone(),
            "u": None if self.rule.u is None else self.rule.u.detach().cpu().clone(),
            "buffers": buffers, "rows": [dict(r) for r in self.rows],
            "schedule": [[s.round, list(s.fast), list(s.blocks), s.t_cut, s.wall, s.comm] for s in self.schedules],
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
        }

    def load_state_dict(self, st: dict) -> None:
        dev = self.device
        self.round, self.clock = int(st["round"]), float(st["clock"])
        self.w = st["w"].to(dev)
        self.server = ServerState(momentum=None if st["momentum"] is None else st["momentum"].to(dev))
        self.rule = RuleState(u=None if st["u"] is None else st["u"].to(dev))
        named = dict(self.model.named_buffers())
        with torch.no_grad():
            for k, v in st["buffers"].items():
                named[k].copy_(v.to(dev))
        self.rows = [dict(r) for r in st["rows"]]
        self.schedules = [RoundSchedule(round=r, fast=tuple(f), blocks=tuple(b), t_cut=tc, wall=wl, comm=cm)
                          for r, f, b, tc, wl, cm in st["schedule"]]
        torch.set_rng_state(st["torch_rng"])
        if st.get("cuda_rng") is not None and dev.type == "cuda":
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        self._load_w()


# ----------------------------------------------------------------------------- run directories
def _write_progress(path: Path, sim: Simulator) -> None:
    runs.atomic_write_csv(path / "rounds.csv", sim.rows, ROUND_FIELDS)
    runs.atomic_write_text(path / "schedule.csv", schedule_to_csv(sim.schedules))
    save_checkpoint(path / "checkpoint.pt", sim.state_dict())


def train(
    config: TrainConfig, *, root=None, force: bool = False, resume: bool = True, quiet: bool = False,
    stop_after: Optional[int] = None, time_limit_s: Optional[float] = None,
) -> Path:
    """Run (or reuse) the `sim` run of `config`; returns its directory results/train/<key>/.

    A finished run with the same config and code is reused unless `force`. With `resume`, an
    unfinished run continues from its last checkpoint and ends bit-identical to an uninterrupted
    run. `stop_after` rounds or `time_limit_s` seconds end this call early after a checkpoint
    (chunked GPU sessions; tests); run `train` again to continue.
    """
    cfg = config.resolved().validate()
    key = cfg.to_dict()
    path = runs.run_dir(RUN_KIND, key, root)
    if runs.is_complete(path) and not force:
        return path
    sim = Simulator(cfg)
    ckpt = path / "checkpoint.pt"
    if resume and not force and ckpt.exists():
        sim.load_state_dict(load_checkpoint(ckpt))
    else:
        if path.exists():
            shutil.rmtree(path)
        runs.start_run(path, key, str(sim.device))
        runs.atomic_write_json(path / "data.json", sim.task.info())
    from tqdm import tqdm

    began = time.perf_counter()
    done_here = 0
    with tqdm(total=cfg.rounds, initial=sim.round, disable=quiet, desc=f"{cfg.algorithm} K={cfg.threshold_k}",
              unit="round", leave=False) as bar:
        while sim.round < cfg.rounds:
            row = sim.step()
            done_here += 1
            bar.update(1)
            if "test_acc" in row:
                bar.set_postfix(acc=f"{row['test_acc']:.3f}", loss=f"{row['loss']:.3f}")
            if sim.round == cfg.rounds:
                break
            out_of_time = time_limit_s is not None and time.perf_counter() - began > time_limit_s
            if (cfg.checkpoint_every and sim.round % cfg.checkpoint_every == 0) or out_of_time \
                    or (stop_after is not None and done_here >= stop_after):
                _write_progress(path, sim)
            if out_of_time or (stop_after is not None and done_here >= stop_after):
                return path
    _write_progress(path, sim)
    runs.finish_run(path, sim.final_metrics())
    return path
