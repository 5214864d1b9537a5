"""The initial error per curvature band, calibrated on the first full-sync steps (DERIVATION.md 8.3, eq. 8.10').

Eq. (8.10) splits Delta over the bands from the gradient's spectral measure at w_0, Delta_j ~ ||g||^2 sum tau_k /
(2 theta_k): exact on a quadratic, but on a network the smallest Ritz values (clamped at L 4^-(J+1)) blow 1/theta
up. Here the split is fitted instead on a short run of full-sync SGD steps (the trajectory `lgc estimate` already
runs): under the surrogate (8.1)-(8.5), plain SGD at step eta on batches of n samples has the expected loss gap

    E[F(w_t)] - F* = sum_j Delta_j r_j^t + sum_j (h_j / 2) eta^2 (sigma2_j / n) (1 - r_j^t) / (1 - r_j),
    r_j = (1 - eta h_j)^2,                                                                        (8.10')

so the measured decrease F(w_0) - F(w_t) plus the noise term is linear in the Delta_j, with columns 1 - r_j^t.
Fitted by nonnegative least squares with the total tied to the scalar Delta (sum_j Delta_j = Delta; F* is the
scalar estimate's). A band whose error the trajectory would barely remove (1 - r_j^T < SEEN) is seen only
through its slope 2 eta h_j Delta_j, which cannot tell Delta_j from h_j: such bands share one amount, split
among them in (8.10)'s proportions. The fit is used when it is informative (MIN_STEPS steps, a band seen, the
fit explaining at least MIN_R2 of the curve's variance); otherwise (8.10) stands. Pure numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from theory.errors import require

MIN_STEPS = 5  # trajectory steps below which the curve is not fitted
SEEN = 0.5  # a band is fitted on its own when the trajectory would remove at least this share of its error
MIN_R2 = 0.5  # the fit must explain at least this share of the measured curve's variance (about its mean)
MAX_BANDS = 12  # the exact NNLS enumerates the 2^J supports
DELTA_SPLITS = ("fit", "spectrum")  # eq. (8.10') where informative (else 8.10), or (8.10) always


@dataclass(frozen=True)
class DeltaSplit:
    """Both splits of Delta over the bands and which one the model uses ("fit": eq. 8.10', "spectrum": 8.10).

    delta: the split used; spectrum: (8.10)'s; fit: (8.10')'s (None when it could not be computed);
    seen: per band, fitted on its own (else one of the slow bands sharing the remainder); r2: the fit's share
    of the curve's variance; reason: why this split is used."""

    delta: tuple
    used: str
    spectrum: tuple
    fit: tuple | None
    seen: tuple
    r2: float | None
    reason: str

    def to_json(self) -> dict:
        """The constants JSON's bands["delta_split"] (theory/constants.py)."""
        return {"used": self.used, "spectrum": list(self.spectrum), "fit": None if self.fit is None else list(self.fit),
                "seen": list(self.seen), "r2": self.r2, "reason": self.reason}


def shares(x) -> np.ndarray:
    """x's proportions (x / sum x), equal ones when x sums to zero or less."""
    x = np.asarray(x, float)
    return x / x.sum() if x.sum() > 0 else np.full(len(x), 1.0 / len(x))


def decay_columns(h, eta: float, steps: int) -> np.ndarray:
    """(steps + 1, J): 1 - r_j^t for t = 0..steps, r_j = (1 - eta h_j)^2, the share of band j's initial error that
    noiseless gradient descent has removed after t steps (eq. 8.10')."""
    r = (1.0 - eta * np.asarray(h, float)) ** 2
    return 1.0 - r[None, :] ** np.arange(steps + 1)[:, None]


def noise_term(h, eta: float, sigma2_bands, samples: float, steps: int) -> np.ndarray:
    """(steps + 1,): the expected loss the step noise adds after t steps, sum_j (h_j / 2) eta^2 (sigma2_j / samples)
    sum_{k<t} r_j^k (eq. 8.10'; the noise part of (8.6) with full-sync steps, no momentum)."""
    h = np.asarray(h, float)
    r = (1.0 - eta * h) ** 2
    t = np.arange(steps + 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        geo = np.where(np.isclose(r, 1.0), t * 1.0, (1.0 - r[None, :] ** t) / (1.0 - r[None, :]))
    return (h / 2 * eta**2 * np.asarray(sigma2_bands, float) / samples * geo).sum(1)


def nnls_sum(C: np.ndarray, y: np.ndarray, total: float) -> np.ndarray:
    """argmin ||C x - y||^2 over x >= 0 with sum x = total, exactly: the optimum's support S is one of the 2^k - 1
    nonempty ones, where x_S solves the equality-constrained least squares (its KKT system)."""
    k = C.shape[1]
    require(1 <= k <= MAX_BANDS, f"nnls_sum: {k} unknowns; 1 to {MAX_BANDS} supported")
    best, best_res = None, np.inf
    for size in range(1, k + 1):
        for S in combinations(range(k), size):
            Cs = C[:, S]
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size], kkt[:size, size], kkt[size, :size] = 2 * Cs.T @ Cs, 1.0, 1.0
            sol = np.linalg.lstsq(kkt, np.concatenate([2 * Cs.T @ y, [total]]), rcond=None)[0][:size]
            if np.any(sol < -1e-12 * max(abs(total), 1e-300)):
                continue
            x = np.zeros(k)
            x[list(S)] = np.maximum(sol, 0.0)
            res = float(np.sum((C @ x - y) ** 2))
            if res < best_res * (1 - 1e-12):
                best, best_res = x, res
    return best


def fit_delta_split(losses, *, eta: float, h, spectrum, sigma2_bands, samples: float, Delta: float,
                    prefer: str = "fit") -> DeltaSplit:
    """Delta's split over the bands fitted on the losses F(w_0), ..., F(w_T) of full-sync SGD (eq. 8.10').

    Args:
      losses: F at the trajectory's T + 1 points (the full objective, not the batches').
      eta, samples: the trajectory's step size and the samples per step (1 / sum_i pi_i^2 / b_i).
      h: the bands' curvatures; spectrum: (8.10)'s split (any scale: only its proportions are used);
      sigma2_bands: the per-sample noise variance per band (the scalar sigma2 times the bands' shares).
      Delta: the total (F(w_0) - F*, the scalar estimate).
      prefer: "fit" (use the fit where it is informative) or "spectrum" (record the fit, use 8.10).
    Returns a DeltaSplit whose amounts sum to Delta."""
    require(prefer in DELTA_SPLITS, f"delta split {prefer!r} must be one of {', '.join(DELTA_SPLITS)}")
    h = np.asarray(h, float)
    J = len(h)
    require(1 <= J <= MAX_BANDS, f"{J} bands; the fit supports 1 to {MAX_BANDS}")
    spec = Delta * shares(spectrum)
    losses = np.asarray(losses, float)
    T = len(losses) - 1

    def result(fit, seen, r2, reason):
        used = "fit" if fit is not None and reason == "" and prefer == "fit" else "spectrum"
        if reason == "":
            reason = ("fitted on the trajectory" if used == "fit" else "fitted, but the spectrum split was asked for")
        delta = fit if used == "fit" else spec
        return DeltaSplit(tuple(map(float, delta)), used, tuple(map(float, spec)),
                          None if fit is None else tuple(map(float, fit)), tuple(map(bool, seen)),
                          None if r2 is None else float(r2), reason)

    cols = decay_columns(h, eta, max(T, 0))  # (T + 1, J); its last row: the share each band loses in T steps
    seen = cols[-1] >= SEEN
    if T < MIN_STEPS or not np.all(np.isfinite(losses)):
        return result(None, seen, None, f"{T} trajectory steps with finite losses; the fit needs >= {MIN_STEPS}")
    if not Delta > 0:
        return result(None, seen, None, f"Delta={Delta:.6g}: nothing to split")
    if not seen.any():
        return result(None, seen, None, f"no band loses {SEEN:g} of its error in {T} steps at eta={eta:.6g}")
    y = losses[0] - losses + noise_term(h, eta, sigma2_bands, samples, T)  # sum_j Delta_j (1 - r_j^t) (8.10')
    slow = ~seen
    design = [cols[:, j] for j in np.flatnonzero(seen)]
    if slow.any():  # the slow bands share one amount in (8.10)'s proportions
        p = shares(spec[slow])
        design.append(cols[:, slow] @ p)
    C = np.stack(design, 1)
    x = nnls_sum(C, y, Delta)
    fit = np.zeros(J)
    fit[seen] = x[: seen.sum()]
    if slow.any():
        fit[slow] = x[-1] * p
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((C @ x - y) ** 2)) / ss if ss > 0 else None
    if r2 is None or r2 < MIN_R2:
        return result(fit, seen, r2, f"the fit explains {0 if r2 is None else r2:.2f} < {MIN_R2:g} of the curve")
    return result(fit, seen, r2, "")
