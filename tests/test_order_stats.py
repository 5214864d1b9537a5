"""E[t_cut], E[R(K)] and E[m_j]: closed form vs integration vs Monte Carlo vs the schedule code."""
import numpy as np
import pytest

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
    """round_stats runs what `sim` runs: per K, schedule_round on round r's draws, the start
    offsets chained from round to round under boundary semantics (eq. 2.3')."""
    n, rounds = 7, 4
    st = round_stats(model, n, m_blocks, semantics=semantics, rounds=rounds, seed=5)
    r_eff = st.rounds
    wall, m_mean, m_inv, zero = (np.zeros((r_eff, n)) for _ in range(4))
    for k in range(1, n + 1):
        start = None
        for r in range(r_eff):
            f = model.block_finish_times(5, r, n, m_blocks)
            s = schedule_round(f, k, semantics=semantics, start=start)
            start = s.next_start()
            assert semantics == "boundary" or not start.any()  # abort carries nothing over
            m = np.array(s.blocks_done)[~s.fast_mask()]
            wall[r, k - 1] = s.wall
            if len(m):
                m_mean[r, k - 1] = m.mean()
                m_inv[r, k - 1] = np.mean([1 / v if v else 0.0 for v in m])
                zero[r, k - 1] = np.mean(m == 0)
    assert np.allclose(st.wall, wall.mean(0), rtol=1e-12)
    assert np.allclose(st.m_mean, m_mean.mean(0)) and np.allclose(st.m_inv, m_inv.mean(0))
    assert np.allclose(st.zero_frac, zero.mean(0))


def _explicit_pipelined_chain(model, n, m_blocks, k, rounds, seed, comm):
    """Boundary semantics written out worker by worker (no theory.schedule code): per round,
    (R_t, the carry-free X_(K:N), the late starts it leaves, each straggler's overrun)."""
    start = np.zeros(n)
    out = []
    for r in range(rounds):
        x = model.block_finish_times(seed, r, n, 1)[:, 0]  # even split: block m ends at x (m+1)/M
        fin = sorted((start[i] + x[i], i) for i in range(n))
        t_cut = fin[k - 1][0]
        wall = t_cut + comm
        nxt = np.zeros(n)
        for _, j in fin[k:]:
            if start[j] >= t_cut:  # still busy with an earlier round: starts nothing
                nxt[j] = max(start[j] - wall, 0.0)
                continue
            ends = [start[j] + x[j] * (m + 1) / m_blocks for m in range(m_blocks)]
            in_flight = min(sum(e <= t_cut for e in ends), m_blocks - 1)
            nxt[j] = max(ends[in_flight] - wall, 0.0)
        out.append((wall, sorted(x)[k - 1], nxt.copy()))
        start = nxt
    return out


@pytest.mark.parametrize("semantics", ["abort", "boundary"])
@pytest.mark.parametrize("n,m_blocks,k", [(8, 4, 3), (10, 2, 5), (6, 1, 2)])
def test_fastest_k_round_time_is_the_order_statistic_plus_the_carry_over(semantics, n, m_blocks, k):
    """Abort: E[R] = E[X_(K:N)] + comm in closed form (eq. 2.7), the server never waiting past
    t_cut. Boundary (pipelined, eq. 2.3'): the server still closes every round at t_cut, so
    R_t = t_cut + comm, but t_cut is the K-th smallest start_i + X_i: E[R] = E[X_(K:N)] + comm +
    the carry-over's delay, which is positive for K < N and equals an explicit chain's."""
    model, seed, rounds = ShiftedExponential(), 3, 300
    comm = CommModel(alpha=0.2, beta=0.01, model_bytes=5.0)
    rt = expected_round_times(model, n, m_blocks, "fastest-k", semantics=semantics, ks=[k], comm=comm,
                              rounds=rounds, seed=seed)
    exact = 1.0 + float(np.sum(1.0 / np.arange(n - k + 1, n + 1)))  # shift + (H_N - H_{N-K}) / rate
    c = 0.2 + 0.05 * k  # fastest-K sends K messages (eq. 2.5)
    if semantics == "abort":
        assert rt.method == "closed form" and rt.se[0] == 0.0
        assert rt.mean[0] == pytest.approx(exact + c, rel=1e-12)
        mc = round_stats(model, n, m_blocks, ks=[k], rounds=3000, seed=seed)
        assert abs(mc.wall[0] - exact) < 4 * mc.wall_se[0]  # the schedule code agrees
        return
    chain = _explicit_pipelined_chain(model, n, m_blocks, k, rounds, seed, c)
    delay = np.mean([w - c - free for w, free, _ in chain])
    assert rt.mean[0] == pytest.approx(exact + c + delay, rel=1e-10)
    assert delay > 5 * rt.se[0]  # the carry-over is real: later cutoffs wait for late starters
    full = expected_round_times(model, n, m_blocks, "fastest-k", semantics=semantics, ks=[n], rounds=50, seed=seed)
    assert full.stats.excess[0] == 0.0  # K = N: nobody is cut, nobody carries over


def test_boundary_never_waits_for_a_block_that_cannot_count():
    """N = 2, K = 1, M = 2: the straggler has M-1 = 1 block done at t_cut. The round closes at
    t_cut for every rule but lgc-fresh, which waits only for the blocks it counts (done by then),
    and the straggler starts the next round late by its overrun."""
    finish = np.array([[0.5, 1.0], [0.9, 1.8]])
    for wait in (False, True):
        s = schedule_round(finish, 1, semantics="boundary", comm=0.1, wait_reports=wait)
        assert s.blocks_done == (2, 1) and s.t_cut == 1.0 and s.wall == pytest.approx(1.1)
        assert s.next_start() == pytest.approx([0.0, 0.7])  # 1.8 - 1.1
    s = schedule_round(np.array([[0.5, 1.0], [0.8, 1.6], [0.6, 1.2]]), 1, semantics="boundary", wait_reports=True)
    assert s.blocks_done == (2, 1, 1) and s.wall == 1.0  # both reported blocks were done by t_cut
    s = schedule_round(np.array([[0.5, 1.0], [0.4, 2.4], [0.6, 1.2]]), 1, semantics="boundary", wait_reports=True)
    # worker 1 has 1 block done at t_cut and 1 left: M - 1 = 1 counts, it reports that one
    assert s.blocks_done == (2, 1, 1) and s.wall == 1.0
    s = schedule_round(np.array([[0.5, 1.0, 1.5], [1.6, 3.2, 4.8]]), 1, semantics="boundary", wait_reports=True)
    assert s.blocks_done == (3, 1) and s.wall == 1.6  # lgc-fresh waits for the block in flight it counts
    s = schedule_round(np.array([[0.5, 1.0, 1.5], [1.2, 2.4, 3.6]]), 1, semantics="boundary", start=[0.0, 1.6])
    assert s.blocks_done == (3, 0) and s.next_start() == pytest.approx([0.0, 0.1])  # still busy: starts nothing


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
    assert np.allclose(fresh.mean, exact + 0.25)  # abort: the reports are in at t_cut, plus their latency
    boundary = expected_round_times(model, n, m_blocks, "lgc", semantics="boundary", seed=1)
    fresh_b = expected_round_times(model, n, m_blocks, "lgc-fresh", semantics="boundary", seed=1)
    fresh_bl = expected_round_times(model, n, m_blocks, "lgc-fresh", semantics="boundary", report_latency=0.25, seed=1)
    assert np.allclose(fresh_bl.mean, fresh_b.mean + 0.25)
    assert np.all(fresh_b.mean[:-1] > boundary.mean[:-1])  # lgc-fresh waits for the blocks in flight
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
    for rounds in (7, 600):  # progress as each chunk of rounds is done: increasing, ending at `rounds`
        seen = []
        round_stats(model, 50, 5, rounds=rounds, seed=1, progress=seen.append)
        assert seen == sorted(set(seen)) and seen[-1] == rounds and seen[0] >= 1
    assert len(seen) > 1  # 600 rounds of 50 K x 5 blocks x 50 workers: more than one chunk
    seen = []
    round_stats(model, 50, 5, rounds=7, seed=1, progress=seen.append, semantics="boundary")
    assert seen == list(range(1, 8))  # the chain: round by round


def test_running_means_equal_the_explicit_mean_and_standard_error():
    from theory.round_stats import _even_split_round

    model, n, m, rounds = ShiftedExponential(), 30, 4, 9
    st = round_stats(model, n, m, rounds=rounds, seed=3)
    per = np.array([np.stack(_even_split_round(model.block_finish_times(3, r, n, 1)[:, 0], m))
                    for r in range(rounds)])  # abort rounds (the default)
    assert np.allclose(st.wall, per[:, 1].mean(axis=0), rtol=1e-12, atol=0)
    assert np.allclose(st.wall_se, per[:, 1].std(axis=0, ddof=1) / np.sqrt(rounds), rtol=1e-9, atol=1e-15)
    assert np.allclose(st.m_mean * np.maximum(n - np.arange(1, n + 1), 1), per[:, 2].mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("model", [ShiftedExponential(shift=0.5, rate=2.0), HeterogeneousSpeed(slowdown=4.0)])
@pytest.mark.parametrize("broadcast_max,budget", [(1 << 16, 1 << 18), (1 << 16, 300), (0, 1 << 18)])
def test_rounds_at_once_equal_a_loop_over_rounds(model, broadcast_max, budget, monkeypatch):
    """Abort rounds compared many at a time (or one by one with a binary search, BROADCAST_MAX = 0;
    in chunks of a few rounds, ROUND_BUDGET = 300) equal an explicit loop over rounds and K on the same
    draws: per round, the K fastest (ties by index) and m_j = blocks with X_j (m+1)/M <= t_cut (eq. 2.2),
    at most M - 1; then the mean and standard error over rounds."""
    import theory.round_stats as rs

    monkeypatch.setattr(rs, "BROADCAST_MAX", broadcast_max)
    monkeypatch.setattr(rs, "ROUND_BUDGET", budget)
    n, m_blocks, rounds, seed = 9, 4, 157, 4
    t_cut, m_mean, m_inv, zero = (np.zeros((rounds, n)) for _ in range(4))
    for r in range(rounds):
        x = model.block_finish_times(seed, r, n, 1)[:, 0]
        order = np.argsort(x, kind="stable")
        for k in range(1, n + 1):
            t = x[order[k - 1]]
            m = [min(sum(x[j] * (b + 1) / m_blocks <= t for b in range(m_blocks)), m_blocks - 1)
                 for j in order[k:]]
            t_cut[r, k - 1] = t
            if m:
                m_mean[r, k - 1] = np.mean(m)
                m_inv[r, k - 1] = np.mean([1 / v if v else 0.0 for v in m])
                zero[r, k - 1] = np.mean([v == 0 for v in m])
    st = round_stats(model, n, m_blocks, rounds=rounds, seed=seed)
    assert st.rounds == rounds
    assert np.allclose(st.t_cut, t_cut.mean(0), rtol=1e-12, atol=0)
    assert np.allclose(st.wall, t_cut.mean(0), rtol=1e-12, atol=0)
    assert np.allclose(st.t_cut_se, t_cut.std(0, ddof=1) / np.sqrt(rounds), rtol=1e-9, atol=0)
    for got, want in ((st.m_mean, m_mean), (st.m_inv, m_inv), (st.zero_frac, zero)):
        assert np.allclose(got, want.mean(0), rtol=1e-12, atol=1e-15)
    assert np.allclose(st.m_inv_se, m_inv.std(0, ddof=1) / np.sqrt(rounds), rtol=1e-9, atol=1e-15)
