"""`lgc train`: full-sync, fastest-K, lgc, lgc-fresh or anytime-minibatch (README "Algorithms").

Every TrainConfig and DistOptions field is a flag (--workers, --k, --blocks, ...; lgc/config.py)
and a key of the JSON file given with --config (DistOptions under "dist"); flags override the file, the file overrides the defaults. The run goes
to results/train/<key>/ (config.json, meta.json, data.json, rounds.csv, schedule.csv,
checkpoint.pt, final.json); a finished identical run is reused (--force reruns); an unfinished
one resumes from its last checkpoint (--no-resume starts over).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys

from lgc.commands._config_args import add_config_arguments, config_values
from lgc.commands._paths import input_path
from lgc.config import DistOptions, TrainConfig, read_json_object
from lgc.errors import check
from lgc.protocol import DIVERGED
from theory.jsonio import dumps


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", type=input_path, help="JSON file of TrainConfig keys (flags override it)")
    p.add_argument("--task", metavar="MODULE:FUNCTION", help="train the lgc.Task that FUNCTION() returns (your own "
                   "model and data; MODULE importable or a FILE.py) instead of --dataset/--model (README 'Python API')")
    add_config_arguments(p, TrainConfig)
    p.add_argument("--results", metavar="DIR", help="results root (default: $LGC_RESULTS, else results/ in the repository)")
    p.add_argument("--force", action="store_true", help="rerun even if a finished identical run exists")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue an unfinished run from its last checkpoint (default: on)")
    p.add_argument("--stop-after", type=int, metavar="ROUNDS",
                   help="checkpoint and stop after this many rounds in this call (continue later)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="checkpoint and stop after this many seconds (continue later)")
    p.add_argument("--quiet", action="store_true",
                   help="print only errors and warnings: no progress bar, summary, note, run path, nor the 'lgc:' "
                        "lines about reused or resumed runs; the exit status tells how it ended (0 finished or "
                        "stopped, 2 bad input, 3 diverged); --json and --print-config still print")
    p.add_argument("--json", action="store_true", help="print the run directory and final metrics as JSON")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    add_config_arguments(p.add_argument_group("dist backend (--backend dist; --threads also sets sim's)"), DistOptions)


def _file(args) -> tuple[dict, dict]:
    """The config file's TrainConfig keys and its "dist" object (a dist run's config.json
    records its DistOptions there); both empty without --config."""
    if not args.config:
        return {}, {}
    d = read_json_object(args.config)
    recorded = d.pop("dist", None) or {}
    d.pop("theory", None)  # a run's record of the bounds' assumptions, not an option
    check(isinstance(recorded, dict), f"config file {args.config}: \"dist\" must be a JSON object")
    return TrainConfig.from_dict(d, source=args.config).to_dict(), recorded


def config_from_args(args) -> TrainConfig:
    """Flags over the config file over the defaults."""
    base, _ = _file(args)
    return TrainConfig.from_dict(config_values(TrainConfig, args, base, source=args.config or "flags"),
                                 source=args.config or "flags")


def options_from_args(args) -> DistOptions:
    """The dist options: flags over the config file's "dist" object over the defaults."""
    _, recorded = _file(args)
    source = f"config file {args.config}" if args.config else "flags"
    return DistOptions.from_dict(config_values(DistOptions, args, recorded, source=source), source=source)


def run(args) -> int:
    check(args.stop_after is None or args.stop_after >= 1, f"--stop-after={args.stop_after} must be >= 1")
    check(args.time_limit is None or args.time_limit > 0, f"--time-limit={args.time_limit} must be > 0")
    check(args.results is None or args.results.strip() != "",
          "--results '': an empty folder name; give a folder or leave the flag out ($LGC_RESULTS, else results/)")
    task = None
    if args.task:  # the user's Task: its N, engine and the fields it replaces (lgc.api.task_config)
        from lgc.api import load_task, task_config

        task = load_task(args.task)
        base, _ = _file(args)
        cfg = task_config(task, config_values(TrainConfig, args, base, source=args.config or "flags"))
    else:
        cfg = config_from_args(args)
    cfg = cfg.resolved().validate()
    if args.print_config:
        print(dumps(cfg.to_dict(), indent=2, sort_keys=True))
        return 0
    options = options_from_args(args)
    check(args.threads is None or args.threads >= 1, f"--threads={args.threads} must be >= 1")
    from lgc.threads import default_threads

    # sim: --threads, else 1 for the small models (dist workers: DistOptions.threads, default 1)
    threads = args.threads if args.threads is not None else default_threads(cfg.task.model)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    common = dict(root=args.results, force=args.force, resume=args.resume, quiet=args.quiet)
    with _errors_only(args.quiet):
        if cfg.backend == "dist":
            from lgc.dist import run_dist
            from lgc.dist.launch import is_rank0

            path = run_dist(cfg, options, task=args.task, **common)
            if not is_rank0():
                return 0  # under torchrun only rank 0 reports (its machine holds the run directory)
        else:
            from lgc.sim import train

            path = train(cfg, stop_after=args.stop_after, time_limit_s=args.time_limit, task=task, **common)
    return _report(path, args)


class _DropNotes:
    """stderr under --quiet: drops lgc.runs.say's notes (one write per "lgc: ..." line), passes the rest
    (errors and warnings, whose lines start "lgc train" or name their source)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return len(text) if text.startswith("lgc: ") else self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _errors_only(quiet: bool):
    if not quiet:
        yield
        return
    with contextlib.redirect_stderr(_DropNotes(sys.stderr)):
        yield


EXIT_DIVERGED = 3  # the run stopped because it diverged (final.json "status": "diverged")


def _report(path, args) -> int:
    from lgc import runs

    final = path / "final.json"
    done = final.exists()
    out = {"run_dir": str(path), "complete": done}
    if done:
        try:
            recorded = json.loads(final.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            recorded = None
        check(isinstance(recorded, dict),
              f"{final} is corrupt (not a JSON object): rerun with --force to train the run again")
        out.update(recorded)
    failed = out.get("status") == DIVERGED
    if failed:  # one line, whether the run diverged now or a cached run did
        sys.stderr.write(f"lgc train: {out.get('message', 'the run diverged')}  {path}\n")
    if args.json:
        print(dumps(out, indent=2, sort_keys=True))
        return EXIT_DIVERGED if failed else 0
    if failed:
        return EXIT_DIVERGED
    if args.quiet:
        return 0
    if not done:
        rows = runs.read_csv(path / "rounds.csv") if (path / "rounds.csv").exists() else []
        print(f"stopped after round {len(rows)}; continue with the same command  {path}")
        return 0
    keys = [k for k in ("rounds", "time", "loss", "test_acc", "test_loss", "dist_opt", "grad_norm2_mean",
                        "rounds_per_s") if out.get(k) is not None]
    print("  ".join(f"{k}={out[k]:.4g}" if isinstance(out[k], float) else f"{k}={out[k]}" for k in keys))
    auto = out.get("k_auto")
    if auto:  # --k auto: say so, and what it chose (refits.csv has every refit)
        how = auto.get("criterion", "bound")  # runs finished before --k-criterion: the bound chose
        print(f"K auto (budget {auto['budget']:g}, criterion {how}): {auto['refits']} refits, K chosen "
              f"{' '.join(map(str, auto['k_chosen'])) or 'none yet'}, last K {auto['k_last']}")
    departures = (out.get("theory") or {}).get("departures") or []
    if departures:
        print(f"note: outside the bounds' assumptions: {'; '.join(departures)}")
    print(path)
    return 0

