"""The round protocol both backends share (`sim`: lgc.sim, `dist`: lgc.dist).

A round t of a run: the timing model (make_timing) or a replayed schedule file (load_replay)
gives the schedule (A_t, every m_j, R_t); round_plan says which workers' samples enter which
gradient group with which weights; lgc.rules aggregates; the round's record is one row of
rounds.csv (ROUND_FIELDS). Anytime-minibatch rounds end at a deadline (anytime_deadline).

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

from dataclasses import dataclass
from typing import Optional

import numpy as np

from lgc.config import TrainConfig
from lgc.errors import check
from lgc.rules import Weights

ROUND_FIELDS = ("round", "time", "round_time", "wall_s", "n_fast", "blocks", "samples", "rho", "loss", "lr",
                "warmup", "test_loss", "test_acc", "grad_norm2", "dist_opt", "f_gap")
RUN_KIND = "train"


def make_timing(cfg: TrainConfig):
    """The timing model named in the config (theory.timing.make_timing_model)."""
    from theory.timing import make_timing_model

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


# ----------------------------------------------------------------------------- the round's plan
@dataclass(frozen=True)
class RoundPlan:
    """Which samples each worker contributes (counts, a multiple of b) and each group's
    per-worker weight per sample (numpy float64, length N)."""

    counts: np.ndarray
    per_sample: dict
    rho: float


def round_plan(algorithm: str, fast_mask, blocks, pi, batch_size: int, block_size: int, *, warmup: bool) -> RoundPlan:
    """The samples and weights each algorithm's rule needs (SPEC section 3).

    full-sync / warm-up: all N*B samples, weight pi_i / B ("all", eq. 3.1);
    fastest-k: the fast workers' samples, w_fast[i] / B ("fast");
    lgc, lgc-fresh: also straggler j's first m_j b samples, w_strag[j] / (m_j b) ("strag", eq. 3.3-3.4);
    anytime-minibatch: worker i's first m_i b samples, w_any[i] / (m_i b) ("any", eq. 3.5).
    """
    from lgc.rules import group_weights

    pi = np.asarray(pi, dtype=np.float64)
    n = len(pi)
    blocks = np.asarray(blocks, dtype=np.int64)
    fast_mask = np.asarray(fast_mask, dtype=bool)
    if warmup or algorithm == "full-sync":
        return RoundPlan(np.full(n, batch_size), {"all": pi / batch_size}, 0.0)
    w: Weights = group_weights(fast_mask, blocks, pi)
    done = blocks * block_size  # samples finished by each worker
    if algorithm == "anytime-minibatch":
        per = np.divide(w.w_any, done, out=np.zeros(n), where=done > 0)
        return RoundPlan(done, {"any": per}, w.rho)
    counts = np.where(fast_mask, batch_size, 0)
    per = {"fast": w.w_fast / batch_size}
    if algorithm in ("lgc", "lgc-fresh") and w.rho > 0:
        counts = np.where(fast_mask, batch_size, done)
        per["strag"] = np.divide(w.w_strag, done, out=np.zeros(n), where=done > 0)
    return RoundPlan(counts, per, w.rho)
