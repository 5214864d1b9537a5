"""`lgc figures`: draw the quick-profile (CPU, embedded data) or paper-profile figures (GPU scale,
or `--profile cifar`: the same profile at CPU scale, `make figures-cifar`).

paper_figures is imported inside run(), so `lgc --help` stays fast and lgc never needs it
to import.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lgc.errors import UserError, check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=("quick", "paper", "cifar"), default="quick",
                        help="quick: CPU, embedded data, a few minutes (default); paper: CIFAR-10 on a GPU; "
                             "cifar: the paper profile at CPU scale (small CNN, about an hour on 2 cores)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="draw only these figures (module names without fig_, e.g. tradeoff)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default paper_figures/out/<profile>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    paper = parser.add_argument_group("paper profile (`make figures-paper`; --profile cifar: `make figures-cifar`)")
    paper.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 folder (holding cifar-10-batches-py/)")
    paper.add_argument("--accept-md5-mismatch", action="store_true", help="use CIFAR-10 files whose MD5 differs")
    paper.add_argument("--constants", type=Path, default=None,
                       help="constants JSON of `lgc estimate` for the bound curves")
    paper.add_argument("--tiny", action="store_true", help="tiny CPU scale: a smoke test of the whole profile")
    paper.add_argument("--plan", action="store_true", help="print the runs and the GPU-time estimate, run nothing")
    paper.add_argument("--chunk-minutes", type=float, default=None,
                       help="stop cleanly within this time; run again to continue (default 9)")
    paper.add_argument("--archive", type=Path, default=None, help="also pack run records and figures into this .tar.gz")
    paper.add_argument("--processes", type=int, default=None, help="independent runs at a time (default 1)")


def run(args: argparse.Namespace) -> int:
    if args.out is not None:  # one line now, rather than one traceback per figure later
        above = Path(args.out).absolute().parent  # created: the folder named, not the ones above it
        check(above.is_dir(), f"--out {args.out}: folder {above} does not exist")
        try:
            Path(args.out).mkdir(exist_ok=True)
        except OSError as e:
            raise UserError(f"--out {args.out}: cannot create the folder ({e.strerror})") from None
    if args.profile in ("paper", "cifar"):
        from paper_figures import paper

        check(args.data_dir is not None, f"--profile {args.profile} needs --data-dir (the CIFAR-10 folder)")
        argv = ["--data-dir", str(args.data_dir), "--scale", "cpu" if args.profile == "cifar" else "paper"]
        argv += ["--processes", str(args.processes)] if args.processes is not None else []
        argv += ["--accept-md5-mismatch"] if args.accept_md5_mismatch else []
        argv += ["--constants", str(args.constants)] if args.constants else []
        argv += ["--only", ",".join(args.only)] if args.only else []
        argv += ["--out", str(args.out)] if args.out else []
        argv += ["--quiet"] if args.quiet else []
        argv += ["--tiny"] * args.tiny + ["--plan"] * args.plan
        argv += ["--chunk-minutes", str(args.chunk_minutes)] if args.chunk_minutes is not None else []
        argv += ["--archive", str(args.archive)] if args.archive else []
        return int(paper.main(argv) or 0)
    for flag, given in (("--tiny", args.tiny), ("--plan", args.plan), ("--chunk-minutes", args.chunk_minutes),
                        ("--archive", args.archive), ("--processes", args.processes)):
        check(not given, f"{flag} applies to --profile paper or cifar only")
    from paper_figures import quick

    known = quick.discover()
    for name in args.only or []:
        mod = name if name.startswith("fig_") else f"fig_{name}"
        check(mod in known, f"--only {name}: no such figure; known: {', '.join(n[4:] for n in known)}")
    argv: list[str] = []
    if args.only:
        argv += ["--only", *args.only]
    if args.out is not None:
        argv += ["--out", str(args.out)]
    if args.quiet:
        argv.append("--quiet")
    return quick.main(argv, profile="quick")
