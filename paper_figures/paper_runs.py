"""The paper profile's runs in one chunk (paper_figures/paper.py): the jobs trained in priority order through the
run cache (lgc.sim.train: a finished run is reused, an unfinished one resumes from its checkpoint) until the
chunk's time is spent, one at a time or in independent processes; the runs complete so far, returned.
"""
from __future__ import annotations

import time


def run_chunk(jobs, *, results, budget_s: float, quiet: bool, max_runs: int | None = None) -> tuple[list, int]:
    """Train jobs in order until the budget is spent; returns ([(job, dir)] complete, started)."""
    from lgc import runs
    from lgc.data.cifar10 import load_cifar10
    from lgc.sim import train

    began = time.perf_counter()
    done, started = [], 0
    loaded = {}  # CIFAR-10 once per chunk, not once per run (about 2 s each)
    for i, job in enumerate(jobs):
        path = runs.run_dir("train", job.config.resolved().to_dict(), results)
        if runs.is_complete(path):
            done.append((job, path))
            continue
        left = budget_s - (time.perf_counter() - began)
        if left < min(5.0, 0.1 * budget_s) or (max_runs is not None and started >= max_runs):
            break
        started += 1
        if not quiet:
            print(f"[{time.perf_counter() - began:6.0f} s] run {i + 1}/{len(jobs)} {', '.join(job.figures)} "
                  f"{job.config.algorithm} {job.tags} seed={job.config.seed} T={job.config.rounds}", flush=True)
        cfg = job.config
        data = None
        if cfg.task.dataset == "cifar10":
            key = (str(cfg.task.data_dir), cfg.task.accept_md5_mismatch)
            if key not in loaded:
                loaded[key] = load_cifar10(cfg.task.data_dir, accept_md5_mismatch=cfg.task.accept_md5_mismatch)
            data = loaded[key]
        path = train(cfg, root=results, quiet=True, time_limit_s=left, dataset=data)
        if runs.is_complete(path):
            done.append((job, path))
        else:
            break  # out of time: the run checkpointed; the next chunk resumes it
    # later jobs finished in earlier chunks still count for the figures
    seen = {id(j) for j, _ in done}
    for job in jobs:
        if id(job) not in seen:
            path = runs.run_dir("train", job.config.resolved().to_dict(), results)
            if runs.is_complete(path):
                done.append((job, path))
    return done, started


_LOADED: dict = {}  # CIFAR-10 once per worker process


def _train_one(cfg, results, left: float, threads):
    """One run in a worker process of run_chunk_parallel (one torch thread each)."""
    from lgc.data.cifar10 import load_cifar10
    from lgc.sim import train
    from lgc.threads import torch_threads

    key = (str(cfg.task.data_dir), cfg.task.accept_md5_mismatch)
    if cfg.task.dataset == "cifar10" and key not in _LOADED:
        _LOADED[key] = load_cifar10(cfg.task.data_dir, accept_md5_mismatch=cfg.task.accept_md5_mismatch)
    with torch_threads(threads):
        return str(train(cfg, root=results, quiet=True, time_limit_s=left, dataset=_LOADED.get(key)))


def run_chunk_parallel(jobs, *, results, budget_s: float, quiet: bool, processes: int, threads,
                       max_runs: int | None = None) -> tuple[list, int]:
    """run_chunk with `processes` independent runs at a time (spawned processes): each run starts
    with the time left of the chunk and checkpoints when it is spent."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from lgc import runs

    began = time.perf_counter()
    todo = [(i, j) for i, j in enumerate(jobs)
            if not runs.is_complete(runs.run_dir("train", j.config.resolved().to_dict(), results))]
    started, stop, flying = 0, False, {}
    with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
        while (todo and not stop) or flying:
            while todo and not stop and len(flying) < processes:
                left = budget_s - (time.perf_counter() - began)
                if left < min(5.0, 0.1 * budget_s) or (max_runs is not None and started >= max_runs):
                    stop = True
                    break
                i, job = todo.pop(0)
                started += 1
                if not quiet:
                    print(f"[{time.perf_counter() - began:6.0f} s] run {i + 1}/{len(jobs)} {', '.join(job.figures)} "
                          f"{job.config.algorithm} {job.tags} seed={job.config.seed} T={job.config.rounds}",
                          flush=True)
                flying[pool.submit(_train_one, job.config, results, left, threads)] = job
            if not flying:
                break
            finished, _ = wait(list(flying), return_when=FIRST_COMPLETED)
            for f in finished:
                job = flying.pop(f)
                if not runs.is_complete(f.result()):
                    stop = True  # out of time: the run checkpointed; the next chunk resumes it
    done = [(j, runs.run_dir("train", j.config.resolved().to_dict(), results)) for j in jobs]
    return [(j, p) for j, p in done if runs.is_complete(p)], started
