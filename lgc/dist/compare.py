"""Measured against modelled round times of a finished `dist` run (benchmark and figure 7).

For each round t the model's schedule is theory.schedule.schedule_round (schedule_deadline
for anytime-minibatch) on the timing model's block finish times for the run's seed (what
`sim` would compute, same semantics, K = N in warm-up and full-sync rounds, the start offsets
chained from round to round under boundary semantics, eq. 2.3'); the measured one is the run's schedule.csv (arrival order,
wall = measured R_t). Both in time units; one unit = the run's unit_ms.

    overhead_t = (measured R_t - modelled R_t) / measured R_t
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from theory.algorithms import algorithm as algorithm_entry
from theory.schedule import schedule_deadline, schedule_from_csv, schedule_round


def round_comparison(run_path: str | Path) -> list[dict]:
    """One row per round: round, measured_s, modelled_s, overhead, same_fast, same_blocks."""
    from lgc.config import TrainConfig
    from lgc.protocol import anytime_deadline, make_timing

    run_path = Path(run_path)
    key = json.loads((run_path / "config.json").read_text())
    opts = key.pop("dist")
    key.pop("theory", None)  # the record of the bounds' assumptions, not a config key
    cfg = TrainConfig(**key)
    timing = make_timing(cfg)
    unit_s = float(opts["unit_ms"]) / 1000.0
    deadline = anytime_deadline(cfg.resolved(), timing)
    measured = schedule_from_csv((run_path / "schedule.csv").read_text(), source=str(run_path / "schedule.csv"))
    rows = []
    start = None
    for s in measured:
        t = s.round
        full = t < cfg.warmup_rounds or algorithm_entry(cfg.algorithm).round_end == "all"
        k = cfg.n_workers if full else (len(s.fast) if cfg.k_auto else cfg.threshold_k)  # --k auto: the round's K
        finish = timing.block_finish_times(cfg.seed, t, cfg.n_workers, cfg.blocks, period=cfg.straggling_period)
        if algorithm_entry(cfg.algorithm).round_end == "deadline" and not full:
            model = schedule_deadline(finish, deadline, round_index=t)
        else:
            model = schedule_round(finish, k, semantics=cfg.semantics, round_index=t, start=start,
                                   wait_reports=algorithm_entry(cfg.algorithm).waits_for_reports)
        start = model.next_start()
        meas_s, mod_s = s.wall * unit_s, model.wall * unit_s
        rows.append({
            "round": t, "warmup": int(t < cfg.warmup_rounds), "measured_s": meas_s, "modelled_s": mod_s,
            "overhead": (meas_s - mod_s) / meas_s if meas_s > 0 else float("nan"),
            "same_fast": int(set(s.fast) == set(model.fast)), "same_blocks": int(tuple(s.blocks_done) == tuple(model.blocks_done)),
        })
    return rows


def summary(rows: list[dict]) -> dict:
    ov = np.array([r["overhead"] for r in rows])
    meas = np.array([r["measured_s"] for r in rows])
    mod = np.array([r["modelled_s"] for r in rows])
    return {
        "rounds": len(rows), "mean_measured_ms": 1e3 * float(meas.mean()), "mean_modelled_ms": 1e3 * float(mod.mean()),
        "overhead_mean": float(ov.mean()), "overhead_median": float(np.median(ov)),
        "overhead_p90": float(np.quantile(ov, 0.9)), "overhead_of_totals": float((meas.sum() - mod.sum()) / meas.sum()),
        "same_fast_frac": float(np.mean([r["same_fast"] for r in rows])),
        "same_blocks_frac": float(np.mean([r["same_blocks"] for r in rows])),
    }
