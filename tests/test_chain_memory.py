"""The boundary semantics' Markov chain (eq. 2.3') in O(N M + |ks|) memory and bounded time (issue 24 item 3):
`optimize-k --workers 100000 --semantics boundary` grew to 24 GB before it was killed."""
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import theory.round_stats as rs
from theory.errors import TheoryInputError
from theory.order_stats import expected_round_times, round_stats
from theory.timing import ShiftedExponential


def test_chain_memory_is_one_chunk_of_k_not_every_k():
    """All K at N = 600, M = 4: 51 MB held every K's offsets and one (|ks|, N, M) block; one chunk of K
    (CHAIN_BUDGET floats per array) and the per-K sums are a few MB."""
    tracemalloc.start()
    round_stats(ShiftedExponential(), 600, 4, semantics="boundary", rounds=2, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB"


def test_chunks_of_k_change_no_bit(monkeypatch):
    """The chains are independent per K: running them a chunk at a time gives the same floats."""
    model, n, m = ShiftedExponential(), 40, 3
    whole = round_stats(model, n, m, semantics="boundary", rounds=12, seed=2, period=3, comm=0.1)
    monkeypatch.setattr(rs, "CHAIN_BUDGET", 7 * n * m)  # chunks of 7 K
    seen = []
    parts = round_stats(model, n, m, semantics="boundary", rounds=12, seed=2, period=3, comm=0.1, progress=seen.append)
    for f in ("t_cut", "wall", "wall_se", "m_mean", "m_inv", "zero_frac", "excess", "excess_se", "wait"):
        assert np.array_equal(getattr(whole, f), getattr(parts, f)), f
    assert seen == sorted(set(seen)) and seen[-1] == 12  # a progress bar over the chunks, ending at the rounds


def test_a_chain_too_large_is_refused_in_one_line():
    with pytest.raises(TheoryInputError, match=r"boundary semantics at N=100000, M=4: .* over the limit .*--semantics abort"):
        expected_round_times(ShiftedExponential(), 100_000, 4, "lgc", semantics="boundary")
    fine = expected_round_times(ShiftedExponential(), 100_000, 4, "lgc", semantics="boundary", ks=[70_000], rounds=2)
    assert fine.mean.shape == (1,) and np.isfinite(fine.mean[0]) and fine.se[0] > 0


def test_optimize_k_at_n_100000_boundary_refuses_at_once():
    cmd = [sys.executable, "-m", "lgc", "optimize-k", "--workers", "100000", "--blocks", "4", "--batch-size", "8",
           "--L", "1", "--sigma2", "1", "--zeta2", "1", "--Delta", "1", "--budget", "1000", "--semantics", "boundary"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "N=100000" in p.stderr and "--ks" in p.stderr, p.stderr
