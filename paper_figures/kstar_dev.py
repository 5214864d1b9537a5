"""The development grid of the error model's scalar-constants fallback (issue 21; DERIVATION.md 8.1, 8.4).

    python -m paper_figures.kstar_dev [--seeds 16] [--mu] [--csv FILE]

A development setting, not a check: this grid (its problems, timings and budgets) was fixed and committed
before the fallback for scalar constants (what `lgc optimize-k` models when the constants have no curvature
bands) was written, and the fallback was chosen on it alone. The checks that grade the fallback are
paper_figures/kstar_check.py's grids; none of their problems, timings, budgets or results shaped this grid
beyond being different from them on purpose (other seeds, N, d, curvature spectra, noise and dissimilarity
scales, timing laws and budgets).

Grid: N = 8 and 12 workers x four quadratics (d = 12) x three timings x two budgets x {fastest-k, lgc} = 96 cells,
with the K* check's machinery (paper_figures/kstar_check.run: M = 4, B = 16, abort semantics, plain SGD at
eta = 0.5 / L for every K, the same simulator, seeds and grading). Quadratics:

  logunif-H/N{n}    a shared Hessian, curvatures log-spaced in [0.01, 1] (most directions far below L);
  clusters-H/N{n}   a shared Hessian, three clusters of four curvatures near 1, 0.15 and 0.02;
  uniform-H/N{n}    per-worker curvatures h_ik ~ U(0.05, 1) (lgc's one-round delay matters);
  narrow-H/N{n}     a shared Hessian, curvatures evenly spaced in [0.35, 1] (one band at L is nearly right).

Timings: i.i.d. shifted exponential of rate 0.7 with fresh draws every round (h = 1); rate 1.5 held for
straggling periods of h = 10 rounds; heterogeneous speeds, 25% of the workers 2.5x slower (rate 1.5, fresh
noise every round). Budgets tau = 150 and 700.

Variants of the recommended K* per cell (graded as kstar_check grades them): (a) "scalar", optimize-k's model on
the scalar constants alone (whatever theory.predict_k.recommend does without bands); (b) "bands", each quadratic's
exact curvature bands (paper_figures/kstar_predict.exact_bands); (c) "one-band", one band at L holding every
constant (theory.predict.Bands.scalar, the naive baseline: the fallback before issue 21's scalar work).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from lgc.errors import UserError
from paper_figures import kstar_check as kc
from paper_figures import kstar_grade as kg
from paper_figures import kstar_predict as kp
from paper_figures.command import Parser, fail, prepare_output_file
from paper_figures.kstar_sim import Quadratic

WORKERS = (8, 12)
D = 12
BUDGETS = (150.0, 700.0)
SEEDS = 16
OUT = Path(__file__).resolve().parent / "out" / "kstar_dev"


def _shared(name, hbar, n, *, seed, spread, w0_scale, sigma2) -> Quadratic:
    rng = np.random.default_rng([seed, n, 6007])
    h = np.repeat(np.asarray(hbar, float)[None], n, 0)
    return Quadratic(h=h, c=rng.normal(0.0, spread, size=(n, len(hbar))), w0=rng.normal(0.0, w0_scale, size=len(hbar)),
                     sigma2=sigma2, name=name)


def problems(n: int, d: int = D) -> list[Quadratic]:
    """The grid's four quadratics with n workers (L = 1 exactly in each)."""
    rng = np.random.default_rng([n, 31337])
    clusters = np.repeat([1.0, 0.15, 0.02], -(-d // 3))[:d] * rng.uniform(0.8, 1.0, size=d)
    clusters[0] = 1.0
    h = rng.uniform(0.05, 1.0, size=(n, d))
    h[0, 0] = 1.0
    per = Quadratic(h=h, c=rng.normal(0.0, 0.8, size=(n, d)), w0=rng.normal(0.0, 1.5, size=d), sigma2=40.0,
                    name=f"uniform-H/N{n}")
    return [_shared(f"logunif-H/N{n}", np.geomspace(1.0, 0.01, d), n, seed=1, spread=1.2, w0_scale=2.5, sigma2=12.0),
            _shared(f"clusters-H/N{n}", clusters, n, seed=2, spread=2.0, w0_scale=1.0, sigma2=5.0),
            per,
            _shared(f"narrow-H/N{n}", np.linspace(1.0, 0.35, d), n, seed=3, spread=1.0, w0_scale=3.0, sigma2=20.0)]


def timings() -> list[tuple[str, object, float]]:
    """(label, timing model, straggling period h)."""
    from theory.timing import HeterogeneousSpeed, ShiftedExponential

    return [("iid h=1 rate 0.7", ShiftedExponential(shift=1.0, rate=0.7), 1),
            ("h=10 rate 1.5", ShiftedExponential(shift=1.0, rate=1.5), 10),
            ("hetero r=0.25 x2.5", HeterogeneousSpeed(slow_fraction=0.25, slowdown=2.5, shift=1.0, rate=1.5), 1)]


def predict(res, problem, prob, margin) -> dict:
    """kstar_predict.predict's variants (scalar constants, exact bands) and the naive one band at L."""
    from theory.predict import Bands
    from theory.predict_k import recommend

    return {**kp.predict(res, problem, prob, margin), "one-band": recommend(res, problem, Bands.scalar(problem.L))}


def run(*, seeds=SEEDS, strong=False, workers=WORKERS, budgets=BUDGETS, log=print) -> list:
    """Every cell of the grid, N = 8 first (kstar_check.Cell; each cell's N is len(cell.measured))."""
    cells = []
    for n in workers:
        cells += kc.run(seeds=seeds, budgets=budgets, n=n, strong=strong, grid=[(p, timings()) for p in problems(n)],
                        predict=predict, log=log)
    return cells


def summary_lines(cells) -> list:
    """Per variant and quantity over every cell: within 10% and beyond 15% of the best K, worse than the bound's K*,
    median R^2 (kstar_grade.predictive_summary)."""
    lines = []
    for q in kp.QUANTITIES:
        s = kg.predictive_summary(cells, q)
        lines.append(f"# all {len(cells)} cells, graded on the measured {kg.QUANTITY_NAMES[q]}")
        for v in ["bound"] + kg.variants(cells) + ["k_n", "k_half"]:
            x = s[v]
            extra = (f"; worse than the bound's K* in {x['worse_than_bound']}; R^2 median {x['r2_median']:.2f}"
                     if "r2_median" in x else "")
            lines.append(f"{kg.VARIANT_NAMES.get(v, v):>58}: within 10% {round(x['within_10'] * len(cells))}, "
                         f"beyond 15% {x['beyond_15']}, worst {x['worst']:.3f}, median {x['median']:.3f}{extra}")
    return lines


def main(argv=None) -> int:
    prog = "python -m paper_figures.kstar_dev"
    ap = Parser(prog=prog, description=__doc__.split("\n")[0], said=prog)
    ap.add_argument("--seeds", type=int, default=SEEDS)
    ap.add_argument("--mu", action="store_true", help="the bound (and the model) with each problem's exact mu")
    ap.add_argument("--csv", type=Path, default=None, help="default out/kstar_dev/kstar_dev[_mu].csv")
    args = ap.parse_args(argv)
    if args.seeds < 2:
        return fail(f"--seeds {args.seeds}: must be >= 2 (a standard error needs two seeds)", prog)
    path = args.csv or OUT / ("kstar_dev" + ("_mu" if args.mu else "") + ".csv")
    try:
        prepare_output_file(path)
    except UserError as e:
        return fail(str(e), prog)
    t0 = time.perf_counter()
    cells = run(seeds=args.seeds, strong=args.mu, log=lambda s: print(s, file=sys.stderr))
    kg.write_csv(cells, path)
    lines = [kg.table([c for c in cells if len(c.measured) == n]) for n in WORKERS] + summary_lines(cells)
    lines.append(f"csv: {path}  ({time.perf_counter() - t0:.0f} s)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    path.with_suffix(".txt").write_text(text)  # the printed report beside the CSV (out/kstar_dev/*.txt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
