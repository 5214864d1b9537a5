"""The paper profile (docs/PAPER_PROFILE.md): every run of figures 1-6 and 8, on CIFAR-10, at two scales.

One definition, two scales (a Scale says how big the runs are and which cells of the grid run):
PAPER is the GPU profile below; CPU (`make figures-cifar`) is the same runs with the small CNN,
c = 3 as the base, h in {1, 10} plus a persistent slow set, K in {3, 5, 7, 9}, abort semantics,
and per-class accuracy at the end (docs/PAPER_PROFILE.md states both).

Fixed for every run (docs/PAPER_PROFILE.md states the same):
  ResNet-18 (CIFAR variant, GroupNorm), N = 10 workers, K = 7, B = 50 samples per worker and
  round, M = 5 blocks (b = 10), main-label split (share 0.8 from one main class, c classes per
  worker) with 2000 samples per worker, random crop + flip, shifted-exponential timing
  (shift 1, rate 1; the time unit is one fast mini-batch), abort semantics (the paper's), 2 warm-up rounds,
  server SGD with eta = 0.05, momentum 0.9, weight decay 5e-4, T = 300 rounds, test accuracy
  on the 10,000 test images every 25 rounds, seeds 0, 1, 2 (data split fixed by data_seed 0).
  Engine: the fused gradient engine (lgc/sim/fused.py), eager, bf16 autocast and channels_last on CUDA.
Base setting: c = 5, h = 10. Each figure varies one thing:
  fig1/fig2  algorithm (all five) x c in {3, 5, 10}
  fig3       h in {1, 10, 30} for full-sync, fastest-K, LGC; full-sync uses every worker every
             round, so its iterates do not depend on h: its base run is trained once and its
             virtual clock re-derived for each h (full_sync_clock)
  fig4/fig6  K in {3, 5, 7, 9} for fastest-K and LGC (and full-sync, K = 10) at a common
             wall-clock budget tau = T * E[R_lgc(K = 7)]: the run with threshold K gets
             T(K) = round(tau / E[R(K)]) rounds (theory.order_stats, eq. 5.1); full-sync's
             base run (T rounds, longer than tau) is read at tau
  fig5       M in {1, 2, 5, 10} for LGC
  fig8       eta in {0.02, 0.05, 0.1} for full-sync, fastest-K, LGC
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from theory.algorithms import K_RULES, PAPER_NAMES, PAPER_RULES
from theory.algorithms import algorithm as algorithm_entry

ALGORITHMS = PAPER_NAMES  # the paper's comparison; the peers have fig_peers
CORE = PAPER_RULES  # the paper's three, no ablation
CLASSES = (3, 5, 10)
PERIODS = (1, 10, 30)
KS = (3, 5, 7, 9)
BLOCKS = (1, 2, 5, 10)
LRS = (0.02, 0.05, 0.1)
BASE_N, BASE_B = 10, 50  # workers, samples per worker per mini-batch
BASE_C, BASE_H, BASE_K, BASE_M, BASE_LR = 5, 10, 7, 5, 0.05
BASE_MOMENTUM, BASE_WARMUP = 0.9, 2  # every run's server momentum and full-sync warm-up rounds
FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig8", "classes")
PERSISTENT = "persistent"  # fig3's regime with a held slow set (HeterogeneousSpeed, slow_workers="first")
# 3 of the 10 workers (N - K of them at K = 7) 3x slower for ever: the fastest K never includes them
PERSISTENT_TIMING = {"shift": 1.0, "rate": 1.0, "slow_fraction": 0.3, "slowdown": 3.0, "slow_workers": "first"}


@dataclass(frozen=True)
class Scale:
    """How big the runs are: the paper scale, or a tiny CPU smoke scale for tests."""

    rounds: int = 300
    width: int = 64
    samples_per_worker: int = 2000
    eval_every: int = 25
    checkpoint_every: int = 100
    seeds: int = 3
    device: str = "auto"
    eval_subset: Optional[int] = None  # evaluations before the last on the first n test images (None: all)
    model: str = "resnet18"
    # which cells of the grid run (the CPU scale runs a subset of the paper's)
    base_c: int = BASE_C
    classes: tuple = CLASSES  # fig1/fig2: `base_algorithms` at base_c, `other_c_algorithms` at the others
    base_algorithms: tuple = ALGORITHMS
    other_c_algorithms: tuple = ALGORITHMS
    periods: tuple = PERIODS  # fig3 (and PERSISTENT if `persistent`)
    persistent: bool = False
    ks: tuple = KS
    figures: tuple = FIGURES  # "classes": the final per-class accuracy of fig1's base runs and fig3's persistent set
    semantics: str = "abort"  # the paper's (docs/PAPER_PROFILE.md), stated in every config
    threads: Optional[int] = None  # torch threads per run (None: torch's default)
    name: str = "paper"
    # `lgc estimate` arguments for the scale's own constants (the CPU scale; the GPU scale takes --constants)
    estimate_args: tuple = ()


PAPER = Scale()
# a smoke test of the whole pipeline in minutes on a CPU: the small CNN (a ResNet-18 of width 4
# still took about 20 s a run on the shared 2-core CPU, most of it 4 rounds of 500 samples)
TINY = Scale(rounds=4, width=4, samples_per_worker=40, eval_every=2, checkpoint_every=0, seeds=2, device="cpu",
             eval_subset=100, model="cnn", threads=1)
# `make figures-cifar`: the paper's experiment on this project's 2-core CPU within about an hour
# (docs/PAPER_PROFILE.md: the measured time per run and the plan). Abort semantics, the paper's.
CPU = Scale(rounds=300, width=32, samples_per_worker=2000, eval_every=25, checkpoint_every=50, seeds=3,
            device="cpu", eval_subset=1000, model="cnn", base_c=3, classes=(3,), other_c_algorithms=CORE,
            base_algorithms=ALGORITHMS,
            periods=(1, 10), persistent=True, ks=KS, figures=("fig1", "fig2", "fig3", "fig4", "classes"),
            semantics="abort", threads=1, name="cifar",
            # a few CPU minutes, not hours: 200 samples of each worker's 2,000, shorter power
            # iterations and L-BFGS (docs/PAPER_PROFILE.md: what each constant came out as)
            estimate_args=("--max-samples", "200", "--power-iters", "8", "--l-bootstrap", "5", "--bootstrap", "50",
                           "--trajectory-steps", "10", "--lbfgs-iters", "20"))
# the CPU profile's smoke test (the suite): the same grid, 3 rounds of 40 samples per worker
CPU_TINY = dataclasses.replace(CPU, rounds=3, width=4, samples_per_worker=40, eval_every=2, checkpoint_every=0,
                               seeds=2, eval_subset=100)
SCALES = {"paper": PAPER, "paper-tiny": TINY, "cpu": CPU, "cpu-tiny": CPU_TINY}


@dataclass(frozen=True)
class Job:
    """One training run and the figures that read it; `tags` say where it sits in them."""

    config: object  # lgc.config.TrainConfig
    figures: tuple
    tags: dict


def base_config(data_dir: str, scale: Scale, *, accept_md5_mismatch: bool = True, **overrides):
    """The base run (c = scale.base_c, h = 10, K = 7, M = 5, eta = 0.05) with `overrides` applied."""
    from lgc.config import TrainConfig

    d = dict(
        algorithm="lgc", n_workers=BASE_N, threshold_k=BASE_K, batch_size=BASE_B, blocks=BASE_M, rounds=scale.rounds,
        warmup_rounds=BASE_WARMUP, lr=BASE_LR, momentum=BASE_MOMENTUM, weight_decay=5e-4, dataset="cifar10",
        data_dir=str(data_dir),
        accept_md5_mismatch=accept_md5_mismatch, augment=True, model=scale.model, width=scale.width, norm="group",
        partition="main-label", classes_per_worker=scale.base_c, samples_per_worker=scale.samples_per_worker,
        main_share=0.8, timing="shifted-exp", timing_params={"shift": 1.0, "rate": 1.0},
        straggling_period=BASE_H, semantics=scale.semantics, seed=0, data_seed=0, eval_every=scale.eval_every,
        eval_subset=scale.eval_subset,
        checkpoint_every=scale.checkpoint_every, device=scale.device, engine="fused", compile="none")
    d.update(overrides)
    return TrainConfig(**d)


@lru_cache(maxsize=None)
def expected_round_time(algorithm: str, k: int, n: int = 10, m: int = BASE_M, semantics: str = "abort") -> float:
    """E[R(K)] of the base timing (shifted exponential) under `semantics`, theory/order_stats."""
    from theory.order_stats import expected_round_times
    from theory.timing import ShiftedExponential

    rt = expected_round_times(ShiftedExponential(shift=1.0, rate=1.0), n, m, algorithm, semantics=semantics, ks=[k],
                              rounds=4000, seed=0)
    return float(rt.mean[0])


def budget(scale: Scale) -> float:
    """tau of figures 4 and 6: the base LGC run's expected virtual time."""
    return scale.rounds * expected_round_time("lgc", BASE_K, semantics=scale.semantics)


def rounds_for(algorithm: str, k: int, scale: Scale) -> int:
    """T(K) = round(tau / E[R(K)]) (eq. 5.1), so every K gets the same expected time."""
    if algorithm == "lgc" and k == BASE_K:
        return scale.rounds
    return max(3, round(budget(scale) / expected_round_time(algorithm, k, semantics=scale.semantics)))


def jobs(data_dir: str, scale: Scale = PAPER, *, accept_md5_mismatch: bool = True, engine: str = "fused",
         compile: str = "none") -> list[Job]:
    """Every run of the profile, in priority order (the most important figures first), each
    configuration once (a run shared by several figures lists them all)."""
    out: dict[str, Job] = {}

    def add(fig: str, tags: dict, **over):
        cfg = base_config(data_dir, scale, accept_md5_mismatch=accept_md5_mismatch, engine=engine, compile=compile,
                          **over)
        key = repr(sorted(dataclasses.asdict(cfg).items()))
        if key in out:
            old = out[key]
            out[key] = Job(cfg, old.figures + ((fig,) if fig not in old.figures else ()), {**old.tags, **tags})
        else:
            out[key] = Job(cfg, (fig,), dict(tags))

    seeds = range(scale.seeds)
    figs = set(scale.figures)
    for c in (scale.base_c,) + tuple(x for x in scale.classes if x != scale.base_c):
        algs = scale.base_algorithms if c == scale.base_c else scale.other_c_algorithms
        for group in ([a for a in algs if a in CORE], [a for a in algs if a not in CORE]):  # the paper's three first
            for seed in seeds:
                for alg in group:
                    for fig in ("fig1", "fig2"):
                        add(fig, {"c": c}, algorithm=alg, classes_per_worker=c, seed=seed)
    for h in scale.periods:
        for seed in seeds:
            for alg in CORE:
                if algorithm_entry(alg).round_end == "all":  # one run for every h (full_sync_clock)
                    add("fig3", {"h": scale.periods}, algorithm=alg, seed=seed)
                else:
                    add("fig3", {"h": h}, algorithm=alg, straggling_period=h, seed=seed)
    if scale.persistent:  # a held slow set: its own timing, so full-sync runs too
        for seed in seeds:
            for alg in CORE:
                add("fig3", {"h": PERSISTENT}, algorithm=alg, timing="heterogeneous",
                    timing_params=dict(PERSISTENT_TIMING), seed=seed)
    for seed in seeds:  # K = N: full-sync's base run (it passes tau; read at tau)
        add("fig4", {"K": 10}, algorithm="full-sync", seed=seed)
    for seed in seeds:  # seed-major: a profile cut short has every K at its first seeds
        for k in scale.ks:
            for alg in K_RULES:
                for fig in ("fig4", "fig6") if alg == "lgc" and "fig6" in figs else ("fig4",):
                    add(fig, {"K": k}, algorithm=alg, threshold_k=k, rounds=rounds_for(alg, k, scale), seed=seed)
    for m in BLOCKS if "fig5" in figs else ():
        for seed in seeds:
            add("fig5", {"M": m}, algorithm="lgc", blocks=m, seed=seed)
    for lr in LRS if "fig8" in figs else ():
        for seed in seeds:
            for alg in CORE:
                add("fig8", {"lr": lr}, algorithm=alg, lr=lr, seed=seed)
    if "classes" in figs:  # the runs the per-class figure reads: the base regime's, the persistent set's
        for key, j in out.items():
            if j.tags.get("h") == PERSISTENT or ("fig1" in j.figures and j.config.task.classes_per_worker == scale.base_c):
                out[key] = Job(j.config, j.figures + ("classes",), j.tags)
    return [j for j in out.values() if figs & set(j.figures)]


def full_sync_clock(config, period: int):
    """The virtual time after each round of the full-sync run `config` had its straggling period
    been `period`: every round waits for all N workers, R_t = max_i X_i (DERIVATION.md section 2; the
    profile has no communication cost), drawn from the same timing model, seed and rounds as the
    sim backend draws them (lgc.sim.Simulator.schedule_for). Full-sync's iterates (all N*B samples
    every round) do not depend on the period; only this clock does."""
    import numpy as np

    from lgc.protocol import make_timing
    from theory.schedule import schedule_round

    cfg = dataclasses.replace(config, straggling_period=period).resolved()
    if algorithm_entry(cfg.algorithm).round_end != "all" or cfg.comm_alpha or cfg.comm_beta:
        raise ValueError("full_sync_clock: a full-sync config without communication cost only")
    timing = make_timing(cfg)
    n = cfg.n_workers
    walls = [schedule_round(timing.block_finish_times(cfg.seed, t, n, cfg.blocks, period=period), n,
                            semantics=cfg.semantics, round_index=t).wall for t in range(cfg.rounds)]
    return np.cumsum(walls)


def select(all_jobs: list[Job], figures) -> list[Job]:
    wanted = set(figures)
    return [j for j in all_jobs if wanted & set(j.figures)]
