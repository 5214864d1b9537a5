"""How the K* checks grade and report their cells (paper_figures/kstar_check.py's grids, kstar_dev.py's): per cell
the cost of a chosen K, measured(K) / measured(the best K); the counts against the target (>= 90% of cells within
10%, none beyond 15%) for the bound's K*, the error model's variants and the fixed baselines K = N and K = N/2; the
table, the misses' diagnosis and the per-K CSV. A cell is a kstar_check.Cell; nothing here runs a cell.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from paper_figures import kstar_predict as kp

WITHIN, WORST = 0.10, 0.15  # the target: >= 90% of cells within 10%, none beyond 15%


def _counts(r) -> dict:
    r = np.asarray(r, float)
    return {"within_10": float(np.mean(r <= 1 + WITHIN)), "beyond_15": int(np.sum(r > 1 + WORST)),
            "worst": float(r.max()), "median": float(np.median(r))}


def summary(cells) -> dict:
    """K*'s counts (ratio measured(K) / measured(best K)), and the same for the fixed baselines K = N and
    K = N/2 (a K* count means something only beside what a fixed choice gets); below_best: cells whose K* is
    smaller than the best measured K."""
    out = {"cells": len(cells), **_counts([c.ratio for c in cells]),
           "below_best": int(sum(c.k_star < c.best for c in cells))}
    out["met"] = bool(out["within_10"] >= 0.9 and out["beyond_15"] == 0)
    for name, pick in (("k_n", lambda c: len(c.measured)), ("k_half", lambda c: len(c.measured) // 2)):
        out[name] = _counts([c.measured[pick(c) - 1] / c.measured[c.best - 1] for c in cells])
    if cells and all(c.predicted is not None for c in cells):
        out["predictive"] = {q: predictive_summary(cells, q) for q in kp.QUANTITIES}
    return out


def variants(cells) -> list:
    """The error model's variants the cells carry, in their order (kstar_predict.VARIANTS by default)."""
    return list(dict.fromkeys(v for v, _ in cells[0].predicted)) if cells and cells[0].predicted else []


def predictive_summary(cells, quantity: str) -> dict:
    """Graded on the measured `quantity` (the model's K* by the least predicted value of the same quantity): the
    counts of the bound's K*, the predictive K* per variant, K = N and K = N/2; per variant the median R^2 of the
    predicted curve over K against the measured one, and the cells where it does worse than the bound's K*."""
    picks = {"bound": lambda c: c.k_star, **{v: (lambda c, v=v: c.k_pred(v, quantity)) for v in variants(cells)},
             "k_n": lambda c: len(c.measured), "k_half": lambda c: len(c.measured) // 2}
    out = {name: _counts([c.cost(pick(c), quantity) for c in cells]) for name, pick in picks.items()}
    for v in variants(cells):
        r2 = [kp.r_squared(c.predicted[v, quantity], c.curve(quantity)) for c in cells]
        out[v]["r2_median"] = float(np.nanmedian(r2)) if np.isfinite(r2).any() else float("nan")
        out[v]["r2_min"] = float(np.nanmin(r2)) if np.isfinite(r2).any() else float("nan")
        out[v]["worse_than_bound"] = int(sum(c.cost(c.k_pred(v, quantity), quantity) > c.cost(c.k_star, quantity)
                                             for c in cells))
        out[v]["met"] = bool(out[v]["within_10"] >= 0.9 and out[v]["beyond_15"] == 0)
    return out


def table(cells) -> str:
    head = f"{'problem':>13} {'timing':>16} {'tau':>5} {'algorithm':>9} {'K*':>3} {'near':>8} {'best':>4} " \
           f"{'meas(K*)':>9} {'meas(best)':>10} {'+-se':>7} {'ratio':>6}"
    pred = bool(cells) and all(c.predicted is not None for c in cells)
    if pred:  # the predictive K* of mean ||grad F||^2 (a: scalar constants, b: exact bands), graded on it
        head += "".join(f" {'Kp(' + VARIANT_NAMES.get(v, v)[0] + ')':>5} {'ratio':>6}" for v in variants(cells))
    lines = [head]
    for c in cells:
        near = ",".join(map(str, c.k_near)) if len(c.k_near) <= 3 else f"{min(c.k_near)}..{max(c.k_near)}"
        row = (f"{c.problem:>13} {c.timing:>16} {c.tau:>5g} {c.algorithm:>9} {c.k_star:>3} {near:>8} "
               f"{c.best:>4} {c.measured[c.k_star - 1]:>9.4g} {c.measured[c.best - 1]:>10.4g} "
               f"{c.se[c.best - 1]:>7.2g} {c.ratio:>6.3f}")
        if pred:
            row += "".join(f" {c.k_pred(v, 'grad2'):>5} {c.cost(c.k_pred(v, 'grad2')):>6.3f}" for v in variants(cells))
        lines.append(row)
    s = summary(cells)

    def counts(name, q):
        return (f"{name}: within 10% of the best K {q['within_10']:.0%} ({round(q['within_10'] * s['cells'])} of "
                f"{s['cells']}); beyond 15%: {q['beyond_15']}; worst ratio {q['worst']:.3f}; median {q['median']:.3f}")

    n = len(cells[0].measured) if cells else 0
    lines.append(counts("K*", s) + f"; K* below the best K in {s['below_best']}; target (>= 90% within 10%, none "
                                   f"beyond 15%) {'met' if s['met'] else 'NOT met'}")
    lines.append(counts(f"baseline K = N = {n}", s["k_n"]))
    lines.append(counts(f"baseline K = N/2 = {n // 2}", s["k_half"]))
    for q, p in s.get("predictive", {}).items():
        lines.append(f"# the recommended (predictive) K*, graded on the measured {QUANTITY_NAMES[q]} "
                     f"(the model's K* of least predicted {QUANTITY_NAMES[q]}, eq. {QUANTITY_EQ[q]})")
        lines.append(counts("bound's K*", p["bound"]))
        for v in variants(cells):
            lines.append(counts(f"predictive K* ({VARIANT_NAMES.get(v, v)})", p[v]) + f"; R^2 of the predicted curve "
                         f"median {p[v]['r2_median']:.2f} (min {p[v]['r2_min']:.2f}); worse than the bound's K* in "
                         f"{p[v]['worse_than_bound']}; target {'met' if p[v]['met'] else 'NOT met'}")
        lines.append(counts(f"K = N = {n}", p["k_n"]))
        lines.append(counts(f"K = N/2 = {n // 2}", p["k_half"]))
    return "\n".join(lines)


QUANTITY_NAMES = {"grad2": "mean ||grad F||^2 within the budget", "gap": "final loss gap F(w_T) - F*"}
QUANTITY_EQ = {"grad2": "8.8; what this check measures for the bound", "gap": "8.7; optimize-k's k_star"}
VARIANT_NAMES = {"scalar": "a: scalar constants", "bands": "b: exact curvature bands",
                 "one-band": "c: one band at L, the scalar constants' old fallback"}


def diagnosis(cells) -> str:
    """Where K* misses: per missed cell (ratio > 1.1), the bound's slack (bound / measured) at the best K and
    at K*, and the term whose growth from K* to the best K outweighs the measured gain most."""
    lines = ["# misses: bound/measured at the best K and at K*; the term that grows most from K* to the best K"]
    for c in cells:
        if c.ratio <= 1 + WITHIN:
            continue
        i, j = c.best - 1, c.k_star - 1
        grow = {k: float(v[i] - v[j]) for k, v in (c.terms or {}).items()}
        top = max(grow, key=grow.get) if grow else "-"
        lines.append(f"{c.problem:>13} {c.timing:>16} {c.tau:>5g} {c.algorithm:>9}: slack {c.bound[i] / c.measured[i]:.2f} "
                     f"at K={c.best}, {c.bound[j] / c.measured[j]:.2f} at K*={c.k_star}; bound difference "
                     f"{c.bound[i] - c.bound[j]:+.3g}, of it {top} {grow.get(top, 0):+.3g}")
    return "\n".join(lines)


def write_csv(cells, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        pairs = [(v, q) for v in variants(cells) for q in kp.QUANTITIES]
        w.writerow(["problem", "timing", "tau", "algorithm", "K", "eta", "bound", "rounds", "measured", "se",
                    "is_k_star", "is_best", "measured_gap", "se_gap", "is_best_gap"]
                   + [f"pred_{q}_{v}" for v, q in pairs] + [f"is_k_pred_{q}_{v}" for v, q in pairs])
        for c in cells:
            for j in range(len(c.measured)):
                w.writerow([c.problem, c.timing, c.tau, c.algorithm, j + 1, f"{c.eta[j]:.6g}", f"{c.bound[j]:.6g}",
                            f"{c.rounds[j]:.2f}", f"{c.measured[j]:.6g}", f"{c.se[j]:.3g}", int(j + 1 == c.k_star),
                            int(j + 1 == c.best), f"{c.gap[j]:.6g}", f"{c.gap_se[j]:.3g}",
                            int(j == int(np.argmin(c.gap)))]
                           + [f"{c.predicted[p][j]:.6g}" for p in pairs]
                           + [int(j + 1 == c.k_pred(*p)) for p in pairs])
