"""`lgc optimize-k`'s output: the table for people and the JSON for programs (rows streamed), from a computed
trade-off, its problem and constants and the error model's recommendation (lgc/commands/optimize_k.py computes them)."""
from __future__ import annotations

import json
from typing import Optional

import numpy as np

from theory.jsonio import dumps

MAX_ROWS = 40
# What the bounds of theory/bounds.py assume of the run (DERIVATION.md section 1); `lgc train` defaults
# to momentum 0.9 and 2 warm-up rounds, so the command to follow K* says it
ASSUMES = ("plain SGD (momentum 0, no weight decay), no warm-up rounds, worker weights pi_i = 1/N: "
           "lgc train --momentum 0 --warmup-rounds 0")


def rows_to_show(res, all_rows: bool, rec=None) -> np.ndarray:
    """Every row, or at most about MAX_ROWS: evenly spread, with both K* and their neighbours; where the error model
    evaluated a subset of K, rows from that subset (and the bound's K*)."""
    n = len(res.ks)
    if all_rows or n <= MAX_ROWS:
        return np.arange(n)
    cand = np.arange(n)
    if rec is not None and rec.prediction is not None and len(rec.prediction.ks) < n:
        cand = np.union1d(np.searchsorted(res.ks, rec.prediction.ks), np.flatnonzero(res.ks == res.k_star))
    if len(cand) <= MAX_ROWS:
        return cand
    pick = set(cand[np.linspace(0, len(cand) - 1, MAX_ROWS - 10).round().astype(int)].tolist())
    for k in {res.k_star, res.k_star if rec is None else rec.k_star}:
        j = int(np.flatnonzero(res.ks[cand] == k)[0])
        pick |= set(cand[max(j - 2, 0):j + 3].tolist())
    return np.array(sorted(pick))


def format_table(res, prob, shown, rec=None) -> str:
    names = list(res.terms)
    held = rec is not None and rec.heldout is not None  # eq. (8.14)'s columns, only with a "heldout" record
    head = (["K", "E[R]", "+-se", "T", "eta", "pred_gap", "+-se", "pred_g2"] + (["pred_held", "excess"] if held else [])
            + ["bound"] + names + ["time"])
    pg, pse, pg2 = ((rec.column(res.ks, n) for n in ("gap", "gap_se", "grad2")) if rec is not None
                    else (np.full(len(res.ks), np.nan),) * 3)
    ph, px = (rec.column(res.ks, "heldout"), rec.column(res.ks, "heldout_excess")) if held else (None, None)
    k_rec = res.k_star if rec is None else rec.k_star
    lines = []
    crit = f"budget tau = {res.budget:g}" if res.criterion == "budget" else f"target bound = {res.target:g}"
    lines.append(f"# {res.algorithm}, N={prob.N}, M={prob.M}, B={prob.B}, timing={prob.timing.name}, h={prob.h:g}, "
                 f"{prob.semantics} semantics; {crit}; E[R] by {res.round_time_method}")
    lines.append("  ".join(f"{h:>10}" for h in head))
    for i in shown:
        vals = [res.round_time[i], res.round_time_se[i], res.rounds[i], res.eta[i], pg[i], pse[i], pg2[i]]
        vals += ([ph[i], px[i]] if held else []) + [res.bound[i]]
        vals += [res.terms[n][i] for n in names] + [res.time[i]]
        mark = "*" if res.ks[i] == k_rec else ("b" if res.ks[i] == res.k_star else " ")
        lines.append(f"{int(res.ks[i]):>9}{mark}  " + "  ".join(f"{v:>10.4g}" for v in vals))
    if len(shown) < len(res.ks):
        lines.append(f"# {len(shown)} of {len(res.ks)} rows shown (--all-rows for every K, --json for programs)")
    i = int(np.where(res.ks == res.k_star)[0][0])
    what = f"bound {res.bound[i]:.4g} at the budget" if res.criterion == "budget" else f"time {res.time[i]:.4g} to the target"
    if rec is not None:
        j = int(np.where(res.ks == rec.k_star)[0][0])
        if rec.criterion != "predict" or rec.note:
            why, T_j = f"the bound's{': ' + rec.note if rec.note else ''}", res.rounds[j]
        elif res.criterion == "budget" and held:
            why, T_j = f"predicted held-out loss {ph[j]:.4g} (training gap {pg[j]:.4g} + excess {px[j]:.4g}) at the budget", res.rounds[j]
        elif res.criterion == "budget":
            se = f" +- {pse[j]:.2g}" if np.isfinite(pse[j]) else ""
            why, T_j = f"predicted loss gap {pg[j]:.4g}{se} at the budget", res.rounds[j]
        else:
            T_j = rec.column(res.ks, "rounds")[j]
            why = f"predicted time {rec.column(res.ks, 'time')[j]:.4g} to mean ||grad F||^2 <= the target"
        lines.append(f"K* = {rec.k_star} (recommended; {why}; eta = {res.eta[j]:.4g}, T = {T_j:.6g})")
        lines.append(f"K*_bound = {res.k_star} ({what})")
    else:
        lines.append(f"K* = {res.k_star} ({what}; eta = {res.eta[i]:.4g}, T = {res.rounds[i]:.6g})")
    near = [int(k) for k in res.ks[res.near_best]]
    if len(near) > 1:
        lines.append(f"within the Monte Carlo error of the bound's K* (2 standard errors of E[R] and the straggler "
                     f"statistics): K = {', '.join(map(str, near))}")
    if rec is not None:
        lines.append(f"# error model: {model_note(rec, res)}")
    lines.append(f"# the bounds assume {ASSUMES}")
    lines.append(f"# dissimilarity: {dissimilarity_note(prob)}")
    lines.append(f"# strong convexity: {strong_note(prob, res.algorithm)}")
    return "\n".join(lines)


GRAM_NOTE = {True: "with the constants' Gram matrix (their mean over the points, eq. 8.2'')",
             False: "isotropic (no Gram matrix, eq. 8.2')"}


def model_note(rec, res) -> str:
    """What the error model did (DERIVATION.md section 8)."""
    p = rec.prediction
    if p is None:
        return f"not run ({rec.note})"
    sub = f" at {len(p.ks)} of the {len(res.ks)} K" if len(p.ks) < len(res.ks) else ""
    cap = f"; {int(p.capped.sum())} K predicted at the round cap" if p.capped.any() else ""
    at = ("the T above" if res.criterion == "budget" else
          "the model's own T, the fewest rounds whose predicted mean ||grad F||^2 is at most the target")
    held = ("; pred_held = predicted held-out loss F(w_0) - (Delta - pred_gap) + excess, excess = the pilot's "
            "held-out excess at that decrease of F (the constants' heldout record, eq. 8.14), which K* minimises"
            + (f" (K = {', '.join(map(str, rec.heldout_beyond))} beyond the pilot's progress: read on its linear "
               f"continuation; a longer pilot: lgc estimate --heldout-steps)" if rec.heldout_beyond else "")
            if rec.heldout is not None else "")
    return (f"pred_gap = predicted F(w_T) - F*, pred_g2 = predicted mean ||grad F||^2 over T rounds, at {at}{sub} "
            f"({p.draws} timing draw(s){cap}; the workers' deviations {GRAM_NOTE[p.gram]}){held}; "
            f"{'K* recommended by ' + rec.criterion}"
            f"{' (' + rec.note + ')' if rec.note else ''}; '*' marks the recommended K*, 'b' the bound's")


def objective_note(rec) -> str:
    """With the constants' "heldout" record: what chose the recommended K* (eq. 8.14 or why not)."""
    if rec.criterion != "predict" or rec.note:
        return "the bound's K* (the heldout record unused)"
    if rec.heldout is None:
        return "time to the target (the heldout record is for a budget: unused with --target)"
    return "predicted held-out loss (eq. 8.14)"


def strong_note(prob, algorithm) -> str:
    """Whether the strong-convexity bound (DERIVATION.md 4.8) took part."""
    from theory.strong import applies

    if prob.mu is None:
        return "not assumed (give --mu or mu in the constants for the bound through the distance to w*, DERIVATION.md 4.8)"
    if not applies(algorithm, prob.semantics, prob.timing, prob.h):
        return (f"mu={prob.mu:g} given, not used: the bound of DERIVATION.md 4.8 is for fastest-k and lgc under abort "
                f"semantics with sets redrawn every round or held for the run")
    return (f"mu={prob.mu:g} (A7): each K keeps the smaller of the bounds above and DERIVATION.md 4.8's (set terms "
            f"through G(w*) = N zeta2 (I - 11^T/N) and the distance to w*)")


def dissimilarity_note(prob) -> str:
    """Which form of the set terms the bounds used (DERIVATION.md 4.3-4.5 or 4.7)."""
    g = prob.dissimilarity
    if g is None:
        return "zeta2 alone (worst alignment, Lemma 2; give gram in the constants for the Gram forms)"
    if prob.semantics != "abort":
        return f"gram given, but {prob.semantics} semantics: zeta2 forms (the Gram forms need abort, DERIVATION.md 4.7)"
    return (f"Gram forms (A4G, DERIVATION.md 4.7) from {len(g.gram)} Gram matrix(es) of {g.n} workers, "
            f"each set term the smaller of its Gram and zeta2 forms")


def to_json(res, prob, const, rows: bool = True, rec=None, inputs: Optional[dict] = None) -> dict:
    """The JSON document; `rec`: the error model's recommendation; `inputs`: the input files by content
    (lgc.commands._paths.input_record)."""
    clean = lambda v: None if not np.isfinite(v) else float(v)
    out = {
        "algorithm": res.algorithm, "criterion": res.criterion, "budget": res.budget, "target": res.target,
        "N": prob.N, "M": prob.M, "B": prob.B, "h": prob.h, "semantics": prob.semantics,
        "timing": prob.timing.name, "constants": {k: v for k, v in const.items() if k != "gram"},
        "dissimilarity": dissimilarity_note(prob), "strong_convexity": strong_note(prob, res.algorithm),
        "round_time_method": res.round_time_method,
        "k_star": res.k_star if rec is None else rec.k_star, "k_star_bound": res.k_star,
        "near_best": [int(k) for k in res.ks[res.near_best]], "assumes": ASSUMES, "inputs": inputs or {},
    }
    out["constants"].pop("bands", None)
    has_record = out["constants"].pop("heldout", None) is not None
    if rec is not None:
        out["k_criterion"] = rec.criterion
        if has_record:  # which objective chose K* (absent without a "heldout" record: the JSON as before)
            out["k_objective"] = objective_note(rec)
            out["heldout_beyond_pilot"] = list(rec.heldout_beyond)
        out["error_model"] = model_note(rec, res)
        out["model_gram"] = bool(rec.prediction is not None and rec.prediction.gram)
        out["model_curvatures"] = bool(rec.prediction is not None and rec.prediction.curvatures)
    if rows:
        out["rows"] = [{k: (clean(v) if isinstance(v, float) else v) for k, v in r.items()} for r in res.rows()]
        if rec is not None:
            for name, col in _model_columns(res, rec).items():
                for r, v in zip(out["rows"], col):
                    r[name] = clean(float(v))
    return out


def _model_columns(res, rec) -> dict:
    """The error model's row keys (nan where it did not evaluate a K)."""
    cols = {f"pred_{n}": rec.column(res.ks, n) for n in ("gap", "gap_se", "grad2", "grad2_se")}
    if rec.heldout is not None:  # eq. (8.14): only with the constants' "heldout" record
        cols.update(pred_heldout=rec.column(res.ks, "heldout"), heldout_excess=rec.column(res.ks, "heldout_excess"))
    if res.criterion == "target":  # the model's own rounds to the target and time
        cols.update(pred_T=rec.column(res.ks, "rounds"), pred_time=rec.column(res.ks, "time"))
    return cols


def _columns(res, rec=None) -> dict:
    """Tradeoff.rows() as columns (its keys, in its order): arrays, or None for a key without one."""
    cols = {"K": res.ks.astype(int), "E[R]": res.round_time, "E[R]_se": res.round_time_se,
            "near_best": res.near_best, "T": res.rounds, "eta": res.eta, "bound": res.bound, "time": res.time,
            "E[m_j]": res.m_mean}
    cols.update({f"term:{n}": v for n, v in res.terms.items()})
    if rec is not None:
        cols.update(_model_columns(res, rec))
    return cols


def write_json(res, prob, const, out, chunk: int = 8192, rec=None, inputs: Optional[dict] = None) -> None:
    """to_json's document (strict JSON: a value that is not finite is null), its rows streamed one a
    line, a chunk of K at a time from the arrays: memory O(chunk), not a list of N row dicts (1.5 GB
    at N = 10^6). Each row is the text json.dumps gives its dict (tests/test_tradeoff_scale.py), made from
    per-column texts and one row template: at N = 10^4 a quarter of the time of json's encoder on row dicts."""
    head = dumps(to_json(res, prob, const, rows=False, rec=rec, inputs=inputs), indent=1)
    out.write(head[:-2] + ',\n "rows": [')
    cols = _columns(res, rec)
    row = "{" + ", ".join(json.dumps(k).replace("%", "%%") + ": %s" for k in cols) + "}"
    for lo in range(0, len(res.ks), chunk):
        n = len(res.ks[lo:lo + chunk])
        texts = [["null"] * n if c is None else _json_texts(np.asarray(c[lo:lo + chunk])) for c in cols.values()]
        out.write(("\n  " if lo == 0 else ",\n  ") + ",\n  ".join([row % r for r in zip(*texts)]))
    out.write("\n ]\n}\n")


def _json_texts(a: np.ndarray) -> list:
    """The JSON text of each value of a 1-D array, as json.dumps writes it: floats by repr (null where not
    finite), integers, true and false. A float column's repr is taken once per distinct value (by its bits, so
    -0.0 keeps its sign): T, eta and several bound terms repeat, and repr is most of the writer's time."""
    if a.dtype.kind == "b":
        return ["true" if v else "false" for v in a.tolist()]
    if a.dtype.kind in "iu":
        return list(map(str, a.tolist()))
    if a.dtype.kind != "f":
        return [json.dumps(v, allow_nan=False) for v in a.tolist()]
    a = a.astype(np.float64)
    _, first, inv = np.unique(a.view(np.int64), return_index=True, return_inverse=True)
    u = a[first]
    t = np.array(list(map(repr, u.tolist())), dtype=object)
    t[~np.isfinite(u)] = "null"
    return t[inv].tolist()
