"""Where LGC stands against the optimal-time peers: time to a target error on the quadratics.

For identical data (spread 0, zeta^2 = 0) and non-IID data (spread 1), with i.i.d. speeds
(shifted exponential) and heterogeneous speeds (a quarter of the workers 4x slower for ever):
the virtual time until the trailing 10-round mean of ||grad F(w_t)||^2 first drops to eps (mean
over two seeds; "not reached" if a seed does not reach it within 400 rounds), for
full-sync, fastest-K and LGC at their measured K* (the best K of a small grid), LGC with K chosen
online (`lgc train --k auto`, theory/DERIVATION.md section 7, the trainer's default refit settings:
K = N for the first 10 rounds, then a refit every 10 rounds on the last 40), Rennala SGD and
Malenia SGD at their measured S* (the best of a small grid and the papers' S, eq. 6.7; the papers'
S is sized for their step size, the runs share one eta, so the S of the paper is marked apart).

K auto re-picks K for a time budget (the mean of ||grad F||^2 over the budget, eq. 5.2), not for a
time to a target; its budget here is TAU = 400 time units, MAX_ROUNDS x the fast mini-batch time
(the shift): the least virtual time any fixed-K run is given (every round of a K-based rule takes
at least one fast mini-batch), and the budget of the `kauto` figure. It uses no measured K* or
time to target; it stops, like the other lines, at the target or after MAX_ROUNDS rounds (past the
budget K stays as the last refit left it). The dashed line is a reference scaling, not a floor: the
Tyurin-Richtarik lower-bound expression (eq. 6.4 for identical data, 6.5 for non-IID) with its
unspecified universal constant set to 1 and the expected block order statistics. The theorem is a
minimax statement over nonconvex L-smooth functions (in a dimension of order L Delta / eps) and, for
random times, plugging in expected times is a heuristic (theory/DERIVATION.md section 6), so runs on
these quadratics may finish below the line, and do.

Setting: N = 8, d = 10, H = diag(0.1..1) (L = 1), sigma^2 = 30 per sample, B = 16, M = 4
(b = 4, sigma_b^2 = 7.5), plain SGD with eta = 0.15 for every algorithm, no warm-up, abort
semantics for the K-based rules, eps = 0.1 (papers' S = 75). Runs are cached
(lgc.runs), so a second `make figures` only redraws.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lgc import runs
from theory.algorithms import algorithm as algorithm_entry
from paper_figures import style

SETTING = dict(n_workers=8, quad_dim=10, batch_size=16, blocks=4, lr=0.15, momentum=0.0, warmup_rounds=0,
               quad_sigma2=30.0, quad_h_min=0.1, quad_h_max=1.0, semantics="abort", target_eps=0.1)
MAX_ROUNDS = 400
WINDOW = 10
SEEDS = (0, 1)
K_GRID = (1, 2, 4)
TAU = float(MAX_ROUNDS)  # K auto's budget [time units]: MAX_ROUNDS rounds at the fast mini-batch time (the shift, 1)
K_AUTO = {"k_auto": True, "budget": TAU}  # the trainer's default --k-refit/--k-window/--k-first-fit
S_GRID = (2, 4, 8, 16, None)  # None: the papers' S (eq. 6.7); Malenia's S <= N all step at one block each
DATA = {"identical data": 0.0, "non-IID data": 1.0}  # quad_spread
SPEEDS = {"i.i.d. speeds": ("shifted-exp", {}),
          "heterogeneous speeds": ("heterogeneous", {"slow_fraction": 0.25, "slowdown": 4.0})}
# (method, algorithm, the parameter searched, its grid); "lgc (K auto)" has one run per seed, no grid
METHODS = (("full-sync", "full-sync", "threshold_k", (8,)), ("fastest-k", "fastest-k", "threshold_k", K_GRID),
           ("lgc", "lgc", "threshold_k", K_GRID), ("lgc (K auto)", "lgc", "k_auto", (K_AUTO,)),
           ("rennala", "rennala", "peer_s", S_GRID), ("malenia", "malenia", "peer_s", (8, 16, None)))
AUTO_LABEL = "LGC (K auto)"


def time_to_target(config: dict) -> dict:
    """Cached: rounds and virtual time until the trailing WINDOW-round mean of ||grad F||^2 <= eps."""
    path = runs.run_dir("peers", config)
    if runs.is_complete(path):
        import json

        return json.loads((path / "final.json").read_text())
    from lgc.config import TrainConfig
    from lgc.sim import Simulator

    cfg = TrainConfig(dataset="quadratic", rounds=MAX_ROUNDS, eval_every=0, checkpoint_every=0, device="cpu",
                      **config)
    sim = Simulator(cfg)
    g, out = [], {"reached": False, "rounds": MAX_ROUNDS, "time": math.inf, "S": sim.round_param}
    for t in range(MAX_ROUNDS):
        row = sim.step()
        g.append(row["grad_norm2"])
        if len(g) >= WINDOW and np.mean(g[-WINDOW:]) <= cfg.target_eps:
            out.update(reached=True, rounds=t + 1, time=sim.clock)
            break
    out["mean_round_time"] = sim.clock / len(g)
    if sim.k_control is not None:  # K auto: the K of every refit (the first is after the rounds at K = N)
        out["k_refits"] = [h["k"] for h in sim.k_control.history]
    runs.start_run(path, config)
    runs.finish_run(path, out)
    return out


REFERENCE_LABEL = "reference scaling (constant 1)"  # the T-R lower-bound expression: no floor for one problem


def reference_scaling(spread: float, timing: str, params: dict) -> tuple[float, str]:
    """Eq. 6.4 (identical data) or 6.5 (non-IID) with constant 1 and this setting's exact L, Delta,
    sigma_b^2 and eps, and how tau was obtained (theory.time_bounds.block_times)."""
    from lgc.data.synthetic import make_quadratic
    from theory.time_bounds import block_times, heterogeneous_data_time, identical_data_time
    from theory.timing_factory import make_timing_model

    s = SETTING
    p = make_quadratic(s["n_workers"], s["quad_dim"], seed=0, h_min=s["quad_h_min"], h_max=s["quad_h_max"],
                       spread=spread, sigma2=s["quad_sigma2"])
    tau, how = block_times(make_timing_model(timing, **params), s["n_workers"], s["blocks"])
    const = dict(L=p.L, delta=p.Delta, eps=s["target_eps"], sigma2=s["quad_sigma2"] / (s["batch_size"] // s["blocks"]))
    if spread == 0.0:
        return identical_data_time(tau, **const)[0], how
    return heterogeneous_data_time(tau, **const), how


def _k_path(q: dict, n: int | None = None) -> str:
    """A K-auto run's K over its refits, repeats collapsed: "8>2>3" (N until the first refit)."""
    ks = [n or SETTING["n_workers"]] + q.get("k_refits", [])
    return ">".join(str(k) for j, k in enumerate(ks) if j == 0 or k != ks[j - 1])


def rows() -> list[dict]:
    out = []
    for data, spread in DATA.items():
        for speeds, (timing, params) in SPEEDS.items():
            reference, how = reference_scaling(spread, timing, params)
            for method, alg, name, values in METHODS:
                res = []
                for v in values:
                    param = v if name == "k_auto" else {name: v}
                    per_seed = [time_to_target({**SETTING, "algorithm": alg, **param, "quad_spread": spread,
                                                 "timing": timing, "timing_params": params, "seed": seed,
                                                 "data_seed": 0}) for seed in SEEDS]
                    r = {"reached": all(q["reached"] for q in per_seed), "S": per_seed[0]["S"],
                         "rounds": float(np.mean([q["rounds"] for q in per_seed])),
                         "time": float(np.mean([q["time"] for q in per_seed])),
                         "time_per_seed": " ".join(f"{q['time']:.1f}" for q in per_seed),
                         "mean_round_time": float(np.mean([q["mean_round_time"] for q in per_seed])),
                         "k_refits": " | ".join(_k_path(q) for q in per_seed) if name == "k_auto" else ""}
                    res.append((v, r))
                best = min(range(len(res)), key=lambda j: res[j][1]["time"])
                for j, (v, r) in enumerate(res):
                    k = "auto" if name == "k_auto" else (v if algorithm_entry(alg).waits_for_k else "")
                    out.append({"data": data, "speeds": speeds, "method": method, "algorithm": alg,
                                "K": k, "k_refits": r["k_refits"], "S": r["S"] or "",
                                "paper_s": name == "peer_s" and v is None,
                                "best": j == best, "reached": r["reached"], "rounds": r["rounds"], "time": r["time"],
                                "time_per_seed": r["time_per_seed"],
                                "mean_round_time": r["mean_round_time"], "reference_scaling": reference, "reference_tau": how,
                                "eps": SETTING["target_eps"]})
    return out


def draw(data, ylabel: str | None = None, reference_label: str = REFERENCE_LABEL):
    pal = style.algorithm_palette()
    panels = list(dict.fromkeys((r["data"], r["speeds"]) for r in data))  # (data, speeds) in row order
    fig, axes = style.figure(ncols=len(panels), width=2.6, height=2.8, sharey=True)
    for ax, (data_name, speeds) in zip(axes[0], panels):
        sub = [r for r in data if r["data"] == data_name and r["speeds"] == speeds and r["best"]]
        finite = [r["time"] for r in data if math.isfinite(r["time"])]
        cap = 1.5 * max(finite)
        for x, r in enumerate(sub):
            h = r["time"] if r["reached"] else cap
            auto = r["K"] == "auto"
            ax.bar(x, h, color=pal[r["algorithm"]], hatch=None if r["reached"] else "//", edgecolor="k", lw=0.4,
                   alpha=0.55 if auto else 1.0)
            note = ("K auto" if auto else f"K*={r['K']}") if r["K"] != "" else (f"S={r['S']}" if r["S"] != "" else "")
            ax.text(x, h * 1.08, note if r["reached"] else "not\nreached", ha="center", va="bottom", fontsize=6)
            paper = [q for q in data if q["data"] == data_name and q["speeds"] == speeds and q["paper_s"]
                     and q["algorithm"] == r["algorithm"]]
            if paper and not r["paper_s"]:
                ax.plot([x], [paper[0]["time"] if paper[0]["reached"] else cap], marker="D", ms=4, mfc="none",
                        mec="k", ls="none", label="papers' S" if r["algorithm"] == "rennala" else None)
        ax.axhline(sub[0]["reference_scaling"], color="k", ls="--", lw=1.0, label=reference_label)
        ax.set_xticks(range(len(sub)), [AUTO_LABEL if r["K"] == "auto" else style.ALGORITHM_LABELS[r["algorithm"]]
                                        for r in sub], rotation=45,
                      ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"{data_name}\n{speeds}", fontsize=8)
        ax.grid(alpha=0.3, axis="y", which="both")
    axes[0, 0].set_ylabel(ylabel or f"time to ||∇F||² ≤ {SETTING['target_eps']:g}\n{style.TIME_LABEL}")
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def make(out_dir, profile: str = "quick") -> list[Path]:
    data = rows()
    return style.save(draw(data), Path(out_dir) / "peers", data)
