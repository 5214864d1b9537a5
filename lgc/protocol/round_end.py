"""What ends a round, per algorithm, the same in both backends: the timing model that draws the
workers' times (make_timing), and the parameter of the algorithm's round kind (round_parameter;
theory/round_kinds.py): anytime-minibatch's deadline (anytime_deadline), the block count S of the
rounds that end at one (peer_s; rennala, malenia)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from lgc.config import TrainConfig
from lgc.errors import UserError, check
from theory.algorithms import algorithm as algorithm_entry
from theory.errors import TheoryInputError


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
    """The timing model named in the config (theory.timing_factory.make_timing_model); UserError if its
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


def round_parameter(cfg: TrainConfig, timing_model):
    """The value of the algorithm's round-kind parameter (theory.round_kinds.RoundKind.parameter, a
    TrainConfig field), resolved as the round's schedule needs it: the deadline and S with their
    defaults (anytime_deadline, peer_s), another kind's field as the config gives it; None for the
    kinds without one (all, k)."""
    name = algorithm_entry(cfg.algorithm).round_kind.parameter
    if name == "deadline":
        return anytime_deadline(cfg, timing_model)
    if name == "peer_s":
        return peer_s(cfg)
    return None if name is None else getattr(cfg, name)
