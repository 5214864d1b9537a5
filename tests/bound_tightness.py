"""Bound / measured for every algorithm, per group of terms, on tests/bound_sim.py's problems: the
table of theory/DERIVATION.md section 4.6. Run: PYTHONPATH=. python tests/bound_tightness.py [eta L]

sigma2 = 0 leaves only the set terms, identical workers (zeta2 = 0) only the noise terms; runs start
at the minimizer (Delta = 0); median (max) over K = 1..N-1 and the largest terms' median shares; the
last column: the same with the set terms as Gram forms (A4G, DERIVATION.md 4.7; the problem's exact
envelope over the box every run of the row's group stayed in, logcosh: everywhere; over the runs' own
rounds, theory.gram.schedule_forms)."""
import sys

import numpy as np

from bound_sim import finish_times, make_problem, schedules, simulate, stats
from theory.bounds import evaluate
from theory.gram import schedule_forms
from theory.timing import HeterogeneousSpeed, ShiftedExponential
from theory.set_models import inclusion_from_timing

N, M, B, T, SEEDS = 6, 3, 6, 100, 16
TIMINGS = {"persistent h=5": (ShiftedExponential(), 5, "persistent"), "exchangeable h=1": (ShiftedExponential(), 1, "uniform"),
           "heterogeneous": (HeterogeneousSpeed(slow_fraction=0.5, slowdown=3.0, hold="speed"), 1, "independent")}
REGIMES = {"set only": dict(sigma2=0.0), "noise only": dict(same=True), "both": {}}


def main(eta_l=0.5):
    for kind in ("quadratic", "logcosh"):
        for tname, (timing, h, set_model) in TIMINGS.items():
            fin = finish_times(timing, n=N, m_blocks=M, rounds=T, seeds=SEEDS, h=h)
            inc = inclusion_from_timing(timing, N, M, h, np.arange(1, N + 1)) if set_model == "independent" else None
            for rname, kw in REGIMES.items():
                prob = make_problem(kind, n=N, seed=1, **kw)
                rows, runs = {}, []
                for k in range(1, N):
                    fast, blocks = schedules(fin, k, "abort")
                    for alg in ("fastest-k", "lgc", "lgc-fresh"):
                        meas, box = simulate(alg, prob, fast, blocks, k=k, b_size=B, m_blocks=M, eta=eta_l / prob.L,
                                             w0=prob.minimizer())
                        sm = set_model if alg == "fastest-k" else ("uniform" if set_model == "uniform" else "persistent")
                        extra = dict(set_bias=inc["set_bias"][k - 1], set_var=inc["set_var"][k - 1]) if sm == "independent" else {}
                        got = evaluate(alg, N=N, K=k, B=B, M=M, eta=eta_l / prob.L, T=T, h=h, set_model=sm, Delta=0.0,
                                       L=prob.L, sigma2=prob.sigma2, zeta2=prob.zeta2(box if kind == "quadratic" else None),
                                       delta=prob.delta(), **stats(fast, blocks), **extra)
                        rows.setdefault(alg, []).append((meas, float(got["total"]), {n: float(v) for n, v in got["terms"].items()}))
                        runs.append((k, alg, sm, extra, stats(fast, blocks), box, meas, fast, blocks))
                lo = np.min([r[5][0] for r in runs], axis=0)
                hi = np.max([r[5][1] for r in runs], axis=0)
                region = None if kind == "logcosh" else (lo, hi)
                env = prob.envelope(region)
                gram_ratio = {}
                for k, alg, sm, extra, st, _, meas, fast, blocks in runs:
                    got = evaluate(alg, N=N, K=k, B=B, M=M, eta=eta_l / prob.L, T=T, h=h, set_model=sm, Delta=0.0,
                                   L=prob.L, sigma2=prob.sigma2, zeta2=prob.zeta2(region), delta=prob.delta(), **st,
                                   **extra, **schedule_forms(fast, blocks, k, h, env))
                    gram_ratio.setdefault(alg, []).append(float(got["total"]) / meas)
                for alg, rs in rows.items():
                    ratio = [b / m for m, b, _ in rs]
                    shares = {n: np.median([t[n] / b for _, b, t in rs]) for n in rs[0][2]}
                    top = " ".join(f"{n} {v:.2f}" for n, v in sorted(shares.items(), key=lambda x: -x[1])[:3] if v > 0.005)
                    g = gram_ratio[alg]
                    print(f"{kind:9s} {tname:16s} {rname:10s} {alg:9s} {np.median(ratio):7.2f} ({max(ratio):7.2f})  {top}"
                          f"  | Gram {np.median(g):6.2f} ({max(g):6.2f})")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
