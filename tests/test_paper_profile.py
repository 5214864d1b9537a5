"""The paper profile: its configuration, and the whole pipeline end to end at tiny CPU scale
(random images in CIFAR-10's official format, the small CNN of width 4, a few rounds)."""
import json
import tarfile

import numpy as np
import pytest

from lgc.data.cifar10 import write_fake_cifar10
from lgc.runs import read_csv
from paper_figures import paper, paper_draw
from paper_figures import paper_profile as pp

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_profile_is_the_paper_setting():
    jobs = pp.jobs("/data", pp.PAPER)
    for j in jobs:
        c = j.config
        assert (c.n_workers, c.batch_size, c.task.model, c.task.norm, c.task.dataset, c.task.partition) == \
               (10, 50, "resnet18", "group", "cifar10", "main-label")
        assert c.task.samples_per_worker == 2000 and c.timing == "shifted-exp" and c.task.width == 64
    cells = {}
    for j in jobs:
        for fig in j.figures:
            key = (fig, j.config.algorithm, j.config.task.classes_per_worker, j.config.straggling_period,
                   j.config.threshold_k, j.config.blocks, j.config.lr)
            cells.setdefault(key, set()).add(j.config.seed)
    assert all(len(s) >= 3 for s in cells.values())  # every curve has >= 3 seeds
    assert {k[2] for k in cells if k[0] == "fig1"} == {3, 5, 10}
    assert {k[1] for k in cells if k[0] == "fig1"} == set(pp.ALGORITHMS)
    assert {k[3] for k in cells if k[0] == "fig3"} == {1, 10, 30}
    assert {k[5] for k in cells if k[0] == "fig5"} == {1, 2, 5, 10}
    assert len({repr(sorted(vars(j.config).items())) for j in jobs}) == len(jobs)  # each run once


def test_threshold_runs_share_one_expected_time():
    """fig4: T(K) E[R(K)] = tau within half a round, for every K."""
    tau = pp.budget(pp.PAPER)
    for k in pp.KS:
        er = pp.expected_round_time("lgc", k)
        assert abs(pp.rounds_for("lgc", k, pp.PAPER) * er - tau) <= er / 2
    assert pp.expected_round_time("lgc", 3) < pp.expected_round_time("lgc", 9) < pp.expected_round_time("full-sync", 10)


def test_band_is_mean_and_t_interval_over_seeds():
    rows = [{"seed": s, "round": r, "v": float(s * r)} for s in range(3) for r in (1, 2, 3)]
    grid, mean, half, n = paper_draw.band(rows, "round", "v")
    vals = np.array([[s * r for s in range(3)] for r in (1, 2, 3)], dtype=float)
    assert n == 3 and list(grid) == [1, 2, 3]
    np.testing.assert_allclose(mean, vals.mean(1))
    np.testing.assert_allclose(half, 4.302652729911275 * vals.std(1, ddof=1) / np.sqrt(3))


def test_pipeline_end_to_end_in_chunks(tmp_path, capsys):
    data = tmp_path / "data"
    write_fake_cifar10(data, n_train=1000, n_test=100)
    common = ["--data-dir", str(data), "--accept-md5-mismatch", "--tiny", "--only", "fig5", "--results",
              str(tmp_path / "results"), "--out", str(tmp_path / "out"), "--quiet"]
    # a chunk whose time runs out mid-run stops cleanly: the run in flight keeps a checkpoint
    assert paper.main(common + ["--chunk-minutes", "0.002"]) == 0
    first = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert first["complete_runs"] == 0 and first["planned_runs"] == 8 and first["started_this_chunk"] == 1
    (in_flight,) = (tmp_path / "results" / "train").iterdir()
    assert (in_flight / "checkpoint.pt").exists() and not (in_flight / "final.json").exists()
    # a chunk limited to 3 runs resumes that one and finishes three
    assert paper.main(common + ["--max-runs", "3"]) == 0
    first = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert first["complete_runs"] == 3 and (in_flight / "final.json").exists()
    # the next chunk finishes the rest, reusing what is done
    archive = tmp_path / "ship" / "results.tar.gz"
    assert paper.main(common + ["--chunk-minutes", "5", "--archive", str(archive)]) == 0
    done = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert done["complete_runs"] == 8
    assert done["started_this_chunk"] == 5
    # the figure's CSV holds exactly the runs' evaluations
    rows = read_csv(tmp_path / "out" / "fig5_blocks.csv")
    assert {(int(r["M"]), int(r["seed"])) for r in rows} == {(m, s) for m in pp.BLOCKS for s in range(2)}
    run_dirs = sorted((tmp_path / "results" / "train").iterdir())
    evals = sum(1 for d in run_dirs for r in read_csv(d / "rounds.csv") if r["test_acc"] != "")
    assert len(rows) == evals
    for f in ("fig5_blocks.png", "fig5_blocks.pdf"):
        assert (tmp_path / "out" / f).stat().st_size > 1000
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert not any(n.endswith("checkpoint.pt") for n in names)
    assert sum(n.endswith("final.json") for n in names) == 8
    assert "paper_figures/out/paper/fig5_blocks.png" in names
    # a third call trains nothing
    assert paper.main(common) == 0
    assert json.loads((tmp_path / "out" / "progress.json").read_text())["started_this_chunk"] == 0


def test_bad_figure_name_is_one_line_and_status_2(capsys):
    assert paper.main(["--data-dir", "x", "--only", "fig7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'fig7'" in err and "fig1" in err


def test_bad_engine_is_refused_before_any_run(tmp_path, capsys):
    assert paper.main(["--data-dir", str(tmp_path), "--engine", "bogus", "--plan"]) == 2
    assert "engine='bogus' must be one of" in capsys.readouterr().err


def test_full_sync_runs_once_for_every_straggling_period():
    """fig3 trains no full-sync run per h: the base run (h = 10) serves every h."""
    jobs = pp.jobs("/data", pp.PAPER)
    fs3 = [j for j in jobs if "fig3" in j.figures and j.config.algorithm == "full-sync"]
    assert len(fs3) == pp.PAPER.seeds and {j.config.straggling_period for j in fs3} == {pp.BASE_H}
    assert all("fig1" in j.figures for j in fs3)  # the very runs of figure 1 (c = 5)


def test_full_sync_iterates_do_not_depend_on_h_and_its_clock_is_rederived():
    """The premise, checked: full-sync with h = 1 and h = 10 ends at the same weights; and
    full_sync_clock(h) equals the time column a full-sync run with that h records."""
    import dataclasses

    import torch

    from lgc.config import TrainConfig
    from lgc.sim import Simulator

    cfg = TrainConfig(algorithm="full-sync", n_workers=5, threshold_k=3, batch_size=10, blocks=5, rounds=6,
                      dataset="synthetic", synthetic_train=1000, synthetic_test=20, model="mlp", width=4,
                      partition="main-label", samples_per_worker=40, straggling_period=10, eval_every=0,
                      checkpoint_every=0, device="cpu")
    sims = {h: Simulator(dataclasses.replace(cfg, straggling_period=h)) for h in (1, 10)}
    rows = {h: [s.step() for _ in range(cfg.rounds)] for h, s in sims.items()}
    assert torch.equal(sims[1].w, sims[10].w)
    for h in (1, 10):
        np.testing.assert_allclose(pp.full_sync_clock(cfg, h), [r["time"] for r in rows[h]], rtol=1e-12)
    assert pp.full_sync_clock(cfg, 1)[-1] != pp.full_sync_clock(cfg, 10)[-1]


def test_lgc_figures_forwards_the_paper_profile_options(capsys):
    from lgc.cli import main

    assert main(["figures", "--profile", "paper", "--data-dir", "/nowhere", "--tiny", "--plan", "--only", "fig5",
                 "--chunk-minutes", "1"]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out[out.index("{\n"):])
    assert plan["runs"] == len(pp.BLOCKS) * pp.TINY.seeds  # tiny scale, figure 5 only
    assert main(["figures", "--tiny"]) == 2  # the quick profile has no tiny scale
    assert "unrecognized arguments: --tiny" in capsys.readouterr().err  # a flag of paper_figures.paper only
    assert main(["figures", "--profile", "cifar", "--data-dir", "/nowhere", "--plan", "--processes", "2"]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out[out.index("{\n"):])
    assert plan["runs"] == len(pp.jobs("/nowhere", pp.CPU)) and plan["processes"] == 2


# ---------------------------------------------------------------- the CPU scale (make figures-cifar)

def test_cpu_scale_is_the_same_profile_smaller():
    """One definition, two scales: the CPU scale's runs are the paper profile's runs with the small
    CNN, c = 3, abort semantics and fewer cells; it adds a persistent slow set."""
    jobs = pp.jobs("/data", pp.CPU)
    for j in jobs:
        c = j.config
        assert (c.n_workers, c.batch_size, c.blocks, c.lr, c.momentum, c.task.model, c.task.width, c.task.dataset) == \
               (10, 50, 5, 0.05, 0.9, "cnn", 32, "cifar10")
        assert c.semantics == "abort" and c.task.samples_per_worker == 2000 and c.eval_subset == 1000
        assert c.task.classes_per_worker == 3
    cells = {}
    for j in jobs:
        for fig in j.figures:
            h = j.tags["h"] if j.config.timing == "heterogeneous" else j.config.straggling_period
            key = (fig, j.config.algorithm, h, j.config.threshold_k)
            cells.setdefault(key, set()).add(j.config.seed)
    assert all(len(s) == 3 for s in cells.values())  # 3 seeds everywhere
    assert {k[1] for k in cells if k[0] == "fig1"} == set(pp.CORE) | {"lgc-fresh", "anytime-minibatch"}
    assert {k[2] for k in cells if k[0] == "fig3"} == {1, 10, pp.PERSISTENT}
    assert {k[3] for k in cells if k[0] == "fig4" and k[1] == "lgc"} == set(pp.KS)
    assert {k[2] for k in cells if k[0] == "classes"} == {10, pp.PERSISTENT}
    assert not any(k[0] in ("fig5", "fig6", "fig8") for k in cells)
    persistent = [j.config for j in jobs if j.config.timing == "heterogeneous"]
    assert len(persistent) == 9 and all(c.timing_params["slow_workers"] == "first" for c in persistent)
    assert len({repr(sorted(vars(j.config).items())) for j in jobs}) == len(jobs)  # each run once
    # the paper's three algorithms (all seeds) come before the ablations: a cut keeps whole figures
    first = [j.config.algorithm for j in jobs[:9]]
    assert set(first) == set(pp.CORE)


def test_cpu_budget_uses_abort_round_times():
    """fig4's T(K) at the CPU scale: abort semantics, E[R_lgc(K)] = E[X_(K:N)] (shift 1 + harmonic tail)."""
    er = pp.expected_round_time("lgc", 7, semantics="abort")
    assert abs(er - (1 + sum(1 / i for i in range(4, 11)))) < 0.02
    tau = pp.budget(pp.CPU)
    for k in pp.KS:
        assert abs(pp.rounds_for("lgc", k, pp.CPU) * pp.expected_round_time("lgc", k, semantics="abort") - tau) <= 2


def test_cpu_profile_end_to_end_at_tiny_scale(tmp_path, monkeypatch):
    """make figures-cifar's pipeline on fake CIFAR-10 files: two processes, the persistent regime,
    fig4 against a constants file, the per-class figure; then a second call trains nothing."""
    import dataclasses

    from theory.constants import write_constants

    monkeypatch.setitem(pp.SCALES, "cpu-tiny", dataclasses.replace(pp.CPU_TINY, ks=(5,), periods=(10,), seeds=1))
    data = tmp_path / "data"
    write_fake_cifar10(data, n_train=1000, n_test=100)
    constants = tmp_path / "constants.json"
    write_constants(constants, {"L": 5.0, "sigma2": 4.0, "zeta2": 4.0, "Delta": 0.9})
    out = tmp_path / "out"
    common = ["--scale", "cpu", "--tiny", "--data-dir", str(data), "--accept-md5-mismatch", "--only",
              "fig3,fig4,classes", "--results", str(tmp_path / "results"), "--out", str(out), "--quiet",
              "--constants", str(constants)]
    assert paper.main(common + ["--processes", "2"]) == 0
    progress = json.loads((out / "progress.json").read_text())
    # fig3: full-sync, fastest-k, lgc at h = 10 and with the persistent set; fig4: K = 5 for two rules;
    # classes: also lgc-fresh and anytime-minibatch of the base regime; one seed (a smoke test)
    assert progress["planned_runs"] == progress["complete_runs"] == 3 + 3 + 2 + 2
    assert progress["scale"]["semantics"] == "abort" and progress["scale"]["name"] == "cifar"
    for stem in ("fig3_straggling_period", "fig4_threshold_k", "classes_per_class_accuracy"):
        assert (out / f"{stem}.png").stat().st_size > 1000
    rows = read_csv(out / "classes_per_class_accuracy.csv")
    assert {r["regime"] for r in rows} == {"h=10", pp.PERSISTENT}
    assert len(rows) == 10 * (5 + 3)  # 10 classes x (5 algorithms at h = 10, 3 persistent)
    # slow_share: the persistent set's share of each class's training samples, from the partition
    shares = [float(r["slow_share"]) for r in rows if r["regime"] == pp.PERSISTENT]
    assert all(0.0 <= s <= 1.0 for s in shares) and max(shares) > 0.5
    # the per-class accuracies are those of the runs' last evaluation on the whole test set
    for d in (tmp_path / "results" / "train").iterdir():
        fin = json.loads((d / "final.json").read_text())
        assert len(fin["test_acc_per_class"]) == 10
        assert abs(np.mean(fin["test_acc_per_class"]) - fin["test_acc"]) < 1e-9  # 10 test images per class
    theory_rows = [r for r in read_csv(out / "fig4_threshold_k.csv") if r["kind"] == "theory"]
    assert theory_rows and {r["algorithm"] for r in theory_rows} == {"fastest-k", "lgc"}
    _check_predicted_column(theory_rows, constants, pp.SCALES["cpu-tiny"])
    assert paper.main(common) == 0
    assert json.loads((out / "progress.json").read_text())["started_this_chunk"] == 0


def _check_predicted_column(rows, constants, scale):
    """fig4's CSV: per rule and K = 1..N, the error model's predicted gap, equal (within its own Monte Carlo's
    reproducibility) to `lgc optimize-k`'s for the profile's setting *with the runs' momentum and warm-up rounds*
    (without them the prediction differs), and both K* as optimize-k reports them."""
    from theory.optimal_k import optimize_k

    for alg in ("fastest-k", "lgc"):
        sub = sorted((r for r in rows if r["algorithm"] == alg), key=lambda r: int(r["K"]))
        assert [int(r["K"]) for r in sub] == list(range(1, 11))
        kw = dict(workers=10, batch_size=50, blocks=pp.BASE_M, algorithm=alg, budget=pp.budget(scale),
                  eta=pp.BASE_LR, straggling_period=pp.BASE_H, semantics="abort")
        runs_own = optimize_k(constants, momentum=0.9, warmup_rounds=2, **kw)
        plain = optimize_k(constants, **kw)
        pred = np.array([float(r["pred_gap"]) for r in sub])
        np.testing.assert_allclose(pred, runs_own.recommendation.prediction.gap, rtol=1e-9)
        assert not np.allclose(pred, plain.recommendation.prediction.gap, rtol=1e-3)
        assert {(int(r["k_star"]), int(r["k_star_bound"])) for r in sub} == {(runs_own.k_star, runs_own.k_star_bound)}


def test_fig4_fit_is_r2_of_measured_loss_against_predicted_gap_plus_a_constant():
    """fit rows: c = mean(measured - predicted) over the K measured (K = N from full-sync's runs), R^2 of
    measured = predicted + c; the measured best K by accuracy and by loss."""
    from paper_figures.paper_threshold import fit_rows

    loss = {3: 2.0, 5: 1.7, 7: 1.9, 10: 2.3}
    pts = [{"algorithm": "lgc" if k < 10 else "full-sync", "K": k, "seed": s, "test_loss_at_tau": loss[k] + e,
            "test_acc_at_tau": 1 - loss[k] / 3} for k in loss for s, e in ((0, -0.01), (1, 0.01))]
    pred = {k: 0.1 * k for k in range(1, 11)}
    trows = [{"algorithm": "lgc", "K": k, "pred_gap": pred[k], "k_star": 1, "k_star_bound": 8} for k in pred]
    (fit,) = fit_rows(pts, trows)
    y = np.array([loss[k] for k in (3, 5, 7, 10)])
    p = np.array([pred[k] for k in (3, 5, 7, 10)])
    c = np.mean(y - p)
    assert fit["loss_offset"] == pytest.approx(c)
    assert fit["r2_loss"] == pytest.approx(1 - np.sum((y - p - c) ** 2) / np.sum((y - y.mean()) ** 2))
    a, b = np.polyfit(p, y, 1)
    assert fit["r2_loss_affine"] == pytest.approx(1 - np.sum((y - a * p - b) ** 2) / np.sum((y - y.mean()) ** 2))
    assert fit["r2_loss_affine"] >= fit["r2_loss"]
    assert fit["fit_ks"] == "3 5 7 10" and fit["k_best_loss"] == 5 and fit["k_best_acc"] == 5
    assert (fit["k_star"], fit["k_star_bound"]) == (1, 8)
    exact = [dict(r, pred_gap=loss.get(r["K"], 0.0) - 1.5) for r in trows]  # predicted = measured - 1.5
    (fit,) = fit_rows(pts, exact)
    assert fit["r2_loss"] == pytest.approx(1.0) and fit["loss_offset"] == pytest.approx(1.5)
    (fit,) = fit_rows(pts, [dict(r, pred_gap=3 * r["pred_gap"]) for r in exact])  # the right shape, 3x too steep
    assert fit["r2_loss_affine"] == pytest.approx(1.0) and fit["r2_loss"] < 0


def test_cpu_plan_states_processes_and_cpu_minutes(capsys):
    assert paper.main(["--scale", "cpu", "--data-dir", "x", "--plan", "--processes", "2"]) == 0
    text = capsys.readouterr().out
    est = json.loads(text[text.index("\n{") + 1:])
    assert est["runs"] == len(pp.jobs("x", pp.CPU)) and est["processes"] == 2
    assert est["estimated_wall_minutes"] == round(est["estimated_cpu_minutes"] / 2, 1) or \
        abs(est["estimated_wall_minutes"] - est["estimated_cpu_minutes"] / 2) <= 0.1


def test_bad_process_count_is_one_line_and_status_2(capsys):
    assert paper.main(["--scale", "cpu", "--data-dir", "x", "--processes", "0", "--plan"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--processes 0" in err


def test_records_match_the_committed_cifar_runs_by_config():
    """--records: each of the CPU profile's 48 runs has exactly one committed record under
    paper_figures/out/cifar/runs (made by older code, whose cache keys differ), whatever the data folder."""
    from pathlib import Path

    from paper_figures.paper_records import from_records

    folder = Path(paper.__file__).parent / "out" / "cifar" / "runs"
    jobs = pp.jobs("/anywhere", pp.CPU)
    done = from_records(jobs, folder)
    assert [j for j, _ in done] == jobs and len({p for _, p in done}) == len(jobs) == 48
    for job, path in done[:3]:
        rec = json.loads((path / "config.json").read_text())
        assert (rec["algorithm"], rec["seed"], rec["rounds"]) == (job.config.algorithm, job.config.seed,
                                                                  job.config.rounds)


def test_records_folder_errors_are_one_line_and_status_2(tmp_path, capsys):
    common = ["--scale", "cpu", "--data-dir", "x", "--only", "fig4", "--out", str(tmp_path / "out"), "--quiet"]
    for folder, says in ((tmp_path / "none", "no such folder"), (tmp_path, "no finished run")):
        assert paper.main(common + ["--records", str(folder)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and says in err and str(folder) in err


def test_fig4_fit_reads_the_predicted_heldout_loss_with_nothing_fitted():
    """With pred_heldout (eq. 8.14) at every K that ran: r2_heldout is 1 - SS_res / SS_tot of the measured loss
    against it as it is, r2_heldout_offset with one constant fitted; an exact prediction scores 1, one shifted by
    0.5 scores < 0 unfitted and 1 fitted. Without pred_heldout those are None and the gap fit is unchanged."""
    from paper_figures.paper_threshold import fit_rows

    loss = {3: 2.0, 5: 1.7, 7: 1.9, 10: 2.3}
    pts = [{"algorithm": "lgc" if k < 10 else "full-sync", "K": k, "seed": s, "test_loss_at_tau": loss[k] + e,
            "test_acc_at_tau": 1 - loss[k] / 3} for k in loss for s, e in ((0, -0.01), (1, 0.01))]
    base = [{"algorithm": "lgc", "K": k, "pred_gap": 0.1 * k, "k_star": 5, "k_star_bound": 8, "k_objective": "heldout",
             "k_star_gap": 10} for k in range(1, 11)]
    held = {k: 2.0 + 0.05 * (k - 6) ** 2 for k in range(1, 11)}
    (fit,) = fit_rows(pts, [dict(r, pred_heldout=held[r["K"]]) for r in base])
    y = np.array([loss[k] for k in (3, 5, 7, 10)])
    h = np.array([held[k] for k in (3, 5, 7, 10)])
    ss = np.sum((y - y.mean()) ** 2)
    assert fit["r2_heldout"] == pytest.approx(1 - np.sum((y - h) ** 2) / ss)
    assert fit["heldout_offset"] == pytest.approx(np.mean(y - h))
    assert fit["r2_heldout_offset"] == pytest.approx(1 - np.sum((y - h - np.mean(y - h)) ** 2) / ss)
    assert (fit["k_star"], fit["k_star_gap"], fit["k_objective"]) == (5, 10, "heldout")
    (exact,) = fit_rows(pts, [dict(r, pred_heldout=loss.get(r["K"], 9.0)) for r in base])
    assert exact["r2_heldout"] == pytest.approx(1.0) and exact["heldout_offset"] == pytest.approx(0.0)
    (shifted,) = fit_rows(pts, [dict(r, pred_heldout=loss.get(r["K"], 9.0) + 0.5) for r in base])
    assert shifted["r2_heldout"] < 0 and shifted["r2_heldout_offset"] == pytest.approx(1.0)
    (gap_only,) = fit_rows(pts, [dict(r, pred_heldout=None) for r in base])
    assert gap_only["r2_heldout"] is None and gap_only["r2_heldout_offset"] is None
    assert gap_only["r2_loss"] == pytest.approx(fit["r2_loss"])


def test_fig4_theory_rows_take_optimize_ks_heldout_k_star_and_keep_the_gaps():
    """With a "heldout" record in the constants, fig4's theory rows are optimize-k's: k_star its held-out K*
    (objective "heldout"), pred_heldout its predicted held-out loss, k_star_gap the K of least predicted gap; the
    same constants without the record give objective "gap", k_star = k_star_gap and no held-out column."""
    from paper_figures.paper_threshold import theory_rows
    from theory.optimal_k import optimize_k

    scale = pp.CPU_TINY
    bands = {"h": [4.0, 0.5], "delta": [0.3, 0.6], "sigma2": [2.0, 2.0], "zeta2": [2.0, 2.0]}
    plain = {"L": 5.0, "sigma2": 4.0, "zeta2": 4.0, "Delta": 0.9, "bands": bands}
    # a pilot whose held-out loss turns up late: the held-out K* need not be the gap's
    record = {"train": [2.3, 2.0, 1.7, 1.5], "heldout": [2.3, 2.05, 2.0, 2.3], "steps": [0, 4, 8, 12], "lr": 0.1,
              "batch_per_worker": 32}
    with_record = {**plain, "heldout": record}
    rows = theory_rows(with_record, scale, algorithms=("lgc",))
    best = optimize_k(with_record, workers=10, batch_size=50, blocks=pp.BASE_M, algorithm="lgc", budget=pp.budget(scale),
                      eta=pp.BASE_LR, straggling_period=pp.BASE_H, semantics="abort", momentum=0.9, warmup_rounds=2)
    rec = best.recommendation
    assert [r["K"] for r in rows] == list(range(1, 11))
    assert {(r["k_star"], r["k_objective"], r["k_star_gap"]) for r in rows} == \
        {(best.k_star, "heldout", rec.prediction.k_star("gap"))}
    np.testing.assert_allclose([r["pred_heldout"] for r in rows], rec.column(best.tradeoff.ks, "heldout"), rtol=1e-9)
    assert {r["heldout_beyond"] for r in rows} <= {0, 1}
    assert sum(r["heldout_beyond"] for r in rows) == len(rec.heldout_beyond)
    gap = theory_rows(plain, scale, algorithms=("lgc",))
    assert {(r["k_objective"], r["k_star"] == r["k_star_gap"]) for r in gap} == {("gap", True)}
    assert all(r["pred_heldout"] is None and r["heldout_beyond"] is None for r in gap)
    np.testing.assert_allclose([r["pred_gap"] for r in gap], [r["pred_gap"] for r in rows], rtol=1e-9)
