"""End to end on a model: `lgc estimate` -> `lgc optimize-k` -> a measured K sweep at the budget.

    python -m paper_figures.kstar_mlp [--out DIR]        (make kstar-mlp; a few minutes on one core)

The synthetic non-IID classification problem with the MLP (N = 10, B = 20, M = 5, main-label
partition, 2 classes per worker), persistent stragglers (shifted-exponential times held for the
run), abort semantics, LGC, plain SGD (momentum 0, no warm-up: what the bounds assume) at
optimize-k's step size eta = 0.5 / L (L estimated). Steps:

 1. `lgc estimate` on the run's problem (the trainer's own data, partition and initial weights)
    writes constants.json (L, sigma^2, zeta^2, Delta, delta and the workers' Gram matrices, A4G);
 2. `lgc optimize-k --constants constants.json --budget TAU` gives the bound over K and both K*: the
    recommended one (`k_star`, the error model's, DERIVATION.md section 8) and the bound's (`k_star_bound`);
 3. `lgc train` for every K = 1..N and 3 seeds (the sim backend, virtual clock), the test loss at
    the last evaluation (every 5 rounds) that ends within the budget TAU, mean and standard error
    over seeds. The bound speaks of (1/T) sum ||grad F(w_t)||^2, not of the loss; the loss at the
    budget is what an engineer following K* gets.

Writes kstar_mlp.csv (per K: bound, the error model's predicted loss gap, both K*, measured test loss and its
standard error), constants.json, optimize_k.json and kstar_mlp.png/pdf (the measured sweep with both K* marked)
under paper_figures/out/kstar_mlp/. The sweep runs at the recommended K*'s step size (one eta for every K unless
optimize-k is told otherwise). The committed output predates the error model (paper_figures/README.md).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from paper_figures.command import run_lgc

OUT = Path(__file__).resolve().parent / "out" / "kstar_mlp"
TAU = 300.0
SEEDS = (0, 1, 2)
EVAL_EVERY = 5
PROBLEM = dict(workers=10, batch_size=20, blocks=5)
TASK = ["--dataset", "synthetic", "--model", "mlp", "--width", "64", "--partition", "main-label",
        "--classes-per-worker", "2", "--samples-per-worker", "500", "--workers", "10", "--seed", "0"]
TIMING = ["--timing", "shifted-exp", "--straggling-period", "1000000", "--semantics", "abort"]


def estimate(out: Path) -> dict:
    path = out / "constants.json"
    run_lgc(["estimate", *TASK, "--bootstrap", "50", "--l-bootstrap", "5", "--out", str(path), "--json"])
    return json.loads(path.read_text())


def optimize(out: Path) -> dict:
    res = json.loads(run_lgc(["optimize-k", "--constants", str(out / "constants.json"), "--workers", "10",
                           "--blocks", str(PROBLEM["blocks"]), "--batch-size", str(PROBLEM["batch_size"]),
                           "--algorithm", "lgc", *TIMING, "--budget", str(TAU), "--json"]))
    (out / "optimize_k.json").write_text(json.dumps(res, indent=1))
    return res


def kstars(opt: dict) -> tuple[int, int]:
    """(the recommended K*, the bound's K*) of optimize-k's JSON. A JSON written before the error model has only
    `k_star`, which was then the bound's (and the recommended one)."""
    return int(opt["k_star"]), int(opt.get("k_star_bound", opt["k_star"]))


CSV_HEAD = ["K", "E[R]", "T", "eta", "bound", "pred_gap", "near_best", "is_k_star", "is_k_star_bound",
            "test_loss_at_budget", "se", "is_best"]


def csv_rows(ks, mean, se, rows: dict, k_star: int, k_bound: int, best: int) -> list[list]:
    """kstar_mlp.csv's rows (CSV_HEAD): per K optimize-k's row (pred_gap empty where the model did not evaluate
    that K or did not run) and the measured test loss at the budget."""
    out = []
    for i, k in enumerate(ks):
        r = rows[int(k)]
        gap = r.get("pred_gap")
        out.append([int(k), f"{r['E[R]']:.5g}", r["T"], f"{r['eta']:.5g}", r["bound"], "" if gap is None else gap,
                    int(bool(r["near_best"])), int(k == k_star), int(k == k_bound), f"{mean[i]:.6g}", f"{se[i]:.3g}",
                    int(k == best)])
    return out


def sweep(eta: float, quiet: bool = True) -> dict:
    """Test loss at the budget for every K and seed: {K: [loss per seed]}."""
    from lgc.config import TrainConfig
    from lgc.runs import read_csv
    from lgc.sim import train

    out = {}
    for k in range(1, PROBLEM["workers"] + 1):
        out[k] = []
        for seed in SEEDS:
            cfg = TrainConfig(
                algorithm="lgc", n_workers=10, threshold_k=k, batch_size=PROBLEM["batch_size"], blocks=PROBLEM["blocks"],
                rounds=int(TAU) + 1, lr=float(eta), momentum=0.0, warmup_rounds=0, dataset="synthetic", model="mlp",
                width=64, partition="main-label", classes_per_worker=2, samples_per_worker=500, timing="shifted-exp",
                straggling_period=1000000, semantics="abort", eval_every=EVAL_EVERY, checkpoint_every=0,
                device="cpu", seed=seed, data_seed=0)
            rows = read_csv(train(cfg, quiet=quiet) / "rounds.csv")
            ev = [r for r in rows if r.get("test_loss", "") != "" and float(r["time"]) <= TAU]
            out[k].append(float(ev[-1]["test_loss"]))
    return out


def make(out: Path = OUT, log=print) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    const = estimate(out)
    log(f"estimate: L={const['L']:.4g} sigma2={const['sigma2']:.4g} zeta2={const['zeta2']:.4g} "
        f"Delta={const['Delta']:.4g} ({time.perf_counter() - t0:.0f} s)")
    opt = optimize(out)
    rows = {r["K"]: r for r in opt["rows"]}
    k_star, k_bound = kstars(opt)
    eta = rows[k_star]["eta"]
    log(f"optimize-k: K* = {k_star} (recommended), the bound's K* = {k_bound} (near: {opt['near_best']}), "
        f"eta = {eta:.4g}")
    meas = sweep(eta)
    ks = np.array(sorted(meas))
    mean = np.array([np.mean(meas[k]) for k in ks])
    se = np.array([np.std(meas[k], ddof=1) / np.sqrt(len(meas[k])) for k in ks])
    best = int(ks[np.argmin(mean)])
    csv_path = out / "kstar_mlp.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEAD)
        w.writerows(csv_rows(ks, mean, se, rows, k_star, k_bound, best))
    paths = [csv_path, out / "constants.json", out / "optimize_k.json"] + _plot(out, ks, mean, se, rows, k_star,
                                                                                 k_bound, best)
    at = lambda k: f"{mean[k - 1]:.4g}, ratio {mean[k - 1] / mean[best - 1]:.3f}"
    log(f"measured best K = {best} (test loss {mean[best - 1]:.4g} +- {se[best - 1]:.2g}); recommended K* = "
        f"{k_star}: {at(k_star)}; the bound's K* = {k_bound}: {at(k_bound)} ({time.perf_counter() - t0:.0f} s)")
    return paths


def _plot(out, ks, mean, se, rows, k_star, k_bound, best) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.errorbar(ks, mean, yerr=se, marker="o", ms=3, lw=1.2, capsize=2, label="measured test loss at the budget")
    ax.axvline(k_star, color="C3", ls="--", lw=1, label=f"recommended K* (error model) = {k_star}")
    ax.axvline(k_bound, color="C2", ls="-.", lw=1, label=f"the bound's K* = {k_bound}")
    ax.axvline(best, color="0.5", ls=":", lw=1, label=f"measured best K = {best}")
    ax.set_xlabel("straggler threshold K")
    ax.set_ylabel(f"test loss at tau = {TAU:g}")
    ax2 = ax.twinx()
    ax2.plot(ks, [rows[int(k)]["bound"] for k in ks], color="C2", lw=1, label="bound (right axis)")
    ax2.set_ylabel("bound on mean ||grad F||^2")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
    ax.set_title("LGC, synthetic MLP, persistent stragglers, plain SGD", fontsize=9)
    fig.tight_layout()
    paths = [out / "kstar_mlp.png", out / "kstar_mlp.pdf"]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paper_figures.kstar_mlp", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    from lgc.threads import torch_threads

    with torch_threads(1):
        for p in make(args.out, log=lambda s: print(s, file=sys.stderr)):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
