"""theory.optimize_k: the one computation behind `lgc optimize-k`, callable with the CLI's flag names
and defaults; Problem.from_constants, the one way a constants file becomes a Problem (optimize-k
and --k auto alike)."""
import inspect
import json

import numpy as np
import pytest

from lgc.cli import build_parser, main
from lgc.config import TrainConfig
from theory import optimize_k
from theory.constants import Constants, write_constants
from theory.errors import TheoryInputError
from theory.tradeoff import Problem

CONST = dict(L=2.0, sigma2=1.0, zeta2=0.3, Delta=4.0)


def test_problem_from_a_file_a_mapping_and_constants_is_one_problem(tmp_path):
    path = tmp_path / "c.json"
    gram = (np.eye(3) - 1 / 3).tolist()
    write_constants(path, Constants(**CONST, delta=0.5, mu=0.1, gram=[gram]))
    probs = [Problem.from_constants(c, N=3, M=2, B=4, h=5)
             for c in (str(path), Constants(**CONST, delta=0.5, mu=0.1, gram=[gram]),
                       {**CONST, "delta": 0.5, "mu": 0.1, "gram": [gram]})]
    assert probs[0] == probs[1] == probs[2]  # dissimilarity is not compared: checked below
    assert probs[0].mu == 0.1 and probs[0].delta == 0.5 and all(p.dissimilarity.n == 3 for p in probs)
    with pytest.raises(TheoryInputError, match="gram is for N=3 workers, but the problem has N=4"):
        Problem.from_constants(str(path), N=4, M=2, B=4)
    with pytest.raises(TheoryInputError, match="sigma2=-1"):
        Problem.from_constants({**CONST, "sigma2": -1.0}, N=3, M=2, B=4)


def test_k_auto_reads_mu_from_its_constants_as_optimize_k_does(tmp_path):
    """k_controller used to drop mu (the strong-convexity bound, DERIVATION.md 4.8) from --k-constants."""
    from lgc.protocol import k_controller

    path = tmp_path / "c.json"
    path.write_text(json.dumps({**CONST, "mu": 0.25, "delta": 0.5}))
    cfg = TrainConfig(n_workers=6, k_auto=True, budget=50.0, k_constants=str(path)).resolved()
    prob = k_controller(cfg, 0.0).problem
    assert prob == Problem.from_constants(str(path), N=6, M=cfg.blocks, B=cfg.batch_size, timing=prob.timing,
                                          h=cfg.straggling_period, semantics=cfg.semantics, comm=prob.comm)
    assert prob.mu == 0.25 and prob.delta == 0.5


def test_keyword_names_and_defaults_are_the_commands():
    """optimize_k(workers=, batch_size=, blocks=, budget=, ...) defaults to what `lgc optimize-k` does."""
    args = build_parser("optimize-k").parse_args(["optimize-k", "--L", "1", "--sigma2", "1", "--zeta2", "0", "--Delta", "1"])
    flags = {"workers": "n_workers"}
    sig = inspect.signature(optimize_k).parameters
    for name in ("workers", "batch_size", "blocks", "algorithm", "eta", "optimize_eta", "straggling_period",
                 "semantics", "comm_alpha", "comm_beta", "model_bytes", "report_latency", "mc_rounds", "seed",
                 "budget", "target"):
        assert sig[name].default == getattr(args, flags.get(name, name)), name
    assert args.timing == "shifted-exp" and sig["timing"].default is None  # None: the shifted exponential


def test_the_command_prints_what_the_function_computes(tmp_path, capsys):
    path = tmp_path / "c.json"
    write_constants(path, Constants(**CONST))
    best = optimize_k(str(path), workers=6, batch_size=8, blocks=4, budget=200.0, straggling_period=10,
                      timing="heterogeneous", timing_params={"slowdown": 4})
    assert main(["optimize-k", "--constants", str(path), "--workers", "6", "--batch-size", "8", "--blocks", "4",
                 "--budget", "200", "--straggling-period", "10", "--timing", "heterogeneous", "--timing-param",
                 "slowdown=4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["k_star"] == best.k_star and doc["k_star_bound"] == best.k_star_bound
    for row, mine in zip(doc["rows"], best.table):
        assert row["K"] == mine["K"] and row["bound"] == pytest.approx(mine["bound"], rel=1e-12)
    assert best.k_star_bound == int(best.tradeoff.ks[np.nanargmin(best.tradeoff.bound)])
    gaps = {r["K"]: r["pred_gap"] for r in best.table if r.get("pred_gap") is not None}
    assert best.k_star == min(gaps, key=lambda k: (gaps[k], -k))  # least predicted gap, ties to the larger K


def test_result_table_plot_and_errors(tmp_path):
    best = optimize_k(CONST, workers=4, batch_size=8, blocks=4, budget=100.0)
    assert [r["K"] for r in best.table] == [1, 2, 3, 4] and 1 <= best.k_star <= 4 and best.extras == {}
    best.plot(str(tmp_path / "k.png"))
    assert (tmp_path / "k.png").stat().st_size > 1000
    with pytest.raises(TheoryInputError, match="K=5 must satisfy 1 <= K <= N=4"):
        optimize_k(CONST, workers=4, batch_size=8, blocks=4, ks=[2, 5])
    with pytest.raises(TheoryInputError, match="algorithm='rennala' has no bound"):
        optimize_k(CONST, workers=4, batch_size=8, blocks=4, algorithm="rennala")
    with pytest.raises(TheoryInputError, match="no K qualifies: budget tau=0.5 is shorter than one round"):
        optimize_k(CONST, workers=4, batch_size=8, blocks=4, budget=0.5)


def test_optimize_k_reads_a_constants_file_once(tmp_path, monkeypatch):
    """The file (and its gram's O(N^3) checks) is read once, not once for the Problem and again for the result."""
    import theory.constants as tc

    path = tmp_path / "c.json"
    write_constants(path, Constants(**CONST))
    calls = []
    real = tc.read_constants
    monkeypatch.setattr(tc, "read_constants", lambda p: calls.append(p) or real(p))
    best = optimize_k(str(path), workers=4, blocks=2, batch_size=4, criterion="bound", mc_rounds=50)
    assert calls == [str(path)] and best.constants == CONST
