"""The timing model and communication cost of `lgc optimize-k`, from the flags that
lgc/commands/_config_args.py generates from TrainConfig's timing fields (--timing,
--timing-param KEY=VALUE, --straggling-period, --semantics, --comm-alpha, --comm-beta), plus
--model-bytes, the message size that eq. 2.5 multiplies by comm_beta (`lgc train` knows it
from the model).

No torch import here: `lgc optimize-k` stays light.
"""
from __future__ import annotations

import argparse

from lgc.commands._config_args import add_config_arguments, parse_timing_params
from lgc.config import TrainConfig

TIMING_FIELDS = ("timing", "timing_params", "straggling_period", "semantics", "comm_alpha", "comm_beta")


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """The timing flags, with TrainConfig's names, help and defaults."""
    g = parser.add_argument_group("timing model")
    add_config_arguments(g, TrainConfig, only=TIMING_FIELDS, layered=False)
    g.add_argument("--model-bytes", type=float, default=0.0, metavar="BYTES",
                   help="bytes of one gradient message (eq. 2.5) (default: 0)")


def timing_from_args(args):
    """The TimingModel the flags describe (TheoryInputError names a bad name or parameter)."""
    from theory.timing_factory import make_timing_model

    return make_timing_model(args.timing, **parse_timing_params(args.timing_params))


def comm_from_args(args):
    from theory.order_stats import CommModel

    return CommModel(alpha=args.comm_alpha, beta=args.comm_beta, model_bytes=args.model_bytes)
