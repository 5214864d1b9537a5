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

from cli_refusal import refused as _fails  # tests/cli_refusal.py

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


@pytest.mark.parametrize("flags,match", [
    (["--algorithm", "full-sync", "--budget", "10"], "--k auto: algorithm=full-sync does not wait for K workers; "
                                                     "valid: fastest-k, lgc, lgc-fresh"),
    (["--algorithm", "anytime-minibatch", "--budget", "10"], "algorithm=anytime-minibatch does not wait for K"),
    ([], "--k auto needs --budget TAU"),
    (["--budget", "-3"], "budget=-3.0 must be > 0"),
    (["--budget", "10", "--k-refit", "0"], "k_refit=0 must be >= 1"),
    (["--budget", "10", "--dataset", "synthetic"], "needs --k-constants FILE"),
    (["--budget", "10", "--k-constants", "/nonexistent.json"], "k_constants=/nonexistent.json does not exist"),
    (["--budget", "10", "--k-criterion", "best"], "k_criterion='best' must be one of predict, bound"),
])
def test_bad_auto_settings_are_one_line_errors(capsys, flags, match):
    _fails(capsys, ["train", "--k", "auto", "--dataset", "quadratic", "--print-config", *flags], match)


def test_k_flag_words(capsys):
    _fails(capsys, ["train", "--k", "fast", "--print-config"], "invalid int or auto value: 'fast'")
    _fails(capsys, ["train", "--budget", "10", "--print-config"], "--budget is the horizon of --k auto")
    _fails(capsys, ["train", "--k-criterion", "bound", "--print-config"], "k_criterion=bound: only --k auto reads it")
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
                      k_constants=str(tmp_path / "c.json"), k_criterion="bound")
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
    # the timing fit and K identical; the error model's coefficients come from the losses and gradients, which the two
    # backends sum in different orders (float32): equal within rtol 1e-5
    floats = ("gap", "f_star", "sigma2", "zeta2")
    mine = [{k: "" if v is None else str(v) for k, v in r.items()} for r in refit_rows(sim.k_control.history)]
    assert [{k: v for k, v in r.items() if k not in floats} for r in mine] == \
        [{k: v for k, v in r.items() if k not in floats} for r in refits]
    for a, b in zip(mine, refits):
        np.testing.assert_allclose([float(a[k]) for k in floats], [float(b[k]) for k in floats], rtol=1e-5)
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
    assert "K auto (budget 40, criterion predict): 1 refits, K chosen " in out and ", last K " in out


# ----------------------------------------------------------------------------- the error model's refit (eqs. 7.7-7.9)
def _history_run(criterion: str, gap: float = 0.2, rounds: int = 50):
    """A synthetic history on the quadratics of AUTO (i.i.d. timing): round 0's loss is F* + Delta, every later
    round's F* + gap (the true remaining gap), 5 time units a round against a budget of 250; refits every 10 rounds."""
    from lgc.protocol import k_controller
    from theory.adaptive import observe
    from theory.schedule import schedule_round

    cfg = dataclasses.replace(AUTO, timing_params={}, rounds=rounds, budget=250.0, k_first_fit=10,
                              k_criterion=criterion).resolved()
    ctl = k_controller(cfg, 0.0)
    f_star, delta = 3.0, ctl.problem.Delta
    for t in range(rounds):
        fin = ctl.problem.timing.block_finish_times(cfg.seed, t, cfg.n_workers, cfg.blocks, period=1)
        s = schedule_round(fin, ctl.k, semantics="abort", round_index=t)
        ctl.observe(observe(s, wall=5.0, loss=f_star + (delta if t == 0 else gap)))
    return ctl


@pytest.mark.parametrize("criterion,k_min", [("predict", 7), ("bound", 5)])
def test_k_does_not_drift_down_when_the_remaining_gap_is_small(criterion, k_min):
    """The review's case (issue 21): the true remaining gap is 0.2 while F(w_0) - F* is 11.5. With Delta kept at
    F(w_0) - F*, the bound's K* falls to 1-2 as the horizon shrinks; re-picked from the run's losses, the remaining
    gap is estimated exactly (noise-free losses) and K stays near N (the bound's K* at the true gap: 7, 7, 6, 5)."""
    from theory.tradeoff import tradeoff

    ctl = _history_run(criterion)
    late = [h for h in ctl.history if h["round"] > 10 and h["remaining"] > 0]
    assert [h["remaining"] for h in late] == [150.0, 100.0, 50.0]
    for h in late:
        assert h["gap_fit"] == "loss" and h["gap"] == pytest.approx(0.2, abs=1e-9)
        assert h["f_star"] == pytest.approx(3.0, abs=1e-9) and h["criterion"] == criterion
        assert h["k"] >= k_min, ctl.history
        # the old choice (the bound with Delta = F(w_0) - F*) for the same remaining budget drifts to K <= 2
        old = tradeoff("lgc", ctl.problem, budget=h["remaining"], eta=AUTO.lr)
        assert old.k_star <= 2
    assert ctl.history[-1]["remaining"] <= 0 and ctl.history[-1]["k"] == late[-1]["k"]  # past the budget: K kept


def _constants(cfg) -> dict:
    """The exact constants of a run's quadratics (as lgc.protocol.k_controller builds them)."""
    from lgc.data.synthetic import make_quadratic

    t = cfg.resolved().task
    return make_quadratic(cfg.n_workers, t.quad_dim, seed=t.data_seed, h_min=t.quad_h_min, h_max=t.quad_h_max,
                          spread=t.quad_spread, sigma2=t.quad_sigma2).constants()


def test_deviation_norm_of_a_quadratic_run_has_the_expectation_of_eq_7_8():
    """eq. (7.8) on the trainer itself: an lgc run on the quadratics at K = 5 with i.i.d. timing (uniformly random
    fast sets), ||gS - gA||^2 from the gradients the round computed, against zeta2 x_z + sigma2 x_s with the exact
    constants: the mean of their ratio over 400 rounds is 1 within 3 standard errors (measured 0.987 +- 0.025); the
    fit (7.9) on all of them, started from wrong constants, returns the exact pair within 10%."""
    from lgc.protocol import deviation_norm2
    from theory.adaptive_model import deviation_regressors, fit_noise

    cfg = dataclasses.replace(AUTO, k_auto=False, budget=None, timing_params={}, threshold_k=5, warmup_rounds=0,
                              rounds=400, seed=3).resolved()
    sim = Simulator(cfg)
    measured, engine_grads = [], sim.engine.grads

    def grads(*args, **kwargs):
        g, loss = engine_grads(*args, **kwargs)
        measured.append(deviation_norm2(g))
        return g, loss

    sim.engine.grads = grads
    for _ in range(cfg.rounds):
        sim.step()
    const = _constants(cfg)
    x = [deviation_regressors(len(s.fast), [b for i, b in enumerate(s.blocks_done) if i not in s.fast], N=8, B=16, M=4)
         for s in sim.schedules]
    keep = [i for i, v in enumerate(x) if v is not None]
    x_z, x_s = np.array([x[i] for i in keep]).T
    y = np.array(measured)[keep]
    ratio = y / (const["zeta2"] * x_z + const["sigma2"] * x_s)
    assert len(keep) > 300 and abs(ratio.mean() - 1) < 3 * ratio.std() / np.sqrt(len(ratio))
    sigma2, zeta2, how = fit_noise(x_z, x_s, y, sigma2=1.0, zeta2=1.0)
    assert how == "lsq" and sigma2 == pytest.approx(const["sigma2"], rel=0.1)
    assert zeta2 == pytest.approx(const["zeta2"], rel=0.1)


def test_noise_and_dissimilarity_are_refitted_from_the_deviation_norms():
    """eq. (7.9): on exact expectations (7.8) the weighted least squares returns the true sigma2 and zeta2 whatever the
    constants say; rounds that cannot tell the two apart (7.9') give the common scale; too few rounds keep the
    constants."""
    from theory.adaptive_model import deviation_regressors, fit_noise

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(30):
        k = int(rng.integers(2, 7))
        s = int(rng.integers(1, 8 - k + 1))
        rows.append(deviation_regressors(k, list(rng.integers(1, 4, size=s)) + [0], N=8, B=16, M=4))
    x_z, x_s = np.array(rows).T
    y = 4.0 * x_z + 30.0 * x_s
    assert fit_noise(x_z, x_s, y, sigma2=1.0, zeta2=10.0) == pytest.approx((30.0, 4.0, "lsq"))
    same = np.full(5, x_z[0]), np.full(5, x_s[0])
    assert fit_noise(*same, 2 * (4.0 * same[0] + 30.0 * same[1]), sigma2=30.0, zeta2=4.0) == \
        pytest.approx((60.0, 8.0, "scale"))
    assert fit_noise(x_z[:2], x_s[:2], y[:2], sigma2=1.0, zeta2=10.0) == (1.0, 10.0, "constants")
    # the regressors themselves (eq. 7.8): K = 3, reporters with m = 1 and 2, b = 4
    assert deviation_regressors(3, [1, 2, 0], N=8, B=16, M=4) == pytest.approx((8 / 7 * (1 / 3 + 1 / 2),
                                                                                1 / 48 + (1 / 4 + 1 / 8) / 4))
    assert deviation_regressors(3, [0, 0], N=8, B=16, M=4) is None


def test_an_auto_run_refits_the_coefficients_and_records_them(tmp_path):
    """A sim run on the quadratics: refits.csv carries the criterion, the bound's K, the remaining gap from the losses
    and the refitted sigma2, zeta2 (lgc forms gS and gA every round); the gap estimate follows the true F(w_t) - F*
    within the loss's noise (the truth is rounds.csv's f_gap)."""
    cfg = dataclasses.replace(AUTO, timing_params={}, rounds=48)
    path = train(cfg, root=tmp_path, quiet=True)
    refits = runs.read_csv(path / "refits.csv")
    rows = runs.read_csv(path / "rounds.csv")
    assert all(r["criterion"] == "predict" and r["gap_fit"] == "loss" for r in refits)
    fits = [r for r in refits if r["noise_fit"] != "constants"]
    assert fits, refits  # some window held rounds with reporters
    zeta2 = _constants(cfg)["zeta2"]  # 4.93; sigma2 = 30
    for r in fits:  # i.i.d. timing: eq. (7.8) holds in expectation, so a window's fit is the truth up to its noise
        assert 30.0 / 2 < float(r["sigma2"]) < 30.0 * 2 and zeta2 / 2 < float(r["zeta2"]) < zeta2 * 2
    first, last = float(refits[0]["gap"]), float(refits[-1]["gap"])
    true_last = float(rows[int(refits[-1]["round"])]["f_gap"])
    assert last < first / 3 and abs(last - true_last) < 1.0
