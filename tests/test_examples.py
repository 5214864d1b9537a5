"""examples/: each script runs, at its tiny size, as a user would run it (a subprocess with
PYTHONPATH at the repository); the torchrun example is tests/test_dist_examples.py."""
import os
import subprocess
import sys
from pathlib import Path

from lgc.runs import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"


def _run(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "LGC_RESULTS": str(tmp_path / "res")}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)


def test_own_model_and_data_in_sim(tmp_path):
    r = _run(tmp_path, EXAMPLES / "own_task.py")
    assert r.returncode == 0, r.stderr[-2000:]
    head, accs, path = r.stdout.strip().splitlines()
    assert head.startswith("rounds=30 ") and Path(path).parent == tmp_path / "res" / "train"
    assert float(head.split("test_acc=")[1].split()[0]) > 0.7  # it learns (chance is 1/3)
    assert (Path(path) / "final.json").exists() and "task" in (Path(path) / "config.json").read_text()


def test_k_star_of_own_model_and_data(tmp_path):
    r = _run(tmp_path, EXAMPLES / "own_task_kstar.py", tmp_path / "k.png")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("L=") and [ln.split()[0] for ln in lines[1:5]] == ["K=1", "K=2", "K=3", "K=4"]
    k_star, k_bound = (int(part.split("= ")[1].split()[0]) for part in lines[5].split(";"))
    bounds = [float(ln.split("bound=")[1].split()[0]) for ln in lines[1:5]]
    gaps = [float(ln.split("predicted_gap=")[1]) for ln in lines[1:5]]
    assert k_bound == 1 + bounds.index(min(bounds)) and (tmp_path / "k.png").exists()
    assert k_star == 1 + gaps.index(min(gaps))  # the recommended K*: least predicted loss gap
