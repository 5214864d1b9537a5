"""Which model of the fast set A_t a timing implies, and the inclusion law of A_t (theory/DERIVATION.md
section 4.3, eqs. 4.11, 4.11').

The bounds of theory/bounds.py hold under a set model: "persistent" (any timing: A_t held for the straggling
period), "uniform" (i.i.d. times drawn afresh every round: A_t a uniformly random K-subset, eq. 4.11) or
"independent" (fastest-k: A_t redrawn every round from one fixed law, eq. 4.11', whose inclusion coefficients
set_bias and set_var come from arrival ranks). theory/tradeoff.py picks the model from the timing with these.
"""
from __future__ import annotations

import numpy as np

from theory.timing_model import TimingModel


def set_change_period(timing: TimingModel, h: float) -> float:
    """Rounds between changes of the fast set: never for fixed times, every round when the
    noise is redrawn every round (hold='speed'), else the straggling period h."""
    return timing.set_change_period(h)


def fastest_k_set_model(timing: TimingModel, h: float) -> str:
    """'uniform' (A_t a uniformly random K-subset each round) only for i.i.d. fresh draws
    (the set model of the fastest-k, lgc and lgc-fresh bounds, eqs. 4.11, 4.14', 4.26, 4.32)."""
    return "uniform" if (timing.iid and set_change_period(timing, h) == 1) else "persistent"


def independent_sets(timing: TimingModel, h: float) -> bool:
    """A_t redrawn every round from one fixed law, independent of earlier rounds (the set model
    'independent' of fastest-K, eq. 4.11'): fresh draws every round of a non-i.i.d. model whose
    per-worker speeds never change (or are redrawn every round too)."""
    return not timing.iid and timing.sets_independent(h)  # i.i.d.: the uniform set model instead


def inclusion_coefficients(ranks, ks) -> dict:
    """set_bias = N ||pi/K - 1/N||^2 and set_var = N lambda_max(Cov 1_A)/K^2 of eq. (4.11') for each K,
    from arrival ranks (R rounds, N workers; 0 = first) drawn independently round by round.
    Uniform sets give 0 and (N-K)/(K (N-1)) (eq. 4.11)."""
    ranks = np.asarray(ranks)
    n = ranks.shape[1]
    bias, var = [], []
    for k in np.atleast_1d(ks):
        inc = (ranks < k).astype(float)
        pi = inc.mean(0)
        bias.append(n * float(np.sum((pi / k - 1 / n) ** 2)))
        cov = np.cov(inc, rowvar=False, bias=True) if len(inc) > 1 else np.zeros((n, n))
        var.append(n * float(np.linalg.eigvalsh(np.atleast_2d(cov))[-1]) / k**2)
    return {"set_bias": np.array(bias), "set_var": np.array(var)}


def inclusion_from_timing(timing: TimingModel, n: int, m_blocks: int, h: float, ks, *, rounds: int = 4000,
                          seed: int = 0) -> dict:
    """set_bias and set_var of eq. (4.11') by Monte Carlo over rounds drawn as the trainers draw them
    (each round from its own seed, so the rounds are independent draws of the law of A_t)."""
    x = np.array([timing.block_finish_times(seed + r, 0, n, m_blocks, period=h)[:, -1] for r in range(rounds)])
    ranks = np.argsort(np.argsort(x, axis=1, kind="stable"), axis=1, kind="stable")  # ties by index (eq. 2.1)
    return inclusion_coefficients(ranks, ks)
