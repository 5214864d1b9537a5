"""`lgc estimate`: L, sigma^2, zeta^2 and Delta of a model on partitioned data, with bootstrap
intervals, written as the constants JSON that `lgc optimize-k --constants` reads.

    lgc estimate --dataset synthetic --model softmax --partition main-label --workers 10 \\
                 --classes-per-worker 3 --samples-per-worker 200 --out constants.json
    lgc estimate --dataset quadratic --workers 4 --quad-dim 6 --quad-sigma2 2
    lgc estimate --config run.json --max-samples 500     # the problem `lgc train --config run.json` trains

The problem flags are `lgc train`'s, with its defaults: the task's (lgc/config_task.py TaskConfig), N and
the seed.
The problem (data, partition, pi, initial weights) is built by the trainer's own code
(lgc.task.make_task), so the constants belong to the run that `lgc train` would make.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lgc.commands._config_args import add_config_arguments
from lgc.commands._paths import input_path, input_record
from lgc.config import TrainConfig
from lgc.config_task import TaskConfig
from lgc.errors import UserError, check
from theory.delta_fit import DELTA_SPLITS
from theory.heldout import HELDOUT_STEPS
from theory.jsonio import dumps


# the TrainConfig fields besides the task (TaskConfig) that make the problem: N splits the data,
# the seed draws the initial weights (and the data and partition unless --data-seed)
PROBLEM_FIELDS = ("n_workers", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=input_path, default=None, metavar="FILE",
                        help="a TrainConfig JSON (as `lgc train --config` reads): estimate that run's problem "
                             "(the problem flags below override it, as in `lgc train`)")
    g = parser.add_argument_group("problem (the flags of `lgc train`, same defaults)")
    add_config_arguments(g, TaskConfig, exclude=("augment",))  # the constants are of un-augmented samples
    add_config_arguments(g, TrainConfig, only=PROBLEM_FIELDS)
    g.add_argument("--checkpoint", type=input_path, default=None, metavar="FILE",
                   help="start from these weights (a state_dict saved by torch.save; loaded with weights_only=True)")
    g.add_argument("--max-samples", type=int, default=None,
                   help="use at most this many samples of each worker (the first ones of its part)")
    e = parser.add_argument_group("estimation")
    e.add_argument("--bootstrap", type=int, default=200,
                   help="bootstrap replicates R (default 200; memory about 3 (R+1) x parameters doubles)")
    e.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    e.add_argument("--power-iters", type=int, default=30, help="Hessian-vector products per power iteration")
    e.add_argument("--l-bootstrap", type=int, default=20,
                   help="bootstrap replicates for L (each a warm-started power iteration; default 20)")
    e.add_argument("--trajectory-steps", type=int, default=20, help="SGD steps of the trajectory (default 20)")
    e.add_argument("--trajectory-lr", type=float, default=None, help="trajectory step size (default 1 / L at w_0)")
    e.add_argument("--lbfgs-iters", type=int, default=200, help="L-BFGS iterations for Delta (default 200)")
    e.add_argument("--bands", type=int, default=4,
                   help="curvature bands for optimize-k's error model (default 4, a factor 4 apart; 0: none)")
    e.add_argument("--lanczos-steps", type=int, default=12,
                   help="Hessian-vector products per Lanczos start vector for the bands (default 12; 5 start vectors)")
    e.add_argument("--worker-curvatures", action="store_true",
                   help="also each worker's curvature per band (bands.workers: Rayleigh quotients along the bands' "
                        "Ritz vectors, N x bands more Hessian-vector products, up to 64 workers), for the error model")
    e.add_argument("--delta-split", choices=DELTA_SPLITS, default="fit",
                   help="how the bands split Delta: fit (default: calibrated on the trajectory's losses, eq. 8.10', "
                        "where the fit is informative, else the spectrum's) or spectrum (the gradient's spectral "
                        "measure at w_0, eq. 8.10); the JSON records both")
    e.add_argument("--heldout-steps", type=int, default=HELDOUT_STEPS,
                   help=f"steps of the held-out pilot (default {HELDOUT_STEPS}; 0: none): plain full-sync SGD recording "
                        "the training objective and the test-set loss at checkpoints, the constants' \"heldout\" "
                        "record, with which optimize-k's K* minimises the predicted test loss (eq. 8.14); give at "
                        "least the most rounds a K runs within the budget (optimize-k's T at K = 1)")
    e.add_argument("--heldout-lr", type=float, default=None,
                   help="the pilot's step size (default 0.5 / L, optimize-k's default step)")
    e.add_argument("--heldout-points", type=int, default=9, help="the pilot's checkpoints (default 9, >= 2)")
    e.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: 1 for models under 10^5 parameters, else torch's default)")
    o = parser.add_argument_group("output")
    o.add_argument("--out", type=Path, default=Path("constants.json"), help="constants JSON (default constants.json)")
    o.add_argument("--json", action="store_true", help="print the JSON instead of a table")
    o.add_argument("--quiet", action="store_true", help="no progress bar")


def train_config(args):
    """The TrainConfig whose problem is estimated: the flags over --config FILE (the file
    `lgc train --config` reads) over TrainConfig's defaults, exactly as `lgc train` reads them;
    so the data, partition, worker weights and initial model are those `lgc train` builds."""
    from dataclasses import replace

    from lgc.commands.train import config_from_args

    cfg = config_from_args(args)
    if getattr(args, "n_workers", None) is not None or args.config is None:
        cfg = replace(cfg, threshold_k=cfg.n_workers)  # K plays no part in the constants; keep it valid for any N
    # nor does --k auto, whose constants (--k-constants) are what this command writes
    cfg = replace(cfg, k_auto=False, budget=None, k_constants=None)
    return replace(cfg, device="cpu").resolved().validate()


def build_problem(args):
    """(EmpiricalProblem of lgc.estimate, QuadraticProblem or None, TrainConfig, held-out (x, y) or None: the
    task's test set as the model takes it) for the command line."""
    import torch

    from lgc.estimate import quadratic_problem, task_problem
    from lgc.task import make_task

    check(args.threads is None or args.threads >= 1, f"--threads {args.threads} must be >= 1")
    check(args.max_samples is None or args.max_samples >= 2, f"--max-samples {args.max_samples} must be >= 2")
    cfg = train_config(args)
    check(cfg.task.samples_per_worker is None or cfg.task.samples_per_worker >= 2,
          f"--samples-per-worker {cfg.task.samples_per_worker} must be >= 2")
    task = make_task(cfg, torch.device("cpu"))
    if cfg.task.dataset == "quadratic":
        n = args.max_samples or cfg.task.samples_per_worker  # a quadratic "sample" is a noise draw
        return quadratic_problem(task.problem, samples_per_worker=n, seed=cfg.seed), task.problem, cfg, None
    model = task.model
    if args.checkpoint is not None:
        check(Path(args.checkpoint).is_file(), f"--checkpoint {args.checkpoint}: no such file")
        try:
            model.load_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=True))
        except Exception as exc:  # a corrupt or foreign file is a user error
            check(False, f"--checkpoint {args.checkpoint}: cannot load as a {cfg.task.model} state_dict ({type(exc).__name__})")
    name = f"{cfg.task.dataset}/{cfg.task.model}/{cfg.task.partition}"
    held = (task.ds.normalize(task.ds.x_test), task.ds.y_test) if len(task.ds.y_test) else None
    return task_problem(task, max_samples=args.max_samples, name=name), None, cfg, held


def check_estimate_flags(args) -> None:
    """The estimation flags, named, before any work (a NaN step size used to fail at the end)."""
    import math

    check(args.trajectory_lr is None or (math.isfinite(args.trajectory_lr) and args.trajectory_lr > 0),
          f"--trajectory-lr {args.trajectory_lr} must be a finite number > 0")
    check(args.lbfgs_iters >= 1, f"--lbfgs-iters {args.lbfgs_iters} must be >= 1")
    check(args.bootstrap >= 10, f"--bootstrap {args.bootstrap} must be >= 10")
    check(args.l_bootstrap >= 0, f"--l-bootstrap {args.l_bootstrap} must be >= 0")
    check(args.power_iters >= 1, f"--power-iters {args.power_iters} must be >= 1")
    check(args.trajectory_steps >= 0, f"--trajectory-steps {args.trajectory_steps} must be >= 0")
    check(0 < args.level < 1, f"--level {args.level} must be in (0, 1)")
    check(args.bands >= 0, f"--bands {args.bands} must be >= 0")
    check(args.lanczos_steps >= 1, f"--lanczos-steps {args.lanczos_steps} must be >= 1")
    check(args.heldout_steps >= 0, f"--heldout-steps {args.heldout_steps} must be >= 0 (0: no held-out pilot)")
    check(args.heldout_lr is None or (math.isfinite(args.heldout_lr) and args.heldout_lr > 0),
          f"--heldout-lr {args.heldout_lr} must be a finite number > 0")
    check(args.heldout_points >= 2, f"--heldout-points {args.heldout_points} must be >= 2")


def _split_text(s: dict) -> str:
    """The table's line on Delta's split over the bands: both splits' shares and which one the model uses."""
    shares = lambda v: ", ".join(f"{x / max(sum(v), 1e-300):.2f}" for x in v)
    fit = "not fitted" if s["fit"] is None else shares(s["fit"]) + (f" (R^2 {s['r2']:.2f})" if s["r2"] is not None else "")
    return (f"Delta split: spectrum (8.10) {shares(s['spectrum'])}; fit (8.10') {fit}; "
            f"uses {s['used']}: {s['reason']}")


def run(args: argparse.Namespace) -> int:
    from lgc.commands._paths import check_writable_file
    from lgc.estimate import estimate_constants

    check_writable_file(args.out, "--out")  # before the estimate, which takes a while
    check_estimate_flags(args)
    problem, quad, cfg, held = build_problem(args)
    est = estimate_constants(
        problem, bootstrap=args.bootstrap, level=args.level, power_iters=args.power_iters, l_bootstrap=args.l_bootstrap,
        trajectory_steps=args.trajectory_steps, lr=args.trajectory_lr, lbfgs_iters=args.lbfgs_iters, seed=cfg.seed,
        threads=args.threads, quiet=args.quiet, bands=args.bands, lanczos_steps=args.lanczos_steps,
        worker_curvatures=args.worker_curvatures,
        delta_split=args.delta_split, heldout=held, heldout_steps=args.heldout_steps, heldout_lr=args.heldout_lr,
        heldout_points=args.heldout_points)
    constants = est.to_json()
    constants["source"].update({
        "command": "lgc estimate", "dataset": cfg.task.dataset, "model": None if quad else cfg.task.model,
        "partition": None if quad else cfg.task.partition, "seed": cfg.seed, "train_config": cfg.to_dict(),
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "inputs": input_record(args),  # every input file by content (sha256), not by path
    })
    if quad is not None:
        constants["source"]["exact"] = quad.constants()
    from lgc.runs import code_version

    constants["source"]["code_version"] = code_version()
    from theory.constants import CONSTANTS_FORMAT_VERSION, write_constants  # validates, writes atomically

    constants["format"] = CONSTANTS_FORMAT_VERSION
    try:
        write_constants(args.out, constants)
    except OSError as e:  # its message would name the temporary file beside --out
        raise UserError(f"--out {args.out}: cannot write it ({e.strerror})") from None
    if args.json:
        print(dumps(constants, indent=2, sort_keys=True))
        return 0
    lvl = f"{100 * args.level:g}% interval"
    print(f"{'constant':<8} {'estimate':>12}   {lvl}")
    for k in ("L", "sigma2", "zeta2", "Delta"):
        lo, hi = constants["intervals"][k]
        print(f"{k:<8} {constants[k]:>12.6g}   [{lo:.6g}, {hi:.6g}]")
    if constants.get("bands"):
        b = constants["bands"]
        print("bands:   h = " + ", ".join(f"{v:.3g}" for v in b["h"]) + "; shares of Delta, sigma2, zeta2: "
              + "; ".join(", ".join(f"{v / max(sum(b[k]), 1e-300):.2f}" for v in b[k]) for k in ("delta", "sigma2", "zeta2")))
        if b.get("delta_split"):
            print(_split_text(b["delta_split"]))
    if constants.get("heldout"):
        h = constants["heldout"]
        print(f"heldout: pilot of {h['steps'][-1]} steps ({h['epochs'][-1]:.3g} epochs) at lr {h['lr']:.4g}: F {h['train'][0]:.4g} -> "
              f"{h['train'][-1]:.4g}, test loss {h['heldout'][0]:.4g} -> {h['heldout'][-1]:.4g} (excess "
              f"{h['excess'][-1]:.4g}); optimize-k then minimises the predicted test loss (eq. 8.14)")
    if quad is not None:
        print("exact:   " + ", ".join(f"{k}={v:.6g}" for k, v in quad.constants().items()))
    print(f"wrote {args.out}")
    return 0
