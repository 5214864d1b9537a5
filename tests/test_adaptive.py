"""K chosen online, the theory side (theory/adaptive.py, theory/timing_workers.py; DERIVATION.md
section 7): the censored fit recovers known parameters, a changed worker is detected and the
pooled law is kept when nothing changed, the controller's K reduces to optimize-k's K* on an
unchanging cluster and moves the way the true models' K* moves after a worker slows down."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from theory.adaptive import AutoK, KController, Observation, censored_shifted_exponential, fit_window, lr_threshold, observe
from theory.errors import TheoryInputError
from theory.schedule import schedule_round
from theory.timing import ShiftedExponential
from theory.timing_factory import make_timing_model
from theory.timing_workers import SpeedChange, WorkerShiftedExponential
from theory.tradeoff import Problem, tradeoff

N, M = 8, 4
PROB = Problem(N=N, M=M, B=16, L=1.0, sigma2=30.0, zeta2=3.15, Delta=10.0)


def rounds_of(model, k, t0, t1, *, seed=0, semantics="abort"):
    """Observations of rounds t0..t1-1 at threshold K, as sim computes them (eq. 7.1)."""
    out, prev = [], None
    for t in range(t0, t1):
        s = schedule_round(model.block_finish_times(seed, t, N, M), k, round_index=t, semantics=semantics,
                           start=None if prev is None else prev.next_start())
        out.append(observe(s))
        prev = s
    return out


@pytest.mark.parametrize("k", [3, 5])
def test_censored_fit_recovers_known_parameters_and_ignoring_censoring_would_not(k):
    true = ShiftedExponential(shift=1.5, rate=0.7)
    obs = rounds_of(true, k, 0, 600)
    fit = fit_window(obs)
    assert fit.distinct == ()
    assert fit.pooled_shift == pytest.approx(1.5, abs=0.01)
    assert fit.pooled_rate == pytest.approx(0.7, rel=0.06)
    # the same finished times without the censored stragglers' time at risk: rate far too high
    x = np.array([o.times for o in obs])
    naive = 1.0 / (np.nanmean(x) - np.nanmin(x))
    assert naive > 1.5 * 0.7


def test_censored_fit_under_boundary_semantics_measures_from_each_workers_own_start():
    """Under boundary semantics a straggler starts the next round late (eq. 2.3'): its time is
    busy - start and its censoring point t_cut - start; the fit still recovers the law, and
    measuring from the round's start instead would not."""
    true, prev, obs, naive, late = ShiftedExponential(shift=1.0, rate=1.0), None, [], [], 0
    for t in range(600):
        s = schedule_round(true.block_finish_times(0, t, N, M), 3, round_index=t, semantics="boundary",
                           start=None if prev is None else prev.next_start())
        obs.append(observe(s))
        naive.append(observe(replace(s, start=())))  # as if every worker started at 0
        late += int(np.count_nonzero(s.starts()))
        prev = s
    assert late > 600  # the carry-over is common
    fit, wrong = fit_window(obs), fit_window(naive)
    assert fit.pooled_shift == pytest.approx(1.0, abs=0.01)
    assert fit.pooled_rate == pytest.approx(1.0, rel=0.08)
    assert abs(wrong.pooled_rate - 1.0) > 0.15  # late starts counted as work time: the law is wrong


def test_censored_mle_closed_form_on_a_hand_example():
    # finished 2, 3, 4; censored at 3.5 and 5: shift 2, rate 3 / ((0 + 1 + 2) + (1.5 + 3)) (eq. 7.2)
    x = np.array([[2.0, 3.0, np.nan], [4.0, np.nan, np.nan]])
    c = np.array([[np.nan, np.nan, 3.5], [np.nan, 5.0, np.nan]])
    shift, rate = censored_shifted_exponential(x, c)
    assert shift == 2.0 and rate == pytest.approx(3 / 7.5)
    with pytest.raises(TheoryInputError, match="needs >= 2"):
        censored_shifted_exponential(np.array([[1.0, np.nan]]), np.array([[np.nan, 2.0]]))


def test_a_worker_5x_slower_is_fitted_on_its_own_and_recovered_when_observed():
    slow = SpeedChange(base=ShiftedExponential(1.0, 1.0), change_round=0, workers=(3,), slowdown=5.0)
    fit = fit_window(rounds_of(slow, 5, 0, 40))  # censored at t_cut: it never arrives
    assert fit.distinct == (3,)
    others = np.delete(np.arange(N), 3)
    assert fit.shifts[3] + 1 / fit.rates[3] > 3 * (fit.shifts[others] + 1 / fit.rates[others]).max()
    full = fit_window(rounds_of(slow, N, 0, 300))  # K = N: its times are seen, its law recovered
    assert full.distinct == (3,)
    assert full.shifts[3] == pytest.approx(5.0, abs=0.1) and full.rates[3] == pytest.approx(0.2, rel=0.15)
    assert full.pooled_shift == pytest.approx(1.0, abs=0.02) and full.pooled_rate == pytest.approx(1.0, rel=0.1)
    assert isinstance(full.model(), WorkerShiftedExponential)


def test_an_unchanging_cluster_keeps_the_pooled_law():
    """Bonferroni at 1%: over 20 independent windows, at most one false detection."""
    model = ShiftedExponential(1.0, 1.0)
    false = sum(bool(fit_window(rounds_of(model, 5, 0, 40, seed=s)).distinct) for s in range(20))
    assert false <= 1
    assert isinstance(fit_window(rounds_of(model, 5, 0, 40, seed=0)).model(), ShiftedExponential)


def _abort_windows(rng, k, count, rounds=40, shift=1.0, rate=1.0):
    """Windows of i.i.d. shifted-exponential rounds under abort semantics with the work split evenly (eqs. 2.2,
    2.4), observed as eq. (7.1) says: X_i for A_t, t_cut and m_j = min(floor(M t_cut / X_j), M - 1) for a straggler."""
    out = []
    for _ in range(count):
        x = shift + rng.exponential(1.0 / rate, (rounds, N))
        order = np.argsort(x, axis=1, kind="stable")
        fast = np.zeros((rounds, N), bool)
        np.put_along_axis(fast, order[:, :k], True, axis=1)
        t_cut = np.take_along_axis(x, order[:, k - 1:k], axis=1)
        m = np.where(fast, M, np.minimum(np.floor(M * t_cut / x), M - 1)).astype(int)
        out.append([Observation(t, tuple(np.where(fast[t], x[t], np.nan)), tuple(np.where(fast[t], np.nan, t_cut[t, 0])),
                                1.0, tuple(m[t])) for t in range(rounds)])
    return out


def test_false_detections_near_the_nominal_level():
    """eq. (7.3): the shift's MLE is not regular, so a worker's statistic is about chi^2_3, not chi^2_2. Over 1000
    seeded windows (40 rounds, N = 8, K = 5 and K = N) of one unchanging law, the family-wise rate of false
    detections is near alpha = 1%."""
    rng = np.random.default_rng(2023)
    fits = [fit_window(w, even_split=True) for k in (5, N) for w in _abort_windows(rng, k, 500)]
    rate = np.mean([bool(f.distinct) for f in fits])
    assert 0.004 <= rate <= 0.015, rate  # measured 0.8%; chi^2_2's threshold: 1.9%
    assert lr_threshold(N) == pytest.approx(15.79, abs=0.01)  # chi2.isf(0.01 / 8, 3)


def test_interval_censoring_uses_the_stragglers_blocks():
    """eq. (7.1'): under abort with the work split evenly, m_j puts X_j in (M c_j/(m_j+1), M c_j/m_j]. At K = 2 the
    pooled rate's variance over windows is several times smaller with the intervals than with X_j > c_j alone,
    and both stay centred on the true rate."""
    rng = np.random.default_rng(7)
    wins = _abort_windows(rng, 2, 300, rate=0.7)
    with_iv = np.array([fit_window(w, even_split=True).pooled_rate for w in wins])
    right = np.array([fit_window(w).pooled_rate for w in wins])
    assert right.var() > 3 * with_iv.var(), (right.var(), with_iv.var())  # measured 4.3x
    assert with_iv.mean() == pytest.approx(0.7, rel=0.05) and right.mean() == pytest.approx(0.7, rel=0.1)
    # the interval's ends, on a hand example: c = 2, M = 4, m = 1 -> X in (4, 8]; m = 0 -> X > 8
    o = Observation(0, (1.5, np.nan, np.nan), (np.nan, 2.0, 2.0), 1.0, (4, 1, 0))
    lo, hi = o.interval(True)
    np.testing.assert_array_equal(lo[1:], [4.0, 8.0]) and np.testing.assert_array_equal(hi[1:], [8.0, np.inf])
    assert np.isnan(lo[0]) and np.isnan(hi[0])
    assert o.interval(False)[0][1] == 2.0 and Observation.from_list(o.as_list()) == o


def test_interval_censored_mle_on_a_hand_example():
    """eq. (7.2'): the rate solves d/lam - E + sum_l w_l/(exp(lam w_l) - 1) = 0, E the time at risk to each lo."""
    x = np.array([[2.0, 3.0, np.nan]])
    lo, hi = np.array([[np.nan, np.nan, 4.0]]), np.array([[np.nan, np.nan, 6.0]])
    shift, rate = censored_shifted_exponential(x, lo, hi)
    e, w = (0.0 + 1.0) + (4.0 - 2.0), 2.0
    assert shift == 2.0 and 2 / rate - e + w / np.expm1(rate * w) == pytest.approx(0.0, abs=1e-9)
    assert rate > 2 / e  # the upper end pulls the rate up from the right-censored d / E


def test_reduction_unchanging_cluster_picks_optimize_k_kstar():
    """With enough rounds the fit is the true law, and the controller's K is the K* that
    theory.tradeoff (what `lgc optimize-k` prints) gives for the true model and the same budget (criterion "bound";
    no losses are observed, so the bound keeps the constants' Delta: eq. 7.7)."""
    true = ShiftedExponential(1.0, 1.0)
    ctl = KController(AutoK(budget=2000.0, every=50, window=300, first=300, criterion="bound"), PROB, "lgc", eta=0.15)
    for o in rounds_of(true, N, 0, 300):
        ctl.observe(o)
    rec = ctl.history[-1]
    assert rec["pooled"] and rec["k_before"] == N
    # the same computation on the recorded fit (one place), and on the true law
    fitted = ShiftedExponential(rec["shift"][0], rec["rate"][0])
    assert rec["k"] == tradeoff("lgc", replace(PROB, timing=fitted), budget=rec["remaining"], eta=0.15).k_star
    assert rec["k"] == tradeoff("lgc", replace(PROB, timing=true), budget=rec["remaining"], eta=0.15).k_star
    assert rec["k"] < N  # a real choice, not the starting K


def test_after_a_worker_slows_5x_the_refit_sees_it_and_k_moves_as_the_true_kstar_moves():
    algorithm = "lgc"
    change = SpeedChange(base=ShiftedExponential(1.0, 1.0), change_round=100, workers=(3,), slowdown=5.0)
    mc = 500  # Monte Carlo rounds of E[R] and the straggler statistics, the same for the true K* below
    ctl = KController(AutoK(budget=800.0, every=20, window=40, first=10, mc_rounds=mc, criterion="bound"), PROB, algorithm,
                      eta=0.15)
    t = 0
    while t < 200:  # the run: each round at the controller's current K
        for o in rounds_of(change, ctl.k, t, t + 1):
            ctl.observe(o)
        t += 1
    before = [h for h in ctl.history if h["round"] < 100]
    after = [h for h in ctl.history if h["round"] >= 160]
    assert all(h["pooled"] for h in before)
    assert all(h["distinct"] == [3] for h in after)
    k_before, k_after = before[-1]["k"], after[-1]["k"]
    slow_law = WorkerShiftedExponential((1.0,) * 3 + (5.0,) + (1.0,) * 4, (1.0,) * 3 + (0.2,) + (1.0,) * 4)
    rem = after[-1]["remaining"]
    true_before = tradeoff(algorithm, replace(PROB, timing=ShiftedExponential(1.0, 1.0)), budget=rem, eta=0.15,
                           rounds=mc).k_star
    true_after = tradeoff(algorithm, replace(PROB, timing=slow_law), budget=rem, eta=0.15, rounds=mc).k_star
    assert true_after != true_before  # the change matters to K* here
    assert np.sign(k_after - k_before) == np.sign(true_after - true_before)


def test_controller_refits_on_schedule_and_past_the_budget_keeps_k():
    ctl = KController(AutoK(budget=30.0, every=5, window=10, first=7), PROB, "lgc", eta=0.15)
    for o in rounds_of(ShiftedExponential(1.0, 1.0), N, 0, 40):
        ctl.observe(o)
    assert [h["round"] for h in ctl.history] == [6, 11, 16, 21, 26, 31, 36]
    assert all(h["window"][1] - h["window"][0] + 1 <= 10 for h in ctl.history)
    spent = [h for h in ctl.history if h["remaining"] <= 0]
    assert spent and all(h["k"] == h["k_before"] and h["expected_round_time"] is None for h in spent)
    # a remaining budget shorter than any round: no finite bound, K stays (tradeoff alone would say N)
    short = KController(AutoK(budget=2.0, every=1, window=10, first=1), PROB, "lgc", eta=0.15)
    short.k = 3
    short.observe(rounds_of(ShiftedExponential(1.0, 1.0), N, 0, 1)[0], clock=1.5)
    assert short.history[-1]["remaining"] == 0.5 and short.k == 3
    clone = KController(AutoK(budget=30.0, every=5, window=10, first=7), PROB, "lgc", eta=0.15)
    clone.load_state_dict(ctl.state_dict())
    assert clone.state_dict() == ctl.state_dict()


def test_controller_refuses_algorithms_that_do_not_wait_for_k_and_bad_settings():
    with pytest.raises(TheoryInputError, match="waits for K"):
        KController(AutoK(budget=10.0), PROB, "full-sync", eta=0.1)
    with pytest.raises(TheoryInputError, match="budget"):
        AutoK(budget=0.0)
    with pytest.raises(TheoryInputError, match="k_refit"):
        AutoK(budget=1.0, every=0)


def test_observe_needs_busy_times():
    s = schedule_round(ShiftedExponential().block_finish_times(0, 0, N, M), 5)
    with pytest.raises(TheoryInputError, match="busy"):
        observe(replace(s, busy=()))
    o = observe(s)
    fast = s.fast_mask()
    assert np.allclose(np.array(o.times)[fast], np.asarray(s.busy)[fast])
    assert np.allclose(np.array(o.censor)[~fast], s.t_cut) and np.isnan(np.array(o.times)[~fast]).all()


def test_speed_change_model_from_the_factory():
    m = make_timing_model("shifted-exp", rate=2.0, change_round=3, change_workers=[1, 2], change_slowdown=4)
    base = ShiftedExponential(1.0, 2.0)
    for t in range(6):
        f, g = m.block_finish_times(7, t, 4, 2), base.block_finish_times(7, t, 4, 2)
        scale = np.array([1, 4, 4, 1]) if t >= 3 else np.ones(4)
        np.testing.assert_array_equal(f, g * scale[:, None])
    assert m.mean() == base.mean() and not m.iid
    for bad, msg in ((dict(change_workers=[1]), "needs change_round"), (dict(change_round=1.5), "integer"),
                     (dict(change_round=1, change_slowdown=-1), "change_slowdown"),
                     (dict(change_round=1, bogus=1), "no parameter 'bogus'")):
        with pytest.raises(TheoryInputError, match=msg):
            make_timing_model("shifted-exp", **bad)
    with pytest.raises(TheoryInputError, match="must be < N"):
        make_timing_model("shifted-exp", change_round=0, change_workers=[5]).block_finish_times(0, 0, 4, 2)


def test_worker_model_order_statistic_matches_monte_carlo():
    m = WorkerShiftedExponential((1.0, 1.0, 2.0), (1.0, 2.0, 0.5))
    x = np.sort(m.sample(np.random.default_rng(0), (40_000, 3)), axis=1)
    for k in (1, 2, 3):
        assert m.expected_order_statistic(k, 3) == pytest.approx(x[:, k - 1].mean(), rel=0.02)
