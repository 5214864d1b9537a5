"""The model cells of the K* check (issue 21, part 3), with the validation half fixed before the
predictive error model was written.

Each cell is a problem (data, partition, model), a timing law, a rule and a budget tau. The check
(paper_figures/kstar_models.py) runs, per cell: `lgc estimate` -> `lgc optimize-k --json` at the
budget -> the measured sweep of every K in `ks` (`lgc sweep-k --no-halving`, >= 3 seeds, plain SGD:
momentum 0, no warm-up, at optimize-k's step size) and grades the recommended K* against it.

**The validation half** (`half == "validation"`: cells v1..v7) was chosen by hand when this file was
written, before any predictive model existed in the code base, to cover every model, partition,
timing and rule, and to hold the cases where the bound's K* is known to miss (lgc with stragglers
that change, h = 1 and h = 10, and lgc with heterogeneous speeds). Nothing may be tuned on it: the
predictive model's forms and constants are developed on the development half (d1..d7) only, and
the targets (K* within 3% of the best K's loss, or within 2 standard errors of it, in >= 90% of
cells) are judged on the validation half. Editing a cell changes the check; the git history of this
file shows when each cell was fixed.

**The second validation half** (`half == "validation-2"`: cells v8..v11) was fixed later (2026-12-05),
after v1..v7 had been graded and before the error model's held-out-loss term was written: v7's miss
(test loss rising with the rounds on a 1,200-sample CIFAR-10 subset while the training loss falls for
every K) motivated that term, so v1..v7 no longer grade it alone. The same rule holds: nothing is tuned
on v8..v11; it is reported as its own half, beside the first.

Sizes fit a 2-core CPU (the whole measured sweep, 3 seeds, is about 10-15 CPU minutes): N = 6-10,
B = 20 (10 for CIFAR-10), M = 5, tens to ~150 rounds per run at the budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PERSISTENT = 10**6  # a straggling period longer than any run: the same slow set for the whole run
SEEDS = (0, 1, 2)
HALVES = ("validation", "validation-2", "development")

# the synthetic problem, small enough that lgc estimate takes seconds
_SYNTHETIC = dict(dataset="synthetic", synthetic_train=6000, synthetic_test=1000)
# the CIFAR-10 CPU CNN on a small subset (main-label, 200 samples per worker); --data-dir is given at run time
_CIFAR = dict(dataset="cifar10", model="cnn", accept_md5_mismatch=True, partition="main-label",
              samples_per_worker=200, classes_per_worker=2)
_HETEROGENEOUS = dict(timing="heterogeneous", timing_params={"slow_fraction": 0.3, "slowdown": 3.0, "hold": "speed"})


@dataclass(frozen=True)
class Cell:
    """One cell: `config` holds TrainConfig fields (problem, partition, model, timing); the rule,
    N, B, M and the budget tau are their own fields. Every K in 1..N is measured."""

    name: str
    half: str
    algorithm: str
    n_workers: int
    tau: float
    config: dict = field(default_factory=dict)
    batch_size: int = 20
    blocks: int = 5

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(range(1, self.n_workers + 1))

    @property
    def uses_cifar(self) -> bool:
        return self.config.get("dataset") == "cifar10"


CELLS = (
    # ---------------------------------------------------------------- validation half (never tuned on)
    Cell("v1-mlp-dirichlet-h1-lgc", "validation", "lgc", 8, 150.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "dirichlet", "dirichlet_alpha": 0.3, "straggling_period": 1}),
    Cell("v2-mlp-main1-h10-fastest", "validation", "fastest-k", 8, 150.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "main-label", "classes_per_worker": 1,
          "samples_per_worker": 300, "straggling_period": 10}),
    Cell("v3-mlp-main2-hetero-lgc", "validation", "lgc", 10, 200.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "main-label", "classes_per_worker": 2,
          "samples_per_worker": 300, **_HETEROGENEOUS}),
    Cell("v4-softmax-shards-h10-lgc", "validation", "lgc", 10, 150.0,
         {**_SYNTHETIC, "model": "softmax", "partition": "shards", "shards_per_worker": 2, "straggling_period": 10}),
    Cell("v5-softmax-dirichlet-h10-fresh", "validation", "lgc-fresh", 6, 120.0,
         {**_SYNTHETIC, "model": "softmax", "partition": "dirichlet", "dirichlet_alpha": 0.3,
          "straggling_period": 10}),
    Cell("v6-mlp-main1-persistent-lgc", "validation", "lgc", 10, 150.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "main-label", "classes_per_worker": 1,
          "samples_per_worker": 300, "straggling_period": PERSISTENT}),
    Cell("v7-cifar-cnn-main2-h10-lgc", "validation", "lgc", 6, 120.0,
         {**_CIFAR, "straggling_period": 10}, batch_size=10),
    # ---------------------------------------------------------------- second validation half (never tuned on)
    # Fixed on 2026-12-05, before the held-out-loss (generalisation) term of the error model was written and
    # after v1..v7's results were known (v7's miss motivated that term), so that the term is graded on cells
    # nothing was shaped on: small data and large, every model, rule and timing law again.
    Cell("v8-cifar-cnn-main3-h1-fresh", "validation-2", "lgc-fresh", 6, 120.0,
         {**_CIFAR, "classes_per_worker": 3, "straggling_period": 1}, batch_size=10),
    Cell("v9-mlp-main2-small-h10-lgc", "validation-2", "lgc", 8, 150.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "main-label", "classes_per_worker": 2,
          "samples_per_worker": 100, "straggling_period": 10}),
    Cell("v10-softmax-dirichlet-hetero-lgc", "validation-2", "lgc", 8, 150.0,
         {**_SYNTHETIC, "model": "softmax", "partition": "dirichlet", "dirichlet_alpha": 0.3, **_HETEROGENEOUS}),
    Cell("v11-mlp-shards-persistent-fastest", "validation-2", "fastest-k", 8, 150.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "shards", "shards_per_worker": 2,
          "straggling_period": PERSISTENT}),
    # ---------------------------------------------------------------- development half
    Cell("d1-mlp-dirichlet-h10-lgc", "development", "lgc", 8, 150.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "dirichlet", "dirichlet_alpha": 0.3, "straggling_period": 10}),
    Cell("d2-mlp-shards-persistent-lgc", "development", "lgc", 8, 150.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "shards", "shards_per_worker": 2,
          "straggling_period": PERSISTENT}),
    Cell("d3-mlp-shards-h1-fresh", "development", "lgc-fresh", 8, 150.0,
         {**_SYNTHETIC, "model": "mlp", "partition": "shards", "shards_per_worker": 2, "straggling_period": 1}),
    Cell("d4-softmax-dirichlet-persistent-fastest", "development", "fastest-k", 8, 150.0,
         {**_SYNTHETIC, "model": "softmax", "partition": "dirichlet", "dirichlet_alpha": 0.3,
          "straggling_period": PERSISTENT}),
    Cell("d5-softmax-main2-h1-lgc", "development", "lgc", 8, 150.0,
         {**_SYNTHETIC, "model": "softmax", "partition": "main-label", "classes_per_worker": 2,
          "samples_per_worker": 300, "straggling_period": 1}),
    Cell("d6-softmax-main3-hetero-fastest", "development", "fastest-k", 8, 200.0,
         {**_SYNTHETIC, "model": "softmax", "partition": "main-label", "classes_per_worker": 3,
          "samples_per_worker": 300, **_HETEROGENEOUS}),
    Cell("d7-cifar-cnn-main2-persistent-fastest", "development", "fastest-k", 6, 120.0,
         {**_CIFAR, "straggling_period": PERSISTENT}, batch_size=10),
)


def cells(half: str | None = None) -> tuple[Cell, ...]:
    """The cells of one half (validation or development), or all."""
    assert half is None or half in HALVES, half
    return tuple(c for c in CELLS if half is None or c.half == half)
