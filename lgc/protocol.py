"""The round protocol both backends share (`sim`: lgc.sim, `dist`: lgc.dist).

A round t of a run: the timing model (make_timing) or a replayed schedule file (load_replay)
gives the schedule (A_t, every m_j, R_t); round_plan says which workers' samples enter which
gradient group with which weights (the dist worker forms the same weights in two steps:
local_weight before its one reduction, group_norms after it); lgc.rules aggregates and steps
the server state (RunState, also what a checkpoint holds); round_record is the round's row of
rounds.csv (ROUND_FIELDS). Anytime-minibatch rounds end at a deadline (anytime_deadline).

rounds.csv schema (one row per round; units in brackets):
  round          t, from 0
  time           virtual time at the end of the round [time units: one fast mini-batch = 1]
  round_time     R_t, the round's wall time on the virtual clock [time units]
  wall_s         real seconds the round took on this machine [s]
  n_fast         |A_t| (N in full-sync and warm-up rounds)
  partial_blocks sum of m_j over the stragglers (anytime-minibatch, rennala, malenia: over all
                 workers) [blocks]
  samples        samples whose gradients entered d_t
  rho            rho_t, pi-weight of the stragglers that finished >= 1 block
  loss           mean per-sample training loss over those samples, at w_t
  lr, warmup     step size; 1 in warm-up (full-sync) rounds
  test_loss, test_acc   after the round's update, every eval_every rounds (sim: on the first
                 eval_subset test samples when set) and after the last (on all of them)
  grad_norm2, dist_opt, f_gap   quadratic only: ||grad F(w_t)||^2, ||w_t - w*||, F(w_t) - F*
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from lgc.config import TrainConfig
from lgc.errors import UserError, check
from theory.algorithms import algorithm as algorithm_entry
from lgc.rules import RuleState, ServerState, Weights, group_weights
from theory.errors import TheoryInputError
from theory.schedule import RoundSchedule, check_schedule, load_schedule

ROUND_FIELDS = ("round", "time", "round_time", "wall_s", "n_fast", "partial_blocks", "samples", "rho", "loss", "lr",
                "warmup", "test_loss", "test_acc", "grad_norm2", "dist_opt", "f_gap")
RUN_KIND = "train"


DIVERGED = "diverged"  # final.json "status" of a run stopped because it diverged


def diverged(row: dict, w) -> bool:
    """The round's loss (over samples that entered d_t) or the new iterate w_{t+1} is not finite:
    the run cannot recover, so it stops there (a round without samples has loss NaN by design)."""
    loss = row.get("loss")
    bad_loss = row.get("samples", 0) > 0 and loss is not None and not math.isfinite(float(loss))
    return bad_loss or not bool(w.isfinite().all())


def divergence_record(t: int) -> dict:
    """What final.json adds for a diverged run (lgc train prints it and exits with status 3)."""
    return {"status": DIVERGED, "diverged_round": int(t),
            "message": f"the run diverged at round {t} (loss or weights not finite): lower --lr"}


def peer_s(cfg: TrainConfig) -> Optional[int]:
    """S of an algorithm whose round ends at a block count (rennala, malenia): cfg.peer_s, else on
    the quadratics the papers' formula (eq. 6.7) with the exact sigma^2 per block (sigma^2 / b)
    and cfg.target_eps, else N*M (the blocks of full-sync's step: the same samples per step).
    None for the other algorithms."""
    if algorithm_entry(cfg.algorithm).round_end != "blocks":
        return None
    if cfg.peer_s is not None:
        return cfg.peer_s
    if cfg.task.dataset != "quadratic":
        return cfg.n_workers * cfg.blocks
    from theory.peers import default_s

    return default_s(cfg.algorithm, cfg.task.quad_sigma2 / cfg.block_size, cfg.target_eps, cfg.n_workers)


def make_timing(cfg: TrainConfig):
    """The timing model named in the config (theory.timing.make_timing_model); UserError if its
    parameters are invalid or do not fit the run's N."""
    from theory.timing_factory import make_timing_model

    try:
        model = make_timing_model(cfg.timing, **cfg.timing_params)
        # what depends on N (a deterministic model's times, a trace's workers, change_workers) is
        # checked when a round is drawn: draw round 0 now, before any run directory exists
        model.block_finish_times(cfg.seed, 0, cfg.n_workers, cfg.blocks, period=cfg.straggling_period)
        return model
    except TheoryInputError as e:
        raise UserError(str(e)) from None


def check_replayed_k(cfg, by_round) -> None:
    """A replayed schedule's |A_t| must be the run's K after warm-up (fastest-k, lgc, lgc-fresh),
    else config.json would record a K the run did not use. With --k auto, K is known only as the
    run goes: check_round_k checks each round then."""
    if not algorithm_entry(cfg.algorithm).waits_for_k or cfg.k_auto:
        return
    for t in range(cfg.warmup_rounds, cfg.rounds):
        k = len(by_round[t].fast)
        check(k == cfg.threshold_k, f"schedule round {t} has K={k} fast workers, run has K={cfg.threshold_k}")


def load_replay(cfg: TrainConfig, schedule: Optional[Sequence[RoundSchedule]] = None) -> Optional[list]:
    """The replayed schedule of a run, one RoundSchedule per round 0..rounds-1 (list index = t):
    `schedule`, else cfg.schedule_file, else None (the timing model decides). Every round is
    checked against N and M (except anytime-minibatch rounds after warm-up, whose A_t and m_j
    come from the deadline), and |A_t| against K (check_replayed_k). UserError, one line, if not."""
    try:
        if schedule is None and cfg.schedule_file:
            schedule = load_schedule(cfg.schedule_file)
        if schedule is None:
            return None
        by_round = {s.round: s for s in schedule}
        check(all(t in by_round for t in range(cfg.rounds)),
              f"replayed schedule lacks rounds (has {len(by_round)}, run needs 0..{cfg.rounds - 1})")
        check_replayed_k(cfg, by_round)
        for t in range(cfg.rounds):
            if algorithm_entry(cfg.algorithm).round_end not in ("deadline", "blocks") or t < cfg.warmup_rounds:
                check_schedule(by_round[t], cfg.n_workers, cfg.blocks)
    except TheoryInputError as e:
        raise UserError(str(e)) from None
    return [by_round[t] for t in range(cfg.rounds)]


# ----------------------------------------------------------------------------- K chosen online
REFIT_FIELDS = ("round", "window_first", "window_last", "clock", "remaining", "pooled", "distinct", "k_before", "k",
                "expected_round_time", "shift", "rate")


def k_controller(cfg: TrainConfig, model_bytes: float):
    """The KController of a --k auto run (theory.adaptive; None otherwise), the same in both
    backends: the bound of the run's algorithm at its step size, with the exact constants of the
    quadratics or those of --k-constants (Problem.from_constants, as optimize-k reads them: delta, mu
    and the Gram matrices, DERIVATION.md 4.7-4.8), for --budget on the run's clock (DERIVATION.md eq. 7.5)."""
    if not cfg.k_auto:
        return None
    from theory.adaptive import AutoK, KController
    from theory.order_stats import CommModel
    from theory.tradeoff import Problem

    try:
        settings = dict(N=cfg.n_workers, M=cfg.blocks, B=cfg.batch_size, timing=make_timing(cfg), h=cfg.straggling_period,
                        semantics=cfg.semantics, comm=CommModel(cfg.comm_alpha, cfg.comm_beta, model_bytes))
        if cfg.k_constants is not None:  # as optimize-k reads them (delta, mu, gram included)
            from theory.constants import read_constants

            c = read_constants(cfg.k_constants)
            check(c.gram is None or len(c.gram[0]) == cfg.n_workers,
                  f"k_constants {cfg.k_constants}: its gram is for N={len(c.gram[0]) if c.gram else 0} workers, the run "
                  f"has N={cfg.n_workers}")
            prob = Problem.from_constants(c, **settings)
        else:  # the quadratics' exact constants (lgc.task.QuadraticTask builds the same problem)
            from lgc.data.synthetic import make_quadratic

            const = make_quadratic(cfg.n_workers, cfg.task.quad_dim, seed=cfg.task.data_seed, h_min=cfg.task.quad_h_min,
                                   h_max=cfg.task.quad_h_max, spread=cfg.task.quad_spread, sigma2=cfg.task.quad_sigma2).constants()
            prob = Problem.from_constants(const, **settings)
        return KController(AutoK(budget=cfg.budget, every=cfg.k_refit, window=cfg.k_window, first=cfg.k_first_fit,
                                 seed=cfg.seed), prob, cfg.algorithm, eta=cfg.lr)
    except TheoryInputError as e:
        raise UserError(str(e)) from None


def round_k(cfg: TrainConfig, controller, warmup: bool) -> int:
    """K of a round: N in warm-up and for full-sync, the controller's choice under --k auto, else cfg's K."""
    if warmup or algorithm_entry(cfg.algorithm).round_end == "all":
        return cfg.n_workers
    return controller.k if controller is not None else cfg.threshold_k


def check_round_k(schedule: RoundSchedule, k: int) -> None:
    """A replayed round under --k auto must have |A_t| = the K the controller chose for it."""
    check(len(schedule.fast) == k, f"schedule round {schedule.round} has K={len(schedule.fast)} fast workers, "
                                   f"--k auto chose K={k} (replay a schedule recorded with the same settings)")


def refit_rows(history) -> list[dict]:
    """refits.csv rows (REFIT_FIELDS; README "File formats"): one per refit of --k auto; shift and
    rate per worker, space-separated; distinct: the workers fitted on their own."""
    return [{"round": h["round"], "window_first": h["window"][0], "window_last": h["window"][1], "clock": h["clock"],
             "remaining": h["remaining"], "pooled": int(h["pooled"]), "distinct": " ".join(map(str, h["distinct"])),
             "k_before": h["k_before"], "k": h["k"], "expected_round_time": h["expected_round_time"],
             "shift": " ".join(f"{v:.6g}" for v in h["shift"]), "rate": " ".join(f"{v:.6g}" for v in h["rate"])}
            for h in history]


def k_auto_summary(controller) -> dict:
    """final.json's record of --k auto: the refits, the K of each and the last K."""
    return {"k_auto": {"refits": len(controller.history), "k_chosen": [h["k"] for h in controller.history],
                       "k_last": int(controller.k), "budget": controller.settings.budget}}


def anytime_deadline(cfg: TrainConfig, timing_model) -> Optional[float]:
    """The anytime-minibatch deadline, shared by both backends: cfg.deadline, or by default the
    expected K-th fastest mini-batch time E[X_(K:N)] (the model's mean where it has no order
    statistic). None for the other algorithms."""
    if algorithm_entry(cfg.algorithm).round_end != "deadline":
        return cfg.deadline
    if cfg.deadline is not None:
        return cfg.deadline
    d = float(timing_model.expected_order_statistic(cfg.threshold_k, cfg.n_workers))
    check(np.isfinite(d), f"anytime-minibatch: the default deadline E[X_(K:N)] of timing {timing_model.name!r} is "
                          f"infinite at K={cfg.threshold_k}, N={cfg.n_workers} (a heavy tail; pareto needs "
                          f"alpha (N - K + 1) > 1); give --deadline or a lighter tail")
    return d


# ----------------------------------------------------------------------------- the round's plan
@dataclass(frozen=True)
class RoundPlan:
    """Which samples each worker contributes (counts, a multiple of b) and each group's
    per-worker weight per sample (numpy float64, length N)."""

    counts: np.ndarray
    per_sample: dict
    rho: float


def round_plan(algorithm: str, fast_mask, blocks_done, pi, batch_size: int, block_size: int, *,
               warmup: bool) -> RoundPlan:
    """The samples and weights each algorithm's rule needs (theory/DERIVATION.md eq. 3.1-3.5).

    full-sync / warm-up: all N*B samples, weight pi_i / B ("all", eq. 3.1);
    fastest-k: the fast workers' samples, w_fast[i] / B ("fast");
    lgc, lgc-fresh: also straggler j's first m_j b samples, w_strag[j] / (m_j b) ("strag", eq. 3.3-3.4);
    anytime-minibatch: worker i's first m_i b samples, w_any[i] / (m_i b) ("any", eq. 3.5);
    rennala: the same on its schedule, 1 / (S b) per sample ("any", eq. 6.2);
    malenia: worker i's B_i b samples, pi_i / (B_i b) ("all", eq. 6.3).
    Rounds that end at a block count (rennala, malenia) have blocks_done[i] = B_i, possibly > M.
    """
    pi = np.asarray(pi, dtype=np.float64)
    n = len(pi)
    blocks_done = np.asarray(blocks_done, dtype=np.int64)
    fast_mask = np.asarray(fast_mask, dtype=bool)
    groups = algorithm_entry(algorithm).groups
    if not warmup and algorithm_entry(algorithm).round_end == "blocks" and "all" in groups:
        done = blocks_done * block_size  # each worker's mean over its B_i blocks, pi-weighted (eq. 6.3)
        return RoundPlan(done, {"all": np.divide(pi, done, out=np.zeros(n), where=done > 0)}, 0.0)
    if warmup or "all" in groups:
        return RoundPlan(np.full(n, batch_size), {"all": pi / batch_size}, 0.0)
    w: Weights = group_weights(fast_mask, blocks_done, pi)
    done = blocks_done * block_size  # samples finished by each worker
    if "any" in groups:
        per = np.divide(w.w_any, done, out=np.zeros(n), where=done > 0)
        return RoundPlan(done, {"any": per}, w.rho)
    counts = np.where(fast_mask, batch_size, 0)
    per = {"fast": w.w_fast / batch_size}
    if "strag" in groups and w.rho > 0:
        counts = np.where(fast_mask, batch_size, done)
        per["strag"] = np.divide(w.w_strag, done, out=np.zeros(n), where=done > 0)
    return RoundPlan(counts, per, w.rho)


def plan_groups(algorithm: str, *, warmup: bool) -> tuple[str, ...]:
    """The gradient groups a round of `algorithm` may need (lgc.rules.aggregate's `grads` keys;
    round_plan's keys are these, less "strag" when no straggler finished a block)."""
    if warmup or algorithm_entry(algorithm).round_end == "all":
        return ("all",)
    return algorithm_entry(algorithm).groups


def local_weight(group: str, *, pi_i: float, fast: bool, m: int, batch_size: int, block_size: int) -> float:
    """Worker i's weight per sample in `group` from what it knows alone (pi_i, whether it is in
    A_t, its m_i), before the group's normaliser: round_plan's per_sample[group][i] is
    local_weight / group_norms()[group] (up to rounding). The dist worker sums these
    unnormalised terms in its one reduction, before it knows A_t, rho_t or sum_i m_i.

      all:   pi_i / B                                   (eq. 3.1; normaliser 1)
      fast:  pi_i / B for i in A_t, else 0              (eq. 3.2; normaliser sum_{A_t} pi)
      strag: pi_j / (m_j b) for stragglers with m_j >= 1 (eq. 3.3-3.4; normaliser rho_t)
      any:   1 / b for m_i >= 1                         (eq. 3.5; normaliser sum_i m_i)
    """
    if group == "all":
        return pi_i / batch_size
    if group == "fast":
        return pi_i / batch_size if fast else 0.0
    if group == "strag":
        return pi_i / (m * block_size) if (not fast and m >= 1) else 0.0
    if group == "any":
        return 1.0 / block_size if m >= 1 else 0.0
    raise ValueError(f"unknown gradient group {group!r}")


def group_norms(fast_mask, blocks_done, pi, *, absent: Sequence[int] = ()) -> dict:
    """Each group's normaliser (see local_weight) once the round's A_t and m_j are known.
    `absent` workers (dead, permanent stragglers in dist) hand their pi share of "all" to the others."""
    pi = np.asarray(pi, dtype=np.float64)
    w = group_weights(np.asarray(fast_mask, dtype=bool), np.asarray(blocks_done, dtype=np.int64), pi)
    return {"all": 1.0 - float(pi[list(absent)].sum()), "fast": float(pi[np.asarray(fast_mask, dtype=bool)].sum()),
            "strag": w.rho, "any": float(np.sum(blocks_done))}


# ----------------------------------------------------------------------------- server state, round record
@dataclass
class RunState:
    """The server state of a run (every dist rank holds a replica): w_t, the momentum buffer,
    LGC's u_{t-1}, the next round and the clock [time units]. A checkpoint holds it (checkpoint()),
    with whatever a backend adds (sim: model buffers, rows, RNG; dist: dead workers)."""

    w: torch.Tensor
    server: ServerState = field(default_factory=ServerState)
    rule: RuleState = field(default_factory=RuleState)
    round: int = 0
    clock: float = 0.0

    def checkpoint(self) -> dict:
        """Tensors on the CPU, copied (the run goes on changing its own)."""
        def cpu(v):
            return None if v is None else v.detach().cpu().clone()

        return {"round": self.round, "clock": self.clock, "w": cpu(self.w), "momentum": cpu(self.server.momentum),
                "u": cpu(self.rule.u)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device) -> "RunState":
        def dev(v):
            return None if v is None else v.to(device)

        return cls(w=ckpt["w"].to(device), server=ServerState(momentum=dev(ckpt.get("momentum"))),
                   rule=RuleState(u=dev(ckpt.get("u"))), round=int(ckpt["round"]), clock=float(ckpt["clock"]))


def round_record(algorithm: str, warmup: bool, schedule: RoundSchedule, *, clock: float, samples: int, rho: float,
                 loss: float, lr: float) -> dict:
    """The round's fields of rounds.csv that both backends fill the same way (the schema above);
    the caller adds round, wall_s, the iterate and test metrics."""
    blocks = np.asarray(schedule.blocks_done)
    strag = blocks.sum() if (algorithm_entry(algorithm).round_end in ("deadline", "blocks") and not warmup) else blocks[~schedule.fast_mask()].sum()
    return {"time": clock, "round_time": schedule.wall, "n_fast": len(schedule.fast), "partial_blocks": int(strag),
            "samples": int(samples), "rho": rho, "loss": loss, "lr": lr, "warmup": int(warmup)}
