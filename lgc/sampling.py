"""Which samples each worker draws in a round, and their augmentation.

The user's view: README "Data, partitions and models".

Every random choice is a pure function of (seed, round, worker), drawn from numpy
generators, so the `sim` backend (all workers at once) and the `dist` backend (one worker
per process) see the same mini-batches and the same crops and flips:

    batch_indices(seed, t, i, worker_indices, B)   -> worker i's B sample indices in round t
    augment_params(seed, t, i, n)                  -> worker i's crop offsets and flips
    augment(images, params)                        -> one batched gather on the device

Blocks are contiguous slices of the mini-batch: block m of worker i is samples
[m*b, (m+1)*b) of `batch_indices(...)`, b = B/M (theory/DERIVATION.md, notation).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

# independent streams of the per-(seed, round, worker) generator
STREAM_BATCH = 1
STREAM_AUGMENT = 2
STREAM_NOISE = 3  # per-sample gradient noise of the quadratic problem

PAD = 4  # random-crop padding (pixels), the usual CIFAR recipe


def worker_rng(seed: int, round_index: int, worker: int, stream: int) -> np.random.Generator:
    """The generator of one (seed, round, worker, stream): identical in every backend."""
    ss = np.random.SeedSequence([int(seed), int(round_index), int(worker), int(stream)])
    return np.random.Generator(np.random.PCG64(ss))


def batch_indices(seed: int, round_index: int, worker: int, worker_indices, batch_size: int) -> np.ndarray:
    """Worker `worker`'s mini-batch in round `round_index`: B indices into the data set.

    Drawn without replacement from the worker's shard (with replacement only if the shard
    holds fewer than B samples). A pure function of (seed, round, worker).
    """
    worker_indices = np.asarray(worker_indices)
    n = len(worker_indices)
    if n == 0:
        raise ValueError(f"worker {worker} holds no samples")
    rng = worker_rng(seed, round_index, worker, STREAM_BATCH)
    pick = rng.choice(n, size=batch_size, replace=n < batch_size)
    return worker_indices[pick]


def round_batch_indices(seed: int, round_index: int, parts: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """(N, B) array: row i = batch_indices(seed, round, i, parts[i], B)."""
    return np.stack([batch_indices(seed, round_index, i, p, batch_size) for i, p in enumerate(parts)])


class AugmentParams(NamedTuple):
    """Per-sample random-crop offsets (0..2*PAD) and horizontal flips, numpy arrays (n,)."""

    dx: np.ndarray
    dy: np.ndarray
    flip: np.ndarray

    @staticmethod
    def concat(items: Sequence["AugmentParams"]) -> "AugmentParams":
        return AugmentParams(*(np.concatenate([getattr(p, f) for p in items]) for f in AugmentParams._fields))


def augment_params(seed: int, round_index: int, worker: int, n: int, *, pad: int = PAD) -> AugmentParams:
    """Crop offsets and flips for the first n samples of worker's mini-batch in this round.

    Drawn sample by sample, so the parameters of the first m*b samples do not depend on n
    (a straggler's finished blocks see the same crops as in its full mini-batch).
    """
    rng = worker_rng(seed, round_index, worker, STREAM_AUGMENT)
    # one draw per sample, row by row: the first k rows do not depend on n
    draws = rng.integers([0, 0, 0], [2 * pad + 1, 2 * pad + 1, 2], size=(n, 3))
    return AugmentParams(dx=draws[:, 0], dy=draws[:, 1], flip=draws[:, 2].astype(bool))


def round_augment_params(seed: int, round_index: int, workers: Sequence[int], n: int, *, pad: int = PAD) -> AugmentParams:
    """The parameters of several workers' mini-batches, concatenated in the given order."""
    return AugmentParams.concat([augment_params(seed, round_index, w, n, pad=pad) for w in workers])


def augment(images: torch.Tensor, params: AugmentParams, *, pad: int = PAD) -> torch.Tensor:
    """Random crop (zero padding `pad`) and horizontal flip of a batch (n, C, H, W), on its device.

    One advanced-indexing gather does both: output pixel (y, x) of sample s reads padded pixel
    (dy_s + y, dx_s + x), or (dy_s + y, dx_s + W - 1 - x) when s is flipped.
    """
    n, c, h, w = images.shape
    dev = images.device
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dx = torch.as_tensor(params.dx, device=dev).long()
    dy = torch.as_tensor(params.dy, device=dev).long()
    flip = torch.as_tensor(params.flip, device=dev).bool()
    ar_w = torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], dx[:, None] + (w - 1 - ar_w)[None, :], dx[:, None] + ar_w[None, :])
    rows = dy[:, None] + torch.arange(h, device=dev)[None, :]
    s = torch.arange(n, device=dev)[:, None, None, None]
    ch = torch.arange(c, device=dev)[None, :, None, None]
    return padded[s, ch, rows[:, None, :, None], cols[:, None, None, :]]
