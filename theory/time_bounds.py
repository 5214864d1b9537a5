"""Time-complexity lower bounds of parallel SGD in the fixed computation model (DERIVATION.md section 6).

Tyurin & Richtarik, "Optimal Time Complexities of Parallel Stochastic Optimization Methods Under a
Fixed Computation Model", NeurIPS 2023 (arXiv:2305.12387). Worker i needs tau_i seconds per
stochastic gradient, tau_1 <= ... <= tau_N; f is L-smooth, Delta = f(x_0) - f*, the gradients
have variance sigma^2, and the goal is E||grad f(x)||^2 <= eps. Up to universal constants, no
zero-respecting method needs less time than

  identical data (eq. 6.4):     min_m (1/m sum_{i<=m} 1/tau_i)^(-1) (L Delta/eps + sigma^2 L Delta/(m eps^2))
  heterogeneous data (eq. 6.5): tau_N L Delta/eps + (1/N sum_i tau_i) sigma^2 L Delta/(N eps^2)

and Rennala SGD (identical) and Malenia SGD (heterogeneous) attain them. The functions below
evaluate the expressions with constant 1: a worst case over the function class, not a floor for
one particular problem (a quadratic can be solved faster). Here a stochastic gradient is one
block of b samples: tau_i = X_i / M and sigma^2 = sigma_sample^2 / b.
"""
from __future__ import annotations

import numpy as np

from theory.errors import require
from theory.timing_model import TimingModel


def _sorted_tau(tau) -> np.ndarray:
    tau = np.sort(np.asarray(tau, dtype=float))
    require(tau.ndim == 1 and tau.size >= 1 and bool(np.all(tau > 0)), f"tau={tau} must be positive times")
    return tau


def _check(L, delta, eps, sigma2):
    require(L > 0 and delta >= 0 and eps > 0 and sigma2 >= 0,
            f"L={L}, Delta={delta}, eps={eps}, sigma^2={sigma2}: need L > 0, Delta >= 0, eps > 0, sigma^2 >= 0")


def identical_data_time(tau, *, L: float, delta: float, eps: float, sigma2: float) -> tuple[float, int]:
    """Eq. 6.4 and its minimizing m (the number of fastest workers worth using)."""
    _check(L, delta, eps, sigma2)
    tau = _sorted_tau(tau)
    m = np.arange(1, tau.size + 1)
    speed = np.cumsum(1.0 / tau) / m  # 1/m sum_{i<=m} 1/tau_i
    vals = (L * delta / eps + sigma2 * L * delta / (m * eps**2)) / speed
    k = int(np.argmin(vals))
    return float(vals[k]), k + 1


def heterogeneous_data_time(tau, *, L: float, delta: float, eps: float, sigma2: float) -> float:
    """Eq. 6.5."""
    _check(L, delta, eps, sigma2)
    tau = _sorted_tau(tau)
    n = tau.size
    return float(tau[-1] * L * delta / eps + tau.mean() * sigma2 * L * delta / (n * eps**2))


def rennala_collect_time(tau, s: int) -> float:
    """Time until S block gradients arrive when every worker restarts at the step (eq. 6.6):
    the smallest t with sum_i floor(t / tau_i) >= S, exact for fixed times."""
    tau = _sorted_tau(tau)
    require(s >= 1, f"S={s} must be >= 1")
    # candidates: the q-th finish of worker i, q <= S; the answer is the S-th smallest
    times = (np.arange(1, s + 1)[None, :] * tau[:, None]).ravel()
    return float(np.partition(times, s - 1)[s - 1])


def rennala_collect_bound(tau, s: int) -> float:
    """The paper's bound on it, min_m (sum_{i<=m} 1/tau_i)^(-1) (S + m) (eq. 6.6'), >= rennala_collect_time."""
    tau = _sorted_tau(tau)
    m = np.arange(1, tau.size + 1)
    return float(np.min((s + m) / np.cumsum(1.0 / tau)))


def block_times(model: TimingModel, n_workers: int, m_blocks: int) -> tuple[np.ndarray, str]:
    """Per-block times tau_(1) <= ... <= tau_(N) of a timing model and how they were obtained.

    A model that draws the same times every round (deterministic): X_i / M, exact (the paper's
    fixed computation model). Any other: E[X_(i:N)] / M by the model's own route (closed form,
    integration or Monte Carlo). Plugging expected order statistics into eq. 6.4-6.5 is a
    heuristic: the bounds are proved for fixed times only. Returns (tau, method)."""
    if model.fixed_times() and model.periods() == 1:
        return np.sort(model.block_finish_times(0, 0, n_workers, 1)[:, 0]) / m_blocks, "exact"
    x = model.expected_order_statistics(np.arange(1, n_workers + 1), n_workers)
    return np.asarray(x) / m_blocks, f"expected order statistics, {model.order_statistic_route} (heuristic)"
