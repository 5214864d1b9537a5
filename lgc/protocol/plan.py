"""The round's plan: which workers' samples enter which gradient group with which weights
(theory/DERIVATION.md eq. 3.1-3.5, 6.2-6.3). The dist worker forms the same weights in two steps:
local_weight before its one reduction, group_norms after it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lgc.rules import Weights, group_weights
from theory.algorithms import algorithm as algorithm_entry


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
    Rounds that end at a block count (rennala, malenia) have blocks_done[i] = B_i, possibly > M; in
    any round whose kind counts every worker (theory/round_kinds.py), group "all" is malenia's.
    """
    pi = np.asarray(pi, dtype=np.float64)
    n = len(pi)
    blocks_done = np.asarray(blocks_done, dtype=np.int64)
    fast_mask = np.asarray(fast_mask, dtype=bool)
    groups = algorithm_entry(algorithm).groups
    if not warmup and algorithm_entry(algorithm).counts_every_worker and "all" in groups:
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
    if warmup:  # every warm-up round is full-sync's (full-sync's own groups are ("all",))
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
