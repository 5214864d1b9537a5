"""theory/schedule.py: the round schedule (eqs. 2.1-2.6) that sim, dist and the theory share."""
import numpy as np
import pytest

from theory.errors import TheoryInputError
from theory.schedule import (
    RoundSchedule, arrival_order, check_schedule, comm_time, schedule_deadline, schedule_from_csv, schedule_round, schedule_to_csv,
)
from theory.timing_model import even_split_finish_times

X = np.array([2.0, 1.0, 4.0, 3.0, 1.5])  # mini-batch times; arrival order 1, 4, 0, 3, 2
M = 4


def test_fast_set_is_the_k_fastest_in_arrival_order_and_t_cut_the_kth_time():
    s = schedule_round(even_split_finish_times(X, M), 2)
    assert s.fast == (1, 4) and s.t_cut == 1.5 and s.fast_mask().tolist() == [False, True, False, False, True]
    assert all(s.blocks_done[i] == M for i in s.fast)


@pytest.mark.parametrize("ties", [False, True])
def test_arrival_order_breaks_ties_by_worker_index(ties):
    """eq. (2.1): sorted by time, equal times by index: the stable sort's permutation, with and without ties (the
    default sort, taken where no two times are equal, reorders equal ones; 2000 workers, 5 distinct times)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 2000).astype(float) if ties else rng.exponential(size=2000)
    order = arrival_order(x)
    np.testing.assert_array_equal(order, np.argsort(x, kind="stable"))
    assert not ties or not np.array_equal(np.argsort(x), order)  # the case the tie check exists for


def test_boundary_semantics_finish_the_block_in_flight_without_waiting_for_it():
    """eq. (2.3), t_cut = 1.5: worker 3 (X=3, blocks end at 0.75, 1.5, 2.25, 3) has 2 done and
    finishes its 3rd at 2.25; worker 0 (X=2) has 3 done, reports at most M - 1 = 3 (its 4th
    block, done at 2.0, can never count); worker 2 (X=4) has 1 done and finishes its 2nd at 2.0.
    The round still closes at t_cut; each straggler starts the next round late by its overrun
    (eq. 2.3'). lgc-fresh waits for the blocks it counts (worker 3's 3rd), not for worker 0's 4th."""
    s = schedule_round(even_split_finish_times(X, M), 2, semantics="boundary")
    assert s.blocks_done == (3, M, 2, 3, M)
    assert s.wall == s.t_cut == 1.5
    assert s.busy == (2.0, 1.0, 2.0, 2.25, 1.5) and s.next_start().tolist() == [0.5, 0.0, 0.5, 0.75, 0.0]
    fresh = schedule_round(even_split_finish_times(X, M), 2, semantics="boundary", wait_reports=True)
    assert fresh.blocks_done == s.blocks_done and fresh.wall == 2.25 and fresh.next_start().tolist() == [0.0] * 5


def test_abort_semantics_count_only_blocks_done_by_t_cut_and_close_at_it():
    s = schedule_round(even_split_finish_times(X, M), 2, semantics="abort")  # eq. (2.4)
    assert s.blocks_done == (3, M, 1, 2, M) and s.wall == s.t_cut == 1.5  # 3 done, capped at M - 1


def test_k_equal_n_is_full_sync_every_worker_fast_and_the_round_is_the_slowest():
    s = schedule_round(even_split_finish_times(X, M), len(X))
    assert sorted(s.fast) == list(range(5)) and s.wall == s.t_cut == X.max()


def test_ties_go_to_the_lower_worker_index():
    s = schedule_round(even_split_finish_times(np.array([1.0, 1.0, 1.0]), 2), 1)
    assert s.fast == (0,)


def test_deadline_counts_every_block_finished_by_it():
    s = schedule_deadline(even_split_finish_times(X, M), 2.0, comm=0.5)  # eq. (2.6)
    assert s.blocks_done == (4, 4, 2, 2, 4) and s.fast == (1, 4, 0) and s.wall == 2.5 and s.t_cut == 2.0


def test_comm_time_is_eq_2_5_for_counts_and_arrays():
    assert comm_time(0.0, 0.0, 100.0, 7) == 0.0
    assert comm_time(0.5, 0.01, 100.0, 3) == pytest.approx(0.5 + 0.01 * 100.0 * 3)
    np.testing.assert_allclose(comm_time(0.5, 0.01, 100.0, np.array([1.0, 2.0])), [1.5, 2.5])


def test_schedule_file_round_trips_exactly():
    rounds = [schedule_round(even_split_finish_times(X * (1 + t / 7), M), 3, round_index=t, comm=0.1 * t)
              for t in range(3)]
    assert schedule_from_csv(schedule_to_csv(rounds)) == rounds


def test_schedule_files_of_versions_1_and_2_are_still_read():
    """v1 and v2 named the per-worker block counts `blocks`; v3 names them `blocks_done` (README,
    File formats). Files written by older runs replay unchanged."""
    v1 = "# lgc schedule v1\nround,fast,blocks,t_cut,wall,comm\n0,1 3,3 4 1 4,1.5,2.0,0.25\n"
    v2 = "# lgc schedule v2\nround,fast,blocks,t_cut,wall,comm,start,busy\n0,1 3,3 4 1 4,1.5,2.0,0.25,,\n"
    expected = RoundSchedule(round=0, fast=(1, 3), blocks_done=(3, 4, 1, 4), t_cut=1.5, wall=2.0, comm=0.25)
    assert schedule_from_csv(v1) == schedule_from_csv(v2) == [expected]
    text = schedule_to_csv([expected])
    assert text.splitlines()[:2] == ["# lgc schedule v3", "round,fast,blocks_done,t_cut,wall,comm,start,busy"]
    assert schedule_from_csv(text) == [expected]


def test_schedule_file_errors_name_the_line_and_the_round():
    text = schedule_to_csv([schedule_round(even_split_finish_times(X, M), 2)])
    with pytest.raises(TheoryInputError, match="malformed row 2"):
        schedule_from_csv(text.replace("1.5", "x", 1))
    with pytest.raises(TheoryInputError, match="header must be round,fast"):
        schedule_from_csv("round,fast\n0,1\n")


def test_check_schedule_rejects_a_replay_of_another_run():
    s = RoundSchedule(round=3, fast=(0,), blocks_done=(M, 1, 0), t_cut=1.0, wall=1.0)
    check_schedule(s, 3, M)
    with pytest.raises(TheoryInputError, match="round 3 has 3 workers, run has N=4"):
        check_schedule(s, 4, M)
    with pytest.raises(TheoryInputError, match="fast worker 0 has 4 blocks, expected M=5"):
        check_schedule(s, 3, 5)
