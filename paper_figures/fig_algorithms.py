"""LGC vs fastest-K vs full-sync (and LGC-fresh, anytime-minibatch) on the embedded non-IID
classification problem: test loss and accuracy against virtual time and against rounds, with
persistent stragglers (the drawn times held for the whole run) and with h = 1 (fresh draws).

Quick profile: MLP (width 64) on the synthetic 10-class problem, N = 10, K = 7, B = 20, M = 5,
main-label split with c = 2 classes per worker (500 samples each), shifted-exponential timing
(shift 1, rate 1), SGD lr 0.01 with momentum 0.9, 400 rounds, 3 seeds; mean and min-max band.
Time curves are interpolated onto a grid that ends at the earliest seed's final time.
The time unit is one fast mini-batch (the timing model's shift).
Every curve comes from `lgc.sim.train` runs (cached in results/train/).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures import style
from theory.algorithms import PAPER_NAMES

ALGORITHMS = PAPER_NAMES  # the paper's comparison; the peers have fig_peers
FIELDS = ("regime", "straggling_period", "algorithm", "seed", "round", "time", "test_loss", "test_acc")


def configs(profile: str = "quick"):
    """(regime label, TrainConfig) for every run of the figure."""
    from lgc.config import TrainConfig

    rounds = 400  # persistent stragglers: h = the whole run
    base = dict(n_workers=10, threshold_k=7, batch_size=20, blocks=5, rounds=rounds, lr=0.01, momentum=0.9,
                dataset="synthetic", model="mlp", width=64, partition="main-label", classes_per_worker=2,
                samples_per_worker=500, eval_every=10, checkpoint_every=0, device="cpu")
    out = []
    for regime, h in ((f"persistent stragglers (h = {rounds})", rounds), ("fresh draws every round (h = 1)", 1)):
        for alg in ALGORITHMS:
            for seed in range(3):
                out.append((regime, TrainConfig(algorithm=alg, straggling_period=h, seed=seed, data_seed=0, **base)))
    return out


def collect(profile: str = "quick") -> list[dict]:
    """Run (or reuse) every configuration; tidy rows at the evaluation rounds."""
    from lgc.runs import read_csv
    from lgc.sim import train

    rows = []
    for regime, cfg in configs(profile):
        path = train(cfg, quiet=True)
        for r in read_csv(path / "rounds.csv"):
            if r.get("test_acc", "") == "":
                continue
            rows.append({"regime": regime, "straggling_period": cfg.straggling_period, "algorithm": cfg.algorithm,
                         "seed": cfg.seed, "round": int(r["round"]) + 1, "time": float(r["time"]),
                         "test_loss": float(r["test_loss"]), "test_acc": float(r["test_acc"])})
    return rows


def _band(ax, rows, x: str, y: str, alg: str):
    """Mean over seeds with a min-max band; time axes are interpolated onto a common grid."""
    seeds = sorted({r["seed"] for r in rows})
    curves = [sorted((r[x], r[y]) for r in rows if r["seed"] == s) for s in seeds]
    if x == "time":
        end = min(c[-1][0] for c in curves)
        grid = np.linspace(max(c[0][0] for c in curves), end, 80)
        ys = np.array([np.interp(grid, [p[0] for p in c], [p[1] for p in c]) for c in curves])
    else:
        grid = np.array([p[0] for p in curves[0]])
        ys = np.array([[p[1] for p in c] for c in curves])
    colour = style.algorithm_palette()[alg]
    ax.plot(grid, ys.mean(0), color=colour, label=style.ALGORITHM_LABELS[alg], lw=1.4,
            ls=style.ALGORITHM_LINESTYLES[alg])
    ax.fill_between(grid, ys.min(0), ys.max(0), color=colour, alpha=0.15, lw=0)


def _draw(rows, x: str, xlabel: str):
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    fig, axes = style.figure(ncols=2, nrows=len(regimes), width=3.3, height=2.4)
    for i, regime in enumerate(regimes):
        for j, (y, ylabel) in enumerate((("test_loss", "test loss (cross-entropy)"), ("test_acc", "test accuracy"))):
            ax = axes[i, j]
            for alg in ALGORITHMS:
                sub = [r for r in rows if r["regime"] == regime and r["algorithm"] == alg]
                if sub:
                    _band(ax, sub, x, y, alg)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(regime)
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def make(out_dir, profile: str = "quick") -> list[Path]:
    rows = collect(profile)
    out_dir = Path(out_dir)
    paths = style.save(_draw(rows, "time", style.TIME_LABEL),
                       out_dir / "algorithms_vs_time", rows, FIELDS)
    paths += style.save(_draw(rows, "round", "round t"), out_dir / "algorithms_vs_rounds", rows, FIELDS)
    return paths
