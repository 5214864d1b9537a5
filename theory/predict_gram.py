"""The error model's deviations from the workers' Gram matrix (theory/DERIVATION.md eq. 8.2'', beside 8.2').

The surrogate of theory/predict.py (eq. 8.1) has constant deviations a_i. Without a Gram matrix they are isotropic
and exchangeable (8.2'): any set's deviation is charged N zeta2_j ||c - cbar 1||^2 / (N - 1), whichever workers are
in it. With one, the surrogate's deviations have that Gram matrix: band j's coordinates are the columns of a square
root of G_j, so sum over them of (c^T a_{.,k})^2 = c^T G_j c exactly, for every coefficient vector c (8.2'').

`model_gram` picks the one matrix the model uses from the constants' Gram matrices (`lgc estimate` measures G at
each trajectory point): their mean, centred. `gram_columns` scales it per band and takes its square root.
"""
from __future__ import annotations

import numpy as np

from theory.errors import require

RANK_TOL = 1e-12  # eigenvalues below RANK_TOL x the largest are dropped from the square root (rounding of a zero)


def model_gram(gram) -> np.ndarray:
    """The Gram matrix of the surrogate (8.2''): the mean of the measured G(w_p) over the points (P, N, N) (or one
    N x N matrix), symmetrised and centred, P G P with P = I - 11^T / N.

    The mean, not the largest or w_0's: the model forecasts the expected error along the run, so every set term
    c^T G c is taken at its average over the measured points (the bounds take its largest, eq. 4.35). Centring makes
    sum_i a_i = 0 as (8.1) assumes (uniform weights: a_i = grad f_i - grad F already sums to zero; with pi-weights
    it removes the part the uniform rules of the model cannot see)."""
    g = np.asarray(gram, dtype=float)
    g = g[None] if g.ndim == 2 else g
    require(g.ndim == 3 and g.shape[1] == g.shape[2] and g.shape[0] >= 1 and bool(np.all(np.isfinite(g))),
            f"gram must be a finite N x N matrix or a list of them, got shape {g.shape}")
    m = g.mean(0)
    m = (m + m.T) / 2
    return m - m.mean(0, keepdims=True) - m.mean(1, keepdims=True) + m.mean()


def gram_columns(gram, zeta2_j, n: int) -> tuple[np.ndarray, int]:
    """(N, J D) deviations and D, the coordinates per band: band j's D columns are a square root of
    G_j = zeta2_j G / (tr G / N) (eq. 8.2''), so (1/N) sum_i ||a_{i,j}||^2 = zeta2_j and the sum over band j's
    coordinates of (c^T a_{.,k})^2 is c^T G_j c. gram: one N x N matrix (every band takes its shape; the bands set
    only the split) or J of them (band j its own), symmetric positive semidefinite and centred (model_gram)."""
    z = np.asarray(zeta2_j, dtype=float)
    J = len(z)
    g = np.asarray(gram, dtype=float)
    require(g.shape in ((n, n), (J, n, n)),
            f"gram must be an N x N matrix (N={n}) or one per band ({J}, {n}, {n}), got shape {g.shape}")
    per = np.broadcast_to(g, (J, n, n))
    roots = []
    for j in range(J):
        tr = float(np.trace(per[j]))
        require(tr > 0 or z[j] == 0, f"gram has trace {tr:.6g} <= 0 in band {j}, but its zeta2 share is {z[j]:.6g} > 0: "
                                     f"a Gram matrix with zeta2 > 0 has a positive trace")
        if z[j] == 0:
            roots.append(np.zeros((n, 0)))
            continue
        lam, vec = np.linalg.eigh(per[j] * (z[j] * n / tr))
        keep = lam > RANK_TOL * max(float(lam.max()), 0.0)
        roots.append(vec[:, keep] * np.sqrt(lam[keep]))
    D = max(1, max(r.shape[1] for r in roots))
    out = np.zeros((n, J * D))
    for j, r in enumerate(roots):
        out[:, j * D:j * D + r.shape[1]] = r
    return out, D


def exchangeable_gram(n: int, zeta2: float = 1.0) -> np.ndarray:
    """The Gram matrix of isotropic, exchangeable deviations with (1/N) tr G = zeta2: N zeta2 / (N - 1) (I - 11^T/N),
    the case in which (8.2'') is (8.2')."""
    return n * zeta2 / max(n - 1, 1) * (np.eye(n) - np.full((n, n), 1.0 / n))
