"""The held-out term of the error model (DERIVATION.md eq. 8.14): the predicted held-out loss at the budget.

The error model (theory/predict.py) predicts the training objective's gap F(w_T) - F* per K. The loss a user
measures (the trainer's test loss) is F(w_T) plus an excess that grows as the model fits its training data, and
that excess follows the training objective reached, not the epochs or rounds (paper_figures/heldout_dev.py). The
constants JSON's optional "heldout" record (`lgc estimate`, lgc/heldout.py) holds a pilot run (full-sync SGD at
step lr, B_p samples per worker) with its measured F(w_p) and held-out loss at checkpoints of s_p steps. Eq. (8.14)
reads both at the pilot's point of equal *predicted* progress: the model predicts the pilot's own gap at each
checkpoint, z_p = Delta - gap_pilot(s_p) (its predicted decrease of F), and each K's, x(K) = Delta - gap(K); then

    heldout(K) = F_pilot(x(K)) + g(x(K)),

F_pilot the pilot's measured F interpolated on the z_p (linear), g its excess heldout_p - F(w_p) fitted
non-decreasing on the z_p (pool adjacent violators). So the model ranks progress and the pilot says what that
progress measures; the model's absolute level (a surrogate quadratic's F*) does not enter. Beyond the last
checkpoint F continues by the model's own further decrease (F_last - (x - z_last)) and g by its last slope, up to
x = Delta (F cannot fall below F*: the continuation stays bounded); below the first checkpoint (x < 0: a K predicted
to end above F(w_0)) F rises by the model's amount and g stays at its first value (a K that makes no progress on F
gains no excess from fitting it). Pure numpy; no torch.
"""
from __future__ import annotations

import math

import numpy as np

from theory.errors import require

HELDOUT_KEY = "heldout"  # the constants JSON's optional record
HELDOUT_STEPS = 200  # `lgc estimate`'s default pilot length (steps): the K* check's runs take tens to ~150 rounds
CURVE_FIELDS = ("train", "heldout", "steps")  # required: F(w_p), the held-out loss, the pilot's steps s_p
SCALAR_FIELDS = ("lr", "batch_per_worker")  # required: the pilot's step size and samples per worker a step
OPTIONAL_FIELDS = ("epochs", "excess")  # optional: one number per checkpoint each


def validate_heldout(r, source: str) -> None:
    """A "heldout" record: an object with train, heldout and steps (>= 2 finite numbers each, equal lengths, steps
    increasing from 0), lr > 0 and batch_per_worker >= 1, optional epochs and excess of the same length, and any
    other descriptive keys (method, data)."""
    if r is None:
        return
    what = (f"{source}: {HELDOUT_KEY} must be an object with lists {', '.join(CURVE_FIELDS)} of >= 2 finite numbers "
            f"and numbers {', '.join(SCALAR_FIELDS)}")
    require(isinstance(r, dict) and all(isinstance(r.get(k), (list, tuple)) for k in CURVE_FIELDS), what)
    n = len(r["train"])
    for k in CURVE_FIELDS + OPTIONAL_FIELDS:
        v = r.get(k)
        if v is None and k in OPTIONAL_FIELDS:
            continue
        require(isinstance(v, (list, tuple)) and len(v) == n and n >= 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v),
            f"{what}; {HELDOUT_KEY}.{k} has {len(v) if isinstance(v, (list, tuple)) else v!r} entries "
            f"(need {max(n, 2)} finite numbers)")
    steps = r["steps"]
    require(steps[0] == 0 and all(b > a for a, b in zip(steps, steps[1:])),
            f"{source}: {HELDOUT_KEY}.steps={list(steps)} must start at 0 and increase")
    for k, low in (("lr", 0), ("batch_per_worker", 1)):
        v = r.get(k)
        require(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= low
                and (v > 0 if k == "lr" else True),
                f"{source}: {HELDOUT_KEY}.{k}={v!r} must be a finite number {'> 0' if k == 'lr' else '>= 1'}")


def isotonic(y) -> np.ndarray:
    """The non-decreasing least-squares fit to y (equal weights): pool adjacent violators."""
    blocks = []  # [mean, count]
    for v in np.asarray(y, float):
        blocks.append([v, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    return np.concatenate([np.full(c, m) for m, c in blocks])


def _knots(z, values):
    """The distinct increasing z and the mean of the values at each (equal z averaged)."""
    z = np.asarray(z, float)
    order = np.argsort(z, kind="stable")
    zs, inv = np.unique(z[order], return_inverse=True)
    return zs, np.bincount(inv, weights=np.asarray(values, float)[order]) / np.bincount(inv)


def predicted_heldout(record: dict, gap, pilot_gap, Delta: float, fit_shift=None) -> tuple[np.ndarray, np.ndarray,
                                                                                            np.ndarray]:
    """(held-out loss, excess g, training objective F) per K of eq. (8.14).

    gap: the model's predicted F(w_T) - F* per K; pilot_gap: its predicted gap of the record's pilot at each of its
    checkpoints (full-sync at the record's lr and batch_per_worker, the record's steps); Delta as the model used it;
    fit_shift: per K, <abar_run, e_T> (theory/predict.py Prediction.fit_shift, eq. 8.14'): g is read at the decrease of
    the objective the rule's directions fit, x - fit_shift (None: 0, the fitted objective is F)."""
    train, held = np.asarray(record["train"], float), np.asarray(record["heldout"], float)
    z = Delta - np.asarray(pilot_gap, float)
    zs, f = _knots(z, train)
    _, ex = _knots(z, held - train)
    g_fit = isotonic(ex)
    x = Delta - np.asarray(gap, float)
    F = np.interp(x, zs, f)
    F = np.where(x > zs[-1], f[-1] - (x - zs[-1]), np.where(x < zs[0], f[0] - (x - zs[0]), F))
    xf = x - (0.0 if fit_shift is None else np.nan_to_num(np.asarray(fit_shift, float)))  # eq. (8.14')
    g = np.interp(xf, zs, g_fit)  # flat outside the knots
    if len(zs) >= 2:
        slope = (g_fit[-1] - g_fit[-2]) / (zs[-1] - zs[-2])
        beyond = np.clip(xf, zs[-1], max(float(Delta), zs[-1])) - zs[-1]
        g = np.where(xf > zs[-1], g_fit[-1] + slope * beyond, g)
    return F + g, g, F


def beyond_pilot(gap, pilot_gap, fit_shift=None) -> np.ndarray:
    """Whether each K's predicted progress, of F or of its fitted objective (8.14'), lies beyond the pilot's largest
    (eq. 8.14 read on its continuation, not on a measurement)."""
    gap = np.asarray(gap, float)
    fit = gap + (0.0 if fit_shift is None else np.nan_to_num(np.asarray(fit_shift, float)))
    return np.minimum(gap, fit) < float(np.min(pilot_gap))
