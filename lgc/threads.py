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
