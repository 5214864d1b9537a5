"""The bounds: sympy reductions and term split, numeric = symbolic, and a numpy simulation of
the rules on non-IID quadratics (written here, independent of lgc) that each bound must exceed."""
import numpy as np
import pytest
import sympy as sp

from theory.bounds import (
    eta_max, evaluate, set_change_fraction, straggler_statistics, symbolic, symbols, terms,
)
from theory.errors import TheoryInputError
from theory.schedule import schedule_round
from theory.timing import Deterministic, ShiftedExponential

S = symbols()


def total(alg, **kw):
    return sp.Add(*symbolic(alg, syms=S, **kw).values())


@pytest.mark.parametrize("alg,set_model,form", [("lgc", "persistent", "direct"), ("lgc", "persistent", "recursive"),
                                                ("lgc", "persistent", "virtual"), ("lgc", "uniform", "uniform"),
                                                ("lgc-fresh", "persistent", None), ("fastest-k", "persistent", None),
                                                ("fastest-k", "uniform", None)])
def test_every_bound_at_k_equal_n_is_full_sync(alg, set_model, form):
    assert sp.simplify(total(alg, set_model=set_model, form=form).subs(S["K"], S["N"]) - total("full-sync")) == 0


def test_uniform_lgc_has_no_bias_and_no_staleness_and_is_o_eta():
    t = symbolic("lgc", syms=S, set_model="uniform")
    assert t["staleness"] == 0 and t["zero_block"] == 0
    for name in ("noise", "variance", "set_change"):
        assert not sp.simplify(t[name] / S["eta"]).has(S["eta"])
    assert sp.simplify(t["set_change"].subs(S["zeta2"], 0)) == 0


def test_fastest_k_bias_vanishes_at_zero_dissimilarity_and_for_uniform_sets():
    t = symbolic("fastest-k", syms=S)
    assert sp.simplify(t["bias"].subs(S["zeta2"], 0)) == 0
    assert sp.simplify(t["bias"] - (S["N"] - S["K"]) * S["zeta2"] / S["K"]) == 0
    u = symbolic("fastest-k", syms=S, set_model="uniform")
    assert "bias" not in u
    # uniform random sets: only an O(eta) sampling term, zero at zeta = 0
    assert sp.simplify(u["sampling"] / S["eta"]).has(S["eta"]) is False
    assert sp.simplify(u["sampling"].subs(S["zeta2"], 0)) == 0


@pytest.mark.parametrize("form", ["direct", "recursive", "virtual"])
def test_lgc_excess_over_full_sync_splits_into_the_four_terms(form):
    t = symbolic("lgc", syms=S, form=form)
    fs = symbolic("full-sync", syms=S)
    eta, h = S["eta"], S["phi"]
    assert set(t) == {"optimization", "noise", "variance", "set_change", "zero_block", "staleness"}
    assert sp.simplify(t["optimization"] + t["noise"] - sum(fs.values())) == 0
    # variance: exactly linear in eta
    assert not sp.simplify(t["variance"] / eta).has(eta)
    vals = dict(N=10, K=6, B=12, M=3, T=500, L=2.0, sigma2=1.0, zeta2=0.5, Delta=3.0, phi=0.1, m_inv=0.5, zero_frac=0.1)
    rho = (10 - 6) / 10
    if form == "recursive":
        # staleness: a relative inflation of order eta^2 (the factor q/(1-2q), q = 24 rho^2 L^2 eta^2)
        rest = sum(v for k, v in t.items() if k != "staleness")
        ratio = sp.lambdify([S[n] for n in S], t["staleness"] / (eta**2 * rest), "numpy")
        assert ratio(eta=1e-6, **vals) == pytest.approx(24 * rho**2 * 2.0**2, rel=1e-3)  # -> 24 rho^2 L^2
    elif form == "virtual":
        # staleness: L^2 eta^2/(1 - eta L) [(1 - f)(N-K) zeta^2/K + E_eps] (eq. 4.31); no set-change term;
        # the rest is lgc-fresh's bound (eq. 4.14)
        assert not sp.simplify(t["staleness"] * (1 - S["L"] * eta) / eta**2).has(eta)
        b, m_inv, f0 = vals["B"] / vals["M"], vals["m_inv"], vals["zero_frac"]
        e_eps = vals["sigma2"] * ((10 - 6) * m_inv / (100 * b) + rho**2 / (6 * vals["B"]))
        f = sp.lambdify([S[n] for n in S], t["staleness"], "numpy")
        assert f(eta=0.1, **vals) == pytest.approx(4 * 0.01 / 0.8 * ((1 - f0) * 4 * 0.5 / 6 + e_eps), rel=1e-12)
        assert t["set_change"] == 0
        fresh = symbolic("lgc-fresh", syms=S)
        assert sp.simplify(sum(t.values()) - t["staleness"] - sum(fresh.values())) == 0
    else:
        # staleness: exactly quadratic in eta, 2 r2 [(1 + 1/sqrt(rho)) E_eps + V_A], r2 = 4 rho^2 L^2 eta^2 (eq. 4.29)
        assert not sp.simplify(t["staleness"] / eta**2).has(eta)
        b, m_inv = vals["B"] / vals["M"], vals["m_inv"]
        e_eps = vals["sigma2"] * ((10 - 6) * m_inv / (100 * b) + rho**2 / (6 * vals["B"]))
        x = (1 + 1 / np.sqrt(rho)) * e_eps + vals["sigma2"] / (6 * vals["B"])
        f = sp.lambdify([S[n] for n in S], t["staleness"], "numpy")
        assert f(eta=0.1, **vals) == pytest.approx(2 * 4 * rho**2 * 2.0**2 * 0.1**2 * x, rel=1e-12)
        # set change and zero-block bias carry the factor 1 + LAMBDA = 2 and nothing else
        c = (10 - 6) * vals["zeta2"] / 6
        g = sp.lambdify([S[n] for n in S], t["set_change"] + t["zero_block"], "numpy")
        assert g(eta=0.1, **vals) == pytest.approx(2 * (4 * 0.1 + 0.1 * 0.9) * c, rel=1e-12)
    assert sp.simplify(t["staleness"].subs(S["K"], S["N"])) == 0
    # set change: proportional to phi, which shrinks with the straggling period h
    assert sp.simplify(t["set_change"] - h * sp.diff(t["set_change"], h)) == 0
    assert t["set_change"].subs(S["zeta2"], 0) == 0
    # zero-block bias: proportional to the fraction of stragglers with no block
    assert t["zero_block"].subs(S["zero_frac"], 0) == 0
    assert sp.simplify(t["zero_block"] - S["zero_frac"] * sp.diff(t["zero_block"], S["zero_frac"])) == 0


def test_lgc_takes_the_smaller_of_its_two_bounds_where_each_holds():
    """Persistent-set lgc: evaluate = min(virtual eq. 4.31, direct eq. 4.29, recursive eq. 4.23) over
    the forms whose step-size condition holds; eta_max is the largest of their limits."""
    n, ks = 12, np.arange(1, 13)
    p = dict(N=n, K=ks, B=12, M=3, T=300, L=1.5, sigma2=2.0, zeta2=0.7, Delta=2.0, h=4, m_inv=0.6, zero_frac=0.2)
    for eta in (0.02, 0.1, 0.2, 0.3, 0.5):
        got = evaluate("lgc", eta=eta, **p)
        sums = {}
        for form in ("virtual", "direct", "recursive"):
            q = dict(p, eta=eta, phi=float(set_change_fraction(300, 4)))
            q.pop("h")
            t = terms("lgc", {k: np.asarray(v, float) for k, v in q.items()}, np.sqrt, form=form)
            ok = eta <= eta_max("lgc", n, ks, 1.5, form=form) * (1 + 1e-12)
            sums[form] = np.where(ok, sum(t.values()), np.inf)
        np.testing.assert_allclose(got["total"], np.minimum.reduce(list(sums.values())), rtol=1e-12)
        assert np.allclose(sum(got["terms"].values())[np.isfinite(got["total"])], got["total"][np.isfinite(got["total"])])
    every = np.maximum.reduce([eta_max("lgc", n, ks, 1.5, form=f) for f in ("virtual", "direct", "recursive")])
    assert np.allclose(eta_max("lgc", n, ks, 1.5), every)
    assert np.allclose(eta_max("lgc", n, ks, 1.5, set_model="uniform"), np.maximum(
        eta_max("lgc", n, ks, 1.5, form="virtual"), eta_max("lgc", n, ks, 1.5, form="uniform")))
    # the direct condition (eq. 4.28) allows larger steps than q < 1/2 when rho_bar >= 0.35
    rho = (n - ks) / n
    assert np.all(eta_max("lgc", n, ks, 1.5, form="direct")[rho >= 0.35] > eta_max("lgc", n, ks, 1.5, form="recursive")[rho >= 0.35])


def test_set_change_fraction_shrinks_with_h():
    phi = set_change_fraction(1000, np.array([1, 2, 10, 100, np.inf]))
    assert np.allclose(phi, [1.0, 500 / 1000, 100 / 1000, 10 / 1000, 1 / 1000])


def test_numeric_evaluation_equals_the_sympy_expression():
    rng = np.random.default_rng(0)
    cases = [(a, "persistent") for a in ("full-sync", "fastest-k", "lgc", "lgc-fresh")]
    for alg, set_model in cases + [("fastest-k", "uniform"), ("lgc", "uniform")]:
        forms = {"persistent": ("virtual", "direct", "recursive"), "uniform": ("virtual", "uniform")}[set_model] \
            if alg == "lgc" else (None,)
        fs = {form: sp.lambdify([S[n] for n in S], total(alg, set_model=set_model, form=form), "numpy")
              for form in forms}
        for _ in range(5):
            n = int(rng.integers(2, 50)); k = int(rng.integers(1, n + 1)); m = int(rng.integers(1, 6))
            p = dict(N=n, K=k, B=m * int(rng.integers(1, 10)), M=m, T=int(rng.integers(10, 1000)), L=float(rng.uniform(0.5, 3)),
                     sigma2=float(rng.uniform(0, 2)), zeta2=float(rng.uniform(0, 2)), Delta=float(rng.uniform(0.1, 5)),
                     m_inv=float(rng.uniform(0, 1)), zero_frac=float(rng.uniform(0, 1)))
            p["eta"] = 0.9 * float(eta_max(alg, n, k, p["L"], set_model))
            h = 1 if set_model == "uniform" else int(rng.integers(1, 20))
            num = evaluate(alg, h=h, set_model=set_model, **p)
            ps = {**p, "phi": float(set_change_fraction(p["T"], h))}
            sym = min(fs[form](**ps) if p["eta"] <= float(eta_max(alg, n, k, p["L"], set_model, form)) else np.inf
                      for form in forms)  # lgc: the smaller of the forms that hold at this eta
            assert float(num["total"]) == pytest.approx(float(sym), rel=1e-10)


def test_coefficient_lemma_and_worst_case_bias_attained():
    """||sum_i c_i a_i||^2 <= ||c||^2 N zeta^2 when sum_i c_i = 0 = sum_i a_i (eq. 4.8), and the
    fastest-K bias (N-K) zeta^2 / K is attained (so the bound cannot be lowered)."""
    rng = np.random.default_rng(1)
    n, k, d = 9, 4, 3
    for _ in range(200):
        a = rng.normal(size=(n, d)); a -= a.mean(0)
        c = rng.normal(size=n); c -= c.mean()
        assert np.sum((c @ a) ** 2) <= np.sum(c**2) * np.sum(a**2) + 1e-12
    v = rng.normal(size=d)
    a = np.where(np.arange(n)[:, None] < k, (n - k) * v, -k * v)  # sums to zero
    zeta2 = np.mean(np.sum(a**2, 1))
    bias = np.sum(a[:k].mean(0) ** 2)
    assert bias == pytest.approx((n - k) * zeta2 / k)


@pytest.mark.parametrize("kw,needle", [
    (dict(K=11), "K=11"), (dict(K=0), "K=0"), (dict(B=10, M=3), "B=10"), (dict(M=0), "M=0"),
    (dict(eta=-1.0), "eta=-1.0"), (dict(L=0.0), "L=0.0"), (dict(zeta2=-1.0), "zeta2=-1.0"), (dict(h=0), "h=0"),
])
def test_evaluate_rejects_bad_input(kw, needle):
    p = dict(N=10, K=5, B=12, M=3, eta=0.1, T=100, L=1.0, sigma2=1.0, zeta2=1.0, Delta=1.0)
    p.update(kw)
    with pytest.raises(TheoryInputError, match=needle.replace("(", r"\(")):
        evaluate("lgc", **p)
    with pytest.raises(TheoryInputError, match="anytime"):
        evaluate("anytime-minibatch", **dict(p, **{k: v for k, v in dict(K=5, B=12, M=3).items()}))


def test_step_sizes_beyond_eta_max_give_an_infinite_bound():
    p = dict(N=10, K=7, B=10, M=5, T=100, L=2.0, sigma2=1.0, zeta2=1.0, Delta=1.0)
    emax = float(eta_max("lgc", 10, 7, 2.0))
    assert np.isfinite(evaluate("lgc", eta=emax * 0.99, **p)["total"])
    assert evaluate("lgc", eta=emax * 1.01, **p)["total"] == np.inf
    assert evaluate("full-sync", eta=0.5, **p)["total"] < np.inf and evaluate("full-sync", eta=0.51, **p)["total"] == np.inf


# ----------------------------------------------------------------------------- simulation
def _simulate(alg, *, n, k, b_size, m_blocks, eta, rounds, hdiag, centers, sigma2, timing, h, seeds, warmup=2):
    """Plain-SGD rules of SPEC section 3 on f_i = 1/2 (w - c_i)^T H (w - c_i), written out here."""
    d = hdiag.size
    cbar = centers.mean(0)
    b = b_size // m_blocks
    meas, fast, blocks = [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        w, u, acc = np.zeros(d), None, 0.0
        for t in range(rounds):
            g = hdiag * (w - cbar)
            acc += g @ g
            s = schedule_round(timing.block_finish_times(seed, t, n, m_blocks, period=h), k)
            fm, bl = s.fast_mask(), np.array(s.blocks)
            fast.append(fm); blocks.append(bl)
            z = rng.normal(0, np.sqrt(sigma2 / (d * b)), size=(n, m_blocks, d))  # block noise means
            gi = hdiag * (w - centers) + z.mean(1)
            if t < warmup or alg == "full-sync":
                step, u = gi.mean(0), None
            else:
                g_a = gi[fm].mean(0)
                rep = (~fm) & (bl >= 1)
                rho = rep.sum() / n
                g_s = np.mean([hdiag * (w - centers[j]) + z[j, :bl[j]].mean(0) for j in np.where(rep)[0]], 0) if rep.any() else None
                if alg == "fastest-k":
                    step = g_a
                elif alg == "lgc-fresh":
                    step = g_a if g_s is None else (1 - rho) * g_a + rho * g_s
                else:
                    step = g_a if u is None else g_a + u
                    u = np.zeros(d) if g_s is None else rho * (g_s - g_a)
            w = w - eta * step
        meas.append(acc / rounds)
    return float(np.mean(meas)), straggler_statistics(np.array(fast), np.array(blocks))


@pytest.mark.parametrize("timing,h,h_bound,set_model", [(Deterministic(times=(1, 1, 1, 1, 2, 2, 3)), 1, np.inf, "persistent"),
                                                        (ShiftedExponential(), 5, 5, "persistent"),
                                                        (ShiftedExponential(), 1, 1, "uniform")])
def test_bounds_exceed_a_simulation_of_the_rules(timing, h, h_bound, set_model):
    rng = np.random.default_rng(0)
    n, k, b_size, m_blocks, d, rounds, sigma2 = 7, 4, 6, 3, 4, 120, 2.0
    hdiag = np.linspace(0.3, 1.0, d)
    centers = rng.normal(0, 1.0, size=(n, d)) + 2.0
    cbar = centers.mean(0)
    consts = dict(L=hdiag.max(), sigma2=sigma2, zeta2=float(np.mean(np.sum((hdiag * (centers - cbar)) ** 2, 1))),
                  Delta=float(0.5 * np.sum(hdiag * cbar**2)))
    eta = 0.25
    for alg in ("full-sync", "fastest-k", "lgc", "lgc-fresh"):
        meas, st = _simulate(alg, n=n, k=k, b_size=b_size, m_blocks=m_blocks, eta=eta, rounds=rounds, hdiag=hdiag,
                             centers=centers, sigma2=sigma2, timing=timing, h=h, seeds=8)
        sm = set_model if alg in ("fastest-k", "lgc") else "persistent"
        bound = float(evaluate(alg, N=n, K=k, B=b_size, M=m_blocks, eta=eta, T=rounds, h=h_bound, set_model=sm,
                               m_inv=st["m_inv"], zero_frac=st["zero_frac"], **consts)["total"])
        assert bound >= meas, (alg, bound, meas)
        if alg == "full-sync":
            assert bound <= 10 * meas, (bound, meas)  # not vacuous


def _small_quadratic(seed):
    """N = 7 workers, d = 4, L = 1: the setting of the step-size-limit tests, with its exact constants."""
    rng = np.random.default_rng(seed)
    n, b_size, m_blocks, d, rounds, sigma2 = 7, 6, 3, 4, 150, 2.0
    hdiag = np.linspace(0.3, 1.0, d)
    centers = rng.normal(0, 1.0, size=(n, d)) + 2.0
    cbar = centers.mean(0)
    consts = dict(L=1.0, sigma2=sigma2, zeta2=float(np.mean(np.sum((hdiag * (centers - cbar)) ** 2, 1))),
                  Delta=float(0.5 * np.sum(hdiag * cbar**2)))
    return n, b_size, m_blocks, rounds, sigma2, hdiag, centers, consts


@pytest.mark.parametrize("k,timing,h", [(1, ShiftedExponential(), 5), (4, ShiftedExponential(), 3),
                                        (2, Deterministic(times=(1, 1, 2, 2, 3, 3, 4)), 1)])
def test_direct_lgc_bound_holds_at_its_largest_step_size(k, timing, h):
    """The direct lgc bound (eq. 4.29) at 0.98 of its own step-size limit (eq. 4.28), beyond the
    recursive bound's q < 1/2 where it is the only one that holds, exceeds the simulation with
    persistent sets (set changes every h rounds; never for the fixed Deterministic times)."""
    n, b_size, m_blocks, rounds, sigma2, hdiag, centers, consts = _small_quadratic(3)
    eta = 0.98 * float(eta_max("lgc", n, k, 1.0, form="direct"))
    assert eta > float(eta_max("lgc", n, k, 1.0, form="recursive"))
    meas, st = _simulate("lgc", n=n, k=k, b_size=b_size, m_blocks=m_blocks, eta=eta, rounds=rounds, hdiag=hdiag,
                         centers=centers, sigma2=sigma2, timing=timing, h=h, seeds=6)
    q = dict(N=n, K=k, B=b_size, M=m_blocks, eta=eta, T=rounds, m_inv=st["m_inv"], zero_frac=st["zero_frac"],
             phi=float(set_change_fraction(rounds, np.inf if h == 1 else h)), **consts)
    got = terms("lgc", q, form="direct")
    assert got["staleness"] > 0
    assert sum(got.values()) >= meas, (sum(got.values()), meas)


@pytest.mark.parametrize("k,timing,h,semantics", [(1, ShiftedExponential(), 5, "boundary"),
                                                  (3, ShiftedExponential(), 1, "boundary"),
                                                  (2, Deterministic(times=(1, 1, 2, 2, 3, 3, 4)), 1, "boundary")])
@pytest.mark.parametrize("eta_l", [0.5, 0.9, 0.97])
def test_virtual_lgc_bound_holds_up_to_eta_l_one(k, timing, h, semantics, eta_l):
    """The virtual-sequence lgc bound (eq. 4.31) at step sizes up to 0.97/L, where the
    compensation's delay matters most, exceeds the simulation for persistent and fresh sets."""
    n, b_size, m_blocks, rounds, sigma2, hdiag, centers, consts = _small_quadratic(4)
    meas, st = _simulate("lgc", n=n, k=k, b_size=b_size, m_blocks=m_blocks, eta=eta_l, rounds=rounds, hdiag=hdiag,
                         centers=centers, sigma2=sigma2, timing=timing, h=h, seeds=6)
    q = dict(N=n, K=k, B=b_size, M=m_blocks, eta=eta_l, T=rounds, m_inv=st["m_inv"], zero_frac=st["zero_frac"],
             phi=1.0, **consts)
    got = terms("lgc", q, form="virtual")
    assert got["staleness"] > 0
    assert sum(got.values()) >= meas, (sum(got.values()), meas)


@pytest.mark.parametrize("n", [5, 6])
def test_set_change_coefficients_brute_force(n):
    """eq. (4.20): over every A_{t-1}, S'_{t-1} (the rest of the stragglers report no block) and A_t,
    the set-bias coefficients c = 1_{A_t}/K - 1/N + c^Delta sum to 0 and N ||c||^2 <= (2 (N-K) +
    2 min(K, N-K)) / K, with equality for K <= N/2; the old 4 (N-K)/K is attained only at K = N/2."""
    from itertools import combinations

    for k in range(1, n + 1):
        worst = 0.0
        for a_prev in combinations(range(n), k):
            rest = [i for i in range(n) if i not in a_prev]
            for s in range(len(rest) + 1):
                s_prev = rest[:s]  # which stragglers report is symmetric up to relabelling A_t
                for a_now in combinations(range(n), k):
                    c = np.full(n, -1.0 / n)
                    c[list(a_now)] += 1.0 / k
                    c[s_prev] += 1.0 / n
                    c[list(a_prev)] -= (s / n) / k
                    assert abs(c.sum()) < 1e-12
                    worst = max(worst, n * float(c @ c))
        bound = (2 * (n - k) + 2 * min(k, n - k)) / k
        assert worst <= bound + 1e-12
        if 2 * k <= n:
            assert worst == pytest.approx(bound)
        if k < n and 2 * k != n:  # at K = N/2 the two coincide and are attained
            assert worst < 4 * (n - k) / k
