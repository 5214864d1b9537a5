"""The recommended (predictive) K* on the K* check's quadratics (paper_figures/kstar_check.py): a grading.

Per cell, the error model (theory/predict.py, DERIVATION.md section 8) runs through the call `lgc optimize-k`
makes (theory.predict_k.recommend on the bound's trade-off: the same T(K) = floor(tau / E[R(K)]) and step sizes,
plain SGD, no warm-up) in two variants:

  scalar: the scalar constants alone (L, sigma2, zeta2, Delta, and mu where the bound has it), as optimize-k without
          bands: the prior spectrum of theory.predict.Bands.prior (DERIVATION.md eqs. 8.12, 8.13);
  bands:  the quadratic's exact curvature bands, F's Hessian diag(hbar) grouped as `lgc estimate` groups its
          Ritz values (lgc/spectrum.py: bands a factor 4 apart below L, eq. 8.9), with each band's exact share
          of Delta (sum of hbar_k (w0_k - w*_k)^2 / 2, eq. 8.10), of sigma^2 (the noise is isotropic: the band's
          coordinates / d) and of zeta^2 (the per-coordinate terms of the box supremum the constants use, eq. 8.11),
          each worker's own curvature per band (its Hessian's diagonal weighted as F's, eq. 8.5''a: "workers"),
          and the workers' Gram matrix of those same terms (exact_gram: the deviations a_ik at the end of the box
          where coordinate k's zeta^2 term is attained; eq. 8.2''), as `lgc estimate`'s constants carry one.

The model predicts both quantities, the final loss gap (eq. 8.7, optimize-k's criterion) and the mean
||grad F||^2 over the rounds (eq. 8.8); each is graded on the measurement of the same quantity. The model is not
tuned here: this module only calls it.
"""
from __future__ import annotations

import numpy as np

VARIANTS = ("scalar", "bands")
CURVATURES = True  # the bands variant with the workers' own curvatures (eq. 8.5''); False: F's shared Hessian (8.2'')
QUANTITIES = ("grad2", "gap")  # eq. 8.8 (the grid's bound quantity) and eq. 8.7 (optimize-k's criterion)


def exact_bands(prob, margin, per_worker: bool = False) -> dict:
    """The constants JSON's "bands" (theory/constants.py) of a kstar_sim.Quadratic, exact: F's eigenvalues hbar_k
    (coordinate k) in lgc estimate's bands, each band's curvature the mean of its eigenvalues weighted by their
    normalised shares of Delta, sigma^2 and zeta^2 (as lgc/spectrum.py weighs Ritz values); empty bands dropped;
    per_worker: also "workers", each worker's curvature per band (its diagonal Hessian entries weighted the same way,
    eq. 8.5''a), and zeta^2's shares those of the deviations at w* (8.5''a: the curvatures carry the rest)."""
    h = prob.hbar
    delta = 0.5 * h * (prob.w0 - prob.w_star) ** 2  # F(w_0) - F* per coordinate (F's Hessian is diag(hbar))
    sigma2 = np.full(prob.d, prob.sigma2 / prob.d)  # kstar_sim's per-sample noise: N(0, sigma^2/d I_d)
    zeta2 = (deviations_at_optimum(prob) ** 2).mean(0) if per_worker else prob.zeta2_per_coordinate(margin)
    idx = band_index(prob)
    weight = sum(v / v.sum() for v in (delta, sigma2, zeta2) if v.sum() > 0)
    out = {"h": [], "delta": [], "sigma2": [], "zeta2": []}
    cols = []  # per band, each worker's own curvature, weighted as F's (eq. 8.5''a: their mean over workers is h_j)
    for j in np.unique(idx):
        sel = idx == j
        wj = weight[sel] if weight[sel].sum() > 0 else np.ones(int(sel.sum()))
        out["h"].append(float(np.average(h[sel], weights=wj)))
        cols.append(np.average(prob.h[:, sel], weights=wj, axis=1))
        for name, v in (("delta", delta), ("sigma2", sigma2), ("zeta2", zeta2)):
            out[name].append(float(v[sel].sum()))
    if per_worker:
        out["workers"] = np.stack(cols, 1).tolist()
    return out


def band_index(prob) -> np.ndarray:
    """(d,): the band of each coordinate's curvature hbar_k, as lgc estimate groups Ritz values (lgc/spectrum.py)."""
    from lgc import spectrum

    return spectrum.band_index(prob.hbar, prob.L)


def band_grams(prob) -> np.ndarray:
    """(J, N, N): per band (the non-empty ones, in exact_bands' order) the Gram matrix of the workers' deviations
    at w* over its coordinates, sum_{k in j} a_k a_k^T (eq. 8.2'' with one matrix per band)."""
    a, idx = deviations_at_optimum(prob), band_index(prob)
    return np.stack([a[:, idx == j] @ a[:, idx == j].T for j in np.unique(idx)])


def deviations_at_optimum(prob) -> np.ndarray:
    """(N, d): the workers' deviations a_ik(w*) = h_ik (w*_k - c_ik) (grad F(w*) = 0), the constant part of the
    per-worker-curvature surrogate's deviations (eq. 8.5''a)."""
    g = prob.h * (prob.w_star[None] - prob.c)
    return g - g.mean(0, keepdims=True)


def exact_gram(prob, margin) -> np.ndarray:
    """The workers' Gram matrix of a kstar_sim.Quadratic over its box (the region the check's zeta^2 and Gram
    envelope are taken on, DERIVATION.md 4.7): per coordinate k the deviations a_ik(w_k) at the end of the box where
    (1/N) sum_i a_ik^2 is largest (zeta2_per_coordinate's term), G = sum_k a_{.,k} a_{.,k}^T; (1/N) tr G is then
    prob.zeta2(margin), the constants' zeta^2. With a shared Hessian a_i is constant and G is exact everywhere."""
    ends = np.stack(prob.box(margin))  # (2, d)
    g = prob.h[None] * (ends[:, None, :] - prob.c[None])  # (2, N, d)
    a = g - g.mean(1, keepdims=True)
    at = np.where(((a[1] ** 2).mean(0) > (a[0] ** 2).mean(0))[None], a[1], a[0])  # (N, d)
    return at @ at.T


def predict(res, problem, prob, margin, curvatures: bool = CURVATURES) -> dict:
    """Per variant, optimize-k's recommendation (theory.predict_k.recommend, criterion "predict") on the trade-off
    `res` of theory.tradeoff.Problem `problem`; `prob` the Quadratic whose exact bands and Gram matrix the second
    variant uses: with `curvatures`, its per-worker curvatures (bands.workers, eq. 8.5'') and the deviations at w*
    (their Gram matrix per band, band_grams, and zeta^2 = their trace / N in place of the box's), else the box's
    (eq. 8.2''), as also where every worker has F's Hessian (the reduction: the same model, with its law for
    independent sets)."""
    from dataclasses import replace

    from theory.predict import Bands
    from theory.predict_k import recommend

    if curvatures and not np.allclose(prob.h, prob.hbar[None], rtol=1e-12, atol=0):  # shared Hessian: 8.2'' is 8.5''
        a = deviations_at_optimum(prob)
        bands = recommend(res, replace(problem, zeta2=float((a**2).sum(1).mean())),
                          Bands.from_json(exact_bands(prob, margin, per_worker=True)), gram=band_grams(prob))
    else:
        bands = recommend(res, problem, Bands.from_json(exact_bands(prob, margin)), gram=exact_gram(prob, margin))
    return {"scalar": recommend(res, problem, None), "bands": bands}


def r_squared(predicted, measured) -> float:
    """1 - SS_res / SS_tot of the predicted curve over K against the measured one (nan where it is flat)."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ok = np.isfinite(p) & np.isfinite(m)
    ss_tot = float(((m[ok] - m[ok].mean()) ** 2).sum())
    return 1.0 - float(((m[ok] - p[ok]) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
