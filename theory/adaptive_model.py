"""The error model's coefficients refitted from a `--k auto` run's own rounds (DERIVATION.md eqs. 7.7-7.9).

The timing law is refitted by theory/adaptive.py (eqs. 7.1-7.4); this module refits what the predictive error
model (theory/predict.py, section 8) needs besides it, from what every round already computes:

* the remaining gap F(w_t) - F* (eq. 7.7), from the training losses the run records (rounds.csv `loss`): F* is
  estimated once, as round 0's loss (a round at K = N over all N B samples, at w_0) minus the constants' Delta,
  and F(w_t) as the mean loss of the rounds since the previous refit;
* the per-sample noise sigma2 and the dissimilarity zeta2 (eqs. 7.8, 7.9), from ||gS_t - gA_t||^2, the squared
  distance between the reporting stragglers' and the fast set's mean gradients (lgc and lgc-fresh compute both
  every round; fastest-k does not, and keeps the constants').

Pure numpy; no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_DEV_ROUNDS = 3  # rounds with reporters a noise / dissimilarity refit needs (fewer: the constants are kept)
MIN_T = 2.0  # standard errors above 0 each coefficient of eq. (7.9) needs, else one common scale (eq. 7.9')


@dataclass(frozen=True)
class Coefficients:
    """The model's inputs for the remaining horizon. gap: F(w_t) - F* (eq. 7.7); f_star: the F* estimate (None
    where the run has no round-0 loss); sigma2, zeta2 (eqs. 7.8-7.9); gap_fit / noise_fit: how each was obtained
    ("loss" or "constants"; "lsq", "scale" or "constants")."""

    gap: float
    f_star: float | None
    sigma2: float
    zeta2: float
    gap_fit: str
    noise_fit: str


def remaining_gap(losses, f_star: float | None, delta0: float) -> tuple[float, str]:
    """eq. (7.7): max(lbar - F*hat, 0), lbar the mean of the finite losses given (the rounds since the previous
    refit); (delta0, "constants") where nothing was measured. The mean lags: while the loss falls it is the loss of
    about half those rounds earlier, so the gap is over-stated by what it fell since (a line through a longer window
    would extrapolate a convex decay below the curve, far worse)."""
    ell = np.asarray(losses, dtype=float)
    ell = ell[np.isfinite(ell)]
    if f_star is None or not np.isfinite(f_star) or len(ell) == 0:
        return float(delta0), "constants"
    return max(float(ell.mean()) - float(f_star), 0.0), "loss"


def deviation_regressors(n_fast: int, blocks, *, N: int, B: int, M: int) -> tuple[float, float] | None:
    """eq. (7.8): E||gS - gA||^2 = zeta2 x_z + sigma2 x_s on the surrogate (8.1)-(8.4) with uniform weights and a
    fast set and reporters exchangeable over the workers: x_z = N/(N-1) (1/K + 1/s) (eq. 8.2' with c = 1_S/s -
    1_A/K), x_s = 1/(K B) + sum_j 1/(m_j b) / s^2 (eq. 8.4). blocks: the stragglers' m_j (those with m_j >= 1
    report, s of them). None where no straggler reported (gS is not formed) or N = 1."""
    m = np.asarray([b for b in blocks if b >= 1], dtype=float)
    s = len(m)
    if s == 0 or N < 2:
        return None
    b = B / M
    return N / (N - 1) * (1.0 / n_fast + 1.0 / s), 1.0 / (n_fast * B) + float(np.sum(1.0 / (m * b))) / s**2


def fit_noise(x_z, x_s, y, *, sigma2: float, zeta2: float) -> tuple[float, float, str]:
    """eq. (7.9): (sigma2, zeta2) from rounds' measured y = ||gS - gA||^2 and their regressors (7.8), by least
    squares with each round weighted by 1 / its expectation under the constants (the spread of a squared norm grows
    with its mean). With fewer than MIN_DEV_ROUNDS rounds, or constants that predict nothing (both 0), the constants
    are kept. Where the window does not determine both (eq. 7.9': either coefficient of the least-squares solution
    is less than MIN_T standard errors above 0, e.g. every round had the same K, reporters and m_j, so the two
    regressors are proportional), only their common scale is fitted, c = mean(y / E_0[y]), and both constants are
    multiplied by it."""
    x_z, x_s, y = (np.asarray(v, dtype=float) for v in (x_z, x_s, y))
    ok = np.isfinite(y) & np.isfinite(x_z) & np.isfinite(x_s)
    x_z, x_s, y = x_z[ok], x_s[ok], y[ok]
    e0 = zeta2 * x_z + sigma2 * x_s
    if len(y) < MIN_DEV_ROUNDS or not np.all(e0 > 0):
        return float(sigma2), float(zeta2), "constants"
    w = 1.0 / e0
    A, b = np.stack([x_s * w, x_z * w], axis=1), y * w
    gram = A.T @ A
    if np.linalg.cond(gram) < 1e12:
        coef = np.linalg.solve(gram, A.T @ b)
        resid = b - A @ coef
        cov = (resid @ resid) / max(len(y) - 2, 1) * np.linalg.inv(gram)
        if np.all(coef >= MIN_T * np.sqrt(np.maximum(np.diag(cov), 0.0))) and np.all(coef > 0):
            return float(coef[0]), float(coef[1]), "lsq"
    c = float(np.mean(b))
    return c * float(sigma2), c * float(zeta2), "scale"
