"""`lgc optimize-k`: the predicted error, the bound and E[R] over K, and the recommended straggler threshold K*.

    lgc optimize-k --workers 10 --blocks 5 --batch-size 50 --constants constants.json --budget 500
    lgc optimize-k --workers 10000 --L 1 --sigma2 1 --zeta2 0.1 --Delta 5 --target 0.3 --json
    lgc optimize-k --workers 10 --L 1 --sigma2 1 --zeta2 0.1 --Delta 5 --timing heterogeneous \\
        --timing-param slowdown=4 --straggling-period 30 --plot tradeoff.pdf

The computation is theory.optimize_k (theory/optimal_k.py); this command parses its flags,
calls it and prints the result. Table columns: K, E[R] (time units, with its Monte Carlo standard error), T (rounds within the
budget, or needed for the target), eta, the error model's predicted loss gap F(w_T) - F* (with its
standard error) and mean ||grad F||^2, the bound and each of its terms, and the time used.
Two K*: the recommended one (`k_star`), the K of least predicted loss gap under the error model of
theory/predict.py (DERIVATION.md section 8), and the bound's (`k_star_bound`, sections 4 and 5);
`--criterion bound` recommends the bound's. No torch import.
"""
from __future__ import annotations

import argparse
import sys

from lgc.commands._config_args import add_config_arguments
from lgc.commands._optimize_k_output import MAX_ROWS, format_table, rows_to_show, write_json
from lgc.commands._paths import input_path
from lgc.commands._timing_args import add_timing_arguments, timing_from_args
from lgc.config import TrainConfig, check_seed
from lgc.errors import check
from theory.algorithms import BOUND_NAMES

ALGORITHMS = BOUND_NAMES  # whose bound exists (theory/algorithms.py)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, TrainConfig, only=("n_workers", "blocks", "batch_size", "algorithm", "seed"),
                         layered=False)
    c = p.add_argument_group("constants (a JSON file, flags override it)")
    c.add_argument("--constants", metavar="FILE", type=input_path, help="constants JSON written by `lgc estimate` (its bands and workers' Gram "
                   "matrices, when present, feed the error model: --json's model_gram says whether)")
    for name, text in (("L", "smoothness"), ("sigma2", "per-sample gradient variance"),
                       ("zeta2", "dissimilarity"), ("Delta", "F(w_0) - F*")):
        c.add_argument(f"--{name}", type=float, default=None, help=text)
    c.add_argument("--delta", type=float, default=None,
                   help="optional: Lipschitz constant of grad f_i - grad F (tightens lgc's staleness; default: L)")
    c.add_argument("--mu", type=float, default=None,
                   help="optional: F is mu-strongly convex (0 < mu <= L); fastest-k's and lgc's set terms are then also "
                        "charged through the distance to w* (DERIVATION.md 4.8), each K keeping the smaller bound")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--budget", type=float, metavar="TAU", help="wall-clock budget tau [time units] (default criterion)")
    g.add_argument("--target", type=float, metavar="EPS", help="target bound: minimize the time to reach it")
    p.add_argument("--ks", metavar="K,K,...", help="only these K (default: every K = 1..N)")
    e = p.add_mutually_exclusive_group()
    e.add_argument("--eta", type=float, help="one step size for every K (default: 0.5 / L)")
    e.add_argument("--optimize-eta", action="store_true", help="optimize the step size per K instead")
    p.add_argument("--report-latency", type=float, default=0.0, help="lgc-fresh: latency of the partial reports")
    m = p.add_argument_group("the error model (the recommended K*, DERIVATION.md section 8)")
    m.add_argument("--criterion", choices=("predict", "bound"), default="predict",
                   help="which K* is recommended (k_star): 'predict' (default), the K of least predicted loss gap at "
                        "the budget, a forecast for choosing K; 'bound', the K of least bound, a guarantee (its argmin "
                        "sits near N where the terms that fall with K are loose)")
    m.add_argument("--momentum", type=float, default=0.0,
                   help="the run's server momentum, for the error model (default 0: plain SGD, as the bounds assume)")
    m.add_argument("--warmup-rounds", type=int, default=0,
                   help="the run's full-sync warm-up rounds, for the error model (default 0, as the bounds assume)")
    p.add_argument("--mc-rounds", type=int, help="Monte Carlo rounds for E[R] (default: by N and M)")
    add_timing_arguments(p)
    p.add_argument("--all-rows", action="store_true", help=f"print every K (default: at most {MAX_ROWS} rows)")
    p.add_argument("--json", action="store_true", help="print JSON for programs instead of the table")
    p.add_argument("--plot", metavar="FILE", help="draw the trade-off curve (bound and T against K) to FILE")


def resolve_constants(args) -> dict:
    """Constants from --constants FILE, overridden by flags; all four must end up known (delta is optional)."""
    from theory.constants import GRAM_KEY, KEYS, OPTIONAL_KEYS, read_constants

    d = {}
    if args.constants:
        c = read_constants(args.constants)
        d = {k: getattr(c, k) for k in KEYS + OPTIONAL_KEYS if getattr(c, k) is not None}
        if c.gram is not None:  # the workers' Gram matrices (A4G): the set terms of DERIVATION.md 4.7
            d[GRAM_KEY] = c.gram
        if c.bands is not None:  # curvature bands for the error model (DERIVATION.md section 8)
            d["bands"] = c.bands
        if c.heldout is not None:  # a pilot's held-out loss: K* minimises the predicted held-out loss (eq. 8.14)
            d["heldout"] = c.heldout
    for k in KEYS + OPTIONAL_KEYS:
        if getattr(args, k) is not None:
            d[k] = getattr(args, k)
    missing = [k for k in KEYS if k not in d]
    check(not missing, f"constants {', '.join(missing)} missing: give --constants FILE or --{' --'.join(missing)}")
    return d


def compute(args):
    """(Problem, constants, Tradeoff) of the flags (compute_kstar)."""
    k = compute_kstar(args)
    return k.problem, k.constants, k.tradeoff


def compute_kstar(args):
    """theory.optimize_k of the flags: the trade-off, the error model's predictions and both K*."""
    from theory.optimal_k import optimize_k

    check(args.mc_rounds is None or args.mc_rounds >= 2, f"--mc-rounds={args.mc_rounds} must be >= 2")
    check_seed("seed", args.seed)
    check(0 <= args.momentum < 1, f"--momentum {args.momentum} must be in [0, 1)")
    check(args.warmup_rounds >= 0, f"--warmup-rounds {args.warmup_rounds} must be >= 0")
    ks = None
    if args.ks is not None:  # --ks "" names no K (it is not "every K")
        try:
            ks = sorted({int(x) for x in args.ks.split(",") if x.strip()})
        except ValueError:
            check(False, f"--ks {args.ks!r} must be comma-separated integers")
        check(bool(ks), f"--ks {args.ks!r} names no K")
    return optimize_k(
        resolve_constants(args), timing_from_args(args), workers=args.n_workers, batch_size=args.batch_size,
        blocks=args.blocks, algorithm=args.algorithm, budget=args.budget, target=args.target, ks=ks, eta=args.eta,
        optimize_eta=args.optimize_eta, straggling_period=args.straggling_period, semantics=args.semantics,
        comm_alpha=args.comm_alpha, comm_beta=args.comm_beta, model_bytes=args.model_bytes,
        report_latency=args.report_latency, mc_rounds=args.mc_rounds, seed=args.seed, progress=_progress(),
        criterion=args.criterion, momentum=args.momentum, warmup_rounds=args.warmup_rounds)


def recommend(args, prob, const, res):
    """The error model's predictions and the recommended K* for a computed trade-off (theory/predict_k.py),
    as theory.optimize_k makes them."""
    from theory.optimal_k import recommendation

    return recommendation(res, prob, const, criterion=args.criterion, momentum=args.momentum,
                          warmup_rounds=args.warmup_rounds, seed=args.seed)


def _progress():
    """A progress bar over the Monte Carlo rounds of E[R(K)]: at N = 10^6 they take most of the
    run. tqdm draws it on a terminal only, and only after the first second; off a terminal its
    import (up to a second on a loaded machine) is skipped too."""
    if not sys.stderr.isatty():  # what tqdm(disable=None) does, without importing it
        return None
    from tqdm import tqdm

    bar = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc="E[R(K)] Monte Carlo", unit="round", delay=1.0, leave=False, disable=None))
        bar[0].update(done - bar[0].n)
        if done >= total:
            bar[0].close()

    return progress


def run(args: argparse.Namespace) -> int:
    if args.plot is not None:  # before the computation, so a typo in the name costs nothing
        from lgc.commands._paths import check_plot_file

        check_plot_file(args.plot)
    kstar = compute_kstar(args)
    prob, const, res, rec = kstar.problem, kstar.constants, kstar.tradeoff, kstar.recommendation
    if args.json:
        from lgc.commands._paths import input_record

        write_json(res, prob, const, sys.stdout, rec=rec, inputs=input_record(args))
    else:
        print(format_table(res, prob, rows_to_show(res, args.all_rows, rec), rec))
    if args.plot is not None:
        kstar.plot(args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0
