"""A dead or hung dist worker ends the run within the stated time, with one line naming it and a
resumable checkpoint; nothing written is lost (docs/DIST.md "Failures"; README "Targets and
guarantees")."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lgc.checkpoint import load_checkpoint
from lgc.config import TrainConfig
from lgc.dist import DistOptions, run_dist
from lgc.runs import REPO_ROOT, read_csv
from theory.schedule import schedule_from_csv

ROUNDS = 30
CFG = dict(algorithm="lgc", n_workers=4, threshold_k=2, batch_size=8, blocks=4, rounds=ROUNDS, warmup_rounds=2,
           dataset="synthetic", synthetic_train=1000, synthetic_test=100, partition="iid", samples_per_worker=200,
           model="softmax", eval_every=0, checkpoint_every=2, seed=5)

FLAGS = ["--backend", "dist", "--algorithm", "lgc", "--workers", "4", "--k", "2", "--batch-size", "8", "--blocks", "4", "--rounds", str(ROUNDS),
         "--warmup-rounds", "2", "--dataset", "synthetic", "--synthetic-train", "1000", "--synthetic-test", "100",
         "--partition", "iid", "--samples-per-worker", "200", "--model", "softmax", "--eval-every", "0",
         "--checkpoint-every", "2", "--seed", "5", "--quiet"]


def _start(tmp_path: Path, opts: dict, *extra: str) -> subprocess.Popen:
    """`lgc train --backend dist` in its own process, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "lgc", "train", *FLAGS, "--results", str(tmp_path),
           "--unit-ms", str(opts["unit_ms"]), "--timeout-s", str(opts["timeout_s"]), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_checkpoint(tmp_path: Path, proc, min_round: int, limit_s: float = 60.0) -> Path:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for ck in tmp_path.glob("train/*/checkpoint.pt"):
            try:
                if int(load_checkpoint(ck)["round"]) >= min_round:
                    return ck.parent
            except Exception:  # being replaced; try again
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_sigkilled_worker_ends_run_naming_it_and_run_resumes_losing_nothing(tmp_path):
    opts = {"unit_ms": 25.0, "timeout_s": 20.0}
    proc = _start(tmp_path, opts)
    run = _wait_for_checkpoint(tmp_path, proc, 4)
    pids = json.loads((run / "workers.json").read_text())["pids"]
    os.kill(pids[2], signal.SIGKILL)
    killed_at = time.monotonic()
    _, err = proc.communicate(timeout=opts["timeout_s"] + 10)
    ended_after = time.monotonic() - killed_at
    assert proc.returncode == 2
    assert ended_after < opts["timeout_s"]  # detected from the process exit, not the timeout
    line = err.strip().splitlines()[-1]
    assert "dist worker 2" in line and "SIGKILL" in line and "--resume" in line, err
    ck_round = int(load_checkpoint(run / "checkpoint.pt")["round"])
    assert 4 <= ck_round < ROUNDS
    before = read_csv(run / "rounds.csv")
    trace_before = read_csv(run / "trace.csv")
    assert [int(r["round"]) for r in before] == list(range(ck_round))
    assert not (run / "final.json").exists()
    # resume: the same config (as the CLI builds it) continues from the checkpoint
    path = run_dist(TrainConfig(**CFG), DistOptions(**opts), root=tmp_path, quiet=True)
    assert path == run and (run / "final.json").exists()
    after = read_csv(run / "rounds.csv")
    assert [int(r["round"]) for r in after] == list(range(ROUNDS))
    assert after[:ck_round] == before  # nothing written before the kill is lost or rewritten
    trace_after = read_csv(run / "trace.csv")
    assert trace_after[:len(trace_before)] == trace_before
    assert {int(r["round"]) for r in trace_after} == set(range(ROUNDS))


def test_hung_worker_times_out_naming_it(tmp_path):
    opts = {"unit_ms": 10.0, "timeout_s": 3.0}
    proc = _start(tmp_path, opts)
    run = _wait_for_checkpoint(tmp_path, proc, 2)
    pids = json.loads((run / "workers.json").read_text())["pids"]
    os.kill(pids[1], signal.SIGSTOP)  # alive but silent: only a timeout can tell
    stopped_at = time.monotonic()
    try:
        _, err = proc.communicate(timeout=opts["timeout_s"] + 60)
    finally:
        try:
            os.kill(pids[1], signal.SIGKILL)
        except ProcessLookupError:
            pass
    ended_after = time.monotonic() - stopped_at
    assert proc.returncode == 2
    # it waited for the collective's timeout (not an early crash: the collective in flight may have
    # started a little before the SIGSTOP, hence half); the upper limit is communicate()'s: on a
    # loaded machine the shutdown after the timeout takes seconds, so no tighter wall-clock bound
    assert ended_after > 0.5 * opts["timeout_s"], ended_after
    line = err.strip().splitlines()[-1]
    assert "worker 1" in line and "--timeout-s" in line and "checkpoint at round" in line, err


def test_dead_worker_becomes_a_permanent_straggler_with_the_option(tmp_path):
    """--on-worker-death straggler: the run restarts from its last checkpoint without the
    killed worker, which is never in A_t again and reports m_j = 0; it finishes."""
    proc = _start(tmp_path, {"unit_ms": 25.0, "timeout_s": 20.0}, "--on-worker-death", "straggler")
    run = _wait_for_checkpoint(tmp_path, proc, 4)
    before = read_csv(run / "rounds.csv")
    ck_round = len(before)
    os.kill(json.loads((run / "workers.json").read_text())["pids"][1], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "dist worker 1" in err and "permanent straggler" in err
    assert (run / "final.json").exists()
    sched = schedule_from_csv((run / "schedule.csv").read_text())
    assert [s.round for s in sched] == list(range(ROUNDS))
    rows = read_csv(run / "rounds.csv")
    assert [int(r["round"]) for r in rows] == list(range(ROUNDS))
    restart = min(t for t in range(ROUNDS) if sched[t].blocks_done[1] == 0 and 1 not in sched[t].fast)
    assert restart >= ck_round - 1  # rounds before the last checkpoint before the kill are kept
    assert rows[:ck_round] == before
    for s in sched[restart:]:
        assert 1 not in s.fast and s.blocks_done[1] == 0
        if s.round >= 2:
            assert len(s.fast) == 2
    assert load_checkpoint(run / "checkpoint.pt")["dead"] == [1]


@pytest.mark.parametrize("flags, message", [
    (["--unit-ms", "-1"], "unit_ms=-1.0 must be > 0"),
    (["--timeout-s", "0"], "timeout_s=0.0 must be > 0"),
    (["--slow-worker", "12"], "slow_worker=12 must be -1 or in 0..9"),
    (["--comm-alpha", "0.5"], "comm_alpha/comm_beta model communication in sim"),
])
def test_bad_dist_flags_are_one_line_exit_2_before_any_process_starts(tmp_path, capsys, flags, message):
    from lgc.cli import main

    assert main(["train", "--backend", "dist", "--rounds", "2", "--results", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list(tmp_path.glob("train/*"))  # nothing started, nothing written
