"""Split a labelled data set among N workers: iid, main-label, Dirichlet, shards.

The user's view: README "Data, partitions and models".

Every partitioner is a pure function of (labels, N, parameters, seed) and returns a list of N
int64 index arrays (disjoint; each sorted). `label_histogram` gives the (N, classes) counts
recorded in every run.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from lgc.errors import check

PARTITIONS = ("iid", "main-label", "dirichlet", "shards")


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 31337])))


def _sizes(n_total: int, n_workers: int, samples_per_worker: Optional[int]) -> int:
    check(n_workers >= 1, f"N={n_workers} must be >= 1")
    if samples_per_worker is None:
        samples_per_worker = n_total // n_workers
    check(samples_per_worker >= 1, f"samples_per_worker={samples_per_worker} must be >= 1")
    check(samples_per_worker * n_workers <= n_total,
          f"samples_per_worker={samples_per_worker} x N={n_workers} exceeds the {n_total} samples")
    return samples_per_worker


def iid(labels, n_workers: int, *, samples_per_worker: Optional[int] = None, seed: int = 0) -> list[np.ndarray]:
    """A uniformly random split into N equal parts (of samples_per_worker, default n // N)."""
    labels = np.asarray(labels)
    s = _sizes(len(labels), n_workers, samples_per_worker)
    perm = _rng(seed).permutation(len(labels))
    return [np.sort(perm[i * s:(i + 1) * s]).astype(np.int64) for i in range(n_workers)]


def main_label(
    labels, n_workers: int, *, classes_per_worker: int, samples_per_worker: int,
    main_share: float = 0.8, num_classes: Optional[int] = None, seed: int = 0,
) -> list[np.ndarray]:
    """Worker i's samples: round(main_share * S) from its main class (i mod classes), the rest
    spread as evenly as possible over c-1 other classes drawn at random (as in the authors'-lab
    code: 2000 samples, 80% from one class, c in {1, 3, 5, 10}); c = 1: all from the main class.
    Samples are drawn without replacement, so the parts are disjoint.
    """
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    c = classes_per_worker
    check(1 <= c <= num_classes, f"classes_per_worker c={c} must be in 1..{num_classes}")
    check(0.0 < main_share <= 1.0, f"main_share={main_share} must be in (0, 1]")
    _sizes(len(labels), n_workers, samples_per_worker)
    rng = _rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == k))) for k in range(num_classes)]
    parts = []
    for i in range(n_workers):
        main = i % num_classes
        n_main = samples_per_worker if c == 1 else int(round(main_share * samples_per_worker))
        others = rng.choice([k for k in range(num_classes) if k != main], size=c - 1, replace=False)
        rest = samples_per_worker - n_main
        counts = {main: n_main}
        for r, k in enumerate(others):  # as even as possible: the first rest % (c-1) get one more
            counts[int(k)] = rest // (c - 1) + (1 if r < rest % (c - 1) else 0)
        idx = []
        for k, n_k in counts.items():
            check(len(pools[k]) >= n_k,
                  f"class {k} has only {len(pools[k])} samples left for worker {i} (needs {n_k}); "
                  f"lower samples_per_worker={samples_per_worker}")
            idx.extend(pools[k][:n_k])
            del pools[k][:n_k]
        parts.append(np.sort(np.asarray(idx, dtype=np.int64)))
    return parts


def dirichlet(
    labels, n_workers: int, *, alpha: float, min_size: int = 10, num_classes: Optional[int] = None,
    seed: int = 0, max_tries: int = 1000,
) -> list[np.ndarray]:
    """Each class split among workers in proportions ~ Dirichlet(alpha); redrawn until every
    worker holds >= min_size samples (small alpha: very non-IID). Uses every sample."""
    labels = np.asarray(labels)
    check(alpha > 0, f"alpha={alpha} must be > 0")
    check(min_size >= 0 and min_size * n_workers <= len(labels),
          f"min_size={min_size} x N={n_workers} exceeds the {len(labels)} samples")
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    rng = _rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == k)) for k in range(num_classes)]
    for _ in range(max_tries):
        parts = [[] for _ in range(n_workers)]
        for idx in by_class:
            p = rng.dirichlet(np.full(n_workers, alpha))
            cuts = (np.cumsum(p)[:-1] * len(idx)).astype(int)
            for i, chunk in enumerate(np.split(idx, cuts)):
                parts[i].extend(chunk)
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    check(False, f"no Dirichlet(alpha={alpha}) split gave every worker >= min_size={min_size} "
                 f"samples in {max_tries} tries; lower min_size or raise alpha")


def shards(labels, n_workers: int, *, shards_per_worker: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Sort by label, cut into N * s equal shards, give each worker s random shards
    (McMahan et al., 2017); the few samples left over by the cut are unused."""
    labels = np.asarray(labels)
    check(shards_per_worker >= 1, f"shards_per_worker={shards_per_worker} must be >= 1")
    n_shards = n_workers * shards_per_worker
    size = len(labels) // n_shards
    check(size >= 1, f"{len(labels)} samples cannot make N x shards_per_worker = {n_shards} shards")
    rng = _rng(seed)
    order = np.argsort(labels, kind="stable")
    assign = rng.permutation(n_shards).reshape(n_workers, shards_per_worker)
    return [np.sort(np.concatenate([order[s * size:(s + 1) * size] for s in row])).astype(np.int64)
            for row in assign]


def make_partition(name: str, labels, n_workers: int, *, seed: int = 0, **params) -> list[np.ndarray]:
    """Dispatch by name; `params` are the partitioner's keyword arguments."""
    fns = {"iid": iid, "main-label": main_label, "dirichlet": dirichlet, "shards": shards}
    check(name in fns, f"partition={name!r} must be one of {', '.join(PARTITIONS)}")
    return fns[name](labels, n_workers, seed=seed, **params)


def label_histogram(labels, parts, num_classes: int) -> np.ndarray:
    """(N, classes) int counts: row i = how many of worker i's samples carry each label."""
    labels = np.asarray(labels)
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in parts])
