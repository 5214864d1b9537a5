"""lgc/config.py and the flags generated from it (lgc/commands/_config_args.py): every field has
one flag, help from the field, config.json -> flags -> the same config, one-line errors."""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import fields, replace

import pytest

from lgc.cli import build_parser, main
from lgc.commands._config_args import add_config_arguments, config_values, flag_name, parse_timing_params, to_argv
from lgc.config import DistOptions, TrainConfig
from lgc.config_task import TaskConfig
from lgc.errors import UserError


def _flags(command: str) -> dict:
    """option string -> argparse action of `lgc <command>`."""
    sub = next(a for a in build_parser(only=command)._actions if isinstance(a, argparse._SubParsersAction))
    return {s: a for a in sub.choices[command]._actions for s in a.option_strings}


def test_every_config_field_is_one_train_flag_with_its_help_and_default():
    flags = _flags("train")
    for cls in (TrainConfig, TaskConfig, DistOptions):
        for f in fields(cls):
            if f.name == "task" and cls is TrainConfig:  # nested: its fields are TaskConfig's flags
                continue
            if f.metadata.get("hidden"):  # set through another flag (k_auto: `--k auto`)
                assert any(g.metadata.get("auto") == f.name for g in fields(cls)), f.name
                continue
            action = flags[flag_name(f)]
            assert action.dest == f.name and action.option_strings[0] == flag_name(f)
            assert f.metadata["help"] and action.help.startswith(f.metadata["help"])
            assert action.help.count("(default:") <= 1, action.help  # never "(default: ...) (default: None)"
    assert not any(k in flags for k in ("-N", "-K", "-M", "-B", "-T", "--threshold-k", "--n-workers"))
    assert flags["--k"].dest == "threshold_k" and flags["--workers"].dest == "n_workers"


@pytest.mark.parametrize("command", ["estimate", "optimize-k"])
def test_shared_quantities_have_trains_flag_help_and_default(command):
    train, other = _flags("train"), _flags(command)
    shared = {"estimate": tuple(f.name for f in fields(TaskConfig) if f.name != "augment") + ("n_workers", "seed"),
              "optimize-k": ("n_workers", "blocks", "batch_size", "timing", "timing_params", "straggling_period",
                             "semantics", "comm_alpha", "comm_beta", "seed")}[command]
    assert "--augment" not in other  # estimate measures un-augmented samples
    for f in fields(TrainConfig) + fields(TaskConfig):
        if f.name in shared:
            name = flag_name(f)
            assert other[name].dest == train[name].dest and other[name].help == train[name].help, name
            if command == "optimize-k" and f.name != "timing_params":  # no config file: the default itself
                assert other[name].default == f.default, name


def test_config_json_to_flags_gives_the_same_config(tmp_path):
    """Round trip: a config (every field off its default) -> its flags -> `lgc train --print-config`."""
    cfg = TrainConfig(algorithm="fastest-k", n_workers=6, threshold_k=4, batch_size=12, blocks=3, rounds=9,
                      warmup_rounds=1, lr=0.125, momentum=0.5, weight_decay=0.001, dataset="synthetic", data_dir="d",
                      accept_md5_mismatch=True, augment=True, model="cnn", width=7, norm="batch", partition="dirichlet",
                      classes_per_worker=2, samples_per_worker=33, main_share=0.7, dirichlet_alpha=0.25, min_size=3,
                      shards_per_worker=4, worker_weights="size", synthetic_train=300, synthetic_test=30,
                      synthetic_signal=0.3, synthetic_side=6, quad_dim=4, quad_h_min=0.2, quad_h_max=2.0,
                      quad_spread=0.5, quad_sigma2=0.75, timing="pareto", timing_params={"alpha": 3, "scale": 0.5},
                      straggling_period=3, semantics="boundary", comm_alpha=0.1, comm_beta=0.01, deadline=1.5, peer_s=5, target_eps=0.2,
                      seed=4, data_seed=8, eval_every=2, checkpoint_every=3, device="cpu",
                      engine="fused", compile="default", backend="dist")
    changed = [f.name for f in fields(TrainConfig) if getattr(cfg, f.name) == getattr(TrainConfig(), f.name)]
    changed += [f.name for f in fields(TaskConfig) if getattr(cfg.task, f.name) == getattr(TaskConfig(), f.name)]
    # synthetic is the default; a schedule needs a file; eval_subset is sim-only and this config is dist;
    # the settings of --k auto are round-tripped in tests/test_k_auto.py (they need --k auto)
    assert changed == ["k_auto", "budget", "k_refit", "k_window", "k_first_fit", "k_constants", "k_criterion",
                       "schedule_file", "eval_subset", "dataset"]
    opts = DistOptions(inject=False, unit_ms=7.0, timeout_s=9.0, process_backend="gloo", host="localhost",
                       threads=2, slow_worker=1, slow_ms=3.0, reduce="gather", on_worker_death="straggler")
    p = argparse.ArgumentParser()
    add_config_arguments(p, TrainConfig)
    add_config_arguments(p, DistOptions)
    args = p.parse_args(to_argv(cfg) + to_argv(opts))
    assert TrainConfig(**config_values(TrainConfig, args)) == cfg
    assert DistOptions(**config_values(DistOptions, args)) == opts
    # and through the CLI, from a config.json: flags made from the file give the file's config
    (tmp_path / "c.json").write_text(json.dumps({**cfg.to_dict(), "task": {**cfg.task.to_dict(), "dataset": "quadratic"}}))
    from_file = TrainConfig.from_json(tmp_path / "c.json")
    assert TrainConfig(**config_values(TrainConfig, p.parse_args(to_argv(from_file)))) == from_file


def _printed(capsys, tmp_path, d: dict, *flags) -> dict:
    (tmp_path / "c.json").write_text(json.dumps(d))
    assert main(["train", "--config", str(tmp_path / "c.json"), *flags, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_config_file_gives_the_task_nested_or_flat(tmp_path, capsys):
    """`"task": {...}` (what config.json records) and the task's keys at the top level (configs
    written before the nesting) give the same config; flags (flat) override either."""
    task = {"dataset": "quadratic", "quad_dim": 4, "quad_sigma2": 2.5, "data_seed": 7}
    nested = _printed(capsys, tmp_path, {"n_workers": 8, "task": task})
    flat = _printed(capsys, tmp_path, {"n_workers": 8, **task})
    mixed = _printed(capsys, tmp_path, {"n_workers": 8, "dataset": "quadratic", "quad_dim": 4,
                                        "task": {"quad_sigma2": 2.5, "data_seed": 7}})
    assert nested == flat == mixed and "dataset" not in nested
    assert {k: nested["task"][k] for k in task} == task and nested["n_workers"] == 8
    assert TrainConfig.from_dict({"n_workers": 8, "task": task}).resolved().to_dict() == nested
    assert _printed(capsys, tmp_path, {"task": task}, "--quad-dim", "6")["task"]["quad_dim"] == 6


@pytest.mark.parametrize("d, needle", [
    ({"model": "cnn", "task": {"model": "mlp"}}, "c.json: 'model' is given both at the top level and under \"task\""),
    ({"task": {"rounds": 3}}, "c.json: unknown config key 'task.rounds'"),
    ({"task": "cifar10"}, "c.json: \"task\" must be a JSON object"),
    ({"task": None}, "c.json: config key 'task' is null"),
    ({"task": {"quad_dim": None}}, "config key 'quad_dim' is null"),
])
def test_a_bad_task_in_a_config_file_is_one_line(tmp_path, capsys, d, needle):
    (tmp_path / "c.json").write_text(json.dumps(d))
    assert main(["train", "--config", str(tmp_path / "c.json"), "--print-config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    with pytest.raises(UserError, match=re.escape(needle.replace("c.json: ", ""))):
        TrainConfig.from_dict(d).resolved().validate()


def test_the_task_fields_as_keywords_update_the_task():
    """TrainConfig(dataset=...) (the flat keywords before the nesting) and dataclasses.replace(cfg,
    model=...) set cfg.task; TrainConfig(**cfg.to_dict()) gives cfg back."""
    cfg = TrainConfig(dataset="quadratic", quad_dim=3, rounds=4)
    assert cfg == TrainConfig(task=TaskConfig(dataset="quadratic", quad_dim=3), rounds=4)
    assert cfg == TrainConfig(task={"dataset": "quadratic", "quad_dim": 3}, rounds=4)
    assert replace(cfg, quad_dim=5).task == TaskConfig(dataset="quadratic", quad_dim=5)
    assert TrainConfig(**cfg.to_dict()) == cfg and not hasattr(cfg, "dataset")
    with pytest.raises(UserError, match="task='quadratic' must be a TaskConfig"):
        TrainConfig(task="quadratic")


def test_flags_override_the_config_file_which_overrides_the_defaults(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"n_workers": 8, "threshold_k": 5, "timing_params": {"rate": 2},
                                                 "dist": {"unit_ms": 20.0}}))
    assert main(["train", "--config", str(tmp_path / "c.json"), "--k", "6", "--timing-param", "shift=0.5",
                 "--print-config"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n_workers"], out["threshold_k"], out["rounds"]) == (8, 6, TrainConfig().rounds)
    assert out["timing_params"] == {"rate": 2, "shift": 0.5}


def test_train_options_read_the_recorded_dist_object(tmp_path):
    from lgc.commands.train import options_from_args

    (tmp_path / "c.json").write_text(json.dumps({"dist": {"unit_ms": 20.0, "threads": 3}}))
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    add_config_arguments(p, DistOptions)
    opts = options_from_args(p.parse_args(["--config", str(tmp_path / "c.json"), "--threads", "2"]))
    assert opts == replace(DistOptions(), unit_ms=20.0, threads=2)


def test_timing_params_parsed_once_json_or_text():
    assert parse_timing_params(["rate=0.5", "times=[1,2]", "path=a.csv", "flag=true"], {"rate": 1}) == \
        {"rate": 0.5, "times": [1, 2], "path": "a.csv", "flag": True}
    with pytest.raises(UserError, match="'rate' must look like KEY=VALUE"):
        parse_timing_params(["rate"])


@pytest.mark.parametrize("change, message", [
    (dict(threshold_k=11), "K=11 must satisfy 1 <= K <= N=10"),
    (dict(batch_size=7, blocks=5), "B=7 is not divisible by M=5"),
    (dict(algorithm="sgd"), "algorithm='sgd' must be one of"),
    (dict(momentum=1.0), "momentum=1.0 must be in [0, 1)"),
    (dict(engine="fused", norm="batch"), "engine=fused needs GroupNorm"),
])
def test_validation_names_the_bad_value(change, message):
    with pytest.raises(UserError, match=r"^" + re.escape(message)):
        TrainConfig(**change).resolved().validate()


@pytest.mark.parametrize("change, message", [
    (dict(unit_ms=0.0), "unit_ms=0.0 must be > 0"),
    (dict(slow_worker=10), "slow_worker=10 must be -1 or in 0..9"),
    (dict(reduce="ring"), "reduce='ring' must be one of auto, gather, allreduce"),
])
def test_dist_option_validation_names_the_bad_value(change, message):
    with pytest.raises(UserError, match=re.escape(message)):
        DistOptions(**change).validate(10)


@pytest.mark.parametrize("argv, needle", [
    (["train", "--rounds", "ten"], "--rounds: invalid int value: 'ten'"),
    (["train", "--k", "0", "--print-config"], "K=0 must satisfy"),
    (["train", "--timing-param", "rate", "--print-config"], "'rate' must look like KEY=VALUE"),
    (["train", "-K", "3"], "unrecognized arguments: -K"),
    (["estimate", "--workers", "0"], "N=0 must be >= 1"),
    (["optimize-k", "--semantics", "late", "--L", "1", "--sigma2", "1", "--zeta2", "1", "--Delta", "1"],
     "semantics='late' must be one of abort, boundary"),
])
def test_cli_errors_are_one_line_exit_2(argv, needle, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main([*argv, *(["--out", str(tmp_path / "c.json")] if argv[0] == "estimate" else [])]))
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_config_file_type_errors_name_the_key(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"rounds": "ten"}))
    assert main(["train", "--config", str(tmp_path / "c.json"), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "config key 'rounds'='ten' must be int" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "d.json").write_text(json.dumps({"dist": {"unit": 3}}))
    assert main(["train", "--config", str(tmp_path / "d.json")]) == 2
    assert "unknown dist option 'unit'" in capsys.readouterr().err
