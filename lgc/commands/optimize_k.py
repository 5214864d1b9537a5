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


def _rows_to_show(res, all_rows: bool, rec=None) -> np.ndarray:
    """Every row, or at most about MAX_ROWS: evenly spread, with both K* and their neighbours; where the error model
    evaluated a subset of K, rows from that subset (and the bound's K*)."""
    n = len(res.ks)
    if all_rows or n <= MAX_ROWS:
        return np.arange(n)
    cand = np.arange(n)
    if rec is not None and rec.prediction is not None and len(rec.prediction.ks) < n:
        cand = np.union1d(np.searchsorted(res.ks, rec.prediction.ks), np.flatnonzero(res.ks == res.k_star))
    if len(cand) <= MAX_ROWS:
        return cand
    pick = set(cand[np.linspace(0, len(cand) - 1, MAX_ROWS - 10).round().astype(int)].tolist())
    for k in {res.k_star, res.k_star if rec is None else rec.k_star}:
        j = int(np.flatnonzero(res.ks[cand] == k)[0])
        pick |= set(cand[max(j - 2, 0):j + 3].tolist())
    return np.array(sorted(pick))


def format_table(res, prob, shown, rec=None) -> str:
    names = list(res.terms)
    head = ["K", "E[R]", "+-se", "T", "eta", "pred_gap", "+-se", "pred_g2", "bound"] + names + ["time"]
    pg, pse, pg2 = ((rec.column(res.ks, n) for n in ("gap", "gap_se", "grad2")) if rec is not None
                    else (np.full(len(res.ks), np.nan),) * 3)
    k_rec = res.k_star if rec is None else rec.k_star
    lines = []
    crit = f"budget tau = {res.budget:g}" if res.criterion == "budget" else f"target bound = {res.target:g}"
    lines.append(f"# {res.algorithm}, N={prob.N}, M={prob.M}, B={prob.B}, timing={prob.timing.name}, h={prob.h:g}, "
                 f"{prob.semantics} semantics; {crit}; E[R] by {res.round_time_method}")
    lines.append("  ".join(f"{h:>10}" for h in head))
    for i in shown:
        vals = [res.round_time[i], res.round_time_se[i], res.rounds[i], res.eta[i], pg[i], pse[i], pg2[i], res.bound[i]]
        vals += [res.terms[n][i] for n in names] + [res.time[i]]
        mark = "*" if res.ks[i] == k_rec else ("b" if res.ks[i] == res.k_star else " ")
        lines.append(f"{int(res.ks[i]):>9}{mark}  " + "  ".join(f"{v:>10.4g}" for v in vals))
    if len(shown) < len(res.ks):
        lines.append(f"# {len(shown)} of {len(res.ks)} rows shown (--all-rows for every K, --json for programs)")
    i = int(np.where(res.ks == res.k_star)[0][0])
    what = f"bound {res.bound[i]:.4g} at the budget" if res.criterion == "budget" else f"time {res.time[i]:.4g} to the target"
    if rec is not None:
        j = int(np.where(res.ks == rec.k_star)[0][0])
        if rec.criterion != "predict" or rec.note:
            why, T_j = f"the bound's{': ' + rec.note if rec.note else ''}", res.rounds[j]
        elif res.criterion == "budget":
            se = f" +- {pse[j]:.2g}" if np.isfinite(pse[j]) else ""
            why, T_j = f"predicted loss gap {pg[j]:.4g}{se} at the budget", res.rounds[j]
        else:
            T_j = rec.column(res.ks, "rounds")[j]
            why = f"predicted time {rec.column(res.ks, 'time')[j]:.4g} to mean ||grad F||^2 <= the target"
        lines.append(f"K* = {rec.k_star} (recommended; {why}; eta = {res.eta[j]:.4g}, T = {T_j:.6g})")
        lines.append(f"K*_bound = {res.k_star} ({what})")
    else:
        lines.append(f"K* = {res.k_star} ({what}; eta = {res.eta[i]:.4g}, T = {res.rounds[i]:.6g})")
    near = [int(k) for k in res.ks[res.near_best]]
    if len(near) > 1:
        lines.append(f"within the Monte Carlo error of the bound's K* (2 standard errors of E[R] and the straggler "
                     f"statistics): K = {', '.join(map(str, near))}")
    if rec is not None:
        lines.append(f"# error model: {model_note(rec, res)}")
    lines.append(f"# the bounds assume {ASSUMES}")
    lines.append(f"# dissimilarity: {dissimilarity_note(prob)}")
    lines.append(f"# strong convexity: {strong_note(prob, res.algorithm)}")
    return "\n".join(lines)


def model_note(rec, res) -> str:
    """What the error model did (DERIVATION.md section 8)."""
    p = rec.prediction
    if p is None:
        return f"not run ({rec.note})"
    sub = f" at {len(p.ks)} of the {len(res.ks)} K" if len(p.ks) < len(res.ks) else ""
    cap = f"; {int(p.capped.sum())} K predicted at the round cap" if p.capped.any() else ""
    at = ("the T above" if res.criterion == "budget" else
          "the model's own T, the fewest rounds whose predicted mean ||grad F||^2 is at most the target")
    return (f"pred_gap = predicted F(w_T) - F*, pred_g2 = predicted mean ||grad F||^2 over T rounds, at {at}{sub} "
            f"({p.draws} timing draw(s){cap}); {'K* recommended by ' + rec.criterion}"
            f"{' (' + rec.note + ')' if rec.note else ''}; '*' marks the recommended K*, 'b' the bound's")


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


def to_json(res, prob, const, rows: bool = True, rec=None, inputs: Optional[dict] = None) -> dict:
    """The JSON document; `rec`: the error model's recommendation; `inputs`: the input files by content
    (lgc.commands._paths.input_record)."""
    clean = lambda v: None if not np.isfinite(v) else float(v)
    out = {
        "algorithm": res.algorithm, "criterion": res.criterion, "budget": res.budget, "target": res.target,
        "N": prob.N, "M": prob.M, "B": prob.B, "h": prob.h, "semantics": prob.semantics,
        "timing": prob.timing.name, "constants": {k: v for k, v in const.items() if k != "gram"},
        "dissimilarity": dissimilarity_note(prob), "strong_convexity": strong_note(prob, res.algorithm),
        "round_time_method": res.round_time_method,
        "k_star": res.k_star if rec is None else rec.k_star, "k_star_bound": res.k_star,
        "near_best": [int(k) for k in res.ks[res.near_best]], "assumes": ASSUMES, "inputs": inputs or {},
    }
    out["constants"].pop("bands", None)
    if rec is not None:
        out["k_criterion"] = rec.criterion
        out["error_model"] = model_note(rec, res)
    if rows:
        out["rows"] = [{k: (clean(v) if isinstance(v, float) else v) for k, v in r.items()} for r in res.rows()]
        if rec is not None:
            for name, col in _model_columns(res, rec).items():
                for r, v in zip(out["rows"], col):
                    r[name] = clean(float(v))
    return out


def _model_columns(res, rec) -> dict:
    """The error model's row keys (nan where it did not evaluate a K)."""
    cols = {f"pred_{n}": rec.column(res.ks, n) for n in ("gap", "gap_se", "grad2", "grad2_se")}
    if res.criterion == "target":  # the model's own rounds to the target and time
        cols.update(pred_T=rec.column(res.ks, "rounds"), pred_time=rec.column(res.ks, "time"))
    return cols


def _columns(res, rec=None) -> dict:
    """Tradeoff.rows() as columns (its keys, in its order): arrays, or None for a key without one."""
    cols = {"K": res.ks.astype(int), "E[R]": res.round_time, "E[R]_se": res.round_time_se,
            "near_best": res.near_best, "T": res.rounds, "eta": res.eta, "bound": res.bound, "time": res.time,
            "E[m_j]": res.m_mean}
    cols.update({f"term:{n}": v for n, v in res.terms.items()})
    if rec is not None:
        cols.update(_model_columns(res, rec))
    return cols


def write_json(res, prob, const, out, chunk: int = 8192, rec=None, inputs: Optional[dict] = None) -> None:
    """to_json's document (strict JSON: a value that is not finite is null), its rows streamed one a
    line, a chunk of K at a time from the arrays: memory O(chunk), not a list of N row dicts (1.5 GB
    at N = 10^6), and json's C encoder (indent= forces the pure-Python one)."""
    head = dumps(to_json(res, prob, const, rows=False, rec=rec, inputs=inputs), indent=1)
    out.write(head[:-2] + ',\n "rows": [')
    cols = _columns(res, rec)
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
        print(format_table(res, prob, _rows_to_show(res, args.all_rows, rec), rec))
    if args.plot is not None:
        kstar.plot(args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0
