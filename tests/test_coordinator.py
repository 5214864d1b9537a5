"""The store protocol of a dist round (lgc.dist.coordinator), without process groups: arrival
positions, the K-th arrival closing the round, liveness stamps and the watchdog's suspects."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from torch.distributed import HashStore, TCPStore

from lgc.dist.coordinator import RoundCoordinator, read_errors, read_int, read_status, suspects


def _tcp_master():
    return TCPStore("127.0.0.1", 0, world_size=None, is_master=True, timeout=timedelta(seconds=10))


def _client(master):
    return TCPStore("127.0.0.1", master.port, world_size=None, is_master=False, timeout=timedelta(seconds=10))


def test_arrival_positions_follow_call_order_and_the_kth_closes_the_round():
    store = HashStore()
    coords = [RoundCoordinator(store, r, 4) for r in range(4)]
    assert not coords[0].closed(0)
    assert coords[2].arrive(0, k=2) == 1 and not coords[0].closed(0)
    assert coords[0].arrive(0, k=2) == 2 and coords[3].closed(0)
    assert store.get("lgc/r0/closed").decode() == "0"  # the K-th finisher's rank
    assert coords[1].arrive(0, k=2) == 3  # a straggler that finished all M blocks late
    assert not coords[0].closed(1)  # rounds are independent


def test_concurrent_arrivals_get_distinct_positions_and_one_closer():
    """TCPStore `add` is atomic: N workers arriving at once get positions 1..N, and exactly the
    one with position K marks the round closed."""
    master = _tcp_master()
    n, k = 6, 3
    positions = {}
    start = threading.Barrier(n)

    def worker(rank):
        coord = RoundCoordinator(_client(master), rank, n)
        start.wait()
        positions[rank] = coord.arrive(5, k)

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(positions.values()) == list(range(1, n + 1))
    closer = next(r for r, p in positions.items() if p == k)
    assert master.get("lgc/r5/closed").decode() == str(closer)


def test_wait_closed_wakes_when_the_round_closes_and_reports_a_timeout():
    store = HashStore()
    waiter, closer = RoundCoordinator(store, 0, 2), RoundCoordinator(store, 1, 2)
    assert waiter.wait_closed(0, 0.02) is False
    t = threading.Timer(0.05, lambda: closer.arrive(0, k=1))
    t.start()
    assert waiter.wait_closed(0, 30.0) is True
    t.join()


def test_forget_drops_a_round_so_its_counter_starts_again():
    store = HashStore()
    c = RoundCoordinator(store, 0, 2)
    c.arrive(3, k=1)
    c.forget(3)
    assert not c.closed(3)
    assert c.arrive(3, k=2) == 1


def test_prefixes_keep_runs_on_one_store_apart():
    store = HashStore()
    a, b = RoundCoordinator(store, 0, 2, prefix="lgc/run-a"), RoundCoordinator(store, 0, 2, prefix="lgc/run-b")
    assert a.arrive(0, k=1) == 1 and a.closed(0)
    assert not b.closed(0) and b.arrive(0, k=1) == 1


def test_errors_and_integer_keys_read_back_with_defaults_for_missing_ones():
    store = HashStore()
    RoundCoordinator(store, 2, 3).report_error("worker 2: out of memory")
    assert read_errors(store, range(3)) == {2: "worker 2: out of memory"}
    store.set("lgc/x", "17")
    assert read_int(store, "lgc/x") == 17 and read_int(store, "lgc/missing", default=-5) == -5
    assert read_status(store, 2) == [(-1.0, -1, -1, -1)] * 2


def test_keepalive_publishes_the_workers_status():
    master = _tcp_master()
    coord = RoundCoordinator(_client(master), 1, 2)
    coord.heartbeat(4)
    coord.reported(3)
    coord.start_keepalive("127.0.0.1", master.port, every_s=0.01)
    give_up = time.monotonic() + 30
    while read_status(master, 2)[1][1] != 4:
        assert time.monotonic() < give_up, "no keep-alive stamp"
        time.sleep(0.01)
    stamp, started, reported, completed = read_status(master, 2)[1]
    assert (started, reported, completed) == (4, 3, -1) and stamp > 0
    assert read_status(master, 2)[0] == (-1.0, -1, -1, -1)  # rank 0 never stamped
    del coord, master  # the store goes away: the keep-alive thread ends
    while any(t.name == "lgc-keepalive-1" for t in threading.enumerate()):
        assert time.monotonic() < give_up, "keep-alive thread outlived its store"
        time.sleep(0.01)


@pytest.mark.parametrize("status, expected", [
    # (stamp, round started, round reported, rounds completed); now = 100
    ([(99.9, 5, 5, 5), (90.0, 5, 4, -1), (99.9, 5, 4, -1)], [1]),  # a stale stamp: frozen, named first
    ([(99.9, 5, 5, 5), (99.9, 5, 4, -1), (99.9, 5, 5, -1)], [1]),  # alive, but has not reported round 5
    ([(99.9, 6, 6, 5), (99.9, 5, 5, -1), (99.9, 6, 5, -1)], [1, 2]),  # not started / not reported round 6
    ([(-1.0, -1, -1, -1), (99.9, 2, 2, -1)], [0]),  # never stamped: behind the others
])
def test_suspects_name_frozen_workers_first_else_the_ones_behind(status, expected):
    assert suspects(status, now=100.0, stale_s=2.0) == expected
