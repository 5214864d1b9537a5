"""A scope with a given number of torch intra-op threads, restored afterwards.

Small problems (the quadratics, softmax regression, seed-batched d = 10 vectors) run many
tiny ops; with more than one thread each op pays OpenMP synchronisation, which on a busy
2-core machine made them 10-100x slower (measured: 20 gradient evaluations of a 60-sample
softmax model, 0.015 s with 1 thread vs 1.8 s with 2 while another process used a core).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch


# `lgc train`'s sim default. Measured on this 2-core machine (shared, load 12-14), default
# TrainConfig (N=10, B=50, synthetic), ms per round with 1 vs 2 threads: mlp 29-32 vs 343-413,
# cnn 222-281 vs 1410-1560: one thread is 5-13x faster. resnet18 keeps torch's default.
SMALL_MODELS = ("softmax", "mlp", "cnn", "quadratic")


def default_threads(model: str) -> Optional[int]:
    """Intra-op threads for a run of `model` when --threads is not given (None: torch's default)."""
    return 1 if model in SMALL_MODELS else None


@contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with `n` intra-op threads (None: leave the setting alone)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
