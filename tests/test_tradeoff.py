"""The trade-off: T = floor(tau / E[R]), the bound at the budget, time to a target, K*, step-size
optimisation and the regime map, each checked against an explicit computation."""
import numpy as np
import pytest

from theory.bounds import evaluate
from theory.errors import TheoryInputError
from theory.order_stats import shifted_exp_order_stats
from theory.timing import Deterministic, HeterogeneousSpeed, ShiftedExponential
from theory.regimes import regime_map
from theory.set_models import fastest_k_set_model, set_change_period
from theory.tradeoff import Problem, tradeoff

PROB = Problem(N=10, M=5, B=50, L=1.0, sigma2=1.0, zeta2=0.1, Delta=5.0, h=10, semantics="abort")


def test_budget_tradeoff_is_the_bound_at_floor_tau_over_round_time():
    res = tradeoff("fastest-k", PROB, budget=200.0, eta=0.5)
    er = shifted_exp_order_stats(ShiftedExponential(), 10, np.arange(1, 11))  # abort: R = t_cut, exact
    assert np.allclose(res.round_time, er) and np.all(res.round_time_se == 0)
    T = np.floor(200.0 / er)
    assert np.array_equal(res.rounds, T)
    expect = evaluate("fastest-k", N=10, K=np.arange(1, 11), B=50, M=5, eta=0.5, T=T, L=1.0, sigma2=1.0,
                      zeta2=0.1, Delta=5.0, h=10, set_model="persistent")["total"]
    assert np.allclose(res.bound, expect)
    assert res.k_star == int(np.argmin(expect)) + 1


def test_k_star_is_n_for_full_sync_and_moves_with_dissimilarity():
    assert tradeoff("full-sync", PROB, budget=200.0).k_star == 10
    iid = tradeoff("fastest-k", Problem(**{**PROB.__dict__, "zeta2": 0.0}), budget=50.0)
    non_iid = tradeoff("fastest-k", Problem(**{**PROB.__dict__, "zeta2": 10.0}), budget=50.0)
    assert iid.k_star < non_iid.k_star == 10  # persistent bias pushes K* to N


def test_target_criterion_finds_the_fewest_rounds():
    res = tradeoff("lgc", PROB, target=0.5, eta=0.2)
    for i, k in enumerate(res.ks):
        T = res.rounds[i]
        if not np.isfinite(T):
            continue
        f = lambda t: evaluate("lgc", N=10, K=k, B=50, M=5, eta=0.2, T=t, L=1.0, sigma2=1.0, zeta2=0.1, Delta=5.0,
                               h=10, m_inv=res.m_inv[i], zero_frac=res.zero_frac[i])["total"]
        assert f(T) <= 0.5 < f(T - 1)
        assert res.time[i] == pytest.approx(T * res.round_time[i])
    assert res.k_star == res.ks[int(np.nanargmin(np.where(np.isfinite(res.time), res.time, np.nan)))]


def test_optimized_step_size_is_no_worse_than_any_fixed_one():
    best = tradeoff("lgc", PROB, budget=300.0, optimize_eta=True)
    for eta in (0.02, 0.1, 0.3):
        fixed = tradeoff("lgc", PROB, budget=300.0, eta=eta)
        assert np.all(best.bound <= fixed.bound * (1 + 1e-9) + 1e-12)


def test_set_models_follow_the_timing():
    assert set_change_period(Deterministic(), 5) == np.inf
    assert set_change_period(HeterogeneousSpeed(hold="speed"), 5) == 1
    assert set_change_period(ShiftedExponential(), 5) == 5
    assert fastest_k_set_model(ShiftedExponential(), 1) == "uniform"
    assert fastest_k_set_model(ShiftedExponential(), 3) == "persistent"
    assert fastest_k_set_model(HeterogeneousSpeed(), 1) == "persistent"


def test_regime_map_marks_where_k_star_is_below_n():
    rm = regime_map("fastest-k", PROB, zeta2_values=[0.0, 10.0], budgets=[20.0, 2000.0])
    ks = rm["k_star"]
    assert ks.shape == (2, 2) and ks[0, 0] < 10 and np.all(ks[1] == 10)
    for i, z in enumerate([0.0, 10.0]):  # each cell is the trade-off's K*
        assert ks[i, 1] == tradeoff("fastest-k", Problem(**{**PROB.__dict__, "zeta2": z}), budget=2000.0).k_star
    rs = regime_map("fastest-k", PROB, zeta2_values=[0.0], slowdowns=[0.01, 10.0], budget=100.0)
    assert rs["y_name"] == "slowdown" and rs["k_star"][0, 1] <= rs["k_star"][0, 0]


@pytest.mark.parametrize("kw,needle", [
    (dict(budget=-1.0), "budget=-1.0"), (dict(target=0.0), "target=0.0"), (dict(), "exactly one"),
    (dict(budget=1.0, eta=-0.1), "eta=-0.1"), (dict(budget=1.0, ks=[11]), "K must satisfy"),
])
def test_bad_trade_off_input(kw, needle):
    with pytest.raises(TheoryInputError, match=needle):
        tradeoff("lgc", PROB, **kw)
    with pytest.raises(TheoryInputError, match="B=7"):
        Problem(N=4, M=2, B=7, L=1.0, sigma2=1.0, zeta2=0.0, Delta=1.0)
