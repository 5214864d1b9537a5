"""The trade-off picks each algorithm's tightest valid set model: fastest-K's bias from the inclusion
probabilities of A_t when the timing redraws the sets every round from a fixed law (eq. 4.11')."""
import numpy as np
from theory.set_models import independent_sets, inclusion_from_timing
from theory.tradeoff import Problem, tradeoff
from theory.timing import Deterministic, HeterogeneousSpeed, ShiftedExponential


def test_which_timings_give_independent_sets():
    assert independent_sets(HeterogeneousSpeed(hold="speed"), 5)  # speeds fixed for ever, noise fresh
    assert independent_sets(HeterogeneousSpeed(hold="times"), 1)
    assert not independent_sets(HeterogeneousSpeed(hold="times"), 5)  # times held for the period
    assert not independent_sets(HeterogeneousSpeed(hold="speed", slow_workers="random"), 5)  # slow set held
    assert not independent_sets(Deterministic(), 1)
    assert not independent_sets(ShiftedExponential(), 1)  # i.i.d.: the uniform set model, eq. (4.11)


def test_heterogeneous_fastest_k_bias_comes_from_inclusion_probabilities():
    """Half the workers 3x slower: A_t is mostly the fast half, so pi is far from uniform, but the
    bias N ||pi/K - 1/N||^2 zeta^2 stays below the worst case (N-K) zeta^2/K at every K < N; at
    K = N/2 (A_t mostly the fast half) it is a large part of it."""
    n = 8
    timing = HeterogeneousSpeed(slow_fraction=0.5, slowdown=3.0, hold="speed")
    prob = Problem(N=n, M=2, B=10, L=1.0, sigma2=1.0, zeta2=1.0, Delta=2.0, timing=timing, h=1)
    ind = tradeoff("fastest-k", prob, budget=200.0, rounds=400)
    per = tradeoff("fastest-k", prob, budget=200.0, rounds=400, set_model="persistent")
    ks = np.arange(1, n + 1)
    assert np.all(ind.terms["bias"][:-1] < per.terms["bias"][:-1]) and ind.terms["bias"][-1] == 0
    assert np.all(ind.bound <= per.bound + 1e-12)
    inc = inclusion_from_timing(timing, n, 2, 1, ks, rounds=2000)
    assert 0.5 * (n - 4) / 4 < inc["set_bias"][3] < (n - 4) / 4  # mostly, not always, the fast half
    assert inc["set_bias"][0] < 0.5 * (n - 1)  # K = 1: any of the fast half wins


def test_the_timing_model_answers_not_its_type():
    """independent_sets asks the model (TimingModel.sets_independent, theory/timing_model.py): a model
    that overrides the answer is believed, and a new non-i.i.d. model gets the base class's route."""
    from dataclasses import dataclass

    @dataclass
    class AlwaysIndependent(ShiftedExponential):
        iid: bool = False

        def sets_independent(self, h):
            return True

    @dataclass
    class FreshNonIid(ShiftedExponential):
        iid: bool = False

    assert independent_sets(AlwaysIndependent(), 5)
    assert independent_sets(FreshNonIid(), 1) and not independent_sets(FreshNonIid(), 5)


def test_no_caller_dispatches_on_the_timing_models_type():
    """Callers ask the model; only theory/timing.py (and the factory's name table) know the classes."""
    import re
    from pathlib import Path

    import theory.timing as tm
    root = Path(__file__).resolve().parents[1]
    classes = [n for n, c in vars(tm).items() if isinstance(c, type) and issubclass(c, tm.TimingModel)]
    classes += ["TraceReplay"]
    pattern = re.compile(r"(isinstance|issubclass)\([^)]*\b(" + "|".join(classes) + r")\b|type\([^)]*\)\s*(is|==)\s*("
                         + "|".join(classes) + r")\b")
    hits = [f"{p.relative_to(root)}:{i}" for pkg in ("lgc", "theory", "paper_figures")
            for p in sorted((root / pkg).rglob("*.py")) if p.name != "timing.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
