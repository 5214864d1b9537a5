"""K chosen online when the cluster changes mid-run: `--k auto` against fixed K.

The quadratics with exact constants (N = 8, d = 10, H = diag(0.1..1), L = 1, sigma^2 = 30 per
sample, spread 1: non-IID, B = 16, M = 4), lgc with plain SGD at eta = 0.15, no warm-up, abort
semantics, shifted-exponential times (shift 1, rate 1) and worker 3 five times slower from
round 100 on (`--timing-param change_round=100 --timing-param change_workers=[3]`). Every run has
the time budget TAU on the virtual clock and stops at it. Compared, over three seeds:

  * K auto: `--k auto --budget TAU` (K = N for 10 rounds, then a refit every 20 rounds on the
    last 40; theory/DERIVATION.md section 7);
  * the K* of the first rounds' fit: the same, refitted once (after the same 10 rounds at K = N)
    and kept: what `lgc optimize-k` on a fit of the first rounds would have said;
  * every fixed K = 1..N, and the best of them, measured after the fact on the quantity the bound's
    K* is chosen for: the mean of ||grad F(w_t)||^2 over the rounds within the budget (the left side
    of eq. 5.2), averaged over the seeds. `--k auto`'s default (`--k-criterion predict`) picks the
    error model's K* instead, chosen for the error at the end of the budget (DERIVATION.md section 7).

Left: that running mean (1/t) sum_{s<=t} ||grad F(w_s)||^2 against virtual time; middle: the
trailing 10-round mean (the error now), both means over seeds, the dotted line at the change's
mean time; right: the K of every round of the K-auto runs. Runs are cached (lgc.runs), so a
second `make figures` only redraws.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lgc import runs
from paper_figures import style

SETTING = dict(dataset="quadratic", algorithm="lgc", n_workers=8, quad_dim=10, batch_size=16, blocks=4, lr=0.15,
               momentum=0.0, warmup_rounds=0, quad_sigma2=30.0, quad_spread=1.0, quad_h_min=0.1, quad_h_max=1.0,
               semantics="abort", timing="shifted-exp", eval_every=0, checkpoint_every=0, device="cpu",
               timing_params={"change_round": 100, "change_workers": [3], "change_slowdown": 5.0}, data_seed=0)
TAU = 400.0  # the budget [time units]
MAX_ROUNDS = 1000  # a cap far above TAU / E[R(1)] (about 360 rounds)
SEEDS = (0, 1, 2)
AUTO = dict(k_auto=True, budget=TAU, k_refit=20, k_window=40, k_first_fit=10)
ONCE = dict(AUTO, k_refit=10**6)  # the first fit only
TAIL = 0.1  # the error at the end of the budget: mean over rounds in its last 10%
WINDOW = 10  # trailing mean of the plotted curves


def run(method: str, seed: int, k: int | None = None) -> dict:
    """Cached: per round the virtual time, ||grad F(w_t)||^2 and K, until the clock reaches TAU."""
    config = {**SETTING, "seed": seed, "method": method, "K": k, "tau": TAU}
    path = runs.run_dir("kauto", config)
    if runs.is_complete(path):
        import json

        return json.loads((path / "final.json").read_text())
    from lgc.config import TrainConfig
    from lgc.sim import Simulator

    extra = {"auto": AUTO, "once": ONCE}.get(method, {"threshold_k": k})
    sim = Simulator(TrainConfig(rounds=MAX_ROUNDS, seed=seed, **SETTING, **extra))
    out = {"time": [], "grad_norm2": [], "k": []}
    while sim.clock < TAU and sim.round < MAX_ROUNDS:
        row = sim.step()
        out["time"].append(row["time"])
        out["grad_norm2"].append(row["grad_norm2"])
        out["k"].append(row["n_fast"])
    out["refits"] = sim.k_control.history if sim.k_control is not None else []
    runs.start_run(path, config)
    runs.finish_run(path, out)
    return out


def within(r: dict) -> np.ndarray:
    """||grad F(w_t)||^2 of the rounds that end within the budget."""
    return np.array(r["grad_norm2"])[np.array(r["time"]) <= TAU]


def mean_error(r: dict) -> float:
    """What the bound's K* minimises: (1/T) sum_{t<T} ||grad F(w_t)||^2 over the T rounds within TAU (eq. 5.2)."""
    return float(within(r).mean())


def tail_error(r: dict) -> float:
    t, g = np.array(r["time"]), np.array(r["grad_norm2"])
    return float(g[(t >= (1 - TAIL) * TAU) & (t <= TAU)].mean())


def rows() -> list[dict]:
    n = SETTING["n_workers"]
    fixed = {k: [run("fixed", s, k) for s in SEEDS] for k in range(1, n + 1)}
    score = {k: float(np.mean([mean_error(r) for r in rs])) for k, rs in fixed.items()}
    best = min(score, key=score.get)
    methods = {"K auto": [run("auto", s) for s in SEEDS], "K* of the first fit": [run("once", s) for s in SEEDS]}
    methods.update({f"fixed K={k}": rs for k, rs in fixed.items()})
    out = []
    for name, rs in methods.items():
        for seed, r in zip(SEEDS, rs):
            k_fixed = int(name.split("=")[1]) if name.startswith("fixed") else ""
            change = r["time"][SETTING["timing_params"]["change_round"] - 1] if len(r["time"]) >= 100 else np.nan
            for t, (tm, g, k) in enumerate(zip(r["time"], r["grad_norm2"], r["k"])):
                out.append({"method": name, "seed": seed, "round": t, "time": tm, "grad_norm2": g, "K": k,
                            "best_fixed": k_fixed == best, "fixed_K": k_fixed, "mean_error": mean_error(r),
                            "tail_error": tail_error(r),
                            "change_time": change, "tau": TAU})
    return out


def _curve(sub, grid, how):
    """||grad F||^2 on a time grid, mean over seeds: its running mean ("running") or its trailing
    WINDOW-round mean ("trailing")."""
    ys = []
    for seed in sorted({r["seed"] for r in sub}):
        rs = [r for r in sub if r["seed"] == seed]
        t = np.array([r["time"] for r in rs])
        g = np.array([r["grad_norm2"] for r in rs])
        if how == "running":
            g = np.cumsum(g) / np.arange(1, len(g) + 1)
        else:
            g = np.convolve(g, np.ones(WINDOW) / WINDOW, mode="full")[:len(g)]
            g[:WINDOW - 1] = np.nan
        ys.append(np.interp(grid, t, g, left=np.nan, right=np.nan))
    ys = np.array(ys)
    return np.where(np.isfinite(ys).all(axis=0), np.nanmean(np.where(np.isfinite(ys), ys, 0), axis=0), np.nan)


def draw(data):
    fig, axes = style.figure(ncols=3, width=3.0, height=2.8)
    grid = np.linspace(0, TAU, 400)
    pal = style.algorithm_palette()
    best = next(r["fixed_K"] for r in data if r["best_fixed"])
    change = np.nanmean([r["change_time"] for r in data if r["method"] == "K auto" and r["round"] == 0])
    curves = (("K auto", pal["lgc"], "-"), (f"fixed K={best}", "k", "--"), ("K* of the first fit", pal["fastest-k"], ":"))
    for ax, how, title in ((axes[0, 0], "running", "running mean (the bound's criterion)"),
                           (axes[0, 1], "trailing", f"trailing {WINDOW}-round mean (the error now)")):
        for k in sorted({r["fixed_K"] for r in data if r["fixed_K"] != ""}):
            if k != best:
                ax.plot(grid, _curve([r for r in data if r["fixed_K"] == k], grid, how), color="0.8", lw=0.6,
                        label="other fixed K" if k == 1 or (best == 1 and k == 2) else None)
        for name, colour, ls in curves:
            label = f"best fixed K = {best} (running mean)" if name.startswith("fixed") else name
            ax.plot(grid, _curve([r for r in data if r["method"] == name], grid, how), color=colour, ls=ls, lw=1.4,
                    label=label)
        ax.axvline(change, color="k", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel(style.TIME_LABEL)
        ax.set_title(title, fontsize=8)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("||∇F(w_t)||², mean over 3 seeds")
    axes[0, 0].legend(fontsize=6)
    axk = axes[0, 2]
    for seed in SEEDS:
        rs = [r for r in data if r["method"] == "K auto" and r["seed"] == seed]
        axk.step([r["round"] for r in rs], [r["K"] for r in rs], where="post", lw=1.0, label=f"K auto, seed {seed}")
    once = sorted({r["K"] for r in data if r["method"] == "K* of the first fit" and r["round"] > 20})
    axk.axhline(best, color="k", ls="--", lw=0.8, label=f"best fixed K = {best}")
    axk.axvline(SETTING["timing_params"]["change_round"], color="k", ls=":", lw=0.8)
    axk.set_xlabel("round")
    axk.set_ylabel("K")
    axk.set_title(f"K per round (worker 3 5x slower from round 100; first fit's K*: {', '.join(map(str, once))})",
                  fontsize=7)
    axk.set_ylim(0.5, SETTING["n_workers"] + 0.5)
    axk.legend(fontsize=6)
    fig.tight_layout()
    return fig


def make(out_dir, profile: str = "quick") -> list[Path]:
    data = rows()
    return style.save(draw(data), Path(out_dir) / "kauto", data)
