"""Timing models by name: the one factory the command line, the config and the figures use.

It lives apart from theory/timing.py (the models) because it also builds the trace replay of
theory/trace.py, which is itself a timing model: timing <- trace <- timing_factory, no circle.
"""
from __future__ import annotations

import numpy as np

from theory.errors import require
from theory.timing import Deterministic, HeterogeneousSpeed, LogNormal, Pareto, ShiftedExponential
from theory.timing_model import TimingModel
from theory.trace import TraceReplay, fit_shifted_exponential_csv


def _registry():
    return {
        "shifted-exp": ShiftedExponential,
        "pareto": Pareto,
        "lognormal": LogNormal,
        "heterogeneous": HeterogeneousSpeed,
        "deterministic": Deterministic,
        "trace": TraceReplay.from_csv,
        "trace-fit": fit_shifted_exponential_csv,
    }


MODEL_NAMES = ("shifted-exp", "pareto", "lognormal", "heterogeneous", "deterministic", "trace", "trace-fit")


def make_timing_model(name: str, **params) -> TimingModel:
    """Build a timing model by name; parameters are validated (TheoryInputError names the bad one).

    shifted-exp(shift=1, rate=1, per_block=False); pareto(scale=1, alpha=3, per_block=False);
    lognormal(mu=0, sigma=0.5, shift=0, per_block=False);
    heterogeneous(slow_fraction=0.2, slowdown=3, shift=1, rate=1, slow_workers="first", hold="times");
    deterministic(times=(), slow_fraction=0.2, slowdown=2); trace(path); trace-fit(path).
    Any model also takes change_round=R, change_workers=[j, ...] (default [0]) and
    change_slowdown=s (default 5): those workers are s times slower from round R on
    (theory.timing_workers.SpeedChange, eq. 7.6).
    """
    import inspect

    from theory.timing_workers import CHANGE_PARAMS, SpeedChange, split_change_params

    params, change = split_change_params(params)

    reg = _registry()
    require(name in reg, f"timing model {name!r} is unknown; valid: {', '.join(MODEL_NAMES)}")
    factory = reg[name]
    sig = inspect.signature(factory)
    allowed = [p for p in sig.parameters if p not in ("name", "iid", "self")]
    for k in params:
        require(k in allowed, f"timing model {name!r} has no parameter {k!r}; valid: {', '.join((*allowed, *CHANGE_PARAMS))}")
    for k in allowed:
        require(k in params or sig.parameters[k].default is not inspect.Parameter.empty,
                f"timing model {name!r} needs the parameter {k!r} (e.g. {k}=trace.csv)" if k == "path"
                else f"timing model {name!r} needs the parameter {k!r}")
    for k, v in params.items():
        default = sig.parameters[k].default
        if isinstance(default, bool):
            require(isinstance(v, bool), f"{k}={v!r} must be true or false")
        elif isinstance(default, (int, float)):
            require(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v),
                    f"{k}={v!r} must be a finite number")
        elif isinstance(default, str) or default is inspect.Parameter.empty:
            require(isinstance(v, str), f"{k}={v!r} must be a string")
        elif isinstance(default, tuple):
            require(isinstance(v, (list, tuple)), f"{k}={v!r} must be a list of numbers")
            for x in v:
                require(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x),
                        f"{k}: {x!r} must be a finite number")
    model = factory(**params)
    return model if change is None else SpeedChange(base=model, **change)
