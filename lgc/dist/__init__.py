"""The `dist` backend: LGC and its baselines on real processes through torch.distributed.

    path = run_dist(TrainConfig(..., backend="dist"), DistOptions(unit_ms=50))

spawns N local worker processes (gloo on CPU, NCCL when each rank has its own GPU), or,
started by `torchrun`, runs this process as one rank of a multi-machine job. The fast set is
decided by real arrival order through the rendezvous store (lgc.dist.coordinator), the
stragglers' partial work enters lgc.rules exactly as in `sim`, and gradients travel through
all-reduce. The run directory holds what `sim` writes plus trace.csv (every block's measured
time). Modules: coordinator (store protocol), worker (one rank's round), stopping (when a
worker stops its round), problem (the block gradient, from lgc.task), records (rank 0's files),
runner (a rank's life), launch (spawn / torchrun, watchdog), run (run_dist: options, replay,
run directory, launch).
"""
from __future__ import annotations

from lgc.config import DistOptions  # the dist options live beside TrainConfig (one vocabulary)
from lgc.dist.run import run_dist

__all__ = ["DistOptions", "run_dist"]
