"""`lgc estimate`: L, sigma^2, zeta^2 and Delta of a model on partitioned data, with bootstrap
intervals, written as the constants JSON that `lgc optimize-k --constants` reads.

    lgc estimate --dataset synthetic --model softmax --partition main-label --workers 10 \\
                 --classes-per-worker 3 --samples-per-worker 200 --out constants.json
    lgc estimate --config run.json --max-samples 500     # the problem `lgc train --config run.json` trains

The problem (data, partition, pi, initial weights) is built by the trainer's own code
(lgc.task.make_task), so the constants belong to the run that `lgc train` would make.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lgc.errors import check

DATASETS = ("synthetic", "quadratic", "cifar10")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="a TrainConfig JSON (as `lgc train --config` reads): estimate that run's problem; "
                             "the problem flags below are then ignored")
    g = parser.add_argument_group("problem")
    g.add_argument("--dataset", choices=DATASETS, default="synthetic",
                   help="synthetic: embedded non-IID classification; quadratic: the quadratics with known "
                        "constants (checks the estimator); cifar10: needs --data-dir")
    g.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 python-format folder")
    g.add_argument("--accept-md5-mismatch", action="store_true",
                   help="use CIFAR-10 files whose MD5 differs from the official release (warned)")
    g.add_argument("--model", default="softmax", help="softmax, mlp, cnn or resnet18 (default softmax; ignored for quadratic)")
    g.add_argument("--width", type=int, default=None, help="model width (channels / hidden units)")
    g.add_argument("--checkpoint", type=Path, default=None,
                   help="start from these weights (a state_dict saved by torch.save; loaded with weights_only=True)")
    g.add_argument("--partition", default="main-label", help="iid, main-label, dirichlet or shards")
    g.add_argument("--workers", "-N", type=int, default=10, help="N (default 10)")
    g.add_argument("--classes-per-worker", "-c", type=int, default=3, help="c of the main-label split (default 3)")
    g.add_argument("--samples-per-worker", type=int, default=200, help="samples per worker (default 200)")
    g.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration (default 0.5)")
    g.add_argument("--dim", type=int, default=10, help="quadratic: dimension d (default 10)")
    g.add_argument("--sigma2", type=float, default=1.0, help="quadratic: per-sample gradient variance (default 1)")
    g.add_argument("--spread", type=float, default=1.0, help="quadratic: spread of the worker optima (default 1)")
    g.add_argument("--seed", type=int, default=0, help="data, partition, model and bootstrap seed")
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
    e.add_argument("--lr", type=float, default=None, help="trajectory step size (default 1 / L at w_0)")
    e.add_argument("--lbfgs-iters", type=int, default=200, help="L-BFGS iterations for Delta (default 200)")
    e.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: 1 for models under 10^5 parameters, else torch's default)")
    o = parser.add_argument_group("output")
    o.add_argument("--out", type=Path, default=Path("constants.json"), help="constants JSON (default constants.json)")
    o.add_argument("--json", action="store_true", help="print the JSON instead of a table")


def train_config(args):
    """The TrainConfig whose problem is estimated: --config FILE (the file `lgc train --config`
    reads), else one built from the flags. Either way the data, partition, worker weights and
    initial model are exactly those `lgc train` builds from the same configuration."""
    from dataclasses import replace

    from lgc.config import TrainConfig

    if args.config is not None:
        cfg = TrainConfig.from_json(args.config)
    else:
        check(args.workers >= 1, f"--workers {args.workers} must be >= 1")
        cfg = TrainConfig(
            dataset=args.dataset, data_dir=str(args.data_dir) if args.data_dir else None,
            accept_md5_mismatch=args.accept_md5_mismatch, model=args.model, width=args.width,
            partition=args.partition, n_workers=args.workers, threshold_k=args.workers,
            classes_per_worker=args.classes_per_worker, samples_per_worker=args.samples_per_worker,
            dirichlet_alpha=args.alpha, quad_dim=args.dim, quad_sigma2=args.sigma2, quad_spread=args.spread,
            seed=args.seed)
    return replace(cfg, device="cpu").resolved().validate()


def build_problem(args):
    """(Problem of lgc.estimate, QuadraticProblem or None, TrainConfig) for the command line."""
    import torch

    from lgc.estimate import problem_from_model, quadratic_problem
    from lgc.task import make_task

    check(args.samples_per_worker >= 2, f"--samples-per-worker {args.samples_per_worker} must be >= 2")
    check(args.threads is None or args.threads >= 1, f"--threads {args.threads} must be >= 1")
    check(args.max_samples is None or args.max_samples >= 2, f"--max-samples {args.max_samples} must be >= 2")
    cfg = train_config(args)
    task = make_task(cfg, torch.device("cpu"))
    if cfg.dataset == "quadratic":
        n = args.max_samples or args.samples_per_worker  # a quadratic "sample" is a noise draw
        return quadratic_problem(task.problem, samples_per_worker=n, seed=cfg.seed), task.problem, cfg
    model = task.model
    if args.checkpoint is not None:
        check(args.checkpoint.is_file(), f"--checkpoint {args.checkpoint}: no such file")
        try:
            model.load_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=True))
        except Exception as exc:  # a corrupt or foreign file is a user error
            check(False, f"--checkpoint {args.checkpoint}: cannot load as a {cfg.model} state_dict ({type(exc).__name__})")
    workers = []
    for part in task.parts:
        idx = torch.from_numpy(part[: args.max_samples] if args.max_samples else part)
        workers.append((task.ds.normalize(task.ds.x_train[idx]), task.ds.y_train[idx]))
    return problem_from_model(model, workers, pi=task.pi, name=f"{cfg.dataset}/{cfg.model}/{cfg.partition}"), None, cfg


def run(args: argparse.Namespace) -> int:
    from lgc.commands._paths import check_writable_file
    from lgc.estimate import estimate_constants

    check_writable_file(args.out, "--out")  # before the estimate, which takes a while
    problem, quad, cfg = build_problem(args)
    est = estimate_constants(
        problem, bootstrap=args.bootstrap, level=args.level, power_iters=args.power_iters, l_bootstrap=args.l_bootstrap,
        trajectory_steps=args.trajectory_steps, lr=args.lr, lbfgs_iters=args.lbfgs_iters, seed=cfg.seed,
        threads=args.threads)
    constants = est.to_json()
    constants["source"].update({
        "command": "lgc estimate", "dataset": cfg.dataset, "model": None if quad else cfg.model,
        "partition": None if quad else cfg.partition, "seed": cfg.seed, "train_config": cfg.to_dict(),
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
    })
    if quad is not None:
        constants["source"]["exact"] = quad.constants()
    from lgc.runs import code_version

    constants["source"]["code_version"] = code_version()
    from theory.constants import CONSTANTS_FORMAT_VERSION, write_constants  # validates, writes atomically

    constants["format"] = CONSTANTS_FORMAT_VERSION
    write_constants(args.out, constants)
    if args.json:
        print(json.dumps(constants, indent=2, sort_keys=True))
        return 0
    lvl = f"{100 * args.level:g}% interval"
    print(f"{'constant':<8} {'estimate':>12}   {lvl}")
    for k in ("L", "sigma2", "zeta2", "Delta"):
        lo, hi = constants["intervals"][k]
        print(f"{k:<8} {constants[k]:>12.6g}   [{lo:.6g}, {hi:.6g}]")
    if quad is not None:
        print("exact:   " + ", ".join(f"{k}={v:.6g}" for k, v in quad.constants().items()))
    print(f"wrote {args.out}")
    return 0
