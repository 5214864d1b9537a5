"""`lgc figures`: draw the quick-profile figures (CPU, embedded data) or the paper profile's
(`--profile paper`: CIFAR-10 at the GPU scale; `--profile cifar`: the same profile at CPU scale,
`make figures-cifar`).

lgc never imports paper_figures (package direction theory <- lgc <- paper_figures): this
command runs the profile's script, `python -m paper_figures.quick` or `python -m
paper_figures.paper`, in a child process with this interpreter and passes every other flag to
it unchanged. The scripts declare and check their flags, once; their output and exit status are
this command's.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading

PASS_THROUGH = True  # lgc.cli hands the flags this parser does not know to run() as args.passed
PROFILES = {"quick": ("paper_figures.quick",),
            "paper": ("paper_figures.paper", "--scale", "paper"),
            "cifar": ("paper_figures.paper", "--scale", "cpu")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=tuple(PROFILES), default="quick",
                        help="quick: CPU, embedded data, a few minutes (default); paper: CIFAR-10 on a GPU; "
                             "cifar: the paper profile at CPU scale (small CNN, about an hour on 2 cores)")
    parser.epilog = ("Every other flag goes to the profile's script: see `python -m paper_figures.quick --help` "
                     "(--only, --out, --quiet) and `python -m paper_figures.paper --help` (--data-dir, --only, "
                     "--out, --constants, --tiny, --plan, --chunk-minutes, --archive, --processes, ...).")


def _relay(stream, into) -> None:
    """Copy a child's pipe to one of this process's streams as it comes (progress bars included)."""
    for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
        into.write(chunk.decode(errors="replace"))
        into.flush()


def run(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", *PROFILES[args.profile], *args.passed]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        relays = [threading.Thread(target=_relay, args=(child.stdout, sys.stdout), daemon=True),
                  threading.Thread(target=_relay, args=(child.stderr, sys.stderr), daemon=True)]
        for r in relays:
            r.start()
        try:
            status = child.wait()
        except KeyboardInterrupt:  # the child got the same SIGINT and checkpoints its run
            status = child.wait()
        for r in relays:
            r.join()
    return status
