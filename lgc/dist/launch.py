"""Start the ranks: spawn N local processes (default) or join a `torchrun` launch.

Local spawn: this process hosts the rendezvous TCPStore on a socket it binds itself to the
rendezvous address (127.0.0.1 by default: reachable from this machine only; torch's own
server would listen on every interface), and gloo's connections use the loopback interface.
A --rendezvous-host that does not resolve within RESOLVE_TIMEOUT_S, or is not an address of
this machine, is one line before anything starts. This process watches its children. A child that dies (SIGKILL, a crash) or a run that makes no
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

from lgc.dist.coordinator import StoreInconsistent, read_errors, read_status, suspects
from lgc.dist.runner import DistJob, rank_main
from lgc.errors import UserError, check

EXIT_USER_ERROR = 2
EXIT_FAILED = 3
RESOLVE_TIMEOUT_S = 5.0  # a rendezvous host name that does not resolve within this fails


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


def is_rank0() -> bool:
    """False on the ranks other than 0 of a torchrun launch (rank 0 holds the run directory and reports)."""
    return not under_torchrun() or int(os.environ["RANK"]) == 0


def resolve_host(host: str, timeout_s: float = RESOLVE_TIMEOUT_S, *, name: str = "--rendezvous-host",
                 need: str = "a local spawn needs an address of this machine (default 127.0.0.1)") -> str:
    """The numeric address of `host` (the value of `name`); UserError (one line) when it does not resolve
    in time. Resolved here, not by c10d: c10d retried an unknown MASTER_ADDR for --timeout-s, printing a
    warning each time (46-113 lines before the error)."""
    import concurrent.futures
    import socket

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        infos = pool.submit(socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM).result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise UserError(f"{name} {host!r} did not resolve within {timeout_s:g} s ({need})") from None
    except (socket.gaierror, UnicodeError) as e:
        raise UserError(f"{name} {host!r} cannot be resolved ({getattr(e, 'strerror', None) or e}); {need}") from None
    finally:
        pool.shutdown(wait=False)
    return infos[0][4][0]


def bind_local(host: str):
    """(listening socket, address) on `host`'s address and a free port; UserError (one line) when
    the host does not resolve, is an unspecified address (0.0.0.0, ::: every interface, which the
    loopback default exists to avoid) or is not an address of this machine."""
    import ipaddress
    import socket

    addr = resolve_host(host)
    if ipaddress.ip_address(addr.split("%")[0]).is_unspecified:
        raise UserError(f"--rendezvous-host {host!r} ({addr}) is the unspecified address: the store would listen on "
                        f"every interface; give one address of this machine (default 127.0.0.1)")
    sock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((addr, 0))
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise UserError(f"--rendezvous-host {host!r} ({addr}) is not an address of this machine ({e.strerror}); "
                        f"a local spawn listens on it (default 127.0.0.1)") from None
    return sock, addr


def local_store(host: str, timeout_s: float):
    """(store, socket, address): the rendezvous TCPStore of a local spawn, served on a socket bound
    to `host`'s address only (never every interface); keep the socket open while the store lives."""
    sock, addr = bind_local(host)
    port = sock.getsockname()[1]
    store = dist.TCPStore(addr, port, world_size=None, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=timeout_s), master_listen_fd=sock.fileno())
    return store, sock, addr


def _child(job: DistJob, rank: int, world_size: int, host: str, port: int) -> None:
    """Entry point of a spawned worker process. A failure is reported to the launcher (one line
    in the store, the traceback in the run directory's worker<rank>.err), never printed: when a
    peer dies, every survivor fails too, and the launcher tells cause from consequence."""
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
    except Exception as e:  # reported by the launcher in one line; the traceback in a file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        try:
            store.set(f"{job.prefix}/error/{rank}", f"{type(e).__name__}: {msg}")
        except Exception:
            pass
        if job.run_path:
            try:
                (Path(job.run_path) / f"worker{rank}.err").write_text(traceback.format_exc())
            except OSError:
                pass
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
    store, sock, host = local_store(host, timeout_s)
    try:
        _launch(job, store, host, n, live, timeout_s)
    finally:
        sock.close()


def _launch(job: DistJob, store, host: str, n: int, live: list[int], timeout_s: float) -> None:
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
                try:
                    status = read_status(store, n, job.prefix, rounds=job.settings.rounds)
                except StoreInconsistent:
                    _stop_all(procs)
                    raise
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
        err_file = Path(job.run_path or ".") / f"worker{cause}.err"
        if job.run_path and err_file.exists():
            what += f" (traceback in {err_file})"
    live = live_workers(job)
    raise WorkerLost(
        f"dist worker {live[cause]} (pid {procs[cause].pid}) {what} during round {max(hb[cause], 0)}; "
        f"run stopped {time.monotonic() - t_fail + 0.05:.1f} s later; {_checkpoint_note(job)}", live[cause])


def torchrun_env() -> tuple[int, int, int, str, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) of a torchrun launch, each checked: a
    hand-set MASTER_PORT=abc was a traceback (one line naming the variable instead)."""
    def integer(var: str, lo: int, hi: int, default: str | None = None) -> int:
        text = os.environ.get(var, default)
        try:
            v = int(text)
        except (TypeError, ValueError):
            v = None
        check(v is not None and lo <= v <= hi, f"torchrun's environment: {var}={text!r} must be an integer in {lo}..{hi}")
        return v

    world = integer("WORLD_SIZE", 1, 2**31 - 1)
    rank = integer("RANK", 0, world - 1)
    local_rank = integer("LOCAL_RANK", 0, world - 1, default="0")
    port = integer("MASTER_PORT", 1, 65535)
    host = os.environ["MASTER_ADDR"]
    check(host.strip() != "", "torchrun's environment: MASTER_ADDR='' must name the rendezvous host")
    return rank, world, local_rank, host, port


def check_torchrun_world(n_workers: int, dead: tuple = ()) -> None:
    """torchrun must start one process per live worker: rank 0 says so in one line, the other
    ranks exit with the same status quietly (every rank finds the same mismatch)."""
    rank, world = torchrun_env()[:2]
    if world != n_workers - len(dead):
        if rank != 0:
            from lgc.errors import quiet_rank_exit_wait

            quiet_rank_exit_wait()  # rank 0's line first: torchrun stops every rank when one exits
            raise SystemExit(EXIT_USER_ERROR)
        raise UserError(f"torchrun started {world} processes (--nnodes x --nproc-per-node) but the run has "
                        f"N={n_workers} workers{f' ({len(dead)} dead)' if dead else ''}: dist runs one worker per "
                        f"process; start {n_workers - len(dead)} or pass --workers {world}")


def _torchrun_store(host: str, port: int, is_master: bool, timeout_s: float):
    """The rendezvous store of a torchrun launch; UserError (one line) for the rendezvous's own failures
    (they are not lost ranks): an unknown MASTER_ADDR, a MASTER_PORT in use, no store within the timeout."""
    addr = resolve_host(host, name="MASTER_ADDR", need="torchrun's --master-addr must name the rank-0 machine")
    try:
        return dist.TCPStore(addr, port, world_size=None, is_master=is_master, wait_for_workers=False,
                             timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, OSError) as e:  # DistNetworkError is a RuntimeError
        text = str(e)
        if "EADDRINUSE" in text or "address already in use" in text.lower():
            raise UserError(f"MASTER_PORT={port}: the port is in use on this machine (another run or process "
                            f"listens on it); give torchrun another --master-port") from None
        first = (text.strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"no rendezvous store at MASTER_ADDR={host} ({addr}) MASTER_PORT={port} within "
                        f"{timeout_s:g} s ({first}); is rank 0 running, and the address and port right?") from None


def run_torchrun(job: DistJob) -> None:
    """Run this process as one rank of a torchrun launch.

    A lost peer (its machine or launcher killed) makes every survivor fail in a collective or a
    store call within about --timeout-s: rank 0 (it holds the run directory) raises one line with
    the checkpoint to resume from; the other ranks exit quietly with status 3 (their own user
    errors, e.g. a missing data folder on their machine, are one line each)."""
    rank, world, local_rank, host, port = torchrun_env()
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    check_torchrun_world(job.settings.n_workers, job.dead)
    job = dataclasses.replace(job, prefix=f"{job.prefix}/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}",
                              keepalive=(host, port))
    try:
        store = _torchrun_store(host, port, rank == 0 and not agent_store, job.settings.timeout_s)
        rank_main(job, rank, world, store, local_rank=local_rank)
    except UserError as e:
        if rank == 0:
            raise
        sys.stderr.write(f"lgc train (rank {rank}): error: {e}\n")
        raise SystemExit(EXIT_USER_ERROR) from None
    except Exception as e:  # a peer is gone: the collectives and the store fail on every survivor
        if rank != 0:
            if job.run_path:
                try:
                    (Path(job.run_path) / f"worker{rank}.err").write_text(traceback.format_exc())
                except OSError:
                    pass
            raise SystemExit(EXIT_FAILED) from None
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise DistRunError(f"dist rank 0 lost the other ranks ({type(e).__name__}: {first}); "
                           f"{_checkpoint_note(job)}") from None
