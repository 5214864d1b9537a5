"""Partitioners: sizes, label shares and seeds behave as specified."""
import numpy as np
import pytest

from lgc.errors import UserError
from lgc.partition import dirichlet, iid, label_histogram, main_label, make_partition, shards

LABELS = np.repeat(np.arange(10), 500)  # 10 classes x 500


def _disjoint(parts):
    allidx = np.concatenate(parts)
    return len(allidx) == len(set(allidx.tolist()))


def test_iid_equal_sizes_disjoint_and_seeded():
    parts = iid(LABELS, 8, seed=1)
    assert [len(p) for p in parts] == [625] * 8 and _disjoint(parts)
    assert all(np.array_equal(a, b) for a, b in zip(parts, iid(LABELS, 8, seed=1)))
    assert not np.array_equal(parts[0], iid(LABELS, 8, seed=2)[0])
    hist = label_histogram(LABELS, parts, 10)
    assert hist.min() > 30  # every worker sees every class


@pytest.mark.parametrize("c", [1, 3, 5, 10])
def test_main_label_shares(c):
    parts = main_label(LABELS, 10, classes_per_worker=c, samples_per_worker=200, seed=0)
    hist = label_histogram(LABELS, parts, 10)
    assert _disjoint(parts) and (hist.sum(axis=1) == 200).all()
    for i in range(10):
        assert hist[i, i] == (200 if c == 1 else 160)  # 80% from the main class i
        assert (hist[i] > 0).sum() == c  # exactly c classes
        others = np.delete(hist[i], i)
        others = others[others > 0]
        if c > 1:
            assert others.sum() == 40 and others.max() - others.min() <= 1  # rest spread evenly


def test_main_label_seeded_and_exhaustion_is_a_user_error():
    a = main_label(LABELS, 10, classes_per_worker=3, samples_per_worker=200, seed=4)
    b = main_label(LABELS, 10, classes_per_worker=3, samples_per_worker=200, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(UserError, match="class 0 has only"):
        main_label(LABELS, 12, classes_per_worker=1, samples_per_worker=300, seed=0)
    with pytest.raises(UserError, match="classes_per_worker c=11"):
        main_label(LABELS, 10, classes_per_worker=11, samples_per_worker=10)


def test_dirichlet_min_size_uses_all_samples_and_alpha_controls_skew():
    parts = dirichlet(LABELS, 10, alpha=0.3, min_size=50, seed=0)
    assert _disjoint(parts) and sum(len(p) for p in parts) == len(LABELS)
    assert min(len(p) for p in parts) >= 50
    skew = lambda ps: np.mean(label_histogram(LABELS, ps, 10).max(axis=1) / [len(p) for p in ps])
    assert skew(parts) > skew(dirichlet(LABELS, 10, alpha=100.0, min_size=50, seed=0)) + 0.2
    with pytest.raises(UserError, match="min_size=5000"):
        dirichlet(LABELS, 10, alpha=0.3, min_size=5000)


def test_shards_give_few_classes_per_worker():
    parts = shards(LABELS, 10, shards_per_worker=2, seed=0)
    hist = label_histogram(LABELS, parts, 10)
    assert _disjoint(parts) and all(len(p) == 500 for p in parts)
    assert ((hist > 0).sum(axis=1) <= 2).all()


def test_unknown_partition_names_the_value():
    with pytest.raises(UserError, match="partition='zipf'"):
        make_partition("zipf", LABELS, 4)
