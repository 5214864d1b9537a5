"""fig_peers on the synthetic MLP: time to a target test loss for the same methods and speeds.

The problem of fig_algorithms and kstar_mlp (synthetic 10-class data, MLP width 64, N = 10,
B = 20, M = 5, 500 samples per worker): identical data is the iid partition, non-IID data the
main-label partition with c = 2 classes per worker. Plain SGD with eta = 0.2 (about 0.5 / L with
the estimated L = 2.34) for every algorithm, no warm-up, abort semantics; the speeds of fig_peers
(shifted exponential; a quarter of the workers 4x slower for ever); seeds 0 and 1.

Target (the rule): full-sync runs MAX_ROUNDS = 200 rounds, its test loss (the whole 2000-sample
test set, every EVAL_EVERY = 5 rounds) is averaged over the seeds, and the target is SHARE = 70% of
the way from ln 10 (a uniform prediction; the loss at w_0 is within 0.01 of it) down to that
curve's lowest value. A run's time to target is the virtual clock at its first evaluation with test
loss <= the target ("not reached" if a seed does not reach it within MAX_ROUNDS rounds). K* and S*
are the best of grids coarser than the quadratics' (K in {2, 5}, Rennala S in {10, 20}, Malenia S
in {10, 20}; Malenia's S <= N all step at one block each) and 200 rounds, to bound the CPU time;
K auto reads the constants kstar_mlp estimated (`lgc estimate` on the main-label partition, also
used for the iid one, whose zeta^2 they overstate) with budget TAU = MAX_ROUNDS fast mini-batch
times, as in fig_peers. The papers' S (eq. 6.7) needs the target's eps and sigma^2 before the
run; it is not drawn here.

The dashed line is a reference scaling, not a floor: the Tyurin-Richtarik lower-bound expression
(eq. 6.4 / 6.5 of theory/DERIVATION.md) with its universal constant set to 1 and expected block order
statistics, evaluated with those estimated L, Delta and sigma^2 / b at eps = ||grad F||^2 of
full-sync's iterate at its first evaluation that reaches the target (mean over seeds, the whole
training set). Besides what fig_peers says of the expression (a minimax statement over nonconvex
functions, constant unknown), its inputs here are estimates and a loss target turned into a
gradient-norm target.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from lgc import runs
from theory.algorithms import algorithm as algorithm_entry
from paper_figures import fig_peers, style

CONSTANTS = Path(__file__).resolve().parent / "out" / "kstar_mlp" / "constants.json"
SETTING = dict(n_workers=10, batch_size=20, blocks=5, lr=0.2, momentum=0.0, warmup_rounds=0, dataset="synthetic",
               model="mlp", width=64, classes_per_worker=2, samples_per_worker=500, semantics="abort")
MAX_ROUNDS = 200
EVAL_EVERY = 5
SEEDS = (0, 1)
SHARE = 0.7  # the target: this share of the way from ln(classes) to full-sync's lowest mean test loss
K_GRID = (2, 5)
TAU = float(MAX_ROUNDS)
DATA = {"identical data": "iid", "non-IID data": "main-label"}  # partition
SPEEDS = fig_peers.SPEEDS
METHODS = (("full-sync", "full-sync", "threshold_k", (10,)), ("fastest-k", "fastest-k", "threshold_k", K_GRID),
           ("lgc", "lgc", "threshold_k", K_GRID), ("lgc (K auto)", "lgc", "k_auto", ("auto",)),
           ("rennala", "rennala", "peer_s", (10, 20)), ("malenia", "malenia", "peer_s", (10, 20)))


def _config(alg: str, name: str, v, partition: str, timing: str, params: dict, seed: int) -> dict:
    param = ({"k_auto": True, "budget": TAU, "k_constants": str(CONSTANTS)} if name == "k_auto" else {name: v})
    return {**SETTING, "algorithm": alg, **param, "partition": partition, "timing": timing, "timing_params": params,
            "seed": seed, "data_seed": 0}


def _grad_norm2(config: dict, w) -> float:
    """||grad F(w)||^2 on the whole training set of config's task, F = sum_i pi_i f_i (lgc.estimate)."""
    import torch

    from lgc.config import TrainConfig
    from lgc.estimate import problem_from_model, worker_gradients
    from lgc.task import make_task

    task = make_task(TrainConfig(rounds=MAX_ROUNDS, device="cpu", **config).resolved().validate(),
                     torch.device("cpu"))
    workers = [(task.ds.normalize(task.ds.x_train[torch.from_numpy(p)]), task.ds.y_train[torch.from_numpy(p)])
               for p in task.parts]
    prob = problem_from_model(task.model, workers, pi=task.pi)
    g = (torch.as_tensor(task.pi, dtype=torch.float32)[:, None] * worker_gradients(prob, w)).sum(0)
    return float(g @ g)


def run(config: dict, target: float | None) -> dict:
    """Cached. target None (full-sync): every evaluation [round, clock, test loss], and the
    iterates there in iterates.pt (for eps); else the rounds and clock at the first evaluation with
    test loss <= target."""
    import torch

    key = {**config, "max_rounds": MAX_ROUNDS, "eval": EVAL_EVERY, "target": target}
    path = runs.run_dir("peers_mlp", key)
    if runs.is_complete(path):
        return {**json.loads((path / "final.json").read_text()), "path": str(path)}
    from lgc.config import TrainConfig
    from lgc.sim import Simulator

    sim = Simulator(TrainConfig(rounds=MAX_ROUNDS, eval_every=EVAL_EVERY, checkpoint_every=0, device="cpu", **config))
    out = {"reached": False, "rounds": MAX_ROUNDS, "time": math.inf, "S": sim.round_param, "evals": []}
    iterates = []
    for t in range(MAX_ROUNDS):
        row = sim.step()
        if "test_loss" not in row:
            continue
        loss = float(row["test_loss"])
        if target is None:
            out["evals"].append([t + 1, sim.clock, loss])
            iterates.append(sim.w.clone())
        elif loss <= target:
            out.update(reached=True, rounds=t + 1, time=sim.clock)
            break
    out["mean_round_time"] = sim.clock / sim.round
    if sim.k_control is not None:
        out["k_refits"] = [h["k"] for h in sim.k_control.history]
    runs.start_run(path, key)
    if iterates:
        torch.save(torch.stack(iterates), path / "iterates.pt")
    runs.finish_run(path, out)
    return {**out, "path": str(path)}


def target_and_eps(full: list[dict], configs: list[dict]) -> tuple[float, float]:
    """The target test loss from full-sync's runs (one per seed) and eps: the mean over seeds of
    ||grad F||^2 at each seed's first evaluation at or below the target."""
    import torch

    curve = np.mean([[e[2] for e in f["evals"]] for f in full], axis=0)
    target = math.log(10) - SHARE * (math.log(10) - float(curve.min()))
    eps = []
    for f, cfg in zip(full, configs):
        j = next(j for j, e in enumerate(f["evals"]) if e[2] <= target)
        eps.append(_grad_norm2(cfg, torch.load(Path(f["path"]) / "iterates.pt")[j]))
    return target, float(np.mean(eps))


def reference_scaling(partition: str, timing: str, params: dict, eps: float) -> tuple[float, str]:
    from theory.constants import read_constants
    from theory.time_bounds import block_times, heterogeneous_data_time, identical_data_time
    from theory.timing_factory import make_timing_model

    c = read_constants(CONSTANTS)
    tau, how = block_times(make_timing_model(timing, **params), SETTING["n_workers"], SETTING["blocks"])
    const = dict(L=c.L, delta=c.Delta, eps=eps, sigma2=c.sigma2 / (SETTING["batch_size"] // SETTING["blocks"]))
    if partition == "iid":
        return identical_data_time(tau, **const)[0], how
    return heterogeneous_data_time(tau, **const), how


def rows() -> list[dict]:
    out = []
    for data, partition in DATA.items():
        for speeds, (timing, params) in SPEEDS.items():
            configs = [_config("full-sync", "threshold_k", SETTING["n_workers"], partition, timing, params, s)
                       for s in SEEDS]
            target, eps = target_and_eps([run(c, None) for c in configs], configs)
            reference, how = reference_scaling(partition, timing, params, eps)
            for method, alg, name, values in METHODS:
                res = []
                for v in values:
                    per_seed = [run(_config(alg, name, v, partition, timing, params, seed), target) for seed in SEEDS]
                    r = {"reached": all(q["reached"] for q in per_seed), "S": per_seed[0]["S"],
                         "rounds": float(np.mean([q["rounds"] for q in per_seed])),
                         "time": float(np.mean([q["time"] for q in per_seed])),
                         "time_per_seed": " ".join(f"{q['time']:.1f}" for q in per_seed),
                         "mean_round_time": float(np.mean([q["mean_round_time"] for q in per_seed])),
                         "k_refits": " | ".join(fig_peers._k_path(q, SETTING["n_workers"]) for q in per_seed)
                         if name == "k_auto" else ""}
                    res.append((v, r))
                best = min(range(len(res)), key=lambda j: res[j][1]["time"])
                for j, (v, r) in enumerate(res):
                    k = "auto" if name == "k_auto" else (v if algorithm_entry(alg).waits_for_k else "")
                    out.append({"data": data, "speeds": speeds, "method": method, "algorithm": alg, "K": k,
                                "k_refits": r["k_refits"], "S": r["S"] or "", "paper_s": False, "best": j == best,
                                "reached": r["reached"], "rounds": r["rounds"], "time": r["time"],
                                "time_per_seed": r["time_per_seed"], "mean_round_time": r["mean_round_time"],
                                "reference_scaling": reference, "reference_tau": how, "target_test_loss": target, "eps": eps})
    return out


def make(out_dir, profile: str = "quick") -> list[Path]:
    data = rows()
    ylabel = f"time to test loss ≤ target\n{style.TIME_LABEL}"
    return style.save(fig_peers.draw(data, ylabel=ylabel, reference_label="reference scaling (constant 1, est. constants)"),
                      Path(out_dir) / "peers_mlp", data)
