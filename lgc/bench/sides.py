"""What `make bench` times (lgc/bench/sim_round.py measures it): its fixed configuration, the rounds drawn from
it, and the three sides run on the same rounds: the sim round, a plain training step on the same number of
samples, and the explicit per-worker loop of the authors' lab code.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

N_WORKERS, THRESHOLD_K, BATCH, BLOCKS = 10, 7, 50, 5
ALGORITHM = "lgc"


def bench_config(args, data_dir: str, engine: str, mode: str, rounds: int):
    from lgc.config import TrainConfig

    return TrainConfig(
        algorithm=ALGORITHM, n_workers=N_WORKERS, threshold_k=THRESHOLD_K, batch_size=BATCH, blocks=BLOCKS,
        rounds=rounds, warmup_rounds=0, lr=0.05, momentum=0.9, dataset="cifar10", data_dir=data_dir,
        accept_md5_mismatch=True, model=args.model, width=args.width, partition="iid",
        samples_per_worker=args.samples_per_worker, timing="shifted-exp", straggling_period=1, seed=args.seed,
        eval_every=0, checkpoint_every=0, device=args.device, engine=engine, compile=mode)


def draw_rounds(cfg, steps: int) -> list:
    """`steps` rounds drawn from the timing model (rounds 0..steps-1)."""
    from lgc.protocol import make_timing
    from theory.schedule import schedule_round

    timing = make_timing(cfg)
    return [schedule_round(timing.block_finish_times(cfg.seed, t, cfg.n_workers, cfg.blocks, period=1),
                           cfg.threshold_k, semantics=cfg.semantics, round_index=t) for t in range(steps)]


def cycled(rounds: list, times: int) -> list:
    """The same rounds `times` times over, renumbered (every pass sees the same round sizes)."""
    n = len(rounds)
    return [dataclasses.replace(rounds[t % n], round=t) for t in range(times * n)]


def plans(cfg, rounds: list) -> list:
    """Each round's per-worker sample counts and group weights (lgc.protocol.round_plan)."""
    from lgc.protocol import round_plan

    pi = np.full(cfg.n_workers, 1.0 / cfg.n_workers)
    return [round_plan(cfg.algorithm, s.fast_mask(), s.blocks_done, pi, cfg.batch_size, cfg.block_size, warmup=False)
            for s in rounds]


class SimSide:
    """Simulator.step() over a replayed schedule (the sim backend as `lgc train` runs it)."""

    def __init__(self, args, data_dir: str, engine: str, mode: str, rounds: list, passes: int):
        from lgc.sim import Simulator

        cfg = bench_config(args, data_dir, engine, mode, passes * len(rounds) + 1)
        self.sim = Simulator(cfg, schedule=cycled(rounds, passes) + [dataclasses.replace(rounds[0],
                                                                                         round=passes * len(rounds))])
        self.device = self.sim.device

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.sim.step()

    def extra(self) -> dict:
        return {"fused_rounds": getattr(self.sim.engine, "fused_rounds", None)}


class _ModelSide:
    """A fresh model of the bench's kind with random CIFAR-shaped inputs on the device."""

    def __init__(self, args, mode: str, device: torch.device):
        from lgc.sim.fused import _maybe_compile
        from lgc.models import make_model

        torch.manual_seed(args.seed)
        self.device, self.mode = device, mode
        self.cl = args.model in ("resnet18", "cnn")  # as lgc.task does on every device
        self.model = make_model(args.model, 10, (3, 32, 32), width=args.width).to(
            device, memory_format=torch.channels_last if self.cl else torch.preserve_format)
        self.model.train()
        self.fwd = _maybe_compile(self.model, mode)
        g = torch.Generator(device="cpu").manual_seed(args.seed)
        x = torch.randn(N_WORKERS * BATCH, 3, 32, 32, generator=g).to(device)
        self.x = x.contiguous(memory_format=torch.channels_last) if self.cl else x
        self.y = torch.randint(0, 10, (N_WORKERS * BATCH,), generator=g).to(device)

    def loss(self, x, y):
        from lgc.sim.fused import mark_step

        mark_step(self.mode)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            out = self.fwd(x)
        return torch.nn.functional.cross_entropy(out.float(), y)


class PlainSide(_ModelSide):
    """forward + backward + SGD (momentum 0.9) on one batch of each round's sample count."""

    def __init__(self, args, mode, device, plans_: list):
        super().__init__(args, mode, device)
        self.sizes = [int(p.counts.sum()) for p in plans_]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        self.t = 0

    def run(self, steps: int) -> None:
        for _ in range(steps):
            n = self.sizes[self.t % len(self.sizes)]
            self.t += 1
            loss = self.loss(self.x[:n], self.y[:n])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()


class LoopSide(_ModelSide):
    """The lab code's structure: for each worker with work, one forward and one backward of its
    mean loss over its own samples; the groups' means gA_t, gS_t as pi-weighted sums of the
    workers' gradients (DERIVATION.md (3.2)-(3.3)); then the same rule and server step as sim."""

    def __init__(self, args, mode, device, plans_: list):
        super().__init__(args, mode, device)
        self.plans = plans_
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        with torch.no_grad():
            self.w = torch.cat([p.detach().reshape(-1) for p in self.params]).float().clone()
        from lgc.rules import RuleState, ServerState

        self.rule, self.server = RuleState(), ServerState()
        self.t = 0

    def run(self, steps: int) -> None:
        from lgc.rules import aggregate, server_step

        for _ in range(steps):
            plan = self.plans[self.t % len(self.plans)]
            self.t += 1
            grads = {g: torch.zeros_like(self.w) for g in plan.per_sample}
            for i, n in enumerate(int(c) for c in plan.counts):
                if n == 0:
                    continue
                rows = slice(i * BATCH, i * BATCH + n)
                gs = torch.autograd.grad(self.loss(self.x[rows], self.y[rows]), self.params)
                flat = torch.cat([t.reshape(-1) for t in gs]).float()
                for g, per in plan.per_sample.items():  # per-sample weight x n = the worker's group weight
                    if per[i] != 0:
                        grads[g].add_(flat, alpha=float(per[i] * n))
            d, self.rule = aggregate(ALGORITHM, grads, plan.rho, self.rule)
            self.w, self.server = server_step(self.w, d, self.server, lr=0.05, momentum=0.9)
            with torch.no_grad():
                off = 0
                for p in self.params:
                    p.copy_(self.w[off:off + p.numel()].view_as(p))
                    off += p.numel()
