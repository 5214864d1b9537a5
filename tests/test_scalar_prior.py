"""The error model's prior spectrum for scalar constants alone (theory.predict.Bands.prior, theory.predict_k.prior_floor;
DERIVATION.md eqs. 8.12, 8.13): its defining properties, and that `lgc optimize-k` without bands runs on it."""
import numpy as np
import pytest

from theory.predict import PRIOR_RATIO, ROUND_CAP, Bands
from theory.predict_k import prior_floor


def test_prior_is_one_band_at_L_when_mu_is_L():
    assert Bands.prior(2.0, floor=1e-3, mu=2.0) == Bands.scalar(2.0)


def test_prior_amounts_are_the_uniform_densitys_integrals():
    """Bands a factor 4 apart from L down to the floor, the rest in one band down to 0; each band's amounts are
    the integrals of h, 1 and h^2 over its interval, its curvature the interval's midpoint; the totals are the
    whole interval's, and after Bands.totals the per-band values sum to the scalar constants."""
    L, floor = 3.0, 3.0 / 100
    b = Bands.prior(L, floor=floor)
    top = [L / PRIOR_RATIO ** j for j in range(4)]  # 3, 0.75, 0.1875, 0.046875 > floor; /4 again is < floor
    edges = np.array(top + [0.0])
    hi, lo = edges[:-1], edges[1:]
    np.testing.assert_allclose(b.h, (hi + lo) / 2, rtol=1e-12)
    np.testing.assert_allclose(b.delta, (hi**2 - lo**2) / 2, rtol=1e-12)
    np.testing.assert_allclose(b.sigma2, hi - lo, rtol=1e-12)
    np.testing.assert_allclose(b.zeta2, (hi**3 - lo**3) / 3, rtol=1e-12)
    assert sum(b.sigma2) == pytest.approx(L) and sum(b.delta) == pytest.approx(L**2 / 2)
    t = b.totals(L, 7.0, 0.5, 11.0)
    assert t["sigma2"].sum() == pytest.approx(7.0) and t["zeta2"].sum() == pytest.approx(0.5)
    assert t["delta"].sum() == pytest.approx(11.0)
    # isotropic: Delta per unit of curvature grows like h, zeta2 like h^2, the noise flat
    dens = lambda v: np.asarray(v) / (hi - lo)
    assert np.all(np.diff(dens(b.delta)) < 0) and np.all(np.diff(dens(b.zeta2)) < 0)
    np.testing.assert_allclose(dens(b.sigma2), 1.0)


def test_mu_changes_the_prior():
    """With mu the curvatures lie in [mu, L]: the lowest band ends at mu, and a mu above L / 4 leaves one band."""
    free = Bands.prior(1.0, floor=1e-3)
    strong = Bands.prior(1.0, floor=1e-3, mu=0.1)
    assert min(free.h) < 0.01 and min(strong.h) > 0.1
    assert sum(strong.sigma2) == pytest.approx(0.9)
    one = Bands.prior(1.0, floor=1e-3, mu=0.5)
    assert one.h == (0.75,) and one.sigma2 == (0.5,)


def test_prior_floor_is_the_runs_resolution():
    assert prior_floor([0.5, 0.25], [100, 1000]) == pytest.approx(1 / 250)
    assert prior_floor([0.5, 0.5], [np.inf, 10]) == pytest.approx(1 / (0.5 * ROUND_CAP))  # a target: ROUND_CAP


def test_prior_refuses_bad_input():
    from theory.errors import TheoryInputError

    with pytest.raises(TheoryInputError, match="floor"):
        Bands.prior(1.0, floor=0.0)


def _optimize_k(extra=()):
    from lgc.cli import build_parser
    from lgc.commands import optimize_k

    args = build_parser().parse_args(["optimize-k", "--workers", "8", "--L", "1", "--sigma2", "20", "--zeta2", "2",
                                      "--Delta", "10", "--straggling-period", "10", "--budget", "300", *extra])
    prob, const, res = optimize_k.compute(args)
    return prob, res, optimize_k.recommend(args, prob, const, res)


@pytest.mark.parametrize("mu", [None, 0.2])
def test_optimize_k_on_scalar_constants_uses_the_prior(mu):
    """optimize-k without bands predicts with Bands.prior at the run's floor (and --mu), not one band at L."""
    from theory.predict import predict_errors

    prob, res, rec = _optimize_k(() if mu is None else ("--mu", str(mu)))
    p = rec.prediction
    pos = np.searchsorted(res.ks, p.ks)
    bands = Bands.prior(1.0, floor=prior_floor(res.eta[pos], res.rounds[pos]), mu=mu)
    assert len(bands.h) >= 2
    kw = dict(L=1.0, sigma2=20.0, zeta2=2.0, Delta=10.0, N=8, M=prob.M, B=prob.B, timing=prob.timing, h=prob.h,
              semantics=prob.semantics, ks=p.ks, rounds=res.rounds[pos], eta=res.eta[pos])
    explicit = predict_errors(res.algorithm, bands, **kw)
    np.testing.assert_allclose(p.gap, explicit.gap, rtol=1e-12)
    old = predict_errors(res.algorithm, Bands.scalar(1.0), **kw)
    assert not np.allclose(p.gap, old.gap, rtol=0.05)


def test_prior_bands_carry_their_coordinates_so_callers_need_not():
    """Above EXACT_N workers the deviations take `dims` random coordinates per band (eq. 8.2'): the prior's bands share
    one band's DIMS (at least 2 each), a rule Bands.prior states and predict_errors reads, so recommend's call
    (theory/predict_k.py) and a user's give the same numbers without knowing it."""
    from theory.predict import DIMS, EXACT_N, predict_errors
    from theory.timing import ShiftedExponential

    prior = Bands.prior(1.0, floor=1e-3)
    assert len(prior.h) >= 3 and prior.dims == max(2, DIMS // len(prior.h)) < DIMS
    assert Bands.scalar(1.0).dims == DIMS and Bands.from_json({k: [1.0] for k in ("h", "delta", "sigma2", "zeta2")}).dims == DIMS
    n = EXACT_N + 16
    kw = dict(L=1.0, sigma2=20.0, zeta2=2.0, Delta=10.0, N=n, M=4, B=16, timing=ShiftedExponential(), h=10,
              ks=[n // 2, n], rounds=[40, 30], eta=0.5, draws=4)
    own = predict_errors("lgc", prior, **kw)
    np.testing.assert_array_equal(own.gap, predict_errors("lgc", prior, dims=prior.dims, **kw).gap)
    assert not np.allclose(own.gap, predict_errors("lgc", prior, dims=DIMS, **kw).gap, rtol=1e-9, atol=0)
    with pytest.raises(Exception, match="dims"):
        Bands(h=(1.0,), delta=(1.0,), sigma2=(1.0,), zeta2=(1.0,), dims=0)
