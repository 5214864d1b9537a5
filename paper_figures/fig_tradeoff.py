"""The error-time trade-off over K and the optimal K* (theory/tradeoff.py, DERIVATION.md section 5).

Left: the expected round time E[R(K)] (abort semantics: E[X_(K:N)]) and the rounds T(K) = tau / E[R(K)]
that fit the budget. Middle: the bound at the budget for fastest-K and LGC (fresh draws every
round, h = 1, and persistent stragglers) and full-sync, with K* marked. Right: LGC's bound
(persistent) split into its terms. One step size for every K, eta = 0.15 (the measured
runs' step size, inside every bound's eta_max). Setting: the quadratics of
paper_figures/quadratic_runs.py (exact constants), budget tau = 400 time units.
"""
from __future__ import annotations

from pathlib import Path

from paper_figures import quadratic_runs as qr
from paper_figures import style
from theory.algorithms import algorithm as algorithm_entry

BUDGET = 400.0
CURVES = (("full-sync", 1), ("fastest-k", 1), ("fastest-k", qr.PERSISTENT), ("lgc", 1), ("lgc", qr.PERSISTENT))


def rows() -> list[dict]:
    from theory.tradeoff import tradeoff

    s = qr.SETTING
    out = []
    for alg, period in CURVES:
        prob = qr.tradeoff_problem(period)
        t = tradeoff(alg, prob, budget=BUDGET, eta=s["eta"])
        for r in t.rows():
            out.append({"algorithm": alg, "regime": qr.regime_label(period), "budget": BUDGET, "k_star": t.k_star, **r})
    return out


def draw(data):
    pal = style.algorithm_palette()
    fig, axes = style.figure(ncols=3, width=3.0, height=2.7)
    ax = axes[0, 0]
    base = [r for r in data if r["algorithm"] == "lgc" and r["regime"] == qr.regime_label(1)]
    ks = [r["K"] for r in base]
    ax.errorbar(ks, [r["E[R]"] for r in base], yerr=[2 * r["E[R]_se"] for r in base], color="0.2", marker="o", ms=3,
                label="E[R(K)]")
    ax.set_xlabel("straggler threshold K")
    ax.set_ylabel("E[R(K)] [fast mini-batches]")
    ax2 = ax.twinx()
    ax2.plot(ks, [r["T"] for r in base], color="0.55", ls=":", marker="s", ms=3, label="T(K) = τ / E[R(K)]")
    ax2.set_ylabel(f"rounds within τ = {BUDGET:g}")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize="small")
    ax.set_title("round time and rounds")

    ax = axes[0, 1]
    for alg, period in CURVES:
        sub = [r for r in data if r["algorithm"] == alg and r["regime"] == qr.regime_label(period)]
        ls = "-" if period == 1 else "--"
        label = f"{style.ALGORITHM_LABELS[alg]}" + ("" if algorithm_entry(alg).round_end == "all" else
                                                   (", h = 1" if period == 1 else ", persistent"))
        ax.plot([r["K"] for r in sub], [r["bound"] for r in sub], color=pal[alg], ls=ls, lw=1.3, label=label)
        k_star = sub[0]["k_star"]
        ax.plot([k_star], [sub[k_star - 1]["bound"]], marker="*", ms=10, color=pal[alg], mec="k", mew=0.5, ls="none")
    ax.set_yscale("log")
    ax.set_xlabel("straggler threshold K")
    ax.set_ylabel(r"bound on $\frac{1}{T}\sum_t E\|\nabla F(w_t)\|^2$")
    ax.set_title(f"bound at budget τ = {BUDGET:g} (★ = K*)")
    ax.legend(fontsize="small", loc="upper right")
    ax.grid(alpha=0.3, which="both")

    ax = axes[0, 2]
    sub = [r for r in data if r["algorithm"] == "lgc" and r["regime"] == qr.regime_label(qr.PERSISTENT)]
    names = [k for k in sub[0] if k.startswith("term:") and any(r[k] > 0 for r in sub)]
    ks = [r["K"] for r in sub]
    colours = style.sns.color_palette("colorblind", len(names) + 1)
    ax.plot(ks, [r["bound"] for r in sub], color="k", lw=1.6, label="total")
    for name, c in zip(names, colours[1:]):
        ax.plot(ks, [max(r[name], 1e-12) for r in sub], color=c, marker="o", ms=3, lw=1.0,
                label=name[5:].replace("_", " "))
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-2)
    ax.set_xlabel("straggler threshold K")
    ax.set_ylabel("bound term")
    ax.set_title("LGC bound, persistent: its terms")
    ax.legend(fontsize="x-small", loc="upper right", ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def make(out_dir, profile: str = "quick") -> list[Path]:
    data = rows()
    return style.save(draw(data), Path(out_dir) / "tradeoff", data)
