"""`lgc train`: flags and config files, the run directory and its files, bad input -> exit 2."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lgc import runs
from lgc.cli import main
from lgc.protocol import ROUND_FIELDS
from theory.schedule import schedule_from_csv

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--workers", "4", "--k", "3", "--batch-size", "6", "--blocks", "3", "--rounds", "6", "--model", "softmax", "--synthetic-train", "1200",
         "--synthetic-test", "100", "--samples-per-worker", "100", "--eval-every", "3", "--device", "cpu", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _one_line_exit_2(capsys, argv, match):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err


@pytest.mark.parametrize("argv,match", [
    (["--k", "11"], "K=11 must satisfy 1 <= K <= N=10"),
    (["--k", "0"], "K=0 must satisfy"),
    (["--batch-size", "7", "--blocks", "5"], "B=7 is not divisible by M=5"),
    (["--model", "vgg"], "model='vgg'"),
    (["--algorithm", "k-sync"], "algorithm='k-sync'"),
    (["--partition", "zipf"], "partition='zipf'"),
    (["--lr", "-1"], "lr=-1.0 must be > 0"),
    (["--timing-param", "rate=-2"], "rate=-2"),
    (["--timing", "gamma"], "'gamma'"),
    (["--dataset", "cifar10"], "needs --data-dir"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent/x"], "no CIFAR-10 batches in /nonexistent/x"),
    (["--schedule-file", "/nonexistent/s.csv"], "schedule_file=/nonexistent/s.csv does not exist"),
    (["--config", "/nonexistent/c.json"], "config file /nonexistent/c.json does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, match):
    _one_line_exit_2(capsys, [*argv, "--results", str(tmp_path)], match)


def test_bad_config_files_name_the_problem(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_exit_2(capsys, ["--config", str(bad)], "is not valid JSON")
    bad.write_text(json.dumps({"rounds": 5, "n_wrokers": 4}))
    _one_line_exit_2(capsys, ["--config", str(bad)], "unknown config key 'n_wrokers'")
    bad.write_text(json.dumps({"rounds": "ten"}))
    _one_line_exit_2(capsys, ["--config", str(bad)], "config key 'rounds'='ten' must be int")
    sched = tmp_path / "s.csv"
    sched.write_text("round,fast,blocks\n0,1,2\n")
    _one_line_exit_2(capsys, [*SMALL, "--schedule-file", str(sched), "--results", str(tmp_path)], "header must be")


def test_config_file_and_flags_compose(capsys, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"n_workers": 6, "threshold_k": 4, "lr": 1, "timing": "shifted-exp",
                               "timing_params": {"rate": 0.5}}))
    assert main(["train", "--config", str(cfg), "--k", "5", "--timing-param", "shift=2", "--print-config"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_workers"] == 6 and out["threshold_k"] == 5 and out["lr"] == 1.0
    assert out["timing_params"] == {"rate": 0.5, "shift": 2}
    assert out["task"]["augment"] is False and out["task"]["data_seed"] == out["seed"]  # resolved defaults recorded


def test_run_directory_files_and_cache(capsys, tmp_path):
    argv = ["train", *SMALL, "--algorithm", "lgc", "--results", str(tmp_path), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    path = Path(out["run_dir"])
    assert out["complete"] and out["rounds"] == 6 and path.parent == tmp_path / "train"
    for f in ("config.json", "meta.json", "data.json", "rounds.csv", "schedule.csv", "final.json", "checkpoint.pt"):
        assert (path / f).is_file(), f
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["threshold_k"] == 3 and cfg["task"]["model"] == "softmax"
    meta = json.loads((path / "meta.json").read_text())
    assert "git" in meta["code_version"] and meta["environment"]["torch"] == torch.__version__
    rows = runs.read_csv(path / "rounds.csv")
    assert list(rows[0]) == list(ROUND_FIELDS) and [int(r["round"]) for r in rows] == list(range(6))
    assert [r["test_acc"] != "" for r in rows] == [False, False, True, False, False, True]
    sched = schedule_from_csv((path / "schedule.csv").read_text())
    assert len(sched) == 6
    # the virtual clock is the sum of the rounds' wall times R_t, and n_fast matches the schedule
    np.testing.assert_allclose(float(rows[-1]["time"]), sum(s.wall for s in sched))
    assert [int(r["n_fast"]) for r in rows] == [len(s.fast) for s in sched] == [4, 4, 3, 3, 3, 3]
    assert [int(r["partial_blocks"]) for r in rows[2:]] == [sum(s.blocks_done[j] for j in range(4) if j not in s.fast)
                                                  for s in sched[2:]]
    hist = np.array(json.loads((path / "data.json").read_text())["label_histogram"])
    assert hist.shape == (4, 10) and (hist.sum(axis=1) == 100).all() and (hist.max(axis=1) == 80).all()
    stamp = (path / "final.json").stat().st_mtime_ns
    assert main(argv) == 0  # cached: reused
    capsys.readouterr()
    assert (path / "final.json").stat().st_mtime_ns == stamp
    assert main([*argv, "--force"]) == 0  # rerun
    assert (path / "final.json").stat().st_mtime_ns != stamp


def test_replayed_schedule_reproduces_the_run(capsys, tmp_path):
    """A schedule.csv written by one run, replayed by another, gives the same parameters."""
    assert main(["train", *SMALL, "--straggling-period", "2", "--results", str(tmp_path / "a"), "--json"]) == 0
    a = Path(json.loads(capsys.readouterr().out)["run_dir"])
    assert main(["train", *SMALL, "--seed", "0", "--timing-param", "rate=5", "--schedule-file",
                 str(a / "schedule.csv"), "--results", str(tmp_path / "b"), "--json"]) == 0
    b = Path(json.loads(capsys.readouterr().out)["run_dir"])
    from lgc.checkpoint import load_checkpoint

    assert torch.equal(load_checkpoint(a / "checkpoint.pt")["w"], load_checkpoint(b / "checkpoint.pt")["w"])


def test_console_entry_point_runs_as_a_subprocess(tmp_path):
    loud = [a for a in SMALL if a != "--quiet"]
    r = subprocess.run([sys.executable, "-m", "lgc", "train", *loud, "--results", str(tmp_path), "--threads", "1"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "rounds=6" in r.stdout and str(tmp_path) in r.stdout


def test_quiet_prints_nothing_but_errors(tmp_path, capsys):
    """--quiet: a finished run, the same run reused, a run extended and stopped early print nothing, on
    stdout or stderr; a bad flag still gets its one-line error; without --quiet the summary, the run
    path and the note about the reused run come back."""
    argv = ["train", *SMALL, "--results", str(tmp_path)]
    assert main(argv) == 0
    assert capsys.readouterr() == ("", "")
    assert main(argv) == 0  # reused (lgc.runs.say's note)
    assert capsys.readouterr() == ("", "")
    assert main([*argv, "--rounds", "9", "--stop-after", "1"]) == 0  # extended, then stopped
    assert capsys.readouterr() == ("", "")
    _one_line_exit_2(capsys, [*SMALL, "--k", "9"], "K=9")
    assert main([a for a in argv if a != "--quiet"]) == 0
    loud = capsys.readouterr()
    assert "rounds=6" in loud.out and str(tmp_path) in loud.out.strip().splitlines()[-1] and "reusing" in loud.err
