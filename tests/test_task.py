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
