"""`lgc optimize-k`: the bound and E[R] over K, and the optimal straggler threshold K*.

    lgc optimize-k --workers 10 --blocks 5 --batch-size 50 --constants constants.json --budget 500
    lgc optimize-k --workers 10000 --L 1 --sigma2 1 --zeta2 0.1 --Delta 5 --target 0.3 --json
    lgc optimize-k --workers 10 --L 1 --sigma2 1 --zeta2 0.1 --Delta 5 --timing heterogeneous \\
        --timing-param slowdown=4 --straggling-period 30 --plot tradeoff.pdf

The computation is theory.optimize_k (theory/optimal_k.py); this command parses its flags,
calls it and prints the result. Table columns: K, E[R] (time units, with its Monte Carlo standard error), T (rounds within the
budget, or needed for the target), eta, the bound and each of its terms, and the time used.
Equations: theory/DERIVATION.md sections 4 and 5. No torch import.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

import numpy as np

from lgc.commands._config_args import add_config_arguments
from lgc.commands._paths import input_path
from lgc.commands._timing_args import add_timing_arguments, timing_from_args
from lgc.config import TrainConfig, check_seed
from lgc.errors import check
from theory.algorithms import BOUND_NAMES
from theory.jsonio import dumps

ALGORITHMS = BOUND_NAMES  # whose bound exists (theory/algorithms.py)
MAX_ROWS = 40
# What the bounds of theory/bounds.py assume of the run (DERIVATION.md section 1); `lgc train` defaults
# to momentum 0.9 and 2 warm-up rounds, so the command to follow K* says it
ASSUMES = ("plain SGD (momentum 0, no weight decay), no warm-up rounds, worker weights pi_i = 1/N: "
           "lgc train --momentum 0 --warmup-rounds 0")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, TrainConfig, only=("n_workers", "blocks", "batch_size", "algorithm", "seed"),
                         layered=False)
    c = p.add_argument_group("constants (a JSON file, flags override it)")
    c.add_argument("--constants", metavar="FILE", type=input_path, help="constants JSON written by `lgc estimate`")
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
    for k in KEYS + OPTIONAL_KEYS:
        if getattr(args, k) is not None:
            d[k] = getattr(args, k)
    missing = [k for k in KEYS if k not in d]
    check(not missing, f"constants {', '.join(missing)} missing: give --constants FILE or --{' --'.join(missing)}")
    return d


def compute(args):
    """(Problem, constants, Tradeoff) of the flags: theory.optimize_k, the one computation."""
    from theory.optimal_k import optimize_k

    check(args.mc_rounds is None or args.mc_rounds >= 2, f"--mc-rounds={args.mc_rounds} must be >= 2")
    check_seed("seed", args.seed)
    ks = None
    if args.ks is not None:  # --ks "" names no K (it is not "every K")
        try:
            ks = sorted({int(v) for v in args.ks.split(",") if v.strip()})
        except ValueError:
            check(False, f"--ks {args.ks!r} must be comma-separated integers")
        check(bool(ks), f"--ks {args.ks!r} names no K")
    res = optimize_k(
        resolve_constants(args), timing_from_args(args), workers=args.n_workers, batch_size=args.batch_size,
        blocks=args.blocks, algorithm=args.algorithm, budget=args.budget, target=args.target, ks=ks, eta=args.eta,
        optimize_eta=args.optimize_eta, straggling_period=args.straggling_period, semantics=args.semantics,
        comm_alpha=args.comm_alpha, comm_beta=args.comm_beta, model_bytes=args.model_bytes,
        report_latency=args.report_latency, mc_rounds=args.mc_rounds, seed=args.seed, progress=_progress())
    return res.problem, res.constants, res.tradeoff


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


def _rows_to_show(res, all_rows: bool) -> np.ndarray:
    n = len(res.ks)
    if all_rows or n <= MAX_ROWS:
        return np.arange(n)
    i_star = int(np.where(res.ks == res.k_star)[0][0])
    pick = set(np.linspace(0, n - 1, MAX_ROWS - 5).round().astype(int)) | {max(i_star - 2, 0), max(i_star - 1, 0),
                                                                          i_star, min(i_star + 1, n - 1), min(i_star + 2, n - 1)}
    return np.array(sorted(pick))


def format_table(res, prob, shown) -> str:
    names = list(res.terms)
    head = ["K", "E[R]", "+-se", "T", "eta", "bound"] + names + ["time"]
    lines = []
    crit = f"budget tau = {res.budget:g}" if res.criterion == "budget" else f"target bound = {res.target:g}"
    lines.append(f"# {res.algorithm}, N={prob.N}, M={prob.M}, B={prob.B}, timing={prob.timing.name}, h={prob.h:g}, "
                 f"{prob.semantics} semantics; {crit}; E[R] by {res.round_time_method}")
    lines.append("  ".join(f"{h:>10}" for h in head))
    for i in shown:
        vals = [res.round_time[i], res.round_time_se[i], res.rounds[i], res.eta[i], res.bound[i]]
        vals += [res.terms[n][i] for n in names] + [res.time[i]]
        mark = "*" if res.ks[i] == res.k_star else " "
        lines.append(f"{int(res.ks[i]):>9}{mark}  " + "  ".join(f"{v:>10.4g}" for v in vals))
    if len(shown) < len(res.ks):
        lines.append(f"# {len(shown)} of {len(res.ks)} rows shown (--all-rows for every K, --json for programs)")
    i = int(np.where(res.ks == res.k_star)[0][0])
    what = f"bound {res.bound[i]:.4g} at the budget" if res.criterion == "budget" else f"time {res.time[i]:.4g} to the target"
    lines.append(f"K* = {res.k_star} ({what}; eta = {res.eta[i]:.4g}, T = {res.rounds[i]:.6g})")
    near = [int(k) for k in res.ks[res.near_best]]
    if len(near) > 1:
        lines.append(f"within the Monte Carlo error of K* (2 standard errors of E[R] and the straggler statistics): "
                     f"K = {', '.join(map(str, near))}")
    lines.append(f"# the bounds assume {ASSUMES}")
    lines.append(f"# dissimilarity: {dissimilarity_note(prob)}")
    lines.append(f"# strong convexity: {strong_note(prob, res.algorithm)}")
    return "\n".join(lines)


def strong_note(prob, algorithm) -> str:
    """Whether the strong-convexity bound (DERIVATION.md 4.8) took part."""
    from theory.strong import applies

    if prob.mu is None:
        return "not assumed (give --mu or mu in the constants for the bound through the distance to w*, DERIVATION.md 4.8)"
    if not applies(algorithm, prob.semantics, prob.timing, prob.h):
        return (f"mu={prob.mu:g} given, not used: the bound of DERIVATION.md 4.8 is for fastest-k and lgc under abort "
                f"semantics with sets redrawn every round or held for the run")
    return (f"mu={prob.mu:g} (A7): each K keeps the smaller of the bounds above and DERIVATION.md 4.8's (set terms "
            f"through G(w*) = N zeta2 (I - 11^T/N) and the distance to w*)")


def dissimilarity_note(prob) -> str:
    """Which form of the set terms the bounds used (DERIVATION.md 4.3-4.5 or 4.7)."""
    g = prob.dissimilarity
    if g is None:
        return "zeta2 alone (worst alignment, Lemma 2; give gram in the constants for the Gram forms)"
    if prob.semantics != "abort":
        return f"gram given, but {prob.semantics} semantics: zeta2 forms (the Gram forms need abort, DERIVATION.md 4.7)"
    return (f"Gram forms (A4G, DERIVATION.md 4.7) from {len(g.gram)} Gram matrix(es) of {g.n} workers, "
            f"each set term the smaller of its Gram and zeta2 forms")


def to_json(res, prob, const, rows: bool = True, inputs: Optional[dict] = None) -> dict:
    """The JSON document; `inputs`: the input files by content (lgc.commands._paths.input_record)."""
    clean = lambda v: None if not np.isfinite(v) else float(v)
    out = {
        "algorithm": res.algorithm, "criterion": res.criterion, "budget": res.budget, "target": res.target,
        "N": prob.N, "M": prob.M, "B": prob.B, "h": prob.h, "semantics": prob.semantics,
        "timing": prob.timing.name, "constants": {k: v for k, v in const.items() if k != "gram"},
        "dissimilarity": dissimilarity_note(prob), "strong_convexity": strong_note(prob, res.algorithm),
        "round_time_method": res.round_time_method,
        "k_star": res.k_star, "near_best": [int(k) for k in res.ks[res.near_best]], "assumes": ASSUMES,
        "inputs": inputs or {},
    }
    if rows:
        out["rows"] = [{k: (clean(v) if isinstance(v, float) else v) for k, v in r.items()} for r in res.rows()]
    return out


def _columns(res) -> dict:
    """Tradeoff.rows() as columns (its keys, in its order): arrays, or None for a key without one."""
    cols = {"K": res.ks.astype(int), "E[R]": res.round_time, "E[R]_se": res.round_time_se,
            "near_best": res.near_best, "T": res.rounds, "eta": res.eta, "bound": res.bound, "time": res.time,
            "E[m_j]": res.m_mean}
    cols.update({f"term:{n}": v for n, v in res.terms.items()})
    return cols


def write_json(res, prob, const, out, chunk: int = 8192, inputs: Optional[dict] = None) -> None:
    """to_json's document (strict JSON: a value that is not finite is null), its rows streamed one a
    line, a chunk of K at a time from the arrays: memory O(chunk), not a list of N row dicts (1.5 GB
    at N = 10^6), and json's C encoder (indent= forces the pure-Python one)."""
    head = dumps(to_json(res, prob, const, rows=False, inputs=inputs), indent=1)
    out.write(head[:-2] + ',\n "rows": [')
    cols = _columns(res)
    encode = json.JSONEncoder(allow_nan=False).encode  # one encoder (json.dumps(allow_nan=...) builds one a call)
    for lo in range(0, len(res.ks), chunk):
        n = len(res.ks[lo:lo + chunk])
        vals = []
        for name, c in cols.items():
            if c is None:
                vals.append([None] * n)
                continue
            a = np.asarray(c[lo:lo + chunk])
            v = a.tolist()
            if a.dtype.kind == "f":
                for i in np.flatnonzero(~np.isfinite(a)):
                    v[i] = None
            vals.append(v)
        # a chunk's rows in one call; numbers, null and booleans hold no "}, {", so it splits the rows
        text = encode([dict(zip(cols, row)) for row in zip(*vals)])[1:-1].replace("}, {", "},\n  {")
        out.write(("\n  " if lo == 0 else ",\n  ") + text)
    out.write("\n ]\n}\n")


def plot(res, prob, const, path: str) -> None:
    """The trade-off curve to `path` (theory.optimal_k.KStar.plot)."""
    from theory.optimal_k import KStar

    KStar(k_star=res.k_star, tradeoff=res, problem=prob, constants=const).plot(path)


def run(args: argparse.Namespace) -> int:
    if args.plot is not None:  # before the computation, so a typo in the name costs nothing
        from lgc.commands._paths import check_plot_file

        check_plot_file(args.plot)
    prob, const, res = compute(args)
    if args.json:
        from lgc.commands._paths import input_record

        write_json(res, prob, const, sys.stdout, inputs=input_record(args))
    else:
        print(format_table(res, prob, _rows_to_show(res, args.all_rows)))
    if args.plot is not None:
        plot(res, prob, const, args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0
