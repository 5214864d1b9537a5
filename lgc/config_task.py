"""The built-in task of a run, by name: its data set, partition, worker weights pi and model
(`TaskConfig`, held by TrainConfig as `cfg.task`). `lgc.Task.from_config` builds the task it names,
`lgc estimate` measures that task's constants, and `lgc.simulate` with a user's own `lgc.Task` leaves
it unset (the Task replaces it). Symbols as in theory/DERIVATION.md section 1 (N workers, c classes
per worker, pi_i worker weights).

The fields are flat on the command line (`--dataset`, `--model`, `--partition`, ...: generated from
this dataclass, lgc/commands/_config_args.py) and nested in JSON (`"task": {...}`); a config file
may still give them at the top level, the form before the nesting (lgc.config.nest_task_keys).

No torch import here: `lgc optimize-k` reads the configs without loading torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Optional

from lgc.config_fields import check_finite, check_not_null, check_seed, option
from lgc.errors import check

DATASETS = ("synthetic", "quadratic", "cifar10")
WORKER_WEIGHTS = ("uniform", "size")  # pi: 1/N, or each worker's share of the samples (lgc.task.ClassificationTask)
# the TaskConfig fields a run of a user's own lgc.Task still reads: the seed of its partition
# (Task.materialize); every other field is the Task's business (lgc.api.task_config refuses it)
READ_BY_USER_TASKS = ("data_seed",)


@dataclass(frozen=True)
class TaskConfig:
    dataset: str = option("synthetic", "synthetic (embedded classification), quadratic (exact constants) or cifar10")
    data_dir: Optional[str] = option(None, "CIFAR-10 folder (holding cifar-10-batches-py/ or the batches)",
                                     metavar="DIR", none="none")
    accept_md5_mismatch: bool = option(False, "use CIFAR-10 files whose MD5 differs from the official release")
    augment: Optional[bool] = option(None, "random crop + flip on the device", none="on for cifar10, off otherwise")
    model: str = option("mlp", "resnet18, cnn, mlp or softmax (ignored for quadratic)")
    width: Optional[int] = option(None, "channels / hidden units", none="per model")
    norm: str = option("group", "group or batch (statistics per block of b samples)")
    partition: str = option("main-label", "iid, main-label, dirichlet or shards")
    classes_per_worker: int = option(3, "c, classes per worker (main-label)", metavar="C")
    samples_per_worker: Optional[int] = option(500, "samples per worker (main-label: required; iid: none means n / N)")
    main_share: float = option(0.8, "share of a worker's samples from its main class (main-label)")
    dirichlet_alpha: float = option(0.5, "Dirichlet concentration (dirichlet)")
    min_size: int = option(10, "minimum samples per worker (dirichlet)")
    shards_per_worker: int = option(2, "shards per worker (shards)")
    worker_weights: str = option("uniform", "pi: uniform (1/N) or size (data-size share)")
    synthetic_train: int = option(20000, "training samples of the synthetic problem")
    synthetic_test: int = option(2000, "test samples of the synthetic problem")
    synthetic_signal: float = option(0.2, "prototype scale of the synthetic problem (difficulty)")
    synthetic_side: int = option(8, "synthetic images are 3 x side x side")
    quad_dim: int = option(10, "dimension d of the quadratics")
    quad_h_min: float = option(0.1, "smallest curvature h of the quadratics")
    quad_h_max: float = option(1.0, "largest curvature h of the quadratics (= L)")
    quad_spread: float = option(1.0, "scale of the workers' optima c_i of the quadratics")
    quad_sigma2: float = option(1.0, "per-sample gradient variance sigma^2 of the quadratics")
    data_seed: Optional[int] = option(None, "seed of the synthetic data and the partition", none="--seed")

    def resolved(self, seed: int) -> "TaskConfig":
        """Fill the defaults that depend on other fields; `seed`: the run's (TrainConfig.seed)."""
        return replace(
            self,
            augment=(self.dataset == "cifar10") if self.augment is None else self.augment,
            data_seed=seed if self.data_seed is None else self.data_seed,
            model="quadratic" if self.dataset == "quadratic" else self.model,
        )

    def validate(self) -> "TaskConfig":
        """Raise UserError (one line naming the value) for an invalid task."""
        from lgc.models import MODELS, NORMS  # here, not at the top: lgc optimize-k imports this module without torch
        from lgc.partition import PARTITIONS

        c = self
        check_not_null(c)
        for f in fields(c):
            check_finite(f.name, getattr(c, f.name))
        if c.data_seed is not None:
            check_seed("data_seed", c.data_seed)
        check(c.dataset in DATASETS, f"dataset={c.dataset!r} must be one of {', '.join(DATASETS)}")
        if c.dataset != "quadratic":
            check(c.partition != "main-label" or c.samples_per_worker is not None,
                  "samples_per_worker=null: partition main-label needs a number (null means n / N, for iid only)")
            check(c.model in MODELS, f"model={c.model!r} must be one of {', '.join(MODELS)}")
            check(c.partition in PARTITIONS, f"partition={c.partition!r} must be one of {', '.join(PARTITIONS)}")
        check(c.norm in NORMS, f"norm={c.norm!r} must be one of {', '.join(NORMS)}")
        check(c.worker_weights in WORKER_WEIGHTS, f"worker_weights={c.worker_weights!r} must be 'uniform' or 'size'")
        check(c.dataset != "cifar10" or c.data_dir, "dataset=cifar10 needs --data-dir")
        check(c.synthetic_side >= 1 and c.synthetic_train >= 1 and c.synthetic_test >= 1,
              f"synthetic_side={c.synthetic_side}, synthetic_train={c.synthetic_train}, synthetic_test={c.synthetic_test} must be >= 1")
        if c.dataset == "synthetic":
            check_synthetic_size(c.synthetic_side, c.synthetic_train + c.synthetic_test)
        return self

    def partition_params(self) -> dict:
        """The keyword arguments of lgc.partition.make_partition for this partition."""
        if self.partition == "iid":
            return {"samples_per_worker": self.samples_per_worker}
        if self.partition == "main-label":
            return {"classes_per_worker": self.classes_per_worker, "samples_per_worker": self.samples_per_worker,
                    "main_share": self.main_share}
        if self.partition == "dirichlet":
            return {"alpha": self.dirichlet_alpha, "min_size": self.min_size}
        return {"shards_per_worker": self.shards_per_worker}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "TaskConfig":
        check(isinstance(d, dict), f"{source}: \"task\" must be a JSON object of task keys, not {d!r}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        check(not unknown, f"{source}: unknown config key 'task.{unknown[0] if unknown else ''}' (valid: see "
                           f"`lgc train --help`)")
        return cls(**d)


MAX_SYNTHETIC_VALUES = 2**28  # float32 values of the synthetic data set (1 GiB; about 3 GiB while drawn)


def check_synthetic_size(side: int, n: int) -> None:
    """The synthetic images (n of 3 x side x side float32) must fit a stated limit: checked up
    front instead of failing in the allocator minutes later."""
    values = n * 3 * side * side
    check(values <= MAX_SYNTHETIC_VALUES,
          f"synthetic data of {n} images 3 x {side} x {side} = {values:.3g} values exceeds the limit "
          f"{MAX_SYNTHETIC_VALUES:.3g} (1 GiB): lower --synthetic-side, --synthetic-train or --synthetic-test")
