"""The sim-round benchmark (lgc/bench/sim_round.py; what it times, lgc/bench/sides.py): its per-worker loop computes
the sim's update, and one tiny run reports every side and ratio consistently. No timing is asserted."""
import json

import numpy as np
import pytest
import torch

from lgc.bench import sides as bench_sides
from lgc.bench import sim_round as bench
from lgc.rules import RuleState, ServerState, aggregate, server_step
from lgc.sim.engines import BatchedEngine, RoundBatch, sample_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _args(**over):
    d = dict(seed=0, model="mlp", width=4, device="cpu", samples_per_worker=20)
    d.update(over)
    return type("Args", (), d)


def test_per_worker_loop_round_equals_batched_engine_round():
    """One round of the lab-code loop (a backward per worker) = the batched engine on the union,
    the same lgc rule and server step (float32 rtol 1e-5)."""
    args = _args()
    cfg = bench_sides.bench_config(args, "unused", "batched", "none", 4)
    rounds = bench_sides.draw_rounds(cfg, 4)
    plans = bench_sides.plans(cfg, rounds)
    plan = next(p for p in plans if "strag" in p.per_sample)  # a round where stragglers report
    loop = bench_sides.LoopSide(args, "none", torch.device("cpu"), [plan])
    w0 = loop.w.clone()
    rows = np.concatenate([np.arange(i * bench_sides.BATCH, i * bench_sides.BATCH + n) for i, n in enumerate(plan.counts)])
    batch = RoundBatch(loop.x[rows], loop.y[rows], sample_weights(plan, "cpu"))
    grads, _ = BatchedEngine().grads(loop.model, batch)
    d, _ = aggregate("lgc", grads, plan.rho, RuleState())
    want, _ = server_step(w0, d, ServerState(), lr=0.05, momentum=0.9)
    loop.run(1)
    torch.testing.assert_close(loop.w, want, rtol=1e-5, atol=1e-7)
    assert not torch.equal(loop.w, w0)


def test_tiny_bench_reports_every_side_and_consistent_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--device", "cpu", "--model", "mlp", "--width", "4", "--steps", "2", "--repeats", "1",
                       "--samples-per-worker", "20", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    sides = rep["sides"]
    assert set(sides) == {"sim round fused/none", "sim round batched/none", "plain step none", "per-worker loop none"}
    assert sides["sim round fused/none"]["fused_rounds"] >= 1  # the fused engine really split a round
    cfg = bench_sides.bench_config(_args(), "unused", "fused", "none", 2)
    k_b_plus_blocks = [int(p.counts.sum()) for p in bench_sides.plans(cfg, bench_sides.draw_rounds(cfg, 2))]
    assert rep["config"]["mean_samples_per_round"] == pytest.approx(np.mean(k_b_plus_blocks))
    r = rep["best"]["ratios"]
    plain = sides["plain step none"]["ms_per_round"]
    assert r["sim batched/plain"] == pytest.approx(plain / sides["sim round batched/none"]["ms_per_round"])
    assert r["sim/plain"] == pytest.approx(max(r["sim fused/plain"], r["sim batched/plain"]))
    assert r["per-worker loop/plain"] == pytest.approx(plain / sides["per-worker loop none"]["ms_per_round"])
    assert "sim/plain" in capsys.readouterr().out


def test_time_limit_skips_what_has_not_started_and_says_so(tmp_path):
    out = tmp_path / "bench.json"
    assert bench.main(["--device", "cpu", "--model", "mlp", "--width", "4", "--steps", "1", "--repeats", "1",
                       "--samples-per-worker", "20", "--time-limit", "0", "--out", str(out)]) == 0
    sides = json.loads(out.read_text())["sides"]
    assert all("--time-limit 0 s reached" in v["skipped"] for v in sides.values()) and len(sides) == 4


def test_bad_steps_is_one_line_and_status_2(capsys):
    assert bench.main(["--device", "cpu", "--steps", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--steps 0" in err
