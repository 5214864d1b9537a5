"""Rank 0's run directory for `dist`: per-round records, the realised schedule, the block trace
and the checkpoint, all written atomically through lgc.runs (README "File formats";
docs/DIST.md "Files").

Files (beside config.json and meta.json written by lgc.runs.start_run):
    rounds.csv     lgc.protocol's schema (ROUND_FIELDS); `round_time` is the measured R_t in time units
                   (wall_s / unit), `time` their running sum
    schedule.csv   the realised schedule (theory.schedule format; A_t in arrival order, t_cut
                   the K-th arrival, wall the measured R_t, in time units): replayable by `sim`
    trace.csv      round,worker,block,start_s,end_s: every processed block, seconds from the
                   worker's round start (blocks a straggler computed but did not report
                   included; a late start shows as block 0's start_s > 0, and under boundary
                   semantics a straggler's block in flight ends after the round closed); the
                   trace timing model replays it
    refits.csv     --k auto only: every refit (lgc.protocol.refit_rows)
    checkpoint.pt  lgc.protocol.RunState (w_t, momentum, u_{t-1}, round, clock), the dead
                   workers and the --k auto state (lgc.checkpoint: weights_only loading)

The CSVs are written before the checkpoint, and a resumed run keeps only rows of rounds
before the checkpoint's round, so a crash between the two loses and duplicates nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from lgc.checkpoint import load_checkpoint, save_checkpoint, validate_checkpoint
from lgc.protocol import REFIT_FIELDS, ROUND_FIELDS, RunState, refit_rows
from lgc.runs import atomic_write_csv, atomic_write_text, read_csv
from theory.schedule import schedule_from_csv, schedule_to_csv
from theory.trace import TRACE_FIELDS


class RunRecorder:
    """Accumulates a run's rows on rank 0 and writes them at each checkpoint."""

    def __init__(self, path: Path, n_workers: int, blocks: int):
        self.path = Path(path)
        self.n, self.M = n_workers, blocks
        self.rounds: list[dict] = []
        self.schedule: list = []
        self.trace: list[dict] = []
        self.dead: list[int] = []  # permanent stragglers (dead workers), kept in the checkpoint
        self.k_control = None  # --k auto: the rank's KController (theory.adaptive)

    def add(self, row: dict, res) -> None:
        """One round: its record (rounds.csv, lgc.protocol.ROUND_FIELDS), schedule and block times."""
        self.rounds.append(row)
        self.schedule.append(res.schedule)
        from lgc.dist.worker import _DONE, REPORT_FIXED as F

        rep, M, t = res.report, self.M, res.schedule.round
        for i in range(self.n):
            for m in range(int(rep[i, _DONE])):  # every block worker i processed
                self.trace.append({"round": t, "worker": i, "block": m,
                                   "start_s": f"{rep[i, F + m]:.6f}", "end_s": f"{rep[i, F + M + m]:.6f}"})

    def save(self, state: RunState) -> None:
        atomic_write_csv(self.path / "rounds.csv", self.rounds, ROUND_FIELDS)
        atomic_write_text(self.path / "schedule.csv", schedule_to_csv(self.schedule))
        atomic_write_csv(self.path / "trace.csv", self.trace, TRACE_FIELDS)
        extra = {}
        if self.k_control is not None:
            atomic_write_csv(self.path / "refits.csv", refit_rows(self.k_control.history), REFIT_FIELDS)
            extra["k_auto"] = self.k_control.state_dict()
        save_checkpoint(self.path / "checkpoint.pt", {**state.checkpoint(), "dead": list(self.dead), **extra})

    def load(self, rounds: int, n_params: int) -> Optional[dict]:
        """Rows and state of a previous attempt, cut at its checkpoint; None if there is none."""
        ck = self.path / "checkpoint.pt"
        if not ck.exists():
            return None
        state = validate_checkpoint(load_checkpoint(ck), ck, rounds=rounds, n_params=n_params)
        t = int(state["round"])
        if (self.path / "rounds.csv").exists():
            self.rounds = [r for r in read_csv(self.path / "rounds.csv") if int(r["round"]) < t]
        if (self.path / "schedule.csv").exists():
            text = (self.path / "schedule.csv").read_text()
            self.schedule = [s for s in schedule_from_csv(text, source=str(self.path / "schedule.csv"))
                             if s.round < t] if text.strip() else []
        if (self.path / "trace.csv").exists():
            self.trace = [r for r in read_csv(self.path / "trace.csv") if int(r["round"]) < t]
        return state
