"""Benchmark (not a test): `lgc optimize-k` for N = 10,000 (README "Targets and guarantees": under
1 s after imports, under 3 s end to end) or any --workers N (N = 10^6: O(N) memory, the Monte Carlo
with a bar on a terminal). Prints both times as medians of a few runs, and the in-process call's CPU time (on a
shared machine the wall time also counts other jobs' turns). Max RSS: run
`/usr/bin/time -v python -m lgc optimize-k ...` (a child's ru_maxrss here counts the benchmark's own).

    python -m lgc.bench.optimize_k [--workers 10000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", "--n", dest="n", type=int, default=10_000, metavar="N")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    flags = ["optimize-k", "--workers", str(a.n), "--L", "1", "--sigma2", "1", "--zeta2", "0.1", "--Delta", "5",
             "--straggling-period", "10", "--budget", "3000", "--json"]
    from lgc.cli import build_parser
    from lgc.commands import optimize_k
    from lgc.commands._optimize_k_output import write_json

    inproc, cpu, e2e = [], [], []
    for _ in range(a.repeats):
        args = build_parser().parse_args(flags)
        t0, c0 = time.perf_counter(), time.process_time()
        # what the command does after its imports: the trade-off, the error model's K* (computed once, inside
        # theory.optimize_k; DERIVATION.md section 8) and the JSON it prints
        kstar = optimize_k.compute_kstar(args)
        write_json(kstar.tradeoff, kstar.problem, kstar.constants, io.StringIO(), rec=kstar.recommendation)
        inproc.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "lgc", *flags], cwd=ROOT, capture_output=True, text=True)
        e2e.append(time.perf_counter() - t0)
        assert r.returncode == 0, r.stderr
    print(f"optimize-k N={a.n}: after imports {statistics.median(inproc):.3f} s (target < 1 s; CPU "
          f"{statistics.median(cpu):.3f} s), "
          f"end to end {statistics.median(e2e):.3f} s (target < 3 s); runs: "
          f"{', '.join(f'{x:.3f}' for x in inproc)} | {', '.join(f'{x:.3f}' for x in e2e)}; K* = {kstar.k_star} (the bound's {kstar.k_star_bound})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
