"""E[t_cut], E[R(K)] and E[m_j]: closed form vs integration vs Monte Carlo vs the schedule code."""
import numpy as np
import pytest
from scipy import integrate, special

from theory.order_stats import (
    CommModel, expected_order_statistic, expected_round_times, round_stats, shifted_exp_order_stats,
)
from theory.schedule import schedule_round
from theory.timing import Deterministic, HeterogeneousSpeed, Pareto, ShiftedExponential


@pytest.mark.parametrize("n", [1, 2, 10, 137, 1000])
def test_integrated_order_statistics_match_the_closed_form(n):
    model = ShiftedExponential(shift=0.3, rate=1.7)
    ks = np.array(sorted({k for k in (1, 2, n // 3, n // 2, n - 1, n) if 1 <= k <= n}))
    num = np.array([expected_order_statistic(model, int(k), n) for k in ks])
    assert np.max(np.abs(num / shifted_exp_order_stats(model, n, ks) - 1)) < 1e-6


def test_closed_form_is_the_harmonic_sum():
    m = ShiftedExponential(shift=2.0, rate=4.0)
    assert m.expected_order_statistic(3, 5) == pytest.approx(2.0 + (1 / 5 + 1 / 4 + 1 / 3) / 4.0, rel=1e-14)


@pytest.mark.parametrize("n,k", [(5, 1), (10, 7), (40, 20), (200, 199)])
def test_monte_carlo_cutoff_within_four_standard_errors(n, k):
    model = ShiftedExponential()
    st = round_stats(model, n, 4, ks=[k], rounds=3000, seed=11)
    exact = model.expected_order_statistic(k, n)
    assert abs(st.t_cut[0] - exact) < 4 * st.t_cut_se[0]


@pytest.mark.parametrize("semantics", ["boundary", "abort"])
@pytest.mark.parametrize("m_blocks", [1, 2, 5])
@pytest.mark.parametrize("model", [ShiftedExponential(), HeterogeneousSpeed(slowdown=4.0), Pareto(1.0, 1.5),
                                   ShiftedExponential(per_block=True), Deterministic(times=(1, 2, 3, 1.5, 7, 1.2, 4.1))])
def test_vectorized_rounds_equal_the_schedule_code(model, m_blocks, semantics):
    n, rounds = 7, 4
    st = round_stats(model, n, m_blocks, semantics=semantics, rounds=rounds, seed=5)
    r_eff = st.rounds
    wall, m_mean, m_inv, zero = (np.zeros((r_eff, n)) for _ in range(4))
    for r in range(r_eff):
        f = model.block_finish_times(5, r, n, m_blocks)
        for k in range(1, n + 1):
            s = schedule_round(f, k, semantics=semantics)
            m = np.array(s.blocks)[~s.fast_mask()]
            wall[r, k - 1] = s.wall
            if len(m):
                m_mean[r, k - 1] = m.mean()
                m_inv[r, k - 1] = np.mean([1 / v if v else 0.0 for v in m])
                zero[r, k - 1] = np.mean(m == 0)
    assert np.allclose(st.wall, wall.mean(0), rtol=1e-12)
    assert np.allclose(st.m_mean, m_mean.mean(0)) and np.allclose(st.m_inv, m_inv.mean(0))
    assert np.allclose(st.zero_frac, zero.mean(0))


def _boundary_theory(n, k, m_blocks):
    """E[R] and E[m_j] for Exp(1) times under boundary semantics, by direct integration:
    given t = X_(K), the stragglers are i.i.d. Exp(1) conditioned on X > t; a straggler in
    level j (M t/(j+1) < X <= M t/j) stops at X (j+1)/M with min(j+1, M-1) blocks."""
    def dens(t):  # density of the K-th order statistic: F^(K-1) (1-F)^(N-K) f / B(K, N-K+1)
        return np.exp(-special.betaln(k, n - k + 1) + (k - 1) * np.log(-np.expm1(-t)) - (n - k + 1) * t)

    def level(t, j):
        return max(t, m_blocks * t / (j + 1)), (np.inf if j == 0 else m_blocks * t / j)

    def cond(t, lo, hi):  # P(lo < X <= hi | X > t), stable for large t
        return np.exp(-(lo - t)) - (0.0 if hi == np.inf else np.exp(-(hi - t)))

    def e_r(t):
        def tail(s):
            g = sum(cond(t, lo, min(hi, s * m_blocks / (j + 1))) for j in range(m_blocks)
                    for lo, hi in [level(t, j)] if min(hi, s * m_blocks / (j + 1)) > lo)
            return 1.0 - g ** (n - k)
        return t + integrate.quad(tail, t, t + 60.0 * m_blocks, epsrel=1e-7, limit=200)[0]

    def e_m(t):
        return sum(min(j + 1, m_blocks - 1) * cond(t, *level(t, j)) for j in range(m_blocks))

    r = integrate.quad(lambda t: dens(t) * e_r(t), 1e-12, 40.0, epsrel=1e-7, limit=200)[0]
    m = integrate.quad(lambda t: dens(t) * e_m(t), 1e-12, 40.0, epsrel=1e-7, limit=200)[0]
    return r, m


def test_boundary_wait_and_straggler_blocks_match_direct_integration():
    n, k, m_blocks = 5, 3, 4
    st = round_stats(ShiftedExponential(shift=0.0, rate=1.0), n, m_blocks, ks=[k], rounds=4000, seed=2)
    r, m = _boundary_theory(n, k, m_blocks)
    assert abs(st.wall[0] - r) < 4 * st.wall_se[0]
    assert st.wall[0] > st.t_cut[0] + 0.05  # the wait is real, not a rounding
    assert abs(st.m_mean[0] - m) < 0.03


def test_round_times_per_algorithm():
    model = ShiftedExponential()
    n, m_blocks = 12, 3
    exact = shifted_exp_order_stats(model, n, np.arange(1, n + 1))
    lgc_abort = expected_round_times(model, n, m_blocks, "lgc", semantics="abort")
    assert np.allclose(lgc_abort.mean, exact) and np.all(lgc_abort.se == 0) and lgc_abort.method == "closed form"
    full = expected_round_times(model, n, m_blocks, "full-sync")
    assert np.allclose(full.mean, exact[-1])
    comm = CommModel(alpha=0.5, beta=0.01, model_bytes=10.0)
    fk = expected_round_times(model, n, m_blocks, "fastest-k", semantics="abort", comm=comm)
    lg = expected_round_times(model, n, m_blocks, "lgc", semantics="abort", comm=comm)
    ks = np.arange(1, n + 1)
    assert np.allclose(fk.mean, exact + 0.5 + 0.1 * ks)  # fastest-K sends K gradients
    assert np.allclose(lg.mean, exact + 0.5 + 0.1 * n)  # lgc sends N (partial ones too)
    fresh = expected_round_times(model, n, m_blocks, "lgc-fresh", report_latency=0.25, seed=1)
    boundary = expected_round_times(model, n, m_blocks, "lgc", seed=1)
    assert np.allclose(fresh.mean, boundary.mean + 0.25)
    assert np.all(boundary.mean[:-1] > exact[:-1]) and boundary.mean[-1] == pytest.approx(exact[-1])
    any_ = expected_round_times(model, n, m_blocks, "anytime-minibatch", deadline=2.0)
    assert np.allclose(any_.mean, 2.0)


def test_monte_carlo_memory_does_not_grow_with_rounds_and_progress_is_reported():
    """round_stats keeps running means (Welford), not a (rounds, K) array: N = 10^6 needed 3 GB."""
    import tracemalloc

    model, n = ShiftedExponential(), 4000

    def peak(rounds):
        tracemalloc.start()
        round_stats(model, n, 5, rounds=rounds, seed=1)
        out = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out

    assert peak(120) < 1.5 * peak(4)  # a (rounds, 6, N) float array would be 30x larger
    seen = []
    round_stats(model, 50, 5, rounds=7, seed=1, progress=seen.append)
    assert seen == list(range(1, 8))


def test_running_means_equal_the_explicit_mean_and_standard_error():
    from theory.order_stats import _even_split_round

    model, n, m, rounds = ShiftedExponential(), 30, 4, 9
    st = round_stats(model, n, m, rounds=rounds, seed=3)
    per = np.array([np.stack(_even_split_round(model.block_finish_times(3, r, n, 1)[:, 0], m, "boundary"))
                    for r in range(rounds)])
    assert np.allclose(st.wall, per[:, 1].mean(axis=0), rtol=1e-12, atol=0)
    assert np.allclose(st.wall_se, per[:, 1].std(axis=0, ddof=1) / np.sqrt(rounds), rtol=1e-9, atol=1e-15)
    wait = per[:, 1] - per[:, 0]
    assert np.allclose(st.wait_se, wait.std(axis=0, ddof=1) / np.sqrt(rounds), rtol=1e-9, atol=1e-15)
