"""Figure 7: predicted vs measured round times from a `dist` trace (paper_figures/README.md).

A short `dist` run (N = 4 gloo processes on this CPU, K = 3, M = 4, LGC, injected shifted-
exponential stragglers, one time unit = 40 ms) is compared, round by round, with
  - the `sim` schedule's R_t: theory.schedule on the same timing draws (same seed, same
    semantics: abort, the default), i.e. what `sim` predicts this run measures;
  - the theory's E[R]: E[R(K)] = E[X_(K:N)] after warm-up and E[max_i X_i] in
    the full-sync warm-up rounds (theory.order_stats.expected_round_times).
Left: R_t per round. Right: measured against the sim prediction, with the identity line;
the gap is the coordination overhead (store round trips, gather + broadcast, wake-ups).
The run is cached in results/ (lgc/runs.py) and reused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures import style

N, K, M, B, ROUNDS, UNIT_MS = 4, 3, 4, 8, 24, 40.0


def config():
    from lgc.config import TrainConfig

    return TrainConfig(algorithm="lgc", n_workers=N, threshold_k=K, batch_size=B, blocks=M, rounds=ROUNDS,
                       warmup_rounds=2, dataset="synthetic", synthetic_train=2000, synthetic_test=200,
                       partition="main-label", classes_per_worker=3, samples_per_worker=200, model="softmax",
                       eval_every=0, checkpoint_every=0, device="cpu", seed=0, lr=0.05)


def rows(root=None) -> list[dict]:
    from lgc.dist import DistOptions, run_dist
    from lgc.dist.compare import round_comparison
    from lgc.protocol import make_timing
    from theory.order_stats import expected_round_times

    cfg = config()
    path = run_dist(cfg, DistOptions(unit_ms=UNIT_MS), root=root, quiet=True)
    unit_s = UNIT_MS / 1000.0
    try:
        shown = str(Path(path).resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        shown = str(path)
    timing = make_timing(cfg.resolved())
    e_lgc = float(expected_round_times(timing, N, M, "lgc", ks=[K], seed=1).mean[0])
    e_full = float(expected_round_times(timing, N, M, "full-sync", ks=[N], seed=1).mean[0])
    out = []
    for r in round_comparison(path):
        warm = bool(r["warmup"])
        for source, value in (("dist (measured)", r["measured_s"] / unit_s), ("sim schedule", r["modelled_s"] / unit_s),
                              ("theory E[R]", e_full if warm else e_lgc)):
            out.append({"round": r["round"], "warmup": int(warm), "source": source, "round_time": value,
                        "round_time_ms": value * UNIT_MS, "unit_ms": UNIT_MS, "N": N, "K": K, "M": M,
                        "run_dir": shown})
    return out


def draw(data):
    fig, axes = style.figure(ncols=2, width=3.3, height=3.0)
    colours = dict(zip(("dist (measured)", "sim schedule", "theory E[R]"), style.sns.color_palette("colorblind", 3)))
    ax = axes[0, 0]
    for source, marker, ls in (("dist (measured)", "o", "-"), ("sim schedule", "x", "--"), ("theory E[R]", None, ":")):
        pts = [r for r in data if r["source"] == source]
        ax.plot([r["round"] for r in pts], [r["round_time"] for r in pts], marker=marker, ms=3, ls=ls,
                color=colours[source], label=source, drawstyle="steps-mid" if marker is None else "default")
    ax.axvspan(-0.5, 1.5, color="0.9", zorder=0, label="warm-up (full-sync)")
    ax.set_xlabel("round t")
    ax.set_ylabel(f"R_t [time units, 1 = {UNIT_MS:g} ms]")
    ax.set_title(f"dist, N={N} gloo processes, K={K}, M={M}")
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    ax = axes[0, 1]
    meas = np.array([r["round_time"] for r in data if r["source"] == "dist (measured)"])
    pred = np.array([r["round_time"] for r in data if r["source"] == "sim schedule"])
    lo, hi = 0.9 * min(meas.min(), pred.min()), 1.05 * max(meas.max(), pred.max())
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, label="measured = predicted")
    ax.scatter(pred, meas, s=12, color=colours["dist (measured)"], label="one round")
    overhead = np.mean((meas - pred) / meas)
    ax.set_xlabel("sim schedule's R_t [time units]")
    ax.set_ylabel("measured R_t [time units]")
    ax.set_title(f"mean overhead {100 * overhead:.1f}% of R_t")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    fig.tight_layout()
    return fig


def make(out_dir, profile: str = "quick", root=None) -> list[Path]:
    data = rows(root)
    return style.save(draw(data), Path(out_dir) / "timing", data)
