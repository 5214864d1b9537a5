"""Rank 0's run directory for dist (lgc.dist.records.RunRecorder): what each file holds, and a
resumed run keeping exactly the rounds before its checkpoint."""
from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import torch

from lgc.checkpoint import load_checkpoint
from lgc.dist.records import TRACE_FIELDS, RunRecorder
from lgc.dist.worker import _DONE, REPORT_FIXED as F
from lgc.protocol import ROUND_FIELDS, RunState
from lgc.rules import RuleState, ServerState
from theory.schedule import RoundSchedule, schedule_from_csv

N, M = 3, 2


def _result(t, done):
    """A round's result: worker i processed done[i] blocks, block m from 0.1*m to 0.1*m + 0.05 s."""
    rep = np.zeros((N, F + 2 * M))
    rep[:, _DONE] = done
    for m in range(M):
        rep[:, F + m] = 0.1 * m + t
        rep[:, F + M + m] = 0.1 * m + t + 0.05
    sched = RoundSchedule(round=t, fast=(0, 1), blocks_done=(M, M, done[2]), t_cut=1.0, wall=1.5)
    return SimpleNamespace(schedule=sched, report=rep)


def _row(t):
    return {"round": t, "time": 1.5 * (t + 1), "round_time": 1.5, "loss": 0.5 - 0.1 * t, "warmup": int(t < 1)}


def _state(t):
    return RunState(w=torch.full((4,), float(t)), server=ServerState(momentum=torch.ones(4)), rule=RuleState(u=None),
                    round=t, clock=1.5 * t)


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_files_hold_rows_schedule_trace_and_checkpoint(tmp_path):
    rec = RunRecorder(tmp_path, N, M)
    rec.dead = [2]
    for t in range(2):
        rec.add(_row(t), _result(t, done=[M, M, 1]))
    rec.save(_state(2))
    rows = _read(tmp_path / "rounds.csv")
    assert [int(r["round"]) for r in rows] == [0, 1] and list(rows[0]) == list(ROUND_FIELDS)
    assert [s.round for s in schedule_from_csv((tmp_path / "schedule.csv").read_text())] == [0, 1]
    trace = _read(tmp_path / "trace.csv")
    assert list(trace[0]) == list(TRACE_FIELDS)
    assert len(trace) == 2 * (M + M + 1)  # one row per processed block
    last = [r for r in trace if r["round"] == "1" and r["worker"] == "2"]
    assert [(r["block"], r["start_s"], r["end_s"]) for r in last] == [("0", "1.000000", "1.050000")]
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["round"] == 2 and ck["dead"] == [2] and torch.equal(ck["w"], torch.full((4,), 2.0))
    assert ck["u"] is None and torch.equal(ck["momentum"], torch.ones(4))


def test_load_keeps_only_rounds_before_the_checkpoint(tmp_path):
    """Files written ahead of the checkpoint (a crash between the two) lose nothing and
    duplicate nothing: the resumed run reruns those rounds."""
    rec = RunRecorder(tmp_path, N, M)
    for t in range(3):
        rec.add(_row(t), _result(t, done=[M, M, 0]))
    rec.save(_state(2))  # rounds.csv has round 2, the checkpoint says round 2 is not done
    again = RunRecorder(tmp_path, N, M)
    state = again.load(rounds=5, n_params=4)
    assert int(state["round"]) == 2
    assert [int(r["round"]) for r in again.rounds] == [0, 1]
    assert [s.round for s in again.schedule] == [0, 1]
    assert {int(r["round"]) for r in again.trace} == {0, 1}
    again.add(_row(2), _result(2, done=[M, M, 0]))
    again.save(_state(3))
    assert [int(r["round"]) for r in _read(tmp_path / "rounds.csv")] == [0, 1, 2]


def test_load_without_a_checkpoint_is_none(tmp_path):
    assert RunRecorder(tmp_path, N, M).load(rounds=5, n_params=4) is None
