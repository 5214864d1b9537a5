"""The public Python API (README "Python API"): a user's own model and data as an lgc.Task, trained
by lgc.simulate, cached by the task's fingerprint; a rule of the user's own; user errors."""
import json

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torch import nn

import lgc
from lgc.checkpoint import load_checkpoint
from lgc.errors import UserError
from lgc.rules import Rule, RuleState
from lgc.sampling import batch_indices
from theory.schedule import RoundSchedule, schedule_to_csv

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
N, K, B, M, T = 4, 2, 4, 2, 6
b = B // M
CFG = {"threshold_k": K, "batch_size": B, "blocks": M, "rounds": T, "lr": 0.1, "eval_every": 3}


def _model():
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def _pairs(seed, n=24):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(N):
        x = torch.randn(n, 5, generator=g) + 0.4 * i
        out.append((x, (x.sum(1) > 0.4 * i * 5).long() + (i % 2)))
    return out


def _task(seed=0, **kw):
    return lgc.Task(model=_model, workers=_pairs(seed), test=_pairs(99)[0], name="toy", **kw)


def test_own_model_and_data_train_through_public_names(tmp_path):
    run = lgc.simulate(_task(), CFG, root=tmp_path)
    assert len(run.rows) == T and run.columns[:3] == ("round", "time", "round_time")
    assert run.column("round") == list(range(T)) and all(k == K for k in run.column("n_fast")[2:])
    acc = [a for a in run.column("test_acc") if a is not None]
    assert len(acc) == 2 and 0 <= acc[-1] <= 1 and run.final["test_acc"] == acc[-1]
    recorded = json.loads((run.path / "config.json").read_text())
    assert recorded["n_workers"] == N and recorded["task"]["name"] == "toy" and len(recorded["task"]["fingerprint"]) == 16
    info = json.loads((run.path / "data.json").read_text())
    assert info["worker_sizes"] == [24] * N and info["task"] == "toy"


def test_a_torch_dataset_is_a_worker_like_its_tensors(tmp_path):
    """A map-style torch Dataset gives the same run (same fingerprint) as its (x, y) tensors."""
    pairs = _pairs(0)
    as_sets = lgc.Task(model=_model, workers=[torch.utils.data.TensorDataset(x, y) for x, y in pairs],
                       test=torch.utils.data.TensorDataset(*_pairs(99)[0]), name="toy")
    assert lgc.simulate(as_sets, CFG, root=tmp_path).path == lgc.simulate(_task(), CFG, root=tmp_path).path


def test_cache_same_config_other_data_is_another_run_same_data_the_cached_one(tmp_path, capsys):
    first = lgc.simulate(_task(seed=0), CFG, root=tmp_path)
    stamp = (first.path / "final.json").stat().st_mtime_ns
    again = lgc.simulate(_task(seed=0), CFG, root=tmp_path)
    assert again.path == first.path and (again.path / "final.json").stat().st_mtime_ns == stamp
    assert "reusing the finished run" in capsys.readouterr().err
    other = lgc.simulate(_task(seed=1), CFG, root=tmp_path)
    assert other.path != first.path and other.rows != first.rows
    relabelled = _pairs(0)
    relabelled[2] = (relabelled[2][0], 2 - relabelled[2][1])  # the same inputs, one worker's labels changed
    moved = lgc.simulate(lgc.Task(model=_model, workers=relabelled, test=_pairs(99)[0], name="toy"), CFG, root=tmp_path)
    assert moved.path not in (first.path, other.path)
    wider = lgc.Task(model=lambda: nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)), workers=_pairs(0),
                     test=_pairs(99)[0], name="toy")
    assert lgc.simulate(wider, CFG, root=tmp_path).path not in (first.path, other.path, moved.path)


def test_a_data_set_passed_to_train_must_be_the_configs_own(tmp_path):
    """The issue's silent wrong result: train(cfg, dataset=mine) then train(cfg) returned the run
    trained on the user's data. A data set that is not the config's is now refused."""
    from lgc.config import TrainConfig
    from lgc.data.synthetic import make_classification
    from lgc.sim import train

    cfg = TrainConfig(n_workers=3, threshold_k=2, batch_size=4, blocks=2, rounds=3, synthetic_train=300,
                      synthetic_test=30, partition="iid", samples_per_worker=60, width=4, eval_every=0, device="cpu")
    mine = make_classification(300, 30, seed=123)  # labelled "synthetic", but not the config's data
    with pytest.raises(UserError, match="not the synthetic data set this config builds"):
        train(cfg, root=tmp_path, dataset=mine, quiet=True)
    own = make_classification(300, 30, seed=0)  # what the config builds: accepted, the same run
    assert train(cfg, root=tmp_path, dataset=own, quiet=True) == train(cfg, root=tmp_path, quiet=True)


class _Loss:
    """A loss object without code to hash: the run cannot be fingerprinted."""

    def __call__(self, out, y):
        return nn.functional.cross_entropy(out, y, reduction="none")


def test_a_task_that_cannot_be_fingerprinted_is_not_cached_and_says_so(tmp_path, capsys):
    task = _task(loss=_Loss())
    one, two = lgc.simulate(task, CFG, root=tmp_path), lgc.simulate(task, CFG, root=tmp_path)
    err = capsys.readouterr().err
    assert one.path != two.path and one.path.name.startswith("uncached-")
    assert "not cached: Task 'toy' loss is a _Loss" in err and one.column("loss") == two.column("loss")


def test_a_loss_must_give_one_value_per_sample_and_metrics_are_recorded(tmp_path):
    with pytest.raises(UserError, match=r"loss gave shape \(\) for 2 samples"):
        lgc.simulate(_task(loss=lambda out, y: nn.functional.cross_entropy(out, y)), CFG, root=tmp_path)
    run = lgc.simulate(_task(metrics={"top2": lambda out, y: (out.topk(2, 1).indices == y[:, None]).any(1).float()}),
                       CFG, root=tmp_path)
    top2 = [v for v in run.column("test_top2") if v is not None]
    assert len(top2) == 2 and "test_acc" not in run.final and run.final["test_top2"] == top2[-1]


def test_data_and_a_builtin_partition_function():
    """One data set split by a built-in partition (a function a user can call), N from the config."""
    import functools

    from lgc.partition import main_label

    x, y = torch.randn(300, 5), torch.arange(300) % 3
    task = lgc.Task(model=_model, data=(x, y), name="split",
                    partition=functools.partial(main_label, classes_per_worker=2, samples_per_worker=40))
    cfg = lgc.task_config(task, {"n_workers": 5, "threshold_k": 3})
    ds, parts = task.materialize(cfg.n_workers, 0)
    assert len(parts) == 5 and all(len(p) == 40 for p in parts)
    assert [int(np.bincount(y[p].numpy()).argmax()) for p in parts] == [0, 1, 2, 0, 1]


@pytest.mark.parametrize("config,needle", [
    ({"n_workers": 3}, "config n_workers=3, but Task 'toy' holds data for 4 workers"),
    ({"model": "cnn"}, "config sets model='cnn', which a Task replaces"),
    ({"task": {"model": "cnn"}}, "config sets model='cnn', which a Task replaces"),  # the nested form too
    ({"augment": True}, "config sets augment=True, which a Task replaces"),  # Task(augment=) decides
    ({"model": "cnn", "task": {"model": "mlp"}}, "'model' is given both at the top level and under \"task\""),
    ({"rounds": 0}, "rounds=0 must be >= 1"),
    ({"round": 3}, "unknown config key 'round'"),
])
def test_config_errors_are_one_line(tmp_path, config, needle):
    with pytest.raises(UserError, match=needle):
        lgc.simulate(_task(), config, root=tmp_path)


def test_a_task_run_reads_only_the_data_seed_of_the_task_config():
    """Every TaskConfig field is refused with a Task (read from the dataclass), but data_seed, which
    seeds the Task's partition; a TrainConfig holding a non-default task is refused the same way."""
    from dataclasses import fields

    from lgc.config import TrainConfig
    from lgc.config_task import TaskConfig

    cfg = lgc.task_config(_task(), {"task": {"data_seed": 3}, "threshold_k": 2})
    assert cfg.task.data_seed == 3 and cfg.threshold_k == 2
    assert lgc.task_config(_task(), {"data_seed": 3}).task.data_seed == 3  # flat, as before
    for f in fields(TaskConfig):
        if f.name != "data_seed":
            with pytest.raises(UserError, match=f"config sets {f.name}=.*which a Task replaces"):
                lgc.task_config(_task(), {"task": {f.name: "x"}})
    with pytest.raises(UserError, match="config sets dataset='quadratic', which a Task replaces"):
        lgc.task_config(_task(), TrainConfig(n_workers=N, dataset="quadratic"))


def test_task_errors_are_one_line():
    with pytest.raises(UserError, match="give workers= .* or data= with partition="):
        lgc.Task(model=_model)
    with pytest.raises(UserError, match="worker 1: x has 3 samples, y has 2"):
        lgc.Task(model=_model, workers=[(torch.ones(2, 5), torch.zeros(2)), (torch.ones(3, 5), torch.zeros(2))]
                 ).materialize(2, 0)
    with pytest.raises(UserError, match="model\\(\\) returned str"):
        lgc.Task(model=lambda: "mlp", workers=_pairs(0)).build_model(0)


# ----------------------------------------------------------------------------- a rule of the user's own
HALF = 0.5


def _half_lgc(grads, rho, state):
    """LGC with half the compensation: d_t = gA_t + u_{t-1} / 2, u_t = rho_t (gS_t - gA_t)."""
    g_fast, g_strag = grads["fast"], grads.get("strag")
    d = g_fast if state.u is None else g_fast + HALF * state.u
    u = torch.zeros_like(g_fast) if g_strag is None or rho == 0 else rho * (g_strag - g_fast)
    return d, RuleState(u=u)


HALF_LGC = Rule(init=RuleState, update=_half_lgc, kind="lgc")
PATTERNS = [((0, 3), (2, 0, 1, 2)), ((1, 2), (1, 2, 2, 0)), ((2, 3), (0, 0, 2, 2))]


def _schedule(warmup):
    return [RoundSchedule(t, tuple(range(N)), (M,) * N, 1.0, 2.0) if t < warmup
            else RoundSchedule(t, *PATTERNS[(t - warmup) % len(PATTERNS)], 1.0, 1.5) for t in range(T)]


def _per_worker_loop(pairs, lr, momentum, seed, warmup):
    """The rule above, worker by worker: each g_i and gp_j by its own backward (no lgc.sim, no lgc.rules)."""
    torch.manual_seed(seed)
    model = _model()
    params = list(model.parameters())

    def mean_grad(x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])

    w = parameters_to_vector(params).detach().clone()
    v, u = torch.zeros_like(w), torch.zeros_like(w)
    for t, s in enumerate(_schedule(warmup)):
        g, gp = {}, {}
        for i, (x, y) in enumerate(pairs):
            idx = torch.as_tensor(batch_indices(seed, t, i, np.arange(len(y)), B))
            g[i] = mean_grad(x[idx], y[idx])
            if s.blocks_done[i] > 0:
                gp[i] = mean_grad(x[idx][: s.blocks_done[i] * b], y[idx][: s.blocks_done[i] * b])
        if t < warmup:
            d, u = sum(g.values()) / N, torch.zeros_like(w)
        else:
            strag = [j for j in range(N) if j not in s.fast and s.blocks_done[j] > 0]
            gA = sum(g[i] for i in s.fast) / len(s.fast)
            rho = len(strag) / N
            d = gA + HALF * u
            u = rho * (sum(gp[j] for j in strag) / len(strag) - gA) if strag else torch.zeros_like(w)
        v = momentum * v + d
        w = w - lr * v
        with torch.no_grad():
            vector_to_parameters(w, params)
    return w


def test_a_rule_of_the_users_own_trains_in_sim_and_matches_its_per_worker_loop(tmp_path):
    sched = tmp_path / "schedule.csv"
    sched.write_text(schedule_to_csv(_schedule(warmup=1)))
    cfg = {**CFG, "warmup_rounds": 1, "momentum": 0.9, "seed": 5, "schedule_file": str(sched), "device": "cpu"}
    run = lgc.simulate(_task(), cfg, rule=HALF_LGC, root=tmp_path / "res")
    assert json.loads((run.path / "config.json").read_text())["rule"]["kind"] == "lgc"
    w = load_checkpoint(run.path / "checkpoint.pt")["w"]
    expected = _per_worker_loop(_pairs(0), lr=0.1, momentum=0.9, seed=5, warmup=1)
    torch.testing.assert_close(w, expected, rtol=1e-5, atol=1e-6)
    plain = lgc.simulate(_task(), cfg, root=tmp_path / "res")  # the table's lgc: another run, other weights
    assert plain.path != run.path
    assert (load_checkpoint(plain.path / "checkpoint.pt")["w"] - w).abs().max() > 1e-4


# ----------------------------------------------------------------------------- the command line: a thin layer
def test_lgc_train_task_is_the_same_run_as_simulate(tmp_path, capsys):
    from lgc.cli import main

    from lgc.runs import REPO_ROOT
    from lgc.api import load_task

    spec = f"{REPO_ROOT / 'examples' / 'own_task.py'}:make_task"
    flags = ["--k", "3", "--batch-size", "8", "--blocks", "4", "--rounds", "4", "--eval-every", "0"]
    assert main(["train", "--task", spec, *flags, "--results", str(tmp_path), "--quiet", "--json"]) == 0
    path = json.loads(capsys.readouterr().out)["run_dir"]
    run = lgc.simulate(load_task(spec), {"threshold_k": 3, "batch_size": 8, "blocks": 4, "rounds": 4, "eval_every": 0},
                       root=tmp_path)
    assert str(run.path) == path  # the same objects, the same key: the cached run
    assert "reusing the finished run" in capsys.readouterr().err
    for argv, needle in (([spec.replace(":make_task", ":nope")], "has no function 'nope'"),
                         (["no_such_module:f"], "cannot import no_such_module"),
                         (["examples/own_task.py"], "must look like MODULE:FUNCTION"),
                         ([spec, "--model", "cnn"], "config sets model='cnn', which a Task replaces")):
        assert main(["train", "--task", *argv, "--results", str(tmp_path), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err


def test_lgc_estimate_is_the_estimators_on_the_tasks_workers():
    """lgc.estimate(task): the module lgc.estimate answers the call with estimate_constants of the
    task's model at its initial weights on each worker's data (pi uniform)."""
    import lgc.estimate as module
    from lgc.estimate import estimate_constants, problem_from_model

    assert lgc.estimate is module and callable(lgc.estimate)
    kw = dict(bootstrap=10, l_bootstrap=0, trajectory_steps=2, lbfgs_iters=5)
    got = lgc.estimate(_task(), {"seed": 3}, **kw)
    torch.manual_seed(3)
    direct = estimate_constants(problem_from_model(_model(), _pairs(0), pi=np.full(N, 1 / N)), seed=3, **kw)
    for k in ("L", "sigma2", "zeta2", "Delta"):
        assert getattr(got, k) == pytest.approx(getattr(direct, k), rel=1e-6), k
    assert got.source["task"] == "toy" and got.source["n_workers"] == N
