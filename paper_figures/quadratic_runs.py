"""The quadratic setting shared by the validation figures, and its cached measurements.

Setting (the same as tests/test_validation.py): N = 8 workers, d = 10, H = diag(0.1..1)
(L = 1), sigma^2 = 30, spread 1 (zeta^2 = 3.15), B = 16, M = 4, plain SGD with eta = 0.15,
no warm-up, shifted-exponential times (shift 1, rate 1), abort semantics (the paper's), 20 seeds.
Measurements run the rules batched over K and seeds in numpy (paper_figures/kstar_sim.py, equal to
lgc.validate, and so to `lgc.sim`, on the same draws: tests/test_quadratic_runs.py) on the trainers'
own timing draws and per-sample noises; no bound code. They are cached under
results/validation/<key>/ (lgc.runs), so a second `make figures` only redraws.
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


ROUNDS_DRAWN = 1600  # timing and noise drawn once for this many rounds and sliced (the longest runs: fig_validation's sweep)


def _rounds_drawn(rounds: int) -> int:
    return max(int(rounds), ROUNDS_DRAWN)


@lru_cache(maxsize=2)
def _noise(rounds: int):
    """(S, T, N, M, d) block-mean noises: the trainers' per-sample draws (lgc.validate.block_noise); a
    pure function of (seed, round, worker), so one array serves every algorithm, K and horizon."""
    from lgc.validate import block_noise

    s = SETTING
    return block_noise(problem(), list(range(s["seeds"])), rounds, batch=s["B"], blocks=s["M"])


@lru_cache(maxsize=4)
def _times(period: int, rounds: int) -> np.ndarray:
    """(S, T, N) mini-batch times X_i: the trainers' seeded draws (TimingModel.block_finish_times),
    one per straggling period, held for `period` rounds (eq. 2.2)."""
    s, tm = SETTING, timing()
    held = min(int(period), rounds)
    draws = np.array([[tm.block_finish_times(seed, p * period, s["N"], s["M"], period=period)[:, -1]
                       for p in range(-(-rounds // held))] for seed in range(s["seeds"])])
    return np.repeat(draws, held, axis=1)[:, :rounds]


def measured_all(algorithm: str, period: int, rounds: int) -> dict[int, dict]:
    """Cached measurement of `algorithm` for every K = 1..N at once (full-sync: K = N), {K: stats}:
    per round the mean and standard error over seeds of ||grad F(w_t)||^2 and of its running mean,
    each seed's (1/T) sum_t, the mean round time and the stragglers' block statistics.

    The runs are paper_figures.kstar_sim's numpy rules batched over K and seeds (equal to lgc.validate
    to rounding: tests/test_quadratic_runs.py) on the trainers' timing draws and noises."""
    from paper_figures import kstar_sim

    s = SETTING
    if s["semantics"] != "abort":  # kstar_sim.schedule is the abort schedule (eq. 2.4)
        raise ValueError(f"semantics={s['semantics']!r}: the batched runs implement 'abort' only")
    ks = [s["N"]] if algorithm_entry(algorithm).round_end == "all" else list(range(1, s["N"] + 1))
    config = {**SETTING, "algorithm": algorithm, "K": ks, "period": int(period), "rounds": int(rounds)}
    path = runs.run_dir("validation", config)
    if not runs.is_complete(path):
        x = _times(period, _rounds_drawn(rounds))[:, :rounds]
        grad_sq = kstar_sim.simulate(kstar_sim.from_shared(problem()), algorithm, x, ks, m_blocks=s["M"],
                                     batch=s["B"], eta=s["eta"], noise=_noise(_rounds_drawn(rounds)))  # (K, S, T)
        n_seeds, t_all = grad_sq.shape[1], np.arange(1, rounds + 1)
        running = np.cumsum(grad_sq, axis=2) / t_all
        out = {"K": np.array(ks), "grad_sq_mean": grad_sq.mean(1),
               "grad_sq_se": grad_sq.std(1, ddof=1) / np.sqrt(n_seeds), "running_mean": running.mean(1),
               "running_se": running.std(1, ddof=1) / np.sqrt(n_seeds), "per_seed": grad_sq.mean(2)}
        stats = []
        for k in ks:
            fast, blocks, wall = kstar_sim.schedule(x, k, s["M"])
            m_j = blocks[~fast]
            stats.append((wall.mean(), np.where(m_j >= 1, 1.0 / np.maximum(m_j, 1), 0.0).mean() if m_j.size else 1.0,
                          (m_j == 0).mean() if m_j.size else 0.0))
        out["round_time"], out["m_inv"], out["zero_frac"] = (np.array(v, dtype=float) for v in zip(*stats))
        runs.start_run(path, config)
        buf = io.BytesIO()
        np.savez(buf, **out)
        runs.atomic_write_bytes(path / "measurement.npz", buf.getvalue())
        runs.finish_run(path, {"K": ks, "mean": out["per_seed"].mean(1).tolist()})
    with np.load(path / "measurement.npz") as z:
        arrays = {key: z[key] for key in z.files}
    return {int(k): {key: v[j] for key, v in arrays.items() if key != "K"} for j, k in enumerate(arrays["K"])}


def measured(algorithm: str, k: int, period: int, rounds: int) -> dict:
    """measured_all's statistics of one K (full-sync: K = N)."""
    return measured_all(algorithm, period, rounds)[int(k)]


def bound(algorithm: str, k, rounds, period: int, *, m_inv=1.0, zero_frac=0.0) -> dict:
    """theory.bounds.evaluate in this setting (the prediction side)."""
    from theory import bounds

    s = SETTING
    h = straggling_h(period)
    set_model = "uniform" if (algorithm_entry(algorithm).waits_for_k and period == 1) else "persistent"
    return bounds.evaluate(algorithm, N=s["N"], K=k, B=s["B"], M=s["M"], eta=s["eta"], T=rounds, h=h,
                           m_inv=m_inv, zero_frac=zero_frac, set_model=set_model, **problem().constants())
