"""Figure 7 (quick profile) draws predicted and measured round times from a real dist run."""
from __future__ import annotations

import csv

import numpy as np

from paper_figures import fig_timing


def test_fig_timing_writes_pdf_png_and_tidy_csv_from_a_dist_run(tmp_path):
    paths = fig_timing.make(tmp_path / "out", root=tmp_path / "res")
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
