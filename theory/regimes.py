"""Where the bound's K* < N: K* over a grid of zeta^2 x budget tau, or of zeta^2 x straggler slowness
(theory/DERIVATION.md section 5, "regimes"), each point one theory.tradeoff.tradeoff.
"""
from __future__ import annotations

import numpy as np

from theory.errors import require
from theory.order_stats import expected_round_times
from theory.timing import ShiftedExponential
from theory.tradeoff import Problem, tradeoff


def regime_map(
    algorithm: str, prob: Problem, *, zeta2_values, budgets=None, slowdowns=None, budget: float | None = None,
    timing_for_slowdown=None, eta: float | None = None, optimize_eta: bool = False, rounds: int | None = None,
    seed: int = 0,
) -> dict:
    """Where K* < N: K* on a grid of zeta^2 x budget tau, or of zeta^2 x straggler slowness.

    budgets: the tau axis (timing from prob). slowdowns: the slowness axis, values s for
    timing_for_slowdown(s) (default: shifted exponential, shift 1, mean extra delay s, i.e.
    rate 1/s), all at one `budget` (default 100 N time units).
    Returns dict(zeta2=..., y=..., y_name=..., k_star=(len(zeta2), len(y)) int array, n=N).
    """
    from dataclasses import replace

    zeta2_values = np.asarray(zeta2_values, dtype=float)
    require((budgets is None) != (slowdowns is None), "give budgets (tau axis) or slowdowns (slowness axis)")
    out = {"zeta2": zeta2_values, "n": prob.N}
    if slowdowns is None:
        budgets = np.asarray(budgets, dtype=float)
        ks_grid = np.zeros((len(zeta2_values), len(budgets)), dtype=int)
        # E[R(K)] depends on neither zeta^2 nor tau: computed once, reused
        rt = expected_round_times(prob.timing, prob.N, prob.M, algorithm, semantics=prob.semantics, comm=prob.comm,
                                  report_latency=prob.report_latency, rounds=rounds, seed=seed, period=prob.h)
        for i, z in enumerate(zeta2_values):
            for j, tau in enumerate(budgets):
                ks_grid[i, j] = tradeoff(algorithm, replace(prob, zeta2=float(z)), budget=float(tau), eta=eta,
                                         optimize_eta=optimize_eta, round_times=rt).k_star
        out.update(y=budgets, y_name="budget", k_star=ks_grid)
        return out
    make = timing_for_slowdown or (lambda s: ShiftedExponential(shift=1.0, rate=1.0 / s))
    slowdowns = np.asarray(slowdowns, dtype=float)
    ks_grid = np.zeros((len(zeta2_values), len(slowdowns)), dtype=int)
    tau = 100.0 * prob.N if budget is None else float(budget)
    require(tau > 0, f"budget={tau} must be > 0")
    for j, s in enumerate(slowdowns):
        p = replace(prob, timing=make(float(s)))
        rt = expected_round_times(p.timing, p.N, p.M, algorithm, semantics=p.semantics, comm=p.comm,
                                  report_latency=p.report_latency, rounds=rounds, seed=seed, period=p.h)
        for i, z in enumerate(zeta2_values):
            ks_grid[i, j] = tradeoff(algorithm, replace(p, zeta2=float(z)), budget=tau, eta=eta,
                                     optimize_eta=optimize_eta, round_times=rt).k_star
    out.update(y=slowdowns, y_name="slowdown", k_star=ks_grid, budget=tau)
    return out
