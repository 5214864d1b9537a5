"""Start the ranks: spawn N local processes (default) or join a `torchrun` launch.

Local spawn: this process hosts the rendezvous TCPStore on 127.0.0.1 (loopback by default)
and watches its children. A child that dies (SIGKILL, a crash) or a run that makes no
progress for `timeout_s` ends the whole run within about `timeout_s` + 5 s, with one line
naming the worker and the checkpoint to resume from; never a silent hang.

torchrun: the RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT variables are detected; each
process is one worker and torchrun's agent watches the processes (its store is reused).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from lgc.dist.coordinator import heartbeats, read_errors, read_int
from lgc.dist.runner import DistJob, rank_main
from lgc.errors import UserError

EXIT_USER_ERROR = 2
EXIT_FAILED = 3


class DistRunError(UserError):
    """The run stopped: a worker died or a round timed out (one line, exit status 2)."""


def under_torchrun() -> bool:
    """True when this process was started by torchrun (or another env:// launcher)."""
    return all(v in os.environ for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


ALIVE_EVERY_S = 0.5
ALIVE_STALE_S = 2.0


def _keep_alive(host: str, port: int, key: str) -> None:
    """A thread that stamps `key` every ALIVE_EVERY_S: a frozen process (stopped, swapped out,
    its machine gone) stops stamping, one blocked in a collective does not."""
    store = dist.TCPStore(host, port, world_size=None, is_master=False, timeout=timedelta(seconds=10))
    while True:
        try:
            store.set(key, repr(time.time()))
        except Exception:
            return
        time.sleep(ALIVE_EVERY_S)


def _child(job: DistJob, rank: int, world_size: int, host: str, port: int) -> None:
    """Entry point of a spawned worker process."""
    import threading

    store = dist.TCPStore(host, port, world_size=None, is_master=False,
                          timeout=timedelta(seconds=job.settings.timeout_s))
    threading.Thread(target=_keep_alive, args=(host, port, f"{job.prefix}/alive/{rank}"), daemon=True).start()
    try:
        rank_main(job, rank, world_size, store)
    except UserError as e:
        store.set(f"{job.prefix}/error/{rank}", str(e))
        sys.exit(EXIT_USER_ERROR)
    except Exception as e:  # reported by the launcher in one line; details on stderr
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        try:
            store.set(f"{job.prefix}/error/{rank}", f"{type(e).__name__}: {msg}")
        except Exception:
            pass
        if not job.quiet:
            traceback.print_exc()
        sys.exit(EXIT_FAILED)


def _context():
    """forkserver: one clean server process imports torch and lgc once and forks the workers
    from it (fast repeated launches, no fork of a threaded parent); spawn where unavailable."""
    try:
        ctx = mp.get_context("forkserver")
    except ValueError:  # pragma: no cover - platforms without fork
        return mp.get_context("spawn")
    ctx.set_forkserver_preload(["torch", "torch.distributed", "lgc.dist.runner", "lgc.sim_task"])
    return ctx


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _stop_all(procs, grace_s: float = 2.0) -> None:
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.exitcode is None:
            p.kill()
            p.join(1.0)


def _checkpoint_note(job: DistJob) -> str:
    if not job.run_path or not (Path(job.run_path) / "checkpoint.pt").exists():
        return "no checkpoint yet: rerun to start over"
    import torch

    ck = torch.load(Path(job.run_path) / "checkpoint.pt", map_location="cpu", weights_only=True)
    return f"checkpoint at round {int(ck['round'])} in {job.run_path}: rerun with --resume to continue"


def launch_local(job: DistJob, *, host: str = "127.0.0.1") -> None:
    """Spawn N worker processes on this machine and wait for them; raise DistRunError on failure."""
    n = job.settings.n_workers
    timeout_s = job.settings.timeout_s
    store = dist.TCPStore(host, 0, world_size=None, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=timeout_s))
    ctx = _context()
    procs = [ctx.Process(target=_child, args=(job, r, n, host, store.port), name=f"lgc-dist-{r}") for r in range(n)]
    for p in procs:
        p.start()
    if job.run_path:
        from lgc.runs import atomic_write_json

        atomic_write_json(Path(job.run_path) / "workers.json",
                          {"pids": [p.pid for p in procs], "host": host, "port": store.port})
    started = time.monotonic()
    last_seen, last_change = None, started
    try:
        while True:
            codes = [p.exitcode for p in procs]
            if all(c == 0 for c in codes):
                return
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                _fail(job, store, procs, failed)
            # watchdog: every worker's heartbeat and rank 0's progress; a change resets it
            seen = (tuple(heartbeats(store, n, job.prefix)), read_int(store, f"{job.prefix}/progress"))
            now = time.monotonic()
            if seen != last_seen:
                last_seen, last_change = seen, now
            limit = timeout_s if seen[1] >= 0 or max(seen[0]) >= 0 else max(timeout_s, 120.0)
            if now - last_change > limit + 2.0:
                hb = list(seen[0])
                rnd = max(max(hb), 0)
                who = ", ".join(map(str, _suspects(store, n, job.prefix) or range(n)))
                _stop_all(procs)
                raise DistRunError(f"round {rnd} made no progress for {timeout_s:g} s (--timeout-s); "
                                   f"waiting for worker(s) {who}; {_checkpoint_note(job)}")
            time.sleep(0.05)
    except KeyboardInterrupt:
        _stop_all(procs)
        raise


def _fail(job: DistJob, store, procs, failed) -> None:
    """Stop every worker and raise one line naming the worker that caused the failure.

    The cause is, in order: a worker killed by a signal; a worker that reported a user error;
    a worker still alive but behind on its reports (hung: its peers timed out waiting for it);
    else the first worker that failed.
    """
    t_fail = time.monotonic()
    time.sleep(0.2)  # let the others' errors land, to tell cause from consequence
    n = len(procs)
    codes = [p.exitcode for p in procs]
    killed = [r for r in failed if codes[r] is not None and codes[r] < 0]
    errors = read_errors(store, range(n), job.prefix)
    user = [r for r in range(n) if codes[r] == EXIT_USER_ERROR and r in errors]
    hung = [r for r in _suspects(store, n, job.prefix) if codes[r] is None] if not (killed or user) else []
    hb = heartbeats(store, n, job.prefix)
    _stop_all(procs)
    if killed:
        cause = killed[0]
        what = _describe_exit(codes[cause])
    elif user:
        raise UserError(errors[user[0]])
    elif hung:
        cause = hung[0]
        what = f"sent no report for {job.settings.timeout_s:g} s (--timeout-s)"
    else:
        cause = failed[0]
        what = _describe_exit(codes[cause]) + (f": {errors[cause]}" if cause in errors else "")
    raise DistRunError(
        f"dist worker {cause} (pid {procs[cause].pid}) {what} during round {max(hb[cause], 0)}; "
        f"run stopped {time.monotonic() - t_fail + 0.05:.1f} s later; {_checkpoint_note(job)}")


def _suspects(store, n: int, prefix: str) -> list[int]:
    """The workers a stuck round waits for: frozen ones (stale keep-alive stamp) first, else
    the ones behind on their reports."""
    now = time.time()
    frozen = []
    for r in range(n):
        try:
            key = f"{prefix}/alive/{r}"
            if store.check([key]) and now - float(store.get(key).decode()) > ALIVE_STALE_S:
                frozen.append(r)
        except Exception:
            pass
    return frozen or _behind(store, n, prefix)


def _behind(store, n: int, prefix: str) -> list[int]:
    """Workers that have not reported the round the most advanced worker is in."""
    hb = heartbeats(store, n, prefix)
    top = max(hb)
    reports = [read_int(store, f"{prefix}/rep/{r}") for r in range(n)]
    return [r for r in range(n) if hb[r] < top or reports[r] < top]


def run_torchrun(job: DistJob) -> None:
    """Run this process as one rank of a torchrun launch."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(host, port, world_size=None, is_master=(rank == 0 and not agent_store),
                          wait_for_workers=False, timeout=timedelta(seconds=job.settings.timeout_s))
    job.prefix = f"{job.prefix}/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}"
    rank_main(job, rank, world, store, local_rank=local_rank)


def describe(job: DistJob) -> str:
    s = job.settings
    return json.dumps({"N": s.n_workers, "K": s.threshold_k, "M": s.blocks, "backend": job.backend,
                       "inject": s.inject, "unit_ms": s.unit_ms})
