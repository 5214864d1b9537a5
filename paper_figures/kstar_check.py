"""Does `lgc optimize-k`'s K* deserve trust? A check on a grid held out from any tuning.

    python -m paper_figures.kstar_check [--seeds 20] [--aligned | --grid second] [--mu] [--csv FILE]
                                        [--eta-mode fixed|optimized]

Grid: two non-IID quadratics with exactly known constants ("shared-H": lgc's own quadratic,
one Hessian for all workers, delta = 0; "per-worker-H": every worker its own curvatures, so
lgc's one-round delay matters) x three timings (i.i.d. shifted exponential with fresh draws
every round, h = 1; the same held for the whole run, "persistent"; heterogeneous speeds: 30%
of the workers 4x slower, fresh noise every round) x three budgets tau x {fastest-k, lgc};
N = 10, M = 4, B = 16, abort semantics (R_t = t_cut), plain SGD (momentum 0, no warm-up), the
same step size eta for every K (optimize-k's default 0.5/L; --eta-mode optimized: optimize-k
--optimize-eta's per-K step, and the runs use it).

Per cell: K* from optimize-k's code path (theory.tradeoff.tradeoff with the bounds of
theory/bounds.py, the timing model and the constants as known, budget criterion); the measured
error of every K, the bound's quantity (1/T) sum_{t<T} ||grad F(w_t)||^2 over the rounds that end
within the budget (sum R_t <= tau), mean over seeds; the best measured K with its seed-to-seed
standard error; and ratio = measured(K*) / measured(best). Target: >= 90% of cells within 10%,
none beyond 15%. --mu: K* also from the strong-convexity bound (theory/strong.py, DERIVATION.md 4.8) with
each quadratic's exact mu (min_k hbar_k), its Gram matrix at w*, slopes h_ik - hbar_k and Hessian diag(hbar),
through the same code path for every cell (optimize-k's with mu given). The simulation is paper_figures/kstar_sim.py (every K and seed at once).

Per cell also the recommended K* (`lgc optimize-k`'s error model, theory/predict.py, DERIVATION.md section 8) in two
variants, scalar constants and the quadratic's exact curvature bands (paper_figures/kstar_predict.py), graded on the
quantity it predicts: mean ||grad F||^2 within the budget (eq. 8.8, what the grid measures for the bound) and the
final loss gap F(w_T) - F* (eq. 8.7, optimize-k's k_star), which the check measures too; with R^2 of each predicted
curve over K against the measured one.

--grid second: a second grid, made after the strong-convexity forms were developed on the first one and
never used to shape them: other problem seeds, curvatures h_ik ~ U(0.3, 1), spread 1.5, sigma^2 = 20, w_0 at
scale 3; timing rate 2 (i.i.d. and persistent) and 20% of the workers 3x slower; budgets 120, 480, 1500.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lgc.errors import UserError
from paper_figures import kstar_predict as kp
from paper_figures.command import Parser, fail, prepare_output_file
from paper_figures.kstar_grade import diagnosis, table, write_csv
from paper_figures.kstar_sim import Quadratic, budget_final, budget_mean, draw_times, from_shared, schedule, simulate
from theory.algorithms import K_RULES

N, M, B, D = 10, 4, 16, 10
ETA_L = 0.5  # optimize-k's default step size eta = 0.5 / L
PERSISTENT = 10**6  # a straggling period longer than any run
BUDGETS = (60.0, 240.0, 960.0)
SEEDS = 20
ALGORITHMS = K_RULES
OUT = Path(__file__).resolve().parent / "out" / "kstar_check"


def _two_quadratics(n, d, *, shared_seed, shared_h_min, spread, sigma2, rng_seed, h_min, w0_scale):
    """A grid's two kinds of quadratic: "shared-H" (lgc's own, one Hessian) and "per-worker-H"
    (h_ik ~ U(h_min, 1), optima at scale `spread`, w_0 at scale `w0_scale`)."""
    from lgc.data.synthetic import make_quadratic

    shared = from_shared(make_quadratic(n, d, seed=shared_seed, h_min=shared_h_min, h_max=1.0, spread=spread,
                                        sigma2=sigma2))
    rng = np.random.default_rng(rng_seed)
    h = rng.uniform(h_min, 1.0, size=(n, d))
    h[0, 0] = 1.0  # L = 1 exactly
    c = rng.normal(0.0, spread, size=(n, d))
    per = Quadratic(h=h, c=c, w0=rng.normal(0.0, w0_scale, size=d), sigma2=sigma2, name="per-worker-H")
    return [shared, per]


def problems(n: int = N, d: int = D) -> list[Quadratic]:
    return _two_quadratics(n, d, shared_seed=0, shared_h_min=0.1, spread=1.0, sigma2=30.0, rng_seed=[1, 2718],
                           h_min=0.2, w0_scale=2.0)


def second_problems(n: int = N, d: int = D) -> list[Quadratic]:
    """--grid second's quadratics: the same two kinds with other seeds and scales."""
    return _two_quadratics(n, d, shared_seed=11, shared_h_min=0.2, spread=1.5, sigma2=20.0, rng_seed=[9, 4242],
                           h_min=0.3, w0_scale=3.0)


def second_timings() -> list[tuple[str, object, float]]:
    from theory.timing import HeterogeneousSpeed, ShiftedExponential

    base = ShiftedExponential(shift=1.0, rate=2.0)
    return [("iid h=1 rate 2", base, 1), ("persistent rate 2", base, PERSISTENT),
            ("hetero r=0.2 x3", HeterogeneousSpeed(slow_fraction=0.2, slowdown=3.0, shift=1.0, rate=1.0), 1)]


SECOND_BUDGETS = (120.0, 480.0, 1500.0)


def aligned_problem(n: int = N, d: int = D) -> Quadratic:
    """Lemma 2's worst case for heterogeneous speeds (theory/DERIVATION.md 4.8, 5.7): shared-H's Hessian and
    zeta^2, the workers' optima cbar + 7 v on the slow 30% and cbar - 3 v on the others (N = 10), so the
    fast set's mean dissimilarity is as large as zeta^2 allows. Not part of the held-out grid (--aligned)."""
    shared = problems(n, d)[0]
    n_slow = int(round(0.3 * n))
    v = np.random.default_rng(5).normal(size=d)
    hv = shared.h[0] * v
    w_slow, w_fast = n - n_slow, n_slow  # sum_i (c_i - cbar) = 0
    v = v * np.sqrt(shared.zeta2() / ((n_slow * w_slow**2 + (n - n_slow) * w_fast**2) / n * (hv @ hv)))
    c = np.array([shared.w_star + (w_slow if i < n_slow else -w_fast) * v for i in range(n)])
    return Quadratic(h=shared.h, c=c, w0=shared.w0, sigma2=shared.sigma2, name="aligned")


def timings() -> list[tuple[str, object, float]]:
    """(label, timing model, straggling period h)."""
    from theory.timing import HeterogeneousSpeed, ShiftedExponential

    base = ShiftedExponential(shift=1.0, rate=1.0)
    return [("iid h=1", base, 1), ("persistent", base, PERSISTENT),
            ("hetero r=0.3 x4", HeterogeneousSpeed(slow_fraction=0.3, slowdown=4.0, shift=1.0, rate=1.0), 1)]


@dataclass
class Cell:
    problem: str
    timing: str
    tau: float
    algorithm: str
    k_star: int
    k_near: list  # every K whose bound is within the Monte Carlo error of the best
    eta: np.ndarray  # per K, the step the runs use
    measured: np.ndarray  # per K, mean over seeds
    se: np.ndarray  # per K, seed-to-seed standard error
    rounds: np.ndarray  # per K, mean rounds within the budget
    bound: np.ndarray
    terms: dict = None  # the bound's terms per K
    gap: np.ndarray = None  # per K, the final loss gap F(w_T) - F* (mean over seeds)
    gap_se: np.ndarray = None
    predicted: dict = None  # (variant, quantity) -> the error model's curve per K (kstar_predict)

    @property
    def best(self) -> int:
        return int(np.argmin(self.measured)) + 1

    @property
    def ratio(self) -> float:
        return float(self.measured[self.k_star - 1] / self.measured[self.best - 1])

    def curve(self, quantity: str) -> np.ndarray:
        """The measured quantity per K: "grad2" (the bound's, mean ||grad F||^2 within the budget) or "gap"."""
        return self.measured if quantity == "grad2" else self.gap

    def k_pred(self, variant: str, quantity: str) -> int:
        """The error model's K* by the least predicted `quantity` (ties to the larger K, as Prediction.k_star)."""
        v = np.where(np.isfinite(self.predicted[variant, quantity]), self.predicted[variant, quantity], np.inf)
        return int(np.flatnonzero(v == v.min())[-1]) + 1

    def cost(self, k: int, quantity: str = "grad2") -> float:
        """measured(K) / measured(the best K) of `quantity`."""
        m = self.curve(quantity)
        return float(m[k - 1] / m.min())


def k_star(algorithm, prob: Quadratic, timing, period, tau, *, eta_mode="fixed", n=N, gram=True, strong=False):
    """optimize-k's code path with the constants as known (abort semantics, plain SGD); gram: with the
    workers' exact Gram envelope (A4G, DERIVATION.md section 4.7), else zeta^2 alone (A4); strong: also the
    exact strong-convexity constant mu and the Gram matrix at w* with its slopes (A7, section 4.8)."""
    return k_star_problem(algorithm, prob, timing, period, tau, eta_mode=eta_mode, n=n, gram=gram, strong=strong)[0]


def k_star_problem(algorithm, prob: Quadratic, timing, period, tau, *, eta_mode="fixed", n=N, gram=True,
                   strong=False):
    """k_star's trade-off and the theory.tradeoff.Problem it was computed on (the error model reads the latter)."""
    from theory.tradeoff import Problem, tradeoff

    margin = prob.noise_sd(B)  # the region W of DERIVATION.md 4.7 (eq. 4.41')
    const = prob.constants(margin)
    p = Problem(N=n, M=M, B=B, timing=timing, h=period, semantics="abort", delta=prob.delta,
                dissimilarity=prob.dissimilarity(margin) if gram else None, mu=prob.mu if strong else None,
                optimum=prob.optimum() if strong else None, **const)
    if eta_mode == "fixed":
        return tradeoff(algorithm, p, budget=tau, eta=ETA_L / const["L"]), p
    return tradeoff(algorithm, p, budget=tau, optimize_eta=True), p


def run(*, seeds=SEEDS, budgets=None, eta_mode="fixed", n=N, aligned=False, strong=False, second=False,
        grid=None, predict=None, log=print) -> list[Cell]:
    """The grid (aligned: only the worst-case-aligned problem under heterogeneous speeds; second: the second
    grid, with its own budgets unless `budgets` is given; strong: K* with the strong-convexity bound too, DERIVATION.md section 4.8).
    grid: instead, a list of (Quadratic with n workers, timings) run at `budgets` (paper_figures/kstar_dev.py);
    predict: the error model's variants per cell (default kstar_predict.predict)."""
    cells = []
    predict = predict or kp.predict
    if grid is not None:
        budgets = budgets or BUDGETS
    elif second:
        grid, budgets = [(p, second_timings()) for p in second_problems(n)], budgets or SECOND_BUDGETS
    else:
        grid = [(aligned_problem(n), timings()[2:])] if aligned else [(p, timings()) for p in problems(n)]
        budgets = budgets or BUDGETS
    for prob, tims in grid:
        for label, timing, period in tims:
            # enough rounds for the largest budget at the shortest round (t_cut >= shift = 1)
            t_max = int(max(budgets) / 1.0) + 1
            x = draw_times(timing, seeds, t_max, n, period, seed=0)
            walls = np.stack([schedule(x, k, M)[2] for k in range(1, n + 1)])  # (K, S, T): the same for every rule
            for alg in ALGORITHMS:
                offs, probs = {}, {}
                for tau in budgets:
                    offs[tau], probs[tau] = k_star_problem(alg, prob, timing, period, tau, eta_mode=eta_mode, n=n,
                                                           strong=strong)
                etas = {tau: offs[tau].eta for tau in budgets}
                runs = {}  # one simulation per distinct set of step sizes
                for tau in budgets:
                    key = tuple(np.round(etas[tau], 12))
                    if key not in runs:
                        runs[key] = measure(prob, alg, x, etas[tau], seeds)
                    g, gap = runs[key]
                    assert (np.cumsum(walls, -1)[..., -1] > tau).all(), "simulated horizon shorter than the budget"
                    per_seed, t_s = budget_mean(g, walls, tau)
                    final = budget_final(gap, walls, tau)
                    res = offs[tau]
                    recs = predict(res, probs[tau], prob, prob.noise_sd(B))
                    cells.append(Cell(
                        problem=prob.name, timing=label, tau=tau, algorithm=alg, k_star=int(res.k_star),
                        k_near=near_best(res), eta=np.asarray(res.eta, float), measured=per_seed.mean(1),
                        se=per_seed.std(1, ddof=1) / np.sqrt(seeds), rounds=t_s.mean(1), bound=res.bound,
                        terms={k: np.asarray(v, float) for k, v in res.terms.items()}, gap=final.mean(1),
                        gap_se=final.std(1, ddof=1) / np.sqrt(seeds),
                        predicted={(v, q): recs[v].column(res.ks, q) for v in recs for q in kp.QUANTITIES}))
                    c = cells[-1]
                    log(f"{c.problem:>13} {c.timing:>16} tau={tau:>5g} {alg:>9}: K*={c.k_star:>2} best={c.best:>2} "
                        f"ratio={c.ratio:.3f}; predictive K* (mean ||grad F||^2) scalar {c.k_pred('scalar', 'grad2')}"
                        f" bands {c.k_pred('bands', 'grad2')}")
    return cells


def measure(prob, alg, x, eta, seeds):
    """||grad F(w_t)||^2 and F(w_t) - F*, each (K, S, T), for K = 1..N, each K at its own step eta[K-1] (one
    batch when equal)."""
    eta = np.asarray(eta, float)
    n = len(eta)
    if np.all(eta == eta[0]):
        return simulate(prob, alg, x, np.arange(1, n + 1), m_blocks=M, batch=B, eta=float(eta[0]), seed=1,
                        loss_gap=True)
    runs = [simulate(prob, alg, x, [k], m_blocks=M, batch=B, eta=float(eta[k - 1]), seed=1, loss_gap=True)
            for k in range(1, n + 1)]
    return tuple(np.concatenate(r) for r in zip(*runs))


def near_best(res) -> list:
    """Every K whose bound is within the Monte Carlo error of K*'s (theory.tradeoff: E[R], m_inv, zero_frac)."""
    return [int(k) for k in res.ks[res.near_best]]


def main(argv=None) -> int:
    prog = "python -m paper_figures.kstar_check"
    ap = Parser(prog=prog, description=__doc__.split("\n")[0], said=prog)
    ap.add_argument("--seeds", type=int, default=SEEDS)
    ap.add_argument("--eta-mode", choices=("fixed", "optimized"), default="fixed")
    ap.add_argument("--aligned", action="store_true",
                    help="instead of the grid: heterogeneous speeds on a problem whose slow workers carry the "
                         "dissimilarity (Lemma 2's worst case)")
    ap.add_argument("--mu", action="store_true",
                    help="K* also from the strong-convexity bound (DERIVATION.md 4.8) with each problem's exact mu and "
                         "Gram matrix at w*")
    ap.add_argument("--grid", choices=("first", "second"), default="first",
                    help="second: the grid made after the strong-convexity forms, never used to shape them")
    ap.add_argument("--csv", type=Path, default=None,
                    help="default out/kstar_check/kstar_check[_aligned|_second][_mu].csv")
    args = ap.parse_args(argv)
    if args.seeds < 2:
        return fail(f"--seeds {args.seeds}: must be >= 2 (a standard error needs two seeds)", prog)
    if args.aligned and args.grid == "second":
        return fail("--aligned and --grid second are two different checks: give one", prog)
    t0 = time.perf_counter()
    if args.csv is None:
        stem = "kstar_check_aligned" if args.aligned else "kstar_check" + ("_second" if args.grid == "second" else "")
        args.csv = OUT / (stem + ("_mu" if args.mu else "") + ".csv")
    try:
        prepare_output_file(args.csv)
    except UserError as e:
        return fail(str(e), prog)
    cells = run(seeds=args.seeds, eta_mode=args.eta_mode, aligned=args.aligned, strong=args.mu,
                second=args.grid == "second", log=lambda s: print(s, file=sys.stderr))
    print(table(cells))
    print(diagnosis(cells))
    write_csv(cells, args.csv)
    print(f"csv: {args.csv}  ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
