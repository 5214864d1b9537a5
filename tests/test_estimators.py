"""lgc/estimators.py: each constant's estimator alone, a function of the problem, against an explicit computation
on least squares; the edge cases of the orchestration (no step moved, too many workers for the Gram matrices);
and the names lgc.estimate keeps (lgc/empirical.py holds the problem, lgc/estimators.py the estimators)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import lgc.empirical
import lgc.estimate
import lgc.estimators
from lgc.empirical import EmpiricalProblem
from lgc.estimate import estimate_constants
from lgc.estimators import (
    bootstrap_counts, initial_gap, secants, smoothness, trajectory, variance_and_dissimilarity,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _least_squares(n_workers=3, n=40, dim=3, pi=None):
    """f_i(w) = (1/n) sum_s (x_s^T w - y_s)^2 / 2 (float64): per-sample gradient x_s (x_s^T w - y_s)."""
    g = torch.Generator().manual_seed(0)
    workers = []
    for i in range(n_workers):
        x = torch.randn(n, dim, generator=g, dtype=torch.float64) * (1.0 + 0.5 * i)
        y = x @ torch.full((dim,), float(i), dtype=torch.float64) + torch.randn(n, generator=g, dtype=torch.float64)
        workers.append((x, y))
    return EmpiricalProblem(lambda w, x, y: 0.5 * (x @ w - y) ** 2, workers, torch.ones(dim, dtype=torch.float64),
                            pi=pi, name="lsq")


def _no_tick(*_):
    return None


def test_variance_and_dissimilarity_alone_equal_an_explicit_computation():
    pi = np.array([0.5, 0.3, 0.2])
    problem = _least_squares(pi=pi)
    traj = trajectory(problem, steps=0, lr=0.1, batch=8, points=1, power_iters=5, seed=0)
    counts = bootstrap_counts(problem, np.random.default_rng(1), 10)
    got = variance_and_dissimilarity(problem, traj, counts, level=0.9, tick=_no_tick)
    w = problem.w0
    per_sample = [x * (x @ w - y)[:, None] for x, y in problem.workers]  # (n, P) each
    var = [float(((g - g.mean(0)) ** 2).sum(1).sum()) / (len(g) - 1) for g in per_sample]
    means = torch.stack([g.mean(0) for g in per_sample])
    grad_f = (torch.from_numpy(pi)[:, None] * means).sum(0)
    zeta2 = float(((means - grad_f) ** 2).sum(1).mean())  # (1/N) sum_i, whatever pi is (A4)
    assert got.sigma2 == pytest.approx(max(var), rel=1e-10)
    assert got.zeta2 == pytest.approx(zeta2, rel=1e-10)
    assert got.by_point == {0: {"sigma2": got.sigma2, "zeta2": got.zeta2}}
    # a bootstrap replicate is the same statistic of the resampled samples (the counts as weights)
    c = [cnt[1].double() for cnt in counts]
    rep_means = torch.stack([(ci[:, None] * g).sum(0) / len(g) for ci, g in zip(c, per_sample)])
    rep_grad = (torch.from_numpy(pi)[:, None] * rep_means).sum(0)
    rep_zeta2 = float(((rep_means - rep_grad) ** 2).sum(1).mean())
    zeta2_replicates = lgc.estimators._variance_and_dissimilarity_at(problem, w, counts)[1]
    assert zeta2_replicates[1] == pytest.approx(rep_zeta2, rel=1e-10)


def test_initial_gap_alone_is_the_least_squares_gap():
    problem = _least_squares()
    counts = bootstrap_counts(problem, np.random.default_rng(0), 20)
    gap = initial_gap(problem, counts, lbfgs_iters=100, level=0.95, tick=_no_tick)
    # F = sum_i pi_i (1/2n) ||X_i w - y_i||^2: its minimiser solves the pi-weighted normal equations
    a = sum(p * x.T @ x / len(x) for p, (x, _) in zip(problem.pi, problem.workers))
    b = sum(p * x.T @ y / len(x) for p, (x, y) in zip(problem.pi, problem.workers))
    w_star = torch.linalg.solve(a, b)

    def f(w):
        return sum(p * float((0.5 * (x @ w - y) ** 2).mean()) for p, (x, y) in zip(problem.pi, problem.workers))

    assert gap.F_w0 == pytest.approx(f(problem.w0), rel=1e-12)
    assert gap.Delta == pytest.approx(f(problem.w0) - f(w_star), rel=1e-8)
    lo, hi = gap.interval
    assert lo < gap.Delta < hi


def test_with_no_step_there_is_no_secant_and_L_is_the_power_iteration():
    """trajectory_steps = 0: one point, no secant; L is the Hessian's top eigenvalue, max_i ||X_i^T X_i / n||_2,
    delta its Hess(f_i - F) part at w_0 (the secant's worker and point default to the first)."""
    problem = _least_squares()
    traj = trajectory(problem, steps=0, lr=None, batch=8, points=3, power_iters=200, seed=0)
    assert traj.points == [0] and len(traj.w) == 1
    sec = secants(problem, traj, _no_tick)
    assert np.isnan(sec.L) and sec.delta == 0.0 and sec.delta_at == (0, 0)
    hess = [x.T @ x / len(x) for x, _ in problem.workers]
    exact_l = max(float(torch.linalg.matrix_norm(h, ord=2)) for h in hess)
    assert traj.lr == pytest.approx(1 / exact_l, rel=1e-3)  # the step size 1 / L at w_0
    L = smoothness(problem, traj, sec, np.random.default_rng(0), power_iters=200, l_bootstrap=0, level=0.9, seed=0,
                   tick=_no_tick)
    assert L.secant is None and L.L == L.hvp == pytest.approx(exact_l, rel=1e-3) and L.interval == [L.hvp, L.hvp]
    est = estimate_constants(problem, bootstrap=10, l_bootstrap=0, power_iters=200, trajectory_steps=0, lbfgs_iters=20,
                             bands=0)
    hbar = sum(p * h for p, h in zip(problem.pi, hess))
    assert est.source["L_secant"] is None and est.L == L.L
    assert est.delta == est.source["delta_hvp"] == pytest.approx(float(torch.linalg.matrix_norm(hess[0] - hbar, ord=2)),
                                                                rel=1e-3)


def test_gram_matrices_are_not_measured_above_the_limit(monkeypatch):
    problem = _least_squares()
    kw = dict(bootstrap=10, l_bootstrap=0, power_iters=5, trajectory_steps=2, lbfgs_iters=5, bands=0)
    assert len(estimate_constants(problem, **kw).gram) == 3  # points 0, 1, 2
    monkeypatch.setattr(lgc.estimators, "GRAM_MAX_WORKERS", 2)
    monkeypatch.setattr(lgc.estimate, "GRAM_MAX_WORKERS", 2)
    est = estimate_constants(problem, **kw)
    assert est.gram is None
    assert est.source["gram_method"] == "not measured: N = 3 > 2 workers (an N x N matrix per point)"


def test_lgc_estimate_keeps_its_public_names():
    """Code written against lgc.estimate (problem_from_model, worker_gradients, ...) keeps working: each public
    name resolves, and the problem's names are lgc.empirical's own objects, not copies."""
    for name in lgc.estimate.__all__:
        assert hasattr(lgc.estimate, name), name
    for name in ("EmpiricalProblem", "problem_from_model", "quadratic_problem", "worker_loss", "full_loss",
                 "worker_gradients", "per_sample_gradients", "gradient_moments"):
        assert getattr(lgc.estimate, name) is getattr(lgc.empirical, name), name
    for name in ("top_hessian_eigenvalue", "sgd_trajectory", "lowest_loss"):
        assert getattr(lgc.estimate, name) is getattr(lgc.estimators, name), name
    assert callable(lgc.estimate)  # lgc.estimate(task), lgc/api.py
