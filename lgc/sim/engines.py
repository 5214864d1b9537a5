"""Gradient engines of the `sim` backend: a round's gradient means from batched passes.

A round's work is a `RoundBatch`: the samples of every worker that the rule needs (in worker
order, each worker's first n_i samples of its mini-batch) and, per group ("all", "fast",
"strag", "any"), one weight per sample. The weighted-loss trick gives each group's mean
exactly: with weight w_i / n_i on each of worker i's n_i samples,

    grad sum_s weight_s * loss_s = sum_i w_i * (mean gradient over worker i's n_i samples),

e.g. gA_t (weights w_fast[i] / B) and gS_t (weights w_strag[j] / (m_j b));
theory/DERIVATION.md (3.1)-(3.5). This holds because every model treats samples independently
(GroupNorm, or BatchNorm per block of b samples).

`GradientEngine` is the interface: a fused engine (one forward and one input-gradient backward
over the union, only the weight-gradient contraction split by group) can replace
`BatchedEngine` without touching the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np
import torch
from torch import nn

from lgc.task import per_sample_loss
from theory.algorithms import GROUPS  # noqa: F401  (re-exported: the engines' group order)

if TYPE_CHECKING:  # annotation only; lgc.protocol builds the plans
    from lgc.protocol import RoundPlan


@dataclass
class RoundBatch:
    """x: (n, ...) inputs, y: (n,) targets, weights: {group: (n,) float32 per-sample weights}."""

    x: torch.Tensor
    y: torch.Tensor
    weights: dict


class GradientEngine(Protocol):
    def grads(self, model: nn.Module, batch: RoundBatch) -> tuple[dict, float]:
        """({group: flat float32 gradient of sum_s weight_s * loss_s}, mean per-sample loss)."""


class BatchedEngine:
    """One forward over the union of the groups' samples, one backward per group
    (torch.autograd.grad with retain_graph). bf16 autocast on CUDA when `amp` is set."""

    def __init__(self, *, amp: bool = False, loss_fn: Callable = per_sample_loss):
        self.amp = amp
        self.loss_fn = loss_fn

    def grads(self, model: nn.Module, batch: RoundBatch) -> tuple[dict, float]:
        params = [p for p in model.parameters() if p.requires_grad]
        names = [g for g in GROUPS if g in batch.weights]
        if batch.x.shape[0] == 0 or not names:
            zero = torch.zeros(sum(p.numel() for p in params), device=params[0].device)
            return {g: zero for g in names}, float("nan")
        with torch.autocast(batch.x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = model(batch.x)
        losses = self.loss_fn(model, out, batch.y)
        res = {}
        for k, g in enumerate(names):
            gs = torch.autograd.grad((losses * batch.weights[g]).sum(), params, retain_graph=k < len(names) - 1)
            res[g] = torch.cat([t.reshape(-1) for t in gs])
        return res, float(losses.detach().mean())


def sample_weights(plan: RoundPlan, device) -> dict:
    """Expand per-worker weights to one float32 weight per sample of the union (worker order)."""
    return {g: torch.as_tensor(np.repeat(per, plan.counts), dtype=torch.float32, device=device)
            for g, per in plan.per_sample.items()}
