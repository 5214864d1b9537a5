"""Benchmarks (not tests: timings on a shared machine are measurements, never assertions).

    python -m lgc.bench               the sim round vs a plain step vs a per-worker loop (`make bench`; sim_round.py)
    python -m lgc.bench.dist          dist coordination overhead (`make bench-dist`; dist.py)
    python -m lgc.bench.optimize_k    `lgc optimize-k` for N = 10,000 (optimize_k.py)
"""
