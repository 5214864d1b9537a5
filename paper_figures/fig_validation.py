"""The bounds against measurement on the quadratics with known constants (DERIVATION.md 4.6).

validation: for every K, the bound of theory/bounds.py at T = 200 rounds (dashed) and the
measured mean of (1/T) sum_t ||grad F(w_t)||^2 over 20 seeds (markers, +-1 standard error),
for full-sync, fastest-K, LGC and LGC-fresh; fresh draws every round (h = 1) and persistent
stragglers. A bound must lie above its measurement everywhere.

kstar_sweep: at budgets tau, the bound's K* (theory.tradeoff, eta fixed) against the measured
best K (each K runs T(K) = floor(tau / measured mean R_t) rounds); the band marks the Ks whose
measured error is within one seed-to-seed standard error of the best.
Setting: paper_figures/quadratic_runs.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures import quadratic_runs as qr
from paper_figures import style
from theory.algorithms import BOUND_NAMES
from theory.algorithms import algorithm as algorithm_entry

ALGS = BOUND_NAMES  # measured against their bounds
T_VALIDATE = 200
BUDGETS = (100, 200, 400, 800, 1600)
HORIZON = qr.ROUNDS_DRAWN  # rounds of the sweep runs (1600): T(K) = tau / E[R(K)] <= 1600, since E[R] >= the shift 1
SWEEPS = (("fastest-k", 1), ("lgc", 1), ("lgc", qr.PERSISTENT))


def validation_rows() -> list[dict]:
    rows = []
    n = qr.SETTING["N"]
    for period in (1, qr.PERSISTENT):
        for alg in ALGS:
            for k in range(1, n + 1):
                m = qr.measured(alg, n if algorithm_entry(alg).round_end == "all" else k, period, T_VALIDATE)
                b = qr.bound(alg, k, T_VALIDATE, period, m_inv=float(m["m_inv"]), zero_frac=float(m["zero_frac"]))
                per_seed = m["per_seed"]
                rows.append({"regime": qr.regime_label(period), "algorithm": alg, "K": k, "T": T_VALIDATE,
                             "bound": float(b["total"]), "measured": float(per_seed.mean()),
                             "measured_se": float(per_seed.std(ddof=1) / np.sqrt(len(per_seed))),
                             "tightness": float(b["total"]) / float(per_seed.mean())})
    return rows


def sweep_rows() -> list[dict]:
    from theory.tradeoff import tradeoff

    n, rows = qr.SETTING["N"], []
    for alg, period in SWEEPS:
        runs = {k: qr.measured(alg, k, period, HORIZON) for k in range(1, n + 1)}
        prob = qr.tradeoff_problem(period)
        for tau in BUDGETS:
            th = tradeoff(alg, prob, budget=float(tau), eta=qr.SETTING["eta"])
            t_k = {k: int(tau // float(r["round_time"])) for k, r in runs.items()}
            if max(t_k.values()) > HORIZON:
                raise RuntimeError(f"budget {tau} needs {max(t_k.values())} rounds; HORIZON={HORIZON} is too short")
            mean = np.array([runs[k]["running_mean"][t_k[k] - 1] for k in range(1, n + 1)])
            se = np.array([runs[k]["running_se"][t_k[k] - 1] for k in range(1, n + 1)])
            best = int(np.argmin(mean))
            near = [k for k in range(1, n + 1) if mean[k - 1] - mean[best] <= se[best]]
            for k in range(1, n + 1):
                rows.append({"algorithm": alg, "regime": qr.regime_label(period), "budget": tau, "K": k,
                             "T_measured": t_k[k], "T_bound": float(th.rounds[k - 1]), "measured": mean[k - 1],
                             "measured_se": se[k - 1], "bound": float(th.bound[k - 1]), "bound_k_star": th.k_star,
                             "measured_best_k": best + 1, "within_1se_min": min(near), "within_1se_max": max(near)})
    return rows


def draw_validation(rows):
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    pal = style.algorithm_palette()
    fig, axes = style.figure(ncols=len(regimes), width=3.5, height=2.9)
    for ax, regime in zip(axes[0], regimes):
        for alg in ALGS:
            sub = [r for r in rows if r["regime"] == regime and r["algorithm"] == alg]
            ks = [r["K"] for r in sub]
            ax.plot(ks, [r["bound"] for r in sub], color=pal[alg], ls="--", lw=1.2)
            ax.errorbar(ks, [r["measured"] for r in sub], yerr=[r["measured_se"] for r in sub], color=pal[alg],
                        marker="o", ms=3, lw=1.0, capsize=2, label=style.ALGORITHM_LABELS[alg])
        ax.set_yscale("log")
        ax.set_xlabel("straggler threshold K")
        ax.set_ylabel(r"$\frac{1}{T}\sum_t \|\nabla F(w_t)\|^2$ at T = 200")
        ax.set_title(regime)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color="0.3", marker="o", ms=3), Line2D([], [], color="0.3", ls="--")]
    labels += ["measured (20 seeds, ±1 SE)", "bound (theory/bounds.py)"]
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.0))
    return fig


def draw_sweep(rows):
    keys = list(dict.fromkeys((r["algorithm"], r["regime"]) for r in rows))
    fig, axes = style.figure(ncols=len(keys), width=2.6, height=2.5, sharey=True)
    colours = style.algorithm_palette()
    for ax, (alg, regime) in zip(axes[0], keys):
        sub = [r for r in rows if r["algorithm"] == alg and r["regime"] == regime and r["K"] == 1]
        tau = [r["budget"] for r in sub]
        ax.fill_between(tau, [r["within_1se_min"] - 0.2 for r in sub], [r["within_1se_max"] + 0.2 for r in sub],
                        color=colours[alg], alpha=0.2, lw=0, label="measured: within 1 SE of best")
        ax.plot(tau, [r["measured_best_k"] for r in sub], "o-", color=colours[alg], ms=4, label="measured best K")
        ax.plot(tau, [r["bound_k_star"] for r in sub], "s--", color="0.25", ms=4, mfc="none", label="bound's K*")
        ax.set_xscale("log")
        ax.set_xticks(tau)
        ax.set_xticklabels([str(t) for t in tau])
        ax.minorticks_off()
        ax.set_xlabel("budget τ [fast mini-batches]")
        ax.set_title(f"{style.ALGORITHM_LABELS[alg]}\n{regime}")
        ax.set_yticks(range(1, qr.SETTING["N"] + 1))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("K")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.0))
    return fig


def make(out_dir, profile: str = "quick") -> list[Path]:
    out_dir = Path(out_dir)
    rows = validation_rows()
    paths = style.save(draw_validation(rows), out_dir / "validation", rows)
    srows = sweep_rows()
    paths += style.save(draw_sweep(srows), out_dir / "kstar_sweep", srows)
    return paths
