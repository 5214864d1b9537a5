"""Successive halving over arms, with seeds as the resource (used by `lgc sweep-k`).

Successive halving (Karnin, Koren and Somekh, ICML 2013; Jamieson and Talwalkar, AISTATS 2016):
measure every arm cheaply, keep the best 1/r, give the survivors r times the resource, repeat.
Here an arm is a straggler threshold K and the resource is the number of seeds: every measurement
is a whole run at the budget tau, never a run cut short, because the loss at a fraction of tau
ranks K differently from the loss at tau (a small K fits more rounds in any horizon, and the
horizon is what K trades against error). A seed measured at an early rung is reused at the later
ones, so a survivor costs only its new seeds.

Pure: `measure(arm, seed) -> float` is the caller's (a training run); nothing here prints, reads or
writes. No torch.
"""
from __future__ import annotations

import math
from typing import Callable, Hashable, NamedTuple, Sequence

import numpy as np


class Rung(NamedTuple):
    arms: int    # arms measured at this rung
    seeds: int   # seeds each of them has once the rung is done


class Halving(NamedTuple):
    """The outcome: every measurement, the rung at which each arm stopped, and the best arm."""
    values: dict          # arm -> {seed: value}
    last_rung: dict       # arm -> index of the last rung it was measured at
    rungs: tuple          # the plan (Rung per rung)
    best: Hashable        # the arm of the lowest mean among those measured at the last rung


def plan(n_arms: int, n_seeds: int, *, reduction: int = 2, min_seeds: int = 1, halving: bool = True) -> tuple:
    """The rungs: rung i measures ceil(n_{i-1} / r) arms (n_0 = every arm) with min(S, s0 r^i)
    seeds each; the last rung is the first one whose arms have all S seeds, reached at once when
    one arm is left. halving=False: one rung, every arm, every seed."""
    if n_arms < 1 or n_seeds < 1:
        raise ValueError(f"n_arms={n_arms} and n_seeds={n_seeds} must be >= 1")
    if not halving:
        return (Rung(n_arms, n_seeds),)
    if reduction < 2 or not 1 <= min_seeds <= n_seeds:
        raise ValueError(f"reduction={reduction} must be >= 2 and min_seeds={min_seeds} in 1..{n_seeds}")
    rungs = [Rung(n_arms, min_seeds)]
    while rungs[-1].seeds < n_seeds:
        arms = max(1, math.ceil(rungs[-1].arms / reduction))
        seeds = n_seeds if arms == 1 else min(n_seeds, rungs[-1].seeds * reduction)
        rungs.append(Rung(arms, seeds))
    return tuple(rungs)


def score(values: Sequence[float]) -> float:
    """The mean of an arm's values; a value that is not finite (a diverged run) makes it +inf."""
    v = np.asarray(list(values), dtype=float)
    return float(v.mean()) if v.size and np.all(np.isfinite(v)) else math.inf


def successive_halving(arms: Sequence[Hashable], seeds: Sequence[int], measure: Callable[[Hashable, int], float], *,
                       reduction: int = 2, min_seeds: int = 1, halving: bool = True) -> Halving:
    """Run the plan: at each rung, measure the surviving arms on their new seeds (in the order
    given), rank them by `score` (ties: the earlier arm in `arms`) and keep the next rung's count.
    Lower is better (a loss)."""
    arms, seeds = list(arms), list(seeds)
    if len(set(arms)) != len(arms) or len(set(seeds)) != len(seeds):
        raise ValueError("arms and seeds must not repeat")
    rungs = plan(len(arms), len(seeds), reduction=reduction, min_seeds=min_seeds, halving=halving)
    values: dict = {a: {} for a in arms}
    last: dict = {}
    alive = arms
    for i, rung in enumerate(rungs):
        if i > 0:  # keep the best rung.arms of the previous rung's survivors
            order = sorted(range(len(alive)), key=lambda j: (score(values[alive[j]].values()), j))
            alive = [alive[j] for j in sorted(order[:rung.arms])]
        for a in alive:
            for s in seeds[:rung.seeds]:
                if s not in values[a]:
                    values[a][s] = float(measure(a, s))
            last[a] = i
    best = min(range(len(alive)), key=lambda j: (score(values[alive[j]].values()), j))
    return Halving(values, last, rungs, alive[best])
