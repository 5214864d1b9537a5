"""Your own model and data in the `sim` backend, through public names only.

    PYTHONPATH=. python examples/own_task.py      # trains, prints the final metrics and the run directory

Four workers hold non-IID data (each one's inputs are shifted, so its labels are skewed); the
server waits for the K = 3 fastest and LGC compensates with the straggler's partial work.
`make_task` is also the factory the dist backend rebuilds in every process
(examples/own_task_torchrun.sh; docs/DIST.md).
"""
import torch
from torch import nn

import lgc


def make_task(n_workers: int = 4) -> lgc.Task:
    g = torch.Generator().manual_seed(0)
    w_true = torch.randn(6, 3, generator=g)  # the labelling rule every worker shares

    def data(n: int, shift: float):
        x = torch.randn(n, 6, generator=g) + shift
        return x, (x @ w_true).argmax(1)

    return lgc.Task(
        model=lambda: nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)),
        workers=[data(64, 0.5 * i) for i in range(n_workers)],  # any torch Dataset works too
        test=data(200, 0.0),
        name="own-mlp",
    )


def two_workers() -> lgc.Task:
    """The same task on two workers (the torchrun example starts two processes)."""
    return make_task(2)


if __name__ == "__main__":
    run = lgc.simulate(make_task(), {"rounds": 30, "threshold_k": 3, "batch_size": 8, "blocks": 4, "lr": 0.1,
                                     "eval_every": 10})
    print(f"rounds={len(run.rows)} time={run.final['time']:.4g} test_acc={run.final['test_acc']:.3f} "
          f"loss={run.final['loss']:.4f}")
    print(f"test_acc by round: {[a for a in run.column('test_acc') if a is not None]}")
    print(run.path)
