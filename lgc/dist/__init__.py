"""The `dist` backend: LGC and its baselines on real processes through torch.distributed.

    path = run_dist(TrainConfig(..., backend="dist"), DistOptions(unit_ms=50))

spawns N local worker processes (gloo on CPU, NCCL when each rank has its own GPU), or,
started by `torchrun`, runs this process as one rank of a multi-machine job. The fast set is
decided by real arrival order through the rendezvous store (lgc.dist.coordinator), the
stragglers' partial work enters lgc.rules exactly as in `sim`, and gradients travel through
all-reduce. The run directory holds what `sim` writes plus trace.csv (every block's measured
time). Modules: coordinator (store protocol), worker (one rank's round), problem (the
block gradient, from lgc.task), records (rank 0's files), runner (a rank's life),
launch (spawn / torchrun, watchdog), run (run_dist: options, replay, run directory, launch).
"""
from __future__ import annotations

from dataclasses import dataclass

from lgc.errors import check

DIST_BACKENDS = ("auto", "gloo", "nccl")
REDUCE_MODES = ("auto", "gather", "allreduce")


@dataclass(frozen=True)
class DistOptions:
    """Options of the dist backend beyond TrainConfig (recorded in config.json under "dist").

    inject: sleep until the timing model's block finish times (injected stragglers); False
      (--no-inject) runs at the workers' real speeds.
    unit_ms: milliseconds per time unit (one fast mini-batch = 1 unit).
    timeout_s: a round that makes no progress for this long ends the run (one line naming
      the worker; the run ends within timeout_s + about 5 s).
    process_backend: "auto" (NCCL when every rank has its own GPU, else gloo), "gloo", "nccl".
    host: rendezvous address of a local spawn (loopback by default).
    threads: torch threads per worker process.
    slow_worker, slow_ms: a worker that sleeps slow_ms after each block, work the timing
      model does not know about (tests and demonstrations of real arrival order).
    on_worker_death: "stop" (default: the run ends with a message and a checkpoint) or
      "straggler" (a local run restarts from the last checkpoint without the dead worker,
      which becomes a permanent straggler: never in A_t, m_j = 0; needs K <= N - dead and
      an algorithm with stragglers, not full-sync).
    reduce: how the round's sums travel: "gather" (to rank 0, summed in rank order, then
      broadcast: two hops after the last straggler), "allreduce", or "auto" (gather for gloo
      on CPU when rank 0 can hold N buffers).
    """

    inject: bool = True
    unit_ms: float = 100.0
    timeout_s: float = 60.0
    process_backend: str = "auto"
    host: str = "127.0.0.1"
    threads: int = 1
    slow_worker: int = -1
    slow_ms: float = 0.0
    reduce: str = "auto"
    on_worker_death: str = "stop"

    def validate(self, n_workers: int) -> "DistOptions":
        check(self.unit_ms > 0, f"unit_ms={self.unit_ms} must be > 0")
        check(self.timeout_s > 0, f"timeout_s={self.timeout_s} must be > 0")
        check(self.process_backend in DIST_BACKENDS,
              f"dist backend {self.process_backend!r} must be one of {', '.join(DIST_BACKENDS)}")
        check(self.threads >= 1, f"threads={self.threads} must be >= 1")
        check(-1 <= self.slow_worker < n_workers, f"slow_worker={self.slow_worker} must be -1 or in 0..{n_workers - 1}")
        check(self.slow_ms >= 0, f"slow_ms={self.slow_ms} must be >= 0")
        check(self.reduce in REDUCE_MODES, f"reduce={self.reduce!r} must be one of {', '.join(REDUCE_MODES)}")
        check(self.on_worker_death in ("stop", "straggler"),
              f"on_worker_death={self.on_worker_death!r} must be 'stop' or 'straggler'")
        return self


def add_dist_arguments(p) -> None:
    """The dist backend's flags of `lgc train` (used with --backend dist)."""
    import argparse

    g = p.add_argument_group("dist backend (--backend dist)")
    g.add_argument("--inject", action=argparse.BooleanOptionalAction, default=True,
                   help="sleep until the timing model's block finish times (injected stragglers); "
                        "--no-inject runs at the workers' real speeds (default: inject)")
    g.add_argument("--unit-ms", type=float, default=100.0, metavar="MS",
                   help="milliseconds per time unit (one fast mini-batch) (default: 100)")
    g.add_argument("--timeout-s", type=float, default=60.0, metavar="SECONDS",
                   help="a round without progress for this long ends the run, naming the worker it "
                        "waits for; the run ends within about timeout + 5 s (default: 60)")
    g.add_argument("--dist-backend", choices=DIST_BACKENDS, default="auto",
                   help="process-group engine: auto (NCCL when every rank has its own GPU, else gloo)")
    g.add_argument("--rendezvous-host", default="127.0.0.1", metavar="ADDR",
                   help="rendezvous address of locally spawned workers (default: loopback)")
    g.add_argument("--dist-reduce", choices=REDUCE_MODES, default="auto",
                   help="how gradient sums travel: gather (to rank 0, then broadcast), allreduce, or auto "
                        "(gather for gloo on CPU)")
    g.add_argument("--on-worker-death", choices=("stop", "straggler"), default="stop",
                   help="stop: a dead or hung worker ends the run (resume with --resume); straggler: "
                        "continue from the last checkpoint with it as a permanent straggler (m_j = 0)")
    g.add_argument("--slow-worker", type=int, default=-1, metavar="I",
                   help="demo/test: worker I does extra work the timing model does not know about")
    g.add_argument("--slow-ms", type=float, default=0.0, metavar="MS",
                   help="demo/test: the extra work of --slow-worker, milliseconds of sleep per block")


def options_from_args(args) -> DistOptions:
    """DistOptions from `lgc train` flags (lgc/commands/train.py calls it for --backend dist)."""
    return DistOptions(
        inject=getattr(args, "inject", True), unit_ms=getattr(args, "unit_ms", 100.0),
        timeout_s=getattr(args, "timeout_s", 60.0), process_backend=getattr(args, "dist_backend", "auto"),
        host=getattr(args, "rendezvous_host", "127.0.0.1"), threads=getattr(args, "threads", None) or 1,
        slow_worker=getattr(args, "slow_worker", -1), slow_ms=getattr(args, "slow_ms", 0.0),
        reduce=getattr(args, "dist_reduce", "auto"), on_worker_death=getattr(args, "on_worker_death", "stop"))


def settings_from_config(cfg, opts: DistOptions, timing_model):
    """The round protocol's parameters from a resolved TrainConfig."""
    from lgc.dist.worker import DistSettings
    from lgc.protocol import anytime_deadline

    deadline = anytime_deadline(cfg, timing_model)
    return DistSettings(
        n_workers=cfg.n_workers, threshold_k=cfg.threshold_k, blocks=cfg.blocks, batch_size=cfg.batch_size,
        rounds=cfg.rounds, algorithm=cfg.algorithm, warmup_rounds=cfg.warmup_rounds, lr=cfg.lr,
        momentum=cfg.momentum, weight_decay=cfg.weight_decay, seed=cfg.seed,
        straggling_period=cfg.straggling_period, semantics=cfg.semantics, deadline=deadline,
        inject=opts.inject, unit_ms=opts.unit_ms, timeout_s=opts.timeout_s,
        checkpoint_every=cfg.checkpoint_every or cfg.rounds, slow_worker=opts.slow_worker,
        slow_ms=opts.slow_ms)


from lgc.dist.run import run_dist  # noqa: E402 (run.py reads DistOptions from here)

__all__ = ["DistOptions", "add_dist_arguments", "options_from_args", "run_dist", "settings_from_config"]
