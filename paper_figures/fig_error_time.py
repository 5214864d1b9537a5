"""Predicted vs measured error against time for several K, on the quadratics (figure 6 of
docs/PAPER_PROFILE.md, in the quick profile; the bound: theory/DERIVATION.md section 5).

Measured (solid): the running mean (1/t) sum_{s<t} ||grad F(w_s)||^2 over 20 seeds against the
virtual time t * (mean measured R_t). Predicted (dashed): the bound of theory/bounds.py at
T = t rounds, against t * E[R(K)] from theory/order_stats.py. Setting: paper_figures/quadratic_runs.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures import quadratic_runs as qr
from paper_figures import style

KS = (1, 2, 4, 8)
PANELS = (("fastest-k", 1), ("lgc", 1), ("lgc", qr.PERSISTENT))
HORIZON = 1000  # rounds shown: the first 1000 of the runs fig_validation's sweep makes (qr.ROUNDS_DRAWN = 1600)
STRIDE = 5  # rows every STRIDE rounds in the CSV


def rows() -> list[dict]:
    from theory.order_stats import expected_round_times

    out = []
    n, t_all = qr.SETTING["N"], np.arange(1, HORIZON + 1)
    for alg, period in PANELS:
        rt = expected_round_times(qr.timing(), n, qr.SETTING["M"], alg, semantics=qr.SETTING["semantics"],
                                  ks=np.array(KS))
        for i, k in enumerate(KS):
            m = qr.measured(alg, k, period, qr.ROUNDS_DRAWN)  # shared with kstar_sweep; T <= HORIZON shown
            b = qr.bound(alg, k, t_all, period, m_inv=float(m["m_inv"]), zero_frac=float(m["zero_frac"]))["total"]
            for t in range(STRIDE - 1, HORIZON, STRIDE):
                out.append({"algorithm": alg, "regime": qr.regime_label(period), "K": k, "rounds": t + 1,
                            "time_measured": (t + 1) * float(m["round_time"]), "measured": float(m["running_mean"][t]),
                            "measured_se": float(m["running_se"][t]), "time_predicted": (t + 1) * float(rt.mean[i]),
                            "bound": float(b[t])})
    return out


def draw(data):
    fig, axes = style.figure(ncols=len(PANELS), width=3.0, height=2.7, sharey=True)
    colours = dict(zip(KS, style.sns.color_palette("viridis", len(KS) + 1)[:len(KS)]))  # sequential in K
    for ax, (alg, period) in zip(axes[0], PANELS):
        for k in KS:
            sub = [r for r in data if r["algorithm"] == alg and r["regime"] == qr.regime_label(period) and r["K"] == k]
            ax.plot([r["time_measured"] for r in sub], [r["measured"] for r in sub], color=colours[k], lw=1.4,
                    label=f"K = {k}")
            ax.plot([r["time_predicted"] for r in sub], [r["bound"] for r in sub], color=colours[k], lw=1.1, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(style.TIME_LABEL)
        ax.set_title(f"{style.ALGORITHM_LABELS[alg]}, {qr.regime_label(period)}", fontsize="small")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel(r"$\frac{1}{t}\sum_{s<t}\|\nabla F(w_s)\|^2$")
    from matplotlib.lines import Line2D

    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3"), Line2D([], [], color="0.3", ls="--")]
    labels += ["measured (20 seeds)", "bound (predicted)"]
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, 0.0))
    return fig


def make(out_dir, profile: str = "quick") -> list[Path]:
    data = rows()
    return style.save(draw(data), Path(out_dir) / "error_vs_time", data)
