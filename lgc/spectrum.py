"""Curvature bands for the error model (theory/predict.py, DERIVATION.md section 8.3): how F's curvature spectrum
at w_0 splits the initial error, the gradient noise and the workers' dissimilarity.

Stochastic Lanczos quadrature on Hessian-vector products of F (double backward): m Lanczos steps from a vector z
give the Ritz values theta_k and weights tau_k (the squared first components of the tridiagonal's eigenvectors),
a Gauss quadrature of z's spectral measure, z^T f(H) z ~ ||z||^2 sum_k tau_k f(theta_k) (eq. 8.9). Three kinds
of start vector, each a quantity of the model:

- the gradient g = grad F(w_0): on a quadratic F(w_0) - F* = g^T H^{-1} g / 2, so band j holds
  Delta_j ~ ||g||^2 sum_{theta_k in j} tau_k / (2 theta_k) (eq. 8.10);
- noise probes z = n^{-1/2} sum_s r_s (g_s - g_i) (Rademacher r over a worker's samples, pooled over workers):
  E z z^T is the per-sample gradient covariance (Hutchinson), so band j holds its share of sigma2 (eq. 8.11);
- dissimilarity probes z = N^{-1/2} sum_i r_i a_i, a_i = grad f_i - grad F: E z z^T = (1/N) sum_i a_i a_i^T,
  whose trace is zeta2, so band j holds its share of zeta2 (eq. 8.11).

Bands: J geometric curvature intervals below the top curvature L, [L/4, inf), [L/16, L/4), ..., and the rest
(negative Ritz values, a nonconvex F's, included); a band's curvature is the weighted mean of its positive Ritz
values (at least L 4^-(J+1)). Pure computation: no files, no printing.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from theory.predict_curv import MAX_N

BANDS = 4  # curvature bands (a factor 4 apart)
LANCZOS_STEPS = 12  # Hessian-vector products per start vector
PROBES = 2  # noise and dissimilarity probes each
MAX_WORKERS = MAX_N  # per-worker curvatures measured up to the N the error model takes them for (theory/predict_curv.py)


class Ritz(NamedTuple):
    """What `lanczos` returns: the Gauss quadrature of a start vector's spectral measure (eq. 8.9)."""

    values: np.ndarray  # (m,) Ritz values theta_k
    weights: np.ndarray  # (m,) Gauss weights tau_k, summing to 1
    vectors: Tensor | None  # (P, m) unit Ritz vectors, one column per value; None unless asked for


def lanczos(hvp: Callable[[Tensor], Tensor], z: Tensor, steps: int, *, vectors: bool = False) -> Ritz:
    """Ritz values and Gauss weights (summing to 1) of z's spectral measure under the symmetric operator hvp
    (eq. 8.9), with full reorthogonalisation (steps is small); with `vectors`, also the unit Ritz vectors."""
    q = z / z.norm()
    basis, alpha, beta = [q], [], []
    for j in range(steps):
        w = hvp(q)
        a = float(torch.dot(w, q))
        alpha.append(a)
        w = w - a * q - (beta[-1] * basis[-2] if beta else 0.0)
        Q = torch.stack(basis)
        w = w - Q.T @ (Q @ w)  # reorthogonalise against every earlier Lanczos vector
        b = float(w.norm())
        if j == steps - 1 or b <= 1e-10 * max(abs(a), 1e-30):
            break
        beta.append(b)
        q = w / b
        basis.append(q)
    T = np.diag(alpha) + np.diag(beta[: len(alpha) - 1], 1) + np.diag(beta[: len(alpha) - 1], -1)
    theta, Y = np.linalg.eigh(T)
    vec = torch.stack(basis[: len(alpha)]).T @ torch.as_tensor(Y, dtype=z.dtype) if vectors else None
    return Ritz(theta, Y[0] ** 2, vec)


def band_index(theta, L: float, bands: int = BANDS) -> np.ndarray:
    """The curvature band of each curvature theta, the grouping of the constants' "bands" (DERIVATION.md 8.3): band j holds
    L 4^-(j+1) <= theta < L 4^-j for j = 0..bands-1, the top band unbounded above and the last one below (negative
    and zero curvatures included). Returns int indices of theta's shape."""
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.ceil(np.log(L / np.maximum(theta, 1e-300)) / np.log(4.0) - 1e-9) - 1
    return np.clip(np.nan_to_num(j, nan=bands - 1), 0, bands - 1).astype(int)


def curvature_bands(problem, w: Tensor, L: float, *, bands: int = BANDS, steps: int = LANCZOS_STEPS,
                    probes: int = PROBES, seed: int = 0, workers: bool = False) -> dict:
    """The constants JSON's "bands" (theory/constants.py) of `problem` (an lgc.estimate.EmpiricalProblem) at w:
    curvatures h and per-band delta, sigma2, zeta2 (eqs. 8.9-8.11; the model normalises each to its total).
    workers: also "workers", each worker's curvature per band (worker_curvatures), for N <= MAX_WORKERS."""
    from lgc.empirical import deviations, full_loss, worker_gradients, worker_loss

    gen = torch.Generator().manual_seed(seed)
    wg = w.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(full_loss(problem, wg), wg, create_graph=True)

    def hvp(v: Tensor) -> Tensor:
        return torch.autograd.grad(g, wg, grad_outputs=v, retain_graph=True)[0].detach()

    measures = {"delta": [], "sigma2": [], "zeta2": []}  # (theta, energy per Ritz value) per start vector
    ritz = []  # the Ritz of every start vector (with its vectors), for the workers' curvatures
    g0 = g.detach()

    def run(op, z, m):  # lanczos, keeping the Ritz vectors where the workers' curvatures need them
        r = lanczos(op, z, m, vectors=workers)
        if workers:
            ritz.append(r)
        return r.values, r.weights

    if float(g0.norm()) > 0:
        th, tau = run(hvp, g0, steps)
        measures["delta"].append((th, float(g0.norm()) ** 2 * tau))
    grads = worker_gradients(problem, w)  # (N, P)
    a = deviations(problem, grads)
    n_workers = len(problem.workers)
    for _ in range(probes):
        r = torch.randint(0, 2, (n_workers,), generator=gen).to(a.dtype) * 2 - 1
        z = (r[:, None] * a).sum(0) / np.sqrt(n_workers)
        if float(z.norm()) > 0:
            th, tau = run(hvp, z, steps)
            measures["zeta2"].append((th, float(z.norm()) ** 2 * tau))
        z = torch.zeros_like(g0)
        for i, (x, _) in enumerate(problem.workers):
            rs = (torch.randint(0, 2, (len(x),), generator=gen) * 2 - 1).to(w.dtype)
            wi = w.detach().clone().requires_grad_(True)
            (gi,) = torch.autograd.grad(worker_loss(problem, wi, i, rs), wi)  # (1/n) sum_s r_s g_s
            z += np.sqrt(len(x)) * (gi - float(rs.mean()) * grads[i]) / np.sqrt(n_workers)
        if float(z.norm()) > 0:
            th, tau = run(hvp, z, steps)
            measures["sigma2"].append((th, float(z.norm()) ** 2 * tau))
    floor = L * 4.0 ** -(bands + 1)
    all_th = np.concatenate([m[0] for v in measures.values() for m in v] or [np.array([L])])
    all_w = np.concatenate([m[1] / max(m[1].sum(), 1e-300) for v in measures.values() for m in v] or [np.ones(1)])
    idx = band_index(all_th, L, bands)
    h = np.zeros(bands)
    for j in range(bands):
        sel = (idx == j) & (all_th > 0)
        h[j] = np.average(all_th[sel], weights=all_w[sel]) if sel.any() and all_w[sel].sum() > 0 else L * 4.0 ** -(j + 0.5)
    h = np.clip(h, floor, L)
    out = {"h": h.tolist()}
    for name, ms in measures.items():
        share = np.zeros(bands)
        for th, en in ms:
            j = band_index(th, L, bands)
            if name == "delta":  # eq. (8.10): g^2 / (2 theta), theta at least the smallest band curvature
                en = en / (2 * np.maximum(th, floor))
            np.add.at(share, j, en / len(ms))
        out[name] = share.tolist()
    note = ""
    if workers and n_workers <= MAX_WORKERS and ritz:
        out["workers"] = worker_curvatures(problem, w, ritz, L, bands, floor).tolist()
        note = (f"; workers: each worker's Rayleigh quotient along each band's heaviest Ritz vector ({n_workers} x "
                f"{bands} Hessian-vector products, eq. 8.5''e)")
    elif workers:
        note = f"; no per-worker curvatures: N = {n_workers} > {MAX_WORKERS} (the error model's cap)"
    out["method"] = (f"stochastic Lanczos quadrature of F's Hessian at w_0 ({steps} Hessian-vector products per start "
                     f"vector): the gradient (delta), {probes} Hutchinson probes of the per-sample noise (sigma2) and of "
                     f"the workers' deviations (zeta2); {bands} bands a factor 4 apart below L = {L:.6g}" + note)
    return out


def worker_curvatures(problem, w: Tensor, ritz, L: float, bands: int, floor: float) -> np.ndarray:
    """(N, J): r_ij = y_j^T H_i y_j, worker i's Rayleigh quotient along band j's heaviest unit Ritz vector y_j (the
    one of largest Gauss weight among the positive Ritz values in band j, over every start vector; eq. 8.5''e);
    one Hessian-vector product of f_i per worker and band; `ritz`: lanczos's Ritz of every start vector, with their
    vectors. Clipped below at the bands' floor (the model needs
    r_ij > 0; a nonconvex worker's negative quotient is not modelled); a band with no Ritz vector: L 4^-(j+1/2)."""
    from lgc.empirical import worker_loss

    th = np.concatenate([r.values for r in ritz])
    wt = np.concatenate([r.weights for r in ritz])
    vec = torch.cat([r.vectors for r in ritz], 1)
    idx = band_index(th, L, bands)
    out = np.empty((len(problem.workers), bands))
    ys = {}  # band j -> its heaviest Ritz vector (bands without one take the default below)
    for j in range(bands):
        sel = np.flatnonzero((idx == j) & (th > 0))
        if sel.size:
            ys[j] = vec[:, int(sel[np.argmax(wt[sel])])]
        else:
            out[:, j] = L * 4.0 ** -(j + 0.5)
    for i in range(len(problem.workers) if ys else 0):  # f_i's gradient graph once, a product per band
        wi = w.detach().clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(worker_loss(problem, wi, i), wi, create_graph=True)
        for j, y in ys.items():
            (hy,) = torch.autograd.grad(gi, wi, grad_outputs=y, retain_graph=True)
            out[i, j] = float(torch.dot(hy, y)) / float(torch.dot(y, y))
    return np.clip(out, floor, None)


def trajectory_losses(problem, traj) -> np.ndarray:
    """F(w_t) at every step t = 0..T of the estimate's SGD trajectory (lgc.estimators.Trajectory): the curve that
    calibrates the initial error per band (eq. 8.10')."""
    from lgc.empirical import full_loss

    with torch.no_grad():
        return np.array([float(full_loss(problem, w)) for w in traj.w])


def calibrate_delta(problem, traj, bands: dict, *, sigma2: float, Delta: float, batch: int,
                    prefer: str = "fit") -> dict:
    """`bands` with Delta's split calibrated on the trajectory (theory/delta_fit.py, eq. 8.10'): "delta" becomes the
    split the model uses, "delta_split" records both splits ((8.10)'s from the gradient's spectral measure, and the
    fit), which one is used and why, and the curve it was fitted on.

    The trajectory is full-sync SGD: each step averages `batch` samples per worker (drawn with replacement), pi-weighted,
    so its noise variance per band is sigma2_j sum_i pi_i^2 / b_i = sigma2_j / samples."""
    from theory.delta_fit import fit_delta_split, shares

    losses = trajectory_losses(problem, traj)
    b = np.array([min(batch, len(x)) for x, _ in problem.workers], float)
    samples = 1.0 / float(np.sum(problem.pi**2 / b))
    split = fit_delta_split(losses, eta=traj.lr, h=bands["h"], spectrum=bands["delta"],
                            sigma2_bands=sigma2 * shares(bands["sigma2"]),
                            samples=samples, Delta=Delta, prefer=prefer)
    out = dict(bands)
    out["delta"] = list(split.delta)
    out["delta_split"] = {**split.to_json(), "eta": traj.lr, "samples_per_step": samples, "losses": losses.tolist()}
    return out
