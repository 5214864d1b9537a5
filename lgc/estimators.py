"""One estimator per constant of the bounds, each a function of the problem (lgc/empirical.py) and a short SGD
trajectory from w_0, with its own bootstrap where it has one; lgc/estimate.py runs them in turn.

- L (`smoothness`): the largest |eigenvalue| of any worker's Hessian, by power iteration on Hessian-vector
  products (double backward), and, as a check, the largest secant
  ||grad f_i(w') - grad f_i(w)|| / ||w' - w|| between consecutive trajectory points (`secants`).
- sigma^2 and zeta^2 (`variance_and_dissimilarity`): the largest per-worker variance of per-sample gradients
  (torch.func.vmap of grad); (1/N) sum_i ||grad f_i - grad F||^2 with grad F = sum_i pi_i grad f_i.
- delta (`dissimilarity_smoothness`, A6 of theory/DERIVATION.md): the Lipschitz constant of
  a_i = grad f_i - grad F, by the largest secant of a_i and power iteration on Hess(f_i - F) where it was found.
- gram (`gram_matrices`): the workers' Gram matrix G_ij = <a_i, a_j> at each point
  (theory/DERIVATION.md 4.7, A4G; for up to GRAM_MAX_WORKERS workers): optimize-k then charges the
  set terms at the workers' measured alignment instead of zeta^2's worst one.
- Delta (`initial_gap`): F(w_0) minus the lowest F reached by full-batch L-BFGS from w_0 (a lower estimate
  of F(w_0) - F* when L-BFGS has not converged).

Intervals: bias-corrected percentile bootstrap over each worker's samples (resampled with
replacement): the estimate plus the centred quantiles of the replicates.
Pure computation: no files, no printing.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from lgc.empirical import EmpiricalProblem, deviations, full_loss, gradient_moments, worker_gradients, worker_loss

GRAM_MAX_WORKERS = 128  # an N x N Gram matrix per point in the constants JSON (128: 16k numbers a point)
Tick = Callable[..., object]  # one step of the progress bar


# ----------------------------------------------------------------------------- numerical building blocks
def top_hessian_eigenvalue(loss_of_w: Callable[[Tensor], Tensor], w: Tensor, *, iters: int = 30,
                           tol: float = 1e-4, v0: Optional[Tensor] = None, seed: int = 0) -> tuple[float, Tensor]:
    """Largest |eigenvalue| of the Hessian of loss_of_w at w by power iteration on
    Hessian-vector products (double backward). Returns (|lambda|, unit eigenvector)."""
    wg = w.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_of_w(wg), wg, create_graph=True)
    if v0 is None:
        v0 = torch.randn(w.shape, generator=torch.Generator().manual_seed(seed), dtype=w.dtype)
    v = v0 / v0.norm()
    lam = 0.0
    for it in range(iters):
        (hv,) = torch.autograd.grad(g, wg, grad_outputs=v, retain_graph=it < iters - 1)
        new = float(torch.dot(v, hv))  # Rayleigh quotient
        norm = hv.norm()
        if norm == 0:
            return 0.0, v
        v = (hv / norm).detach()
        if it > 0 and abs(abs(new) - lam) <= tol * max(lam, 1e-12):
            lam = abs(new)
            break
        lam = abs(new)
    return lam, v


def sgd_trajectory(problem: EmpiricalProblem, *, steps: int, lr: float, batch: int, seed: int) -> list[Tensor]:
    """Plain SGD on F from w_0: each step uses `batch` samples per worker, pi-weighted."""
    gen = torch.Generator().manual_seed(seed)
    w = problem.w0.clone()
    out = [w.clone()]
    for _ in range(steps):
        wg = w.requires_grad_(True)
        loss = 0.0
        for i, (x, y) in enumerate(problem.workers):
            idx = torch.randint(len(x), (min(batch, len(x)),), generator=gen)
            loss = loss + float(problem.pi[i]) * problem.per_sample_loss(wg, x[idx], y[idx]).mean()
        (g,) = torch.autograd.grad(loss, wg)
        w = (w - lr * g).detach()
        out.append(w.clone())
    return out


def lowest_loss(problem: EmpiricalProblem, *, iters: int) -> tuple[float, Tensor]:
    """The lowest F reached by full-batch L-BFGS (strong Wolfe) from w_0, and where."""
    w = problem.w0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14, history_size=20)
    best = [float(full_loss(problem, w.detach())), w.detach().clone()]

    def closure():
        opt.zero_grad()
        loss = full_loss(problem, w)
        loss.backward()
        value = loss.item()
        if value < best[0]:
            best[0], best[1] = value, w.detach().clone()
        return loss

    opt.step(closure)
    return best[0], best[1]


# ----------------------------------------------------------------------------- the estimators
def _interval(estimate: float, replicates: np.ndarray, level: float) -> list[float]:
    """Bias-corrected percentile interval: the estimate plus the centred bootstrap quantiles.

    Resampling with replacement duplicates samples, which inflates max-type and norm-type
    statistics (top eigenvalue, ||mean||^2) by a bootstrap bias; centring removes it, so the
    interval describes the estimate's spread around itself. Clipped at 0 (all constants >= 0).
    """
    a = (1 - level) / 2
    shift = estimate - float(np.mean(replicates))
    lo, hi = float(np.quantile(replicates, a)) + shift, float(np.quantile(replicates, 1 - a)) + shift
    return [max(lo, 0.0), max(hi, 0.0)]  # every constant is >= 0


def bootstrap_counts(problem: EmpiricalProblem, rng: np.random.Generator, replicates: int) -> list[Tensor]:
    """Each worker's resampling counts (replicates + 1, n): row 0 the sample itself, rows 1.. the bootstrap
    replicates (with replacement). sigma^2, zeta^2 and Delta share them."""
    counts = []
    for x, _ in problem.workers:
        c = rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size=replicates)
        counts.append(torch.from_numpy(np.vstack([np.ones((1, len(x)), dtype=c.dtype), c])))
    return counts


class Trajectory(NamedTuple):
    """The SGD trajectory from w_0 and the points on it where every constant is evaluated."""

    w: list[Tensor]  # w_0, w_1, ..., w_steps
    points: list[int]  # the steps evaluated, evenly spaced, w_0 and the end included
    lr: float  # its step size
    L_w0: float  # max over workers of the top |eigenvalue| at w_0 (the step size 1 / L_w0 when none is given)


def trajectory(problem: EmpiricalProblem, *, steps: int, lr: Optional[float], batch: int, points: int,
               power_iters: int, seed: int) -> Trajectory:
    """sgd_trajectory at lr (default 1 / L at w_0) and `points` evenly spaced steps of it."""
    l0 = max(top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i), problem.w0, iters=power_iters, seed=seed)[0]
             for i in range(len(problem.workers)))
    step = lr if lr is not None else 1.0 / max(l0, 1e-12)
    w = sgd_trajectory(problem, steps=steps, lr=step, batch=batch, seed=seed)
    return Trajectory(w, sorted({int(round(k)) for k in np.linspace(0, len(w) - 1, points)}), step, l0)


class Secants(NamedTuple):
    """The largest secants between consecutive trajectory points (L's check and delta's first estimate)."""

    L: float  # max ||grad f_i(w') - grad f_i(w)|| / ||w' - w||; nan when no step moved
    delta: float  # max ||a_i(w') - a_i(w)|| / ||w' - w||, a_i = grad f_i - grad F; 0 when no step moved
    delta_at: tuple[int, int]  # (step, worker) of delta's largest secant


def secants(problem: EmpiricalProblem, traj: Trajectory, tick: Tick) -> Secants:
    """One pass over the trajectory's gradient sets, one (N, P) set in memory at a time."""
    l_secants, d_secant, d_arg, prev = [], 0.0, (0, 0), worker_gradients(problem, traj.w[0])
    for t in range(len(traj.w) - 1):
        cur = worker_gradients(problem, traj.w[t + 1])
        step_norm = float((traj.w[t + 1] - traj.w[t]).norm())
        if step_norm > 0:
            diff = cur - prev
            l_secants.append(float(diff.norm(dim=1).max()) / step_norm)
            a_diff = deviations(problem, diff).norm(dim=1) / step_norm
            if float(a_diff.max()) > d_secant:
                d_secant, d_arg = float(a_diff.max()), (t, int(a_diff.argmax()))
        prev = cur
        tick(1)
    return Secants(max(l_secants) if l_secants else float("nan"), d_secant, d_arg)


class Smoothness(NamedTuple):
    """L and how it was obtained."""

    L: float  # the larger of hvp and secant
    hvp: float  # max over workers and points of the power iteration's top |eigenvalue|
    secant: Optional[float]  # the largest secant (None when no step moved)
    interval: list[float]  # of hvp: power iterations on resampled data of its worker and point
    by_point: dict[int, float]  # each point's largest top |eigenvalue|


def smoothness(problem: EmpiricalProblem, traj: Trajectory, sec: Secants, rng: np.random.Generator, *,
               power_iters: int, l_bootstrap: int, level: float, seed: int, tick: Tick) -> Smoothness:
    """L: power iteration for every worker at every point, the largest refined from its warm start, with
    l_bootstrap replicates (a warm-started power iteration on that worker's resampled samples each)."""
    l_hvp, l_arg, by_point = -1.0, None, {}
    for p in traj.points:
        for i in range(len(problem.workers)):
            lam, v = top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i), traj.w[p], iters=power_iters,
                                            seed=seed)
            by_point[p] = max(by_point.get(p, 0.0), lam)
            tick(1)
            if lam > l_hvp:
                l_hvp, l_arg = lam, (p, i, v)
    p, i, v = l_arg
    lam, v = top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i), traj.w[p], iters=power_iters, v0=v)
    l_hvp = max(l_hvp, lam)  # refined from the warm start, as the bootstrap replicates are
    x_i = problem.workers[i][0]
    l_boot = []
    for _ in range(l_bootstrap):
        wts = torch.from_numpy(rng.multinomial(len(x_i), np.full(len(x_i), 1 / len(x_i)))).to(problem.w0.dtype)
        l_boot.append(top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i, wts), traj.w[p],
                                             iters=max(5, power_iters // 3), v0=v)[0])
        tick(1)
    secant = sec.L if np.isfinite(sec.L) else None
    return Smoothness(float(max(l_hvp, secant or 0.0)), l_hvp, secant,
                      _interval(l_hvp, np.array(l_boot), level) if l_boot else [l_hvp, l_hvp], by_point)


class DissimilaritySmoothness(NamedTuple):
    """delta (A6 of theory/DERIVATION.md), the Lipschitz constant of a_i = grad f_i - grad F."""

    delta: float  # the larger of secant and hvp
    secant: float
    hvp: float  # top |eigenvalue| of Hess(f_i - F) at the worker and point of the largest secant


def dissimilarity_smoothness(problem: EmpiricalProblem, traj: Trajectory, sec: Secants, *, power_iters: int,
                             seed: int) -> DissimilaritySmoothness:
    """delta: the largest secant of a_i along the trajectory, and power iteration where it was found."""
    t, i = sec.delta_at
    d_hvp = top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i) - full_loss(problem, w), traj.w[t],
                                   iters=power_iters, seed=seed)[0]
    return DissimilaritySmoothness(float(max(sec.delta, d_hvp)), sec.delta, d_hvp)


def _variance_and_dissimilarity_at(problem: EmpiricalProblem, w: Tensor,
                                   counts: Sequence[Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """sigma^2 (max over workers of the unbiased per-sample gradient variance) and zeta^2
    ((1/N) sum_i ||grad f_i - grad F||^2) at w, for the sample (row 0) and every replicate.

    Streams over workers, so memory is O(R P), not O(N R P): with m_i the replicates' mean
    gradients of worker i and g = sum_i pi_i m_i,
    (1/N) sum_i ||m_i - g||^2 = (1/N) [sum_i ||m_i||^2 - 2 <sum_i m_i, g> + N ||g||^2].
    """
    n_workers = len(problem.workers)
    sq = 0.0
    total = grad_f = None
    var_max = None
    for i, (x, _) in enumerate(problem.workers):
        m, s2 = gradient_moments(problem, w, i, counts[i])
        n = len(x)
        m = m.double()
        norm2 = (m * m).sum(1)
        var = (s2.double() - norm2) * n / (n - 1)  # unbiased per-sample variance
        var_max = var if var_max is None else torch.maximum(var_max, var)
        sq = sq + norm2
        total = m.clone() if total is None else total.add_(m)
        grad_f = problem.pi[i] * m if grad_f is None else grad_f.add_(m, alpha=float(problem.pi[i]))
    zeta2 = (sq - 2 * (total * grad_f).sum(1) + n_workers * (grad_f * grad_f).sum(1)) / n_workers
    return var_max.numpy(), zeta2.clamp(min=0).numpy()


class Noise(NamedTuple):
    """sigma^2 and zeta^2, each the largest over the trajectory points."""

    sigma2: float
    zeta2: float
    intervals: dict[str, list[float]]  # "sigma2", "zeta2"
    by_point: dict[int, dict[str, float]]  # each point's values


def variance_and_dissimilarity(problem: EmpiricalProblem, traj: Trajectory, counts: Sequence[Tensor], *,
                               level: float, tick: Tick) -> Noise:
    """sigma^2 and zeta^2 at every point, for the sample and every bootstrap replicate of `counts`."""
    sig = np.full(len(counts[0]), -np.inf)
    zet = np.full(len(counts[0]), -np.inf)
    by_point = {}
    for p in traj.points:
        sig_p, zet_p = _variance_and_dissimilarity_at(problem, traj.w[p], counts)
        sig, zet = np.maximum(sig, sig_p), np.maximum(zet, zet_p)
        by_point[p] = {"sigma2": float(sig_p[0]), "zeta2": float(zet_p[0])}
        tick(1)
    return Noise(float(sig[0]), float(zet[0]), {"sigma2": _interval(float(sig[0]), sig[1:], level),
                                                "zeta2": _interval(float(zet[0]), zet[1:], level)}, by_point)


def gram_matrices(problem: EmpiricalProblem, traj: Trajectory) -> Optional[list]:
    """The workers' Gram matrix G_ij = <a_i, a_j>, a_i = grad f_i - grad F, at each point (A4G, theory/DERIVATION.md
    4.7); None for more than GRAM_MAX_WORKERS workers."""
    if len(problem.workers) > GRAM_MAX_WORKERS:
        return None
    gram = []
    for p in traj.points:
        a = deviations(problem, worker_gradients(problem, traj.w[p]).double())
        gram.append((a @ a.T).numpy().tolist())
    return gram


class InitialGap(NamedTuple):
    """Delta = F(w_0) - F_best and how it was obtained."""

    Delta: float
    interval: list[float]
    F_w0: float
    F_best: float  # the lowest F of L-BFGS from w_0


def initial_gap(problem: EmpiricalProblem, counts: Sequence[Tensor], *, lbfgs_iters: int, level: float,
                tick: Tick) -> InitialGap:
    """Delta: F(w_0) - the lowest F of L-BFGS; its bootstrap resamples the per-sample loss differences."""
    f_best, w_best = lowest_loss(problem, iters=lbfgs_iters)
    tick(1)
    f0 = float(full_loss(problem, problem.w0))
    with torch.no_grad():
        d_boot = np.zeros(len(counts[0]) - 1)
        for i, (x, y) in enumerate(problem.workers):
            diff = (problem.per_sample_loss(problem.w0, x, y) - problem.per_sample_loss(w_best, x, y)).double()
            d_boot += problem.pi[i] * (counts[i][1:].double() @ diff).numpy() / len(x)
    return InitialGap(float(f0 - f_best), _interval(float(f0 - f_best), d_boot, level), f0, f_best)


