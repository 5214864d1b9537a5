"""A run stopped or SIGKILLed mid-way and resumed ends bit-identical to an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lgc import runs
from lgc.checkpoint import load_checkpoint, save_checkpoint
from lgc.config import TrainConfig
from lgc.errors import UserError
from lgc.sim import train

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cfg(**kw):
    base = dict(algorithm="lgc", n_workers=4, threshold_k=2, batch_size=10, blocks=5, rounds=12, lr=0.1,
                momentum=0.9, weight_decay=1e-4, dataset="synthetic", synthetic_train=2000, synthetic_test=100,
                model="cnn", width=4, augment=True, samples_per_worker=100, eval_every=4, checkpoint_every=4,
                straggling_period=3, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


_SOURCE_HASH_AT_IMPORT = runs.code_version()["source_hash"]


def _same_code_or_skip(run, other):
    """The cache key hashes the sources: if they changed on disk while this test ran (someone
    editing the checkout), the resumed run has another key, which is the cache working. Any
    other change of key is a bug and fails."""
    if other.name != run.name:
        runs.code_version.cache_clear()
        if runs.code_version()["source_hash"] != _SOURCE_HASH_AT_IMPORT:
            pytest.skip("lgc/ or theory/ sources changed on disk during the test; the cache key moved with them")
        assert other.name == run.name, "same config and code gave another cache key"


def _rows_without_wall(path):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in runs.read_csv(path / "rounds.csv")]


def test_stopped_and_resumed_run_is_bit_identical(tmp_path):
    cfg = _cfg()
    whole = train(cfg, root=tmp_path / "a", quiet=True)
    part = train(cfg, root=tmp_path / "b", quiet=True, stop_after=5)  # between checkpoints
    assert not runs.is_complete(part) and (part / "checkpoint.pt").exists()
    mid = load_checkpoint(part / "checkpoint.pt")
    assert mid["round"] == 5 and mid["u"] is not None and mid["momentum"] is not None
    part = train(cfg, root=tmp_path / "b", quiet=True)
    assert runs.is_complete(part)
    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(part / "checkpoint.pt")
    assert torch.equal(a["w"], b["w"]) and torch.equal(a["momentum"], b["momentum"]) and torch.equal(a["u"], b["u"])
    assert _rows_without_wall(whole) == _rows_without_wall(part)
    assert (whole / "schedule.csv").read_text() == (part / "schedule.csv").read_text()
    # and the state really evolves across the cut (a resume that restarted would differ)
    assert not torch.equal(mid["w"], b["w"])


def test_no_resume_starts_over_and_finished_runs_are_reused(tmp_path):
    cfg = _cfg(rounds=6)
    p = train(cfg, root=tmp_path, quiet=True, stop_after=3)
    p2 = train(cfg, root=tmp_path, quiet=True, resume=False)
    assert p2 == p and runs.is_complete(p)
    stamp = (p / "final.json").stat().st_mtime_ns
    assert train(cfg, root=tmp_path, quiet=True) == p
    assert (p / "final.json").stat().st_mtime_ns == stamp  # reused, not rerun


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path):
    f = tmp_path / "checkpoint.pt"
    f.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="checkpoint .* cannot be read"):
        load_checkpoint(f)
    save_checkpoint(f, {"w": torch.zeros(2)})
    assert torch.equal(load_checkpoint(f)["w"], torch.zeros(2))


def test_sigkilled_cli_run_resumes_bit_identical(tmp_path):
    args = ["--workers", "4", "--k", "2", "--batch-size", "10", "--blocks", "5", "--rounds", "400", "--lr", "0.05", "--model", "mlp",
            "--width", "8", "--synthetic-train", "2000", "--synthetic-test", "100", "--samples-per-worker", "100",
            "--eval-every", "200", "--checkpoint-every", "10", "--device", "cpu", "--threads", "1", "--quiet",
            "--results", str(tmp_path / "killed")]
    cmd = [sys.executable, "-m", "lgc", "train", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    ckpts = []
    while time.time() < deadline and proc.poll() is None:
        ckpts = list((tmp_path / "killed").rglob("checkpoint.pt"))
        if ckpts:
            break
        time.sleep(0.02)
    assert ckpts, "no checkpoint appeared"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = ckpts[0].parent
    assert not runs.is_complete(run), "the run finished before it could be killed"
    r = subprocess.run(cmd + ["--json"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _same_code_or_skip(run, Path(json.loads(r.stdout)["run_dir"]))
    assert runs.is_complete(run)
    cfg = TrainConfig(n_workers=4, threshold_k=2, batch_size=10, blocks=5, rounds=400, lr=0.05, model="mlp",
                      width=8, synthetic_train=2000, synthetic_test=100, samples_per_worker=100, eval_every=200,
                      checkpoint_every=10, device="cpu")
    ref = train(cfg, root=tmp_path / "ref", quiet=True)
    _same_code_or_skip(run, ref)  # same config and code: same cache key
    assert torch.equal(load_checkpoint(ref / "checkpoint.pt")["w"], load_checkpoint(run / "checkpoint.pt")["w"])
    assert _rows_without_wall(ref) == _rows_without_wall(run)


def test_time_limit_checkpoints_and_a_later_call_finishes(tmp_path):
    cfg = _cfg(dataset="quadratic", rounds=30, checkpoint_every=0)
    p = train(cfg, root=tmp_path, quiet=True, time_limit_s=0.0)  # stops after its first round
    assert not runs.is_complete(p) and load_checkpoint(p / "checkpoint.pt")["round"] == 1
    assert len(runs.read_csv(p / "rounds.csv")) == 1
    train(cfg, root=tmp_path, quiet=True)
    assert runs.is_complete(p) and len(runs.read_csv(p / "rounds.csv")) == 30
