"""Start the ranks: spawn N local processes (default) or join a `torchrun` launch.

Local spawn: this process hosts the rendezvous TCPStore; the workers reach it on 127.0.0.1
(loopback by default) and gloo's connections use the loopback interface. (The store's
server socket itself listens on every interface: torch offers no bind address.) This
process watches its children. A child that dies (SIGKILL, a crash) or a run that makes no
progress for `timeout_s` ends the whole run within about `timeout_s` + 5 s, with one line
naming the worker and the checkpoint to resume from; never a silent hang.

torchrun: the RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT variables are detected; each
process is one worker and torchrun's agent watches the processes (its store is reused).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from lgc.dist.coordinator import read_errors, read_status, suspects
from lgc.dist.runner import DistJob, rank_main
from lgc.errors import UserError

EXIT_USER_ERROR = 2
EXIT_FAILED = 3


class DistRunError(UserError):
    """The run stopped: a worker died or a round timed out (one line, exit status 2)."""


class WorkerLost(DistRunError):
    """A worker died or hung; `worker` is its worker index (what --on-worker-death acts on)."""

    def __init__(self, message: str, worker: int):
        super().__init__(message)
        self.worker = worker


def live_workers(job: DistJob) -> list[int]:
    """Worker index of each process rank: every worker except the dead ones."""
    return [i for i in range(job.settings.n_workers) if i not in set(job.dead)]


def under_torchrun() -> bool:
    """True when this process was started by torchrun (or another env:// launcher)."""
    return all(v in os.environ for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def _child(job: DistJob, rank: int, world_size: int, host: str, port: int) -> None:
    """Entry point of a spawned worker process."""
    if host in ("127.0.0.1", "localhost", "::1") and "GLOO_SOCKET_IFNAME" not in os.environ \
            and os.path.exists("/sys/class/net/lo"):
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's pairs on loopback too, not the host's address
    store = dist.TCPStore(host, port, world_size=None, is_master=False,
                          timeout=timedelta(seconds=job.settings.timeout_s))
    job = dataclasses.replace(job, keepalive=(host, port))
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
    ctx.set_forkserver_preload(["torch", "torch.distributed", "lgc.dist.runner", "lgc.task"])
    return ctx


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _stop_all(procs, grace_s: float = 1.0) -> None:
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
    from lgc.checkpoint import load_checkpoint

    try:
        ck = load_checkpoint(Path(job.run_path) / "checkpoint.pt")
    except UserError as e:
        return f"{e}"
    return f"checkpoint at round {int(ck['round'])} in {job.run_path}: rerun with --resume to continue"


def launch_local(job: DistJob, *, host: str = "127.0.0.1") -> None:
    """Spawn N worker processes on this machine and wait for them; raise DistRunError on failure."""
    live = live_workers(job)
    n = len(live)  # processes
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
    last_seen, last_change, last_poll = None, started, 0.0
    try:
        while True:
            codes = [p.exitcode for p in procs]
            if all(c == 0 for c in codes):
                return
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                _fail(job, store, procs, failed)
            now = time.monotonic()
            if now - last_poll >= 0.5:  # the watchdog: any worker's round or report moves
                last_poll = now
                status = read_status(store, n, job.prefix)
                seen = tuple((st[1], st[2], st[3]) for st in status)
                if seen != last_seen:
                    last_seen, last_change = seen, now
                started_rounds = max(st[1] for st in status) >= 0
                limit = timeout_s if started_rounds else max(timeout_s, 120.0)  # startup: imports, data
                if now - last_change > limit + 2.0:
                    rnd = max(max(st[1] for st in status), 0)
                    late = suspects(status, time.time()) or list(range(n))
                    who = ", ".join(str(live[r]) for r in late)
                    _stop_all(procs)
                    raise WorkerLost(f"round {rnd} made no progress for {timeout_s:g} s (--timeout-s); "
                                     f"waiting for worker(s) {who}; {_checkpoint_note(job)}", live[late[0]])
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
    status = read_status(store, n, job.prefix)
    hung = [r for r in suspects(status, time.time()) if codes[r] is None] if not (killed or user) else []
    hb = [st[1] for st in status]
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
    live = live_workers(job)
    raise WorkerLost(
        f"dist worker {live[cause]} (pid {procs[cause].pid}) {what} during round {max(hb[cause], 0)}; "
        f"run stopped {time.monotonic() - t_fail + 0.05:.1f} s later; {_checkpoint_note(job)}", live[cause])


def run_torchrun(job: DistJob) -> None:
    """Run this process as one rank of a torchrun launch."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(host, port, world_size=None, is_master=(rank == 0 and not agent_store),
                          wait_for_workers=False, timeout=timedelta(seconds=job.settings.timeout_s))
    job = dataclasses.replace(job, prefix=f"{job.prefix}/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}",
                              keepalive=(host, port))
    rank_main(job, rank, world, store, local_rank=local_rank)
