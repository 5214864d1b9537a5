"""The paper profile's CPU scale makes its own constants for fig4 (paper_figures/paper_constants.py): `lgc estimate`
beside the runs, reused while config and arguments are unchanged and today's error model can read them, counted
in the plan only when they must be made."""
import json

import pytest

from lgc.data.cifar10 import write_fake_cifar10
from lgc.runs import read_csv
from paper_figures import paper, paper_constants
from paper_figures import paper_profile as pp

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
SPLIT = {"used": "fit", "spectrum": [0.4, 0.6], "fit": [0.5, 0.5], "seen": [1.0, 1.0], "r2": 0.9, "reason": "test"}
BANDS = {"h": [4.0, 1.0], "delta": [0.5, 0.5], "sigma2": [0.5, 0.5], "zeta2": [0.5, 0.5], "delta_split": SPLIT}
HELDOUT = {"train": [2.3, 2.0], "heldout": [2.3, 2.1], "steps": [0, 10], "lr": 0.1, "batch_per_worker": 32}
TODAYS = {"bands": BANDS, "heldout": HELDOUT}  # what fig4 reads (paper_constants.NEEDED)


def test_cpu_plan_counts_the_estimate_only_when_constants_must_be_made(tmp_path, capsys):
    """With constants.json of the same config and arguments in --out the plan drops the estimate's
    minutes; with a different config there (another data dir) it counts them again."""
    def plan(data_dir):
        assert paper.main(["--scale", "cpu", "--data-dir", data_dir, "--plan", "--processes", "2",
                           "--out", str(tmp_path)]) == 0
        text = capsys.readouterr().out
        return json.loads(text[text.index("\n{") + 1:])

    fresh = plan("x")
    assert fresh["includes_constants_estimate"] is True
    cfg, args = paper_constants.request(pp.CPU, "x", False)
    (tmp_path / "constants.json").write_text(json.dumps(TODAYS))
    (tmp_path / "constants_config.json").write_text(json.dumps(cfg))
    (tmp_path / "constants_args.json").write_text(json.dumps(args))
    reused = plan("x")
    assert reused["includes_constants_estimate"] is False
    assert reused["estimated_cpu_minutes"] == pytest.approx(fresh["estimated_cpu_minutes"] - paper.CPU_ESTIMATE_MS / 6e4,
                                                            abs=0.11)
    assert plan("elsewhere")["includes_constants_estimate"] is True


def test_cpu_profile_estimates_its_constants_beside_the_runs(tmp_path, monkeypatch, capsys):
    """Without --constants the CPU scale runs `lgc estimate` (its estimate_args) in a process of its
    own beside the runs, draws fig4's bound from it, reuses it while config and arguments are
    unchanged, estimates again when the arguments change, and a failed estimate is one line."""
    import dataclasses

    tiny = dataclasses.replace(pp.CPU_TINY, ks=(5,), periods=(10,), seeds=1, rounds=2,
                               estimate_args=("--max-samples", "20", "--power-iters", "2", "--l-bootstrap", "0",
                                              "--bootstrap", "10", "--trajectory-steps", "2", "--lbfgs-iters", "2"))
    monkeypatch.setitem(pp.SCALES, "cpu-tiny", tiny)
    data = tmp_path / "data"
    write_fake_cifar10(data, n_train=1000, n_test=100)
    out = tmp_path / "out"
    common = ["--scale", "cpu", "--tiny", "--data-dir", str(data), "--accept-md5-mismatch", "--only", "fig4",
              "--results", str(tmp_path / "results"), "--out", str(out), "--quiet"]
    assert paper.main(common) == 0
    est = json.loads((out / "constants.json").read_text())
    assert est["source"]["samples_per_worker"] == [20] * 10 and est["source"]["trajectory"]["steps"] == 2
    assert json.loads((out / "constants_args.json").read_text())[:2] == ["--max-samples", "20"]
    theory_rows = [r for r in read_csv(out / "fig4_threshold_k.csv") if r["kind"] == "theory"]
    assert theory_rows and {r["algorithm"] for r in theory_rows} == {"fastest-k", "lgc"}
    assert est["bands"]["h"] and all(r["pred_gap"] != "" for r in theory_rows)  # the model ran on its bands
    made = (out / "constants.json").stat().st_mtime_ns
    assert paper.main(common) == 0  # same config and arguments: reused, not estimated again
    assert (out / "constants.json").stat().st_mtime_ns == made
    bad = dataclasses.replace(tiny, estimate_args=("--power-iters", "0"))
    monkeypatch.setitem(pp.SCALES, "cpu-tiny", bad)
    capsys.readouterr()
    assert paper.main(common) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lgc estimate exited with status 2" in err[0] and "constants.log" in err[0]
    assert not (out / "constants.json").exists()  # the old settings' constants are not left to be read


def test_constants_written_with_the_flat_config_are_still_ready(tmp_path):
    """A constants_config.json from before lgc.config_task (the task's keys at the top level, as the
    committed paper_figures/out/cifar one) names the same config: its constants are reused."""
    cfg, args = paper_constants.request(pp.CPU, "x", False)
    flat = {**{k: v for k, v in cfg.items() if k != "task"}, **cfg["task"]}
    (tmp_path / paper_constants.CONSTANTS).write_text(json.dumps(TODAYS))
    (tmp_path / paper_constants.ARGS).write_text(json.dumps(args))
    for stored, ready in ((flat, True), (cfg, True), ({**flat, "classes_per_worker": 5}, False), ([1], False)):
        (tmp_path / paper_constants.CONFIG).write_text(json.dumps(stored))
        assert paper_constants.ready(tmp_path, cfg, args) is ready, stored


def test_constants_without_bands_are_estimated_again(tmp_path):
    """fig4's error model reads the constants' curvature bands: a constants.json of the same config and
    arguments but without them (as written before `lgc estimate` measured bands) is not reused."""
    cfg, args = paper_constants.request(pp.CPU, "x", False)
    (tmp_path / paper_constants.CONFIG).write_text(json.dumps(cfg))
    (tmp_path / paper_constants.ARGS).write_text(json.dumps(args))
    for stored, ready in (({"L": 1.0}, False), ({"bands": None}, False), ("not json", False), (TODAYS, True)):
        (tmp_path / paper_constants.CONSTANTS).write_text(stored if isinstance(stored, str) else json.dumps(stored))
        assert paper_constants.ready(tmp_path, cfg, args) is ready, stored


def test_constants_without_a_delta_split_are_stale(tmp_path):
    """Bands without the record of Delta's split (written before `lgc estimate` calibrated it on its trajectory,
    eq. 8.10', as the CPU profile's first banded constants) are stale for today's error model: estimated again.
    A split of either kind (fit, or the spectrum fallback) counts as today's."""
    cfg, args = paper_constants.request(pp.CPU, "x", False)
    (tmp_path / paper_constants.CONFIG).write_text(json.dumps(cfg))
    (tmp_path / paper_constants.ARGS).write_text(json.dumps(args))
    old = {k: v for k, v in BANDS.items() if k != "delta_split"}
    fallback = {**BANDS, "delta_split": {**SPLIT, "used": "spectrum", "fit": None, "r2": None}}
    for bands, ready in ((old, False), ({**BANDS, "delta_split": None}, False), ({**BANDS, "delta_split": {}}, False),
                         (BANDS, True), (fallback, True)):
        (tmp_path / paper_constants.CONSTANTS).write_text(json.dumps({"bands": bands, "heldout": HELDOUT}))
        assert paper_constants.ready(tmp_path, cfg, args) is ready, bands


def test_constants_without_the_heldout_record_are_stale(tmp_path):
    """fig4's model K* minimises the predicted held-out loss (eq. 8.14) only with the pilot's "heldout" record:
    constants without it (written before `lgc estimate` ran the pilot, as the CPU profile's third file) are
    estimated again."""
    cfg, args = paper_constants.request(pp.CPU, "x", False)
    (tmp_path / paper_constants.CONFIG).write_text(json.dumps(cfg))
    (tmp_path / paper_constants.ARGS).write_text(json.dumps(args))
    for stored, ready in (({"bands": BANDS}, False), ({"bands": BANDS, "heldout": None}, False), (TODAYS, True)):
        (tmp_path / paper_constants.CONSTANTS).write_text(json.dumps(stored))
        assert paper_constants.ready(tmp_path, cfg, args) is ready, stored


def test_the_pilot_covers_the_budgets_most_rounds_at_the_runs_effective_step():
    """The CPU scale's estimate runs the held-out pilot (DERIVATION.md 8.5) long enough that steps x lr reaches the
    most rounds of any K within fig4's budget times the runs' steady step eta / (1 - momentum), and no longer."""
    args = paper_constants.request(pp.CPU, "x", False)[1]
    lr, steps = float(args[args.index("--heldout-lr") + 1]), int(args[args.index("--heldout-steps") + 1])
    most = max(pp.rounds_for(a, k, pp.CPU) for a in ("lgc", "fastest-k") for k in range(1, pp.BASE_N + 1))
    assert most == round(pp.budget(pp.CPU) / (1 + 1 / pp.BASE_N)) > pp.CPU.rounds  # K = 1: E[R] = 1 + 1/N
    reach = most * pp.BASE_LR / (1 - pp.BASE_MOMENTUM)
    assert steps * lr >= reach - 1e-9 and (steps - 1) * lr < reach
    assert steps > 200  # lgc estimate's default pilot would not reach it
    assert paper_constants.request(pp.CPU_TINY, "x", False)[1].count("--heldout-steps") == 1
