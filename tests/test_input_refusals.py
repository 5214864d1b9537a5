"""Inputs that reached a traceback, a NaN or every interface (issue 24 items 4, 6, 7, 8): each is one line
naming the value and what is valid, exit status 2."""
import json
from dataclasses import fields

import numpy as np
import pytest

from lgc.cli import main
from lgc.config import DistOptions, TrainConfig
from lgc.config_fields import nullable
from lgc.config_task import TaskConfig
from theory.errors import TheoryInputError

from cli_refusal import refused as _fails  # tests/cli_refusal.py

TINY = ["--workers", "3", "--k", "2", "--batch-size", "4", "--blocks", "2", "--model", "softmax", "--partition", "iid",
        "--synthetic-train", "120", "--synthetic-test", "12", "--samples-per-worker", "20", "--device", "cpu",
        "--threads", "1", "--quiet", "--rounds", "1"]
CONSTS = ["--L", "1", "--sigma2", "1", "--zeta2", "1", "--Delta", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------- item 4: seeds, nulls
@pytest.mark.parametrize("flag,value", [("--seed", "-1"), ("--data-seed", "-1"), ("--seed", "99999999999999999999")])
def test_a_seed_outside_int64_is_one_line(capsys, tmp_path, flag, value):
    name = flag[2:].replace("-", "_")
    _fails(capsys, ["train", *TINY, flag, value, "--results", str(tmp_path)], f"{name}={value}", "0..")
    _fails(capsys, ["estimate", "--workers", "3", flag, value, "--out", str(tmp_path / "c.json")], f"{name}={value}")
    if flag == "--seed":
        _fails(capsys, ["optimize-k", "--workers", "5", *CONSTS, flag, value], f"seed={value}", "0..")
    assert not (tmp_path / "train").exists() and not (tmp_path / "c.json").exists()


def _config(tmp_path, d):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(d))
    return str(p)


@pytest.mark.parametrize("name", [f.name for cls in (TrainConfig, TaskConfig) for f in fields(cls)
                                  if f.name not in nullable(cls)])
def test_every_config_field_that_cannot_be_none_refuses_null(capsys, tmp_path, name):
    _fails(capsys, ["train", "--config", _config(tmp_path, {name: None}), "--print-config"],
           f"config key {name!r} is null", "null is valid only for")


@pytest.mark.parametrize("name", sorted(nullable(TrainConfig) | nullable(TaskConfig)))
def test_every_config_field_that_may_be_none_runs_with_null(capsys, tmp_path, name):
    """null is the field's default, so the run works as without it (TINY's flags win where they name it)."""
    code = main(["train", *TINY, "--config", _config(tmp_path, {name: None}), "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 0, err


def test_a_python_config_with_none_is_one_user_error():
    from lgc.errors import UserError

    for name in ("lr", "timing_params", "n_workers"):
        with pytest.raises(UserError, match=f"config key {name!r} is null"):
            TrainConfig(**{name: None}).resolved().validate()


def test_samples_per_worker_null_needs_iid(capsys, tmp_path):
    flags = [a for a in TINY if a not in ("--samples-per-worker", "20", "--partition", "iid")]
    _fails(capsys, ["train", *flags, "--config", _config(tmp_path, {"samples_per_worker": None}),
                    "--results", str(tmp_path / "r")], "samples_per_worker=null", "main-label")


@pytest.mark.parametrize("name", [f.name for f in fields(DistOptions)])
def test_every_dist_option_refuses_null(capsys, tmp_path, name):
    assert not nullable(DistOptions)
    i = TINY.index("--threads")
    flags = TINY[:i] + TINY[i + 2:] if name == "threads" else TINY  # --threads sets the dist option too
    _fails(capsys, ["train", *flags, "--config", _config(tmp_path, {"dist": {name: None}}),
                    "--results", str(tmp_path / "r")], f"config key {name!r} is null")


# ----------------------------------------------------------------------------- item 6: infinite times
def test_a_law_whose_draws_overflow_is_refused(capsys, tmp_path):
    from theory.timing import Deterministic, HeterogeneousSpeed, LogNormal, Pareto, ShiftedExponential

    for bad in (lambda: LogNormal(mu=1000.0), lambda: Pareto(alpha=0.01), lambda: ShiftedExponential(rate=1e-310),
                lambda: HeterogeneousSpeed(slowdown=1e299, rate=0.001), lambda: Deterministic(times=(1.0, 1e305))):
        with pytest.raises(TheoryInputError, match="overflow"):
            bad()
    x = LogNormal(mu=600.0).sample(np.random.default_rng(0), 10_000)  # allowed: its draws stay finite
    assert np.all(np.isfinite(x))
    _fails(capsys, ["train", *TINY, "--timing", "lognormal", "--timing-param", "mu=1000", "--results", str(tmp_path)],
           "'lognormal' (mu=1000", "overflow")
    _fails(capsys, ["optimize-k", "--workers", "5", *CONSTS, "--timing", "lognormal", "--timing-param", "mu=1000"],
           "overflow")
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize("backend", ["sim", "dist"])
def test_anytime_minibatch_with_an_infinite_default_deadline_is_refused(capsys, tmp_path, backend):
    """pareto alpha = 0.5 at N = 3, K = 2: alpha (N - K + 1) = 1, E[X_(K:N)] is infinite."""
    argv = ["train", *TINY, "--algorithm", "anytime-minibatch", "--timing", "pareto", "--timing-param", "alpha=0.5",
            "--backend", backend, "--results", str(tmp_path)]
    _fails(capsys, argv, "deadline E[X_(K:N)]", "infinite at K=2, N=3", "--deadline")
    assert not (tmp_path / "train").exists()  # before the run directory exists


# ----------------------------------------------------------------------------- item 7: every interface
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "0"])
def test_an_unspecified_rendezvous_address_is_refused(capsys, tmp_path, host):
    from lgc.dist.launch import bind_local
    from lgc.errors import UserError

    with pytest.raises(UserError, match="unspecified address"):
        bind_local(host)
    if host == "0.0.0.0":
        _fails(capsys, ["train", *TINY, "--backend", "dist", "--rendezvous-host", host, "--results", str(tmp_path)],
               "--rendezvous-host '0.0.0.0'", "every interface")


# ----------------------------------------------------------------------------- item 8: Gram matrices
@pytest.mark.parametrize("gram,match", [
    ([[1, 3], [3, 1]], "not positive semidefinite.*Cauchy-Schwarz"),
    ([[1, 0.5], [0.2, 1]], r"not symmetric: G\[0\]\[1\]=0.5 but G\[1\]\[0\]=0.2"),
    ([[1, 0.5], [-0.5, 1]], "not symmetric"),
    ([[2, 1.5, 0], [1.5, 2, 1.5], [0, 1.5, 2]], "not positive semidefinite: smallest eigenvalue -0.12"),
])
def test_a_gram_that_is_no_gram_matrix_is_refused(capsys, tmp_path, gram, match):
    from theory.constants import validate_constants

    d = {"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "gram": [np.eye(len(gram)).tolist(), gram]}
    with pytest.raises(TheoryInputError, match=r"gram\[1\] is " + match):
        validate_constants(d, source="c.json")
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    _fails(capsys, ["optimize-k", "--workers", str(len(gram)), "--constants", str(p)], "gram[1] is not")


def test_a_measured_gram_matrix_with_round_off_is_accepted():
    from theory.constants import validate_constants

    a = np.random.default_rng(0).normal(size=(6, 50))
    a -= a.mean(axis=0)  # deviations sum to zero: G is singular, its smallest eigenvalue round-off around 0
    g = a @ a.T
    assert np.linalg.eigvalsh(g)[0] < 1e-12
    validate_constants({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "gram": [g.tolist()]})
