"""Estimate the constants of the bounds (L, sigma^2, zeta^2, Delta) from a model and data.

What a user sees: README "Data, partitions and models" (constants); the assumptions they
instantiate are stated in theory/DERIVATION.md (section 4.1): each f_i L-smooth, per-sample gradient variance <= sigma^2, (1/N) sum_i
||grad f_i - grad F||^2 <= zeta^2, Delta = F(w_0) - F*.

The assumptions hold "for every w", so each constant is the largest value seen at a few
points of a short SGD trajectory from w_0 (w_0, its middle and its end). Where the parts are:

- the problem (per-worker data, a per-sample loss of flat parameters, its losses and gradients): lgc/empirical.py;
- one estimator per constant (L, sigma^2 and zeta^2, delta, the Gram matrices, Delta), each with its bootstrap
  interval: lgc/estimators.py;
- the error model's curvature bands (F's Hessian spectrum at w_0 and each band's share of Delta, sigma^2 and
  zeta^2, by stochastic Lanczos quadrature): lgc/spectrum.py;
- here: `estimate_constants` runs them in turn (`_estimate`) and records how each was obtained, the constants
  JSON's "source" (`_provenance`).

The problem's names and the numerical building blocks (power iteration, SGD trajectory, L-BFGS) are also names
of this module (lgc.estimate.problem_from_model, ...).
Pure computation: no files, no printing (lgc/commands/estimate.py does the I/O).
"""
from __future__ import annotations

import sys
import types
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np

from lgc.empirical import (  # the problem, its losses and gradients
    EmpiricalProblem, PerSampleLoss, full_loss, gradient_moments, per_sample_gradients, problem_from_model,
    quadratic_problem, task_problem, worker_gradients, worker_loss,
)
from lgc.errors import check
from lgc.estimators import (
    GRAM_MAX_WORKERS, DissimilaritySmoothness, InitialGap, Noise, Smoothness, Trajectory, bootstrap_counts,
    dissimilarity_smoothness, gram_matrices, initial_gap, lowest_loss, secants, sgd_trajectory, smoothness,
    top_hessian_eigenvalue, trajectory, variance_and_dissimilarity,
)
from lgc.threads import torch_threads
from theory.constants import Constants
from theory.delta_fit import DELTA_SPLITS  # Delta's split over the bands: eq. (8.10') or (8.10)

__all__ = [  # the public names of lgc.estimate, wherever they live
    "EmpiricalProblem", "PerSampleLoss", "problem_from_model", "task_problem", "quadratic_problem", "worker_loss", "full_loss",
    "worker_gradients", "per_sample_gradients", "gradient_moments", "top_hessian_eigenvalue", "sgd_trajectory",
    "lowest_loss", "GRAM_MAX_WORKERS", "Estimate", "estimate_constants",
]


# ----------------------------------------------------------------------------- the estimate
class Estimate(Constants):
    """The constants, their bootstrap intervals and how they were obtained: theory.constants'
    Constants (validated when built), plus its constants-JSON mapping."""

    def to_json(self) -> dict:
        d = asdict(self)
        if d.get("mu") is None:  # strong convexity is the user's assumption, never estimated (theory/constants.py)
            d.pop("mu", None)
        if d.get("heldout") is None:  # `lgc estimate` adds its pilot's record (lgc/heldout.py) where asked
            d.pop("heldout", None)
        return d


@dataclass(frozen=True)
class _Options:
    """estimate_constants' arguments (its docstring says what each is), checked when built."""

    bootstrap: int
    level: float
    power_iters: int
    l_bootstrap: int
    trajectory_steps: int
    lr: Optional[float]
    batch: int
    points: int
    lbfgs_iters: int
    seed: int
    bands: int
    lanczos_steps: int
    delta_split: str
    worker_curvatures: bool = False

    def __post_init__(self):
        check(self.bootstrap >= 10, f"--bootstrap {self.bootstrap} must be >= 10")
        check(self.l_bootstrap >= 0, f"--l-bootstrap {self.l_bootstrap} must be >= 0")
        check(self.power_iters >= 1, f"--power-iters {self.power_iters} must be >= 1")
        check(0 < self.level < 1, f"--level {self.level} must be in (0, 1)")
        check(self.points >= 1 and self.trajectory_steps >= 0,
              f"points={self.points} >= 1 and steps={self.trajectory_steps} >= 0 required")
        check(self.lr is None or (np.isfinite(self.lr) and self.lr > 0), f"--lr {self.lr} must be a finite number > 0")
        check(self.lbfgs_iters >= 1, f"--lbfgs-iters {self.lbfgs_iters} must be >= 1")
        check(self.bands >= 0 and self.lanczos_steps >= 1,
              f"--bands {self.bands} must be >= 0 and --lanczos-steps {self.lanczos_steps} >= 1")
        check(self.delta_split in DELTA_SPLITS, f"--delta-split {self.delta_split!r} must be one of {', '.join(DELTA_SPLITS)}")


def estimate_constants(
    problem: EmpiricalProblem, *, bootstrap: int = 200, level: float = 0.95, power_iters: int = 30,
    l_bootstrap: int = 20, trajectory_steps: int = 20, lr: Optional[float] = None, batch: int = 32,
    points: int = 3, lbfgs_iters: int = 200, seed: int = 0, threads: Optional[int] = None, quiet: bool = True,
    bands: int = 4, lanczos_steps: int = 12, delta_split: str = "fit", worker_curvatures: bool = False,
    heldout=None, heldout_steps: int = 0, heldout_lr: Optional[float] = None, heldout_points: int = 9,
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
      delta_split: how the bands split Delta: "fit" (calibrated on the trajectory's losses, eq. 8.10', where the
        fit is informative, else 8.10) or "spectrum" (the gradient's spectral measure at w_0, eq. 8.10); the
        constants JSON records both.
      worker_curvatures: also each worker's curvature per band (bands.workers, r_ij = y^T H_i y along each band's
        heaviest Ritz vector, N x J more Hessian-vector products; lgc/spectrum.py; up to 64 workers), which the error
        model then uses (DERIVATION.md eq. 8.5'').
      heldout, heldout_steps, heldout_lr, heldout_points: held-out (x, y), as the model takes them, and the pilot
        run on them (lgc/heldout.py; lr None: 0.5 / L): its record is the Estimate's `heldout` (eq. 8.14). None or 0
        steps: no pilot.
    """
    opts = _Options(bootstrap=bootstrap, level=level, power_iters=power_iters, l_bootstrap=l_bootstrap,
                    trajectory_steps=trajectory_steps, lr=lr, batch=batch, points=points, lbfgs_iters=lbfgs_iters,
                    seed=seed, bands=bands, lanczos_steps=lanczos_steps, delta_split=delta_split,
                    worker_curvatures=worker_curvatures)
    if threads is None and problem.w0.numel() < 100_000:
        threads = 1
    with torch_threads(threads):
        est = _estimate(problem, opts, quiet=quiet)
        if heldout is not None and heldout_steps > 0:  # the held-out pilot (lgc/heldout.py, DERIVATION.md eq. 8.14)
            from lgc.heldout import heldout_record

            est = replace(est, heldout=heldout_record(problem, *heldout, L=est.L, steps=heldout_steps, lr=heldout_lr,
                                                      points=heldout_points, seed=seed))
    return est


def _estimate(problem: EmpiricalProblem, opts: _Options, *, quiet: bool) -> Estimate:
    """Each estimator in turn; one generator draws L's bootstrap, then the resampling the others share."""
    from tqdm import tqdm

    rng = np.random.default_rng(opts.seed)
    traj = trajectory(problem, steps=opts.trajectory_steps, lr=opts.lr, batch=opts.batch, points=opts.points,
                      power_iters=opts.power_iters, seed=opts.seed)
    n_workers = len(problem.workers)
    bar = tqdm(total=len(traj.points) * (n_workers + 1) + len(traj.w) + opts.l_bootstrap + 1, desc="estimate",
               unit="step", leave=False, disable=quiet)
    sec = secants(problem, traj, bar.update)
    L = smoothness(problem, traj, sec, rng, power_iters=opts.power_iters, l_bootstrap=opts.l_bootstrap,
                   level=opts.level, seed=opts.seed, tick=bar.update)
    delta = dissimilarity_smoothness(problem, traj, sec, power_iters=opts.power_iters, seed=opts.seed)
    counts = bootstrap_counts(problem, rng, opts.bootstrap)  # after L's replicates: the draws' order is the seed's
    noise = variance_and_dissimilarity(problem, traj, counts, level=opts.level, tick=bar.update)
    gram = gram_matrices(problem, traj)
    spectrum = None
    if opts.bands > 0:  # the error model's curvature bands at w_0 (lgc/spectrum.py, DERIVATION.md section 8.3)
        from lgc.spectrum import curvature_bands

        spectrum = curvature_bands(problem, problem.w0, L.L, bands=opts.bands, steps=opts.lanczos_steps, seed=opts.seed,
                                   workers=opts.worker_curvatures)
    gap = initial_gap(problem, counts, lbfgs_iters=opts.lbfgs_iters, level=opts.level, tick=bar.update)
    if spectrum is not None:  # Delta's split over the bands calibrated on the trajectory's losses (eq. 8.10')
        from lgc.spectrum import calibrate_delta

        spectrum = calibrate_delta(problem, traj, spectrum, sigma2=noise.sigma2, Delta=gap.Delta, batch=opts.batch,
                                   prefer=opts.delta_split)
    bar.close()
    return Estimate(
        L=L.L, sigma2=noise.sigma2, zeta2=noise.zeta2, Delta=gap.Delta, delta=delta.delta, gram=gram, bands=spectrum,
        intervals={"L": L.interval, **noise.intervals, "Delta": gap.interval},
        source=_provenance(problem, opts, traj, L, delta, noise, gram, gap))


def _provenance(problem: EmpiricalProblem, opts: _Options, traj: Trajectory, L: Smoothness,
                delta: DissimilaritySmoothness, noise: Noise, gram: Optional[list], gap: InitialGap) -> dict:
    """The constants JSON's "source": the problem, each estimate's method and parts, the trajectory and the
    bootstrap."""
    n_workers = len(problem.workers)
    return {
        "problem": problem.name, "workers": n_workers,
        "samples_per_worker": [len(x) for x, _ in problem.workers],
        "parameters": int(problem.w0.numel()),
        "L_hvp": L.hvp, "L_secant": L.secant, "L_at_w0": traj.L_w0,
        "interval_level": opts.level,
        "L_method": f"max |top Hessian eigenvalue| over workers x {len(traj.points)} trajectory points "
                    f"(power iteration, {opts.power_iters} HVPs), max with the largest secant",
        "sigma2_method": "max over workers and trajectory points of the unbiased per-sample gradient variance",
        "zeta2_method": "max over trajectory points of (1/N) sum_i ||grad f_i - grad F||^2",
        "delta_method": "max of the largest secant ||a_i(w') - a_i(w)|| / ||w' - w|| (a_i = grad f_i - grad F) "
                        "between consecutive trajectory points and the top |eigenvalue| of Hess(f_i - F) "
                        f"({opts.power_iters} HVPs) for that worker and point",
        "delta_secant": delta.secant, "delta_hvp": delta.hvp,
        "gram_method": (f"G_ij = <a_i, a_j> (a_i = grad f_i - grad F, full per-worker gradients) at the "
                        f"{len(traj.points)} trajectory points, one matrix each" if gram is not None else
                        f"not measured: N = {n_workers} > {GRAM_MAX_WORKERS} workers (an N x N matrix per point)"),
        "Delta_method": f"F(w_0) - lowest F of full-batch L-BFGS ({opts.lbfgs_iters} iterations); "
                        f"F(w_0)={gap.F_w0:.6g}",
        "F_w0": gap.F_w0, "F_best": gap.F_best,
        "trajectory": {"steps": opts.trajectory_steps, "lr": traj.lr, "batch_per_worker": opts.batch,
                       "points": traj.points},
        "by_point": [{"step": p, "L": L.by_point[p], **noise.by_point[p]} for p in traj.points],
        "bootstrap": {"replicates": opts.bootstrap, "L_replicates": opts.l_bootstrap, "seed": opts.seed,
                      "method": "bias-corrected percentile (estimate + centred quantiles); "
                                "each worker's samples resampled with replacement"},
    }


# ----------------------------------------------------------------------------- lgc.estimate(task)
class _CallableModule(types.ModuleType):
    """`lgc.estimate` is this module (problem_from_model, estimate_constants, ...) and the public
    call lgc.estimate(task) -> Constants (lgc.api.estimate): importing the module binds the name
    `estimate` on the package, so the module itself answers the call."""

    def __call__(self, task, config=None, **options):
        from lgc.api import estimate

        return estimate(task, config, **options)


sys.modules[__name__].__class__ = _CallableModule
