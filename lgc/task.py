"""What a run trains: a `Task` (the user's model factory, data and loss, or a built-in one made
by name) and its run-time form on a device (`make_task`), which the `sim` and `dist` backends use.

    task = Task(model=lambda: nn.Linear(4, 3), workers=[(x0, y0), (x1, y1)], test=(xt, yt))
    run = make_task(config, device, task=task)       # the run-time form; task=None: the config's own
    x, y = run.round_inputs(round_index, counts)      # worker i's first counts[i] samples, worker order
    run.evaluate()                                    # test metrics after a round
    run.iterate_metrics(w)                            # cheap metrics at w_t (quadratic only)

A Task's data is held on the device (CIFAR-10 as uint8); mini-batch indices and augmentation
parameters come from lgc.sampling (pure functions of (seed, round, worker)), the gather, crop,
flip and normalisation run on the device in one batch. The built-in data sets and models are
Tasks too (`Task.from_config`). Quadratic: worker i's samples are its noise vectors xi
(lgc.data.synthetic), with exact constants (QuadraticTask).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from lgc.config import TrainConfig
from lgc.config_task import WORKER_WEIGHTS, TaskConfig
from lgc.data import ArrayDataset
from lgc.errors import check
from lgc.data.synthetic import QuadraticModel, make_classification, make_quadratic
from lgc.models import BlockBatchNorm2d, make_model
from lgc.partition import label_histogram, make_partition
from lgc.sampling import augment, augment_params, round_batch_indices

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs, targets) -> one value per sample


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The default loss: cross-entropy per sample."""
    return nn.functional.cross_entropy(out.float(), y, reduction="none")


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The default metric: 1 where the arg-max class is the label, per sample."""
    return (out.argmax(1) == y).float()


def per_sample_loss(model: nn.Module, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample, or the model's own per-sample loss (QuadraticModel)."""
    if getattr(model, "returns_loss", False):
        return out.float()
    return cross_entropy(out, y)


def _builtin_origin(cfg: TaskConfig) -> tuple:
    """(loader, arguments) of the data set a task config names: what ArrayDataset.origin records."""
    if cfg.dataset == "cifar10":
        from pathlib import Path

        return "cifar10", {"data_dir": str(Path(cfg.data_dir).resolve()), "accept_md5_mismatch": cfg.accept_md5_mismatch}
    return "synthetic", {"n_train": cfg.synthetic_train, "n_test": cfg.synthetic_test, "num_classes": 10,
                         "in_shape": (3, cfg.synthetic_side, cfg.synthetic_side), "signal": cfg.synthetic_signal,
                         "modes": 2, "seed": cfg.data_seed}


def _load_builtin(cfg: TaskConfig) -> ArrayDataset:
    kind, kw = _builtin_origin(cfg)
    if kind == "cifar10":
        from lgc.data.cifar10 import load_cifar10

        return load_cifar10(kw["data_dir"], accept_md5_mismatch=kw["accept_md5_mismatch"])
    return _synthetic(**kw)


@functools.lru_cache(maxsize=4)
def _synthetic(*, n_train, n_test, in_shape, **kw) -> ArrayDataset:
    """make_classification, drawn once per process for each set of arguments: a sweep builds a task per run
    (fig_peers_mlp: 96 tasks of one data set, 0.1-0.2 s each). Shared safely: tasks only read the tensors."""
    return make_classification(n_train, n_test, in_shape=in_shape, **kw)


def _tensors(data, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of an (x, y) tensor pair or of any map-style torch Dataset of (x, y) items, stacked."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    else:
        check(hasattr(data, "__len__") and hasattr(data, "__getitem__"),
              f"{what}: {type(data).__name__} is neither an (x, y) pair of tensors nor a torch Dataset")
        check(len(data) >= 1, f"{what}: holds no samples")
        items = [data[i] for i in range(len(data))]
        check(all(isinstance(it, (tuple, list)) and len(it) >= 2 for it in items),
              f"{what}: its items must be (x, y) pairs")
        x = torch.stack([torch.as_tensor(it[0]) for it in items])
        y = torch.stack([torch.as_tensor(it[1]) for it in items])
    check(x.dim() >= 1 and y.dim() >= 1 and len(x) == len(y) and len(x) >= 1,
          f"{what}: x has {len(x) if x.dim() else 0} samples, y has {len(y) if y.dim() else 0}; need the same number >= 1")
    return x, y


@dataclass(frozen=True, eq=False)
class Task:
    """A model and data to train with straggler-resilient SGD: the user's own, or a built-in one.

    Args:
      model: a factory, model() -> torch.nn.Module (called under the run's seed, so the initial
        weights are a function of it). Samples must be treated independently (no batch statistics).
      workers: worker i's training data: an (x, y) pair of tensors or any map-style
        torch.utils.data.Dataset of (x, y) items; N = len(workers).
      data, partition: instead of `workers`, one data set split among the config's N workers by
        partition(labels, n_workers, seed=...) -> N index arrays, e.g. lgc.partition.iid or
        functools.partial(lgc.partition.main_label, classes_per_worker=3, samples_per_worker=200).
        `data` may be an lgc.data.ArrayDataset (its test split is then the default `test`).
      test: the test data (pair or Dataset), for the metrics after rounds; None: no test metrics.
      loss: loss(outputs, targets) -> one value per sample (reduction "none"); default cross-entropy.
      metrics: {name: fn(outputs, targets) -> one value per sample}, averaged over the test set and
        recorded as test_<name>; default {"acc": accuracy} with the default loss, else {}.
      worker_weights: pi, "uniform" (1/N) or "size" (data-size share).
      augment: random crop + flip of images (N, C, H, W) on the device.
      name: how records and messages name the task.
    """

    model: Callable[[], nn.Module]
    workers: Optional[Sequence[Any]] = None
    test: Any = None
    loss: Optional[LossFn] = None
    metrics: Optional[Mapping[str, LossFn]] = None
    data: Any = None
    partition: Optional[Callable[..., Sequence]] = None
    worker_weights: str = "uniform"
    augment: bool = False
    name: str = "task"
    _memo: dict = field(default_factory=dict, init=False, repr=False)  # the stacked data, built once

    def __post_init__(self):
        check(callable(self.model), f"Task {self.name!r}: model must be a factory, model() -> nn.Module")
        check((self.workers is None) != (self.data is None),
              f"Task {self.name!r}: give workers= (one data set per worker) or data= with partition=, not both")
        check(self.data is None or callable(self.partition),
              f"Task {self.name!r}: data= needs partition=, a function (labels, n_workers, seed=) -> index arrays")
        check(self.workers is None or len(self.workers) >= 1, f"Task {self.name!r}: workers= is empty")
        check(self.worker_weights in WORKER_WEIGHTS,
              f"Task {self.name!r}: worker_weights={self.worker_weights!r} must be 'uniform' or 'size'")
        check(self.loss is None or callable(self.loss), f"Task {self.name!r}: loss must be a function (outputs, targets)")
        check(all(callable(f) for f in (self.metrics or {}).values()), f"Task {self.name!r}: every metric must be a function")

    @property
    def n_workers(self) -> Optional[int]:
        """N when the task holds per-worker data; None when the config's N splits `data`."""
        return None if self.workers is None else len(self.workers)

    @property
    def loss_fn(self) -> LossFn:
        return self.loss or cross_entropy

    @property
    def metric_fns(self) -> Mapping[str, LossFn]:
        if self.metrics is not None:
            return dict(self.metrics)
        return {"acc": accuracy} if self.loss is None else {}

    @classmethod
    def from_config(cls, cfg, dataset: Optional[ArrayDataset] = None) -> "Task":
        """The built-in task a resolved TaskConfig names (or a resolved TrainConfig's, cfg.task): its
        data set, partition and model, by name. `dataset`: that data set already in memory (a script
        training many runs loads CIFAR-10 once); it must be the one the config builds
        (ArrayDataset.origin), else UserError."""
        cfg = cfg.task if isinstance(cfg, TrainConfig) else cfg
        check(cfg.dataset != "quadratic", "dataset=quadratic is not a Task: it builds its own problem (QuadraticTask)")
        if dataset is not None:
            check(dataset.name == cfg.dataset, f"dataset {dataset.name!r} passed to a run of dataset={cfg.dataset!r}")
            check(dataset.origin == _builtin_origin(cfg),
                  f"the data set passed is not the {cfg.dataset} data set this config builds (the run cache keys on the "
                  f"config): pass your own data as lgc.Task(...) to lgc.simulate")
        ds = dataset if dataset is not None else _load_builtin(cfg)
        model = functools.partial(make_model, cfg.model, ds.num_classes, ds.in_shape, width=cfg.width, norm=cfg.norm)
        part = functools.partial(make_partition, cfg.partition, **cfg.partition_params())
        return cls(model=model, data=ds, partition=part, worker_weights=cfg.worker_weights,
                   augment=bool(cfg.augment), name=f"{cfg.dataset}/{cfg.model}/{cfg.partition}")

    def materialize(self, n_workers: int, seed: int) -> tuple[ArrayDataset, list]:
        """(ArrayDataset of all training and test samples, N index arrays into its training
        samples): the workers' data stacked in worker order, or `data` split by `partition`."""
        key = (n_workers, seed)
        if key in self._memo:
            return self._memo[key]
        if self.workers is not None:
            check(n_workers == len(self.workers),
                  f"Task {self.name!r} holds data for {len(self.workers)} workers, the config has N={n_workers}")
            pairs = [_tensors(w, f"Task {self.name!r} worker {i}") for i, w in enumerate(self.workers)]
            check(len({(tuple(x.shape[1:]), x.dtype, y.dtype) for x, y in pairs}) == 1,
                  f"Task {self.name!r}: the workers' samples differ in shape or dtype")
            x, y = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
            bounds = np.cumsum([0] + [len(p[0]) for p in pairs])
            parts = [np.arange(bounds[i], bounds[i + 1], dtype=np.int64) for i in range(len(pairs))]
            base = None
        else:
            base = self.data if isinstance(self.data, ArrayDataset) else None
            x, y = (base.x_train, base.y_train) if base is not None else _tensors(self.data, f"Task {self.name!r} data")
            parts = [np.asarray(p, dtype=np.int64) for p in self.partition(y.numpy(), n_workers, seed=seed)]
            check(len(parts) == n_workers and all(len(p) >= 1 and p.min() >= 0 and p.max() < len(y) for p in parts),
                  f"Task {self.name!r}: partition gave {len(parts)} parts, needs {n_workers} non-empty index arrays "
                  f"into its {len(y)} samples")
        test = self.test if self.test is not None else base
        if isinstance(test, ArrayDataset):
            xt, yt = test.x_test, test.y_test
        elif test is not None:
            xt, yt = _tensors(test, f"Task {self.name!r} test")
        else:
            xt, yt = x[:0], y[:0]
        classes = 0
        if not y.is_floating_point():
            classes = base.num_classes if base is not None else int(max(y.max(), yt.max() if len(yt) else 0)) + 1
        ds = ArrayDataset(self.name if base is None else base.name, x, y, xt, yt, classes,
                          *((base.mean, base.std, base.augmentable, base.origin) if base is not None else ()))
        self._memo[key] = (ds, parts)
        return ds, parts

    def build_model(self, seed: int) -> nn.Module:
        """model() under `seed`: the initial weights are a function of the seed alone."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.model()
        check(isinstance(model, nn.Module), f"Task {self.name!r}: model() returned {type(model).__name__}, not an nn.Module")
        return model

    def default_engine(self) -> str:
        """engine=auto for this task: fused where every layer with parameters can be split
        (lgc.sim.fused.split_model), else batched."""
        from lgc.errors import UserError
        from lgc.sim.fused import split_model

        try:
            split_model(self.build_model(0))
        except UserError:
            return "batched"
        return "fused"


class ClassificationTask:
    """A Task on a device for one run (the config's N, seeds, B and b): its data moved to the device
    once, pi, the model with its initial weights, the loss and the test metrics."""

    def __init__(self, cfg: TrainConfig, device: torch.device, dataset: Optional[ArrayDataset] = None, *,
                 task: Optional[Task] = None):
        self.cfg = cfg
        self.device = device
        self.spec = task if task is not None else Task.from_config(cfg, dataset)
        ds, self.parts = self.spec.materialize(cfg.n_workers, cfg.task.data_seed)
        labels = ds.y_train.numpy()
        self.classes = ds.num_classes
        self.histogram = label_histogram(labels, self.parts, ds.num_classes) if ds.num_classes else None
        self.md5_mismatch = list(getattr(ds, "md5_mismatch", []))
        sizes = np.array([len(p) for p in self.parts], dtype=np.float64)
        n = len(self.parts)
        self.pi = sizes / sizes.sum() if self.spec.worker_weights == "size" else np.full(n, 1.0 / n)
        self.ds = ds.to(device)
        model = self.spec.build_model(cfg.seed)
        for m in model.modules():
            if isinstance(m, BlockBatchNorm2d):
                m.block_size = cfg.block_size  # statistics per block, as a worker computes them
        # channels_last for images: on the CPU (one thread, small CNN) it made the forward 2-3.5x and
        # forward+backward 1.6-2.5x faster than NCHW (max-pooling most of all); not for BlockBatchNorm2d
        # on a CPU, whose backward aborts there in torch 2.13 (tests/test_sim.py)
        has_bn = any(isinstance(m, BlockBatchNorm2d) for m in model.modules())
        self.channels_last = len(ds.in_shape) == 3 and (device.type == "cuda" or not has_bn)
        self.model = model.to(device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.augment = self.spec.augment and len(ds.in_shape) == 3
        if self.spec.loss is not None:
            self._check_loss()

    def loss_fn(self, model: nn.Module, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The engines' per-sample loss (lgc.sim.engines.GradientEngine's loss_fn)."""
        return self.spec.loss_fn(out.float(), y)

    def _check_loss(self) -> None:
        """A user's loss must give one value per sample (the rules weight samples one by one)."""
        counts = np.zeros(len(self.parts), dtype=np.int64)
        counts[0] = 2
        x, y = self.round_inputs(0, counts)
        with torch.no_grad():
            shape = tuple(self.loss_fn(self.model, self.model(x), y).shape)
        check(shape == (len(x),), f"Task {self.spec.name!r}: loss gave shape {shape} for {len(x)} samples; it must "
                                  f"return one value per sample (reduction='none')")

    def info(self) -> dict:
        return {"label_histogram": None if self.histogram is None else self.histogram.tolist(),
                "worker_sizes": [len(p) for p in self.parts], "pi": self.pi.tolist(), "num_classes": self.ds.num_classes,
                "in_shape": list(self.ds.in_shape), "dataset": self.ds.name, "task": self.spec.name,
                "md5_mismatch_accepted": self.md5_mismatch}

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ds.normalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def round_inputs(self, round_index: int, counts) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        # (N, B); rennala / malenia may take more than B samples from a worker
        idx = round_batch_indices(cfg.seed, round_index, self.parts, max(cfg.batch_size, int(np.max(counts))))
        sel = np.concatenate([idx[i, :n] for i, n in enumerate(counts)])
        sel_t = torch.as_tensor(sel, device=self.device)
        x, y = self.ds.x_train[sel_t], self.ds.y_train[sel_t]
        if self.augment and len(sel):
            params = [augment_params(cfg.seed, round_index, i, max(cfg.batch_size, int(n))) for i, n in enumerate(counts)]
            cut = type(params[0])(*(np.concatenate([getattr(p, f)[:n] for p, n in zip(params, counts)])
                                   for f in params[0]._fields))
            x = augment(x, cut)
        return self._prepare(x), y

    @torch.no_grad()
    def evaluate(self, chunk: Optional[int] = None, *, limit: Optional[int] = None, per_class: bool = False) -> dict:
        """Test loss and the task's metrics (test_<name>; default test_acc) on the test set, or on
        its first `limit` samples; with per_class (classification), also "test_acc_per_class": the
        accuracy on each label's test images. `chunk` samples per forward (default: 1000 on a GPU,
        250 on a CPU, where smaller passes stay in cache: 2.5x faster for the small CNN)."""
        chunk = chunk or (250 if self.device.type == "cpu" else 1000)
        n = len(self.ds.y_test) if limit is None else min(limit, len(self.ds.y_test))
        if n == 0:
            return {}
        self.model.eval()
        metrics = self.spec.metric_fns
        sums = {"test_loss": 0.0, **{f"test_{k}": 0.0 for k in metrics}}
        hits = torch.zeros(max(self.classes, 1), dtype=torch.long)
        for s in range(0, n, chunk):
            x = self._prepare(self.ds.x_test[s:min(s + chunk, n)])
            y = self.ds.y_test[s:min(s + chunk, n)]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                out = self.model(x)
            sums["test_loss"] += float(self.spec.loss_fn(out.float(), y).sum())
            for k, fn in metrics.items():
                sums[f"test_{k}"] += float(fn(out.float(), y).sum())
            if per_class and self.classes:
                hits += torch.bincount(y[out.argmax(1) == y].cpu(), minlength=self.classes)
        self.model.train()
        res = {k: v / n for k, v in sums.items()}
        if per_class and self.classes:
            total = torch.bincount(self.ds.y_test[:n].cpu(), minlength=self.classes).clamp(min=1)
            res["test_acc_per_class"] = (hits.double() / total.double()).tolist()
        return res

    def iterate_metrics(self, w: torch.Tensor) -> dict:
        return {}


class QuadraticTask:
    """Non-IID quadratics with exact constants; metrics at w_t every round (they cost O(d))."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg = cfg
        self.device = device
        t = cfg.task
        self.problem = make_quadratic(cfg.n_workers, t.quad_dim, seed=t.data_seed, h_min=t.quad_h_min,
                                      h_max=t.quad_h_max, spread=t.quad_spread, sigma2=t.quad_sigma2)
        self.pi = self.problem.pi
        self.model = QuadraticModel(self.problem).to(device)
        self.loss_fn = per_sample_loss  # the model gives its per-sample losses itself

    def info(self) -> dict:
        p = self.problem
        return {"constants": p.constants(), "optimum": p.cbar.tolist(), "F_star": p.F_star, "pi": p.pi.tolist()}

    def round_inputs(self, round_index: int, counts) -> tuple[torch.Tensor, torch.Tensor]:
        p, cfg = self.problem, self.cfg
        rows = [p.inputs(i, p.noise(cfg.seed, round_index, i, max(cfg.batch_size, int(n)))[:n])
                for i, n in enumerate(counts)]
        x = torch.cat(rows).to(self.device)
        return x, torch.zeros(len(x), dtype=torch.long, device=self.device)

    def evaluate(self, *, limit: Optional[int] = None, per_class: bool = False) -> dict:
        return {}

    def iterate_metrics(self, w: torch.Tensor) -> dict:
        """||grad F(w_t)||^2, ||w_t - w*|| and F(w_t) - F* (float64)."""
        p = self.problem
        wn = w.detach().double().cpu().numpy()
        g = p.grad_F(wn)
        return {"grad_norm2": float(g @ g), "dist_opt": float(np.linalg.norm(wn - p.cbar)),
                "f_gap": p.F(wn) - p.F_star}


def make_task(cfg: TrainConfig, device: torch.device, dataset: Optional[ArrayDataset] = None, *,
              task: Optional[Task] = None):
    """The run's task on `device`: `task` (a Task, the user's), else the one the config names;
    `dataset` (a built-in data set only): that data set already loaded."""
    if task is not None:
        check(dataset is None, "pass a Task or a data set, not both")
        return ClassificationTask(cfg, device, task=task)
    if cfg.task.dataset == "quadratic":
        check(dataset is None, "dataset=quadratic builds its own problem; pass no data set")
        return QuadraticTask(cfg, device)
    return ClassificationTask(cfg, device, dataset)
