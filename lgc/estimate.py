"""Estimate the constants of the bounds (L, sigma^2, zeta^2, Delta) from a model and data.

What a user sees: README "Data, partitions and models" (constants); the assumptions they
instantiate are stated in theory/DERIVATION.md (section 4.1): each f_i L-smooth, per-sample gradient variance <= sigma^2, (1/N) sum_i
||grad f_i - grad F||^2 <= zeta^2, Delta = F(w_0) - F*.

The assumptions hold "for every w", so each constant is the largest value seen at a few
points of a short SGD trajectory from w_0 (w_0, its middle and its end):

- L: the largest |eigenvalue| of any worker's Hessian, by power iteration on Hessian-vector
  products (double backward), and, as a check, the largest secant
  ||grad f_i(w') - grad f_i(w)|| / ||w' - w|| between consecutive trajectory points.
- sigma^2: the largest per-worker variance of per-sample gradients (torch.func.vmap of grad).
- zeta^2: (1/N) sum_i ||grad f_i - grad F||^2 with grad F = sum_i pi_i grad f_i.
- gram: the workers' Gram matrix G_ij = <a_i, a_j>, a_i = grad f_i - grad F, at each point
  (theory/DERIVATION.md 4.7, A4G; for up to GRAM_MAX_WORKERS workers): optimize-k then charges the
  set terms at the workers' measured alignment instead of zeta^2's worst one.
- Delta: F(w_0) minus the lowest F reached by full-batch L-BFGS from w_0 (a lower estimate
  of F(w_0) - F* when L-BFGS has not converged).
- bands: F's curvature bands at w_0 and each band's share of Delta, sigma^2 and zeta^2, by stochastic
  Lanczos quadrature (lgc/spectrum.py), for the error model that recommends K (theory/predict.py).

Intervals: bias-corrected percentile bootstrap over each worker's samples (resampled with
replacement): the estimate plus the centred quantiles of the replicates.
Pure computation: no files, no printing (lgc/commands/estimate.py does the I/O).
"""
from __future__ import annotations

import sys
import types
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from lgc.errors import check
from lgc.threads import torch_threads
from theory.constants import Constants

GRAM_MAX_WORKERS = 128  # an N x N Gram matrix per point in the constants JSON (128: 16k numbers a point)
PerSampleLoss = Callable[[Tensor, Tensor, Tensor], Tensor]  # (w (P,), x (n, ...), y (n,)) -> (n,)


@dataclass
class EmpiricalProblem:
    """Per-worker data and a per-sample loss of flat parameters: all that estimation needs.

    f_i(w) = mean over worker i's samples of per_sample_loss(w, x, y); F = sum_i pi_i f_i.
    """

    per_sample_loss: PerSampleLoss
    workers: Sequence[tuple[Tensor, Tensor]]
    w0: Tensor
    pi: Optional[np.ndarray] = None
    name: str = "problem"

    def __post_init__(self):
        n = len(self.workers)
        check(n >= 1, "a problem needs at least one worker")
        for i, (x, y) in enumerate(self.workers):
            check(len(x) >= 2 and len(x) == len(y), f"worker {i} has {len(x)} samples and {len(y)} labels; need >= 2 each")
        self.pi = np.full(n, 1.0 / n) if self.pi is None else np.asarray(self.pi, dtype=float)
        check(self.pi.shape == (n,) and np.all(self.pi >= 0) and abs(self.pi.sum() - 1) < 1e-9,
              f"pi must be N={n} non-negative weights summing to 1, got {self.pi}")
        self.w0 = self.w0.detach().clone()


def problem_from_model(model: torch.nn.Module, workers, *, pi=None, name: str = "model",
                       loss: Optional[Callable[[Tensor, Tensor], Tensor]] = None) -> EmpiricalProblem:
    """Cross-entropy of `model` on each worker's (x, y), or loss(outputs, y) (one value per
    sample); a model with `returns_loss = True` (the quadratics' QuadraticModel) gives its
    per-sample losses itself and y is ignored."""
    from torch.func import functional_call

    model = model.eval()  # no dropout; GroupNorm/LayerNorm only (batch statistics break per-sample grads)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    w0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def per_sample_loss(w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(w, sizes), shapes)}
        out = functional_call(model, (params, buffers), (x,))
        if getattr(model, "returns_loss", False):
            return out
        if loss is not None:
            return loss(out, y)
        return torch.nn.functional.cross_entropy(out, y, reduction="none")

    # images channels_last: on a CPU the small CNN's gradients were 1.8x faster (lgc/task.py)
    workers = [(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x, y) for x, y in workers]
    x, y = workers[0]
    try:  # per-sample gradients evaluate the model on one sample at a time
        with torch.no_grad():
            per_sample_loss(w0, x[:1], y[:1])
    except (ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        check(False, f"model {name} cannot evaluate a single sample of shape {tuple(x.shape[1:])} ({msg})")
    return EmpiricalProblem(per_sample_loss, workers, w0, pi=pi, name=name)


def quadratic_problem(quad, *, samples_per_worker: int, seed: int = 0) -> EmpiricalProblem:
    """The quadratics of lgc.data.synthetic with a finite sample: worker i's samples are
    noise vectors xi (quad.noise), so the estimates can be checked against quad.constants()."""
    from lgc.data.synthetic import QuadraticModel

    workers = []
    for i in range(quad.n_workers):
        x = quad.inputs(i, quad.noise(seed, 0, i, samples_per_worker))
        workers.append((x, torch.zeros(len(x), dtype=torch.long)))
    return problem_from_model(QuadraticModel(quad), workers, pi=quad.pi, name="quadratic")


# ----------------------------------------------------------------------------- building blocks
def _chunks(n: int, size: int):
    for s in range(0, n, size):
        yield slice(s, min(s + size, n))


def worker_loss(problem: EmpiricalProblem, w: Tensor, i: int, weights: Optional[Tensor] = None, chunk: int = 256) -> Tensor:
    """f_i(w): mean per-sample loss of worker i (weights: bootstrap counts, mean 1), in chunks
    of `chunk` samples (256: a CNN's activations stay in cache; Hessian-vector products on the
    small CNN 1.5x faster than in chunks of 4096)."""
    x, y = problem.workers[i]
    total = 0.0
    for sl in _chunks(len(x), chunk):
        losses = problem.per_sample_loss(w, x[sl], y[sl])
        total = total + (losses.sum() if weights is None else (weights[sl] * losses).sum())
    return total / len(x)


def full_loss(problem: EmpiricalProblem, w: Tensor) -> Tensor:
    """F(w) = sum_i pi_i f_i(w)."""
    return sum(float(p) * worker_loss(problem, w, i) for i, p in enumerate(problem.pi))


def worker_gradients(problem: EmpiricalProblem, w: Tensor) -> Tensor:
    """(N, P): grad f_i(w) for every worker."""
    out = []
    for i in range(len(problem.workers)):
        wg = w.detach().requires_grad_(True)
        out.append(torch.autograd.grad(worker_loss(problem, wg, i), wg)[0])
    return torch.stack(out)


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


def per_sample_gradients(problem: EmpiricalProblem, w: Tensor, i: int, sl: slice) -> Tensor:
    """(n, P): the gradient of each of worker i's samples in `sl` (torch.func.vmap of grad)."""
    from torch.func import grad, vmap

    x, y = problem.workers[i]

    def one(wv, xs, ys):
        return problem.per_sample_loss(wv, xs.unsqueeze(0), ys.unsqueeze(0))[0]

    return vmap(grad(one), in_dims=(None, 0, 0))(w.detach(), x[sl], y[sl])


def gradient_moments(problem: EmpiricalProblem, w: Tensor, i: int, counts: Tensor, chunk: int = 1024):
    """Per-sample gradient moments of worker i, for the sample and bootstrap replicates.

    counts: (R, n) resampling counts (row 0 may be all ones = the sample itself).
    Returns (means (R, P), second (R,)): weighted mean gradient and weighted mean of ||g_s||^2.
    """
    x, _ = problem.workers[i]
    n = len(x)
    means = torch.zeros(counts.shape[0], w.numel(), dtype=w.dtype)
    second = torch.zeros(counts.shape[0], dtype=w.dtype)
    for sl in _chunks(n, chunk):
        g = per_sample_gradients(problem, w, i, sl)  # (c, P)
        c = counts[:, sl].to(w.dtype)
        means += c @ g
        second += c @ (g * g).sum(1)
    return means / n, second / n


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


def _variance_and_dissimilarity(problem: EmpiricalProblem, w: Tensor, counts: Sequence[Tensor]) -> tuple[np.ndarray, np.ndarray]:
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


# ----------------------------------------------------------------------------- the estimate
class Estimate(Constants):
    """The constants, their bootstrap intervals and how they were obtained: theory.constants'
    Constants (validated when built), plus its constants-JSON mapping."""

    def to_json(self) -> dict:
        d = asdict(self)
        if d.get("mu") is None:  # strong convexity is the user's assumption, never estimated (theory/constants.py)
            d.pop("mu", None)
        return d


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


def estimate_constants(
    problem: EmpiricalProblem, *, bootstrap: int = 200, level: float = 0.95, power_iters: int = 30,
    l_bootstrap: int = 20, trajectory_steps: int = 20, lr: Optional[float] = None, batch: int = 32,
    points: int = 3, lbfgs_iters: int = 200, seed: int = 0, threads: Optional[int] = None, quiet: bool = True,
    bands: int = 4, lanczos_steps: int = 12,
) -> Estimate:
    """L, sigma^2, zeta^2, Delta of `problem` with percentile-bootstrap intervals.

    Args:
      bootstrap: replicates for sigma^2, zeta^2, Delta (each worker's samples resampled).
      l_bootstrap: replicates for L (each is a warm-started power iteration on resampled data).
      trajectory_steps, lr, batch: the SGD trajectory (lr defaults to 1 / L at w_0).
      points: trajectory points (evenly spaced, w_0 and the end included) where every
        constant is evaluated; the largest value is reported.
      threads: torch intra-op threads during the estimate (None: 1 for models under 10^5
        parameters, whose tiny ops run fastest on one thread (lgc/threads.py); else unchanged).
      quiet: False draws a progress bar (tqdm, stderr) over the Hessian-vector power
        iterations, gradient sets, bootstrap replicates and L-BFGS.
      bands, lanczos_steps: curvature bands for the error model (0: none) and the Hessian-vector
        products per Lanczos start vector (lgc/spectrum.py).
    """
    if threads is None and problem.w0.numel() < 100_000:
        threads = 1
    with torch_threads(threads):
        return _estimate(problem, bootstrap=bootstrap, level=level, power_iters=power_iters,
                         l_bootstrap=l_bootstrap, trajectory_steps=trajectory_steps, lr=lr, batch=batch,
                         points=points, lbfgs_iters=lbfgs_iters, seed=seed, quiet=quiet, bands=bands,
                         lanczos_steps=lanczos_steps)


def _estimate(problem: EmpiricalProblem, *, bootstrap, level, power_iters, l_bootstrap, trajectory_steps, lr, batch, points,
              lbfgs_iters, seed, quiet=True, bands=4, lanczos_steps=12) -> Estimate:
    from tqdm import tqdm

    check(bootstrap >= 10, f"--bootstrap {bootstrap} must be >= 10")
    check(l_bootstrap >= 0, f"--l-bootstrap {l_bootstrap} must be >= 0")
    check(power_iters >= 1, f"--power-iters {power_iters} must be >= 1")
    check(0 < level < 1, f"--level {level} must be in (0, 1)")
    check(points >= 1 and trajectory_steps >= 0, f"points={points} >= 1 and steps={trajectory_steps} >= 0 required")
    check(lr is None or (np.isfinite(lr) and lr > 0), f"--lr {lr} must be a finite number > 0")
    check(lbfgs_iters >= 1, f"--lbfgs-iters {lbfgs_iters} must be >= 1")
    check(bands >= 0 and lanczos_steps >= 1, f"--bands {bands} must be >= 0 and --lanczos-steps {lanczos_steps} >= 1")
    n_workers = len(problem.workers)
    rng = np.random.default_rng(seed)

    # L at w_0 sets the trajectory's step size
    l0 = max(top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i), problem.w0, iters=power_iters, seed=seed)[0]
             for i in range(n_workers))
    step = lr if lr is not None else 1.0 / max(l0, 1e-12)
    traj = sgd_trajectory(problem, steps=trajectory_steps, lr=step, batch=batch, seed=seed)
    where = sorted({int(round(k)) for k in np.linspace(0, len(traj) - 1, points)})
    bar = tqdm(total=len(where) * (n_workers + 1) + len(traj) + l_bootstrap + 1, desc="estimate", unit="step",
               leave=False, disable=quiet)

    # L: power iteration per worker and point; secants between consecutive trajectory points
    l_hvp, l_arg = -1.0, None
    by_point = {p: {"step": p} for p in where}  # each constant at each trajectory point (source)
    for p in where:
        for i in range(n_workers):
            lam, v = top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i), traj[p], iters=power_iters, seed=seed)
            by_point[p]["L"] = max(by_point[p].get("L", 0.0), lam)
            bar.update(1)
            if lam > l_hvp:
                l_hvp, l_arg = lam, (p, i, v)
    # delta (A6 of theory/DERIVATION.md): secants of a_i = grad f_i - grad F along the trajectory
    pi = torch.as_tensor(np.asarray(problem.pi, dtype=float), dtype=problem.w0.dtype)
    secants, d_secant, d_arg, prev = [], 0.0, (0, 0), worker_gradients(problem, traj[0])
    for t in range(len(traj) - 1):  # one (N, P) gradient set in memory at a time
        cur = worker_gradients(problem, traj[t + 1])
        step_norm = float((traj[t + 1] - traj[t]).norm())
        if step_norm > 0:
            diff = cur - prev
            secants.append(float(diff.norm(dim=1).max()) / step_norm)
            a_diff = (diff - (pi[:, None] * diff).sum(0)).norm(dim=1) / step_norm
            if float(a_diff.max()) > d_secant:
                d_secant, d_arg = float(a_diff.max()), (t, int(a_diff.argmax()))
        prev = cur
        bar.update(1)
    l_secant = max(secants) if secants else float("nan")
    # and the top |eigenvalue| of Hess(f_i - F) for the worker and point of the largest secant
    d_hvp = top_hessian_eigenvalue(lambda w: worker_loss(problem, w, d_arg[1]) - full_loss(problem, w),
                                   traj[d_arg[0]], iters=power_iters, seed=seed)[0]
    p, i, v = l_arg
    lam, v = top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i), traj[p], iters=power_iters, v0=v)
    l_hvp = max(l_hvp, lam)  # refined from the warm start, as the bootstrap replicates are
    x_i = problem.workers[i][0]
    l_boot = []
    for _ in range(l_bootstrap):
        wts = torch.from_numpy(rng.multinomial(len(x_i), np.full(len(x_i), 1 / len(x_i)))).to(problem.w0.dtype)
        l_boot.append(top_hessian_eigenvalue(lambda w: worker_loss(problem, w, i, wts), traj[p],
                                             iters=max(5, power_iters // 3), v0=v)[0])
        bar.update(1)

    # sigma^2 and zeta^2: row 0 of counts is the sample itself, rows 1.. the bootstrap replicates
    counts = []
    for x, _ in problem.workers:
        c = rng.multinomial(len(x), np.full(len(x), 1 / len(x)), size=bootstrap)
        counts.append(torch.from_numpy(np.vstack([np.ones((1, len(x)), dtype=c.dtype), c])))
    sig = np.full(bootstrap + 1, -np.inf)
    zet = np.full(bootstrap + 1, -np.inf)
    for p in where:
        sig_p, zet_p = _variance_and_dissimilarity(problem, traj[p], counts)
        sig, zet = np.maximum(sig, sig_p), np.maximum(zet, zet_p)
        by_point[p].update(sigma2=float(sig_p[0]), zeta2=float(zet_p[0]))
        bar.update(1)

    # the workers' Gram matrices G_ij = <a_i, a_j> at the same points (A4G, theory/DERIVATION.md 4.7)
    gram = None
    if n_workers <= GRAM_MAX_WORKERS:
        gram = []
        for p in where:
            g = worker_gradients(problem, traj[p]).double()
            a = g - (pi.double()[:, None] * g).sum(0)
            gram.append((a @ a.T).numpy().tolist())

    # the error model's curvature bands at w_0 (lgc/spectrum.py, DERIVATION.md section 8.3)
    spectrum = None
    if bands > 0:
        from lgc.spectrum import curvature_bands

        spectrum = curvature_bands(problem, problem.w0, max(l_hvp, l_secant if np.isfinite(l_secant) else 0.0), bands=bands, steps=lanczos_steps, seed=seed)

    # Delta: F(w_0) - lowest F from L-BFGS; bootstrap over the per-sample loss differences
    f_best, w_best = lowest_loss(problem, iters=lbfgs_iters)
    bar.update(1)
    bar.close()
    f0 = float(full_loss(problem, problem.w0))
    with torch.no_grad():
        d_boot = np.zeros(bootstrap)
        for i, (x, y) in enumerate(problem.workers):
            diff = (problem.per_sample_loss(problem.w0, x, y) - problem.per_sample_loss(w_best, x, y)).double()
            d_boot += problem.pi[i] * (counts[i][1:].double() @ diff).numpy() / len(x)

    return Estimate(
        L=float(max(l_hvp, l_secant if np.isfinite(l_secant) else 0.0)),
        sigma2=float(sig[0]), zeta2=float(zet[0]), Delta=float(f0 - f_best), delta=float(max(d_secant, d_hvp)),
        gram=gram, bands=spectrum,
        intervals={
            "L": _interval(l_hvp, np.array(l_boot), level) if l_boot else [l_hvp, l_hvp],
            "sigma2": _interval(float(sig[0]), sig[1:], level),
            "zeta2": _interval(float(zet[0]), zet[1:], level),
            "Delta": _interval(float(f0 - f_best), d_boot, level),
        },
        source={
            "problem": problem.name, "workers": n_workers,
            "samples_per_worker": [len(x) for x, _ in problem.workers],
            "parameters": int(problem.w0.numel()),
            "L_hvp": l_hvp, "L_secant": l_secant if np.isfinite(l_secant) else None, "L_at_w0": l0,
            "interval_level": level,
            "L_method": f"max |top Hessian eigenvalue| over workers x {len(where)} trajectory points "
                        f"(power iteration, {power_iters} HVPs), max with the largest secant",
            "sigma2_method": "max over workers and trajectory points of the unbiased per-sample gradient variance",
            "zeta2_method": "max over trajectory points of (1/N) sum_i ||grad f_i - grad F||^2",
            "delta_method": "max of the largest secant ||a_i(w') - a_i(w)|| / ||w' - w|| (a_i = grad f_i - grad F) "
                            "between consecutive trajectory points and the top |eigenvalue| of Hess(f_i - F) "
                            f"({power_iters} HVPs) for that worker and point",
            "delta_secant": d_secant, "delta_hvp": d_hvp,
            "gram_method": (f"G_ij = <a_i, a_j> (a_i = grad f_i - grad F, full per-worker gradients) at the "
                            f"{len(where)} trajectory points, one matrix each" if gram is not None else
                            f"not measured: N = {n_workers} > {GRAM_MAX_WORKERS} workers (an N x N matrix per point)"),
            "Delta_method": f"F(w_0) - lowest F of full-batch L-BFGS ({lbfgs_iters} iterations); F(w_0)={f0:.6g}",
            "F_w0": f0, "F_best": f_best,
            "trajectory": {"steps": trajectory_steps, "lr": step, "batch_per_worker": batch, "points": where},
            "by_point": [by_point[p] for p in where],
            "bootstrap": {"replicates": bootstrap, "L_replicates": l_bootstrap, "seed": seed,
                          "method": "bias-corrected percentile (estimate + centred quantiles); "
                                    "each worker's samples resampled with replacement"},
        },
    )


# ----------------------------------------------------------------------------- lgc.estimate(task)
class _CallableModule(types.ModuleType):
    """`lgc.estimate` is this module (problem_from_model, estimate_constants, ...) and the public
    call lgc.estimate(task) -> Constants (lgc.api.estimate): importing the module binds the name
    `estimate` on the package, so the module itself answers the call."""

    def __call__(self, task, config=None, **options):
        from lgc.api import estimate

        return estimate(task, config, **options)


sys.modules[__name__].__class__ = _CallableModule
