"""A measurement (not a test): the recommended K* of the error model (theory/predict.py) and the bound's K* against
the measured best K on quadratics made for it (not paper_figures/kstar_check.py's grids, not the model cells).

Per cell: tests/bound_sim.py's rules on a quadratic (N = 8, B = 8, M = 4, eta = 0.5 / L, w_0 constant, 60 seeds,
abort semantics, shifted-exponential timing with shift 1), every K run for T(K) = floor(tau / E[R(K)]) rounds,
the loss gap F(w_T) - F* measured; the cost of a K* is its measured gap over the best K's. Two grids:
  narrow: d = 3, curvatures U(0.3, 1), rate 0.5, tau 100 / 400, sigma2 2, spread 1.5, seeds 11 (shared Hessian), 12;
  wide:   d = 6, curvatures U(0.02, 1), rate 0.25, tau 60 / 200, sigma2 1, spread 1, seeds 21 (shared), 22;
each x (shifted-exponential timing at h = 1, 10, persistent; heterogeneous speeds, the first 2 of 8 workers 3 times
slower for ever, at h = 1, 10) x lgc, fastest-k x 2 budgets = 40 cells. The model is fed the scalar constants (one
band at L; zeta2 the larger of its values at w_0 and w*, as `lgc estimate` takes a max over points) or the exact
bands (one per coordinate: the workers' mean curvature, Delta_k, zeta2_k at w*, sigma2 / d), without the workers'
Gram matrix (isotropic deviations, eq. 8.2') and with it (eq. 8.2''): "gram" the bands with G = the deviations' Gram
matrix at w* split by the bands' shares (what `lgc estimate`'s constants give), "gram_j" one Gram matrix per band
(coordinate k's own a_k a_k^T: the exact surrogate where the Hessian is shared); "curv" the bands with each worker's
own curvature per coordinate (bands.workers = the workers' Hessian diagonals, eq. 8.5''), "curv_j" that with gram_j's
deviations (the exact surrogate of these diagonal quadratics, noise and the start's direction aside), "curv_g" that
with gram's one matrix (what paper_figures/kstar_predict.py's bands variant passes), all three with zeta2
the deviations' at w* (a_i(w) - a_i(w*) = (r_i - hbar) e is then the curvatures' part, not counted twice). R^2: the predicted gap curve over K
against the measured one, its median over the cells.

    python tests/predict_grid.py          # about 8 minutes on one core
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bound_sim import finish_times, make_problem, schedules, simulate  # noqa: E402

from theory.order_stats import expected_round_times  # noqa: E402
from theory.predict import Bands, predict_errors  # noqa: E402
from theory.predict_gram import model_gram  # noqa: E402
from theory.timing import HeterogeneousSpeed, ShiftedExponential  # noqa: E402
from theory.tradeoff import Problem, tradeoff  # noqa: E402

N, M, B, SEEDS = 8, 4, 8, 60
GRIDS = {"narrow": dict(d=3, curvature=(0.3, 1.0), rate=0.5, taus=(100, 400), w0=5.0, sigma2=2.0, spread=1.5,
                        seeds=(11, 12)),
         "wide": dict(d=6, curvature=(0.02, 1.0), rate=0.25, taus=(60, 200), w0=4.0, sigma2=1.0, spread=1.0,
                      seeds=(21, 22))}


VARIANTS = ("scalar", "bands", "gram", "gram_j", "curv", "curv_j", "curv_g", "bound")


def cells(g: dict):
    exp = ShiftedExponential(shift=1.0, rate=g["rate"])
    het = HeterogeneousSpeed(slow_fraction=0.25, slowdown=3.0, shift=1.0, rate=g["rate"])
    for seed, shared in zip(g["seeds"], (True, False)):
        p = make_problem("quadratic", n=N, d=g["d"], seed=seed, sigma2=g["sigma2"], spread=g["spread"],
                         curvature=g["curvature"])
        if shared:
            p.h[:] = p.h[0]
        w0, ws = np.full(g["d"], g["w0"]), p.minimizer()
        dev = lambda w: p.grads(w[None])[0] - p.grads(w[None])[0].mean(0)
        zeta2 = max(float((dev(w0) ** 2).sum(1).mean()), float((dev(ws) ** 2).sum(1).mean()))
        hk = p.h.mean(0)
        bands = Bands(h=tuple(hk), delta=tuple(hk / 2 * (w0 - ws) ** 2), sigma2=(1.0,) * g["d"],
                      zeta2=tuple((dev(ws) ** 2).mean(0)))
        const = dict(L=p.L, sigma2=g["sigma2"], zeta2=zeta2, Delta=p.value(w0) - p.value(ws))
        zeta2_star = float((dev(ws) ** 2).sum(1).mean())  # curv's deviations: at w* (eq. 8.5''a), the rest is r_i e
        a = dev(ws)
        gram = {"gram": model_gram(a @ a.T), "gram_j": np.stack([model_gram(np.outer(x, x)) for x in a.T])}
        curv = Bands(h=bands.h, delta=bands.delta, sigma2=bands.sigma2, zeta2=bands.zeta2, workers=tuple(map(tuple, p.h)))
        for tm, hs in ((exp, (1, 10, 10**9)), (het, (1, 10))):
            for h in hs:
                for alg in ("lgc", "fastest-k"):
                    for tau in g["taus"]:
                        yield dict(p=p, w0=w0, tm=tm, h=h, alg=alg, tau=tau, bands=bands, const=const, shared=shared,
                                   gram=gram, curv=curv, zeta2_star=zeta2_star)


def run_cell(c: dict) -> dict:
    p, tm, h, alg, tau, const = c["p"], c["tm"], c["h"], c["alg"], c["tau"], c["const"]
    ks = np.arange(1, N + 1)
    rt = expected_round_times(tm, N, M, alg, ks=ks, period=h)
    T = np.floor(tau / rt.mean).astype(int)
    eta = 0.5 / const["L"]
    meas = []
    for k in ks:
        fast, blocks = schedules(finish_times(tm, n=N, m_blocks=M, rounds=T[k - 1], seeds=SEEDS, h=h), k, "abort")
        out = {}
        simulate(alg, p, fast, blocks, k=k, b_size=B, m_blocks=M, eta=eta, w0=c["w0"], out=out)
        meas.append(out["gap"].mean())
    meas = np.array(meas)
    kw = dict(**const, N=N, M=M, B=B, timing=tm, h=h, ks=ks, rounds=T, eta=eta)
    prob = Problem(N=N, M=M, B=B, timing=tm, h=h, semantics="abort", **const)
    pred = {"scalar": predict_errors(alg, Bands.scalar(const["L"]), **kw), "bands": predict_errors(alg, c["bands"], **kw),
            **{n: predict_errors(alg, c["bands"], gram=g, **kw) for n, g in c["gram"].items()},
            **{n: predict_errors(alg, c["curv"], **{**kw, "zeta2": c["zeta2_star"]}, **g)
               for n, g in (("curv", {}), ("curv_j", dict(gram=c["gram"]["gram_j"])), ("curv_g", dict(gram=c["gram"]["gram"])))}}
    k = {**{n: p.k_star() for n, p in pred.items()}, "bound": tradeoff(alg, prob, budget=tau, eta=eta, round_times=rt).k_star}
    r2 = {n: 1 - float(((meas - p.gap) ** 2).sum() / ((meas - meas.mean()) ** 2).sum()) for n, p in pred.items()}
    return dict(best=int(np.argmin(meas)) + 1, k=k, cost={n: float(meas[v - 1] / meas.min()) for n, v in k.items()},
                r2=r2)


def main() -> int:
    for name, g in GRIDS.items():
        rows = []
        for c in cells(g):
            r = run_cell(c)
            rows.append(r)
            print(f"{name} shared={c['shared']!s:5} {c['tm'].name[:4]} h={c['h']:<10} {c['alg']:9} tau={c['tau']:<4} "
                  f"best K={r['best']} " + "  ".join(f"{n} K={r['k'][n]} ({r['cost'][n]:.3f})" for n in r["k"])
                  + "  R2 " + " ".join(f"{v:.2f}" for v in r["r2"].values()), flush=True)
        for n in VARIANTS:
            v = np.array([r["cost"][n] for r in rows])
            r2 = np.median([r["r2"][n] for r in rows]) if n != "bound" else float("nan")
            print(f"{name}: {n:6} within 10% {np.sum(v <= 1.1)}/{len(v)}, beyond 15% {np.sum(v > 1.15)}, "
                  f"median {np.median(v):.3f}, worst {v.max():.3f}, median R^2 of the gap curve {r2:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
