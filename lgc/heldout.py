"""The held-out excess of a model: how far the held-out loss sits above the training objective as training
fits the training data (issue 21; DERIVATION.md eq. 8.14). `lgc estimate --heldout-steps S` records it.

    curve = heldout_curve(problem, x_test, y_test, lr=0.05, steps=200, batch=32, points=9)
    curve.steps, curve.train, curve.heldout, curve.excess     # excess = heldout - train, at each checkpoint

A pilot run: plain SGD (no momentum), every worker every step, each step the pi-weighted mean over the workers of
min(batch, n_i) samples drawn without replacement (a full-sync round of the trainer, eq. 3.1), from the problem's
w_0 at step size lr, for `steps` steps. At `points` evenly spaced steps (0 and the last included) it records the
steps, the epochs processed (samples so far / n, n every worker's samples together), the training objective
F(w) = sum_i pi_i f_i(w) on every worker's whole data (not a mini-batch loss) and the held-out loss (the mean
per-sample loss on the held-out inputs given). Its length is in steps, not epochs: the error model reads it at
equal predicted progress (eq. 8.14), and a full-sync step makes at least the progress of a round of any K at the
same step size, so a pilot of as many steps as the budget's most rounds covers every K. Pure computation: no
files, no printing.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from lgc.empirical import EmpiricalProblem, full_loss
from lgc.errors import check

CHUNK = 250  # held-out samples per forward (the trainer's CPU evaluation chunk, lgc/task.py)


class HeldoutCurve(NamedTuple):
    """The pilot's checkpoints: epochs processed, F(w), the held-out loss and their difference (heldout - train)."""

    epochs: tuple
    train: tuple
    heldout: tuple
    excess: tuple
    steps: tuple
    lr: float
    batch: int
    distance: tuple = ()  # ||w_p - w_0|| at each checkpoint


def heldout_loss(problem: EmpiricalProblem, w: Tensor, x: Tensor, y: Tensor, chunk: int = CHUNK) -> float:
    """The mean per-sample loss of the problem's model at w on held-out (x, y)."""
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            total += float(problem.per_sample_loss(w, x[s:s + chunk], y[s:s + chunk]).sum())
    return total / len(x)


def heldout_curve(problem: EmpiricalProblem, x: Tensor, y: Tensor, *, lr: float, steps: int, batch: int,
                  points: int = 9, seed: int = 0) -> HeldoutCurve:
    """The pilot run of the module docstring; x, y: the held-out inputs (as the model takes them) and labels."""
    check(math.isfinite(lr) and lr > 0, f"--heldout-lr {lr} must be a finite number > 0")
    check(steps >= 1, f"--heldout-steps {steps} must be >= 1")
    check(batch >= 1, f"batch={batch} must be >= 1")
    check(points >= 2, f"--heldout-points {points} must be >= 2")
    check(len(x) >= 1 and len(x) == len(y), f"the held-out data has {len(x)} inputs and {len(y)} labels; need >= 1 each")
    sizes = [len(xi) for xi, _ in problem.workers]
    n = sum(sizes)
    per_step = [min(batch, s) for s in sizes]
    marks = sorted(set(np.linspace(0, steps, points).round().astype(int).tolist()))
    rng = np.random.default_rng(seed)
    weights = torch.cat([torch.full((b,), float(p) / b, dtype=problem.w0.dtype) for p, b in zip(problem.pi, per_step)])
    w = problem.w0.detach().clone()
    out = {k: [] for k in ("epochs", "train", "heldout", "steps", "distance")}
    for t in range(steps + 1):
        if t == marks[len(out["steps"])]:
            with torch.no_grad():
                out["train"].append(float(full_loss(problem, w)))
            out["heldout"].append(heldout_loss(problem, w, x, y))
            out["epochs"].append(t * sum(per_step) / n)
            out["steps"].append(t)
            out["distance"].append(float(torch.linalg.vector_norm(w - problem.w0)))
        if t == steps:
            break
        idx = [rng.choice(s, size=b, replace=False) for s, b in zip(sizes, per_step)]
        xb = torch.cat([xi[torch.as_tensor(j)] for (xi, _), j in zip(problem.workers, idx)])
        yb = torch.cat([yi[torch.as_tensor(j)] for (_, yi), j in zip(problem.workers, idx)])
        wg = w.requires_grad_(True)
        g = torch.autograd.grad((weights * problem.per_sample_loss(wg, xb, yb)).sum(), wg)[0]
        w = (w.detach() - lr * g).detach()
    ex = tuple(h - f for h, f in zip(out["heldout"], out["train"]))
    return HeldoutCurve(tuple(out["epochs"]), tuple(out["train"]), tuple(out["heldout"]), ex, tuple(out["steps"]),
                        float(lr), int(batch), tuple(out["distance"]))


HELDOUT_DATA = "the task's test set: the samples the trainer's test_loss is computed on"


def heldout_record(problem: EmpiricalProblem, x: Tensor, y: Tensor, *, L: float, steps: int,
                   lr: float | None = None, batch: int = 32, points: int = 9, seed: int = 0) -> dict:
    """The constants JSON's "heldout" record (theory/heldout.py, DERIVATION.md eq. 8.14): heldout_curve at step
    size lr (default 0.5 / L, the step `lgc optimize-k` takes by default), with what it measured and on which data."""
    from theory.tradeoff import DEFAULT_ETA_L

    lr = DEFAULT_ETA_L / L if lr is None else lr
    if x.dim() == 4:  # images channels_last, as problem_from_model stores the workers' (faster on a CPU)
        x = x.contiguous(memory_format=torch.channels_last)
    c = heldout_curve(problem, x, y, lr=lr, steps=steps, batch=batch, points=points, seed=seed)
    return {"epochs": list(c.epochs), "train": list(c.train), "heldout": list(c.heldout), "excess": list(c.excess),
            "steps": list(c.steps), "lr": c.lr, "batch_per_worker": c.batch, "held_out_samples": int(len(x)),
            "data": HELDOUT_DATA,
            "method": f"pilot: plain full-sync SGD from w_0 at lr {c.lr:.4g} ({'0.5 / L' if lr == DEFAULT_ETA_L / L else 'given'}), "
                      f"min({batch}, n_i) samples per worker a step, {steps} steps ({c.epochs[-1]:.3g} epochs); at {len(c.steps)} checkpoints "
                      f"F(w) on every worker's data and the mean loss on the held-out data (lgc/heldout.py)"}
