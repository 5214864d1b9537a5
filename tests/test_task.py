"""The task (lgc.task): a data set passed in is used as the config's own (paper_figures/paper.py
loads CIFAR-10 once for many runs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lgc.config import TrainConfig
from lgc.data.synthetic import make_classification
from lgc.errors import UserError
from lgc.task import make_task

CFG = TrainConfig(dataset="synthetic", n_workers=3, synthetic_train=1000, synthetic_test=30, partition="main-label",
                  classes_per_worker=2, samples_per_worker=50, model="mlp", width=4, batch_size=4, blocks=2,
                  augment=True).resolved()


def test_a_passed_data_set_gives_the_task_the_config_would_build():
    ds = make_classification(CFG.task.synthetic_train, CFG.task.synthetic_test, signal=CFG.task.synthetic_signal,
                             in_shape=(3, CFG.task.synthetic_side, CFG.task.synthetic_side), seed=CFG.task.data_seed)
    own, passed = make_task(CFG, torch.device("cpu")), make_task(CFG, torch.device("cpu"), ds)
    assert own.info() == passed.info()
    for a, b in zip(own.round_inputs(2, np.array([4, 2, 0])), passed.round_inputs(2, np.array([4, 2, 0]))):
        assert torch.equal(a, b)


def test_a_data_set_of_another_name_is_refused():
    other = make_classification(20, 10, seed=0)
    other.name = "cifar10"
    with pytest.raises(UserError, match="dataset 'cifar10' passed to a run of dataset='synthetic'"):
        make_task(CFG, torch.device("cpu"), other)


def test_the_built_in_synthetic_data_is_drawn_once_per_arguments(monkeypatch):
    """A sweep builds one task per run: the embedded data set is drawn once per process for each set of
    arguments (lgc.task._synthetic), and the tasks' inputs are those of a fresh draw."""
    import lgc.task as task_mod

    calls = []
    real = task_mod.make_classification
    monkeypatch.setattr(task_mod, "make_classification", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k))
    task_mod._synthetic.cache_clear()
    cfg = CFG
    a, b = make_task(cfg, torch.device("cpu")), make_task(cfg, torch.device("cpu"))
    assert len(calls) == 1
    fresh = make_task(cfg, torch.device("cpu"), real(cfg.task.synthetic_train, cfg.task.synthetic_test,
                                                       signal=cfg.task.synthetic_signal, seed=cfg.task.data_seed,
                                                       in_shape=(3, cfg.task.synthetic_side, cfg.task.synthetic_side)))
    for x, y, z in zip(a.round_inputs(1, np.array([4, 1, 3])), b.round_inputs(1, np.array([4, 1, 3])),
                       fresh.round_inputs(1, np.array([4, 1, 3]))):
        assert torch.equal(x, y) and torch.equal(x, z)
    task_mod._synthetic.cache_clear()
