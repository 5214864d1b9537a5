"""`run_dist`: one dist run from a TrainConfig and DistOptions to its run directory.

    path = run_dist(TrainConfig(..., backend="dist"), DistOptions(unit_ms=50))

Checks the options, loads a replayed schedule, prepares the run directory (rank 0), then
spawns the local workers (lgc.dist.launch) or runs this process as one rank under torchrun;
a local run with on_worker_death="straggler" restarts without a dead worker.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from lgc.config import DistOptions
from lgc.errors import check
from theory.algorithms import algorithm as algorithm_entry
from theory.round_kinds import FULL


def settings_from_config(cfg, opts: DistOptions, timing_model):
    """The round protocol's parameters from a resolved TrainConfig."""
    from lgc.dist.worker import DistSettings
    from lgc.protocol import anytime_deadline

    return DistSettings(config=cfg, options=opts, deadline=anytime_deadline(cfg, timing_model))


def _process_backend(opts, device: str, n_workers: int) -> str:
    import torch

    if opts.process_backend != "auto":
        return opts.process_backend
    if device.startswith("cuda") and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_WORLD_SIZE", n_workers))
        if local <= torch.cuda.device_count():
            return "nccl"  # one GPU per rank; NCCL refuses two ranks on one GPU
    return "gloo"  # CPU, or several ranks sharing a GPU (gloo collectives take CUDA tensors)


def run_dist(config, options: Optional[DistOptions] = None, *, root=None, force: bool = False,
             resume: bool = True, quiet: bool = False, task: Optional[str] = None) -> Path:
    """Run (or reuse) the dist run of `config`; returns its directory results/train/<key>/.

    With `resume`, an unfinished run continues from its last checkpoint (a run stopped by a
    dead worker or a timeout says so). `task`: a Task factory "MODULE:FUNCTION" (lgc.api.load_task;
    every process rebuilds the Task from it) trained instead of the config's data and model; the
    run's key holds its fingerprint (lgc.fingerprint). Raises UserError (one line) when the run
    cannot finish.
    """
    import torch

    from lgc import runs
    from lgc.dist.launch import WorkerLost, bind_local, check_torchrun_world, is_rank0, launch_local, \
        run_torchrun, under_torchrun
    from lgc.dist.problem import TaskBlocks
    from lgc.dist.runner import DistJob
    from lgc.protocol import RUN_KIND, anytime_deadline, load_replay, make_timing

    opts = options or DistOptions()
    cfg = dataclasses.replace(config, backend="dist").resolved().validate()
    opts.validate(cfg.n_workers)
    check(algorithm_entry(cfg.algorithm).round_kind.in_dist,  # theory/round_kinds.py
          f"algorithm={cfg.algorithm} (round_end {algorithm_entry(cfg.algorithm).round_end!r}) runs in the sim "
          f"backend only (README, 'The optimal-time peers')")
    check(cfg.comm_alpha == 0 and cfg.comm_beta == 0,
          "comm_alpha/comm_beta model communication in sim; dist measures the real communication (set them to 0)")
    timing = make_timing(cfg)
    anytime_deadline(cfg, timing)  # an infinite default deadline is one line before the run directory exists
    replay = load_replay(cfg)
    device = "cuda" if (cfg.device == "auto" and torch.cuda.is_available()) else (
        "cpu" if cfg.device == "auto" else cfg.device)
    check(not device.startswith("cuda") or torch.cuda.is_available(), f"device={cfg.device!r} but CUDA is not available")
    if not under_torchrun():
        bind_local(opts.host)[0].close()  # a typo is one line now, before the run directory exists
    else:
        check_torchrun_world(cfg.n_workers)
    ident = {}
    if task is not None:  # every rank fingerprints the same Task: they agree on the run directory
        from lgc.fingerprint import run_key
        from lgc.api import load_task

        ident, why = run_key(load_task(task), n_workers=cfg.n_workers, data_seed=cfg.task.data_seed)
        check(why is None, f"--task {task}: {why}; a dist run needs the task's fingerprint (it names the run directory)")
    key = {**cfg.to_dict(), **ident, "dist": dataclasses.asdict(opts)}
    path = runs.run_dir(RUN_KIND, key, root)
    torchrun = under_torchrun()
    rank0 = is_rank0()
    if opts.on_worker_death == "straggler":
        check(not cfg.k_auto, "--on-worker-death straggler and --k auto: a dead worker would bound K; use one of them")
        check(not torchrun, "--on-worker-death straggler needs a local spawn (torchrun restarts are torchrun's)")
        check(algorithm_entry(cfg.algorithm).round_kind is not FULL and replay is None,
              "--on-worker-death straggler needs an algorithm with stragglers and no --schedule-file")
    with runs.locked(path) if rank0 else contextlib.nullcontext():  # rank 0 holds the run directory
        if runs.is_complete(path) and not force:
            return runs.reuse(path)
        rerun = force and runs.is_complete(path)  # into a staging folder; the finished run stays until it ends
        work = runs.staging_dir(path) if rerun else path
        has_ckpt = (path / "checkpoint.pt").exists()
        if rank0 and not (resume and has_ckpt and not force):
            if work.exists():
                shutil.rmtree(work)
            runs.start_run(work, {**key, "theory": cfg.theory_record()}, device)
        elif rank0 and resume and has_ckpt and not force:
            runs.say(f"resuming {path} from its checkpoint")
        settings = settings_from_config(cfg, opts, timing)
        job = DistJob(
            settings=settings, problem_builder=functools.partial(TaskBlocks, cfg.to_dict(), task=task), timing_model=timing,
            run_path=str(work), resume=resume and has_ckpt and not force, replay=replay,
            backend=_process_backend(opts, device, cfg.n_workers), device=device, threads=opts.threads,
            quiet=quiet, eval_every=cfg.eval_every, reduce=opts.reduce,
            final_extra={"unit_ms": opts.unit_ms, "inject": opts.inject, "theory": cfg.theory_record()})
        if job.resume:  # workers that died earlier stay permanent stragglers
            from lgc.checkpoint import load_checkpoint, validate_checkpoint

            ck = validate_checkpoint(load_checkpoint(path / "checkpoint.pt"), path / "checkpoint.pt", rounds=cfg.rounds)
            dead = ck.get("dead", [])
            check(isinstance(dead, list) and all(isinstance(i, int) and 0 <= i < cfg.n_workers for i in dead)
                  and len(set(dead)) == len(dead) and len(dead) < cfg.n_workers,
                  f"checkpoint {path / 'checkpoint.pt'}: dead={dead!r} must list distinct workers in 0..{cfg.n_workers - 1}")
            job = dataclasses.replace(job, dead=tuple(dead))
        if torchrun:
            run_torchrun(job)
        while not torchrun:
            try:
                launch_local(job, host=opts.host)
                break
            except WorkerLost as e:
                dead = tuple(sorted({*job.dead, e.worker}))
                if opts.on_worker_death != "straggler" or cfg.threshold_k > cfg.n_workers - len(dead):
                    raise
                sys.stderr.write(f"lgc train: {e}\nlgc train: continuing with worker {e.worker} as a permanent "
                                 f"straggler (dead: {', '.join(map(str, dead))})\n")
                job = dataclasses.replace(job, dead=dead, resume=(work / "checkpoint.pt").exists())
        if rerun and rank0 and runs.is_complete(work):
            runs.replace_dir(work, path)
        return path
