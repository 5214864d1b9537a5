"""`lgc train --k auto` (theory/adaptive.py through lgc.protocol.k_controller): the sim backend
records the K of every round (rounds.csv n_fast) and every refit (refits.csv), resumes
bit-identically, replays its own schedule with the same K, and bad settings are one-line errors."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lgc import runs
from lgc.checkpoint import load_checkpoint
from lgc.cli import main
from lgc.config import TrainConfig
from lgc.errors import UserError
from lgc.sim import Simulator, train
from theory.schedule import schedule_from_csv, schedule_to_csv

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# the quadratics (exact constants); worker 3 becomes 5x slower at round 40
AUTO = TrainConfig(dataset="quadratic", algorithm="lgc", n_workers=8, batch_size=16, blocks=4, lr=0.15, momentum=0.0,
                   warmup_rounds=2, quad_sigma2=30.0, rounds=80, k_auto=True, budget=300.0, k_refit=10,
                   k_window=30, k_first_fit=8, eval_every=0, checkpoint_every=0, seed=1,
                   timing_params={"change_round": 40, "change_workers": [3], "change_slowdown": 5.0})


def _k_of_rounds(history, cfg):
    """The K each round should have used: N before the first refit (and in warm-up), then the
    K of the latest refit made after an earlier round."""
    ks, k = [], cfg.n_workers
    by_round = {h["round"]: h["k"] for h in history}
    for t in range(cfg.rounds):
        ks.append(cfg.n_workers if t < cfg.warmup_rounds else k)
        k = by_round.get(t, k)
    return ks


def test_k_per_round_and_refits_are_recorded(tmp_path):
    path = train(AUTO, root=tmp_path, quiet=True)
    rows = runs.read_csv(path / "rounds.csv")
    refits = runs.read_csv(path / "refits.csv")
    final = json.loads((path / "final.json").read_text())
    config = json.loads((path / "config.json").read_text())
    assert config["k_auto"] is True and config["budget"] == 300.0 and config["threshold_k"] == 8
    assert [int(r["round"]) for r in refits] == list(range(7, 80, 10))
    history = [{"round": int(r["round"]), "k": int(r["k"])} for r in refits]
    assert [int(r["n_fast"]) for r in rows] == _k_of_rounds(history, AUTO)
    assert final["k_auto"]["refits"] == len(refits) and final["k_auto"]["k_chosen"] == [h["k"] for h in history]
    assert len({h["k"] for h in history}) >= 2  # K moved during the run
    # the refits after the change see worker 3 (its own fit, slower than the pool)
    late = [r for r in refits if int(r["window_first"]) >= 40]
    assert late and all(r["distinct"] == "3" for r in late)
    shift, rate = (np.array(late[-1][c].split(), dtype=float) for c in ("shift", "rate"))
    mean = shift + 1 / rate
    assert mean[3] > 3 * np.delete(mean, 3).max()
    # the clock the budget is counted on is the run's virtual clock
    times = {int(r["round"]): float(r["time"]) for r in rows}
    for r in refits:
        assert float(r["clock"]) == pytest.approx(times[int(r["round"])])
        assert float(r["remaining"]) == pytest.approx(300.0 - times[int(r["round"])])


def test_stopped_and_resumed_auto_run_is_bit_identical(tmp_path):
    cfg = dataclasses.replace(AUTO, rounds=45, k_refit=15)
    whole = train(cfg, root=tmp_path / "a", quiet=True)
    part = train(cfg, root=tmp_path / "b", quiet=True, stop_after=20)
    assert not (part / "final.json").exists()
    part = train(cfg, root=tmp_path / "b", quiet=True)
    for name in ("refits.csv", "schedule.csv"):
        assert (whole / name).read_text() == (part / name).read_text()
    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(part / "checkpoint.pt")
    assert torch.equal(a["w"], b["w"]) and repr(a["k_auto"]) == repr(b["k_auto"])  # repr: nan == nan


def test_replaying_its_schedule_reproduces_k_and_parameters(tmp_path):
    cfg = dataclasses.replace(AUTO, rounds=30)
    sim = Simulator(cfg)
    for _ in range(cfg.rounds):
        sim.step()
    (tmp_path / "s.csv").write_text(schedule_to_csv(sim.schedules))
    again = Simulator(dataclasses.replace(cfg, schedule_file=str(tmp_path / "s.csv")))
    for _ in range(cfg.rounds):
        again.step()
    assert again.k_control.history == sim.k_control.history
    assert torch.equal(again.w, sim.w)
    # a schedule whose |A_t| is not the K the controller picks is refused, naming the round
    sched = schedule_from_csv((tmp_path / "s.csv").read_text())
    t = next(s.round for s in sched if s.round >= cfg.warmup_rounds and len(s.fast) < cfg.n_workers)
    bad = [dataclasses.replace(s, fast=tuple(range(8)), blocks_done=(4,) * 8) if s.round == t else s for s in sched]
    (tmp_path / "bad.csv").write_text(schedule_to_csv(bad))
    other = Simulator(dataclasses.replace(cfg, schedule_file=str(tmp_path / "bad.csv")))
    with pytest.raises(UserError, match=f"schedule round {t} has K=8 fast workers, --k auto chose K="):
        for _ in range(cfg.rounds):
            other.step()


from test_cli_errors import _fails  # noqa: E402  (one CLI-error check for every test file)


@pytest.mark.parametrize("flags,match", [
    (["--algorithm", "full-sync", "--budget", "10"], "--k auto: algorithm=full-sync does not wait for K workers; "
                                                     "valid: fastest-k, lgc, lgc-fresh"),
    (["--algorithm", "anytime-minibatch", "--budget", "10"], "algorithm=anytime-minibatch does not wait for K"),
    ([], "--k auto needs --budget TAU"),
    (["--budget", "-3"], "budget=-3.0 must be > 0"),
    (["--budget", "10", "--k-refit", "0"], "k_refit=0 must be >= 1"),
    (["--budget", "10", "--dataset", "synthetic"], "needs --k-constants FILE"),
    (["--budget", "10", "--k-constants", "/nonexistent.json"], "k_constants=/nonexistent.json does not exist"),
])
def test_bad_auto_settings_are_one_line_errors(capsys, flags, match):
    _fails(capsys, ["train", "--k", "auto", "--dataset", "quadratic", "--print-config", *flags], match)


def test_k_flag_words(capsys):
    _fails(capsys, ["train", "--k", "fast", "--print-config"], "invalid int or auto value: 'fast'")
    _fails(capsys, ["train", "--budget", "10", "--print-config"], "--budget is the horizon of --k auto")
    assert main(["train", "--k", "auto", "--dataset", "quadratic", "--budget", "50", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["k_auto"] is True and cfg["threshold_k"] == cfg["n_workers"]
    from lgc.commands._config_args import to_argv

    argv = to_argv(TrainConfig(k_auto=True, budget=5.0, dataset="quadratic"))
    assert argv[argv.index("--k") + 1] == "auto" and "--k-auto" not in argv


def test_auto_settings_round_trip_through_flags(tmp_path):
    import argparse

    from lgc.commands._config_args import add_config_arguments, config_values, to_argv

    (tmp_path / "c.json").write_text('{"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1}')
    cfg = TrainConfig(algorithm="fastest-k", k_auto=True, budget=123.5, k_refit=7, k_window=21, k_first_fit=5,
                      k_constants=str(tmp_path / "c.json"))
    p = argparse.ArgumentParser()
    add_config_arguments(p, TrainConfig)
    assert TrainConfig(**config_values(TrainConfig, p.parse_args(to_argv(cfg)))) == cfg
    assert main(["train", *to_argv(cfg), "--print-config"]) == 0


def test_dist_auto_k_replayed_by_sim_gives_the_same_k_and_parameters(tmp_path):
    """sim == dist (issue 15): a dist run with --k auto (N = 4 processes, injected delays, worker 1
    5x slower from round 12) records its schedule; sim replaying it with --k auto observes the same
    rounds, makes the same refits and picks the same K, and ends with the same parameters."""
    from lgc.dist import DistOptions, run_dist
    from lgc.protocol import refit_rows

    cfg = TrainConfig(dataset="quadratic", algorithm="lgc", n_workers=4, batch_size=8, blocks=4, lr=0.1,
                      momentum=0.5, rounds=24, warmup_rounds=2, k_auto=True, budget=150.0, k_first_fit=6, k_refit=6,
                      k_window=12, eval_every=0, checkpoint_every=0, seed=2, backend="dist",
                      timing_params={"change_round": 12, "change_workers": [1], "change_slowdown": 5.0})
    path = run_dist(cfg, DistOptions(unit_ms=8.0, timeout_s=60), root=tmp_path, quiet=True)
    refits = runs.read_csv(path / "refits.csv")
    final = json.loads((path / "final.json").read_text())
    assert [int(r["round"]) for r in refits] == [5, 11, 17, 23]
    assert final["k_auto"]["k_chosen"] == [int(r["k"]) for r in refits]
    rows = runs.read_csv(path / "rounds.csv")
    assert [int(r["n_fast"]) for r in rows] == _k_of_rounds([{"round": int(r["round"]), "k": int(r["k"])}
                                                              for r in refits], cfg)
    sim = Simulator(dataclasses.replace(cfg, backend="sim", schedule_file=str(path / "schedule.csv")))
    for _ in range(cfg.rounds):
        sim.step()
    assert ["" if v is None else str(v) for r in refit_rows(sim.k_control.history) for v in r.values()] == \
        [v for r in refits for v in r.values()]
    torch.testing.assert_close(load_checkpoint(path / "checkpoint.pt")["w"], sim.w, rtol=1e-5, atol=1e-6)


def test_estimate_reads_an_auto_run_config_before_its_constants_exist(tmp_path):
    """The workflow: a --k auto run on the synthetic problem needs --k-constants, which `lgc estimate
    --config` of that run writes; the run's k_auto settings must not stop the estimate."""
    from types import SimpleNamespace

    from lgc.commands.estimate import train_config

    (tmp_path / "run.json").write_text(json.dumps({"k_auto": True, "budget": 100.0, "k_constants": "later.json"}))
    args = SimpleNamespace(config=str(tmp_path / "run.json"))
    cfg = train_config(args)
    assert not cfg.k_auto and cfg.budget is None and cfg.task.dataset == "synthetic"


def test_k_constants_with_gram_matrices_give_the_gram_forms_as_optimize_k_reads_them(tmp_path):
    from lgc.protocol import k_controller

    g = np.eye(8).tolist()
    (tmp_path / "c.json").write_text(json.dumps({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "gram": [g]}))
    cfg = TrainConfig(n_workers=8, k_auto=True, budget=50.0, k_constants=str(tmp_path / "c.json")).resolved()
    ctl = k_controller(cfg, 0.0)
    assert ctl.problem.dissimilarity is not None and ctl.problem.dissimilarity.n == 8
    with pytest.raises(UserError, match="its gram is for N=8 workers, the run has N=4"):
        k_controller(dataclasses.replace(cfg, n_workers=4, threshold_k=4), 0.0)


def test_train_command_says_k_was_auto(tmp_path, capsys):
    argv = ["train", "--k", "auto", "--budget", "40", "--dataset", "quadratic", "--workers", "4", "--batch-size", "8",
            "--blocks", "4", "--rounds", "12", "--k-first-fit", "10", "--results", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "K auto (budget 40): 1 refits, K chosen " in out and ", last K " in out
