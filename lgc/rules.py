"""Aggregation rules as pure functions, shared by every backend.

The rules: README "Algorithms"; their equations: theory/DERIVATION.md section 3.

A backend turns a round's schedule into per-worker weights (`group_weights`), computes the
weighted gradient means gA_t and gS_t however it likes (one batched pass in `sim`, an
all-reduce in `dist`, a loop in the tests), and calls `aggregate` for the direction d_t.
`server_step` applies d_t with optional momentum and weight decay, the same for all.
Equation numbers refer to theory/DERIVATION.md, section 3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from theory.algorithms import algorithm as algorithm_entry


class RuleState(NamedTuple):
    """State carried across rounds: u_{t-1}, LGC's compensation made last round (eq. 3.3)."""

    u: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class Weights:
    """Per-worker weights of one round (numpy, length N).

    w_fast[i] = pi_i / sum_{A_t} pi for i in A_t, else 0            (gA_t is sum_i w_fast[i] g_i)
    w_strag[j] = pi_j / rho_t for stragglers with m_j >= 1, else 0  (gS_t is sum_j w_strag[j] gp_j)
    rho = sum of pi_j over stragglers with m_j >= 1                    (eq. 3.2)
    w_any[i] = m_i / sum_i m_i  (anytime-minibatch: sample-weighted over finished blocks)
    """

    w_fast: np.ndarray
    w_strag: np.ndarray
    rho: float
    w_any: np.ndarray


def group_weights(fast_mask, blocks_done, pi) -> Weights:
    fast_mask = np.asarray(fast_mask, dtype=bool)
    blocks_done = np.asarray(blocks_done, dtype=np.int64)
    pi = np.asarray(pi, dtype=np.float64)
    pa = float(pi[fast_mask].sum())
    w_fast = np.where(fast_mask, pi / pa, 0.0) if pa > 0 else np.zeros_like(pi)
    reporting = (~fast_mask) & (blocks_done >= 1)
    rho = float(pi[reporting].sum())
    w_strag = np.where(reporting, pi / rho, 0.0) if rho > 0 else np.zeros_like(pi)
    total = blocks_done.sum()
    w_any = blocks_done / total if total > 0 else np.zeros_like(pi)
    return Weights(w_fast=w_fast, w_strag=w_strag, rho=rho, w_any=w_any)


def full_sync(g_all: torch.Tensor) -> torch.Tensor:
    """d_t = sum_i pi_i g_i(w_t) (eq. 3.1). Its own code path: the K = N reduction of lgc is a test."""
    return g_all


def fastest_k(g_fast: torch.Tensor) -> torch.Tensor:
    """d_t = gA_t: the stragglers' work is dropped (K-sync SGD, Dutta et al. 2018)."""
    return g_fast


def _per_row(rho, g: torch.Tensor):
    """rho_t as a float, or a tensor of one rho_t per leading row of g (a batch of runs),
    shaped to broadcast over g's trailing dimensions."""
    if isinstance(rho, torch.Tensor):
        return rho.to(dtype=g.dtype, device=g.device).reshape(rho.shape + (1,) * (g.dim() - rho.dim()))
    return rho


def _where_reported(rho, value: torch.Tensor, default: torch.Tensor) -> torch.Tensor:
    """value where rho_t > 0 (some straggler finished a block), else default, row by row."""
    if isinstance(rho, torch.Tensor):
        return torch.where(rho > 0, value, default)
    return value if rho != 0.0 else default


def lgc(g_fast: torch.Tensor, g_strag: Optional[torch.Tensor], rho, state: RuleState):
    """LGC-SGD (Xu et al., INFOCOM 2021): d_t = gA_t + u_{t-1}, u_t = rho_t (gS_t - gA_t) (eq. 3.3).

    u_{-1} = 0; u_t = 0 if no straggler finished a block (rho_t = 0). rho: a float, or a tensor
    with one rho_t per leading row of the gradients (a batch of runs, as in lgc.validate).
    Returns (d_t, new_state).
    """
    d = g_fast if state.u is None else g_fast + state.u
    zeros = torch.zeros_like(g_fast)
    if g_strag is None:
        return d, RuleState(u=zeros)
    rho = _per_row(rho, g_fast)
    return d, RuleState(u=_where_reported(rho, rho * (g_strag - g_fast), zeros))


def lgc_fresh(g_fast: torch.Tensor, g_strag: Optional[torch.Tensor], rho) -> torch.Tensor:
    """Ablation: the server waits for the partial reports, d_t = (1-rho_t) gA_t + rho_t gS_t (eq. 3.4).
    rho: a float, or one per leading row, as in `lgc`."""
    if g_strag is None:
        return g_fast
    rho = _per_row(rho, g_fast)
    return _where_reported(rho, (1.0 - rho) * g_fast + rho * g_strag, g_fast)


def anytime_minibatch(g_any: torch.Tensor) -> torch.Tensor:
    """All blocks finished by the deadline, sample-weighted (Ferdinand et al., ICLR 2019; eq. 3.5)."""
    return g_any


# One rule per algorithm of the table (theory/algorithms.py), one signature for all:
# (grads, rho, state) -> (d_t, new_state); `grads` holds the groups the entry names.
def rennala(g_any: torch.Tensor) -> torch.Tensor:
    """Rennala SGD (Tyurin & Richtarik, NeurIPS 2023): d_t = (1/S) sum of the S block gradients
    that arrived first, from whichever workers (eq. 6.2): the sample-weighted mean of eq. 3.5."""
    return g_any


def malenia(g_all: torch.Tensor) -> torch.Tensor:
    """Malenia SGD (same paper): d_t = sum_i pi_i (mean of worker i's B_i block gradients) (eq. 6.3)."""
    return g_all


class Rule(NamedTuple):
    """An aggregation rule as an object, in the manner of optax's GradientTransformation:

      state = rule.init()                          # before round 0 (and after warm-up rounds)
      d_t, state = rule.update(grads, rho, state)  # one round

    grads: {group: flat gradient mean} for the groups of the table entry named `kind`
    (theory/algorithms.py: "all", "fast", "strag", "any"; lgc.protocol.round_plan); rho: rho_t.
    `kind` is the table entry whose round structure the rule runs (what ends a round, which
    groups it reads, the messages it costs): a user's own rule picks one of the table's names.
    The state is a RuleState (u: one carried tensor or None): what a checkpoint holds.
    """

    init: Callable[[], RuleState]
    update: Callable[[dict, object, RuleState], tuple]
    kind: str


RULES = {
    "full-sync": Rule(RuleState, lambda g, rho, state: (full_sync(g["all"]), RuleState()), "full-sync"),
    "fastest-k": Rule(RuleState, lambda g, rho, state: (fastest_k(g["fast"]), state), "fastest-k"),
    "lgc": Rule(RuleState, lambda g, rho, state: lgc(g["fast"], g.get("strag"), rho, state), "lgc"),
    "lgc-fresh": Rule(RuleState, lambda g, rho, state: (lgc_fresh(g["fast"], g.get("strag"), rho), state), "lgc-fresh"),
    "anytime-minibatch": Rule(RuleState, lambda g, rho, state: (anytime_minibatch(g["any"]), state),
                              "anytime-minibatch"),
    "rennala": Rule(RuleState, lambda g, rho, state: (rennala(g["any"]), state), "rennala"),
    "malenia": Rule(RuleState, lambda g, rho, state: (malenia(g["all"]), state), "malenia"),
}


def as_rule(rule) -> Rule:
    """The Rule of an algorithm name (the table's, RULES) or a Rule itself, its kind checked
    (TheoryInputError, a ValueError, names the valid algorithms)."""
    if isinstance(rule, str):
        algorithm_entry(rule)
        return RULES[rule]
    if not isinstance(rule, Rule):
        raise TypeError(f"a rule is an algorithm name or an lgc.rules.Rule, not {type(rule).__name__}")
    algorithm_entry(rule.kind)
    return rule


def aggregate(algorithm, grads: dict, rho, state: RuleState, *, warmup: bool = False):
    """The direction d_t of `algorithm` (a name of the table or a Rule) from the round's gradient means.

    grads holds the groups the algorithm's table entry names (theory/algorithms.py): "all"
    (full-sync and warm-up rounds), "fast" and "strag", "any". rho: a float, or a tensor of
    one rho_t per leading row of the gradients. During warm-up every algorithm runs full-sync
    and the rule's state is reset (no compensation carries out of warm-up). Returns (d_t, new_state).
    """
    rule = as_rule(algorithm)
    if warmup:
        return full_sync(grads["all"]), rule.init()
    return rule.update(grads, rho, state)


class ServerState(NamedTuple):
    """Momentum buffer of the server's SGD (None before the first step)."""

    momentum: Optional[torch.Tensor] = None


def server_step(
    w: torch.Tensor, d: torch.Tensor, state: ServerState, *, lr: float, momentum: float = 0.0,
    weight_decay: float = 0.0,
):
    """w_{t+1} = w_t - eta v_{t+1}, v_{t+1} = mu v_t + d_t + lambda w_t (heavy ball, as torch.optim.SGD).

    With mu = 0 and lambda = 0 this is plain SGD, w_{t+1} = w_t - eta d_t (eq. 3.6).
    Returns (w_{t+1}, new_state); `w` is not modified.
    """
    g = d if weight_decay == 0.0 else d + weight_decay * w
    if momentum != 0.0:
        v = g if state.momentum is None else momentum * state.momentum + g
        state = ServerState(momentum=v)
        g = v
    return w - lr * g, state
