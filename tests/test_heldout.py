"""The error model's held-out term (issue 21; DERIVATION.md eqs. 8.14, 8.14'): the pilot's curve read at each K's
predicted progress (theory/heldout.py), the pilot itself (lgc/heldout.py, `lgc estimate --heldout-steps`), the
constants JSON's "heldout" record and optimize-k's K* with and without it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lgc.cli import main
from theory.constants import read_constants, validate_constants, write_constants
from theory.errors import TheoryInputError
from theory.heldout import beyond_pilot, isotonic, predicted_heldout

CONST = {"L": 1.0, "sigma2": 1.0, "zeta2": 0.5, "Delta": 2.0}
RECORD = {"train": [2.0, 1.0, 0.5], "heldout": [2.0, 1.5, 1.5], "steps": [0, 10, 20], "lr": 0.5,
          "batch_per_worker": 8}  # excess 0, 0.5, 1.0


def test_isotonic_pools_adjacent_violators():
    assert isotonic([1.0, 3.0, 2.0, 4.0]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert isotonic([0.0, 0.6, 0.4]).tolist() == pytest.approx([0.0, 0.5, 0.5])
    assert isotonic([3.0, 2.0, 1.0]).tolist() == [2.0, 2.0, 2.0]


def test_predicted_heldout_by_hand():
    """Delta 1.5, the pilot predicted at gaps 1.5, 0.5, 0 (decreases z = 0, 1, 1.5): a K predicted at gap 1 (x = 0.5)
    reads F halfway between 2 and 1 and g halfway between 0 and 0.5; gap 0 (x = 1.5) the last checkpoint; gap 2
    (x = -0.5, F above F(w_0)) F = 2 + 0.5 and g = 0, the first value."""
    held, g, F = predicted_heldout(RECORD, [1.0, 0.0, 2.0], [1.5, 0.5, 0.0], 1.5)
    assert F.tolist() == pytest.approx([1.5, 0.5, 2.5])
    assert g.tolist() == pytest.approx([0.25, 1.0, 0.0])
    assert held.tolist() == pytest.approx([1.75, 1.5, 2.5])
    # (8.14'): a rule fitting more than F by 0.5 (fit_shift -0.5) reads g at x = 1.0
    held, g, F = predicted_heldout(RECORD, [1.0], [1.5, 0.5, 0.0], 1.5, fit_shift=[-0.5])
    assert (F[0], g[0], held[0]) == pytest.approx((1.5, 0.5, 2.0))


def test_beyond_the_pilot_continues_and_stops_at_delta():
    """Delta 2, pilot predicted at gaps 2, 1, 0.5 (z = 0, 1, 1.5): gap 0 (x = 2) is beyond the last checkpoint;
    F continues by the model's 0.5, g by its last slope (0.5 / 0.5 = 1) to x = Delta = 2: g = 1.5. A fitted
    decrease past Delta (fit_shift -1: x_fit = 3) stops at Delta."""
    held, g, F = predicted_heldout(RECORD, [0.0], [2.0, 1.0, 0.5], 2.0)
    assert (F[0], g[0], held[0]) == pytest.approx((0.0, 1.5, 1.5))
    _, g, _ = predicted_heldout(RECORD, [0.0], [2.0, 1.0, 0.5], 2.0, fit_shift=[-1.0])
    assert g[0] == pytest.approx(1.5)
    assert beyond_pilot([0.0, 0.5, 1.0], [2.0, 1.0, 0.5]).tolist() == [True, False, False]


def test_excess_fit_is_monotone_in_the_decrease():
    """A held-out loss whose excess dips at the middle checkpoint reads the pooled value there."""
    rec = {**RECORD, "heldout": [2.0, 1.6, 1.4]}  # excess 0, 0.6, 0.9 -> already monotone
    _, g, _ = predicted_heldout(rec, [0.5], [1.5, 0.5, 0.0], 1.5)
    assert g[0] == pytest.approx(0.6)
    rec = {**RECORD, "heldout": [2.0, 1.6, 0.9]}  # excess 0, 0.6, 0.4 -> 0, 0.5, 0.5
    _, g, _ = predicted_heldout(rec, [0.5], [1.5, 0.5, 0.0], 1.5)
    assert g[0] == pytest.approx(0.5)


def test_fit_shift_is_the_persistent_fast_sets_fit():
    """Prediction.fit_shift = <abar_run, e_T> (eq. 8.14'): 0 for full-sync (no deviation in its direction) and for
    fastest-k at K = N; negative for fastest-k with a persistent fast set (its iterate moves toward the fast set's
    optimum, lowering the fast set's objective below F's decrease)."""
    from theory.predict import Bands, predict_errors
    from theory.timing_factory import make_timing_model

    kw = dict(L=1.0, sigma2=0.5, zeta2=1.0, Delta=1.0, N=6, M=4, B=8, timing=make_timing_model("shifted-exp"),
              h=10**6, rounds=60, eta=0.3, seed=1)
    fk = predict_errors("fastest-k", Bands.scalar(1.0), ks=[2, 6], **kw)
    assert fk.fit_shift[0] < -1e-3 and abs(fk.fit_shift[1]) < 1e-12
    fs = predict_errors("full-sync", Bands.scalar(1.0), ks=[6], **kw)
    assert abs(fs.fit_shift[0]) < 1e-12


def test_record_round_trips_and_bad_records_are_named(tmp_path):
    path = tmp_path / "c.json"
    write_constants(path, {**CONST, "heldout": {**RECORD, "method": "pilot", "data": "test set"}})
    c = read_constants(path)
    assert c.heldout["train"] == RECORD["train"] and c.heldout["steps"] == RECORD["steps"]
    write_constants(path, CONST)
    assert "heldout" not in json.loads(path.read_text()) and read_constants(path).heldout is None
    for bad, needle in (({**RECORD, "steps": [0, 20, 10]}, "steps"), ({**RECORD, "heldout": [1.0, 2.0]}, "heldout.heldout"),
                        ({**RECORD, "lr": 0}, "lr"), ({**RECORD, "train": [1.0, float("nan"), 2.0]}, "train")):
        with pytest.raises(TheoryInputError, match=needle):
            validate_constants({**CONST, "heldout": bad})


def _optimize(tmp_path, capsys, const, *extra):
    path = tmp_path / "c.json"
    write_constants(path, const)
    capsys.readouterr()
    assert main(["optimize-k", "--constants", str(path), "--workers", "6", "--blocks", "4", "--batch-size", "8",
                 "--budget", "120", "--straggling-period", "1000000", "--algorithm", "lgc", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


OLD_ROW_KEYS = {"K", "E[R]", "E[R]_se", "near_best", "T", "eta", "bound", "time", "E[m_j]", "pred_gap", "pred_gap_se",
                "pred_grad2", "pred_grad2_se"}


def test_without_the_record_optimize_k_is_unchanged(tmp_path, capsys):
    """No "heldout": K* is the least predicted gap and the JSON has no held-out key (the document as before)."""
    out = _optimize(tmp_path, capsys, CONST)
    assert "k_objective" not in out and "heldout" not in out["constants"]
    assert {k for r in out["rows"] for k in r if not k.startswith("term:")} == OLD_ROW_KEYS
    assert out["k_star"] == min(out["rows"], key=lambda r: (r["pred_gap"], -r["K"]))["K"]


def test_with_the_record_k_star_minimises_the_predicted_heldout_loss(tmp_path, capsys):
    """A pilot whose held-out loss rises steeply as F falls: K* moves to the K of least predicted held-out loss,
    each row carries it and its excess, and the document says which objective chose."""
    plain = _optimize(tmp_path, capsys, CONST)
    steps = [0, 40, 80, 160, 320]
    rec = {"train": [3.0, 2.0, 1.6, 1.3, 1.1], "heldout": [3.0, 3.5, 4.5, 6.0, 8.0], "steps": steps, "lr": 0.5,
           "batch_per_worker": 8}
    out = _optimize(tmp_path, capsys, {**CONST, "heldout": rec})
    assert out["k_objective"] == "predicted held-out loss (eq. 8.14)"
    held = {r["K"]: r["pred_heldout"] for r in out["rows"]}
    assert out["k_star"] == min(held, key=lambda k: (held[k], -k))
    assert all(r["heldout_excess"] >= 0 for r in out["rows"])
    assert [r["pred_gap"] for r in out["rows"]] == [r["pred_gap"] for r in plain["rows"]]  # the gap is unchanged
    assert out["k_star"] != plain["k_star"]  # the steep excess outweighs the training gap here
    bound = _optimize(tmp_path, capsys, {**CONST, "heldout": rec}, "--criterion", "bound")
    assert bound["k_star"] == bound["k_star_bound"] and bound["k_objective"].startswith("the bound's")


ESTIMATE = ["estimate", "--dataset", "synthetic", "--synthetic-train", "600", "--synthetic-test", "200", "--model",
            "softmax", "--partition", "main-label", "--workers", "3", "--classes-per-worker", "2",
            "--samples-per-worker", "20", "--bootstrap", "10", "--l-bootstrap", "0", "--power-iters", "3",
            "--trajectory-steps", "3", "--lbfgs-iters", "5", "--bands", "0", "--quiet"]


def test_estimate_records_the_pilot_and_can_skip_it(tmp_path, capsys):
    out = tmp_path / "c.json"
    assert main([*ESTIMATE, "--heldout-steps", "6", "--heldout-points", "3", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    h = d["heldout"]
    assert h["steps"] == [0, 3, 6] and h["held_out_samples"] == 200 and h["batch_per_worker"] == 32
    assert h["lr"] == pytest.approx(0.5 / d["L"])  # optimize-k's default step
    assert h["train"][0] == pytest.approx(d["source"]["F_w0"], rel=1e-6)  # F on every worker's data at w_0
    assert h["excess"] == pytest.approx([a - b for a, b in zip(h["heldout"], h["train"])])
    assert h["epochs"] == pytest.approx([0.0, 3 * 60 / 60, 6 * 60 / 60])  # 3 x 20 samples a step, n = 60
    assert h["train"][-1] < h["train"][0]  # the pilot trains
    assert main([*ESTIMATE, "--heldout-steps", "0", "--out", str(out)]) == 0
    assert "heldout" not in json.loads(out.read_text())
    capsys.readouterr()
    assert main([*ESTIMATE, "--heldout-steps", "-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--heldout-steps -1" in err[0]


def test_the_ks_beyond_the_pilot_are_named(tmp_path, capsys):
    """A pilot of 2 steps covers no K's progress at the budget: every K is named beyond it; a long one none."""
    short = {"train": [3.0, 2.9], "heldout": [3.0, 3.0], "steps": [0, 2], "lr": 0.5, "batch_per_worker": 8}
    out = _optimize(tmp_path, capsys, {**CONST, "heldout": short})
    assert out["heldout_beyond_pilot"] == [r["K"] for r in out["rows"]]
    assert "beyond the pilot's progress" in out["error_model"]
    long = {**short, "steps": [0, 5000]}
    out = _optimize(tmp_path, capsys, {**CONST, "heldout": long})
    assert out["heldout_beyond_pilot"] == []


def test_api_estimate_records_the_pilot_on_the_tasks_test_data():
    """lgc.estimate(task, heldout_steps=S): the record on the Task's own test data; 0: none."""
    import torch
    from torch import nn

    import lgc

    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(12, 4, generator=g), torch.randint(0, 3, (12,), generator=g)) for _ in range(3)]
    test = (torch.randn(30, 4, generator=g), torch.randint(0, 3, (30,), generator=g))
    task = lgc.Task(model=lambda: nn.Linear(4, 3), workers=pairs, test=test, name="toy-heldout")
    kw = dict(bootstrap=10, l_bootstrap=0, trajectory_steps=2, lbfgs_iters=5)
    est = lgc.estimate(task, heldout_steps=4, **kw)
    assert est.heldout["steps"][0] == 0 and est.heldout["steps"][-1] == 4 and est.heldout["held_out_samples"] == 30
    assert lgc.estimate(task, heldout_steps=0, **kw).heldout is None
