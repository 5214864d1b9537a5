"""`lgc train`: full-sync, fastest-K, lgc, lgc-fresh or anytime-minibatch (SPEC sections 3, 5).

Every TrainConfig field is a flag (--n-workers, --threshold-k, ...) and a key of the JSON file
given with --config; flags override the file, the file overrides the defaults. The run goes
to results/train/<key>/ (config.json, meta.json, data.json, rounds.csv, schedule.csv,
checkpoint.pt, final.json); a finished identical run is reused (--force reruns); an unfinished
one resumes from its last checkpoint (--no-resume starts over).
"""
from __future__ import annotations

import argparse
import json
import os
import typing
from dataclasses import MISSING, fields

from lgc.config import TrainConfig, read_json_object
from lgc.errors import UserError, check

HELP = {
    "algorithm": "full-sync, fastest-k, lgc, lgc-fresh or anytime-minibatch",
    "n_workers": "N, number of workers",
    "threshold_k": "K, the server waits for the K fastest workers",
    "batch_size": "B, samples per worker per round",
    "blocks": "M, blocks per mini-batch (B must be divisible by M)",
    "rounds": "T, number of rounds",
    "warmup_rounds": "full-sync rounds at the start",
    "lr": "step size eta",
    "momentum": "server heavy-ball momentum",
    "weight_decay": "server weight decay",
    "dataset": "synthetic (embedded classification), quadratic (exact constants) or cifar10",
    "data_dir": "CIFAR-10 folder (holding cifar-10-batches-py/)",
    "accept_md5_mismatch": "use CIFAR-10 files whose MD5 differs from the official release",
    "augment": "random crop + flip on the device (default: on for cifar10)",
    "model": "resnet18, cnn, mlp or softmax",
    "width": "channels / hidden units (default per model)",
    "norm": "group (default) or batch (statistics per block of b samples)",
    "partition": "iid, main-label, dirichlet or shards",
    "classes_per_worker": "c, classes per worker (main-label)",
    "samples_per_worker": "samples per worker (main-label, iid)",
    "main_share": "share of a worker's samples from its main class (main-label)",
    "dirichlet_alpha": "Dirichlet concentration (dirichlet)",
    "min_size": "minimum samples per worker (dirichlet)",
    "shards_per_worker": "shards per worker (shards)",
    "worker_weights": "pi: uniform (1/N) or size (data-size share)",
    "synthetic_train": "training samples of the synthetic problem",
    "synthetic_test": "test samples of the synthetic problem",
    "synthetic_signal": "prototype scale of the synthetic problem (difficulty)",
    "synthetic_side": "synthetic images are 3 x side x side",
    "quad_dim": "dimension d of the quadratics",
    "quad_h_min": "smallest curvature h",
    "quad_h_max": "largest curvature h (= L)",
    "quad_spread": "scale of the workers' optima c_i",
    "quad_sigma2": "per-sample gradient variance sigma^2",
    "timing": "timing model (shifted-exp, heterogeneous, pareto, lognormal, deterministic, trace, ...)",
    "straggling_period": "h, rounds for which the drawn times are held",
    "semantics": "boundary (stragglers finish the block in flight) or abort (cut at t_cut)",
    "comm_alpha": "communication latency per round [time units]",
    "comm_beta": "communication time per byte sent [time units]",
    "deadline": "anytime-minibatch deadline [time units] (default E[X_(K:N)])",
    "schedule_file": "replay a recorded schedule.csv instead of the timing model",
    "seed": "seed of timing, mini-batches, augmentation and initial weights",
    "data_seed": "seed of the synthetic data and the partition (default: --seed)",
    "eval_every": "test evaluation every n rounds (0: only at the end)",
    "checkpoint_every": "checkpoint every n rounds (0: only at the end)",
    "device": "auto, cpu or cuda[:i]",
    "engine": "gradient engine: batched (one backward per group) or fused (one backward, split weight gradients)",
    "compile": "torch.compile of the gradient pass: none, default, reduce-overhead or max-autotune",
    "backend": "sim (one process, virtual clock) or dist (torch.distributed)",
}
METAVAR = {"data_dir": "DIR", "schedule_file": "FILE"}  # other text options: NAME
# the dist flags' defaults (add_arguments moves them here) and the DistOptions fields named otherwise
DIST_DEFAULTS: dict = {}
DIST_DEST = {"process_backend": "dist_backend", "host": "rendezvous_host", "reduce": "dist_reduce"}
SHORT = {"n_workers": "-N", "threshold_k": "-K", "batch_size": "-B", "blocks": "-M", "rounds": "-T"}
# the names `lgc optimize-k` and `lgc estimate` use for the same quantities
ALIASES = {"n_workers": ["--workers"], "threshold_k": ["--k"]}


def _base_type(tp):
    """int / float / str / bool from a field's annotation (Optional[...] unwrapped)."""
    if isinstance(tp, str):
        tp = eval(tp, {"Optional": typing.Optional, "dict": dict})  # annotations are strings (future import)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="JSON file of TrainConfig keys (flags override it)")
    for f in fields(TrainConfig):
        if f.name == "timing_params":
            continue
        flag = "--" + f.name.replace("_", "-")
        names = ([SHORT[f.name]] if f.name in SHORT else []) + [flag] + ALIASES.get(f.name, [])
        tp = _base_type(f.type)
        default = f.default if f.default is not MISSING else None
        text = f"{HELP.get(f.name, '')} (default: {default})"
        if tp is bool:
            p.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            p.add_argument(*names, dest=f.name, type=tp, default=None, help=text,
                           metavar=f.name.upper() if tp is not str else METAVAR.get(f.name, "NAME"))
    p.add_argument("--timing-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the timing model (repeatable), e.g. rate=0.5 or slowdown=3")
    p.add_argument("--results", metavar="DIR", help="results root (default: $LGC_RESULTS, else results/ in the repository)")
    p.add_argument("--force", action="store_true", help="rerun even if a finished identical run exists")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue an unfinished run from its last checkpoint (default: on)")
    p.add_argument("--stop-after", type=int, metavar="ROUNDS",
                   help="checkpoint and stop after this many rounds in this call (continue later)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="checkpoint and stop after this many seconds (continue later)")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest for small models)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the run directory and final metrics as JSON")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    try:  # the dist backend's own flags, when it is built
        import lgc.dist as dist
    except ImportError:
        return
    if hasattr(dist, "add_dist_arguments"):
        known = {a.dest for a in p._actions}
        dist.add_dist_arguments(p)
        for a in p._actions:  # None until parsed: a flag beats the config file's "dist", which beats the default
            if a.dest not in known:
                DIST_DEFAULTS[a.dest] = a.default
                a.default = None


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _dist_flags(args) -> None:
    """Fill the dist flags not given: from the config file's "dist" object (a dist run's
    config.json records its DistOptions there), else their defaults."""
    recorded = read_json_object(args.config).get("dist") or {} if args.config else {}
    check(isinstance(recorded, dict), f"config file {args.config}: \"dist\" must be a JSON object")
    for name, value in recorded.items():
        dest = DIST_DEST.get(name, name)
        check(dest in DIST_DEFAULTS or dest == "threads",
              f"config file {args.config}: unknown dist option {name!r} (valid: see `lgc train --help`)")
        if getattr(args, dest, None) is None:
            setattr(args, dest, value)
    for dest, default in DIST_DEFAULTS.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, default)


def config_from_args(args) -> TrainConfig:
    _dist_flags(args)
    base = TrainConfig.from_json(args.config).to_dict() if args.config else {}
    for f in fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            base[f.name] = v
    if args.timing_param:
        params = dict(base.get("timing_params") or {})
        for item in args.timing_param:
            check("=" in item, f"--timing-param {item!r} must look like KEY=VALUE")
            k, v = item.split("=", 1)
            params[k.strip()] = _parse_value(v)
        base["timing_params"] = params
    _check_types(base)
    return TrainConfig.from_dict(base, source=args.config or "flags")


def _check_types(d: dict) -> None:
    """A JSON file could hold "rounds": "ten"; name the key and the expected type."""
    for f in fields(TrainConfig):
        if f.name not in d or d[f.name] is None:
            continue
        tp, v = _base_type(f.type), d[f.name]
        ok = isinstance(v, tp) and not (tp is int and isinstance(v, bool))
        if tp is float and isinstance(v, int) and not isinstance(v, bool):
            d[f.name], ok = float(v), True
        check(ok, f"config key {f.name!r}={v!r} must be {tp.__name__}")


def run(args) -> int:
    check(args.stop_after is None or args.stop_after >= 1, f"--stop-after={args.stop_after} must be >= 1")
    check(args.time_limit is None or args.time_limit > 0, f"--time-limit={args.time_limit} must be > 0")
    cfg = config_from_args(args).resolved().validate()
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        return 0
    if args.threads is not None:
        import torch

        check(args.threads >= 1, f"--threads={args.threads} must be >= 1")
        torch.set_num_threads(args.threads)
    common = dict(root=args.results, force=args.force, resume=args.resume, quiet=args.quiet)
    if cfg.backend == "dist":
        path = _run_dist(cfg, args, common)
        if not _dist_rank0():
            return 0  # under torchrun only rank 0 reports (its machine holds the run directory)
    else:
        from lgc.sim import train

        path = train(cfg, stop_after=args.stop_after, time_limit_s=args.time_limit, **common)
    return _report(path, args)


def _run_dist(cfg, args, common):
    """The dist backend lives in lgc/dist (its own engineer); this is its hook."""
    try:
        import lgc.dist as dist
    except ImportError:
        raise UserError("--backend dist: not built yet") from None
    if not hasattr(dist, "run_dist"):
        raise UserError("--backend dist: not built yet")
    options = dist.options_from_args(args) if hasattr(dist, "options_from_args") else None
    return dist.run_dist(cfg, options, **common)


def _dist_rank0() -> bool:
    """False on the ranks other than 0 of a torchrun launch."""
    from lgc.dist.launch import under_torchrun

    return not under_torchrun() or int(os.environ["RANK"]) == 0


def _report(path, args) -> int:
    from lgc import runs

    final = path / "final.json"
    done = final.exists()
    out = {"run_dir": str(path), "complete": done}
    if done:
        try:
            out.update(json.loads(final.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{final} is corrupt (not JSON): rerun with --force to train the run again") from None
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    if not done:
        rows = runs.read_csv(path / "rounds.csv") if (path / "rounds.csv").exists() else []
        print(f"stopped after round {len(rows)}; continue with the same command  {path}")
        return 0
    keys = [k for k in ("rounds", "time", "loss", "test_acc", "test_loss", "dist_opt", "grad_norm2_mean",
                        "rounds_per_s") if out.get(k) is not None]
    print("  ".join(f"{k}={out[k]:.4g}" if isinstance(out[k], float) else f"{k}={out[k]}" for k in keys))
    print(path)
    return 0

