"""The training configuration: one dataclass, validated, the same for the CLI, JSON files and
the Python API (`lgc.sim.train(TrainConfig(...))`). Symbols as in SPEC section 1."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from lgc.errors import UserError, check
from lgc.models import MODELS, NORMS
from lgc.partition import PARTITIONS
from lgc.rules import ALGORITHMS

DATASETS = ("synthetic", "quadratic", "cifar10")
SEMANTICS = ("boundary", "abort")
ENGINES = ("batched", "fused")  # lgc.sim.engines.BatchedEngine (two passes), lgc.sim.fused.FusedEngine
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")  # torch.compile of the engine's pass
BACKENDS = ("sim", "dist")


@dataclass(frozen=True)
class TrainConfig:
    # algorithm and the round structure
    algorithm: str = "lgc"
    n_workers: int = 10  # N
    threshold_k: int = 7  # K
    batch_size: int = 50  # B, samples per worker per round
    blocks: int = 5  # M, blocks per mini-batch; b = B / M
    rounds: int = 200  # T
    warmup_rounds: int = 2  # full-sync rounds at the start (the lab code uses 2)
    # server optimiser (identical across algorithms)
    lr: float = 0.05  # eta
    momentum: float = 0.9
    weight_decay: float = 0.0
    # data, partition and model
    dataset: str = "synthetic"
    data_dir: Optional[str] = None  # cifar10: folder holding cifar-10-batches-py/ (or the batches)
    accept_md5_mismatch: bool = False
    augment: Optional[bool] = None  # None: on for cifar10, off otherwise
    model: str = "mlp"
    width: Optional[int] = None
    norm: str = "group"
    partition: str = "main-label"
    classes_per_worker: int = 3  # c (main-label)
    samples_per_worker: Optional[int] = 500  # main-label (required), iid (None: n // N)
    main_share: float = 0.8
    dirichlet_alpha: float = 0.5
    min_size: int = 10
    shards_per_worker: int = 2
    worker_weights: str = "uniform"  # pi: "uniform" (1/N) or "size" (data-size share)
    synthetic_train: int = 20000
    synthetic_test: int = 2000
    synthetic_signal: float = 0.2
    synthetic_side: int = 8  # synthetic images are 3 x side x side
    quad_dim: int = 10
    quad_h_min: float = 0.1
    quad_h_max: float = 1.0
    quad_spread: float = 1.0
    quad_sigma2: float = 1.0
    # timing (SPEC section 2)
    timing: str = "shifted-exp"
    timing_params: dict = field(default_factory=dict)
    straggling_period: int = 1  # h
    semantics: str = "boundary"
    comm_alpha: float = 0.0
    comm_beta: float = 0.0
    deadline: Optional[float] = None  # anytime-minibatch; None: E[X_(K:N)] of the timing model
    schedule_file: Optional[str] = None  # replay a recorded schedule instead of the timing model
    # bookkeeping
    seed: int = 0  # timing, mini-batches, augmentation, model init
    data_seed: Optional[int] = None  # synthetic data and partition; None: seed
    eval_every: int = 10  # test evaluation every n rounds (and after the last); 0: only at the end
    checkpoint_every: int = 50  # 0: only at the end
    device: str = "auto"
    engine: str = "batched"
    compile: str = "none"
    backend: str = "sim"

    # ------------------------------------------------------------------ derived values
    @property
    def block_size(self) -> int:
        """b = B / M."""
        return self.batch_size // self.blocks

    def resolved(self) -> "TrainConfig":
        """Fill the defaults that depend on other fields (recorded in config.json)."""
        return replace(
            self,
            augment=(self.dataset == "cifar10") if self.augment is None else self.augment,
            data_seed=self.seed if self.data_seed is None else self.data_seed,
            model="quadratic" if self.dataset == "quadratic" else self.model,
            timing_params=dict(sorted(self.timing_params.items())),
        )

    def validate(self) -> "TrainConfig":
        """Raise UserError (one line naming the value) for an invalid configuration."""
        c = self
        check(c.algorithm in ALGORITHMS, f"algorithm={c.algorithm!r} must be one of {', '.join(ALGORITHMS)}")
        check(c.n_workers >= 1, f"N={c.n_workers} must be >= 1")
        check(1 <= c.threshold_k <= c.n_workers, f"K={c.threshold_k} must satisfy 1 <= K <= N={c.n_workers}")
        check(c.batch_size >= 1, f"B={c.batch_size} must be >= 1")
        check(c.blocks >= 1, f"M={c.blocks} must be >= 1")
        check(c.batch_size % c.blocks == 0, f"B={c.batch_size} is not divisible by M={c.blocks}")
        check(c.rounds >= 1, f"rounds={c.rounds} must be >= 1")
        check(c.warmup_rounds >= 0, f"warmup_rounds={c.warmup_rounds} must be >= 0")
        check(c.lr > 0, f"lr={c.lr} must be > 0")
        check(0 <= c.momentum < 1, f"momentum={c.momentum} must be in [0, 1)")
        check(c.weight_decay >= 0, f"weight_decay={c.weight_decay} must be >= 0")
        check(c.dataset in DATASETS, f"dataset={c.dataset!r} must be one of {', '.join(DATASETS)}")
        if c.dataset != "quadratic":
            check(c.model in MODELS, f"model={c.model!r} must be one of {', '.join(MODELS)}")
            check(c.partition in PARTITIONS, f"partition={c.partition!r} must be one of {', '.join(PARTITIONS)}")
        check(c.norm in NORMS, f"norm={c.norm!r} must be one of {', '.join(NORMS)}")
        check(c.worker_weights in ("uniform", "size"), f"worker_weights={c.worker_weights!r} must be 'uniform' or 'size'")
        check(c.dataset != "cifar10" or c.data_dir, "dataset=cifar10 needs --data-dir")
        check(c.synthetic_side >= 1 and c.synthetic_train >= 1 and c.synthetic_test >= 1,
              f"synthetic_side={c.synthetic_side}, synthetic_train={c.synthetic_train}, synthetic_test={c.synthetic_test} must be >= 1")
        check(c.straggling_period >= 1, f"straggling_period h={c.straggling_period} must be >= 1")
        check(c.semantics in SEMANTICS, f"semantics={c.semantics!r} must be one of {', '.join(SEMANTICS)}")
        check(c.comm_alpha >= 0 and c.comm_beta >= 0, f"comm_alpha={c.comm_alpha}, comm_beta={c.comm_beta} must be >= 0")
        check(c.deadline is None or c.deadline > 0, f"deadline={c.deadline} must be > 0")
        check(c.schedule_file is None or Path(c.schedule_file).is_file(), f"schedule_file={c.schedule_file} does not exist")
        check(c.eval_every >= 0, f"eval_every={c.eval_every} must be >= 0")
        check(c.checkpoint_every >= 0, f"checkpoint_every={c.checkpoint_every} must be >= 0")
        check(c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:"), f"device={c.device!r} must be auto, cpu or cuda[:i]")
        check(c.engine in ENGINES, f"engine={c.engine!r} must be one of {', '.join(ENGINES)}")
        check(c.compile in COMPILE_MODES, f"compile={c.compile!r} must be one of {', '.join(COMPILE_MODES)}")
        check(c.engine != "fused" or (c.dataset != "quadratic" and c.norm == "group"),
              f"engine=fused needs GroupNorm models (dataset={c.dataset!r}, norm={c.norm!r}): use engine=batched")
        check(c.backend in BACKENDS, f"backend={c.backend!r} must be one of {', '.join(BACKENDS)}")
        check(isinstance(c.timing_params, dict), f"timing_params={c.timing_params!r} must be a JSON object")
        return self

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"{source}: unknown config key {unknown[0]!r} (valid: see `lgc train --help`)")
        try:
            return cls(**d)
        except TypeError as e:  # pragma: no cover - dataclass init with valid names only
            raise UserError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        """A config file, or a run's config.json: its "dist" object (the dist backend's options,
        which `lgc train` reads from it too) is not a TrainConfig key."""
        d = read_json_object(path)
        d.pop("dist", None)
        return cls.from_dict(d, source=str(path))


def read_json_object(path: str | Path) -> dict:
    """The JSON object in a config file; UserError (one line) if it is missing or malformed."""
    p = Path(path)
    check(p.is_file(), f"config file {p} does not exist")
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"config file {p} is not valid JSON: {getattr(e, 'msg', e)}"
                        + (f" at line {e.lineno}" if hasattr(e, "lineno") else "")) from None
    check(isinstance(d, dict), f"config file {p} must hold a JSON object")
    return d
