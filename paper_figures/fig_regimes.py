"""Where the bound's K* < N: regime maps (theory.regimes.regime_map, theory/DERIVATION.md section 5).

K* over a grid of dissimilarity zeta^2 x budget tau (top) and zeta^2 x straggler slowness
(bottom: shifted exponential with shift 1 and mean extra delay s, at tau = 800), for LGC and
fastest-K with persistent stragglers and with fresh draws every round (h = 1). Other constants
from the quadratic setting of paper_figures/quadratic_runs.py (L = 1, sigma^2 = 30, Delta
= 10.8, N = 8, B = 16, M = 4), eta = 0.15. Cells with K* = N are hatched. Time unit: one
fast mini-batch (the timing model's shift).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from paper_figures import quadratic_runs as qr
from paper_figures import style

ZETA2 = np.logspace(-2, 2, 9)
BUDGETS = np.logspace(np.log10(50), np.log10(12800), 9)
SLOWDOWNS = np.array([0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
SLOW_BUDGET = 800.0
MAPS = (("lgc", qr.PERSISTENT), ("lgc", 1), ("fastest-k", qr.PERSISTENT), ("fastest-k", 1))


def rows() -> list[dict]:
    from theory.regimes import regime_map

    s = qr.SETTING
    out = []
    for alg, period in MAPS:
        prob = qr.tradeoff_problem(period)
        for axis, kw in (("budget", {"budgets": BUDGETS}), ("slowdown", {"slowdowns": SLOWDOWNS, "budget": SLOW_BUDGET})):
            m = regime_map(alg, replace(prob), zeta2_values=ZETA2, eta=s["eta"], **kw)
            for i, z in enumerate(m["zeta2"]):
                for j, y in enumerate(m["y"]):
                    out.append({"algorithm": alg, "regime": qr.regime_label(period), "axis": axis, "zeta2": float(z),
                                "y": float(y), "k_star": int(m["k_star"][i, j]), "N": s["N"],
                                "budget": float(y) if axis == "budget" else SLOW_BUDGET})
    return out


def draw(data):
    import matplotlib.colors as mcolors

    n = qr.SETTING["N"]
    cmap = mcolors.ListedColormap(style.sns.color_palette("cividis", n))
    norm = mcolors.BoundaryNorm(np.arange(0.5, n + 1.5), n)
    fig, axes = style.figure(ncols=len(MAPS), nrows=2, width=2.45, height=2.25)
    for col, (alg, period) in enumerate(MAPS):
        for row, axis in enumerate(("budget", "slowdown")):
            ax = axes[row, col]
            sub = [r for r in data if r["algorithm"] == alg and r["regime"] == qr.regime_label(period) and r["axis"] == axis]
            ys = sorted({r["y"] for r in sub})
            grid = np.array([[next(r["k_star"] for r in sub if r["zeta2"] == z and r["y"] == y) for z in ZETA2] for y in ys])
            mesh = ax.pcolormesh(np.arange(len(ZETA2) + 1), np.arange(len(ys) + 1), grid, cmap=cmap, norm=norm)
            for yi in range(len(ys)):
                for zi in range(len(ZETA2)):
                    k = grid[yi, zi]
                    ax.text(zi + 0.5, yi + 0.5, str(k), ha="center", va="center", fontsize=5.5,
                            color="white" if k <= n / 2 else "black")
                    if k == n:
                        ax.add_patch(__import__("matplotlib").patches.Rectangle((zi, yi), 1, 1, fill=False,
                                                                                  hatch="///", lw=0, color="0.5"))
            ax.set_xticks(np.arange(len(ZETA2)) + 0.5)
            ax.set_xticklabels([f"{z:.2g}" if z < 1 else f"{z:.0f}" for z in ZETA2], rotation=90, fontsize=6)
            ax.set_yticks(np.arange(len(ys)) + 0.5)
            ax.set_yticklabels([f"{y:.0f}" if y >= 1 else f"{y:g}" for y in ys], fontsize=6)
            ax.set_xlabel(r"dissimilarity $\zeta^2$")
            if col == 0:
                ax.set_ylabel("budget τ [time units]" if axis == "budget"
                              else f"mean extra delay s [time units]\n(τ = {SLOW_BUDGET:g})")
            if row == 0:
                ax.set_title(f"{style.ALGORITHM_LABELS[alg]}\n{qr.regime_label(period)}")
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    cax = fig.add_axes((0.94, 0.25, 0.012, 0.5))
    cb = fig.colorbar(mesh, cax=cax, ticks=range(1, n + 1))
    cb.set_label("bound's K*")
    return fig


def make(out_dir, profile: str = "quick") -> list[Path]:
    data = rows()
    return style.save(draw(data), Path(out_dir) / "regimes", data)
