"""What one `dist` worker computes: the gradient of one block of its mini-batch.

The samples are the ones `sim` uses (lgc.task.round_inputs: lgc.sampling's pure
per-(seed, round, worker) mini-batches, crops and flips); block m of worker i is the slice
[m*b, (m+1)*b) of its mini-batch. Parameters travel as one flat float32 vector (lgc.rules works on flat tensors);
torch.func.functional_call evaluates the model at that vector without copying it into the
module, and the gradient comes back flat.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from lgc.task import per_sample_loss


class FlatModel:
    """A module evaluated at flat parameters: loss sums and their flat gradient."""

    def __init__(self, model: nn.Module, loss_fn=per_sample_loss):
        self.model = model
        self.loss_fn = loss_fn  # (model, outputs, targets) -> per-sample losses, the task's
        self.names = [n for n, _ in model.named_parameters()]
        self.shapes = [p.shape for _, p in model.named_parameters()]
        self.sizes = [p.numel() for _, p in model.named_parameters()]

    def initial_params(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).to(torch.float32)

    def unflatten(self, w: torch.Tensor) -> dict:
        out, o = {}, 0
        for n, shape, k in zip(self.names, self.shapes, self.sizes):
            out[n] = w[o:o + k].view(shape)
            o += k
        return out

    def loss_sum_grad(self, w: torch.Tensor, x: torch.Tensor, y: Optional[torch.Tensor]):
        """(d/dw sum of per-sample losses, the sum) at flat parameters w."""
        leaf = w.detach().requires_grad_(True)
        out = functional_call(self.model, self.unflatten(leaf), (x,))
        loss = self.loss_fn(self.model, out, y).sum()  # the loss `sim` uses
        (g,) = torch.autograd.grad(loss, leaf)
        return g, float(loss.detach())


class TaskBlocks:
    """Worker blocks of the run's task (lgc.task): same data, partition, pi,
    model initialisation, augmentation and normalisation as `sim`, one worker at a time.
    `task`: a Task factory "MODULE:FUNCTION" (lgc.api.load_task), rebuilt in this process;
    None: the config's own task."""

    def __init__(self, config: dict, device: str = "cpu", task: Optional[str] = None):
        from lgc.api import load_task
        from lgc.config import TrainConfig
        from lgc.task import make_task

        self.cfg = TrainConfig(**config).resolved()
        self.device = torch.device(device)
        self.task = make_task(self.cfg, self.device, task=load_task(task) if task else None)
        self.flat = FlatModel(self.task.model, self.task.loss_fn)
        self.B, self.b = self.cfg.batch_size, self.cfg.block_size
        self.pi = np.asarray(self.task.pi, dtype=np.float64)
        self._cache: tuple = (None, None)

    def initial_params(self) -> torch.Tensor:
        return self.flat.initial_params()

    def block_gradient(self, w: torch.Tensor, t: int, worker: int, block: int):
        if self._cache[0] != (t, worker):
            counts = np.zeros(self.cfg.n_workers, dtype=np.int64)
            counts[worker] = self.B  # this worker's whole mini-batch, prepared as `sim` prepares it
            self._cache = ((t, worker), self.task.round_inputs(t, counts))
        x, y = self._cache[1]
        sl = slice(block * self.b, (block + 1) * self.b)
        return self.flat.loss_sum_grad(w, x[sl], y[sl])

    def evaluate(self, w: torch.Tensor) -> dict:
        """Test metrics at w (classification; {} for the quadratic)."""
        from torch.nn.utils import vector_to_parameters

        with torch.no_grad():
            vector_to_parameters(w.detach().to(torch.float32), list(self.task.model.parameters()))
        return self.task.evaluate()

    def iterate_metrics(self, w: torch.Tensor) -> dict:
        """Cheap metrics at w_t (the quadratic's ||grad F||^2, distance and gap; {} otherwise)."""
        return self.task.iterate_metrics(w)
