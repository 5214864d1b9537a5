"""Development settings, not a check: where does the held-out loss part from the training objective (issue 21)?

    python -m paper_figures.heldout_dev [--data-dir DIR] [--problems a,b] [--results DIR] [--kstar [--pilot-steps S]]

The error model (DERIVATION.md section 8) predicts the loss gap of the *training* objective F at the budget; the
K* check measures the *test* loss. On small data the two part. This script asks, on problems of its own, whether
the part between them, excess(K) = test loss(w_T) - F(w_T), is one curve of the epochs processed
e = samples / n_train (one curve for every K and rule of a problem), or follows something else (the rounds T, the
rule's bias). Per run at the budget (lgc.sweep.run_at_budget, plain SGD) it records T, the samples processed
(rounds.csv `samples`), e, the full training objective F(w_T) on every worker's data (the run's checkpoint holds
w_T), the test loss and the excess; and a pilot curve (lgc/heldout.py: plain full-sync SGD at the same step size,
the excess at checkpoints of e), against which each run's excess is read at its own e.

None of these settings is a cell of paper_figures/kstar_cells.py's validation halves or of kstar_check.py's grids;
"cifar-d7" is the development cell d7's problem (CIFAR-10 CPU CNN, main-label c = 2, 200 samples per worker,
N = 6, B = 10, M = 5, tau = 120, one slow set for the whole run), run here with fastest-k (d7's rule) and lgc.
Step sizes are fixed here (a development choice, near the 0.5 / L that optimize-k takes on such problems).

Three readings of the pilot are compared with each run's measured excess: at the run's epochs (g(epochs)), at its
rounds (g(T): the same step size, so the same eta T), and at its training objective F(w_T) (g(F): the excess the
pilot had when its own F was the run's). Found (2026-12-06; out/heldout_dev/*.txt), mean |pilot - measured| over
the 8 runs of each problem, epochs / rounds / F: softmax-few 0.31 / 0.47 / 0.11, mlp-few 0.49 / 0.12 / 0.02,
cifar-d7 0.20 / 0.35 / 0.52. The excess is one curve of the *training objective reached* for every run whose
rule is unbiased (lgc at every K, full-sync, fastest-k with sets drawn afresh: mlp-few's eight runs within 0.08,
softmax-few's and cifar-d7's lgc runs within 0.01 and 0.11), not of the epochs (lgc processes the stragglers'
partial work: its epochs run 25-35 where full-sync's F is reached at 13-23, off by 0.26-0.76) nor of the rounds
(off by up to 0.45 for unbiased rules). It fails where a persistent fast set biases fastest-k: F(w_T) rises above
F(w_0) (cifar-d7 K = 1, 2, 4: 4.02, 3.02, 2.29 > 2.36) while the held-out loss rises further still (the model fits
the fast set's data, which F averages away), so g(F) reads about 0 where 0.9-1.5 was measured; those K lose on
their training objective already (cifar-d7: test 4.90, 4.54, 3.70 against K = N's 2.85). A fourth reading, at the
distance ||w_T - w_0|| travelled, does no better (0.32 / 0.07 / 0.25, worst +0.98 and +0.87 on the persistent
fastest-k runs). So eq. 8.14 reads the excess at the progress of the objective the rule fits (8.14': F's for the
unbiased rules, the fast set's for a persistent one).

`--kstar`: `lgc estimate` (with its default held-out pilot) -> `lgc optimize-k` at the budget with and without the
"heldout" record -> every K measured at optimize-k's step size (2 seeds; the CNN 1), written to
out/heldout_dev/<problem>_kstar.txt. K* training gap -> K* held-out (test-loss ratio to the best K): softmax-few
fastest-k 8 -> 8 (best 8), lgc 4 (1.061) -> 7 (1.015) (best 8); mlp-few fastest-k 2 -> 2 (best 2), lgc 1 -> 1
(best 1); cifar-d7 fastest-k 6 -> 6 (best 6), lgc 1 (1.174) -> 6 (1.000) (best 6).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

PERSISTENT = 10**6
OUT = Path(__file__).resolve().parent / "out" / "heldout_dev"

# name -> (TrainConfig fields, budget tau, step size, rules, Ks, seeds)
PROBLEMS = {
    "cifar-d7": (dict(dataset="cifar10", model="cnn", accept_md5_mismatch=True, partition="main-label",
                      samples_per_worker=200, classes_per_worker=2, n_workers=6, batch_size=10, blocks=5,
                      straggling_period=PERSISTENT), 120.0, 0.037, ("fastest-k", "lgc"), (1, 2, 4, 6), (0,)),
    "mlp-few": (dict(dataset="synthetic", synthetic_train=6000, synthetic_test=1000, model="mlp",
                     partition="main-label", classes_per_worker=3, samples_per_worker=60, n_workers=8,
                     batch_size=20, blocks=5, straggling_period=1), 150.0, 0.1, ("fastest-k", "lgc"), (1, 2, 4, 8),
                (0,)),
    "softmax-few": (dict(dataset="synthetic", synthetic_train=6000, synthetic_test=1000, model="softmax",
                         partition="main-label", classes_per_worker=2, samples_per_worker=50, n_workers=8,
                         batch_size=20, blocks=5, straggling_period=PERSISTENT), 150.0, 0.2, ("fastest-k", "lgc"),
                    (1, 2, 4, 8), (0,)),
}


def config(fields: dict, algorithm: str, eta: float, data_dir):
    from lgc.config import TrainConfig

    extra = {"data_dir": str(data_dir)} if fields.get("dataset") == "cifar10" else {}
    n = fields["n_workers"]
    return TrainConfig(algorithm=algorithm, threshold_k=n, lr=float(eta), momentum=0.0, warmup_rounds=0,
                       device="cpu", **fields, **extra)


def problem_of(cfg):
    """(EmpiricalProblem on every worker's whole part, test inputs, test labels): the run's task un-augmented."""
    import torch

    from lgc.estimate import task_problem
    from lgc.task import make_task

    cfg = cfg.resolved()
    task = make_task(replace(cfg, task=replace(cfg.task, augment=False)), torch.device("cpu"))
    prob = task_problem(task, name="dev")
    return prob, task.ds.normalize(task.ds.x_test), task.ds.y_test


def measure_run(cfg, tau, prob, xt, yt, root) -> dict:
    import torch

    from lgc.checkpoint import load_checkpoint
    from lgc.empirical import full_loss
    from lgc.heldout import heldout_loss
    from lgc.sweep import run_at_budget

    m = run_at_budget(cfg, tau, root=root)
    run = Path(m.run_dir)
    samples = sum(int(r["samples"]) for r in csv.DictReader(open(run / "rounds.csv")))
    w = load_checkpoint(run / "checkpoint.pt")["w"].to(torch.float32)
    with torch.no_grad():
        F = float(full_loss(prob, w))
        test = heldout_loss(prob, w, xt, yt)  # the same function the pilot uses; equals final.json's test_loss
    n_train = sum(len(x) for x, _ in prob.workers)
    dist = float(torch.linalg.vector_norm(w - prob.w0))
    return dict(K=cfg.threshold_k, rule=cfg.algorithm, seed=cfg.seed, T=m.rounds, samples=samples,
                epochs=samples / n_train, F_train=F, test=test, test_run=m.test_loss, excess=test - F, distance=dist)


# ----------------------------------------------------------------------------- K* with and without the term
ESTIMATE = ["--bootstrap", "50", "--l-bootstrap", "5"]  # seconds per problem; the CNN's shorter estimate:
ESTIMATE_CNN = [*ESTIMATE, "--power-iters", "8", "--trajectory-steps", "10", "--lbfgs-iters", "20"]


def kstar(name: str, rule: str, data_dir, results, seeds=(0, 1), log=print, pilot_steps=None) -> dict:
    """`lgc estimate` (with its held-out pilot) -> `lgc optimize-k` at the budget with and without the "heldout"
    record -> every K measured at optimize-k's step size (plain SGD, `seeds`): the two K* against the best test
    loss."""
    from lgc.commands._config_args import to_argv
    from lgc.sweep import sweep_k
    from paper_figures.command import run_lgc

    fields, tau, _, _, _, _ = PROBLEMS[name]
    cfg = config(fields, rule, 0.05, data_dir)
    folder = Path(results or "/tmp") / "heldout_dev" / f"{name}-s{pilot_steps}"
    folder.mkdir(parents=True, exist_ok=True)
    const = folder / "constants.json"
    if not const.exists():
        task = replace(cfg.task, augment=False)
        argv = [a for a in to_argv(task) if a not in ("--augment", "--no-augment")]
        run_lgc(["estimate", *argv, "--workers", str(cfg.n_workers), "--seed", "0", "--quiet", "--out", str(const),
                 *(ESTIMATE_CNN if fields["dataset"] == "cifar10" else ESTIMATE),
                 *([] if pilot_steps is None else ["--heldout-steps", str(pilot_steps)])])
    plain = folder / "constants_train.json"
    d = json.loads(const.read_text())
    d_full = dict(d)
    d.pop("heldout")
    plain.write_text(json.dumps(d))
    opt = ["optimize-k", "--budget", str(tau), "--json", "--algorithm", rule,
           *to_argv(cfg, only=("n_workers", "batch_size", "blocks", "straggling_period"))]
    held = json.loads(run_lgc([*opt, "--constants", str(const)]))
    train = json.loads(run_lgc([*opt, "--constants", str(plain)]))
    eta = held["rows"][0]["eta"]
    res = sweep_k(replace(cfg, lr=eta), budget=tau, ks=range(1, cfg.n_workers + 1), seeds=seeds, halving=False,
                  root=results)
    rows = {r["K"]: r for r in res.rows()}
    best = min(rows, key=lambda k: rows[k]["mean"])
    out = dict(problem=name, rule=rule, eta=eta, best=best, k_train=train["k_star"], k_heldout=held["k_star"],
               k_bound=held["k_star_bound"], measured={k: rows[k]["mean"] for k in rows},
               pred_gap={r["K"]: r["pred_gap"] for r in held["rows"]},
               pred_heldout={r["K"]: r["pred_heldout"] for r in held["rows"]})
    ratio = lambda k: rows[k]["mean"] / rows[best]["mean"]
    h = d_full["heldout"]
    log(f"{name} {rule}: pilot {h['steps'][-1]} steps ({h['epochs'][-1]:.3g} epochs), F {h['train'][0]:.3f} -> {h['train'][-1]:.3f}, test "
        f"{h['heldout'][0]:.3f} -> {h['heldout'][-1]:.3f}; Delta {d_full['Delta']:.3f}")
    log(f"{name} {rule}: eta={eta:.4g}; best measured K={best} (test {rows[best]['mean']:.4f}); K* training gap "
        f"{out['k_train']} (ratio {ratio(out['k_train']):.3f}), K* held-out {out['k_heldout']} "
        f"(ratio {ratio(out['k_heldout']):.3f}), bound's {out['k_bound']} (ratio {ratio(out['k_bound']):.3f})")
    log("   K: measured test | predicted held-out | predicted gap: " + "; ".join(
        f"{k}: {rows[k]['mean']:.3f} | {out['pred_heldout'][k]:.3f} | {out['pred_gap'][k]:.3f}" for k in sorted(rows)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/work/main/data")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--results", default=None, help="run cache (default $LGC_RESULTS)")
    ap.add_argument("--pilot-points", type=int, default=9)
    ap.add_argument("--kstar", action="store_true", help="instead: K* with and without the held-out term")
    ap.add_argument("--pilot-steps", type=int, default=None, help="--kstar: lgc estimate's --heldout-steps")
    a = ap.parse_args(argv)
    if a.kstar:
        OUT.mkdir(parents=True, exist_ok=True)
        for name in a.problems.split(","):
            lines = []
            for rule in PROBLEMS[name][3]:
                kstar(name, rule, a.data_dir, a.results, seeds=(0,) if name.startswith("cifar") else (0, 1),
                      log=lambda s: (print(s, flush=True), lines.append(s)), pilot_steps=a.pilot_steps)
            (OUT / f"{name}_kstar{'' if a.pilot_steps is None else f'_s{a.pilot_steps}'}.txt").write_text("\n".join(lines) + "\n")
        return 0
    from lgc.heldout import heldout_curve

    OUT.mkdir(parents=True, exist_ok=True)
    for name in a.problems.split(","):
        lines = []
        say = lambda s: (print(s, flush=True), lines.append(s))
        fields, tau, eta, rules, ks, seeds = PROBLEMS[name]
        prob, xt, yt = problem_of(config(fields, rules[0], eta, a.data_dir))
        rows = []
        t0 = time.time()
        for rule in rules:
            for k in ks:
                for s in seeds:
                    cfg = replace(config(fields, rule, eta, a.data_dir), threshold_k=k, seed=s)
                    rows.append(measure_run(cfg, tau, prob, xt, yt, a.results))
        n_train = sum(len(x) for x, _ in prob.workers)
        per_round = sum(min(fields["batch_size"], len(x)) for x, _ in prob.workers)
        e_max = max(max(r["epochs"] for r in rows), max(r["T"] for r in rows) * per_round / n_train)
        steps = int(np.ceil(1.1 * e_max * n_train / per_round))
        curve = heldout_curve(prob, xt, yt, lr=eta, steps=steps, batch=fields["batch_size"],
                              points=a.pilot_points, seed=0)
        say(f"== {name}: tau={tau:g} eta={eta:g} n_train={sum(len(x) for x, _ in prob.workers)} "
            f"({time.time() - t0:.0f} s)")
        say("pilot (full-sync SGD, every worker, B per worker): " + "; ".join(
            f"e={e:.2f} F={f:.3f} test={h:.3f} excess={x:.3f} dist={d:.2f}"
            for e, f, h, x, d in zip(curve.epochs, curve.train, curve.heldout, curve.excess, curve.distance)))
        say(f"{'rule':>10} {'K':>2} {'T':>4} {'epochs':>6} {'F_train':>8} {'test':>7} {'excess':>7} "
            f"{'g(epochs)':>9} {'g(T)':>7} {'g(F)':>7} {'dist':>6} {'g(dist)':>7}")
        order = np.argsort(curve.train)  # the pilot's held-out loss as a function of its training objective
        for r in rows:
            # the pilot's excess read at the run's epochs, at its rounds (the same step size: eta T), at its F
            r["g_epochs"] = float(np.interp(r["epochs"], curve.epochs, curve.excess))
            r["g_rounds"] = float(np.interp(r["T"], curve.steps, curve.excess))
            r["g_train"] = float(np.interp(r["F_train"], np.asarray(curve.train)[order], np.asarray(curve.excess)[order]))
            r["g_distance"] = float(np.interp(r["distance"], curve.distance, curve.excess))  # ||w - w_0|| grows
            say(f"{r['rule']:>10} {r['K']:>2} {r['T']:>4} {r['epochs']:>6.2f} {r['F_train']:>8.4f} "
                f"{r['test']:>7.4f} {r['excess']:>7.4f} {r['g_epochs']:>9.4f} {r['g_rounds']:>7.4f} {r['g_train']:>7.4f} {r['distance']:>6.2f} {r['g_distance']:>7.4f}")
        for key in ("g_epochs", "g_rounds", "g_train", "g_distance"):
            err = np.array([r[key] - r["excess"] for r in rows])
            say(f"  {key}: mean |pilot - measured excess| {np.abs(err).mean():.4f}, worst {err[np.abs(err).argmax()]:+.4f}")
        with open(OUT / f"{name}.csv", "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
        (OUT / f"{name}_pilot.json").write_text(json.dumps(curve._asdict(), indent=1) + "\n")
        (OUT / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
