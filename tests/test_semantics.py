"""One physical model of a round (theory/DERIVATION.md eqs. 2.3, 2.3', 2.4): `sim` follows
the theory's Monte Carlo chain draw for draw, and the carry-over is visible in the schedule
file it writes and replays."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lgc.config import TrainConfig
from lgc.sim import Simulator
from theory.order_stats import round_stats
from theory.schedule import schedule_from_csv, schedule_to_csv

BASE = dict(dataset="quadratic", n_workers=6, threshold_k=2, batch_size=8, blocks=4, rounds=40, lr=0.1,
            quad_dim=4, warmup_rounds=0, momentum=0.0, eval_every=0, seed=7, device="cpu")


def _run(cfg: TrainConfig, schedule=None) -> Simulator:
    sim = Simulator(cfg, schedule=schedule)
    for _ in range(cfg.rounds):
        sim.step()
    return sim


@pytest.mark.parametrize("semantics,algorithm,period", [
    ("abort", "fastest-k", 1), ("abort", "lgc-fresh", 1),
    ("boundary", "fastest-k", 1), ("boundary", "lgc", 3), ("boundary", "lgc-fresh", 1)])
def test_sim_schedule_is_the_theory_monte_carlo_chain(semantics, algorithm, period):
    """Same seed, K, h: round_stats' per-round draws are sim's rounds (its means equal sim's to
    rounding), so E[R] and E[m_j] describe exactly what sim runs."""
    cfg = TrainConfig(algorithm=algorithm, semantics=semantics, straggling_period=period, **BASE)
    sim = _run(cfg)
    st = round_stats(sim.timing, cfg.n_workers, cfg.blocks, semantics=semantics, ks=[cfg.threshold_k],
                     rounds=cfg.rounds, seed=cfg.seed, period=period, wait_reports=algorithm == "lgc-fresh")
    fast = [s.fast_mask() for s in sim.schedules]
    m = np.array([np.asarray(s.blocks_done)[~f] for s, f in zip(sim.schedules, fast)])
    assert st.wall[0] == pytest.approx(np.mean([s.wall for s in sim.schedules]), rel=1e-12)
    assert st.t_cut[0] == pytest.approx(np.mean([s.t_cut for s in sim.schedules]), rel=1e-12)
    assert st.m_mean[0] == pytest.approx(m.mean(), rel=1e-12)
    assert st.zero_frac[0] == pytest.approx(np.mean(m == 0), rel=1e-12, abs=1e-15)
    starts = np.array([s.starts() for s in sim.schedules])
    assert (starts.max() > 0) == (semantics == "boundary")  # only boundary carries work over


def test_carry_over_is_visible_in_a_replayed_schedule(tmp_path):
    """A worker's late start in round t+1 equals its overrun past R_t in round t, in the file
    sim writes; replaying that file reproduces the run (parameters and the schedule, start and
    busy included)."""
    cfg = TrainConfig(algorithm="lgc", semantics="boundary", **BASE)
    sim = _run(cfg)
    text = schedule_to_csv(sim.schedules)
    assert text.startswith("# lgc schedule v3\n")
    sched = schedule_from_csv(text)
    late = 0
    for prev, cur in zip(sched, sched[1:]):
        overrun = np.asarray(prev.busy) - prev.wall
        assert np.array_equal(cur.starts(), np.maximum(overrun, 0.0))
        late += int(np.sum(overrun > 0))
        assert not set(np.flatnonzero(overrun > 0)) & set(prev.fast)  # only stragglers run over
    assert late >= 5
    assert all(s.wall == s.t_cut for s in sched)  # lgc never waits past the cutoff (comm = 0)
    path = tmp_path / "schedule.csv"
    path.write_text(text)
    replayed = _run(dataclasses.replace(cfg, schedule_file=str(path)))
    assert torch.equal(replayed.w, sim.w)
    assert schedule_from_csv(schedule_to_csv(replayed.schedules)) == sched


def test_schedule_file_version_1_is_still_read():
    v1 = "# lgc schedule v1\nround,fast,blocks,t_cut,wall,comm\n0,1 0,4 4 2,1.5,1.5,0.0\n"
    (s,) = schedule_from_csv(v1)
    assert s.fast == (1, 0) and s.blocks_done == (4, 4, 2) and s.start == () and not s.next_start().any()
