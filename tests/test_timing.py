"""Timing models: one interface, seeded draws, straggling period, factory validation, traces."""
import numpy as np
import pytest

from theory.errors import TheoryInputError
from theory.order_stats import expected_order_statistic, heterogeneous_cutoff
from theory.timing import Deterministic, HeterogeneousSpeed, LogNormal, Pareto, ShiftedExponential
from theory.timing_model import MC_ROUNDS, TimingModel, rng_for
from theory.timing_factory import make_timing_model
from theory.trace import (
    TraceReplay, batch_times_from_trace, fit_shifted_exponential, read_trace, trace_to_csv,
)


def _cutoffs(model, n, k, rounds, m_blocks=1):
    return np.array([np.sort(model.block_finish_times(7, r, n, m_blocks)[:, -1])[k - 1] for r in range(rounds)])


@pytest.mark.parametrize("model", [ShiftedExponential(1.0, 1.0), ShiftedExponential(0.5, 3.0), Pareto(1.0, 4.0),
                                   LogNormal(0.0, 0.5, 0.2)])
@pytest.mark.parametrize("n,k", [(10, 7), (25, 1), (25, 25)])
def test_sampled_cutoff_matches_order_statistic(model, n, k):
    x = _cutoffs(model, n, k, 4000)
    theory = model.expected_order_statistic(k, n)
    assert abs(x.mean() - theory) < 4 * x.std(ddof=1) / np.sqrt(len(x))


def test_heterogeneous_cutoff_matches_its_integral():
    model = HeterogeneousSpeed(slow_fraction=0.3, slowdown=4.0)
    for k in (3, 7, 10):
        x = _cutoffs(model, 10, k, 4000)
        assert abs(x.mean() - heterogeneous_cutoff(model, 10, k)) < 4 * x.std(ddof=1) / np.sqrt(len(x))
    # the integral itself: with slowdown 1 it is the i.i.d. closed form
    same = HeterogeneousSpeed(slow_fraction=0.3, slowdown=1.0)
    assert heterogeneous_cutoff(same, 10, 7) == pytest.approx(ShiftedExponential().expected_order_statistic(7, 10), rel=1e-7)


def test_deterministic_cutoff_is_the_sorted_time():
    model = Deterministic(times=(3.0, 1.0, 2.0, 5.0))
    x = model.block_finish_times(0, 0, 4, 2)
    assert np.array_equal(x[:, -1], [3.0, 1.0, 2.0, 5.0])
    assert np.array_equal(x[:, 0], [1.5, 0.5, 1.0, 2.5])
    assert np.array_equal(Deterministic(slow_fraction=0.5, slowdown=3).block_finish_times(0, 9, 4, 1)[:, 0], [3, 3, 1, 1])


def test_per_block_times_sum_to_mini_batch_mean():
    model = ShiftedExponential(1.0, 2.0, per_block=True)
    f = np.stack([model.block_finish_times(1, r, 50, 4) for r in range(200)])
    assert np.all(np.diff(f, axis=2) > 0)
    x = f[:, :, -1].ravel()
    assert abs(x.mean() - model.mean()) < 4 * x.std() / np.sqrt(x.size)


def test_draws_are_pure_functions_of_seed_round_and_held_for_the_period():
    m = ShiftedExponential()
    a = m.block_finish_times(3, 4, 6, 3, period=5)
    assert np.array_equal(a, m.block_finish_times(3, 0, 6, 3, period=5))  # same period 0
    assert not np.array_equal(a, m.block_finish_times(3, 5, 6, 3, period=5))  # next period
    assert np.array_equal(m.block_finish_times(3, 2, 6, 3), m.block_finish_times(3, 2, 6, 3))
    assert np.array_equal(rng_for(1, 2).random(3), rng_for(1, 2).random(3))


def test_hold_speed_keeps_the_slow_set_and_redraws_noise():
    m = HeterogeneousSpeed(slow_fraction=0.5, slowdown=50.0, shift=1.0, rate=1.0, slow_workers="random", hold="speed")
    r0, r1, r9 = (m.block_finish_times(2, r, 8, 1, period=5)[:, 0] for r in (0, 1, 5))
    slow = lambda x: set(np.argsort(x)[4:])
    assert slow(r0) == slow(r1)  # speed factors held within the period (50x apart: order is clear)
    assert not np.array_equal(r0, r1)  # noise redrawn every round
    held = HeterogeneousSpeed(slow_fraction=0.5, slowdown=50.0, slow_workers="random", hold="times")
    assert np.array_equal(held.block_finish_times(2, 0, 8, 1, period=5), held.block_finish_times(2, 4, 8, 1, period=5))
    # "first": the first round(fraction * N) workers are slow, on average slowdown times slower
    first = HeterogeneousSpeed(slow_fraction=0.25, slowdown=3.0)
    x = np.stack([first.block_finish_times(0, r, 8, 1)[:, 0] for r in range(3000)])
    assert x[:, :2].mean() / x[:, 2:].mean() == pytest.approx(3.0, rel=0.05)


@pytest.mark.parametrize("name,params,needle", [
    ("shifted-exp", {"rate": 0.0}, "rate=0.0"),
    ("shifted-exp", {"rate": -2.0}, "rate=-2.0"),
    ("shifted-exp", {"shift": -1.0}, "shift=-1.0"),
    ("pareto", {"alpha": 0.0}, "alpha=0.0"),
    ("lognormal", {"sigma": -1.0}, "sigma=-1.0"),
    ("heterogeneous", {"slowdown": 0.5}, "slowdown=0.5"),
    ("heterogeneous", {"hold": "never"}, "hold='never'"),
    ("deterministic", {"times": (1.0, -1.0)}, "-1.0"),
    ("gamma", {}, "'gamma'"),
    ("pareto", {"rate": 1.0}, "'rate'"),
])
def test_factory_rejects_bad_input_naming_the_value(name, params, needle):
    with pytest.raises(TheoryInputError) as e:
        make_timing_model(name, **params)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_factory_builds_every_model_with_one_interface(tmp_path):
    p = tmp_path / "t.csv"
    rows = [(r, w, b, 10.0 * r + b, 10.0 * r + b + 1.0 + w) for r in range(3) for w in range(4) for b in range(2)]
    p.write_text(trace_to_csv(rows))
    for name, params in [("shifted-exp", {}), ("pareto", {}), ("lognormal", {}), ("heterogeneous", {}),
                         ("deterministic", {}), ("trace", {"path": str(p)}), ("trace-fit", {"path": str(p)})]:
        m = make_timing_model(name, **params)
        f = m.block_finish_times(0, 1, 4, 3)
        assert f.shape == (4, 3) and np.all(f > 0) and np.all(np.diff(f, axis=1) >= 0)
        assert np.isfinite(m.mean())


def test_trace_replay_and_mle_fit(tmp_path):
    # worker w's blocks take 1 + w seconds; worker 3 stops after one of two blocks in round 1
    rows = [(r, w, b, 100.0 * r + 5 * b, 100.0 * r + 5 * b + 1.0 + w)
            for r in range(2) for w in range(4) for b in range(2) if not (r == 1 and w == 3 and b == 1)]
    trace = read_trace(trace_to_csv(rows))
    x = batch_times_from_trace(trace)
    assert np.allclose(x, [[2, 4, 6, 8], [2, 4, 6, 8]])  # the straggler's time is extrapolated
    model = TraceReplay(times=x)
    assert np.allclose(model.block_finish_times(0, 1, 4, 2)[:, 0], [1, 2, 3, 4])
    # MLE on a large shifted-exponential sample recovers its parameters
    sample = ShiftedExponential(0.7, 2.5).sample(np.random.default_rng(0), 20000)
    fit = fit_shifted_exponential(sample)
    assert fit.shift == pytest.approx(0.7, abs=1e-3) and fit.rate == pytest.approx(2.5, rel=0.03)


def test_malformed_trace_names_the_line(tmp_path):
    with pytest.raises(TheoryInputError, match="row 3"):
        read_trace("round,worker,block,start_s,end_s\n0,0,0,0.0,1.0\n0,1,x,0.0,1.0\n")
    with pytest.raises(TheoryInputError, match="header"):
        read_trace("a,b,c\n1,2,3\n")
    with pytest.raises(TheoryInputError, match="end_s"):
        read_trace("round,worker,block,start_s,end_s\n0,0,0,2.0,1.0\n")
    with pytest.raises(TheoryInputError, match="does not exist"):
        make_timing_model("trace", path=str(tmp_path / "missing.csv"))


# ----------------------------------------------------------------------------- the base class's routes
class _PdfOnly(TimingModel):  # a model that knows only its density: Exp(1) shifted by 1
    name = "pdf-only"

    def sample(self, rng, size):
        return 1.0 + rng.exponential(1.0, size=size)

    def mean(self):
        return 2.0

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x < 1.0, 0.0, np.exp(-np.maximum(x - 1.0, 0.0)))


class _CdfOnly(_PdfOnly):
    name = "cdf-only"
    pdf = TimingModel.pdf

    def cdf(self, x):
        return ShiftedExponential().cdf(x)


class _SamplesOnly(_PdfOnly):
    name = "samples-only"
    pdf = TimingModel.pdf  # back to the base: no distribution in closed form


def test_base_class_integrates_the_density_and_root_finds_the_quantile():
    ref = ShiftedExponential()
    x = np.array([0.5, 1.7, 4.0])
    np.testing.assert_allclose(_PdfOnly().cdf(x), ref.cdf(x), atol=1e-9)  # cdf = integral of pdf
    np.testing.assert_allclose(_CdfOnly().ppf([0.1, 0.5, 0.99]), ref.ppf([0.1, 0.5, 0.99]), rtol=1e-9)
    assert _CdfOnly().order_statistic_route == "integration" and _PdfOnly().order_statistic_route == "monte carlo"
    assert _CdfOnly().expected_order_statistic(3, 5) == pytest.approx(ref.expected_order_statistic(3, 5), rel=1e-7)


def test_base_class_falls_back_to_monte_carlo_with_its_error():
    m, ref = _SamplesOnly(), ShiftedExponential()
    assert m.order_statistic_route == "monte carlo" and not m.has_distribution
    mc = m.order_statistic_mc(3, 5, rounds=400)
    assert abs(mc.mean - ref.expected_order_statistic(3, 5)) < 4 * mc.se and mc.rounds == 400
    with pytest.raises(TheoryInputError, match="'samples-only' has no distribution function"):
        m.cdf(1.0)


def test_non_iid_order_statistic_is_the_monte_carlo_of_the_rounds_sim_sees():
    from theory.order_stats import round_stats

    model = HeterogeneousSpeed(slowdown=4.0)
    assert model.order_statistic_route == "monte carlo"
    stats = round_stats(model, 10, 1, ks=[7], rounds=MC_ROUNDS)
    assert model.expected_order_statistic(7, 10) == pytest.approx(float(stats.t_cut[0]), rel=1e-12)
    fixed = Deterministic(times=(1.0, 3.0, 2.0))
    assert fixed.order_statistic_mc(2, 3) == (2.0, 0.0, 1)  # one period: fixed times need one round


def test_anytime_deadline_of_a_non_iid_model_is_its_monte_carlo_order_statistic():
    from lgc.config import TrainConfig
    from lgc.protocol import anytime_deadline

    cfg = TrainConfig(algorithm="anytime-minibatch", timing="heterogeneous", n_workers=4, threshold_k=2)
    model = HeterogeneousSpeed()
    assert anytime_deadline(cfg, model) == model.order_statistic_mc(2, 4).mean


def test_models_say_how_their_fast_set_changes():
    assert Deterministic().set_change_period(5) == np.inf and Deterministic().periods() == 1
    assert HeterogeneousSpeed(hold="speed").set_change_period(5) == 1.0
    assert HeterogeneousSpeed().set_change_period(5) == 5.0 and ShiftedExponential().periods() is None
    assert TraceReplay(times=np.ones((3, 2))).periods() == 3 and TraceReplay(times=np.ones((3, 2))).fixed_times()


def test_timing_imports_neither_the_order_statistics_nor_the_traces():
    """No import circle: theory.timing_model <- theory.timing <- theory.trace <- theory.timing_factory; order_stats
    on top; the interface imports none of the laws."""
    import ast
    from pathlib import Path

    import theory.timing as timing
    import theory.timing_model as timing_model

    for module, banned in ((timing, set()), (timing_model, {"theory.timing", "theory.timing_workers"})):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not imported & ({"theory.order_stats", "theory.trace", "theory.timing_factory"} | banned)
        assert not any(isinstance(n, ast.ImportFrom) and n.module == "theory" for n in ast.walk(tree))
