"""The life of one rank: join the process group, resume, run the rounds, record (rank 0)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist

from lgc.dist.coordinator import RoundCoordinator
from lgc.dist.records import RunRecorder
from lgc.dist.worker import DistSettings, Worker
from lgc.protocol import RunState, divergence_record, diverged, k_auto_summary, k_controller, round_record
from lgc.runs import finish_run
from theory.schedule import RoundSchedule


@dataclass
class DistJob:
    """Everything a rank needs; picklable, so the launcher can hand it to spawned processes.

    problem_builder(device) -> WorkerProblem builds the model and data inside the rank.
    """

    settings: DistSettings
    problem_builder: Callable[[str], Any]
    timing_model: Any
    run_path: Optional[str] = None
    resume: bool = False
    replay: Optional[Sequence[RoundSchedule]] = None
    backend: str = "gloo"
    device: str = "cpu"
    prefix: str = "lgc"
    threads: int = 1
    quiet: bool = True
    eval_every: int = 0
    reduce: str = "auto"  # "gather" (rank 0 sums, broadcasts), "allreduce", or "auto"
    keepalive: Optional[tuple] = None  # (host, port) of the store for the keep-alive thread
    dead: tuple = ()  # workers that died and are permanent stragglers (m_j = 0), no process
    final_extra: dict = field(default_factory=dict)


def _device_for(job: DistJob, local_rank: int) -> str:
    if job.device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


def rank_main(job: DistJob, rank: int, world_size: int, store, *, local_rank: Optional[int] = None) -> None:
    """Run the whole job as rank `rank` of `world_size` (one worker per rank)."""
    s = job.settings
    if world_size != s.n_workers - len(job.dead):
        raise ValueError(f"world size {world_size} != N={s.n_workers} minus {len(job.dead)} dead workers: "
                         "dist runs one worker per process")
    torch.set_num_threads(max(1, job.threads))
    device = _device_for(job, rank if local_rank is None else local_rank)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(job.backend, store=dist.PrefixStore(f"{job.prefix}/pg", store), rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=s.timeout_s))
    try:
        _run(job, rank, store, device)
    finally:
        dist.destroy_process_group()


def _run(job: DistJob, rank: int, store, device: str) -> None:
    s = job.settings
    coord = RoundCoordinator(store, rank, s.n_workers, prefix=job.prefix)
    if job.keepalive is not None:
        coord.start_keepalive(*job.keepalive)
    problem = job.problem_builder(device)
    state = RunState(w=problem.initial_params().to(device))
    recorder = RunRecorder(Path(job.run_path), s.n_workers, s.blocks) if (rank == 0 and job.run_path) else None
    if recorder is not None:
        recorder.dead = list(job.dead)
    # resume: rank 0 reads the checkpoint, every rank receives the same state
    payload = [recorder.load(s.rounds, state.w.numel()) if (recorder is not None and job.resume) else None]
    dist.broadcast_object_list(payload, src=0)
    if payload[0] is not None:
        state = RunState.from_checkpoint(payload[0], device)
    elif recorder is not None and hasattr(problem, "task"):
        from lgc.runs import atomic_write_json

        atomic_write_json(recorder.path / "data.json", problem.task.info())  # as lgc.sim.train writes it
    worker = Worker(rank, s, problem, coord, job.timing_model, replay=job.replay, device=device, dead=job.dead)
    worker.k_control = k_controller(s.config, 4.0 * state.w.numel())  # --k auto: every rank decides alike
    if worker.k_control is not None and payload[0] is not None:
        from lgc.errors import check

        check(isinstance(payload[0].get("k_auto"), dict), "checkpoint: lacks the --k auto state; rerun with --force")
        worker.k_control.load_state_dict(payload[0]["k_auto"])
    if recorder is not None:
        recorder.k_control = worker.k_control
    worker.reduce = _reduce_mode(job, state.w)
    if getattr(problem, "pi", None) is not None:
        worker.pi = np.asarray(problem.pi, dtype=np.float64)  # data-size weights when configured
    bar = None
    if rank == 0 and not job.quiet:
        from tqdm import tqdm

        bar = tqdm(total=s.rounds, initial=state.round, desc=f"dist {s.algorithm} K={'auto' if s.k_auto else s.threshold_k}",
                   unit="round", leave=False, file=sys.stderr)
    worker._sum_over_workers(torch.zeros(8, dtype=state.w.dtype, device=device))  # connect before round 0
    loop_start, loop_first = time.perf_counter(), state.round
    saved = time.monotonic()
    while state.round < s.rounds:
        t = state.round
        row = {"round": t, **(problem.iterate_metrics(state.w) if rank == 0 else {})}
        # rank 0's clock decides a time-based checkpoint; the request travels with its report
        worker.checkpoint_request = rank == 0 and s.checkpoint_every_s > 0 and \
            time.monotonic() - saved >= s.checkpoint_every_s
        res = worker.step(state)
        # every rank holds the same reports, loss and w_{t+1}: all of them take the same decisions
        stop = diverged({"loss": res.loss, "samples": res.samples}, state.w)
        save = stop or res.checkpoint or state.round % max(1, s.checkpoint_every) == 0 or state.round == s.rounds
        if rank == 0:
            row.update(round_record(s.algorithm, t < s.warmup_rounds, res.schedule, clock=state.clock,
                                    samples=res.samples, rho=res.rho, loss=res.loss, lr=s.lr))
            row["wall_s"] = res.wall_s
            if t == s.rounds - 1 or (job.eval_every and (t + 1) % job.eval_every == 0):
                row.update(problem.evaluate(state.w))
            if recorder is not None:
                recorder.add(row, res)
                if save:
                    recorder.save(state)
            if save:
                saved = time.monotonic()
            coord.set_progress(state.round)
            if state.round % 100 == 0:  # drop finished rounds' keys now and then
                for old in range(max(0, state.round - 200), state.round - 100):
                    coord.forget(old)
            if bar is not None:
                bar.update(1)
        if stop:
            break
        if save or t == s.rounds - 1 or (job.eval_every and (t + 1) % job.eval_every == 0) \
                or worker.last_refit is not None:
            dist.barrier()  # rank 0's extra work (every rank's refit) is done: the next round starts together
    loop_s = time.perf_counter() - loop_start
    if bar is not None:
        bar.close()
    if recorder is not None:
        rows = recorder.rounds
        walls = [float(r["wall_s"]) for r in rows]
        last = rows[-1] if rows else {}
        final = {"rounds": s.rounds, "time": state.clock, "wall_s": sum(walls),
                 "mean_round_wall_s": sum(walls) / len(walls) if walls else None,
                 **{k: float(last[k]) for k in ("loss", "test_loss", "test_acc") if last.get(k) not in (None, "")},
                 "loop_s": loop_s, "loop_rounds": state.round - loop_first,
                 **(k_auto_summary(worker.k_control) if worker.k_control is not None else {}),
                 **problem.iterate_metrics(state.w), **job.final_extra,
                 **(divergence_record(state.round - 1) if stop else {})}
        if stop:
            final["rounds"] = state.round
        finish_run(recorder.path, final)
    dist.barrier()  # every rank returns after final.json exists


GATHER_MAX_BYTES = 256 * 2**20  # rank 0 holds N buffers in "gather" mode


def _reduce_mode(job: DistJob, w: torch.Tensor) -> str:
    """gather + broadcast for gloo on CPU when rank 0 can hold every worker's buffer (fewer
    hops after the last straggler); all-reduce otherwise (NCCL, CUDA tensors, large models)."""
    if job.reduce != "auto":
        return job.reduce
    size = job.settings.n_workers * 2 * w.numel() * w.element_size()
    return "gather" if (job.backend == "gloo" and w.device.type == "cpu" and size <= GATHER_MAX_BYTES) else "allreduce"
