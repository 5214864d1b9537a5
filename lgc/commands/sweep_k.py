"""`lgc sweep-k`: the measured best K at a time budget (issue 21; lgc.sweep, lgc.halving).

    lgc sweep-k --workers 8 --momentum 0 --warmup-rounds 0 --budget 150 --seeds 0,1,2
    lgc sweep-k --workers 8 --budget 150 --ks 2,4,6,8 --no-halving --json
    lgc sweep-k --config run.json --budget 300 --plot sweep.pdf

Takes the run flags of `lgc train` (same names and defaults) but K, --seed, --rounds and
--eval-every, which it sets per run: every (K, seed) is an `lgc train` run in the run cache
(results/train/<key>/) of the rounds that end within the budget tau on its virtual clock, and its
test loss and accuracy are measured after its last round, at the budget. Successive halving over
K with seeds as the resource (default: keep the best 1/2 of the K, double their seeds, until all
have every seed), or every K at every seed with --no-halving. A rerun reuses the finished runs.
"""
from __future__ import annotations

import argparse
import sys

from lgc.commands._config_args import add_config_arguments
from lgc.commands._paths import check_writable_file
from lgc.config import TrainConfig
from lgc.errors import UserError, check
from theory.jsonio import dumps

# set per run by the sweep (K, seed, rounds at the budget, one evaluation at the end), or not for a sweep
# (--k auto and its settings, a replayed schedule, the dist backend)
NOT_FLAGS = ("threshold_k", "k_auto", "budget", "k_refit", "k_window", "k_first_fit", "k_constants", "rounds", "seed",
             "eval_every", "eval_subset", "schedule_file", "backend")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="JSON file of TrainConfig keys (flags override it)")
    s = p.add_argument_group("the sweep")
    s.add_argument("--budget", dest="tau", type=float, required=True, metavar="TAU",
                   help="time budget tau on the virtual clock [time units]: each K trains the rounds that end "
                        "within it and is measured there")
    s.add_argument("--ks", metavar="K,K,...", help="the K to measure (default: every K = 1..N)")
    s.add_argument("--seeds", default="0,1,2", metavar="S,S,...",
                   help="seeds of timing, mini-batches and initial weights (default: 0,1,2); the data and "
                        "partition stay those of --data-seed (default 0) for every seed")
    s.add_argument("--halving", action=argparse.BooleanOptionalAction, default=True,
                   help="successive halving over K (default: on); --no-halving measures every K at every seed")
    s.add_argument("--reduction", type=int, default=2, metavar="R",
                   help="successive halving keeps the best 1/R of the K at each rung and gives them R times the "
                        "seeds (default: 2)")
    s.add_argument("--min-seeds", type=int, default=1, metavar="S0", help="seeds per K at the first rung (default: 1)")
    add_config_arguments(p, TrainConfig, exclude=NOT_FLAGS)
    for flag, use in (("--k", "--ks"), ("--seed", "--seeds")):  # else argparse reads them as abbreviations
        p.add_argument(flag, dest=f"_{flag[2:]}_given", metavar=use, help=argparse.SUPPRESS)
    p.add_argument("--results", metavar="DIR", help="results root (default: $LGC_RESULTS, else results/ in the repository)")
    p.add_argument("--force", action="store_true", help="rerun the runs even where finished identical runs exist")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: 1 for the small models)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print JSON for programs instead of the table")
    p.add_argument("--plot", metavar="FILE", help="draw the test loss at the budget against K (with its SE) to FILE")


def int_list(text: str, flag: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} {text!r} must be integers separated by commas, e.g. 1,2,4") from None
    check(out, f"{flag} {text!r} names none")
    return out


def config_from_args(args) -> TrainConfig:
    """Flags over the config file over the defaults, as `lgc train`; the data seed fixed for every seed."""
    from dataclasses import replace

    from lgc.commands.train import config_from_args as train_config

    for name in NOT_FLAGS:
        setattr(args, name, None)  # a flag sweep-k does not take; a config file's value is set per run
    cfg = train_config(args)
    return replace(cfg, data_seed=cfg.seed if cfg.task.data_seed is None else cfg.task.data_seed)


def run(args) -> int:
    from lgc.sweep import check_sweep, sweep_k

    for flag, use in (("--k", "--ks"), ("--seed", "--seeds")):
        check(getattr(args, f"_{flag[2:]}_given") is None, f"{flag}: sweep-k sets it per run; give {use} instead")
    cfg = config_from_args(args)
    ks = int_list(args.ks, "--ks") if args.ks else list(range(1, cfg.n_workers + 1))
    seeds = int_list(args.seeds, "--seeds")
    check_sweep(cfg, args.tau, ks, seeds)
    check(args.reduction >= 2, f"--reduction={args.reduction} must be >= 2")
    check(1 <= args.min_seeds <= len(seeds), f"--min-seeds={args.min_seeds} must be in 1..{len(seeds)} (the seeds given)")
    check(args.threads is None or args.threads >= 1, f"--threads={args.threads} must be >= 1")
    if args.plot:  # before the runs, so a typo in the folder costs nothing
        check_writable_file(args.plot, "--plot")
    from lgc.threads import default_threads, torch_threads

    with torch_threads(args.threads if args.threads is not None else default_threads(cfg.task.model)):
        res = sweep_k(cfg, budget=args.tau, ks=ks, seeds=seeds, reduction=args.reduction, min_seeds=args.min_seeds,
                      halving=args.halving, root=args.results, force=args.force, quiet=True,
                      log=(lambda s: None) if args.quiet or args.json else
                      (lambda s: (sys.stderr.write(f"lgc sweep-k: {s}\n"), sys.stderr.flush())))
    if args.json:
        print(dumps(to_json(res, cfg), indent=2, sort_keys=True))
    else:
        print(format_table(res, cfg))
    if args.plot:
        plot(res, cfg, args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0


def _describe(res, cfg) -> str:
    rungs = ", ".join(f"{r.arms} K x {r.seeds} seed{'s' if r.seeds > 1 else ''}" for r in res.halving.rungs)
    how = "every K at every seed" if len(res.halving.rungs) == 1 else f"successive halving ({rungs})"
    return (f"{cfg.algorithm}, N={cfg.n_workers}, B={cfg.batch_size}, M={cfg.blocks}, eta={cfg.lr:g}, momentum "
            f"{cfg.momentum:g}, budget tau={res.budget:g}, seeds {','.join(map(str, res.seeds))}: {how}")


def format_table(res, cfg) -> str:
    lines = [f"sweep-k: {_describe(res, cfg)}",
             f"{'K':>5} {'rounds T':>9} {'seeds':>5} {'test loss':>11} {'SE':>9} {'test acc':>9} {'rung':>4}"]
    for r in res.rows():
        if not r["seeds"]:
            continue
        t = sum(r["rounds"]) / len(r["rounds"])
        se = f"{r['se']:.3g}" if r["se"] is not None else "-"
        acc = f"{r['acc_mean']:.4f}" if r["acc_mean"] is not None else "-"
        loss = "diverged" if r["diverged"] else f"{r['mean']:.5g}"
        lines.append(f"{r['K']:>5} {t:>9.1f} {len(r['seeds']):>5} {loss:>11} {se:>9} {acc:>9} {r['last_rung']:>4}"
                     + ("  <- best" if r["best"] else ""))
    best = next(r for r in res.rows() if r["best"])
    se = f" +- {best['se']:.2g} (SE)" if best["se"] is not None else ""
    lines.append(f"best K = {res.best_k}: test loss {best['mean']:.5g}{se} at the budget over {len(best['seeds'])} "
                 f"seed(s); rounds T is the mean over seeds, rung the last rung a K reached")
    return "\n".join(lines)


def to_json(res, cfg) -> dict:
    return {"budget": res.budget, "ks": list(res.ks), "seeds": list(res.seeds), "best_k": res.best_k,
            "rungs": [r._asdict() for r in res.halving.rungs], "rows": res.rows(),
            "config": {k: v for k, v in cfg.to_dict().items() if k not in NOT_FLAGS}}


def plot(res, cfg, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in res.rows() if r["seeds"] and not r["diverged"]]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    final = len(res.halving.rungs) - 1
    for last, label, color in ((True, f"all {len(res.seeds)} seeds", "C0"), (False, "stopped early (fewer seeds)", "0.6")):
        sel = [r for r in rows if (r["last_rung"] == final) == last]
        if sel:
            ax.errorbar([r["K"] for r in sel], [r["mean"] for r in sel], yerr=[r["se"] or 0.0 for r in sel],
                        ls="none", marker="o", ms=4, capsize=2, color=color, label=label)
    ax.axvline(res.best_k, color="C3", ls="--", lw=1, label=f"best K = {res.best_k}")
    ax.set_xlabel("straggler threshold K")
    ax.set_ylabel(f"test loss at tau = {res.budget:g}")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"{cfg.algorithm}, N = {cfg.n_workers}: measured at the budget", fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=150)
    except (OSError, ValueError) as e:  # an unknown extension
        raise UserError(f"--plot {path}: cannot write it ({e})") from None
    finally:
        plt.close(fig)
