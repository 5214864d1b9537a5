"""examples/own_task_torchrun.sh: a user's own Task under torchrun (two local processes, gloo,
127.0.0.1), rebuilt in each process from its factory (python -m lgc.dist MODULE:FUNCTION). The
dist run must equal sim replaying its schedule: the same Task in both backends."""
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from lgc.checkpoint import load_checkpoint
from lgc.runs import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_own_task_under_torchrun_equals_sim_on_its_schedule(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    if shutil.which("torchrun", path=bin_dir) is None:
        pytest.skip("torchrun is not installed beside this python")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "PORT": str(_free_port()),
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    r = subprocess.run(["bash", str(REPO_ROOT / "examples" / "own_task_torchrun.sh"), "--results",
                        str(tmp_path / "res"), "--json"], capture_output=True, text=True, env=env, timeout=120,
                       cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)  # rank 0's report only
    assert report["complete"] and report["rounds"] == 6
    run = tmp_path / "res" / "train"
    (path,) = [p.parent for p in run.glob("*/final.json")]
    config = json.loads((path / "config.json").read_text())
    assert config["backend"] == "dist" and config["n_workers"] == 2 and config["task"]["name"] == "own-mlp"

    sys.path.insert(0, str(REPO_ROOT / "examples"))
    try:
        from own_task import two_workers
    finally:
        sys.path.remove(str(REPO_ROOT / "examples"))
    import lgc

    keep = {k: v for k, v in config.items() if k not in ("dist", "theory", "task", "backend", "checkpoint_every")}
    sim = lgc.simulate(two_workers(), {**keep, "schedule_file": str(path / "schedule.csv")}, root=tmp_path / "sim")
    torch.testing.assert_close(load_checkpoint(sim.path / "checkpoint.pt")["w"],
                               load_checkpoint(path / "checkpoint.pt")["w"], rtol=1e-5, atol=1e-6)
