"""The bounds: sympy reductions and term split, numeric = symbolic, and a numpy simulation of
the rules on non-IID quadratics (written here, independent of lgc) that each bound must exceed."""
import numpy as np
import pytest
import sympy as sp

from theory.bounds import LAMBDAS, eta_max, evaluate, set_change_fraction, symbolic, symbols, terms
from theory.errors import TheoryInputError
from theory.set_models import inclusion_coefficients

S = symbols()


def total(alg, **kw):
    return sp.Add(*symbolic(alg, syms=S, **kw).values())


@pytest.mark.parametrize("alg,set_model,form,lam", [
    ("lgc", "persistent", "direct", 1.0), ("lgc", "persistent", "recursive", 1.0), ("lgc", "persistent", "virtual", 1.0),
    ("lgc", "persistent", "noise-virtual", 1.0), ("lgc", "persistent", "noise-virtual", 0.125),
    ("lgc", "uniform", "uniform", 1.0), ("lgc", "uniform", "exchangeable", 1.0), ("lgc-fresh", "persistent", None, 1.0),
    ("lgc-fresh", "uniform", None, 1.0),
    ("fastest-k", "persistent", None, 1.0), ("fastest-k", "uniform", None, 1.0), ("fastest-k", "independent", None, 1.0)])
def test_every_bound_at_k_equal_n_is_full_sync(alg, set_model, form, lam):
    """At K = N (no stragglers; for independent sets pi = 1, so set_bias = set_var = 0) every form is eq. (4.6)."""
    syms = dict(S, set_bias=sp.Symbol("set_bias", nonnegative=True), set_var=sp.Symbol("set_var", nonnegative=True))
    got = sp.Add(*symbolic(alg, syms=syms, set_model=set_model, form=form, lam=lam).values())
    got = got.subs({syms["K"]: syms["N"], syms["set_bias"]: 0, syms["set_var"]: 0})
    assert sp.simplify(got - total("full-sync")) == 0


def test_uniform_lgc_has_no_bias_and_no_staleness_and_is_o_eta():
    t = symbolic("lgc", syms=S, set_model="uniform", form="uniform")
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


VALS = dict(N=10, K=6, B=12, M=3, T=500, L=2.0, sigma2=1.0, zeta2=0.5, Delta=3.0, phi=0.1, m_inv=0.5, zero_frac=0.1,
            zero_sq=0.1, delta_eff=2.0)


def _num(expr, **kw):
    return float(sp.lambdify([S[n] for n in S], expr, "numpy")(**dict(VALS, **kw)))


def _e_eps(v=VALS):
    """eq. (4.17) with E rho^2 = E s^2 / N^2, written out for the test's numbers."""
    n, k, f, zsq = v["N"], v["K"], v["zero_frac"], v["zero_sq"]
    es2 = (n - k) ** 2 * (1 - 2 * f + zsq)
    return v["sigma2"] * ((n - k) * v["m_inv"] / (n**2 * v["B"] / v["M"]) + es2 / (n**2 * k * v["B"]))


def _b_set_and_zero(v=VALS):
    """eqs. (4.20')-(4.21): period starts at 2 N (N-K)/(K max(K, N-K)), the first round (N-K)/K, the rest
    the fresh bias E z (z + K)/(N K); times zeta^2."""
    n, k, f, zsq, T, phi = v["N"], v["K"], v["zero_frac"], v["zero_sq"], v["T"], v["phi"]
    c_set = 2 * n * (n - k) / (k * max(k, n - k))
    fresh = ((n - k) ** 2 * zsq + k * (n - k) * f) / (n * k)
    return (phi * c_set + (n - k) / (k * T)) * v["zeta2"], (1 - phi - 1 / T) * fresh * v["zeta2"]


@pytest.mark.parametrize("form", ["direct", "recursive", "virtual", "noise-virtual"])
def test_lgc_excess_over_full_sync_splits_into_the_four_terms(form):
    t = symbolic("lgc", syms=S, form=form)
    fs = symbolic("full-sync", syms=S)
    eta = S["eta"]
    assert set(t) == {"optimization", "noise", "variance", "set_change", "zero_block", "staleness"}
    assert sp.simplify(t["optimization"] + t["noise"] - sum(fs.values())) == 0
    assert not sp.simplify(t["variance"] / eta).has(eta)  # variance: exactly linear in eta
    rho = (10 - 6) / 10
    e_eps = _e_eps()
    b_set, b_zero = _b_set_and_zero()
    if form == "recursive":
        # staleness: a relative inflation of order eta^2 (the factor q/(1-2q), q = 24 rho^2 delta^2 eta^2)
        rest = sum(v for k, v in t.items() if k != "staleness")
        assert _num(t["staleness"] / (eta**2 * rest), eta=1e-6) == pytest.approx(24 * rho**2 * 2.0**2, rel=1e-3)
        assert _num(t["staleness"] / (eta**2 * rest), eta=1e-6, delta_eff=0.5) == pytest.approx(24 * rho**2 * 0.25, rel=1e-3)
    elif form == "virtual":
        # staleness: L^2 eta^2/(1 - eta L) [E||Delta||^2 + E_eps] (eq. 4.31); no set-change term; the rest is lgc-fresh's
        assert not sp.simplify(t["staleness"] * (1 - S["L"] * eta) / eta**2).has(eta)
        e_delta = (1 - 0.1) * 4 * 0.5 / 6  # zero_sq = zero_frac: E s (s + K)/(N K) = (1 - f)(N - K)/K
        assert _num(t["staleness"], eta=0.1) == pytest.approx(4 * 0.01 / 0.8 * (e_delta + e_eps), rel=1e-12)
        assert t["set_change"] == 0
        fresh = symbolic("lgc-fresh", syms=S)
        assert sp.simplify(sum(t.values()) - t["staleness"] - sum(fresh.values())) == 0
    elif form == "noise-virtual":
        # eq. (4.33), lambda = theta = 1: staleness 2 r2 [2 E_eps + V_A] + L^2 eta^2 E_eps / alpha,
        # alpha = 1 - eta L - 4 r2; with delta = 0 only the delayed noise L^2 eta^2 E_eps/(1 - eta L) remains
        r2 = 4 * rho**2 * 2.0**2 * 0.1**2
        alpha = 1 - 0.2 - 4 * r2
        v_a = 1.0 / (6 * 12)
        assert _num(t["staleness"], eta=0.1) == pytest.approx(2 * r2 * (2 * e_eps + v_a) + 4 * 0.01 * e_eps / alpha, rel=1e-12)
        assert _num(t["staleness"], eta=0.1, delta_eff=0.0) == pytest.approx(4 * 0.01 * e_eps / 0.8, rel=1e-12)
        assert _num(t["set_change"] + t["zero_block"], eta=0.1) == pytest.approx(2 * (b_set + b_zero), rel=1e-12)
        # variance: lgc-fresh's noise (4.13) beyond full-sync's, no E_eps / sqrt(rho) term
        fresh = symbolic("lgc-fresh", syms=S)
        assert sp.simplify(t["variance"] + t["noise"] - fresh["noise"]) == 0
    else:
        # staleness: exactly quadratic in eta, 2 r2 [(1 + 1/sqrt(rho)) E_eps + V_A], r2 = 4 rho^2 L^2 eta^2 (eq. 4.29)
        assert not sp.simplify(t["staleness"] / eta**2).has(eta)
        x = (1 + 1 / np.sqrt(rho)) * e_eps + 1.0 / (6 * 12)
        assert _num(t["staleness"], eta=0.1) == pytest.approx(2 * 4 * rho**2 * 2.0**2 * 0.1**2 * x, rel=1e-12)
        # set change and zero-block bias carry the factor 1 + LAMBDA = 2 and nothing else
        assert _num(t["set_change"] + t["zero_block"], eta=0.1) == pytest.approx(2 * (b_set + b_zero), rel=1e-12)
    assert sp.simplify(t["staleness"].subs(S["K"], S["N"])) == 0
    if form != "virtual":
        # set change: phi times the period-start coefficient plus the first round's fastest-K bias / T
        first = t["set_change"].subs(S["phi"], 0) * S["T"] / ((S["N"] - S["K"]) * S["zeta2"] / S["K"])
        assert _num(first, eta=0.1) == pytest.approx(2.0, rel=1e-12)  # (1 + lambda) or 2, times (4.9)
        assert sp.simplify(sp.diff(t["set_change"], S["phi"], 2)) == 0
    assert t["set_change"].subs(S["zeta2"], 0) == 0
    # zero-block bias: zero when no straggler reports zero blocks
    assert sp.simplify(t["zero_block"].subs({S["zero_frac"]: 0, S["zero_sq"]: 0})) == 0


def test_exchangeable_sets_charge_the_compensation_one_over_n_minus_one():
    """eq. (4.32): the compensation's set term is E s (s + K) zeta^2/(N K (N-1)), at most (N-K) zeta^2/(K (N-1)),
    where the persistent (4.31) charges (N-K) zeta^2/K; and the zero-block set is O(eta) noise."""
    t = symbolic("lgc", syms=S, set_model="uniform", form="exchangeable")
    v = symbolic("lgc", syms=S, set_model="uniform", form="virtual")
    no_noise = {S["sigma2"]: 0, S["zero_frac"]: 0, S["zero_sq"]: 0}
    ratio = sp.simplify(t["staleness"].subs(no_noise) / v["staleness"].subs(no_noise))
    assert sp.simplify(ratio - 1 / (S["N"] - 1)) == 0
    k = S["K"]; n = S["N"]
    expect = S["L"] ** 2 * S["eta"] ** 2 / (1 - S["L"] * S["eta"]) * (n - k) * S["zeta2"] / (k * (n - 1))
    assert sp.simplify(t["staleness"].subs(no_noise) - expect) == 0
    assert not sp.simplify(t["zero_block"] / S["eta"]).has(S["eta"])
    # never above the persistent virtual bound, at every admissible point
    for kw in (dict(eta=0.3), dict(eta=0.45, zero_frac=0.6, zero_sq=0.5, m_inv=0.3), dict(eta=0.05, sigma2=0.0)):
        assert _num(sum(t.values()), **kw) <= _num(sum(v.values()), **kw)


def test_lgc_takes_the_smallest_of_its_bounds_where_each_holds():
    """Persistent-set lgc: evaluate = min over (4.31), (4.33) for every lambda of LAMBDAS, (4.29), (4.23) of the
    forms whose step-size condition holds; eta_max is the largest of their limits."""
    n, ks = 12, np.arange(1, 13)
    p = dict(N=n, K=ks, B=12, M=3, T=300, L=1.5, sigma2=2.0, zeta2=0.7, Delta=2.0, h=4, m_inv=0.6, zero_frac=0.2)
    for eta in (0.02, 0.1, 0.2, 0.3, 0.5):
        for delta in (None, 0.3):
            got = evaluate("lgc", eta=eta, delta=delta, **p)
            sums = []
            for form in ("virtual", "noise-virtual", "direct", "recursive"):
                for lam in (LAMBDAS if form == "noise-virtual" else (1.0,)):
                    q = dict(p, eta=eta, phi=float(set_change_fraction(300, 4)), delta_eff=1.5 if delta is None else delta)
                    q.pop("h")
                    with np.errstate(divide="ignore"):
                        t = terms("lgc", {k: np.asarray(v, float) for k, v in q.items()}, np.sqrt, form=form, lam=lam)
                    ok = eta <= eta_max("lgc", n, ks, 1.5, form=form, delta=delta, lam=lam) * (1 + 1e-12)
                    sums.append(np.where(ok, sum(t.values()), np.inf))
            np.testing.assert_allclose(got["total"], np.minimum.reduce(sums), rtol=1e-12)
            fin = np.isfinite(got["total"])
            assert np.allclose(sum(got["terms"].values())[fin], got["total"][fin])
    every = np.maximum.reduce([eta_max("lgc", n, ks, 1.5, form=f) for f in ("virtual", "noise-virtual", "direct", "recursive")])
    assert np.allclose(eta_max("lgc", n, ks, 1.5), every)
    # the direct condition (eq. 4.28) allows larger steps than q < 1/2 when rho_bar >= 0.35
    rho = (n - ks) / n
    assert np.all(eta_max("lgc", n, ks, 1.5, form="direct")[rho >= 0.35] > eta_max("lgc", n, ks, 1.5, form="recursive")[rho >= 0.35])
    # (4.33) has no eta L (1 + sqrt(rho)) cap: with delta = 0 it holds up to eta L < 1
    assert np.all(eta_max("lgc", n, ks, 1.5, form="noise-virtual", delta=0.0) * 1.5 > 1 - 1e-6)
    assert np.all(eta_max("lgc", n, ks[:-1], 1.5, form="noise-virtual") > eta_max("lgc", n, ks[:-1], 1.5, form="direct"))


def test_set_change_fraction_shrinks_with_h():
    """phi counts the period starts after the first round (eq. 4.20)."""
    phi = set_change_fraction(1000, np.array([1, 2, 10, 100, np.inf]))
    assert np.allclose(phi, [999 / 1000, 499 / 1000, 99 / 1000, 9 / 1000, 0.0])


def _random_stats(rng, m):
    if m == 1:
        return dict(m_inv=0.0, zero_frac=1.0, zero_sq=1.0)
    f = float(rng.uniform(0, 1))
    return dict(m_inv=float(rng.uniform(0, 1 - f)), zero_frac=f, zero_sq=float(rng.uniform(f * f, f)))


def test_numeric_evaluation_equals_the_sympy_expression():
    rng = np.random.default_rng(0)
    cases = [(a, "persistent") for a in ("full-sync", "fastest-k", "lgc", "lgc-fresh")]
    for alg, set_model in cases + [("fastest-k", "uniform"), ("lgc", "uniform"), ("lgc-fresh", "uniform")]:
        forms = [(f, lam) for f in ({"persistent": ("virtual", "noise-virtual", "direct", "recursive"),
                                     "uniform": ("virtual", "exchangeable", "uniform")}[set_model])
                 for lam in (LAMBDAS if f == "noise-virtual" else (1.0,))] if alg == "lgc" else [(None, 1.0)]
        fs = {fl: sp.lambdify([S[n] for n in S], sp.Add(*symbolic(alg, syms=S, set_model=set_model, form=fl[0],
                                                                      lam=fl[1]).values()), "numpy") for fl in forms}
        for _ in range(5):
            n = int(rng.integers(2, 50)); k = int(rng.integers(1, n + 1)); m = int(rng.integers(1, 6))
            p = dict(N=n, K=k, B=m * int(rng.integers(1, 10)), M=m, T=int(rng.integers(10, 1000)), L=float(rng.uniform(0.5, 3)),
                     sigma2=float(rng.uniform(0, 2)), zeta2=float(rng.uniform(0, 2)), Delta=float(rng.uniform(0.1, 5)),
                     **_random_stats(rng, m))
            delta = float(rng.uniform(0, 2 * p["L"]))
            p["eta"] = 0.9 * float(eta_max(alg, n, k, p["L"], set_model, delta=delta))
            h = 1 if set_model == "uniform" else int(rng.integers(1, 20))
            num = evaluate(alg, h=h, set_model=set_model, delta=delta, **p)
            ps = {**p, "phi": float(set_change_fraction(p["T"], h)), "delta_eff": min(delta, p["L"])}
            sym = min(fs[fl](**ps) if p["eta"] <= float(eta_max(alg, n, k, p["L"], set_model, fl[0], delta=delta, lam=fl[1]))
                      else np.inf for fl in forms)  # lgc: the smallest of the forms that hold at this eta
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


def test_lgc_at_k_equal_n_and_eta_one_over_l_is_full_sync_not_nan():
    """A form whose value is 0 * inf there (eq. 4.31's 1/(1 - eta L)) is no bound and never wins the minimum."""
    p = dict(N=8, B=6, M=3, T=100, L=2.0, sigma2=1.0, zeta2=0.5, Delta=1.0)
    got = evaluate("lgc", K=np.arange(1, 9), eta=0.5, **p)
    fs = evaluate("full-sync", K=8, eta=0.5, **p)["total"]
    assert not np.isnan(got["total"]).any()
    assert float(got["total"][-1]) == pytest.approx(float(fs), rel=1e-12)
    assert np.isinf(got["total"][:-1]).all()  # eta L = 1 is beyond every lgc form's limit where u != 0
    assert int(np.argmin(got["total"])) == 7


def test_without_statistics_the_bound_is_the_worst_case_from_m_and_the_semantics():
    """M = 1: no straggler reports, so lgc's bound is lgc-fresh's with every straggler empty, at least
    the fastest-K bias (N-K) zeta^2 / K (the old best-case default gave 0.30 where the truth is 9.6).
    Unknown statistics: never below the bound with any admissible statistics."""
    p = dict(N=10, K=np.arange(1, 11), B=12, eta=0.1, T=1000, L=1.0, sigma2=1.0, zeta2=1.0, Delta=1.0, h=5)
    m1 = evaluate("lgc", M=1, **p)["total"]
    assert np.all(m1 >= (10 - p["K"]) / p["K"] * 1.0 - 1e-12)
    assert np.allclose(m1, evaluate("lgc", M=1, m_inv=0.0, zero_frac=1.0, **p)["total"])
    assert float(m1[4]) > 1.0  # K = 5: (N-K)/K = 1
    rng = np.random.default_rng(0)
    worst = evaluate("lgc", M=3, **p)["total"]
    # boundary: a straggler still busy with its overrun reports no block (eq. 2.3'), so no m_j >= 1
    boundary = evaluate("lgc", M=3, semantics="boundary", **p)["total"]
    assert np.allclose(boundary, worst)
    for _ in range(20):
        f = float(rng.uniform(0, 1))
        st = dict(m_inv=float(rng.uniform(0, 1 - f)), zero_frac=f)
        assert np.all(worst >= evaluate("lgc", M=3, **st, **p)["total"] * (1 - 1e-12))
        assert np.all(boundary >= evaluate("lgc", M=3, semantics="boundary", **st, **p)["total"] * (1 - 1e-12))
    with pytest.raises(TheoryInputError, match="zero_frac=0.0 must be 1 where M=1"):
        evaluate("lgc", M=1, m_inv=0.0, zero_frac=0.0, **p)


@pytest.mark.parametrize("kw,needle", [(dict(m_inv=0.8, zero_frac=0.5), "m_inv=0.8"), (dict(m_inv=0.1), "both"),
                                        (dict(m_inv=0.1, zero_frac=0.5, zero_sq=0.6), "zero_sq=0.6"),
                                        (dict(delta=-1.0), "delta=-1.0"), (dict(semantics="late"), "semantics='late'")])
def test_evaluate_rejects_inconsistent_statistics(kw, needle):
    p = dict(N=10, K=5, B=12, M=3, eta=0.1, T=100, L=1.0, sigma2=1.0, zeta2=1.0, Delta=1.0)
    with pytest.raises(TheoryInputError, match=needle):
        evaluate("lgc", **p, **kw)


def test_exact_zero_block_moments_tighten_the_linearised_bound():
    """zero_sq = zero_frac is the linearised bound (z^2 <= z (N-K)); the true second moment is smaller."""
    p = dict(N=10, K=np.arange(1, 10), B=12, M=3, eta=0.1, T=1000, L=1.0, sigma2=1.0, zeta2=1.0, Delta=1.0, h=5,
             m_inv=0.3, zero_frac=0.4)
    lin = evaluate("lgc-fresh", **p)
    assert np.allclose(lin["terms"]["zero_block"], 0.4 * (10 - p["K"]) / p["K"])
    assert np.allclose(evaluate("lgc-fresh", zero_sq=0.4, **p)["total"], lin["total"])
    exact = evaluate("lgc-fresh", zero_sq=0.16, **p)  # z constant = 0.4 (N - K): E z (z + K)/(N K)
    z = 0.4 * (10 - p["K"])
    assert np.allclose(exact["terms"]["zero_block"], z * (z + p["K"]) / (10 * p["K"]))
    assert np.all(exact["total"] < lin["total"])
    assert np.all(evaluate("lgc", zero_sq=0.16, **p)["total"] <= evaluate("lgc", **p)["total"])


def test_inclusion_coefficients_of_uniform_sets_and_of_a_fixed_fast_set():
    """eq. (4.11'): uniform random sets give bias 0 and var (N-K)/(K (N-1)) (eq. 4.11); a fast set that
    never changes gives the worst-case bias (N-K)/K and var 0; K = N gives 0 and 0."""
    rng = np.random.default_rng(0)
    n = 8
    ranks = np.array([rng.permutation(n) for _ in range(20000)])
    got = inclusion_coefficients(ranks, np.arange(1, n + 1))
    ks = np.arange(1, n + 1)
    assert np.allclose(got["set_var"], (n - ks) / (ks * (n - 1)), rtol=0.05, atol=1e-3)
    assert np.all(got["set_bias"] < 0.01 * (n - ks) / ks + 1e-12)
    fixed = inclusion_coefficients(np.tile(np.arange(n), (50, 1)), ks)
    assert np.allclose(fixed["set_bias"], (n - ks) / ks) and np.allclose(fixed["set_var"], 0.0)
    assert got["set_bias"][-1] == 0 and got["set_var"][-1] == 0
    # the independent-set fastest-K bound at uniform coefficients is eq. (4.11)
    p = dict(N=n, K=ks, B=6, M=3, eta=0.2, T=100, L=1.0, sigma2=1.0, zeta2=0.7, Delta=1.0)
    uni = evaluate("fastest-k", set_model="uniform", **p)["total"]
    ind = evaluate("fastest-k", set_model="independent", set_bias=0 * ks, set_var=(n - ks) / (ks * (n - 1)), **p)["total"]
    assert np.allclose(uni, ind)


@pytest.mark.parametrize("n", [5, 6])
def test_set_change_coefficients_brute_force(n):
    """eq. (4.20'): over every A_{t-1}, S'_{t-1} (the rest of the stragglers report no block) and A_t,
    the set-bias coefficients c = 1_{A_t}/K - 1/N + c^Delta sum to 0 and N ||c||^2 <= 2 N (N-K)/(K max(K, N-K)),
    attained for every K; the old 4 (N-K)/K (K > N/2) is strictly larger there."""
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
        bound = 2 * n * (n - k) / (k * max(k, n - k))
        assert worst == pytest.approx(bound, abs=1e-12)
        if 2 * k > n and k < n:
            assert bound < 4 * (n - k) / k
