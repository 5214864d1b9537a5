"""Figure 7 (quick profile) draws predicted and measured round times from a real dist run."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from paper_figures import fig_timing


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    """One dist run (the figure's config) shared by the tests below (the run cache reuses it)."""
    return tmp_path_factory.mktemp("dist-fig-results")


def test_fig_timing_writes_pdf_png_and_tidy_csv_from_a_dist_run(tmp_path, results_root):
    paths = fig_timing.make(tmp_path / "out", root=results_root)
    assert sorted(p.suffix for p in paths) == [".csv", ".pdf", ".png"]
    with open(tmp_path / "out" / "timing.csv") as f:
        rows = list(csv.DictReader(f))
    sources = {r["source"] for r in rows}
    assert sources == {"dist (measured)", "sim schedule", "theory E[R]"}
    assert len(rows) == 3 * fig_timing.ROUNDS
    meas = np.array([float(r["round_time"]) for r in rows if r["source"] == "dist (measured)"])
    pred = np.array([float(r["round_time"]) for r in rows if r["source"] == "sim schedule"])
    # measured rounds take at least the injected time, up to the coordination overhead
    assert np.all(meas > 0.9 * pred) and np.median(meas / pred) < 1.5
    theory = {float(r["round_time"]) for r in rows if r["source"] == "theory E[R]" and r["warmup"] == "0"}
    assert len(theory) == 1 and 1.0 < theory.pop() < 4.0  # E[R(K=3)] of shifted-exp(1, 1), N = 4, M = 4


def test_dist_trace_is_read_by_the_trace_timing_model(results_root):
    """theory.trace reads dist's trace.csv; the measured mini-batch times of the workers that
    finished all M blocks are the injected ones (model X_i times the unit), up to overhead."""
    from lgc.dist import DistOptions, run_dist
    from lgc.protocol import make_timing
    from theory.schedule import schedule_from_csv
    from theory.trace import TraceReplay, fit_shifted_exponential_csv

    cfg = fig_timing.config()
    path = run_dist(cfg, DistOptions(unit_ms=fig_timing.UNIT_MS), root=results_root, quiet=True)
    replay = TraceReplay.from_csv(str(path / "trace.csv"))
    assert replay.times.shape == (cfg.rounds, cfg.n_workers)
    timing = make_timing(cfg.resolved())
    sched = schedule_from_csv((path / "schedule.csv").read_text())
    unit_s = fig_timing.UNIT_MS / 1000.0
    ratios = [replay.times[s.round, i] / (timing.block_finish_times(cfg.seed, s.round, cfg.n_workers, cfg.blocks)[i, -1] * unit_s)
              for s in sched for i in s.fast]
    assert 0.97 < np.median(ratios) < 1.15, np.median(ratios)
    fit = fit_shifted_exponential_csv(str(path / "trace.csv"))
    assert fit.shift > 0 and fit.rate > 0
