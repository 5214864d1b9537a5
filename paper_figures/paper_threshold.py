"""fig4 of the paper profile: the straggler threshold K at a fixed time budget tau, measured against theory.

Measured: each run's test accuracy and test loss interpolated at tau (mean, 95% interval over seeds).
Theory, from one `theory.optimize_k` call per rule, the call `lgc optimize-k` makes: the bound at tau over K
and its K* (sections 4-5 of theory/DERIVATION.md), and the predictive error model's loss gap F(w_T) - F*
(eq. 8.7) with its recommended K* (section 8), fed the runs' momentum and warm-up rounds (the bound assumes
neither) and the constants' curvature bands when they have them.

Where the constants carry the held-out pilot's record ("heldout", DERIVATION.md 8.5), optimize-k's k_star
minimises the predicted held-out loss (eq. 8.14), which is on the measured test loss's own scale: it is drawn over
the measured loss as it is, judged by r2_heldout = 1 - SS_res / SS_tot over K with nothing fitted (and
r2_heldout_offset with one constant fitted); k_star_gap is the K of least predicted training gap (the model's
K* without the record), kept beside it.

The gap model predicts a loss *gap*, the runs measure a test *loss*: F* (and the gap between training and test
loss) is unknown, so the predicted gap is drawn over the measured loss shifted by one fitted constant c
(the mean of measured minus predicted over K) and judged by R^2 = 1 - SS_res / SS_tot of that fit over K;
r2_loss_affine also fits a slope (the squared correlation over K): whether the curve's shape is right when its
amplitude is not.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from paper_figures import paper_profile as pp
from paper_figures import style
from theory.algorithms import K_RULES
from theory.algorithms import algorithm as algorithm_entry

# the paper's rule that waits for every worker: a K-rule's K = N (fig4 runs it once, at K = N)
WAITS_FOR_ALL = next(a for a in pp.CORE if algorithm_entry(a).round_end == "all")


def _t95(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else 0.0


def at_time(rows, tau: float) -> list[dict]:
    """Test accuracy and loss of each (algorithm, K, seed) run interpolated at time tau (clamped to the run)."""
    out = []
    for key in sorted({(r["algorithm"], r["K"], r["seed"]) for r in rows}):
        pts = sorted((r["time"], r["test_acc"], r["test_loss"]) for r in rows
                     if (r["algorithm"], r["K"], r["seed"]) == key)
        t = [p[0] for p in pts]
        out.append({"algorithm": key[0], "K": key[1], "seed": key[2], "tau": tau,
                    "test_acc_at_tau": float(np.interp(tau, t, [p[1] for p in pts])),
                    "test_loss_at_tau": float(np.interp(tau, t, [p[2] for p in pts])),
                    "run_end_time": pts[-1][0]})
    return out


def theory_rows(constants, scale, algorithms=K_RULES) -> list[dict]:
    """Per rule and K = 1..N: the bound at tau and its terms, the model's predicted loss gap (pred_gap, its
    standard error pred_gap_se) and mean ||grad F||^2 (pred_grad2); k_star: the recommended (the model's) K*,
    k_star_bound: the bound's, as `lgc optimize-k` reports them; k_objective: what k_star minimised ("heldout" or
    "gap"); k_star_gap: the K of least predicted gap. With the constants' "heldout" record also pred_heldout (eq.
    8.14), heldout_excess and heldout_beyond (1 where that K's progress lies beyond the pilot's). [] without
    constants."""
    if constants is None:
        return []
    from theory.optimal_k import optimize_k

    out = []
    for alg in algorithms:
        best = optimize_k(constants, workers=pp.BASE_N, batch_size=pp.BASE_B, blocks=pp.BASE_M, algorithm=alg,
                          budget=pp.budget(scale), eta=pp.BASE_LR, straggling_period=pp.BASE_H,
                          semantics=scale.semantics, momentum=pp.BASE_MOMENTUM, warmup_rounds=pp.BASE_WARMUP)
        rec, ks = best.recommendation, best.tradeoff.ks
        col = {n: rec.column(ks, n) if rec is not None else np.full(len(ks), np.nan)
               for n in ("gap_se", "heldout", "heldout_excess")}
        held = rec is not None and rec.heldout is not None
        k_gap = best.k_star if rec is None or rec.k_star_gap is None else rec.k_star_gap  # (else the model did not choose)
        beyond = set(getattr(rec, "heldout_beyond", ()))
        for i, r in enumerate(best.table):
            out.append({"algorithm": alg, "k_star": best.k_star, "k_star_bound": best.k_star_bound,
                        "k_objective": getattr(rec, "objective", "gap"), "k_star_gap": int(k_gap), **r,
                        "pred_gap_se": _finite(col["gap_se"][i]), "pred_heldout": _finite(col["heldout"][i]),
                        "heldout_excess": _finite(col["heldout_excess"][i]),
                        "heldout_beyond": int(int(r["K"]) in beyond) if held else None})
    return out


def _finite(v):
    return float(v) if np.isfinite(v) else None


def _r2(y, p) -> float:
    """1 - SS_res / SS_tot of p against y (nan when y is constant)."""
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1 - float(np.sum((y - p) ** 2)) / ss_tot if ss_tot > 0 else float("nan")


def _means(pts, alg: str, col: str):
    """[(K, mean over seeds, half-width of the 95% interval)] of `col` for `alg`'s runs."""
    ks = sorted({p["K"] for p in pts if p["algorithm"] == alg})
    out = []
    for k in ks:
        v = np.array([p[col] for p in pts if p["algorithm"] == alg and p["K"] == k])
        out.append((k, v.mean(), _t95(len(v)) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0))
    return out


def _with_k_n(pts, alg: str, col: str):
    """_means of alg's runs, and WAITS_FOR_ALL's at the K that alg did not run (its K = N)."""
    own = _means(pts, alg, col)
    return own + [m for m in _means(pts, WAITS_FOR_ALL, col) if m[0] not in {k for k, _, _ in own}]


def fit_rows(pts, trows) -> list[dict]:
    """Per rule with a prediction: the measured test loss at tau (mean over seeds, at the K that ran; its
    K = N from full-sync's runs, since at K = N a K-rule neither drops nor compensates a worker) against
    the predicted gap + c, c fitted; R^2 over those K (and with a slope fitted too), the measured best K by
    accuracy and by loss, and the K*s. With predicted held-out losses (eq. 8.14) at every such K also r2_heldout
    (nothing fitted), r2_heldout_offset and heldout_offset (one constant fitted); else those are None."""
    out = []
    for alg in sorted({r["algorithm"] for r in trows}):
        pred = {int(r["K"]): r.get("pred_gap") for r in trows if r["algorithm"] == alg}
        meas, acc = _with_k_n(pts, alg, "test_loss_at_tau"), _with_k_n(pts, alg, "test_acc_at_tau")
        both = [(k, y, pred[k]) for k, y, _ in meas if pred.get(k) is not None and np.isfinite(pred[k])]
        if len(both) < 2:
            continue
        k, y, p = (np.array(x, dtype=float) for x in zip(*both))
        c = float(np.mean(y - p))
        # the curve's shape alone: slope and offset fitted (least squares), i.e. the squared correlation
        shape = np.polyval(np.polyfit(p, y, 1), p) if np.ptp(p) > 0 else np.full_like(y, y.mean())
        held = {int(r["K"]): r.get("pred_heldout") for r in trows if r["algorithm"] == alg}
        h = np.array([held.get(int(x)) if held.get(int(x)) is not None else np.nan for x in k], dtype=float)
        has_h = bool(np.all(np.isfinite(h)))
        c_h = float(np.mean(y - h)) if has_h else None
        first = next(r for r in trows if r["algorithm"] == alg)
        out.append({"algorithm": alg, "r2_loss": _r2(y, p + c), "loss_offset": c, "r2_loss_affine": _r2(y, shape),
                    "r2_heldout": _r2(y, h) if has_h else None, "heldout_offset": c_h,
                    "r2_heldout_offset": _r2(y, h + c_h) if has_h else None,
                    "fit_ks": " ".join(str(int(x)) for x in k),
                    "k_star": first["k_star"], "k_star_bound": first["k_star_bound"],
                    "k_objective": first.get("k_objective", "gap"), "k_star_gap": first.get("k_star_gap", first["k_star"]),
                    "k_best_acc": int(max(acc, key=lambda m: m[1])[0]), "k_best_loss": int(k[np.argmin(y)])})
    return out


def _measured(ax, pts, col: str, pal) -> None:
    for alg in pp.CORE:
        m = _means(pts, alg, col)
        if m:  # a small horizontal offset keeps coinciding points of the two rules apart
            dx = {"fastest-k": -0.08, "lgc": 0.08}.get(alg, 0.0)
            ax.errorbar([k + dx for k, _, _ in m], [v for _, v, _ in m], yerr=[h for _, _, h in m], color=pal[alg],
                        marker="o", ms=4, capsize=2, label=f"{style.ALGORITHM_LABELS[alg]} measured")


def _mark_k_stars(ax, trows, pal, *, label: bool) -> None:
    """The K* of each rule: the bound's dotted, the model's (recommended) dashed; where that one minimised the
    predicted held-out loss, the training gap's K* lighter (dash-dot)."""
    for alg in K_RULES:
        sub = [r for r in trows if r["algorithm"] == alg]
        if sub:
            kb, kp, kg = sub[0]["k_star_bound"], sub[0]["k_star"], sub[0].get("k_star_gap", sub[0]["k_star"])
            name, held = style.ALGORITHM_LABELS[alg], sub[0].get("k_objective") == "heldout"
            ax.axvline(kb, color=pal[alg], ls=":", lw=1, label=f"{name} bound's K* = {kb}" if label else None)
            ax.axvline(kp, color=pal[alg], ls="--", lw=1,
                       label=f"{name} model's K* = {kp}{' (held-out loss)' if held else ''}" if label else None)
            if held:
                ax.axvline(kg, color=pal[alg], ls="-.", lw=0.8, alpha=0.45,
                           label=f"{name} training gap's K* = {kg}" if label else None)


def fig_threshold(rows, out: Path, constants, scale) -> list[Path]:
    """fig4: accuracy at the budget tau vs K (measured) with both K*; the measured test loss at tau with the
    model's predicted gap drawn over it (R^2 over K); the bound's curve and K*."""
    pal = style.algorithm_palette()
    tau = pp.budget(scale)
    pts = at_time([r for r in rows if r["figure"] == "fig4"], tau)
    trows = theory_rows(constants, scale)
    fits = fit_rows(pts, trows)
    fig, axes = style.figure(ncols=3, width=3.4, height=2.9)
    ax = axes[0, 0]
    _measured(ax, pts, "test_acc_at_tau", pal)
    _mark_k_stars(ax, trows, pal, label=True)
    ax.set_ylabel(f"test accuracy at τ = {tau:.0f}")
    ax.set_title("measured (mean, 95% CI over seeds)")
    ax = axes[0, 1]
    _measured(ax, pts, "test_loss_at_tau", pal)
    held = any(f["r2_heldout"] is not None for f in fits)
    for f in fits:
        sub = [r for r in trows if r["algorithm"] == f["algorithm"]]
        name = style.ALGORITHM_LABELS[f["algorithm"]]
        if f["r2_heldout"] is not None:  # eq. 8.14: on the test loss's own scale, nothing fitted
            ax.plot([r["K"] for r in sub], [r["pred_heldout"] for r in sub], color=pal[f["algorithm"]], ls="--",
                    lw=1.2, label=f"{name} predicted held-out loss: R² {f['r2_heldout']:.2f} "
                                  f"(offset fitted: {f['r2_heldout_offset']:.2f})")
        ax.plot([r["K"] for r in sub], [r["pred_gap"] + f["loss_offset"] for r in sub], color=pal[f["algorithm"]],
                ls=":" if held else "--", lw=1, alpha=0.5 if held else 1.0,
                label=f"{name} predicted gap + c: R² {f['r2_loss']:.2f} (slope fitted: {f['r2_loss_affine']:.2f})")
    _mark_k_stars(ax, trows, pal, label=False)
    span = [v for alg in pp.CORE for _, m, h in _means(pts, alg, "test_loss_at_tau") for v in (m - h, m + h)]
    if span and fits and max(span) > min(span):  # the measured range: a predicted curve may leave it at K that did
        pad = 0.3 * (max(span) - min(span))          # not run (the CSV has all); one point has no range to keep
        ax.set_ylim(min(span) - pad, max(span) + pad)
    ax.set_ylabel(f"test loss at τ = {tau:.0f}")
    ax.set_title(("measured loss; model's held-out loss (eq. 8.14), F(w_T) − F* + c" if held else
                  "measured loss; model's F(w_T) − F* + c (c fitted)") if fits else
                 "measured loss (no model: no constants)", fontsize="small")
    ax = axes[0, 2]
    for alg in K_RULES:
        sub = [r for r in trows if r["algorithm"] == alg]
        if sub:
            ax.plot([r["K"] for r in sub], [r["bound"] for r in sub], color=pal[alg], marker=".",
                    label=f"{style.ALGORITHM_LABELS[alg]} bound, K* = {sub[0]['k_star_bound']}")
            ax.axvline(sub[0]["k_star_bound"], color=pal[alg], ls=":", lw=1)
    if trows:
        ax.set_yscale("log")
        ax.set_ylabel("bound on mean ||∇F||² at τ")
        ax.set_title("theory (constants from lgc estimate)")
    else:
        ax.text(0.5, 0.5, "bound not drawn:\nno constants (pass --constants FILE\nfrom `lgc estimate`)",
                ha="center", va="center", transform=ax.transAxes, fontsize="small")
        ax.set_title("theory")
    for a in axes[0]:
        a.set_xlabel("straggler threshold K")
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize="xx-small")
    fig.tight_layout()
    fig.suptitle(f"Fixed budget τ = T·E[R(K={pp.BASE_K})] (c = {scale.base_c}, h = {pp.BASE_H}); model fed "
                 f"momentum {pp.BASE_MOMENTUM:g}, {pp.BASE_WARMUP} warm-up rounds", fontsize="medium", y=1.06)
    data = [{"kind": "measured", **p} for p in pts] + [{"kind": "theory", **r} for r in trows] + \
        [{"kind": "fit", **f} for f in fits]
    return style.save(fig, out / "fig4_threshold_k", data)
