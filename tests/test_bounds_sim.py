"""Every bound of theory/bounds.py above a simulation of the rules (tests/bound_sim.py), for every
algorithm and K, on problems whose workers have different curvatures (so lgc's one-round delay is
exercised): a quadratic and a non-quadratic (log cosh) one. Runs start at the minimizer (Delta = 0),
so what is measured is what the non-start-up terms must cover; step sizes go up to each form's
own limit. Persistent, uniform (exchangeable), fixed and heterogeneous-speed timing; both semantics."""
import functools

import numpy as np
import pytest

from bound_sim import finish_times, make_problem, schedules, simulate, stats
from theory.bounds import LAMBDAS, eta_max, evaluate, set_change_fraction, terms
from theory.schedule import schedule_round
from theory.set_models import inclusion_coefficients
from theory.timing import Deterministic, HeterogeneousSpeed, ShiftedExponential

N, M, B, T, SEEDS = 6, 3, 6, 80, 12
TIMINGS = {  # name: (timing, straggling period h, the bound's h, set model of fastest-k and lgc)
    "persistent": (ShiftedExponential(), 5, 5, "persistent"),
    "uniform": (ShiftedExponential(), 1, 1, "uniform"),
    "fixed": (Deterministic(times=(1, 1, 2, 2, 3, 4)), 1, np.inf, "persistent"),
    "heterogeneous": (HeterogeneousSpeed(slow_fraction=0.5, slowdown=3.0, hold="speed"), 1, 1, "independent"),
}


def test_vectorized_schedule_is_schedule_round():
    timing = ShiftedExponential()
    fin = finish_times(timing, n=N, m_blocks=M, rounds=6, seeds=2, h=1)
    for sem in ("boundary", "abort"):
        for k in range(1, N + 1):
            fast, blocks = schedules(fin, k, sem)
            for s in range(2):
                for t in range(6):
                    r = schedule_round(fin[s, t], k, semantics=sem)
                    assert (fast[s, t] == r.fast_mask()).all() and tuple(blocks[s, t]) == r.blocks_done


def _constants(prob, box):
    """Exact constants; zeta2 over the visited box for the quadratic (A4 is used only at iterates)."""
    return dict(L=prob.L, sigma2=prob.sigma2, zeta2=prob.zeta2(box if prob.kind == "quadratic" else None))


@functools.lru_cache(maxsize=None)
def _inclusion(timing_name):
    """set_bias, set_var of eq. (4.11') by Monte Carlo from the timing model (seeds apart from the runs')."""
    timing, h, _, _ = TIMINGS[timing_name]
    ks = np.arange(1, N + 1)
    fin = np.array([timing.block_finish_times(10_000 + r, 0, N, M, period=h)[:, -1] for r in range(4000)])
    ranks = np.argsort(np.argsort(fin, axis=1, kind="stable"), axis=1, kind="stable")
    return inclusion_coefficients(ranks, ks)


def _setting(kind, timing_name, eta_l):
    """The problem (started at its minimizer), finish times, step size and inclusion law of one cell."""
    timing, h, h_bound, set_model = TIMINGS[timing_name]
    prob = make_problem(kind, n=N, seed=1)
    fin = finish_times(timing, n=N, m_blocks=M, rounds=T, seeds=SEEDS, h=h)
    inc = _inclusion(timing_name) if set_model == "independent" else None
    return h_bound, set_model, prob, prob.minimizer(), fin, eta_l / prob.L, inc


@pytest.mark.parametrize("kind", ["quadratic", "logcosh"])
@pytest.mark.parametrize("timing_name", list(TIMINGS))
@pytest.mark.parametrize("semantics", ["boundary", "abort"])
@pytest.mark.parametrize("eta_l", [0.15, 0.9])
def test_every_bound_exceeds_the_simulation_for_every_k(kind, timing_name, semantics, eta_l):
    h_bound, set_model, prob, w0, fin, eta, inc = _setting(kind, timing_name, eta_l)
    for k in range(1, N + 1):
        fast, blocks = schedules(fin, k, semantics)
        for alg in ("full-sync", "fastest-k", "lgc", "lgc-fresh"):
            meas, box = simulate(alg, prob, fast, blocks, k=k, b_size=B, m_blocks=M, eta=eta, w0=w0)
            sm = {"fastest-k": set_model, "lgc": "persistent" if set_model == "independent" else set_model,
                  "lgc-fresh": "uniform" if set_model == "uniform" else "persistent"}.get(alg, "persistent")
            extra = dict(set_bias=inc["set_bias"][k - 1], set_var=inc["set_var"][k - 1]) if sm == "independent" else {}
            got = evaluate(alg, N=N, K=k, B=B, M=M, eta=eta, T=T, h=h_bound, Delta=0.0, delta=prob.delta(),
                           set_model=sm, **stats(fast, blocks), **_constants(prob, box), **extra)
            assert float(got["total"]) >= meas, (alg, k, float(got["total"]), meas)


FORMS = [("persistent", "virtual", None), ("persistent", "noise-virtual", 1.0), ("persistent", "noise-virtual", 0.125),
         ("persistent", "direct", None), ("persistent", "recursive", None), ("uniform", "exchangeable", None),
         ("uniform", "uniform", None)]


@pytest.mark.parametrize("kind", ["quadratic", "logcosh"])
@pytest.mark.parametrize("set_model,form,lam", FORMS)
def test_each_lgc_form_holds_near_its_own_step_size_limit(kind, set_model, form, lam):
    """Each lgc form alone, at 0.95 of its own step-size limit (with the problem's delta), K = 1, 3, 5."""
    timing, h, h_bound, _ = TIMINGS["persistent" if set_model == "persistent" else "uniform"]
    prob = make_problem(kind, n=N, seed=2)
    w0 = prob.minimizer()
    fin = finish_times(timing, n=N, m_blocks=M, rounds=T, seeds=SEEDS, h=h)
    for k in (1, 3, 5):
        fast, blocks = schedules(fin, k, "abort")
        lim = float(eta_max("lgc", N, k, prob.L, set_model, form, delta=prob.delta(), lam=lam))
        eta = 0.95 * lim
        meas, box = simulate("lgc", prob, fast, blocks, k=k, b_size=B, m_blocks=M, eta=eta, w0=w0)
        q = dict(N=N, K=k, B=B, M=M, eta=eta, T=T, Delta=0.0, phi=float(set_change_fraction(T, h_bound)),
                 delta_eff=min(prob.delta(), prob.L), **stats(fast, blocks), **_constants(prob, box))
        got = terms("lgc", q, set_model=set_model, form=form, lam=LAMBDAS[3] if lam is None else lam)
        assert sum(got.values()) >= meas, (k, eta * prob.L, sum(got.values()), meas)


@functools.lru_cache(maxsize=None)
def _gram_forms(kind, timing_name, box):
    """The Gram forms of eqs. (4.36)-(4.40) (theory/gram.py) for this problem's exact envelope, by Monte Carlo
    over replicates apart from the runs' seeds (10_000 + r)."""
    from theory.gram import set_forms

    timing, h, _, _ = TIMINGS[timing_name]
    prob = make_problem(kind, n=N, seed=1)
    env = prob.envelope(None if box is None else (np.array(box[0]), np.array(box[1])))
    return set_forms(timing, N, M, h, np.arange(1, N + 1), env, rounds=1000, seed=10_000)


@pytest.mark.parametrize("kind", ["quadratic", "logcosh"])
@pytest.mark.parametrize("timing_name", list(TIMINGS))
@pytest.mark.parametrize("eta_l", [0.15, 0.9])
def test_gram_bounds_exceed_the_simulation_for_every_k(kind, timing_name, eta_l):
    """The bounds with the set terms as Gram forms (A4G, DERIVATION.md section 4.7) still hold: per-worker
    curvatures (w-dependent G) and log cosh (non-quadratic), every timing, abort semantics, every K."""
    h_bound, set_model, prob, w0, fin, eta, inc = _setting(kind, timing_name, eta_l)
    runs, lo, hi = {}, np.full(prob.h.shape[1], np.inf), np.full(prob.h.shape[1], -np.inf)
    for k in range(1, N + 1):
        fast, blocks = schedules(fin, k, "abort")
        for alg in ("fastest-k", "lgc", "lgc-fresh"):
            meas, box = simulate(alg, prob, fast, blocks, k=k, b_size=B, m_blocks=M, eta=eta, w0=w0)
            runs[k, alg] = meas, stats(fast, blocks)
            lo, hi = np.minimum(lo, box[0]), np.maximum(hi, box[1])
    # the quadratic's region: the box every iterate of every run stayed in (A4G is used at iterates only)
    region = None if kind == "logcosh" else (tuple(np.floor(lo * 100) / 100), tuple(np.ceil(hi * 100) / 100))
    forms = _gram_forms(kind, timing_name, region)
    const = _constants(prob, None if region is None else (np.array(region[0]), np.array(region[1])))
    for (k, alg), (meas, st) in runs.items():
        g = {name: v[k - 1] for name, v in forms.items()}
        sm = {"fastest-k": set_model, "lgc": "persistent" if set_model == "independent" else set_model,
              "lgc-fresh": "uniform" if set_model == "uniform" else "persistent"}[alg]
        extra = dict(set_bias=inc["set_bias"][k - 1], set_var=inc["set_var"][k - 1]) if sm == "independent" else {}
        got = evaluate(alg, N=N, K=k, B=B, M=M, eta=eta, T=T, h=h_bound, Delta=0.0, delta=prob.delta(),
                       set_model=sm, **st, **const, **extra, **g)
        assert float(got["total"]) >= meas, (alg, k, float(got["total"]), meas)
