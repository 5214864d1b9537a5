"""dist on the default path (issue 12, items 1, 6, 7): a run killed after its first rounds resumes
to the parameters of an uninterrupted run of the same schedule, the survivors say nothing and the
launcher one line; a local spawn's rendezvous store listens on loopback only and a client that
writes values the protocol cannot produce stops the run; launch mistakes are one line."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from lgc.checkpoint import load_checkpoint
from lgc.cli import main
from lgc.config import TrainConfig
from lgc.runs import REPO_ROOT, read_csv
from lgc.sim import Simulator

ROUNDS = 30
FLAGS = ["--backend", "dist", "--algorithm", "lgc", "--workers", "3", "--k", "2", "--batch-size", "8", "--blocks", "4", "--rounds", str(ROUNDS),
         "--momentum", "0.5", "--dataset", "synthetic", "--synthetic-train", "600", "--synthetic-test", "60",
         "--partition", "iid", "--samples-per-worker", "200", "--model", "softmax", "--eval-every", "0",
         "--seed", "7", "--unit-ms", "20", "--timeout-s", "20"]
CFG = dict(algorithm="lgc", n_workers=3, threshold_k=2, batch_size=8, blocks=4, rounds=ROUNDS, momentum=0.5,
           dataset="synthetic", synthetic_train=600, synthetic_test=60, partition="iid", samples_per_worker=200,
           model="softmax", eval_every=0, seed=7)


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    """`lgc train --backend dist` as a user runs it: no --quiet, no --checkpoint-every."""
    cmd = [sys.executable, "-m", "lgc", "train", *FLAGS, "--results", str(tmp_path), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _wait(tmp_path: Path, proc, ready, limit_s: float = 90.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for run in tmp_path.glob("train/*"):
            try:
                got = ready(run)
            except Exception:  # a file being replaced; try again
                got = None
            if got:
                return run
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run did not get there in time")


def _lines(err: str) -> list[str]:
    """stderr without the progress bar (tqdm redraws its line with carriage returns)."""
    return [ln for ln in re.split(r"[\r\n]", err) if ln.strip() and "round/s" not in ln and "dist lgc K=" not in ln]


def test_default_checkpoints_let_a_killed_run_resume_to_the_uninterrupted_parameters(tmp_path):
    proc = _start(tmp_path)
    run = _wait(tmp_path, proc, lambda r: int(load_checkpoint(r / "checkpoint.pt")["round"]) >= 10)
    pids = json.loads((run / "workers.json").read_text())["pids"]
    os.kill(pids[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=40)
    assert proc.returncode == 2
    assert "Traceback" not in err, err  # the survivors exit quietly
    lines = _lines(err)
    assert len(lines) == 1 and "dist worker 1" in lines[0] and "SIGKILL" in lines[0], err
    ck_round = int(load_checkpoint(run / "checkpoint.pt")["round"])
    assert 10 <= ck_round < ROUNDS  # the default: every 10 rounds (or 60 s)
    before = read_csv(run / "rounds.csv")
    assert [int(r["round"]) for r in before] == list(range(ck_round))
    # the same command resumes and finishes
    r = subprocess.run([sys.executable, "-m", "lgc", "train", *FLAGS, "--results", str(tmp_path), "--json"],
                       capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert Path(json.loads(r.stdout)["run_dir"]) == run
    after = read_csv(run / "rounds.csv")
    assert [int(x["round"]) for x in after] == list(range(ROUNDS)) and after[:ck_round] == before
    # an uninterrupted run of the realised schedule (sim replays it) ends on the same parameters
    sim = Simulator(TrainConfig(**CFG, schedule_file=str(run / "schedule.csv")))
    for _ in range(ROUNDS):
        sim.step()
    torch.testing.assert_close(load_checkpoint(run / "checkpoint.pt")["w"], sim.w, rtol=1e-5, atol=1e-6)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (/proc/net/tcp, tcp6)."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        for line in Path(name).read_text().splitlines()[1:]:
            local, _, state = line.split()[1:4]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:  # 0A: LISTEN
                found.add(addr)
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc/net/tcp")
def test_store_listens_on_loopback_only_and_a_rogue_client_stops_the_run(tmp_path):
    proc = _start(tmp_path, "--quiet")
    run = _wait(tmp_path, proc, lambda r: (r / "rounds.csv").exists())
    port = json.loads((run / "workers.json").read_text())["port"]
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0
    # a client without credentials reaches it from this machine and moves every round's counter
    rogue = torch.distributed.TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(seconds=10))
    for t in range(ROUNDS):
        rogue.add(f"lgc/r{t}/arrived", 100)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = _lines(err)
    assert len(lines) == 1 and "rendezvous store is inconsistent" in lines[0], err
    assert not (run / "final.json").exists()  # never "completed" with an empty fast set


def test_status_values_out_of_range_are_detected():
    from lgc.dist.coordinator import StoreInconsistent, read_status

    store = torch.distributed.HashStore()
    store.set("lgc/alive/0", f"{time.time()!r} 3 3 3")
    store.set("lgc/alive/1", "1.0 5 5 999999")
    with pytest.raises(StoreInconsistent, match="rounds in -1..10"):
        read_status(store, 2, rounds=10)
    store.set("lgc/alive/1", "nan 1 1 1")
    with pytest.raises(StoreInconsistent):
        read_status(store, 2, rounds=10)


def test_a_report_the_protocol_cannot_produce_stops_the_round():
    """Worker._check_round: |A_t| = K, distinct positions, m_j in 0..M (a rogue counter or key)."""
    import numpy as np

    from lgc.dist.coordinator import StoreInconsistent
    from lgc.dist.worker import _M, _POS, REPORT_FIXED, DistSettings, Worker

    from lgc.config import DistOptions

    cfg = TrainConfig(n_workers=3, threshold_k=2, blocks=4, batch_size=8, rounds=10, algorithm="lgc", warmup_rounds=0)
    s = DistSettings(config=cfg, options=DistOptions())
    w = Worker(0, s, problem=None, coord=None, timing_model=None)
    rep = np.zeros((3, REPORT_FIXED + 8))
    rep[:, _POS], rep[:, _M] = (1, 2, 0), (4, 4, 2)
    w._check_round(5, rep, w._schedule_from_reports(5, rep, 0.1))  # a real round passes
    for pos, m, match in [((0, 0, 0), (1, 1, 1), "|A_t| = 0, expected K = 2"),
                          ((1, 1, 0), (4, 4, 2), "expected distinct 1..3"),
                          ((1, 2, 0), (4, 4, 9), "m_j")]:
        rep[:, _POS], rep[:, _M] = pos, m
        with pytest.raises(StoreInconsistent, match=re.escape(match)):
            w._check_round(5, rep, w._schedule_from_reports(5, rep, 0.1))


def test_rendezvous_host_typo_is_one_line_before_anything_starts(tmp_path, capsys):
    started = time.monotonic()
    assert main(["train", *FLAGS, "--rendezvous-host", "no-such-host.invalid", "--results", str(tmp_path)]) == 2
    assert time.monotonic() - started < 15  # resolution gives up after lgc.dist.launch.RESOLVE_TIMEOUT_S
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rendezvous-host 'no-such-host.invalid' cannot be resolved" in err[0], err
    assert not (tmp_path / "train").exists()


def test_resolving_a_host_that_never_answers_gives_up_in_time(monkeypatch):
    from lgc.dist import launch
    from lgc.errors import UserError

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(3))
    started = time.monotonic()
    with pytest.raises(UserError, match="did not resolve within 0.2 s"):
        launch.resolve_host("slow.example", timeout_s=0.2)
    assert time.monotonic() - started < 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_with_fewer_processes_than_workers_is_one_line_from_rank_0(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "3", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "lgc", "train", *FLAGS, "--workers", "4", "--quiet",
           "--results", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**_env(), "OMP_NUM_THREADS": "1"}, timeout=120)
    assert r.returncode != 0
    ours = [ln for ln in r.stderr.splitlines() if ln.startswith("lgc train")]
    assert len(ours) == 1 and "torchrun started 3 processes" in ours[0] and "N=4" in ours[0], r.stderr
    assert not re.search(r'File ".*/lgc/', r.stderr), r.stderr  # no traceback from our code
    assert not (tmp_path / "train").exists()


def test_a_diverging_dist_run_stops_on_every_rank_and_says_so(tmp_path):
    """Every rank sees the same loss and w_{t+1}: all stop at the same round (no hang), rank 0
    writes final.json with status "diverged" (lgc train exits 3; tests/test_strict_inputs.py)."""
    from lgc.config import DistOptions
    from lgc.dist import run_dist

    cfg = TrainConfig(algorithm="lgc", n_workers=2, threshold_k=1, batch_size=4, blocks=2, rounds=40,
                      dataset="quadratic", lr=50.0, eval_every=0)
    path = run_dist(cfg, DistOptions(unit_ms=2.0, timeout_s=20), root=tmp_path, quiet=True)
    final = json.loads((path / "final.json").read_text())
    assert final["status"] == "diverged" and final["loss"] is None
    t = final["diverged_round"]
    assert t < 39 and final["rounds"] == t + 1 == final["loop_rounds"]
    assert len(read_csv(path / "rounds.csv")) == t + 1
