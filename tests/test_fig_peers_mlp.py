"""fig_peers_mlp: the target is the stated rule applied to full-sync's own runs, and a method's row
is the clock of the first evaluation of its run that reaches that target, found here from an
independent sim run (shortened: 30 rounds, one seed, one cell)."""
from __future__ import annotations

import math

import pytest

from lgc import runs
from lgc.config import TrainConfig
from lgc.sim import Simulator
from paper_figures import fig_peers_mlp as fig

pytestmark = pytest.mark.usefixtures("one_thread")


def _evals(alg, extra, seed):
    """(round, clock, test loss) at every evaluation of the configuration run directly."""
    timing, params = fig.SPEEDS["heterogeneous speeds"]
    sim = Simulator(TrainConfig(rounds=fig.MAX_ROUNDS, eval_every=fig.EVAL_EVERY, checkpoint_every=0, device="cpu",
                                **fig.SETTING, algorithm=alg, **extra, partition="main-label", timing=timing,
                                timing_params=params, seed=seed, data_seed=0))
    out = []
    for t in range(fig.MAX_ROUNDS):
        row = sim.step()
        if "test_loss" in row:
            out.append((t + 1, sim.clock, float(row["test_loss"])))
    return out


def test_mlp_rows_are_their_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "RESULTS_ROOT", tmp_path)
    monkeypatch.setattr(fig, "MAX_ROUNDS", 30)
    monkeypatch.setattr(fig, "SHARE", 0.5)
    monkeypatch.setattr(fig, "DATA", {"non-IID data": "main-label"})
    monkeypatch.setattr(fig, "SPEEDS", {"heterogeneous speeds": fig.SPEEDS["heterogeneous speeds"]})
    monkeypatch.setattr(fig, "SEEDS", (0,))
    monkeypatch.setattr(fig, "METHODS", tuple(m for m in fig.METHODS if m[0] in ("full-sync", "rennala")))
    data = fig.rows()
    assert [(r["method"], r["S"]) for r in data] == [("full-sync", "")] + [("rennala", s) for s in (10, 20)]

    full = _evals("full-sync", {"threshold_k": 10}, 0)
    lowest = min(e[2] for e in full)
    target = math.log(10) - 0.5 * (math.log(10) - lowest)
    assert all(r["target_test_loss"] == target for r in data)  # the rule, on full-sync's run
    first = next(e for e in full if e[2] <= target)
    assert (data[0]["rounds"], data[0]["time"]) == (first[0], first[1])  # full-sync against its own target

    for r in data[1:]:
        ev = _evals("rennala", {"peer_s": r["S"]}, 0)
        hit = next((e for e in ev if e[2] <= target), None)
        assert r["reached"] == (hit is not None)
        assert (r["rounds"], r["time"]) == ((hit[0], hit[1]) if hit else (30, math.inf))
    assert sum(r["best"] for r in data[1:]) == 1
    assert min(r["time"] for r in data[1:]) == next(r["time"] for r in data[1:] if r["best"])
    assert data[0]["eps"] > 0 and data[0]["reference_scaling"] > 0
    assert fig.fig_peers.draw(data)
