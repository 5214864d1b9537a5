"""`lgc sweep-k` (lgc.sweep): runs cut at the budget, every (K, seed) a cached `lgc train` run, errors."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from lgc import runs
from lgc.cli import main
from lgc.config import TrainConfig
from lgc.sim import train
from lgc.sweep import rounds_within

from cli_refusal import refused as _one_line_exit_2  # tests/cli_refusal.py

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = ["--workers", "4", "--batch-size", "6", "--blocks", "3", "--model", "softmax", "--synthetic-train", "1200",
        "--synthetic-test", "100", "--samples-per-worker", "100", "--momentum", "0", "--warmup-rounds", "1",
        "--device", "cpu"]
CFG = TrainConfig(n_workers=4, batch_size=6, blocks=3, model="softmax", synthetic_train=1200, synthetic_test=100,
                  samples_per_worker=100, momentum=0.0, warmup_rounds=1, device="cpu", eval_every=0)


@pytest.mark.parametrize("semantics,period", [("abort", 1), ("boundary", 3)])
def test_rounds_within_the_budget_are_those_the_run_ends_within_it(tmp_path, semantics, period):
    cfg = replace(CFG, threshold_k=2, semantics=semantics, straggling_period=period, comm_alpha=0.1)
    t, clock = rounds_within(cfg, 12.0)
    rows = runs.read_csv(train(replace(cfg, rounds=t + 1), root=tmp_path, quiet=True) / "rounds.csv")
    assert float(rows[t - 1]["time"]) == pytest.approx(clock, rel=1e-12) and clock <= 12.0
    assert float(rows[t]["time"]) > 12.0  # one more round would end past the budget


def test_cli_measures_every_k_and_seed_at_the_budget_and_a_rerun_reuses_the_runs(tmp_path, capsys):
    argv = ["sweep-k", *TINY, "--budget", "10", "--ks", "1,3,4", "--seeds", "0,1", "--no-halving", "--json",
            "--results", str(tmp_path)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["K"] for r in out["rows"]] == [1, 3, 4] and out["best_k"] in (1, 3, 4)
    for r in out["rows"]:
        assert r["seeds"] == [0, 1]
        for d, loss, t in zip(r["run_dirs"], r["test_loss"], r["rounds"]):
            final = json.loads((Path(d) / "final.json").read_text())
            conf = json.loads((Path(d) / "config.json").read_text())
            assert final["test_loss"] == loss and final["rounds"] == t == conf["rounds"]
            assert final["time"] <= 10.0 and conf["threshold_k"] == r["K"] and conf["task"]["data_seed"] == 0
    best = min(out["rows"], key=lambda r: r["mean"])
    assert out["best_k"] == best["K"]
    assert sum(r["rounds"][0] for r in out["rows"] if r["K"] == 1) > sum(r["rounds"][0] for r in out["rows"]
                                                                        if r["K"] == 4)  # a small K fits more rounds
    n_runs = len(list((tmp_path / "train").iterdir()))
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == out["rows"]
    assert len(list((tmp_path / "train").iterdir())) == n_runs  # nothing trained again


def test_halving_table_and_plot(tmp_path, capsys):
    plot = tmp_path / "sweep.png"
    assert main(["sweep-k", *TINY, "--budget", "8", "--seeds", "0,1", "--results", str(tmp_path), "--quiet",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "successive halving (4 K x 1 seed, 2 K x 2 seeds)" in out and "<- best" in out
    assert plot.stat().st_size > 0
    rows = [ln.split() for ln in out.splitlines()[2:6]]
    assert sorted(int(r[2]) for r in rows) == [1, 1, 2, 2]  # seeds per K: two K halved out after one seed


@pytest.mark.parametrize("extra,match", [
    (["--budget", "10", "--ks", "0,2"], "K=0 must satisfy 1 <= K <= N=4"),
    (["--budget", "10", "--ks", "2,x"], "--ks '2,x' must be integers"),
    (["--budget", "10", "--seeds", "1,1"], "repeats a seed"),
    (["--budget", "-1"], "budget=-1 must be > 0"),
    (["--budget", "0.5"], "ends before the first round"),
    (["--budget", "10", "--algorithm", "full-sync"], "algorithm=full-sync does not wait for K workers"),
    (["--budget", "10", "--algorithm", "anytime-minibatch"], "valid: fastest-k, lgc, lgc-fresh"),
    (["--budget", "10", "--reduction", "1"], "--reduction=1 must be >= 2"),
    (["--budget", "10", "--min-seeds", "4"], "--min-seeds=4 must be in 1..3"),
    (["--budget", "10", "--k", "2"], "--k: sweep-k sets it per run; give --ks instead"),
    (["--budget", "10", "--seed", "2"], "--seed: sweep-k sets it per run; give --seeds instead"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, extra, match):
    _one_line_exit_2(capsys, ["sweep-k", *TINY, *extra, "--results", str(tmp_path)], match)


def test_a_seed_out_of_range_is_refused_before_any_run(capsys, tmp_path):
    # the last seed used to pass the sweep's checks and fail its first run's, after the other seeds' runs
    argv = ["sweep-k", *TINY, "--budget", "10", "--ks", "1,2", "--seeds", f"0,{2**63}", "--results", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"seed={2**63} must be an integer in 0.." in err and "Traceback" not in err, err
    assert not (tmp_path / "train").exists(), err  # no run before the error
    assert len(err.splitlines()) == 1, err
