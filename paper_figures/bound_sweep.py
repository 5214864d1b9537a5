"""A wide check of the bounds against measurement (not part of `make figures`; about a minute):

    python -m paper_figures.bound_sweep [--seeds 10] [--rounds 200]

For fastest-K, LGC and LGC-fresh on the quadratics (N = 8, d = 10, H = diag(0.1..1), B = 16,
M = 4), over sigma^2 x spread x eta x straggling period x semantics x K x timing model, it
measures the mean of (1/T) sum_t ||grad F(w_t)||^2 (lgc/validate.py) and evaluates the bound
(theory/bounds.py) with the straggler statistics of the same schedules and the set-change
period and set model theory/tradeoff.py assigns to the timing model. Under abort semantics it
also evaluates the bound with the set terms as Gram forms (A4G, theory/DERIVATION.md section 4.7;
the quadratic's exact Gram matrix, over the same schedules' rounds as the straggler statistics:
theory/gram.py schedule_forms): column bound_gram. Prints the smallest
bound / measured ratios and the number of violations (ratio < 1) of both; writes a tidy CSV.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from theory.algorithms import BOUND_NAMES
from theory.algorithms import algorithm as algorithm_entry

N, DIM, B, M = 8, 10, 16, 4
SWEPT = tuple(a for a in BOUND_NAMES if algorithm_entry(a).waits_for_k)  # bounded, with stragglers
PERSISTENT = 10**6
KS = (1, 3, 6)
OUT = Path(__file__).resolve().parent / "out" / "bound_sweep.csv"


def timing_models() -> dict:
    from theory.timing_factory import make_timing_model

    return {
        "shifted-exp": make_timing_model("shifted-exp"),
        "heterogeneous (fixed slow set)": make_timing_model("heterogeneous", slow_fraction=0.25, slowdown=4.0),
        "heterogeneous (speeds held, noise redrawn)": make_timing_model(
            "heterogeneous", slow_fraction=0.25, slowdown=4.0, hold="speed"),
        "pareto": make_timing_model("pareto", alpha=2.0),
        "lognormal": make_timing_model("lognormal", sigma=1.0),
    }


def sweep(seeds: int, rounds: int) -> list[dict]:
    from lgc.data.synthetic import make_quadratic
    from lgc.validate import block_noise, make_schedules, measure
    from paper_figures.kstar_sim import from_shared
    from theory import bounds
    from theory.gram import schedule_forms
    from theory.round_stats import straggler_statistics
    from theory.set_models import fastest_k_set_model, set_change_period

    seed_list = list(range(seeds))
    rows = []
    models = timing_models()
    for sigma2, spread in itertools.product((1.0, 30.0), (0.3, 3.0)):
        quad = make_quadratic(N, DIM, seed=1, h_min=0.1, h_max=1.0, spread=spread, sigma2=sigma2)
        noise = block_noise(quad, seed_list, rounds, batch=B, blocks=M)
        envelope = from_shared(quad).dissimilarity()  # a shared Hessian: G is constant, exact
        for (name, timing), period, semantics in itertools.product(models.items(), (1, 10, PERSISTENT),
                                                                    ("boundary", "abort")):
            if semantics == "abort" and name != "shifted-exp":
                continue
            h = set_change_period(timing, np.inf if period == PERSISTENT else period)
            for k in KS:
                sched = make_schedules(timing, seed_list, rounds, N, M, k, period=period, semantics=semantics)
                stats = straggler_statistics(sched.fast, sched.blocks_done)
                forms = schedule_forms(sched.fast, sched.blocks_done, k, h, envelope) if semantics == "abort" else None
                for alg, eta in itertools.product(SWEPT, (0.05, 0.15)):
                    m = measure(quad, alg, sched, batch=B, blocks=M, lr=eta, seeds=seed_list, noise=noise)
                    set_model = fastest_k_set_model(timing, h) if algorithm_entry(alg).waits_for_k else "persistent"
                    kw = dict(N=N, K=k, B=B, M=M, eta=eta, T=rounds, h=h, m_inv=stats["m_inv"],
                              zero_frac=stats["zero_frac"], set_model=set_model, **quad.constants())
                    b = float(bounds.evaluate(alg, **kw)["total"])
                    bg = b if forms is None else float(bounds.evaluate(alg, **kw, **forms)["total"])
                    rows.append({"algorithm": alg, "K": k, "timing": name, "period": period, "semantics": semantics,
                                 "sigma2": sigma2, "spread": spread, "eta": eta, "set_model": set_model,
                                 "bound": b, "bound_gram": bg, "measured": m.mean, "measured_se": m.sem,
                                 "ratio": b / m.mean, "ratio_gram": bg / m.mean})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m paper_figures.bound_sweep", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    from lgc.runs import atomic_write_csv
    from lgc.threads import torch_threads

    t0 = time.perf_counter()
    with torch_threads(1):
        rows = sweep(args.seeds, args.rounds)
    atomic_write_csv(args.out, rows, list(rows[0]))
    rows.sort(key=lambda r: r["ratio"])
    print(f"{len(rows)} configurations, {args.seeds} seeds, T = {args.rounds}, {time.perf_counter() - t0:.0f} s; "
          f"violations (bound < measured): {sum(r['ratio'] < 1 for r in rows)}; with the Gram forms: "
          f"{sum(r['ratio_gram'] < 1 for r in rows)}")
    for alg in SWEPT:
        r = [x["ratio"] for x in rows if x["algorithm"] == alg]
        g = [x["ratio_gram"] for x in rows if x["algorithm"] == alg and x["semantics"] == "abort"]
        print(f"  {alg:<10} bound/measured: min {min(r):.2f}, median {np.median(r):.2f}, max {max(r):.1f}; "
              f"Gram forms (abort): min {min(g):.2f}, median {np.median(g):.2f}, max {max(g):.1f}")
    print("tightest:")
    for r in rows[:5]:
        print(f"  {r['ratio']:.3f}  {r['algorithm']} K={r['K']} {r['timing']} h={r['period']} {r['semantics']} "
              f"sigma2={r['sigma2']} spread={r['spread']} eta={r['eta']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
