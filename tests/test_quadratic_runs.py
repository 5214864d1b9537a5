"""paper_figures/quadratic_runs.py: the batched numpy runs behind the validation figures measure what
lgc.validate (the trainers' rules and schedules, itself checked against lgc.sim) measures on the
same timing draws and noises, for every algorithm with a bound, every K and both straggling regimes."""
from __future__ import annotations

import numpy as np
import pytest

from lgc import runs
from lgc.validate import make_schedules, measure
from paper_figures import quadratic_runs as qr
from theory.algorithms import BOUND_NAMES


@pytest.fixture
def short(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "RESULTS_ROOT", tmp_path)
    monkeypatch.setitem(qr.SETTING, "seeds", 3)
    monkeypatch.setattr(qr, "ROUNDS_DRAWN", 40)
    for f in (qr._noise, qr._times):
        f.cache_clear()
    yield
    for f in (qr._noise, qr._times):
        f.cache_clear()


@pytest.mark.parametrize("period", [1, 3, qr.PERSISTENT])
@pytest.mark.parametrize("algorithm", BOUND_NAMES)
def test_batched_runs_equal_lgc_validate(short, algorithm, period):
    s, rounds = qr.SETTING, 25
    seeds = list(range(s["seeds"]))
    got = qr.measured_all(algorithm, period, rounds)
    noise = qr._noise(qr.ROUNDS_DRAWN)
    assert sorted(got) == ([s["N"]] if algorithm == "full-sync" else list(range(1, s["N"] + 1)))
    for k, m in got.items():
        sched = make_schedules(qr.timing(), seeds, rounds, s["N"], s["M"], k, period=period, semantics="abort",
                               wait_reports=algorithm == "lgc-fresh")
        ref = measure(qr.problem(), algorithm, sched, batch=s["B"], blocks=s["M"], lr=s["eta"], seeds=seeds,
                      noise=noise)
        np.testing.assert_allclose(m["per_seed"], ref.per_seed, rtol=1e-9)
        np.testing.assert_allclose(m["grad_sq_mean"], ref.grad_sq.mean(0), rtol=1e-9)
        np.testing.assert_allclose(m["running_mean"][-1], ref.per_seed.mean(), rtol=1e-9)
        assert float(m["round_time"]) == pytest.approx(float(sched.wall.mean()), rel=1e-12)
        m_j = sched.blocks_done[~sched.fast]
        if m_j.size:
            assert float(m["zero_frac"]) == pytest.approx(float((m_j == 0).mean()))
            assert float(m["m_inv"]) == pytest.approx(float(np.where(m_j >= 1, 1.0 / np.maximum(m_j, 1), 0).mean()))


def test_a_prefix_of_a_longer_run_is_the_shorter_run(short):
    """One draw of times and noises serves every horizon: the first T rounds do not depend on the horizon."""
    long, short_ = qr.measured_all("lgc", 1, 40), qr.measured_all("lgc", 1, 20)
    for k in short_:
        np.testing.assert_allclose(long[k]["running_mean"][:20], short_[k]["running_mean"], rtol=1e-12)


def test_cached_measurement_is_read_back(short):
    first = qr.measured_all("fastest-k", 1, 10)
    second = qr.measured_all("fastest-k", 1, 10)
    for k in first:
        assert np.array_equal(first[k]["per_seed"], second[k]["per_seed"])
