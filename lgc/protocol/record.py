"""The round's record: the row of rounds.csv both backends write (ROUND_FIELDS), and the run kind of the cache.

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

import numpy as np

from theory.algorithms import algorithm as algorithm_entry
from theory.schedule import RoundSchedule

ROUND_FIELDS = ("round", "time", "round_time", "wall_s", "n_fast", "partial_blocks", "samples", "rho", "loss", "lr",
                "warmup", "test_loss", "test_acc", "grad_norm2", "dist_opt", "f_gap")
RUN_KIND = "train"


def round_record(algorithm: str, warmup: bool, schedule: RoundSchedule, *, clock: float, samples: int, rho: float,
                 loss: float, lr: float) -> dict:
    """The round's fields of rounds.csv that both backends fill the same way (the schema above);
    the caller adds round, wall_s, the iterate and test metrics."""
    blocks = np.asarray(schedule.blocks_done)
    strag = blocks.sum() if (algorithm_entry(algorithm).counts_every_worker and not warmup) else blocks[~schedule.fast_mask()].sum()
    return {"time": clock, "round_time": schedule.wall, "n_fast": len(schedule.fast), "partial_blocks": int(strag),
            "samples": int(samples), "rho": rho, "loss": loss, "lr": lr, "warmup": int(warmup)}
