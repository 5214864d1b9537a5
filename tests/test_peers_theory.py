"""The peers' rounds (theory/peers.py) against an explicit event loop, and the time bounds
(theory/time_bounds.py): closed forms for equal tau, monotonicity, (6.6) <= (6.6')."""
import numpy as np
import pytest

from theory.errors import TheoryInputError
from theory.peers import (blocks_done_by, default_s, malenia_condition, malenia_schedule, rennala_schedule,
                          stream_finish_times)
from theory.time_bounds import (block_times, heterogeneous_data_time, identical_data_time, rennala_collect_bound,
                                rennala_collect_time)
from theory.timing import Deterministic, ShiftedExponential
from theory.timing_factory import make_timing_model


def explicit_events(finish, horizon_blocks):
    """Every (time, worker) block event by simulating each worker's clock block by block."""
    events = []
    n, m = finish.shape
    durations = np.diff(np.concatenate([np.zeros((n, 1)), finish], axis=1), axis=1)  # block durations
    for i in range(n):
        clock = 0.0
        for q in range(horizon_blocks):
            clock += durations[i, q % m]
            events.append((clock, i))
    return sorted(events, key=lambda e: (round(e[0], 9), e[1]))  # time (equal up to rounding), then worker


def explicit_rennala(finish, s):
    ev = explicit_events(finish, s)[:s]
    blocks = [0] * finish.shape[0]
    for _, i in ev:
        blocks[i] += 1
    return tuple(blocks), ev[-1][0]


def explicit_malenia(finish, s):
    n = finish.shape[0]
    blocks = [0] * n
    for t, i in explicit_events(finish, 4 * s + 4):
        blocks[i] += 1
        if min(blocks) >= 1 and n / sum(1.0 / b for b in blocks) >= s / n - 1e-12:
            return tuple(blocks), t
    raise AssertionError


@pytest.mark.parametrize("seed", range(6))
def test_rounds_equal_an_explicit_event_loop(seed):
    rng = np.random.default_rng(seed)
    n, m = 4, 3
    x = rng.uniform(0.5, 3.0, n)
    finish = np.cumsum(rng.uniform(0.5, 1.5, (n, m)), axis=1)
    finish *= (x / finish[:, -1])[:, None]
    for s in (1, 3, 7, 12):
        r = rennala_schedule(finish, s)
        blocks, t = explicit_rennala(finish, s)
        assert r.blocks_done == blocks and r.wall == pytest.approx(t) and sum(r.blocks_done) == s
        mal = malenia_schedule(finish, s)
        blocks, t = explicit_malenia(finish, s)
        assert mal.blocks_done == blocks and mal.wall == pytest.approx(t)
        assert malenia_condition(mal.blocks_done, s)


def test_stream_continues_at_the_rounds_speed():
    finish = np.array([[1.0, 3.0], [2.0, 2.5]])
    s = stream_finish_times(finish, 5)
    assert np.allclose(s, [[1, 3, 4, 6, 7], [2, 2.5, 4.5, 5, 7]])
    assert list(blocks_done_by(finish, 4.5)) == [3, 3]


def test_equal_speeds_reduce_to_one_full_round():
    """Equal speeds, S = N (Rennala) or S = N with M = 1 (Malenia): one block per worker, R = X."""
    finish = np.full((5, 1), 2.0)
    for sched in (rennala_schedule(finish, 5), malenia_schedule(finish, 5)):
        assert sched.blocks_done == (1,) * 5 and sched.wall == 2.0
    # Malenia at S = c N with equal speeds: c blocks each
    assert malenia_schedule(np.full((4, 2), 1.0) * [[0.5, 1.0]], 8).blocks_done == (2,) * 4


def test_malenia_waits_for_the_slowest_rennala_does_not():
    finish = np.array([[1.0], [1.0], [10.0]])
    assert rennala_schedule(finish, 4).wall == 2.0
    mal = malenia_schedule(finish, 3)
    assert mal.wall == 10.0 and mal.blocks_done[2] == 1 and mal.blocks_done[0] == 10


def test_default_s():
    assert default_s("rennala", 1.0, 0.3, 10) == 4
    assert default_s("malenia", 1.0, 0.3, 10) == 10
    assert default_s("rennala", 0.0, 0.3, 10) == 1
    with pytest.raises(TheoryInputError, match="eps"):
        default_s("rennala", 1.0, 0.0, 10)


CONST = dict(L=2.0, delta=3.0, eps=0.1, sigma2=0.5)


def test_equal_tau_closed_forms():
    """tau_i = tau: (6.4) = tau (L D/eps + s^2 L D/(N eps^2)) at m = N; (6.5) = the same."""
    tau, n = 1.5, 6
    L, D, e, s2 = CONST["L"], CONST["delta"], CONST["eps"], CONST["sigma2"]
    want = tau * (L * D / e + s2 * L * D / (n * e**2))
    val, m = identical_data_time([tau] * n, **CONST)
    assert val == pytest.approx(want) and m == n
    assert heterogeneous_data_time([tau] * n, **CONST) == pytest.approx(want)


def test_bounds_monotone():
    rng = np.random.default_rng(0)
    tau = np.sort(rng.uniform(1, 5, 8))
    base_i, _ = identical_data_time(tau, **CONST)
    base_h = heterogeneous_data_time(tau, **CONST)
    slower = tau.copy()
    slower[-1] *= 10
    assert identical_data_time(slower, **CONST)[0] <= base_i + 1e-12  # may ignore the slowest
    assert heterogeneous_data_time(slower, **CONST) > base_h  # must wait for it
    assert identical_data_time(tau, **{**CONST, "eps": 0.05})[0] > base_i
    assert identical_data_time(np.append(tau, 1.0), **CONST)[0] < base_i  # one more fast worker helps
    # identical data never needs more time than heterogeneous data
    for _ in range(20):
        t = rng.uniform(0.1, 10, 5)
        assert identical_data_time(t, **CONST)[0] <= heterogeneous_data_time(t, **CONST) + 1e-9


def test_collect_time_exact_and_below_its_bound():
    rng = np.random.default_rng(1)
    for _ in range(20):
        tau = rng.uniform(0.2, 3, 5)
        for s in (1, 4, 11):
            t = rennala_collect_time(tau, s)
            assert sum(np.floor(t / tau + 1e-12)) >= s
            assert sum(np.floor((t - 1e-9) / tau)) < s
            assert t <= rennala_collect_bound(tau, s) + 1e-12
            finish = np.asarray(tau)[:, None]  # M = 1: Rennala's round time is this collect time
            assert rennala_schedule(finish, s).wall == pytest.approx(t)


def test_block_times():
    tau, how = block_times(Deterministic(times=(2.0, 1.0, 4.0)), 3, 2)
    assert np.allclose(tau, [0.5, 1.0, 2.0]) and how == "exact"
    tau, how = block_times(ShiftedExponential(), 4, 1)
    h = np.cumsum(1 / np.arange(4, 0, -1))
    assert np.allclose(tau, 1 + h) and "heuristic" in how
    tau, how = block_times(make_timing_model("heterogeneous", slowdown=3.0), 5, 1)
    assert np.all(np.diff(tau) >= 0) and "heuristic" in how


def test_expected_round_times_of_the_peers():
    """E[R] of rennala on fixed times is the exact collect time (6.6); S is required."""
    from theory.order_stats import expected_round_times

    model = Deterministic(times=(1.0, 2.0, 4.0, 4.0))
    rt = expected_round_times(model, 4, 2, "rennala", ks=[1, 3], rounds=3, peer_s=7)
    assert np.allclose(rt.mean, rennala_collect_time(np.array([1.0, 2.0, 4.0, 4.0]) / 2, 7)) and np.all(rt.se == 0)
    mal = expected_round_times(model, 4, 2, "malenia", ks=[2], rounds=2, peer_s=4)
    assert mal.mean[0] == pytest.approx(malenia_schedule(model.block_finish_times(0, 0, 4, 2), 4).wall)
    with pytest.raises(TheoryInputError, match="peer_s"):
        expected_round_times(model, 4, 2, "rennala", ks=[1], rounds=2)


def explicit_malenia_weighted(finish, s, w):
    """Malenia with weights pi = w / sum(w): stop at the first arrival with every B_i >= 1 and
    sum_i pi_i^2 / B_i <= 1/S (eq. 6.3'), written with fractions, apart from the code."""
    from fractions import Fraction
    n = finish.shape[0]
    pi = [Fraction(int(v)) / sum(int(u) for u in w) for v in w]
    blocks = [0] * n
    for t, i in explicit_events(finish, 4 * s + 4):
        blocks[i] += 1
        if min(blocks) >= 1 and sum(p * p / b for p, b in zip(pi, blocks)) <= Fraction(1, s):
            return tuple(blocks), t
    raise AssertionError


@pytest.mark.parametrize("n, m, s", [(8, 3, 25), (8, 5, 41), (1, 3, 4), (3, 3, 7), (5, 7, 16)])
def test_fixed_time_rounds_where_a_block_ends_exactly_at_the_last_needed_time(n, m, s):
    """Deterministic times (the paper's fixed-time model) with M not a power of two: the block that
    ends exactly at the time every worker has ceil(S/N) blocks must be counted (it used to round
    below and raise 'unreachable')."""
    finish = Deterministic().block_finish_times(0, 0, n, m)
    for sched, (blocks, t) in ((malenia_schedule(finish, s), explicit_malenia(finish, s)),
                               (rennala_schedule(finish, s), explicit_rennala(finish, s))):
        assert sched.blocks_done == blocks and sched.wall == pytest.approx(t)


def test_random_fixed_time_rounds_equal_the_event_loop():
    """300 random fixed-time cases (9 of which raised 'unreachable' before blocks_done_by counted on
    stream_finish_times' own floats), Malenia and Rennala alike."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, m, s = int(rng.integers(1, 12)), int(rng.integers(1, 8)), int(rng.integers(1, 60))
        finish = Deterministic(times=tuple(rng.uniform(0.5, 3, n).round(3))).block_finish_times(0, 0, n, m)
        mal = malenia_schedule(finish, s)
        assert (mal.blocks_done, pytest.approx(mal.wall)) == explicit_malenia(finish, s)
        ren = rennala_schedule(finish, s)
        assert (ren.blocks_done, pytest.approx(ren.wall)) == explicit_rennala(finish, s)


def test_blocks_done_by_counts_a_block_ending_exactly_at_t():
    finish = Deterministic(times=(0.7, 1.3, 2.9)).block_finish_times(0, 0, 3, 3)
    ends = stream_finish_times(finish, 40)
    for i in range(3):
        for q in range(40):
            assert blocks_done_by(finish, ends[i, q])[i] == q + 1, (i, q)


def test_malenia_with_size_weights_bounds_the_steps_variance():
    """Size-weighted pi (eq. 6.3'): the round ends at the first arrival where sum pi_i^2/B_i <= 1/S
    (variance <= sigma_b^2/S), which the paper's pi = 1/N condition does not ensure; uniform weights
    give the paper's rounds."""
    rng = np.random.default_rng(1)
    checked_differs = False
    for _ in range(40):
        n, m, s = int(rng.integers(2, 7)), int(rng.integers(1, 5)), int(rng.integers(2, 40))
        finish = Deterministic(times=tuple(rng.uniform(0.5, 3, n).round(3))).block_finish_times(0, 0, n, m)
        sizes = rng.integers(1, 10, n)
        mal = malenia_schedule(finish, s, weights=sizes)
        blocks, t = explicit_malenia_weighted(finish, s, sizes)
        assert mal.blocks_done == blocks and mal.wall == pytest.approx(t)
        pi = sizes / sizes.sum()
        assert np.sum(pi**2 / np.array(blocks)) <= 1 / s * (1 + 1e-12)
        assert malenia_schedule(finish, s, weights=np.ones(n)).blocks_done == malenia_schedule(finish, s).blocks_done
        checked_differs |= mal.blocks_done != malenia_schedule(finish, s).blocks_done
    assert checked_differs  # the weights changed some rounds: the test sees the generalised rule


def test_malenia_weights_must_be_one_positive_number_per_worker():
    finish = np.full((3, 1), 1.0)
    with pytest.raises(TheoryInputError, match="weights"):
        malenia_schedule(finish, 3, weights=[1.0, 0.0, 2.0])
    with pytest.raises(TheoryInputError, match="weights"):
        malenia_schedule(finish, 3, weights=[1.0, 2.0])


def test_ties_equal_in_exact_arithmetic_go_to_the_lower_worker_index():
    """Worker 1's third block ends at 2 * 0.3 + 0.3 = 0.8999999999999999 in floats, worker 0's first at
    0.9: one instant, so worker 0's block arrives first (ties: worker index, eq. 6.2)."""
    finish = np.array([[0.9], [0.3]])
    assert stream_finish_times(finish, 3)[1, 2] < 0.9  # the rounding this test is about
    assert rennala_schedule(finish, 3).blocks_done == (1, 2)
    assert malenia_schedule(finish, 2).blocks_done == (1, 2)  # 1/1 + 1/2 <= 2^2/2 at the tie, worker 0 first
