"""Mini-batches and augmentation are pure functions of (seed, round, worker)."""
import numpy as np
import torch

from lgc.sampling import (AugmentParams, augment, augment_params, batch_indices, round_augment_params,
                          round_batch_indices)


def test_batch_indices_are_a_pure_function_of_seed_round_worker():
    shard = np.arange(100, 300)
    a = batch_indices(3, 7, 2, shard, 40)
    assert np.array_equal(a, batch_indices(3, 7, 2, shard, 40))
    assert len(a) == 40 and len(set(a.tolist())) == 40 and set(a.tolist()) <= set(shard.tolist())
    assert not np.array_equal(a, batch_indices(3, 8, 2, shard, 40))  # another round
    assert not np.array_equal(a, batch_indices(3, 7, 1, shard, 40))  # another worker
    assert not np.array_equal(a, batch_indices(4, 7, 2, shard, 40))  # another seed


def test_small_shard_is_sampled_with_replacement():
    a = batch_indices(0, 0, 0, np.array([5, 9]), 10)
    assert len(a) == 10 and set(a.tolist()) <= {5, 9}


def test_round_batch_equals_per_worker_calls():
    parts = [np.arange(i * 50, i * 50 + 50) for i in range(4)]
    rb = round_batch_indices(1, 2, parts, 8)
    for i, p in enumerate(parts):
        assert np.array_equal(rb[i], batch_indices(1, 2, i, p, 8))


def _crop_flip_reference(img, dx, dy, flip, pad=4):
    c, h, w = img.shape
    p = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=img.dtype)
    p[:, pad:pad + h, pad:pad + w] = img
    out = p[:, dy:dy + h, dx:dx + w]
    return out.flip(-1) if flip else out


def test_batched_augment_equals_per_sample_crop_and_flip():
    torch.manual_seed(0)
    imgs = torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8)
    params = round_augment_params(5, 3, [0, 1, 2], 4)
    out = augment(imgs, params)
    assert out.shape == imgs.shape and out.dtype == torch.uint8
    for s in range(12):
        ref = _crop_flip_reference(imgs[s], int(params.dx[s]), int(params.dy[s]), bool(params.flip[s]))
        assert torch.equal(out[s], ref), s
    assert params.flip.any() and (~params.flip).any()


def test_batched_augment_params_equal_per_worker_calls_and_prefixes():
    many = round_augment_params(9, 4, [0, 1, 2], 6)
    for w in range(3):
        one = augment_params(9, 4, w, 6)
        for f in AugmentParams._fields:
            assert np.array_equal(getattr(many, f)[6 * w:6 * w + 6], getattr(one, f))
    short = augment_params(9, 4, 1, 2)  # a straggler's finished blocks see the same crops
    full = augment_params(9, 4, 1, 6)
    for f in AugmentParams._fields:
        assert np.array_equal(getattr(short, f), getattr(full, f)[:2])


def test_no_crop_no_flip_is_identity():
    imgs = torch.rand(2, 3, 5, 5)
    p = AugmentParams(dx=np.array([4, 4]), dy=np.array([4, 4]), flip=np.array([False, False]))
    assert torch.equal(augment(imgs, p), imgs)
