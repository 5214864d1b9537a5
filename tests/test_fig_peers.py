"""fig_peers' "lgc (K auto)" line: the table row comes from a run that K auto actually drove
(the budget the figure states, the K the controller chose), and its time to target is the clock
of the first round whose trailing mean reaches eps, found here from an independent sim run."""
from __future__ import annotations

import math

import numpy as np

from lgc import runs
from lgc.config import TrainConfig
from lgc.sim import Simulator
from paper_figures import fig_peers as fig


def _reference(spread, timing, params, seed):
    """The same configuration run directly: per round the clock, K and ||grad F||^2."""
    cfg = TrainConfig(dataset="quadratic", rounds=fig.MAX_ROUNDS, eval_every=0, checkpoint_every=0, device="cpu",
                      **fig.SETTING, algorithm="lgc", k_auto=True, budget=fig.TAU, quad_spread=spread,
                      timing=timing, timing_params=params, seed=seed, data_seed=0)
    sim = Simulator(cfg)
    clock, k, g = [], [], []
    for _ in range(fig.MAX_ROUNDS):
        row = sim.step()
        clock.append(sim.clock)
        k.append(row["n_fast"])
        g.append(row["grad_norm2"])
        trailing = np.convolve(g, np.ones(fig.WINDOW) / fig.WINDOW, mode="valid")
        if trailing.size and trailing[-1] <= fig.SETTING["target_eps"]:
            break
    return clock, k, g, sim.k_control.history


def test_k_auto_row_is_its_run_with_the_stated_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "RESULTS_ROOT", tmp_path)
    monkeypatch.setattr(fig, "DATA", {"non-IID data": 1.0})
    monkeypatch.setattr(fig, "SPEEDS", {"heterogeneous speeds": fig.SPEEDS["heterogeneous speeds"]})
    monkeypatch.setattr(fig, "SEEDS", (0,))
    monkeypatch.setattr(fig, "METHODS", tuple(m for m in fig.METHODS if m[0] == "lgc (K auto)"))
    (row,) = fig.rows()
    assert (row["method"], row["algorithm"], row["K"], row["best"]) == ("lgc (K auto)", "lgc", "auto", True)

    timing, params = fig.SPEEDS["heterogeneous speeds"]
    clock, k, g, history = _reference(1.0, timing, params, 0)
    assert history and all(h["remaining"] == fig.TAU - h["clock"] for h in history)  # the controller's budget: TAU
    n = fig.SETTING["n_workers"]
    assert k[:10] == [n] * 10 and k[10] == history[0]["k"] != n  # measured at K = N, then the fitted K
    reached = len(g) >= fig.WINDOW and np.mean(g[-fig.WINDOW:]) <= fig.SETTING["target_eps"]
    assert row["reached"] == reached == math.isfinite(row["time"])
    assert row["rounds"] == len(g)
    assert row["time"] == clock[-1] if reached else row["time"] == math.inf
    path = [n] + [h["k"] for h in history]
    assert row["k_refits"] == ">".join(str(v) for j, v in enumerate(path) if j == 0 or v != path[j - 1])
    drawn = fig.draw([row])  # the figure draws a K-auto bar
    assert row["reference_scaling"] > 0 and "lower_bound" not in row
    labels = [t.get_text() for t in drawn.axes[0].get_legend().get_texts()]
    assert "reference scaling (constant 1)" in labels  # the T-R expression is drawn as a reference, not a floor
    assert not any("bound" in lab or "floor" in lab for lab in labels)
