"""Measurement side of the bound validation: run the rules on non-IID quadratics with exactly
known constants, many seeds at once, and record ||grad F(w_t)||^2 (theory/DERIVATION.md
section 4.6; the setting: paper_figures/README.md).

It never calls the bound code (theory.bounds); tests and figures compare the two.

The problem (lgc.data.synthetic.QuadraticProblem, contract 4 of the project):
  f_i(w) = 1/2 (w - c_i)^T H (w - c_i),  H = diag(h),  per-sample gradient H (w - c_i) + xi,
  xi ~ N(0, (sigma^2/d) I_d);  grad F(w) = H (w - cbar), cbar = sum_i pi_i c_i;  L = max h;
  zeta^2 = (1/N) sum_i ||H (c_i - cbar)||^2;  Delta = F(w_0) - F(cbar).

Each worker's mini-batch of B samples is M blocks of b = B/M samples. The per-sample noises
are the trainers' own (QuadraticProblem.noise(seed, round, worker, B), a pure function), so
g_i = H (w - c_i) + mean of its B noises and a straggler's partial gradient over its first
m_j blocks is gp_j = H (w - c_j) + mean of its first m_j b noises, as contract 3 defines them;
a seed here is the trainer's seed, and `lgc.sim` on the same configuration follows the same
trajectory (tests/test_validation.py checks it). Schedules come from
theory.schedule (A_t, m_j, R_t) and the timing model's seeded draws; weights and directions
from lgc.rules (group_weights, aggregate, server_step): the same code every trainer runs.
Seeds are a batch dimension.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from lgc.data.synthetic import QuadraticProblem
from lgc.errors import check
from lgc.rules import RuleState, ServerState, aggregate, group_weights, server_step
from lgc.threads import torch_threads
from theory.algorithms import BOUND_NAMES
from theory.schedule import DEFAULT_SEMANTICS, schedule_round

VALIDATED = BOUND_NAMES  # the measurement is compared with the bound


@dataclass(frozen=True)
class Schedules:
    """Per seed and round: A_t mask, m_j, R_t, and the rules' weights (arrays (S, T, ...))."""

    fast: np.ndarray  # (S, T, N) bool
    blocks_done: np.ndarray  # (S, T, N) int: M for A_t, m_j for stragglers
    wall: np.ndarray  # (S, T) R_t
    w_fast: np.ndarray  # (S, T, N)
    w_strag: np.ndarray  # (S, T, N)
    rho: np.ndarray  # (S, T)

    def head(self, rounds: int) -> "Schedules":
        """The first `rounds` rounds."""
        return Schedules(*(a[:, :rounds] for a in (self.fast, self.blocks_done, self.wall, self.w_fast,
                                                    self.w_strag, self.rho)))


def make_schedules(timing, seeds: Sequence[int], rounds: int, n_workers: int, blocks: int, k: int,
                   *, period: int = 1, semantics: str = DEFAULT_SEMANTICS, pi=None,
                   wait_reports: bool = False) -> Schedules:
    """Schedules of `rounds` rounds for each seed (theory.schedule on the timing model's draws),
    the start offsets chained from round to round as `lgc.sim` does (eq. 2.3').

    pi: the worker weights of the rules (uniform by default, as QuadraticProblem's);
    wait_reports: lgc-fresh's round time (it waits for the reported blocks)."""
    pi = np.full(n_workers, 1.0 / n_workers) if pi is None else np.asarray(pi)
    S = len(seeds)
    out = {k_: np.zeros((S, rounds, n_workers)) for k_ in ("fast", "blocks_done", "w_fast", "w_strag")}
    wall, rho = np.zeros((S, rounds)), np.zeros((S, rounds))
    for s, seed in enumerate(seeds):
        cache: dict[int, np.ndarray] = {}
        start = None
        for t in range(rounds):
            p = t // period  # draws held for h rounds (the carry-over still changes the schedule)
            if p not in cache:
                cache = {p: timing.block_finish_times(seed, t, n_workers, blocks, period=period)}
            sch = schedule_round(cache[p], k, semantics=semantics, round_index=t, start=start,
                                 wait_reports=wait_reports)
            start = sch.next_start()
            wts = group_weights(sch.fast_mask(), sch.blocks_done, pi)
            out["fast"][s, t] = sch.fast_mask()
            out["blocks_done"][s, t] = sch.blocks_done
            out["w_fast"][s, t], out["w_strag"][s, t] = wts.w_fast, wts.w_strag
            wall[s, t], rho[s, t] = sch.wall, wts.rho
    return Schedules(fast=out["fast"].astype(bool), blocks_done=out["blocks_done"].astype(int), wall=wall,
                     w_fast=out["w_fast"], w_strag=out["w_strag"], rho=rho)


@dataclass(frozen=True)
class Measurement:
    """||grad F(w_t)||^2 for t = 0..T-1 and the round times, per seed."""

    algorithm: str
    k: int
    grad_sq: np.ndarray  # (S, T)
    wall: np.ndarray  # (S, T)

    @property
    def per_seed(self) -> np.ndarray:
        """(1/T) sum_t ||grad F(w_t)||^2, one value per seed."""
        return self.grad_sq.mean(axis=1)

    @property
    def mean(self) -> float:
        return float(self.per_seed.mean())

    @property
    def sem(self) -> float:
        """Seed-to-seed standard error of `mean`."""
        v = self.per_seed
        return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def block_noise(quad: QuadraticProblem, seeds: Sequence[int], rounds: int, *, batch: int, blocks: int) -> np.ndarray:
    """(S, T, N, M, d) float64: the mean per-sample noise of every block, from quad.noise.

    Depends only on (seed, round, worker), so one array serves every algorithm and K."""
    check(batch % blocks == 0, f"B={batch} must be divisible by M={blocks}")
    S, N, d = len(seeds), quad.n_workers, quad.dim
    out = np.empty((S, rounds, N, blocks, d))
    for s, seed in enumerate(seeds):
        for t in range(rounds):
            for i in range(N):
                xi = quad.noise(int(seed), t, i, batch).astype(np.float64)
                out[s, t, i] = xi.reshape(blocks, batch // blocks, d).mean(axis=1)
    return out


def measure(quad: QuadraticProblem, algorithm: str, schedules: Schedules, *, batch: int, blocks: int, lr: float,
            seeds: Sequence[int], warmup: int = 0, momentum: float = 0.0,
            noise: np.ndarray | None = None) -> Measurement:
    """Run `algorithm` on `quad` for every seed under the given schedules; plain SGD by default.

    noise: block_noise(quad, seeds, T, ...) (or longer), computed here when not given.
    """
    check(algorithm in VALIDATED, f"algorithm={algorithm!r} must be one of {', '.join(VALIDATED)}")
    check(batch % blocks == 0, f"B={batch} must be divisible by M={blocks}")
    S, T, N = schedules.fast.shape
    check(S == len(seeds) and N == quad.n_workers, "schedules do not match the seeds or N")
    if noise is None:
        noise = block_noise(quad, seeds, T, batch=batch, blocks=blocks)
    check(noise.shape[0] == S and noise.shape[1] >= T and noise.shape[2:] == (N, blocks, quad.dim),
          f"noise of shape {noise.shape} does not cover (S={S}, T={T}, N={N}, M={blocks}, d={quad.dim})")
    with torch_threads(1):  # (S, d) tensors: tiny ops, one thread is fastest
        return _run(quad, algorithm, schedules, noise, lr=lr, warmup=warmup, momentum=momentum)


def _run(quad, algorithm, schedules, noise, *, lr, warmup, momentum) -> Measurement:
    S, T, N = schedules.fast.shape
    blocks, d = noise.shape[3], quad.dim
    dt = torch.float64
    h, c = torch.tensor(quad.h, dtype=dt), torch.tensor(quad.c, dtype=dt)
    cbar, pi = torch.tensor(quad.cbar, dtype=dt), torch.tensor(quad.pi, dtype=dt)
    w = torch.tensor(quad.w0, dtype=dt).repeat(S, 1)  # (S, d)
    m_idx = torch.tensor(schedules.blocks_done, dtype=torch.long)  # (S, T, N)
    steps = torch.arange(1, blocks + 1, dtype=dt)[None, None, :, None]
    grad_sq = np.zeros((S, T))
    rule, server = RuleState(), ServerState()
    for t in range(T):
        grad_sq[:, t] = ((h * (w - cbar)) ** 2).sum(1).numpy()
        exact = h * (w[:, None, :] - c)  # (S, N, d): grad f_i(w_t)
        z = torch.from_numpy(noise[:, t])  # (S, N, M, d) block means
        running = z.cumsum(2) / steps  # mean noise over the first m blocks, m = 1..M
        g = exact + running[:, :, -1]  # worker means over B samples
        m = m_idx[:, t].clamp(min=1)  # (S, N); w_strag is 0 where m_j = 0
        gp = exact + torch.gather(running, 2, (m - 1)[:, :, None, None].expand(S, N, 1, d))[:, :, 0]
        grads = {
            "all": torch.einsum("n,snd->sd", pi, g),
            "fast": torch.einsum("sn,snd->sd", torch.tensor(schedules.w_fast[:, t], dtype=dt), g),
            "strag": torch.einsum("sn,snd->sd", torch.tensor(schedules.w_strag[:, t], dtype=dt), gp),
        }
        direction, rule = aggregate(algorithm, grads, torch.from_numpy(schedules.rho[:, t]), rule, warmup=t < warmup)
        w, server = server_step(w, direction, server, lr=lr, momentum=momentum)
        check(bool(torch.isfinite(w).all()), f"{algorithm} diverged at round {t} (lr={lr} too large?)")
    return Measurement(algorithm=algorithm, k=int(schedules.fast[0, 0].sum()), grad_sq=grad_sq,
                       wall=schedules.wall)
