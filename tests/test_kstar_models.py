"""paper_figures.kstar_cells / kstar_models: the cells cover the issue's grid, the grading is right."""
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
    val, dev = cells("validation"), cells("development")
    assert len(val) + len(dev) == len(CELLS) and abs(len(val) - len(dev)) <= 1
    assert all(c.name.startswith("v") for c in val) and all(c.name.startswith("d") for c in dev)
    for half in (val, dev):
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
    assert km.r2([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == pytest.approx(1 - 5 / 2)
    assert km.corr2([1.0, 2.0, math.inf], [1.0, 2.0, 3.0]) is None
