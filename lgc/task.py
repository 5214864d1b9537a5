"""What the `sim` backend trains: a model, its data on the device, and its metrics.

    task = make_task(config, device)
    x, y = task.round_inputs(round_index, counts)   # worker i's first counts[i] samples, worker order
    task.evaluate()                                 # test metrics after a round
    task.iterate_metrics(w)                         # cheap metrics at w_t (quadratic only)

Classification: the data set lives on the device (CIFAR-10 as uint8); mini-batch indices and
augmentation parameters come from lgc.sampling (pure functions of (seed, round, worker)),
the gather, crop, flip and normalisation run on the device in one batch.
Quadratic: worker i's samples are its noise vectors xi (lgc.data.synthetic).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from lgc.config import TrainConfig
from lgc.data import ArrayDataset
from lgc.errors import check
from lgc.data.synthetic import QuadraticModel, make_classification, make_quadratic
from lgc.models import BlockBatchNorm2d, make_model
from lgc.partition import label_histogram, make_partition
from lgc.sampling import augment, augment_params, round_batch_indices


def per_sample_loss(model: nn.Module, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample, or the model's own per-sample loss (QuadraticModel)."""
    if getattr(model, "returns_loss", False):
        return out.float()
    return nn.functional.cross_entropy(out.float(), y, reduction="none")


def _partition_params(cfg: TrainConfig) -> dict:
    if cfg.partition == "iid":
        return {"samples_per_worker": cfg.samples_per_worker}
    if cfg.partition == "main-label":
        return {"classes_per_worker": cfg.classes_per_worker, "samples_per_worker": cfg.samples_per_worker,
                "main_share": cfg.main_share}
    if cfg.partition == "dirichlet":
        return {"alpha": cfg.dirichlet_alpha, "min_size": cfg.min_size}
    return {"shards_per_worker": cfg.shards_per_worker}


class ClassificationTask:
    """`dataset`: the data set the config names, already in memory (a process that trains many
    runs loads CIFAR-10 once and passes it to each); loaded from the config when None."""

    def __init__(self, cfg: TrainConfig, device: torch.device, dataset: Optional[ArrayDataset] = None):
        self.cfg = cfg
        self.device = device
        if dataset is not None:
            check(dataset.name == cfg.dataset, f"dataset {dataset.name!r} passed to a run of dataset={cfg.dataset!r}")
            ds = dataset
        elif cfg.dataset == "cifar10":
            from lgc.data.cifar10 import load_cifar10

            ds = load_cifar10(cfg.data_dir, accept_md5_mismatch=cfg.accept_md5_mismatch)
        else:
            ds = make_classification(cfg.synthetic_train, cfg.synthetic_test, signal=cfg.synthetic_signal,
                                     in_shape=(3, cfg.synthetic_side, cfg.synthetic_side), seed=cfg.data_seed)
        labels = ds.y_train.numpy()
        self.parts = make_partition(cfg.partition, labels, cfg.n_workers, seed=cfg.data_seed,
                                    **_partition_params(cfg))
        self.histogram = label_histogram(labels, self.parts, ds.num_classes)
        self.md5_mismatch = list(getattr(ds, "md5_mismatch", []))
        sizes = np.array([len(p) for p in self.parts], dtype=np.float64)
        self.pi = sizes / sizes.sum() if cfg.worker_weights == "size" else np.full(cfg.n_workers, 1.0 / cfg.n_workers)
        self.ds = ds.to(device)
        with torch.random.fork_rng(devices=[]):  # the initial weights: a function of the seed only
            torch.manual_seed(cfg.seed)
            model = make_model(cfg.model, ds.num_classes, ds.in_shape, width=cfg.width, norm=cfg.norm)
        for m in model.modules():
            if isinstance(m, BlockBatchNorm2d):
                m.block_size = cfg.block_size  # statistics per block, as a worker computes them
        # channels_last for images: on the CPU (one thread, small CNN) it made the forward 2-3.5x and
        # forward+backward 1.6-2.5x faster than NCHW (max-pooling most of all); not for BlockBatchNorm2d
        # on a CPU, whose backward aborts there in torch 2.13 (tests/test_sim.py)
        has_bn = any(isinstance(m, BlockBatchNorm2d) for m in model.modules())
        self.channels_last = len(ds.in_shape) == 3 and (device.type == "cuda" or not has_bn)
        self.model = model.to(device, memory_format=torch.channels_last if self.channels_last else torch.preserve_format)
        self.augment = bool(cfg.augment) and len(ds.in_shape) == 3

    def info(self) -> dict:
        return {"label_histogram": self.histogram.tolist(), "worker_sizes": [len(p) for p in self.parts],
                "pi": self.pi.tolist(), "num_classes": self.ds.num_classes, "in_shape": list(self.ds.in_shape),
                "dataset": self.ds.name, "md5_mismatch_accepted": self.md5_mismatch}

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
        """Test loss and accuracy on the test set, or on its first `limit` samples; with
        per_class, also "test_acc_per_class": the accuracy on each label's test images.
        `chunk` images per forward (default: 1000 on a GPU, 250 on a CPU, where smaller passes
        stay in cache: 2.5x faster for the small CNN)."""
        chunk = chunk or (250 if self.device.type == "cpu" else 1000)
        self.model.eval()
        loss_sum, correct, n = 0.0, 0, len(self.ds.y_test) if limit is None else min(limit, len(self.ds.y_test))
        hits = torch.zeros(self.ds.num_classes, dtype=torch.long)
        for s in range(0, n, chunk):
            x = self._prepare(self.ds.x_test[s:min(s + chunk, n)])
            y = self.ds.y_test[s:min(s + chunk, n)]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                out = self.model(x)
            loss_sum += float(nn.functional.cross_entropy(out.float(), y, reduction="sum"))
            right = out.argmax(1) == y
            correct += int(right.sum())
            hits += torch.bincount(y[right].cpu(), minlength=self.ds.num_classes)
        self.model.train()
        res = {"test_loss": loss_sum / n, "test_acc": correct / n}
        if per_class:
            total = torch.bincount(self.ds.y_test[:n].cpu(), minlength=self.ds.num_classes).clamp(min=1)
            res["test_acc_per_class"] = (hits.double() / total.double()).tolist()
        return res

    def iterate_metrics(self, w: torch.Tensor) -> dict:
        return {}


class QuadraticTask:
    """Non-IID quadratics with exact constants; metrics at w_t every round (they cost O(d))."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.problem = make_quadratic(cfg.n_workers, cfg.quad_dim, seed=cfg.data_seed, h_min=cfg.quad_h_min,
                                      h_max=cfg.quad_h_max, spread=cfg.quad_spread, sigma2=cfg.quad_sigma2)
        self.pi = self.problem.pi
        self.model = QuadraticModel(self.problem).to(device)

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


def make_task(cfg: TrainConfig, device: torch.device, dataset: Optional[ArrayDataset] = None):
    """The run's task; `dataset` (classification only): its data set already loaded."""
    if cfg.dataset == "quadratic":
        check(dataset is None, "dataset=quadratic builds its own problem; pass no data set")
        return QuadraticTask(cfg, device)
    return ClassificationTask(cfg, device, dataset)
