"""The round protocol both backends share (lgc.protocol): the round plan and its two-step form
(what the dist worker sums before it knows A_t, then normalises), replay loading, the server
state a checkpoint holds, and the round record."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lgc.checkpoint import load_checkpoint, save_checkpoint
from lgc.config import TrainConfig
from lgc.errors import UserError
from lgc.protocol import (ROUND_FIELDS, RunState, group_norms, load_replay, local_weight, plan_groups, round_plan,
                          round_record)
from lgc.rules import RuleState, ServerState
from theory.algorithms import NAMES
from theory.algorithms import algorithm as algorithm_entry
from theory.schedule import RoundSchedule, schedule_to_csv

# every table entry whose rounds both backends share (theory/algorithms.py); the peers' rounds
# (round_end "blocks", sim only) are checked against their own event loop in tests/test_peers.py
ALGORITHMS = tuple(n for n in NAMES if algorithm_entry(n).round_end != "blocks")
N, M, b = 5, 4, 3
B = M * b


def _round(rng, algorithm):
    """A random round: A_t of size 2 with M blocks, stragglers with 0..M-1 (anytime: 0..M each)."""
    pi = rng.dirichlet(np.ones(N))
    if algorithm_entry(algorithm).round_end == "deadline":
        blocks = rng.integers(0, M + 1, N)
        fast = blocks == M
    else:
        fast = np.zeros(N, dtype=bool)
        fast[rng.choice(N, 2, replace=False)] = True
        blocks = np.where(fast, M, rng.integers(0, M, N))
    return pi, fast, blocks


@pytest.mark.parametrize("warmup", [False, True])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_local_weights_over_group_norms_are_the_plan(algorithm, warmup):
    """The dist worker's two steps give the sim plan's weights: per_sample[g][i] ==
    local_weight(g, i's own facts) / group_norms[g], for every group, worker and algorithm."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        pi, fast, blocks = _round(rng, algorithm)
        plan = round_plan(algorithm, fast, blocks, pi, B, b, warmup=warmup)
        groups = plan_groups(algorithm, warmup=warmup)
        assert set(plan.per_sample) <= set(groups)
        norms = group_norms(fast, blocks, pi)
        for g, per in plan.per_sample.items():
            local = np.array([local_weight(g, pi_i=pi[i], fast=bool(fast[i]), m=int(blocks[i]), batch_size=B,
                                           block_size=b) for i in range(N)])
            np.testing.assert_allclose(local / norms[g], per, rtol=1e-12, atol=0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_plan_weights_sum_to_one_per_group_and_counts_match(algorithm):
    """Each group's weights over its samples add up to 1 (a convex combination of the workers'
    means, eq. 3.1-3.5), and a worker contributes samples exactly when some group weights them."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        pi, fast, blocks = _round(rng, algorithm)
        plan = round_plan(algorithm, fast, blocks, pi, B, b, warmup=False)
        for g, per in plan.per_sample.items():
            total = float(np.sum(per * plan.counts))
            assert total == pytest.approx(1.0, rel=1e-12) or (g == "any" and blocks.sum() == 0 and total == 0)
        weighted = np.any([per > 0 for per in plan.per_sample.values()], axis=0)
        np.testing.assert_array_equal(plan.counts > 0, weighted)
        assert np.all(plan.counts % b == 0) and np.all(plan.counts <= B)


def test_lgc_without_reporting_stragglers_has_no_strag_group():
    pi = np.full(N, 1 / N)
    fast = np.array([1, 1, 0, 0, 0], dtype=bool)
    plan = round_plan("lgc", fast, [M, M, 0, 0, 0], pi, B, b, warmup=False)
    assert set(plan.per_sample) == {"fast"} and plan.rho == 0.0
    assert plan_groups("lgc", warmup=False) == ("fast", "strag")
    assert plan_groups("lgc", warmup=True) == ("all",)


def test_group_norms_hand_absent_workers_share_to_the_others():
    pi = np.array([0.1, 0.2, 0.3, 0.4])
    assert group_norms(np.ones(4, bool), [2] * 4, pi, absent=(1, 3))["all"] == pytest.approx(0.4)
    assert group_norms(np.ones(4, bool), [2] * 4, pi)["all"] == 1.0


# ----------------------------------------------------------------------------- replay
def _cfg(tmp_path, rounds, algorithm="lgc"):
    path = tmp_path / "s.csv"
    path.write_text(schedule_to_csv(rounds))
    return TrainConfig(algorithm=algorithm, n_workers=3, threshold_k=2, batch_size=4, blocks=2, rounds=2,
                       warmup_rounds=1, dataset="quadratic", schedule_file=str(path))


def _full(t):
    return RoundSchedule(t, (0, 1, 2), (2, 2, 2), 1.0, 1.0)


def test_load_replay_returns_one_schedule_per_round_in_order(tmp_path):
    rounds = [_full(0), RoundSchedule(1, (2, 0), (2, 1, 2), 1.0, 1.5)]
    cfg = _cfg(tmp_path, list(reversed(rounds)))  # file order does not matter
    assert load_replay(cfg) == rounds
    assert load_replay(TrainConfig(dataset="quadratic")) is None


@pytest.mark.parametrize("bad, message", [
    ([_full(0)], "lacks rounds"),
    ([_full(0), RoundSchedule(1, (2,), (2, 1, 2), 1.0, 1.5)], "K=1 fast workers, run has K=2"),
    ([_full(0), RoundSchedule(1, (2, 0), (2, 2, 2), 1.0, 1.5)], "straggler 1 has m=2"),
    ([RoundSchedule(0, (0, 1), (2, 2, 2), 1.0, 1.0), RoundSchedule(1, (2, 0), (2, 1, 2), 1.0, 1.5)],
     "round 0: straggler 2 has m=2"),  # warm-up rounds are checked too
])
def test_load_replay_rejects_a_schedule_the_run_cannot_use(tmp_path, bad, message):
    with pytest.raises(UserError, match=message):
        load_replay(_cfg(tmp_path, bad))


def test_load_replay_leaves_anytime_rounds_after_warmup_to_the_deadline(tmp_path):
    """Anytime-minibatch: any m_i in 0..M after warm-up (A_t is whoever finished M blocks)."""
    rounds = [_full(0), RoundSchedule(1, (1,), (0, 2, 1), 1.0, 1.0)]
    assert load_replay(_cfg(tmp_path, rounds, algorithm="anytime-minibatch")) == rounds


# ----------------------------------------------------------------------------- state, record
def test_run_state_survives_a_checkpoint_file_and_is_a_copy(tmp_path):
    st = RunState(w=torch.arange(4.0), server=ServerState(momentum=torch.ones(4)), rule=RuleState(u=None),
                  round=7, clock=3.25)
    ck = st.checkpoint()
    st.w += 1  # the checkpoint does not follow the live tensors
    save_checkpoint(tmp_path / "c.pt", ck)
    back = RunState.from_checkpoint(load_checkpoint(tmp_path / "c.pt"), "cpu")
    assert torch.equal(back.w, torch.arange(4.0)) and torch.equal(back.server.momentum, torch.ones(4))
    assert back.rule.u is None and back.round == 7 and back.clock == 3.25


def test_round_record_counts_straggler_blocks_or_all_blocks_for_anytime():
    s = RoundSchedule(4, (2, 0), (3, 1, 3, 0), 1.0, 1.5)
    common = dict(clock=9.0, samples=20, rho=0.25, loss=0.5, lr=0.1)
    row = round_record("lgc", False, s, **common)
    assert row["partial_blocks"] == 1 and row["n_fast"] == 2 and row["round_time"] == 1.5 and row["warmup"] == 0
    assert round_record("anytime-minibatch", False, s, **common)["partial_blocks"] == 7
    assert round_record("anytime-minibatch", True, s, **common)["partial_blocks"] == 1
    assert set(row) <= set(ROUND_FIELDS)
