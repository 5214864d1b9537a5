"""A round kind is one registered object (theory/round_kinds.py): a kind defined here, outside the
package, runs in sim, gets its E[R] and is refused by dist through the registry alone."""
import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from lgc.config import TrainConfig
from lgc.errors import UserError
from lgc.sim import Simulator
from theory import algorithms, round_kinds
from theory.algorithms import algorithm
from theory.errors import TheoryInputError
from theory.order_stats import expected_round_times
from theory.schedule import RoundSchedule
from theory.timing import ShiftedExponential

ROOT = Path(__file__).resolve().parents[1]
BASE = dict(dataset="quadratic", n_workers=6, batch_size=4, blocks=4, rounds=7, warmup_rounds=2, lr=0.2,
            momentum=0.0, quad_dim=3, quad_sigma2=0.5, eval_every=0, checkpoint_every=0, device="cpu", seed=5)


class FirstTwo:
    """A toy kind: the round closes when the first two workers finish their mini-batches, whatever K;
    every other worker counts the blocks it finished by then (at most M - 1), as under abort (eq. 2.4)."""

    name = "first-two"
    waits_for_k = False
    counts_every_worker = False
    in_dist = False
    parameter = None

    def schedule(self, finish, ctx):
        x = finish[:, -1]
        order = np.argsort(x, kind="stable")  # ties: worker index
        t_cut = float(x[order[1]])
        blocks = np.minimum((finish <= t_cut).sum(axis=1), finish.shape[1] - 1)
        blocks[order[:2]] = finish.shape[1]
        s = RoundSchedule(round=ctx.round_index, fast=tuple(int(i) for i in order[:2]),
                          blocks_done=tuple(int(b) for b in blocks), t_cut=t_cut, wall=t_cut)
        reporting = int(np.count_nonzero(blocks[order[2:]] > 0))
        return s, ctx.entry.messages(2, reporting)

    def expected_round_times(self, q):
        mean = np.full(len(q.ks), float(q.model.expected_order_statistic(2, q.n)))  # E[X_(2:N)], any K
        return mean + q.comm.time(q.entry.messages(2, q.n - 2)), np.zeros(len(q.ks)), "toy"


@pytest.fixture
def lgc_first_two(monkeypatch):
    """Register FirstTwo in a copy of the registry, and give lgc's table entry round_end "first-two"
    (the line a new kind's algorithm would have in theory/algorithms.py); both undone after the test."""
    monkeypatch.setattr(round_kinds, "_KINDS", dict(round_kinds._KINDS))
    kind = round_kinds.register_round_kind(FirstTwo())
    monkeypatch.setitem(algorithms._BY_NAME, "lgc", dataclasses.replace(algorithm("lgc"), round_end="first-two"))
    return kind


def _run(**kw):
    sim = Simulator(TrainConfig(**BASE, algorithm="lgc", **kw))
    rows = [sim.step() for _ in range(BASE["rounds"])]
    return sim, rows


def test_a_registered_kind_runs_in_sim(lgc_first_two):
    """lgc whose rounds end at the first two workers, at K = 5, is lgc at K = 2: the same schedules,
    records and iterates, though the simulator was never told about the new kind."""
    assert algorithm("lgc").round_kind is lgc_first_two and not algorithm("lgc").waits_for_k
    toy, toy_rows = _run(threshold_k=5)
    toy_schedules, toy_w = list(toy.schedules), toy.w.clone()
    algorithms._BY_NAME["lgc"] = dataclasses.replace(algorithm("lgc"), round_end="k")
    ref, ref_rows = _run(threshold_k=2)
    assert [(s.fast, s.blocks_done, s.t_cut, s.wall) for s in toy_schedules] == \
           [(s.fast, s.blocks_done, s.t_cut, s.wall) for s in ref.schedules]
    assert any(0 < b < BASE["blocks"] for s in toy_schedules[2:] for b in s.blocks_done)  # partial work was used
    keys = ("time", "n_fast", "partial_blocks", "samples", "rho", "loss")
    assert [{k: r[k] for k in keys} for r in toy_rows] == [{k: r[k] for k in keys} for r in ref_rows]
    assert torch.equal(toy_w, ref.w)


def test_a_registered_kind_gives_its_expected_round_time(lgc_first_two):
    """order_stats asks the kind: E[R] = E[X_(2:N)] = shift + (H_N - H_{N-2}) / rate (eq. 2.7) for every K."""
    model, n = ShiftedExponential(shift=1.0, rate=2.0), 6
    rt = expected_round_times(model, n, 4, "lgc", ks=[2, 3, 5], rounds=4)
    assert rt.method == "toy"
    np.testing.assert_allclose(rt.mean, 1.0 + (1 / 6 + 1 / 5) / 2.0, rtol=1e-9)


def test_dist_refuses_a_kind_it_does_not_run(lgc_first_two, tmp_path):
    from lgc.dist.run import run_dist

    with pytest.raises(UserError, match=r"algorithm=lgc \(round_end 'first-two'\) runs in the sim backend only"):
        run_dist(TrainConfig(**BASE, algorithm="lgc", threshold_k=3), root=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before a run directory exists


def test_the_registry_refuses_what_is_not_a_new_kind(monkeypatch):
    monkeypatch.setattr(round_kinds, "_KINDS", dict(round_kinds._KINDS))
    with pytest.raises(TheoryInputError, match="round_end='k' is already registered"):
        round_kinds.register_round_kind(round_kinds.KthFastest("k", waits_for_k=True))
    with pytest.raises(TheoryInputError, match="is not a RoundKind"):
        round_kinds.register_round_kind(object())
    with pytest.raises(TheoryInputError, match="round_end='first-two' must be one of all, k, deadline, blocks"):
        dataclasses.replace(algorithm("lgc"), round_end="first-two")


# The modules that once branched on a round_end value must read the kind instead
READERS = ("lgc/sim/simulator.py", "theory/order_stats.py", "lgc/dist/run.py", "lgc/protocol/plan.py")


def _round_end_comparisons(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Attribute) and side.attr == "round_end":
                    yield node.lineno


@pytest.mark.parametrize("src, hits", [("ok = entry.round_end == 'blocks'", 1), ("ok = 'k' != a.round_end", 1),
                                       ("ok = entry.round_kind.in_dist", 0)])
def test_the_round_end_scan_can_fail(src, hits):
    assert len(list(_round_end_comparisons(ast.parse(src)))) == hits


def test_sim_order_stats_and_dist_read_the_kind():
    found = [f"{rel}:{line}" for rel in READERS
             for line in _round_end_comparisons(ast.parse((ROOT / rel).read_text()))]
    assert not found, f"round_end compared by value (read theory.round_kinds' kind instead): {found}"
