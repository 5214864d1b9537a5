"""The quadratic setting shared by the validation figures, and its cached measurements.

Setting (the same as tests/test_validation.py): N = 8 workers, d = 10, H = diag(0.1..1)
(L = 1), sigma^2 = 30, spread 1 (zeta^2 = 3.15), B = 16, M = 4, plain SGD with eta = 0.15,
no warm-up, shifted-exponential times (shift 1, rate 1), abort semantics (the paper's), 20 seeds.
Measurements come from lgc.validate (the rules and schedules; no bound code) and are cached
under results/validation/<key>/ (lgc.runs), so a second `make figures` only redraws.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from lgc import runs
from theory.algorithms import algorithm as algorithm_entry

SETTING = dict(N=8, dim=10, B=16, M=4, eta=0.15, sigma2=30.0, spread=1.0, h_min=0.1, h_max=1.0, data_seed=0,
               seeds=20, semantics="abort", timing="shifted-exp", shift=1.0, rate=1.0)
PERSISTENT = 10**6  # a straggling period longer than any run: the fast set never changes


def regime_label(period: int) -> str:
    if period >= PERSISTENT:
        return "persistent stragglers"
    return "fresh draws every round (h = 1)" if period == 1 else f"h = {period}"


@lru_cache(maxsize=1)
def problem():
    from lgc.data.synthetic import make_quadratic

    s = SETTING
    return make_quadratic(s["N"], s["dim"], seed=s["data_seed"], h_min=s["h_min"], h_max=s["h_max"],
                          spread=s["spread"], sigma2=s["sigma2"])


def timing():
    from theory.timing import ShiftedExponential

    return ShiftedExponential(SETTING["shift"], SETTING["rate"])


def straggling_h(period: int) -> float:
    """The bounds' h for a straggling period (PERSISTENT: h = inf)."""
    return np.inf if period >= PERSISTENT else period


def tradeoff_problem(period: int):
    """theory.tradeoff.Problem of this setting with straggling period `period`."""
    from theory.tradeoff import Problem

    s = SETTING
    return Problem(N=s["N"], M=s["M"], B=s["B"], timing=timing(), h=straggling_h(period), **problem().constants())


@lru_cache(maxsize=4)
def _noise(rounds: int):
    from lgc.validate import block_noise

    s = SETTING
    return block_noise(problem(), list(range(s["seeds"])), rounds, batch=s["B"], blocks=s["M"])


def measured(algorithm: str, k: int, period: int, rounds: int) -> dict:
    """Cached measurement: per-round mean and standard error over seeds of ||grad F(w_t)||^2,
    each seed's (1/T) sum_t, the mean round time and the stragglers' block statistics."""
    config = {**SETTING, "algorithm": algorithm, "K": int(k), "period": int(period), "rounds": int(rounds)}
    path = runs.run_dir("validation", config)
    if runs.is_complete(path):
        with np.load(path / "measurement.npz") as z:
            return {key: z[key] for key in z.files}
    from lgc.validate import make_schedules, measure

    s = SETTING
    seeds = list(range(s["seeds"]))
    k_run = s["N"] if algorithm_entry(algorithm).round_end == "all" else int(k)
    sched = make_schedules(timing(), seeds, rounds, s["N"], s["M"], k_run, period=period, semantics=s["semantics"])
    m = measure(problem(), algorithm, sched, batch=s["B"], blocks=s["M"], lr=s["eta"], seeds=seeds,
                noise=_noise(_horizon(rounds)))
    strag = ~sched.fast
    m_j = sched.blocks_done[strag]
    out = {
        "grad_sq_mean": m.grad_sq.mean(0), "grad_sq_se": m.grad_sq.std(0, ddof=1) / np.sqrt(len(seeds)),
        "running_mean": (np.cumsum(m.grad_sq, axis=1) / np.arange(1, rounds + 1)).mean(0),
        "running_se": (np.cumsum(m.grad_sq, axis=1) / np.arange(1, rounds + 1)).std(0, ddof=1) / np.sqrt(len(seeds)),
        "per_seed": m.per_seed, "round_time": np.array(sched.wall.mean()),
        "m_inv": np.array(float(np.where(m_j >= 1, 1.0 / np.maximum(m_j, 1), 0.0).mean()) if m_j.size else 1.0),
        "zero_frac": np.array(float((m_j == 0).mean()) if m_j.size else 0.0),
    }
    runs.start_run(path, config)
    buf = io.BytesIO()
    np.savez(buf, **out)
    runs.atomic_write_bytes(path / "measurement.npz", buf.getvalue())
    runs.finish_run(path, {"mean": m.mean, "sem": m.sem})
    return out


def _horizon(rounds: int) -> int:
    """Noise arrays are drawn for a few fixed horizons and sliced (one draw serves many runs)."""
    for h in (200, 500, 1000, 2000):
        if rounds <= h:
            return h
    return rounds


def bound(algorithm: str, k, rounds, period: int, *, m_inv=1.0, zero_frac=0.0) -> dict:
    """theory.bounds.evaluate in this setting (the prediction side)."""
    from theory import bounds

    s = SETTING
    h = straggling_h(period)
    set_model = "uniform" if (algorithm_entry(algorithm).waits_for_k and period == 1) else "persistent"
    return bounds.evaluate(algorithm, N=s["N"], K=k, B=s["B"], M=s["M"], eta=s["eta"], T=rounds, h=h,
                           m_inv=m_inv, zero_frac=zero_frac, set_model=set_model, **problem().constants())
