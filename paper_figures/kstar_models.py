"""The K* check on models (issue 21, part 3): the cells of paper_figures/kstar_cells.py, all through the CLI.

    python -m paper_figures.kstar_models [--data-dir data] [--shared-data ../shared/data] [--half validation]
                                         [--cells v1-...,d2-...] [--out DIR] [--results DIR]
    (make kstar-models; about 15 min on 2 cores from nothing, seconds from the run cache)

Per cell:
 1. `lgc estimate` on the cell's problem (its data, partition, model and initial weights, seed 0)
    -> constants.json (cached under results/kstar_models/ by its flags and the code version);
 2. `lgc optimize-k --constants constants.json --budget TAU --json` with the cell's N, B, M, rule and
    timing -> `k_star` (the recommended K*), `k_star_bound` (the bound's; absent in an optimize-k that
    has only the bound, whose `k_star` is then the bound's), the step size eta of its rows and a
    per-K predicted column where its rows have one (a key naming "predict");
 3. `lgc sweep-k --no-halving` at that eta (plain SGD: momentum 0, no warm-up), every K = 1..N, seeds
    0, 1, 2: the test loss at the budget, mean and standard error over seeds (the ground truth; it
    does not depend on the predictive model).

A chooser (predictive K*, bound K*, K = N, K = N/2 rounded down) *hits* a cell when its K's mean loss
is within 3% of the best K's, or within 2 standard errors of it, the SE of the difference of the
two means, sqrt(SE_K^2 + SE_best^2) (the issue's target: >= 90% of the validation half's cells).
R^2 per cell: 1 - SS_res / SS_tot of the predicted column against the measured means over K (only
when optimize-k predicts the loss itself), and the squared correlation over K for the predicted
column and for the bound (scale-free: the bound is on E||grad F||^2, not on the loss). Where the
constants carry a held-out record, optimize-k's k_star minimises the predicted held-out loss
(`pred_heldout`, eq. 8.14), which is on the test loss's own scale: r2_heldout is its R^2 with nothing
fitted, and the figure draws it over the measured curve.

Writes under paper_figures/out/kstar_models/: kstar_models.csv (cells x K: measured mean, SE,
rounds, predicted, bound, which K each chooser picks), summary.csv (per cell: the best K and every
chooser's K, loss ratio and hit, R^2), summary.txt (hits per half), kstar_models.png/pdf (the
measured curves with the K* marked), provenance.json (code version, libraries, command, wall time) and
cells/<cell>/{constants,optimize_k}.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from paper_figures.command import run_lgc
from paper_figures.kstar_cells import CELLS, HALVES, SEEDS, Cell

OUT = Path(__file__).resolve().parent / "out" / "kstar_models"
ESTIMATE = ["--bootstrap", "50", "--l-bootstrap", "5"]  # as make kstar-mlp: seconds per cell on a CPU
# the CNN: the CIFAR CPU profile's shorter power iterations, trajectory and L-BFGS (paper_profile.CPU): with
# the defaults its estimate ran past 5 minutes on the loaded 2-core machine
ESTIMATE_CNN = [*ESTIMATE, "--power-iters", "8", "--trajectory-steps", "10", "--lbfgs-iters", "20"]
WITHIN, N_SE = 0.03, 2.0
CHOOSERS = ("predictive", "bound", "K=N", "K=N/2")


# ----------------------------------------------------------------------------- the cell's flags
def train_config(cell: Cell, data_dir: str | None, eta: float = 0.05):
    """The cell's TrainConfig at step size eta, plain SGD (what the check measures)."""
    from lgc.config import TrainConfig

    extra = {"data_dir": str(data_dir)} if cell.uses_cifar else {}
    return TrainConfig(algorithm=cell.algorithm, n_workers=cell.n_workers, threshold_k=cell.n_workers,
                       batch_size=cell.batch_size, blocks=cell.blocks, lr=float(eta), momentum=0.0, warmup_rounds=0, device="cpu",
                       **cell.config, **extra)


def _argv(cfg, names) -> list[str]:
    from lgc.commands._config_args import to_argv

    return to_argv(cfg, only=[n for n in names if n in {f.name for f in fields(cfg)}])


def estimate_argv(cell: Cell, data_dir) -> list[str]:
    """`lgc estimate` of the cell's problem: its task's flags (TaskConfig, as lgc estimate declares them) and N, seed."""
    from dataclasses import replace

    from lgc.commands._config_args import to_argv
    from lgc.commands.estimate import PROBLEM_FIELDS

    cfg = train_config(cell, data_dir)
    task = replace(cfg.task, augment=False)  # estimate has no --augment: its constants are of un-augmented samples
    argv = [a for a in to_argv(task) if a not in ("--augment", "--no-augment")]
    flags = ESTIMATE_CNN if cell.uses_cifar else ESTIMATE
    return ["estimate", *argv, *_argv(cfg, PROBLEM_FIELDS), *flags]


def optimize_argv(cell: Cell, constants: Path) -> list[str]:
    cfg = train_config(cell, None)
    return ["optimize-k", "--constants", str(constants), "--budget", str(cell.tau), "--json",
            *_argv(cfg, ("algorithm", "n_workers", "batch_size", "blocks", "timing", "timing_params",
                         "straggling_period", "semantics"))]


def sweep_argv(cell: Cell, data_dir, eta: float, results) -> list[str]:
    from lgc.commands.sweep_k import NOT_FLAGS

    cfg = train_config(cell, data_dir, eta)
    argv = ["sweep-k", "--budget", str(cell.tau), "--seeds", ",".join(map(str, SEEDS)), "--no-halving", "--json",
            *_argv(cfg, [f.name for f in fields(cfg) if f.name not in NOT_FLAGS])]
    return argv + (["--results", str(results)] if results else [])


# ----------------------------------------------------------------------------- one cell
def estimate(cell: Cell, data_dir, results: Path, out: Path) -> Path:
    """constants.json of the cell, reused while its flags and the code are the same."""
    from lgc.runs import code_version

    argv = estimate_argv(cell, data_dir)
    key = hashlib.sha256((json.dumps(argv) + code_version()["source_hash"]).encode()).hexdigest()[:16]
    cached = results / "kstar_models" / f"{cell.name}-{key}" / "constants.json"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        run_lgc([*argv, "--out", str(cached), "--quiet"])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, out / "constants.json")
    return out / "constants.json"


def optimize(cell: Cell, constants: Path, out: Path) -> dict:
    res = json.loads(run_lgc(optimize_argv(cell, constants)))
    (out / "optimize_k.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


def predicted_key(rows: list[dict]) -> str | None:
    """The per-K predicted column of optimize-k's rows, if it has one: the error model's loss gap
    F(w_T) - F* (`pred_gap`, DERIVATION.md section 8), else any key naming a prediction."""
    if not rows:
        return None
    if "pred_gap" in rows[0]:
        return "pred_gap"
    keys = [k for k in rows[0] if "predict" in k.lower()]
    return keys[0] if keys else None


def measure(cell: Cell, data_dir, eta: float, results) -> dict:
    """lgc sweep-k's JSON: every K at every seed."""
    return json.loads(run_lgc(sweep_argv(cell, data_dir, eta, results)))


# ----------------------------------------------------------------------------- grading (pure)
def hit(mean: dict, se: dict, k: int, best: int) -> bool:
    """K's loss within WITHIN of the best K's, or within N_SE SEs of the difference of the means."""
    gap = mean[k] - mean[best]
    return bool(gap <= WITHIN * abs(mean[best]) or gap <= N_SE * float(np.hypot(se[k], se[best])))


def r2(pred, meas) -> float | None:
    """1 - SS_res / SS_tot of `pred` against `meas` up to one constant offset (None when meas is constant
    or pred is not finite): the model predicts the gap F(w_T) - F*, the check measures the test loss, whose
    F* (and test-train offset) is unknown; the offset is the mean difference, nothing else is fitted."""
    p, m = np.asarray(pred, float), np.asarray(meas, float)
    return r2_absolute(p + np.mean(m - p), m) if np.all(np.isfinite(p)) else None


def r2_absolute(pred, meas) -> float | None:
    """1 - SS_res / SS_tot of `pred` against `meas`, nothing fitted (None when meas is constant or pred is not
    finite): for optimize-k's predicted held-out loss (eq. 8.14), which is on the test loss's own scale."""
    p, m = np.asarray(pred, float), np.asarray(meas, float)
    ss_tot = float(np.sum((m - m.mean()) ** 2))
    if ss_tot == 0 or not np.all(np.isfinite(p)):
        return None
    return 1.0 - float(np.sum((m - p) ** 2)) / ss_tot


def corr2(pred, meas) -> float | None:
    """The squared correlation over K (R^2 of the best affine map of pred onto meas)."""
    p, m = np.asarray(pred, float), np.asarray(meas, float)
    if not np.all(np.isfinite(p)) or p.std() == 0 or m.std() == 0:
        return None
    return float(np.corrcoef(p, m)[0, 1] ** 2)


def choosers(cell: Cell, opt: dict) -> dict:
    k_bound = opt.get("k_star_bound", opt["k_star"])
    return {"predictive": int(opt["k_star"]), "bound": int(k_bound), "K=N": cell.n_workers,
            "K=N/2": max(1, cell.n_workers // 2)}


def grade(cell: Cell, opt: dict, sweep: dict) -> tuple[list[dict], dict]:
    """The cells x K rows and the cell's summary row."""
    rows = {r["K"]: r for r in opt["rows"]}
    pkey = predicted_key(opt["rows"])
    mean = {r["K"]: r["mean"] for r in sweep["rows"]}
    se = {r["K"]: (r["se"] if r["se"] is not None else float("inf")) for r in sweep["rows"]}
    best = int(sweep["best_k"])
    chosen = choosers(cell, opt)
    ks = [r["K"] for r in sweep["rows"]]
    table = [{"cell": cell.name, "half": cell.half, "algorithm": cell.algorithm, "N": cell.n_workers, "tau": cell.tau,
              "K": k, "rounds_mean": float(np.mean(r["rounds"])), "measured_mean": mean[k], "measured_se": se[k],
              "seeds": len(r["seeds"]), "predicted": rows[k].get(pkey) if pkey else None,
              "predicted_heldout": rows[k].get("pred_heldout"), "bound": rows[k]["bound"],
              "eta": rows[k]["eta"], "is_best": int(k == best),
              **{f"is_{name}": int(k == kc) for name, kc in chosen.items()}}
             for k, r in zip(ks, sweep["rows"])]
    summary = {"cell": cell.name, "half": cell.half, "algorithm": cell.algorithm, "N": cell.n_workers,
               "tau": cell.tau, "eta": rows[ks[0]]["eta"], "best_k": best, "best_loss": mean[best],
               "best_se": se[best], "predictive_model": int("k_star_bound" in opt)}
    for name, k in chosen.items():
        summary.update({f"k_{name}": k, f"ratio_{name}": mean[k] / mean[best], f"hit_{name}": int(hit(mean, se, k, best))})
    meas = [mean[k] for k in ks]
    pred = [rows[k].get(pkey) for k in ks] if pkey else None
    summary["r2_predicted"] = r2(pred, meas) if pred is not None else None
    summary["corr2_predicted"] = corr2(pred, meas) if pred is not None else None
    summary["corr2_bound"] = corr2([rows[k]["bound"] for k in ks], meas)
    held = [rows[k].get("pred_heldout") for k in ks]  # eq. 8.14, where the constants carry a "heldout" record
    summary["k_objective"] = opt.get("k_objective", "gap")
    summary["r2_heldout"] = r2_absolute(held, meas) if all(v is not None for v in held) else None
    return table, summary


def summary_text(summaries: list[dict]) -> str:
    """Hits per half for every chooser, and the median R^2."""
    lines = []
    for half in HALVES:
        s = [r for r in summaries if r["half"] == half]
        if not s:
            continue
        hits = "  ".join(f"{name} {sum(r[f'hit_{name}'] for r in s)}/{len(s)}" for name in CHOOSERS)
        lines.append(f"{half} half ({len(s)} cells): hits (within {WITHIN:.0%} or {N_SE:g} SE of the best K): {hits}")
        ratios = "  ".join(f"{name} {np.median([r[f'ratio_{name}'] for r in s]):.3f}/"
                           f"{max(r[f'ratio_{name}'] for r in s):.3f}" for name in CHOOSERS)
        lines.append(f"  loss / best K's loss, median/worst: {ratios}")
        for key in ("r2_predicted", "r2_heldout", "corr2_predicted", "corr2_bound"):
            v = [r[key] for r in s if r[key] is not None]
            lines.append(f"  {key}: median {np.median(v):.3f} over {len(v)} cells" if v else f"  {key}: none")
    if summaries and not any(r["predictive_model"] for r in summaries):
        lines.append("note: optimize-k's JSON has no k_star_bound: its k_star is the bound's, so the predictive "
                     "column repeats the bound")
    return "\n".join(lines)


def cell_text(s: dict) -> str:
    ks = " ".join(f"{n}: K={s[f'k_{n}']} x{s[f'ratio_{n}']:.3f}{'' if s[f'hit_{n}'] else ' MISS'}" for n in CHOOSERS)
    return f"{s['cell']}: best K={s['best_k']} loss {s['best_loss']:.4g} +- {s['best_se']:.2g}; {ks}"


# ----------------------------------------------------------------------------- figure
def draw(table: list[dict], summaries: list[dict], out: Path) -> list[Path]:
    from paper_figures import style

    n = len(summaries)
    ncols = 4
    fig, axes = style.figure(ncols, (n + ncols - 1) // ncols, width=2.6, height=2.0)
    for ax, s in zip(axes.flat, summaries):
        rows = [r for r in table if r["cell"] == s["cell"]]
        ks = [r["K"] for r in rows]
        ax.errorbar(ks, [r["measured_mean"] for r in rows], yerr=[r["measured_se"] for r in rows], marker="o", ms=2.5,
                    lw=1, capsize=1.5, color="C0")
        if all(r.get("predicted_heldout") is not None for r in rows):  # eq. 8.14: on the test loss's own scale
            ax.plot(ks, [r["predicted_heldout"] for r in rows], color="C3", lw=0.8, alpha=0.7,
                    label="predicted held-out loss")
        ax.axvline(s["k_predictive"], color="C3", ls="--", lw=1, label="K* (recommended)")
        if s["k_bound"] != s["k_predictive"]:
            ax.axvline(s["k_bound"], color="C2", ls=":", lw=1, label="K* (bound)")
        ax.axvline(s["best_k"], color="0.5", ls="-", lw=0.6, alpha=0.6, label="measured best")
        ax.set_title(f"{s['cell']} ({s['half'][:3]})", fontsize=6)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=5)
    axes.flat[0].set_ylabel("test loss at tau", fontsize=7)
    fig.tight_layout()
    return style.save(fig, out / "kstar_models")


# ----------------------------------------------------------------------------- main
def make(cells, *, data_dir, results: Path, out: Path = OUT, log=print) -> list[Path]:
    from lgc import runs
    from lgc.runs import atomic_write_csv, atomic_write_text

    began = time.perf_counter()
    table, summaries = [], []
    for cell in cells:
        t0 = time.perf_counter()
        cdir = out / "cells" / cell.name
        const = estimate(cell, data_dir, results, cdir)
        opt = optimize(cell, const, cdir)
        eta = {r["eta"] for r in opt["rows"]}
        if len(eta) != 1:
            raise SystemExit(f"{cell.name}: optimize-k gave a step size per K ({sorted(eta)}); the check runs one eta")
        sweep = measure(cell, data_dir, eta.pop(), results)
        rows, summary = grade(cell, opt, sweep)
        table += rows
        summaries.append(summary)
        log(f"{cell_text(summary)} ({time.perf_counter() - t0:.0f} s)")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "kstar_models.csv", table, list(table[0]))
    atomic_write_csv(out / "summary.csv", summaries, list(summaries[0]))
    text = summary_text(summaries)
    atomic_write_text(out / "summary.txt", "\n".join(cell_text(s) for s in summaries) + "\n\n" + text + "\n")
    log(text)
    runs.atomic_write_json(out / "provenance.json", {
        "code_version": runs.code_version(), "environment": runs.environment_info("cpu"), "command": " ".join(sys.argv),
        "cells": [c.name for c in cells], "seeds": list(SEEDS), "wall_s": round(time.perf_counter() - began, 1)})
    return [out / "kstar_models.csv", out / "summary.csv", out / "summary.txt", out / "provenance.json",
            *draw(table, summaries, out)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paper_figures.kstar_models", description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="data", help="CIFAR-10 folder for the CIFAR cells (default: data)")
    ap.add_argument("--shared-data", type=Path, help="convert this folder's JPEG copy of CIFAR-10 into --data-dir "
                                                     "first (skipped if present)")
    ap.add_argument("--half", choices=HALVES, help="only this half's cells")
    ap.add_argument("--cells", help="only these cells (names, comma-separated)")
    ap.add_argument("--no-cifar", action="store_true", help="leave out the CIFAR-10 cells")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--results", type=Path, help="results root (default: $LGC_RESULTS, else results/)")
    args = ap.parse_args(argv)
    from lgc.runs import RESULTS_ROOT

    names = set(args.cells.split(",")) if args.cells else None
    unknown = (names or set()) - {c.name for c in CELLS}
    if unknown:
        ap.error(f"unknown cells {sorted(unknown)}; valid: {', '.join(c.name for c in CELLS)}")
    cells = [c for c in CELLS if (args.half is None or c.half == args.half) and (names is None or c.name in names)
             and not (args.no_cifar and c.uses_cifar)]
    if any(c.uses_cifar for c in cells) and args.shared_data is not None:
        from paper_figures.paper import convert_shared

        convert_shared(args.shared_data, Path(args.data_dir))
    from lgc.threads import torch_threads

    with torch_threads(1):
        for p in make(cells, data_dir=args.data_dir, results=args.results or RESULTS_ROOT, out=args.out,
                      log=lambda s: print(s, file=sys.stderr, flush=True)):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
