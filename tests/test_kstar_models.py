"""paper_figures.kstar_cells / kstar_models: the cells cover the issue's grid, the grading is right."""
import json
import math

import pytest

from paper_figures import kstar_models as km
from paper_figures.kstar_cells import CELLS, PERSISTENT, SEEDS, cells


def _timing(c):
    if c.config.get("timing") == "heterogeneous":
        return "heterogeneous"
    return {1: "h=1", 10: "h=10", PERSISTENT: "persistent"}[c.config["straggling_period"]]


def test_the_cells_cover_the_grid_and_each_half_is_fixed():
    assert len(CELLS) >= 12 and len(SEEDS) >= 3 and len({c.name for c in CELLS}) == len(CELLS)
    val, val2, dev = cells("validation"), cells("validation-2"), cells("development")
    assert len(val) + len(val2) + len(dev) == len(CELLS) and abs(len(val) - len(dev)) <= 1
    assert all(c.name.startswith("v") for c in val + val2) and all(c.name.startswith("d") for c in dev)
    for half in (val, val2, dev):
        assert {c.config.get("model") for c in half} == {"mlp", "softmax", "cnn"}
        assert {c.config["partition"] for c in half} == {"dirichlet", "shards", "main-label"}
        assert {_timing(c) for c in half} == {"h=1", "h=10", "persistent", "heterogeneous"}
        assert {c.algorithm for c in half} == {"lgc", "fastest-k", "lgc-fresh"}
    assert all(6 <= c.n_workers <= 10 and c.ks == tuple(range(1, c.n_workers + 1)) for c in CELLS)


def test_every_cell_is_a_valid_run_and_its_commands_parse(tmp_path):
    from lgc.cli import build_parser

    for c in CELLS:
        km.train_config(c, "data").resolved().validate() if not c.uses_cifar else None
        for argv in (km.estimate_argv(c, "data"), km.optimize_argv(c, tmp_path / "c.json"),
                     km.sweep_argv(c, "data", 0.1, tmp_path)):
            args = build_parser(only=argv[0]).parse_args(argv)
            assert args.command == argv[0]
        sweep = build_parser(only="sweep-k").parse_args(km.sweep_argv(c, "data", 0.1, tmp_path))
        assert (sweep.lr, sweep.momentum, sweep.warmup_rounds, sweep.halving) == (0.1, 0.0, 0, False)
        assert sweep.n_workers == c.n_workers and sweep.algorithm == c.algorithm


def _opt(bound, k_star, **extra):
    return {"k_star": k_star, **extra, "rows": [{"K": k, "eta": 0.2, "bound": b} for k, b in enumerate(bound, 1)]}


def _sweep(mean, se, best):
    return {"best_k": best, "rows": [{"K": k, "mean": m, "se": s, "rounds": [10], "seeds": [0, 1, 2]}
                                     for k, (m, s) in enumerate(zip(mean, se), 1)]}


def test_hits_within_3_percent_or_2_se_of_the_difference():
    mean = {1: 1.00, 2: 1.029, 3: 1.04, 4: 1.04}
    se = {1: 0.001, 2: 0.001, 3: 0.001, 4: 0.02}
    assert km.hit(mean, se, 2, 1)          # 2.9%
    assert not km.hit(mean, se, 3, 1)      # 4%, SE of the difference 0.0014
    assert km.hit(mean, se, 4, 1)          # 4%, but 2 * hypot(0.02, 0.001) = 0.04 >= 0.04


def test_grade_reads_the_choosers_and_falls_back_to_k_star_without_k_star_bound():
    c = next(c for c in CELLS if c.n_workers == 8)
    sweep = _sweep([1.5, 1.2, 1.0, 1.01, 1.1, 1.2, 1.3, 1.4], [0.01] * 8, 3)
    table, s = km.grade(c, _opt([8, 7, 6, 5, 4, 3, 2, 1], 8), sweep)
    assert (s["k_predictive"], s["k_bound"], s["k_K=N"], s["k_K=N/2"]) == (8, 8, 8, 4)
    assert (s["hit_predictive"], s["hit_K=N/2"]) == (0, 1) and s["ratio_K=N"] == pytest.approx(1.4)
    assert s["predictive_model"] == 0 and s["r2_predicted"] is None
    pred = [1.5, 1.2, 1.0, 1.01, 1.1, 1.2, 1.3, 1.4]
    opt = _opt([8, 7, 6, 5, 4, 3, 2, 1], 3, k_star_bound=8)
    for r, p in zip(opt["rows"], pred):
        r["predicted_loss"] = p
    table, s = km.grade(c, opt, sweep)
    assert (s["k_predictive"], s["k_bound"], s["hit_predictive"], s["hit_bound"]) == (3, 8, 1, 0)
    assert s["r2_predicted"] == pytest.approx(1.0) and s["corr2_predicted"] == pytest.approx(1.0)
    assert [r["predicted"] for r in table] == pred and sum(r["is_best"] for r in table) == 1
    assert km.r2([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == pytest.approx(0.0)  # a flat prediction explains nothing
    assert km.r2([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)  # up to the unknown F*: an offset
    assert km.r2([0.0, 2.0, 4.0], [1.0, 2.0, 3.0]) == pytest.approx(1 - 2 / 2)  # a scale is not fitted
    assert km.corr2([1.0, 2.0, math.inf], [1.0, 2.0, 3.0]) is None
    assert km.r2_absolute([0.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(1 - 3 / 2)  # no offset is fitted
    assert km.r2_absolute([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert s["r2_heldout"] is None  # no pred_heldout column: the constants had no held-out record
    for r, p in zip(opt["rows"], pred):
        r["pred_heldout"] = p + 0.5  # the held-out prediction is absolute: an offset costs R^2
    table, s = km.grade(c, {**opt, "k_objective": "heldout"}, sweep)
    assert s["k_objective"] == "heldout" and s["r2_heldout"] < 0 and table[0]["predicted_heldout"] == 2.0


def test_one_tiny_cell_end_to_end(tmp_path, monkeypatch):
    """estimate -> optimize-k -> sweep-k -> the CSVs, on a 3-worker softmax cell."""
    import csv

    from paper_figures.kstar_cells import Cell

    monkeypatch.setattr(km, "ESTIMATE", ["--bootstrap", "10", "--l-bootstrap", "2", "--trajectory-steps", "3",
                                         "--lbfgs-iters", "10", "--power-iters", "5"])
    monkeypatch.setattr(km, "SEEDS", (0, 1, 2))
    cell = Cell("t1-tiny", "validation", "lgc", 3, 12.0,
                {"dataset": "synthetic", "synthetic_train": 600, "synthetic_test": 100, "model": "softmax",
                 "partition": "main-label", "samples_per_worker": 50, "classes_per_worker": 2}, batch_size=6, blocks=3)
    paths = km.make([cell], data_dir=None, results=tmp_path / "results", out=tmp_path / "out", log=lambda s: None)
    rows = list(csv.DictReader(open(tmp_path / "out" / "kstar_models.csv")))
    assert [int(r["K"]) for r in rows] == [1, 2, 3] and all(int(r["seeds"]) == 3 for r in rows)
    (summary,) = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    opt = json.loads((tmp_path / "out" / "cells" / "t1-tiny" / "optimize_k.json").read_text())
    assert int(summary["k_bound"]) == opt["k_star_bound"] and int(summary["k_predictive"]) == opt["k_star"]
    assert int(summary["k_K=N"]) == 3 and int(summary["k_K=N/2"]) == 1
    assert all(r["predicted"] not in ("", None) for r in rows)  # the error model's pred_gap, per K
    best = min(rows, key=lambda r: float(r["measured_mean"]))
    assert int(summary["best_k"]) == int(best["K"]) and float(rows[0]["eta"]) == opt["rows"][0]["eta"]
    assert "validation half (1 cells)" in (tmp_path / "out" / "summary.txt").read_text()
    assert all(p.exists() for p in paths)
