"""The strong-convexity bound (theory/strong.py, DERIVATION.md section 4.8): its slopes, its reduction to
full-sync at K = N, the tradeoff's use of it, and bound >= simulation on a per-worker-curvature quadratic."""
import numpy as np
import pytest

from theory import bounds, strong
from theory.errors import TheoryInputError
from theory.timing import HeterogeneousSpeed, ShiftedExponential
from paper_figures.kstar_sim import Quadratic, draw_times, simulate

N, M, B = 6, 2, 8


def _quadratic(start_at_optimum=False, seed=3):
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.2, 1.0, size=(N, 4))
    h[0, 0] = 1.0
    c = rng.normal(0.0, 1.0, size=(N, 4))
    q = Quadratic(h=h, c=c, w0=rng.normal(0.0, 2.0, size=4), sigma2=6.0, name="per-worker-H")
    if start_at_optimum:  # Delta = 0: no start-up term, only what the bound charges every round
        q = Quadratic(h=h, c=c, w0=q.w_star.copy(), sigma2=6.0, name="per-worker-H")
    return q


def _a(q, w):
    g = q.h * (w[None] - q.c)
    return g - g.mean(0)


@pytest.mark.parametrize("separable", [True, False])
def test_slopes_bound_the_deviations(separable):
    """eqs. (4.42)-(4.44) pointwise: ||sum_i c_i a_i(w)|| <= sqrt(c^T G* c) + kappa(c) ||w - w*||, and the trace form."""
    q = _quadratic()
    opt = q.optimum() if separable else strong.OptimumGram(_a(q, q.w_star) @ _a(q, q.w_star).T, delta=q.delta)
    rng = np.random.default_rng(0)
    C = rng.normal(size=(20, N))
    Q = np.einsum("rn,rm->rnm", C, C) + np.eye(N)[None]
    g, k = opt.rows(C)
    tr, kt = opt.traces(Q)
    for _ in range(50):
        w = q.w_star + rng.normal(0.0, 3.0, size=4)
        A = _a(q, w)
        e = np.linalg.norm(w - q.w_star)
        assert np.all(np.linalg.norm(C @ A, axis=1) <= np.sqrt(g) + k * e + 1e-9)
        assert np.all(np.sqrt(np.einsum("rnm,nk,mk->r", Q, A, A)) <= np.sqrt(tr) + kt * e + 1e-9)
    at = np.linalg.norm(C @ _a(q, q.w_star), axis=1) ** 2
    np.testing.assert_allclose(g, at, rtol=1e-9)  # exact at w*


@pytest.mark.parametrize("algorithm", ["fastest-k", "lgc"])
@pytest.mark.parametrize("timing,h", [(ShiftedExponential(1.0, 1.0), 1), (ShiftedExponential(1.0, 1.0), 10**6),
                                      (HeterogeneousSpeed(slow_fraction=0.3, slowdown=4.0), 1)])
@pytest.mark.parametrize("separable", [True, False])
def test_reduces_to_full_sync_at_k_equals_n(algorithm, timing, h, separable):
    q = _quadratic()
    opt = q.optimum() if separable else strong.OptimumGram(np.eye(N) - 1.0 / N, delta=0.4)
    law = strong.coefficient_law(timing, N, M, B, h, [N - 1, N], opt, q.sigma2, rounds=50)
    sb = strong.StrongBound(algorithm, N=N, B=B, M=M, L=q.L, mu=q.mu, sigma2=q.sigma2, Delta=q.Delta, law=law)
    for eta, T in ((0.3, 7), (0.9, 150)):
        got = sb(eta, T)
        full = bounds.evaluate("full-sync", N=N, K=N, B=B, M=M, eta=eta, T=T, L=q.L, sigma2=q.sigma2, zeta2=1.0,
                               Delta=q.Delta)["total"]
        assert got["total"][1] == pytest.approx(float(full), rel=1e-12)
        assert got["total"][0] > got["total"][1]  # K = N - 1 pays set terms


def test_first_principles_checks():
    with pytest.raises(TheoryInputError, match="mu="):
        strong.StrongBound("lgc", N=N, B=B, M=M, L=1.0, mu=1.5, sigma2=1.0, Delta=1.0, law={})
    assert strong.contraction(0.5, 1.0, 0.2) == pytest.approx(0.9)
    assert strong.contraction(1.9, 1.0, 0.2) == pytest.approx(0.9)  # |1 - eta L| wins past 2/(L + mu)
    assert strong.law_mode(ShiftedExponential(), 1) == "independent"
    assert strong.law_mode(ShiftedExponential(), 10**6) == "held"
    assert strong.law_mode(HeterogeneousSpeed(hold="speed", slow_workers="random"), 5) is None


def _measured_and_bound(algorithm, timing, h, eta_l, ks, seeds=400, T=120):
    q = _quadratic(start_at_optimum=True)
    x = draw_times(timing, seeds, T, N, h, seed=5)
    g = simulate(q, algorithm, x, ks, m_blocks=M, batch=B, eta=eta_l / q.L, seed=7)  # (K, S, T)
    per_seed = g.mean(2)
    measured = per_seed.mean(1)
    se = per_seed.std(1, ddof=1) / np.sqrt(seeds)
    law = strong.coefficient_law(timing, N, M, B, h, ks, q.optimum(), q.sigma2)
    sb = strong.StrongBound(algorithm, N=N, B=B, M=M, L=q.L, mu=q.mu, sigma2=q.sigma2, Delta=q.Delta, law=law)
    out = sb(eta_l / q.L, T)
    set_part = sum(v for k, v in out["terms"].items() if k not in ("optimization", "noise", "variance"))
    return out["total"], measured, se, out["total"] - set_part


@pytest.mark.parametrize("algorithm,eta_l", [("fastest-k", 0.95), ("lgc", 0.8)])
@pytest.mark.parametrize("timing,h", [(ShiftedExponential(1.0, 1.0), 1), (ShiftedExponential(1.0, 1.0), 10**6),
                                      (HeterogeneousSpeed(slow_fraction=0.3, slowdown=4.0), 1)])
def test_bound_above_simulation_per_worker_curvatures(algorithm, eta_l, timing, h):
    """Workers with their own curvatures (delta > 0, so lgc's delay and the distance terms matter), started at
    w* (Delta = 0: the start-up term is gone, every remaining term is measured), near the step-size limit (fastest-K:
    eta L <= 1; lgc: eta L < 1, and with held sets (4.49')'s absorption condition fails at K <= 2 from about 0.85)."""
    ks = [1, 2, 4, N]
    bound, measured, se, no_sets = _measured_and_bound(algorithm, timing, h, eta_l, ks)
    finite = np.isfinite(bound)
    assert finite.sum() >= 3, bound
    assert np.all(bound[finite] >= measured[finite] + 2 * se[finite]), (bound, measured, se)
    # the set terms carry what is measured: without them the bound at K = 1 would be below the simulation
    assert no_sets[0] < measured[0] - 2 * se[0], (no_sets, measured)


def test_tradeoff_keeps_the_smaller_bound_and_is_unchanged_without_mu():
    """theory.tradeoff with mu: per K the smaller of the box bound and eq. (4.48)/(4.49) (eq. 4.50); without mu the
    bound is the box path's, bit for bit."""
    from dataclasses import replace

    from theory.tradeoff import Problem, tradeoff

    q = _quadratic()
    base = Problem(N=N, M=M, B=B, timing=ShiftedExponential(1.0, 1.0), h=1, semantics="abort", delta=q.delta,
                   dissimilarity=q.dissimilarity(), **q.constants())
    for alg in ("fastest-k", "lgc"):
        box = tradeoff(alg, base, budget=80.0, eta=0.5)
        again = tradeoff(alg, replace(base, mu=None, optimum=None), budget=80.0, eta=0.5)
        assert np.array_equal(box.bound, again.bound)
        sc = tradeoff(alg, replace(base, mu=q.mu, optimum=q.optimum()), budget=80.0, eta=0.5)
        assert np.all(sc.bound <= box.bound) and np.any(sc.bound < 0.95 * box.bound)
        assert sc.bound[-1] == box.bound[-1]  # K = N: full-sync's (4.6) either way


def test_optimize_k_mu(capsys):
    from lgc.cli import main
    from test_cli_errors import _fails  # one CLI-error check for every test file

    argv = ["optimize-k", "--L", "1", "--sigma2", "30", "--zeta2", "12", "--Delta", "14", "--delta", "0.46",
            "--workers", "6", "--blocks", "2", "--batch-size", "8", "--budget", "120"]
    _fails(capsys, argv + ["--mu", "2"], "mu=2.0 must satisfy 0 < mu <= L=1.0")
    _fails(capsys, argv + ["--mu", "-1"], "mu=-1")
    assert main(argv) == 0
    plain = capsys.readouterr().out
    assert "strong convexity: not assumed" in plain
    assert main(argv + ["--mu", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "strong convexity: mu=0.5" in out


def test_nonconvex_worker_counterexample_bound_holds():
    """issue 23: A7 constrains F only. 1-D, N = 10, curvatures (1, ..., 1, -1) (mu = 0.8, L = 1), every f_i minimised
    at 0 (G* = 0), worker 9 always fast, K = 2, independent sets, no sampling noise: the fast set's curvature is 0,
    so w_t = w_0 = 1 and ||grad F||^2 = 0.64 every round (zeta^2 = 0.36 on the iterates). kappa(xbar) must be >= |sum_i xbar_i s_i| = 0.8; the old slope
    L min_m sum |xbar_i - m| = 0.44 gave a bound of 0.032 at T = 100 (0.0006 at T = 5000)."""
    from theory.timing_workers import WorkerShiftedExponential
    from theory.tradeoff import Problem, tradeoff

    n, m, b, k = 10, 2, 8, 2
    q = Quadratic(h=np.array([[1.0]] * 9 + [[-1.0]]), c=np.zeros((n, 1)), w0=np.ones(1), sigma2=0.0, name="nonconvex")
    assert (q.L, float(q.hbar[0]), q.Delta) == pytest.approx((1.0, 0.8, 0.4))
    timing = WorkerShiftedExponential(shifts=(1.0,) * 9 + (0.0,), rates=(1.0,) * 9 + (1e6,))
    opt = strong.OptimumGram(np.zeros((n, n)), L=q.L)  # G* = 0 exactly; delta unknown: 2L
    law = strong.coefficient_law(timing, n, m, b, 1, [k], opt, q.sigma2)
    assert law["mode"] == "independent"
    assert law["x_bias"][1][0, 0] >= 0.8 - 1e-9  # a Lipschitz constant of sum_i xbar_i a_i(w) = -0.8 w
    sb = strong.StrongBound("fastest-k", N=n, B=b, M=m, L=q.L, mu=0.8, sigma2=q.sigma2, Delta=q.Delta, law=law)
    eta, T = 0.5, 5000
    x = draw_times(timing, 20, T, n, 1, seed=1)
    measured = simulate(q, "fastest-k", x, [k], m_blocks=m, batch=b, eta=eta)[0]  # (S, T)
    for t in (100, 1000, 5000):
        err = measured[:, :t].mean()
        assert err == pytest.approx(0.64)  # the counterexample's point: the error does not fall
        assert sb(eta, t)["total"][0] >= err
    prob = Problem(N=n, M=m, B=b, L=q.L, sigma2=q.sigma2, zeta2=0.36, Delta=q.Delta, timing=timing, mu=0.8,
                   optimum=opt)
    res = tradeoff("fastest-k", prob, budget=1000.0, eta=eta, ks=[k, n])
    assert res.bound[0] >= measured[:, : int(res.rounds[0])].mean()
