"""The `sim` backend's training loop: a run directory, the run cache and checkpoints.

    run_dir = train(TrainConfig(...))     # results/train/<key>/: rounds.csv, schedule.csv, final.json
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

from lgc import runs
from lgc.checkpoint import load_checkpoint, save_checkpoint
from lgc.config import TrainConfig
from lgc.protocol import ROUND_FIELDS, RUN_KIND
from lgc.sim.simulator import Simulator
from theory.schedule import schedule_to_csv


def _write_progress(path: Path, sim: Simulator) -> None:
    runs.atomic_write_csv(path / "rounds.csv", sim.rows, ROUND_FIELDS)
    runs.atomic_write_text(path / "schedule.csv", schedule_to_csv(sim.schedules))
    save_checkpoint(path / "checkpoint.pt", sim.state_dict())


def train(
    config: TrainConfig, *, root=None, force: bool = False, resume: bool = True, quiet: bool = False,
    stop_after: Optional[int] = None, time_limit_s: Optional[float] = None, dataset=None,
) -> Path:
    """Run (or reuse) the `sim` run of `config`; returns its directory results/train/<key>/.

    A finished run with the same config and code is reused unless `force`. With `resume`, an
    unfinished run continues from its last checkpoint and ends bit-identical to an uninterrupted
    run. `stop_after` rounds or `time_limit_s` seconds end this call early after a checkpoint
    (chunked GPU sessions; tests); run `train` again to continue. `dataset`: the config's data
    set already in memory (a script training many runs loads CIFAR-10 once).
    """
    cfg = config.resolved().validate()
    key = cfg.to_dict()
    path = runs.run_dir(RUN_KIND, key, root)
    if runs.is_complete(path) and not force:
        return path
    sim = Simulator(cfg, dataset=dataset)
    ckpt = path / "checkpoint.pt"
    if resume and not force and ckpt.exists():
        sim.load_state_dict(load_checkpoint(ckpt))
    else:
        if path.exists():
            shutil.rmtree(path)
        runs.start_run(path, key, str(sim.device))
        runs.atomic_write_json(path / "data.json", sim.task.info())
    from tqdm import tqdm

    began = time.perf_counter()
    done_here = 0
    with tqdm(total=cfg.rounds, initial=sim.round, disable=quiet, desc=f"{cfg.algorithm} K={cfg.threshold_k}",
              unit="round", leave=False) as bar:
        while sim.round < cfg.rounds:
            row = sim.step()
            done_here += 1
            bar.update(1)
            if "test_acc" in row:
                bar.set_postfix(acc=f"{row['test_acc']:.3f}", loss=f"{row['loss']:.3f}")
            if sim.round == cfg.rounds:
                break
            out_of_time = time_limit_s is not None and time.perf_counter() - began > time_limit_s
            if (cfg.checkpoint_every and sim.round % cfg.checkpoint_every == 0) or out_of_time \
                    or (stop_after is not None and done_here >= stop_after):
                _write_progress(path, sim)
            if out_of_time or (stop_after is not None and done_here >= stop_after):
                return path
    _write_progress(path, sim)
    runs.finish_run(path, sim.final_metrics())
    return path
