"""The problem the constants are estimated on (lgc/estimate.py, lgc/spectrum.py): each worker's samples and a
per-sample loss of flat parameters, built from a torch model or from the quadratics of lgc.data.synthetic, and what
the estimators evaluate on it: f_i, F = sum_i pi_i f_i, grad f_i for every worker, per-sample gradients and their
(bootstrap-weighted) moments. Pure computation: no files, no printing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from lgc.errors import check

PerSampleLoss = Callable[[Tensor, Tensor, Tensor], Tensor]  # (w (P,), x (n, ...), y (n,)) -> (n,)


@dataclass
class EmpiricalProblem:
    """Per-worker data and a per-sample loss of flat parameters: all that estimation needs.

    f_i(w) = mean over worker i's samples of per_sample_loss(w, x, y); F = sum_i pi_i f_i.
    """

    per_sample_loss: PerSampleLoss
    workers: Sequence[tuple[Tensor, Tensor]]
    w0: Tensor
    pi: Optional[np.ndarray] = None
    name: str = "problem"

    def __post_init__(self):
        n = len(self.workers)
        check(n >= 1, "a problem needs at least one worker")
        for i, (x, y) in enumerate(self.workers):
            check(len(x) >= 2 and len(x) == len(y), f"worker {i} has {len(x)} samples and {len(y)} labels; need >= 2 each")
        self.pi = np.full(n, 1.0 / n) if self.pi is None else np.asarray(self.pi, dtype=float)
        check(self.pi.shape == (n,) and np.all(self.pi >= 0) and abs(self.pi.sum() - 1) < 1e-9,
              f"pi must be N={n} non-negative weights summing to 1, got {self.pi}")
        self.w0 = self.w0.detach().clone()


def problem_from_model(model: torch.nn.Module, workers, *, pi=None, name: str = "model",
                       loss: Optional[Callable[[Tensor, Tensor], Tensor]] = None) -> EmpiricalProblem:
    """Cross-entropy of `model` on each worker's (x, y), or loss(outputs, y) (one value per
    sample); a model with `returns_loss = True` (the quadratics' QuadraticModel) gives its
    per-sample losses itself and y is ignored."""
    from torch.func import functional_call

    model = model.eval()  # no dropout; GroupNorm/LayerNorm only (batch statistics break per-sample grads)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    w0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def per_sample_loss(w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(w, sizes), shapes)}
        out = functional_call(model, (params, buffers), (x,))
        if getattr(model, "returns_loss", False):
            return out
        if loss is not None:
            return loss(out, y)
        return torch.nn.functional.cross_entropy(out, y, reduction="none")

    # images channels_last: on a CPU the small CNN's gradients were 1.8x faster (lgc/task.py)
    workers = [(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x, y) for x, y in workers]
    x, y = workers[0]
    try:  # per-sample gradients evaluate the model on one sample at a time
        with torch.no_grad():
            per_sample_loss(w0, x[:1], y[:1])
    except (ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        check(False, f"model {name} cannot evaluate a single sample of shape {tuple(x.shape[1:])} ({msg})")
    return EmpiricalProblem(per_sample_loss, workers, w0, pi=pi, name=name)


def task_problem(run, *, max_samples: Optional[int] = None, name: str,
                 loss: Optional[Callable[[Tensor, Tensor], Tensor]] = None) -> EmpiricalProblem:
    """The problem of a run's task (lgc.task.ClassificationTask, built by make_task): its model at
    its current weights, each worker's part (its first `max_samples` samples) normalised as the
    trainer feeds it, and pi; `loss` as in problem_from_model."""
    workers = []
    for part in run.parts:
        idx = torch.from_numpy(part[:max_samples] if max_samples else part)
        workers.append((run.ds.normalize(run.ds.x_train[idx]), run.ds.y_train[idx]))
    return problem_from_model(run.model, workers, pi=run.pi, name=name, loss=loss)


def quadratic_problem(quad, *, samples_per_worker: int, seed: int = 0) -> EmpiricalProblem:
    """The quadratics of lgc.data.synthetic with a finite sample: worker i's samples are
    noise vectors xi (quad.noise), so the estimates can be checked against quad.constants()."""
    from lgc.data.synthetic import QuadraticModel

    workers = []
    for i in range(quad.n_workers):
        x = quad.inputs(i, quad.noise(seed, 0, i, samples_per_worker))
        workers.append((x, torch.zeros(len(x), dtype=torch.long)))
    return problem_from_model(QuadraticModel(quad), workers, pi=quad.pi, name="quadratic")


# ----------------------------------------------------------------------------- losses and gradients
def _chunks(n: int, size: int):
    for s in range(0, n, size):
        yield slice(s, min(s + size, n))


def worker_loss(problem: EmpiricalProblem, w: Tensor, i: int, weights: Optional[Tensor] = None, chunk: int = 256) -> Tensor:
    """f_i(w): mean per-sample loss of worker i (weights: bootstrap counts, mean 1), in chunks
    of `chunk` samples (256: a CNN's activations stay in cache; Hessian-vector products on the
    small CNN 1.5x faster than in chunks of 4096)."""
    x, y = problem.workers[i]
    total = 0.0
    for sl in _chunks(len(x), chunk):
        losses = problem.per_sample_loss(w, x[sl], y[sl])
        total = total + (losses.sum() if weights is None else (weights[sl] * losses).sum())
    return total / len(x)


def full_loss(problem: EmpiricalProblem, w: Tensor) -> Tensor:
    """F(w) = sum_i pi_i f_i(w)."""
    return sum(float(p) * worker_loss(problem, w, i) for i, p in enumerate(problem.pi))


def worker_gradients(problem: EmpiricalProblem, w: Tensor) -> Tensor:
    """(N, P): grad f_i(w) for every worker."""
    out = []
    for i in range(len(problem.workers)):
        wg = w.detach().requires_grad_(True)
        out.append(torch.autograd.grad(worker_loss(problem, wg, i), wg)[0])
    return torch.stack(out)


def deviations(problem: EmpiricalProblem, grads: Tensor) -> Tensor:
    """(N, P): a_i = grad f_i - grad F with grad F = sum_i pi_i grad f_i (A4, theory/DERIVATION.md 4.1),
    from the rows grads[i] = grad f_i (or differences of them), in their dtype."""
    pi = torch.as_tensor(np.asarray(problem.pi, dtype=float), dtype=grads.dtype)
    return grads - (pi[:, None] * grads).sum(0)


def per_sample_gradients(problem: EmpiricalProblem, w: Tensor, i: int, sl: slice) -> Tensor:
    """(n, P): the gradient of each of worker i's samples in `sl` (torch.func.vmap of grad)."""
    from torch.func import grad, vmap

    x, y = problem.workers[i]

    def one(wv, xs, ys):
        return problem.per_sample_loss(wv, xs.unsqueeze(0), ys.unsqueeze(0))[0]

    return vmap(grad(one), in_dims=(None, 0, 0))(w.detach(), x[sl], y[sl])


def gradient_moments(problem: EmpiricalProblem, w: Tensor, i: int, counts: Tensor, chunk: int = 1024):
    """Per-sample gradient moments of worker i, for the sample and bootstrap replicates.

    counts: (R, n) resampling counts (row 0 may be all ones = the sample itself).
    Returns (means (R, P), second (R,)): weighted mean gradient and weighted mean of ||g_s||^2.
    """
    x, _ = problem.workers[i]
    n = len(x)
    means = torch.zeros(counts.shape[0], w.numel(), dtype=w.dtype)
    second = torch.zeros(counts.shape[0], dtype=w.dtype)
    for sl in _chunks(n, chunk):
        g = per_sample_gradients(problem, w, i, sl)  # (c, P)
        c = counts[:, sl].to(w.dtype)
        means += c @ g
        second += c @ (g * g).sum(1)
    return means / n, second / n
