"""The K* check (paper_figures/kstar_check.py): its batched simulation is the trainers' rules, and
the check runs end to end at tiny scale."""
import numpy as np
import pytest

from paper_figures import kstar_check as kc
from paper_figures import kstar_grade as kg
from paper_figures.kstar_sim import budget_mean, draw_times, from_shared, schedule, simulate


def _setting():
    from lgc.data.synthetic import make_quadratic
    from theory.timing import ShiftedExponential

    quad = make_quadratic(5, 3, seed=2, sigma2=4.0)
    return quad, ShiftedExponential(1.0, 1.0)


def test_schedule_is_theory_schedule():
    from theory.schedule import schedule_round

    _, timing = _setting()
    for r in range(20):
        finish = timing.block_finish_times(3, r, 6, 4)
        for k in (1, 3, 6):
            fast, blocks, t_cut = schedule(finish[:, -1], k, 4)
            s = schedule_round(finish, k, semantics="abort")
            assert np.array_equal(fast, s.fast_mask()) and np.array_equal(blocks, s.blocks_done) and t_cut == s.wall


@pytest.mark.parametrize("algorithm", ["full-sync", "fastest-k", "lgc"])
def test_batched_sim_equals_validate(algorithm):
    """Same schedules and noises as lgc.validate.measure (lgc.rules' code, itself checked against
    lgc.sim in tests/test_validation.py): the same ||grad F(w_t)||^2 for every round and seed."""
    from lgc.validate import block_noise, make_schedules, measure

    quad, timing = _setting()
    seeds, T, n, m, b = [0, 1, 2], 25, 5, 4, 8
    noise = block_noise(quad, seeds, T, batch=b, blocks=m)
    x = np.array([[timing.block_finish_times(s, t, n, m, period=3)[:, -1] for t in range(T)] for s in seeds])
    for k in (2, 4):
        sched = make_schedules(timing, seeds, T, n, m, k, period=3, semantics="abort")
        ref = measure(quad, algorithm, sched, batch=b, blocks=m, lr=0.3, seeds=seeds, noise=noise).grad_sq
        got = simulate(from_shared(quad), algorithm, x, [k], m_blocks=m, batch=b, eta=0.3, noise=noise)[0]
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_budget_mean_counts_rounds_within_budget():
    g = np.arange(1.0, 7.0)[None, None]
    wall = np.array([[[1.0, 2.0, 1.0, 5.0, 1.0, 1.0]]])
    mean, t = budget_mean(g, wall, 4.0)  # rounds end at 1, 3, 4, 9: three within tau = 4
    assert t[0, 0] == 3 and mean[0, 0] == pytest.approx(2.0)


def test_draw_times_holds_a_period():
    _, timing = _setting()
    x = draw_times(timing, 2, 7, 4, 3)
    assert np.array_equal(x[:, 0], x[:, 2]) and not np.array_equal(x[:, 2], x[:, 3])


def test_kstar_check_smoke(capsys):
    """Tiny scale (N = 4, two seeds, one budget): every cell has a K*, a best K and a ratio >= 1."""
    cells = kc.run(seeds=2, budgets=(20.0,), n=4, log=lambda s: None)
    assert len(cells) == 2 * 3 * 2
    for c in cells:
        assert 1 <= c.k_star <= 4 and 1 <= c.best <= 4 and c.ratio >= 1.0 and c.k_star in c.k_near
    out = kg.table(cells)
    assert "within 10%" in out and "worst ratio" in out


def test_aligned_problem_attains_the_fastest_k_bias_bound():
    """--aligned: with the fast workers as A, ||a_A||^2 = (N-K) zeta^2 / K, eq. (4.9) with equality."""
    p = kc.aligned_problem()
    k = p.n - 3  # 30% of N = 10 slow
    a = p.h * (p.w_star[None] - p.c)  # a_i at w*, where grad F = 0 (shared H: the same at every w)
    a_fast = a[3:].mean(0)
    assert float(a_fast @ a_fast) == pytest.approx((p.n - k) * p.zeta2() / k, rel=1e-9)
    assert p.delta < 1e-12


def test_second_grid_is_another_grid_and_runs(capsys):
    """--grid second: other problems, timings and budgets than the first grid; it runs end to end,
    and --aligned with --grid second is refused in one line."""
    first, second = kc.problems(4), kc.second_problems(4)
    for a, b in zip(first, second):
        assert a.name == b.name and not np.allclose(a.h, b.h) and not np.allclose(a.w0, b.w0)
    assert [t[0] for t in kc.second_timings()] != [t[0] for t in kc.timings()]
    assert set(kc.SECOND_BUDGETS).isdisjoint(kc.BUDGETS)
    cells = kc.run(seeds=2, budgets=(20.0,), n=4, second=True, log=lambda s: None)
    assert len(cells) == 2 * 3 * 2 and {c.timing for c in cells} == {t[0] for t in kc.second_timings()}
    assert all(c.ratio >= 1.0 for c in cells)
    assert kc.main(["--aligned", "--grid", "second"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_summary_reports_baselines_and_kstar_below_the_best():
    """A K* count means something beside what a fixed K gets: the summary gives K = N's and K = N/2's ratios to
    the best K with the same counts, and the cells whose K* is below the best K."""
    def cell(k_star, measured):
        m = np.asarray(measured, float)
        return kc.Cell("p", "t", 1.0, "lgc", k_star, [k_star], np.ones(4), m, np.zeros(4), np.ones(4), m)

    cells = [cell(2, [2.0, 1.0, 1.05, 1.2]), cell(1, [1.3, 1.0, 1.1, 1.5]), cell(3, [1.0, 1.0, 1.0, 1.0])]
    s = kg.summary(cells)
    assert s["below_best"] == 1  # the second cell: K* = 1, best 2
    assert s["k_n"]["worst"] == pytest.approx(1.5) and s["k_n"]["beyond_15"] == 2
    assert s["k_half"]["within_10"] == pytest.approx(1.0) and s["k_half"]["median"] == pytest.approx(1.0)
    assert s["worst"] == pytest.approx(1.3) and s["beyond_15"] == 1
    text = kg.table(cells)
    assert "K* below the best K in 1" in text and "baseline K = N = 4" in text and "baseline K = N/2 = 2" in text


def test_predictive_kstar_columns_and_variants(tmp_path):
    """Each cell carries the error model's curves (scalar constants and exact bands, both quantities) and its K*;
    the CSV and the summary report them; where F's spectrum is wide (shared-H: hbar from 0.1 to 1, two bands)
    the two variants predict differently."""
    from paper_figures import kstar_predict as kp

    cells = kc.run(seeds=2, budgets=(20.0,), n=4, log=lambda s: None)
    for c in cells:
        assert set(c.predicted) == {(v, q) for v in kp.VARIANTS for q in kp.QUANTITIES}
        assert all(np.isfinite(c.predicted[p]).all() and len(c.predicted[p]) == 4 for p in c.predicted)
        assert c.gap.shape == (4,) and (c.gap > 0).all()
        for v in kp.VARIANTS:
            for q in kp.QUANTITIES:
                assert c.k_pred(v, q) == 1 + int(np.flatnonzero(c.predicted[v, q] == c.predicted[v, q].min())[-1])
    wide = kc.problems(4)[0]
    assert len(kp.exact_bands(wide, wide.noise_sd(kc.B))["h"]) >= 2
    shared = [c for c in cells if c.problem == "shared-H"]
    assert all(not np.allclose(c.predicted["scalar", "grad2"], c.predicted["bands", "grad2"], rtol=0.02) for c in shared)
    s = kg.summary(cells)["predictive"]
    for q in kp.QUANTITIES:
        assert {"bound", "scalar", "bands", "k_n", "k_half"} <= set(s[q])
        assert all(np.isfinite(s[q][v]["r2_median"]) for v in kp.VARIANTS)
    text = kg.table(cells)
    assert "predictive K* (a: scalar constants)" in text and "predictive K* (b: exact curvature bands)" in text
    path = tmp_path / "k.csv"
    kg.write_csv(cells, path)
    head = path.read_text().splitlines()[0].split(",")
    for col in ("measured_gap", "pred_grad2_scalar", "pred_gap_bands", "is_k_pred_grad2_bands", "is_k_pred_gap_scalar"):
        assert col in head


def test_exact_bands_are_the_quadratics_constants():
    """The bands' shares add up to Delta, sigma^2 and zeta^2 exactly; a flat spectrum (every curvature L) is one
    band at L, whose prediction is one band at L's with the same Gram matrix (a reduction: the bands then change
    nothing)."""
    from paper_figures import kstar_predict as kp
    from paper_figures.kstar_sim import Quadratic
    from theory.predict import Bands
    from theory.predict_k import recommend
    from theory.timing import ShiftedExponential

    for p in kc.problems() + kc.second_problems():
        m = p.noise_sd(kc.B)
        b = kp.exact_bands(p, m)
        assert sum(b["delta"]) == pytest.approx(p.Delta, rel=1e-12)
        assert sum(b["sigma2"]) == pytest.approx(p.sigma2, rel=1e-12)
        assert sum(b["zeta2"]) == pytest.approx(p.zeta2(m), rel=1e-12)
        assert min(b["h"]) >= p.hbar.min() - 1e-12 and max(b["h"]) <= p.hbar.max() + 1e-12
    rng = np.random.default_rng(3)
    flat = Quadratic(h=np.ones((4, 5)), c=rng.normal(size=(4, 5)), w0=rng.normal(size=5) * 2, sigma2=3.0)
    m = flat.noise_sd(kc.B)
    assert kp.exact_bands(flat, m)["h"] == [1.0]
    res, prob = kc.k_star_problem("lgc", flat, ShiftedExponential(1.0, 1.0), 1, 20.0, n=4)
    recs = kp.predict(res, prob, flat, m)
    # one band at L (the scalar constants' prior is wider), with the same workers' Gram matrix (eq. 8.2'')
    one = recommend(res, prob, Bands.scalar(prob.L), gram=kp.exact_gram(flat, m))
    np.testing.assert_allclose(recs["bands"].prediction.grad2, one.prediction.grad2, rtol=1e-9)
    np.testing.assert_allclose(recs["bands"].prediction.gap, one.prediction.gap, rtol=1e-9)


def test_budget_final_and_r_squared():
    from paper_figures import kstar_predict as kp
    from paper_figures.kstar_sim import budget_final

    gap = np.arange(10.0, 16.0)[None, None]
    wall = np.array([[[1.0, 2.0, 1.0, 5.0, 1.0, 1.0]]])
    assert budget_final(gap, wall, 4.0)[0, 0] == 13.0  # three rounds within tau = 4: w_3's gap
    m = np.array([3.0, 1.0, 2.0])
    assert kp.r_squared(m, m) == 1.0 and kp.r_squared(np.full(3, 2.0), m) == pytest.approx(0.0)
