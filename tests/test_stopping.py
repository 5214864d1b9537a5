"""lgc/dist/stopping.py: when a dist worker stops its round, decided without processes.

The end-to-end checks (dist = sim on replayed schedules, measured rounds under each semantics)
are tests/test_dist_replay.py, tests/test_dist_arrival.py and tests/test_semantics.py; here each
decision of RoundStop is pinned with a stand-in coordinator and block times already past."""
import time
from types import SimpleNamespace

import numpy as np
import pytest

from lgc.dist.stopping import RoundStop, Stop
from theory.schedule import RoundSchedule

M = 4


class Coord:
    """The round closes (or not) while a block is in flight / between blocks; arrival position `pos`."""

    def __init__(self, closes=False, pos=1):
        self.closes, self.pos, self.arrived = closes, pos, []

    def wait_closed(self, t, timeout):
        return self.closes

    def closed(self, t):
        return self.closes

    def arrive(self, t, k):
        self.arrived.append((t, k))
        return self.pos


def settings(algorithm="lgc", semantics="abort", deadline=None, warmup=0):
    s = SimpleNamespace(algorithm=algorithm, semantics=semantics, deadline=deadline, blocks=M, unit_s=0.001,
                        warmup_rounds=warmup)
    s.is_full_round = lambda t: t < warmup or algorithm == "full-sync"
    return s


def rule(coord, *, finish=None, replay=None, k=2, **kw):
    return RoundStop.for_round(settings(**kw), 0, 1, k=k, replay=replay, finish=finish, coord=coord)


PAST = np.full(M, -1.0)  # injected finish times already reached: nothing sleeps


def test_abort_drops_the_block_in_flight_at_the_cutoff():
    r = rule(Coord(closes=True), finish=PAST)
    closed, target = r.wait_block(1, time.perf_counter())
    assert closed and r.after_block(2, closed, target, 0.0) == Stop(1, dropped=True)


@pytest.mark.parametrize("algorithm, waits", [("lgc", False), ("lgc-fresh", True)])
def test_boundary_counts_the_block_in_flight_and_only_lgc_fresh_waits_for_it(algorithm, waits):
    r = rule(Coord(closes=True), finish=PAST, algorithm=algorithm, semantics="boundary")
    target = time.perf_counter() - 1.0
    stop = r.after_block(2, True, target, 0.0)
    assert stop.m_rep == 2 and not stop.dropped and stop.block_end == target
    assert (stop.busy_until is None) == waits  # lgc finishes it in the next round (eq. 2.3')
    assert r.after_block(M, True, target, 0.0).m_rep == M - 1  # at most M-1 blocks count


def test_between_blocks_a_closed_round_stops_the_worker_by_semantics():
    for semantics, m_rep in (("abort", 1), ("boundary", 2)):
        assert rule(Coord(closes=True), semantics=semantics).after_block(2, False, None, 0.0) == Stop(m_rep)
    assert rule(Coord(closes=False)).after_block(2, False, None, 0.0) is None
    assert rule(Coord(closes=True)).after_block(M, False, None, 0.0) is None  # all done: it arrives instead


def test_arrival_after_the_kth_reports_m_minus_one_and_a_replay_follows_its_file():
    coord = Coord(pos=3)
    assert rule(coord, k=2).arrive()[:2] == (3, M - 1) and coord.arrived == [(0, 2)]
    assert rule(Coord(pos=2), k=2).arrive()[:2] == (2, M)
    sched = RoundSchedule(round=0, fast=(0, 2), blocks_done=(M, 3, M), t_cut=1.0, wall=1.0)
    r = rule(Coord(closes=True), replay=[sched])
    assert r.planned == 3 and r.arrive() == (0, M, None)  # no store, no arrival: the file decides
    assert r.after_block(2, False, None, 0.0) is None  # nor does a closed key


def test_anytime_minibatch_deadline():
    # injected times: a block that would end after the deadline is not started
    r = rule(Coord(), finish=np.array([1.0, 2.0, 5.0, 6.0]) * 0.001, algorithm="anytime-minibatch", deadline=3.0)
    assert [r.stops_before(m, 0.0) for m in range(M)] == [False, False, True, True]
    # real block times: a block that ends after the deadline does not count; none starts after it
    r = rule(Coord(), algorithm="anytime-minibatch", deadline=3.0)
    assert r.after_block(2, False, None, 0.004) == Stop(1) and r.after_block(2, False, None, 0.002) is None
    assert r.stops_before(2, 0.003) and not r.stops_before(2, 0.002)
    assert rule(Coord(pos=5), algorithm="anytime-minibatch", deadline=3.0).arrive()[1] == M  # all M by the deadline
    assert not rule(Coord(), algorithm="lgc", deadline=3.0).stops_before(0, 1e9)  # no deadline for lgc


def test_warmup_rounds_wait_for_every_worker():
    r = rule(Coord(closes=True, pos=4), warmup=1, k=4)
    assert r.after_block(2, False, None, 0.0) is None  # a full round is never closed early
    assert r.arrive()[:2] == (4, M)
