"""The measured K sweep at a time budget (`lgc sweep-k`; issue 21): the ground truth K* checks use.

    res = sweep_k(TrainConfig(...), budget=150.0, ks=range(1, 9), seeds=(0, 1, 2))
    res.best_k, res.rows                     # per K: rounds, test loss and accuracy per seed

Each (K, seed) is one `lgc train` run on the sim backend (lgc.sim.train, so the run cache makes a
rerun reuse every finished run) of exactly the rounds that end within the budget tau on the run's
own virtual clock: T(K, seed) = max{T : R_0 + ... + R_{T-1} <= tau}, counted from the run's own
schedule (the same timing draws, warm-up rounds, semantics and communication time that the run
then trains with). Its last round evaluates the whole test set, so the test loss and accuracy of
its final.json are the loss and accuracy at the budget. Which (K, seed) run is chosen by
successive halving over K with seeds as the resource (lgc.halving), or every one (halving=False).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from lgc.config import TrainConfig
from lgc.config_fields import check_seed
from lgc.errors import UserError, check
from lgc.halving import Halving, score, successive_halving

MAX_ROUNDS = 10**6  # a budget that fits more rounds than this is refused (a typo such as --budget 1e9)


def rounds_within(cfg: TrainConfig, budget: float, dataset=None) -> tuple[int, float]:
    """(T, time): the rounds of the run `cfg` that end within `budget` on its virtual clock, and
    the clock after them; computed from the run's schedule alone (no gradients)."""
    from lgc.sim import Simulator

    sim = Simulator(replace(cfg, rounds=MAX_ROUNDS), dataset=dataset)
    clock = 0.0
    for t in range(MAX_ROUNDS):
        s = sim.schedule_for(t, t < cfg.warmup_rounds)
        if clock + s.wall > budget:
            return t, clock
        clock += s.wall
        sim.schedules.append(s)  # boundary semantics: a straggler's overrun carries into the next round (eq. 2.3')
    raise UserError(f"budget={budget:g} fits more than {MAX_ROUNDS} rounds at K={cfg.threshold_k}: "
                    f"give a smaller --budget")


@dataclass(frozen=True)
class Measurement:
    """One run at the budget."""
    k: int
    seed: int
    rounds: int
    time: float
    test_loss: float   # nan when the run diverged
    test_acc: Optional[float]
    run_dir: str
    status: str        # "ok" or lgc.protocol.DIVERGED


@dataclass(frozen=True)
class SweepResult:
    budget: float
    ks: tuple
    seeds: tuple
    halving: Halving
    runs: dict          # (K, seed) -> Measurement

    @property
    def best_k(self) -> int:
        return int(self.halving.best)

    def rows(self) -> list[dict]:
        """Per K: the seeds measured, rounds, test loss mean and standard error, accuracy, last rung."""
        out = []
        for k in self.ks:
            ms = [self.runs[(k, s)] for s in self.seeds if (k, s) in self.runs]
            loss = [m.test_loss for m in ms]
            acc = [m.test_acc for m in ms if m.test_acc is not None]
            n = len(loss)
            se = float(np.std(loss, ddof=1) / np.sqrt(n)) if n > 1 and np.all(np.isfinite(loss)) else None
            out.append({"K": k, "seeds": [m.seed for m in ms], "rounds": [m.rounds for m in ms],
                        "time": [m.time for m in ms], "test_loss": loss, "test_acc": acc,
                        "mean": score(loss) if n else None, "se": se,
                        "acc_mean": float(np.mean(acc)) if acc else None,
                        "diverged": sum(m.status != "ok" for m in ms),
                        "last_rung": self.halving.last_rung.get(k), "best": k == self.best_k,
                        "run_dirs": [m.run_dir for m in ms]})
        return out


def check_sweep(cfg: TrainConfig, budget: float, ks: Sequence[int], seeds: Sequence[int]) -> None:
    check(budget > 0, f"budget={budget:g} must be > 0")
    check(len(ks) >= 1 and len(seeds) >= 1, "give at least one K (--ks) and one seed (--seeds)")
    check(len(set(ks)) == len(ks), f"--ks {','.join(map(str, ks))} repeats a K")
    check(len(set(seeds)) == len(seeds), f"--seeds {','.join(map(str, seeds))} repeats a seed")
    bad = [k for k in ks if not 1 <= k <= cfg.n_workers]
    check(not bad, f"K={bad[0] if bad else ''} must satisfy 1 <= K <= N={cfg.n_workers}")
    check(all(s >= 0 for s in seeds), f"--seeds {','.join(map(str, seeds))}: seeds must be >= 0")
    for s in seeds:  # every run's own check, up front: not after the runs of the seeds before it
        check_seed("seed", s)
    from theory.algorithms import NAMES, algorithm

    waits = [a for a in NAMES if algorithm(a).waits_for_k]
    check(algorithm(cfg.algorithm).waits_for_k,
          f"algorithm={cfg.algorithm} does not wait for K workers, so K changes nothing; valid: {', '.join(waits)}")
    check(cfg.backend == "sim", f"backend={cfg.backend}: sweep-k runs the sim backend (virtual clock) only")
    check(not cfg.k_auto, "sweep-k sets K itself: drop --k auto")
    check(cfg.schedule_file is None, "sweep-k draws each K's schedule: drop --schedule-file")


def sweep_k(cfg: TrainConfig, *, budget: float, ks: Sequence[int], seeds: Sequence[int], reduction: int = 2,
            min_seeds: int = 1, halving: bool = True, root=None, force: bool = False, quiet: bool = True,
            log: Callable[[str], None] = lambda s: None) -> SweepResult:
    """Measure the test loss at the budget of the K in `ks` (successive halving over seeds, or
    every K at every seed). `cfg`'s threshold_k, seed, rounds and eval_every are set per run
    (eval_every 0: the only evaluation is the last round's, at the budget)."""
    ks, seeds = tuple(int(k) for k in ks), tuple(int(s) for s in seeds)
    check_sweep(cfg, budget, ks, seeds)
    dataset = _dataset(cfg)
    runs: dict = {}

    def measure(k: int, seed: int) -> float:
        m = run_at_budget(replace(cfg, threshold_k=k, seed=seed, eval_every=0), budget, root=root, force=force,
                          quiet=quiet, dataset=dataset)
        runs[(k, seed)] = m
        log(f"K={k} seed={seed}: T={m.rounds} test_loss={m.test_loss:.5g} ({m.status})")
        return m.test_loss

    h = successive_halving(ks, seeds, measure, reduction=reduction, min_seeds=min_seeds, halving=halving)
    return SweepResult(budget, ks, seeds, h, runs)


def run_at_budget(cfg: TrainConfig, budget: float, *, root=None, force=False, quiet=True, dataset=None) -> Measurement:
    """Train (or reuse) the run of `cfg` cut to the rounds that end within `budget`."""
    from lgc.protocol import DIVERGED
    from lgc.sim import train

    cfg = cfg.resolved().validate()
    t, clock = rounds_within(cfg, budget, dataset)
    check(t >= 1, f"budget={budget:g} ends before the first round of K={cfg.threshold_k} (seed {cfg.seed}): "
                  f"give a larger --budget")
    path = train(replace(cfg, rounds=t), root=root, force=force, quiet=quiet, dataset=dataset)
    final = json.loads((Path(path) / "final.json").read_text())
    diverged = final.get("status") == DIVERGED
    loss = final.get("test_loss")
    return Measurement(cfg.threshold_k, cfg.seed, t, clock, float("nan") if diverged or loss is None else float(loss),
                       None if diverged else final.get("test_acc"), str(path), DIVERGED if diverged else "ok")


def _dataset(cfg: TrainConfig):
    """CIFAR-10 loaded once for every run of the sweep (None: each task builds its own data)."""
    if cfg.task.dataset != "cifar10":
        return None
    from lgc.data.cifar10 import load_cifar10

    return load_cifar10(cfg.task.data_dir, accept_md5_mismatch=cfg.task.accept_md5_mismatch)
