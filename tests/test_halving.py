"""lgc.halving: the successive-halving plan and its run over arms with seeds as the resource."""
import math

import pytest

from lgc.halving import Rung, plan, score, successive_halving


def test_plan_halves_the_arms_and_doubles_the_seeds_until_every_seed():
    assert plan(8, 4) == (Rung(8, 1), Rung(4, 2), Rung(2, 4))
    assert plan(10, 3) == (Rung(10, 1), Rung(5, 2), Rung(3, 3))  # seeds capped at S, arms rounded up
    assert plan(9, 9, reduction=3) == (Rung(9, 1), Rung(3, 3), Rung(1, 9))
    assert plan(6, 8, reduction=2, min_seeds=2) == (Rung(6, 2), Rung(3, 4), Rung(2, 8))
    assert plan(2, 8) == (Rung(2, 1), Rung(1, 8))  # one arm left: it gets every seed at once
    assert plan(7, 3, halving=False) == (Rung(7, 3),)
    with pytest.raises(ValueError):
        plan(4, 3, reduction=1)
    with pytest.raises(ValueError):
        plan(4, 3, min_seeds=4)


def test_the_best_arm_survives_and_every_measurement_happens_once():
    true = {1: 5.0, 2: 3.0, 3: 1.0, 4: 2.0, 5: 4.0, 6: 6.0, 7: 7.0, 8: 8.0}
    calls = []

    def measure(arm, seed):
        calls.append((arm, seed))
        return true[arm] + 0.01 * seed  # seeds move every arm alike: the ranking is the true one

    h = successive_halving(list(true), [0, 1, 2, 3], measure)
    assert h.best == 3
    assert len(calls) == len(set(calls)) == 8 * 1 + 4 * 1 + 2 * 2  # earlier seeds reused, never measured twice
    assert {a for a, r in h.last_rung.items() if r >= 1} == {2, 3, 4, 5}  # the best 4 of rung 0 reached rung 1
    assert set(h.values[3]) == {0, 1, 2, 3} and set(h.values[8]) == {0}
    assert {a for a, r in h.last_rung.items() if r == 2} == {3, 4}  # the best 2 of those 4


def test_no_halving_measures_every_arm_at_every_seed():
    h = successive_halving([1, 2, 3], [0, 1, 2], lambda a, s: (a - 2) ** 2 + s, halving=False)
    assert all(set(v) == {0, 1, 2} for v in h.values.values())
    assert h.best == 2


def test_a_diverged_arm_ranks_last_and_ties_go_to_the_earlier_arm():
    assert score([1.0, float("nan")]) == math.inf and score([1.0, 3.0]) == 2.0
    h = successive_halving([1, 2, 3, 4], [0, 1], lambda a, s: float("nan") if a == 1 else 1.0)
    assert h.last_rung[1] == 0 and h.best == 2  # arms 2..4 tie: the earliest wins
    with pytest.raises(ValueError):
        successive_halving([1, 1], [0], lambda a, s: 0.0)
