"""optimize-k at scale (N up to 10^6): memory O(N) with a small constant, and the same numbers as
before the chunked rewrite. tests/data/tradeoff_golden.json holds K*, the bound at K* and a SHA-256
of every K's bound, E[R], T, eta, time and terms (float64 bytes), recorded with the code before
the rewrite (commit d00151e; 200 Monte Carlo rounds, boundary semantics at N = 10 only: its chain
over rounds costs O(K N M) a round): any change of a single bit fails."""
import hashlib
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import theory.order_stats as order_stats
import theory.tradeoff as tradeoff_mod
from theory.timing import HeterogeneousSpeed, ShiftedExponential
from theory.tradeoff import Problem, tradeoff

GOLDEN = json.loads((Path(__file__).parent / "data" / "tradeoff_golden.json").read_text())


def _problem(n, semantics, timing="shifted-exp"):
    t = ShiftedExponential() if timing == "shifted-exp" else HeterogeneousSpeed(slowdown=4.0)
    return Problem(N=n, M=5, B=50, L=1.0, sigma2=1.0, zeta2=0.1, Delta=5.0, timing=t, h=10, semantics=semantics)


def _fingerprint(r):
    i = int(np.where(r.ks == r.k_star)[0][0])
    arrays = [r.bound, r.round_time, r.rounds, r.eta, r.time] + [r.terms[k] for k in sorted(r.terms)]
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in arrays)).hexdigest()
    return dict(k_star=r.k_star, bound_at_k_star=float(r.bound[i]).hex(), sha256=digest)


@pytest.mark.parametrize("case", [g["case"] for g in GOLDEN],
                         ids=lambda c: f"N{c['n']}-{c['alg']}-{c['sem']}-{c['timing']}-{c['crit']}{'-opt' if c['opt'] else ''}")
def test_k_star_and_bounds_are_bit_identical_to_the_recorded_ones(case):
    want = next(g["result"] for g in GOLDEN if g["case"] == case)
    kw = dict(budget=300.0) if case["crit"] == "budget" else dict(target=0.5)
    r = tradeoff(case["alg"], _problem(case["n"], case["sem"], case["timing"]), optimize_eta=case["opt"], seed=3,
                 rounds=200, **kw)
    assert _fingerprint(r) == want


@pytest.mark.parametrize("semantics", ["boundary", "abort"])
def test_chunks_do_not_change_a_bit(monkeypatch, semantics):
    """Chunks (64 K values in the Monte Carlo rounds, the BLAS-width multiple theory/order_stats.py
    asks for; 7 in the elementwise bound) give the numbers of one chunk, tail chunk included."""
    p = _problem(200 if semantics == "abort" else 20, semantics)
    whole = tradeoff("lgc", p, budget=300.0, rounds=5, seed=1)
    monkeypatch.setattr(order_stats, "CHUNK", 64)
    monkeypatch.setattr(tradeoff_mod, "BOUND_CHUNK", 7)
    parts = tradeoff("lgc", p, budget=300.0, rounds=5, seed=1)
    assert _fingerprint(parts) == _fingerprint(whole)
    assert np.array_equal(parts.m_mean, whole.m_mean) and np.array_equal(parts.round_time_se, whole.round_time_se)


def test_memory_is_linear_in_n_with_a_small_constant():
    """N = 10^5 (every K, abort semantics): the traced peak was 60 MB at commit d00151e (a (10, 7, N)
    batch-means array that abort does not use, (7, N) temporaries of the Welford update,
    (M + 1, N) level counts per round, the bound's temporaries over all 10^5 K at once, 8 corner
    arrays in the near-best interval); now about 40 MB, O(N) at about 400 bytes per K (the
    statistics, their standard errors and the result's columns), O(chunk) for the temporaries.
    Two Monte Carlo rounds: the peak does not depend on their number."""
    p = _problem(100_000, "abort")
    tracemalloc.start()
    try:
        r = tradeoff("lgc", p, budget=3000.0, rounds=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(r.ks) == 100_000 and 1 <= r.k_star <= 100_000
    assert peak < 50e6, f"traced peak {peak / 1e6:.1f} MB at N = 10^5"


def test_streamed_json_rows_are_the_rows_of_the_trade_off(capsys):
    """`optimize-k --json` writes its rows from the arrays a chunk at a time: the same numbers as
    Tradeoff.row, null where not finite (Pareto alpha = 0.5 under abort: E[R] infinite for K > 4)."""
    import io

    from lgc.cli import build_parser
    from lgc.commands import optimize_k
    from theory.jsonio import finite_or_none

    args = build_parser().parse_args(["optimize-k", "--workers", "6", "--L", "1", "--sigma2", "1", "--zeta2", "0.1",
                                      "--Delta", "5", "--timing", "pareto", "--timing-param", "alpha=0.5",
                                      "--semantics", "abort", "--json"])
    prob, const, res = optimize_k.compute(args)
    buf = io.StringIO()
    optimize_k.write_json(res, prob, const, buf, chunk=4)  # two chunks, the second a partial one
    doc = json.loads(buf.getvalue())
    assert doc == finite_or_none(optimize_k.to_json(res, prob, const))
    assert [r["E[R]"] is None for r in doc["rows"]] == [False] * 4 + [True] * 2
