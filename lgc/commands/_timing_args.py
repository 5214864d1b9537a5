"""Timing flags shared by `lgc optimize-k` and `lgc train` (SPEC section 2).

    --timing NAME              shifted-exp (default), pareto, lognormal, heterogeneous,
                               deterministic, trace, trace-fit
    --timing-param KEY=VALUE   a parameter of the model (repeatable; VALUE is JSON or text):
                               rate=0.5, shift=1, per_block=true, slowdown=3, slow_fraction=0.2,
                               hold=speed, times=[1,1,2], path=trace.csv, ...
    --straggling-period H      h: drawn times are held for h rounds
    --semantics S              boundary (default) or abort (--abort-at-cutoff is the same)
    --comm-alpha A, --comm-beta B, --model-bytes BYTES   comm = A + B * bytes sent (eq. 2.5)

No torch import here: `lgc optimize-k` stays light.
"""
from __future__ import annotations

import argparse
import json

from lgc.errors import check


def add_timing_arguments(parser: argparse.ArgumentParser, *, schedule: bool = True) -> None:
    """Add the timing flags; schedule=False leaves out --straggling-period, --semantics and comm."""
    from theory.timing import MODEL_NAMES

    g = parser.add_argument_group("timing model")
    g.add_argument("--timing", default="shifted-exp", metavar="NAME",
                   help=f"timing model: {', '.join(MODEL_NAMES)} (default: shifted-exp)")
    g.add_argument("--timing-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the timing model (repeatable), e.g. rate=0.5, slowdown=3, path=trace.csv")
    if not schedule:
        return
    g.add_argument("--straggling-period", type=int, default=1, metavar="H",
                   help="h, rounds for which the drawn times are held (default: 1)")
    g.add_argument("--semantics", default="boundary", choices=("boundary", "abort"),
                   help="boundary: stragglers finish the block in flight (default); abort: cut at t_cut")
    g.add_argument("--abort-at-cutoff", dest="semantics", action="store_const", const="abort",
                   help="same as --semantics abort")
    g.add_argument("--comm-alpha", type=float, default=0.0, metavar="A", help="latency per round [time units]")
    g.add_argument("--comm-beta", type=float, default=0.0, metavar="B", help="time per byte sent [time units]")
    g.add_argument("--model-bytes", type=float, default=0.0, metavar="BYTES", help="bytes of one gradient message")


def timing_params_from_args(args) -> dict:
    params = {}
    for item in getattr(args, "timing_param", []) or []:
        check("=" in item, f"--timing-param {item!r} must look like KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            params[k.strip()] = v
    return params


def timing_from_args(args):
    """The TimingModel the flags describe (TheoryInputError names a bad name or parameter)."""
    from theory.timing import make_timing_model

    return make_timing_model(args.timing, **timing_params_from_args(args))


def comm_from_args(args):
    from theory.order_stats import CommModel

    return CommModel(alpha=getattr(args, "comm_alpha", 0.0), beta=getattr(args, "comm_beta", 0.0),
                     model_bytes=getattr(args, "model_bytes", 0.0))
