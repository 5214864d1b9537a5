"""The public Python API: a user's own model and data (an lgc.Task) trained, measured and sized.

    import lgc
    from theory import optimize_k

    task = lgc.Task(model=make_model, workers=[(x0, y0), (x1, y1), ...], test=(xt, yt))
    run = lgc.simulate(task, {"rounds": 50, "threshold_k": 3})   # the sim backend: a Run
    constants = lgc.estimate(task)                                 # L, sigma2, zeta2, Delta (theory Constants)
    best = optimize_k(constants, workers=4, batch_size=8, blocks=4, budget=100.0)
    best.k_star

`config` is a TrainConfig or a dict of its field names (README "Python API"); the fields of the
built-in data and model (TaskConfig, `cfg.task`, but its data seed) are the Task's business and
must stay unset. The same Task runs under torchrun: `python -m lgc.dist module:factory` (docs/DIST.md).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from lgc.config import TrainConfig, nest_task_keys
from lgc.errors import UserError, check
from lgc.config_task import READ_BY_USER_TASKS, TaskConfig


def task_config(task, config: Union[TrainConfig, dict, None] = None, *, rule=None) -> TrainConfig:
    """The TrainConfig of a run of `task`: `config` (a TrainConfig or a dict of its fields) with
    N from the task where it holds per-worker data, the algorithm from a Rule's kind, and the
    engine chosen for the task's model. UserError (one line) for a field the Task replaces or a
    contradiction."""
    as_fields = config is None or isinstance(config, dict)
    given = nest_task_keys(dict(config or {})) if as_fields else config.to_dict()
    if as_fields:
        if task.n_workers is not None:
            given.setdefault("n_workers", task.n_workers)
        if rule is not None and not isinstance(rule, str):
            given.setdefault("algorithm", rule.kind)
    default, own = TaskConfig(), given.get("task") or {}
    for f in dataclasses.fields(TaskConfig):
        if f.name not in READ_BY_USER_TASKS and f.name in own and own[f.name] != getattr(default, f.name):
            raise UserError(f"config sets {f.name}={own[f.name]!r}, which a Task replaces (its model, data and "
                            f"partition): leave it unset")
    cfg = TrainConfig.from_dict(given, source="config")
    check(task.n_workers is None or cfg.n_workers == task.n_workers,
          f"config n_workers={cfg.n_workers}, but Task {task.name!r} holds data for {task.n_workers} workers")
    if rule is not None and not isinstance(rule, str):
        check(cfg.algorithm == rule.kind, f"config algorithm={cfg.algorithm!r}, but the rule runs the rounds of "
                                          f"{rule.kind!r}: set algorithm={rule.kind!r}")
    elif isinstance(rule, str):
        cfg = dataclasses.replace(cfg, algorithm=rule)
    if cfg.engine == "auto":
        cfg = dataclasses.replace(cfg, engine=task.default_engine())
    if "threshold_k" not in given and cfg.threshold_k > cfg.n_workers:
        cfg = dataclasses.replace(cfg, threshold_k=cfg.n_workers)  # the default K = 7 where N is smaller
    return cfg


def load_task(spec: str):
    """The Task a factory makes: spec "package.module:function" (importable from the working
    folder or PYTHONPATH) or "path/to/file.py:function"; function() -> Task. This is how `lgc train
    --task`, `python -m lgc.dist` and every dist process (spawned or under torchrun) rebuild it."""
    import importlib
    import importlib.util
    import sys

    module, sep, name = spec.rpartition(":")
    check(bool(sep and module and name), f"--task {spec!r} must look like MODULE:FUNCTION or FILE.py:FUNCTION")
    if module.endswith(".py"):
        path = Path(module).resolve()
        check(path.is_file(), f"--task {spec!r}: {module} does not exist")
        key = f"_lgc_task_{abs(hash(str(path)))}"
        if key not in sys.modules:
            loader = importlib.util.spec_from_file_location(key, path)
            mod = importlib.util.module_from_spec(loader)
            sys.modules[key] = mod
            loader.loader.exec_module(mod)
        mod = sys.modules[key]
    else:
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            check(False, f"--task {spec!r}: cannot import {module} ({e})")
    check(callable(getattr(mod, name, None)), f"--task {spec!r}: {module} has no function {name!r}")
    from lgc.task import Task

    task = getattr(mod, name)()
    check(isinstance(task, Task), f"--task {spec!r}: {name}() returned {type(task).__name__}, not an lgc.Task")
    return task


@dataclass(frozen=True)
class Run:
    """A finished (or stopped) sim run: its rounds as rows with column names (rounds.csv, README
    "File formats"; empty cells are None), final metrics (final.json) and its directory."""

    path: Path
    columns: tuple
    rows: list
    final: dict
    config: dict

    def column(self, name: str) -> list:
        """One column of the rounds, e.g. run.column("test_acc")."""
        check(name in self.columns, f"no column {name!r}; the rounds have {', '.join(self.columns)}")
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Run":
        from lgc.runs import read_csv

        path = Path(path)
        table = read_csv(path / "rounds.csv")
        columns = tuple(table[0].keys()) if table else ()
        final = json.loads((path / "final.json").read_text()) if (path / "final.json").exists() else {}
        return cls(path, columns, [tuple(_number(r[c]) for c in columns) for r in table], final,
                   json.loads((path / "config.json").read_text()))


def _number(text: str) -> Any:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def simulate(task, config: Union[TrainConfig, dict, None] = None, *, rule=None, root=None, force: bool = False,
             quiet: bool = True, **train_options) -> Run:
    """Train `task` (an lgc.Task) in the sim backend and return its Run.

    Args:
      task: the model factory, data and loss (lgc.Task).
      config: a TrainConfig or a dict of its field names (rounds, threshold_k, batch_size, blocks,
        lr, timing, ...); N defaults to the task's number of workers.
      rule: an algorithm name or an lgc.rules.Rule of the user's own (its kind, a table name,
        sets the rounds' structure; config's algorithm defaults to it).
      root: the results folder (default results/, or $LGC_RESULTS); force: rerun a cached run.
      train_options: passed to lgc.sim.train (stop_after, time_limit_s, resume).
    The run is cached by the config, the code and the task's fingerprint (lgc.fingerprint).
    """
    from lgc.sim.training import train

    cfg = task_config(task, config, rule=rule)
    path = train(cfg, root=root, force=force, quiet=quiet, task=task,
                 rule=None if isinstance(rule, str) else rule, **train_options)
    return Run.load(path)


def estimate(task, config: Union[TrainConfig, dict, None] = None, *, max_samples: Optional[int] = None,
             bootstrap: int = 200, level: float = 0.95, power_iters: int = 30, l_bootstrap: int = 20,
             trajectory_steps: int = 20, lr: Optional[float] = None, lbfgs_iters: int = 200, threads=None,
             quiet: bool = True, heldout_steps: Optional[int] = None):
    """The constants L, sigma2, zeta2, Delta of `task` at its initial weights, with bootstrap
    intervals (lgc.estimate.estimate_constants; `lgc estimate` for the built-in tasks): a
    theory.constants.Constants that theory.optimize_k and Problem.from_constants read.
    max_samples: at most this many samples of each worker (its first ones).
    heldout_steps: the held-out pilot's steps on the task's test set (lgc/heldout.py; None: theory.heldout.HELDOUT_STEPS,
    as `lgc estimate`; 0: none), its "heldout" record making optimize_k minimise the predicted test loss (eq. 8.14)."""
    import torch

    from lgc.estimate import estimate_constants, task_problem
    from lgc.task import make_task
    from theory.heldout import HELDOUT_STEPS

    check(max_samples is None or max_samples >= 2, f"max_samples={max_samples} must be >= 2")
    cfg = dataclasses.replace(task_config(task, config), device="cpu", threshold_k=1).resolved().validate()
    run = make_task(cfg, torch.device("cpu"), task=task)
    problem = task_problem(run, max_samples=max_samples, name=task.name, loss=task.loss)
    steps = HELDOUT_STEPS if heldout_steps is None else heldout_steps
    check(steps >= 0, f"heldout_steps={steps} must be >= 0 (0: no held-out pilot)")
    held = (run.ds.normalize(run.ds.x_test), run.ds.y_test) if len(run.ds.y_test) else None
    est = estimate_constants(problem, bootstrap=bootstrap, level=level, power_iters=power_iters,
                             l_bootstrap=l_bootstrap, trajectory_steps=trajectory_steps, lr=lr,
                             lbfgs_iters=lbfgs_iters, seed=cfg.seed, threads=threads, quiet=quiet,
                             heldout=held, heldout_steps=steps)
    est.source.update({"task": task.name, "n_workers": cfg.n_workers, "seed": cfg.seed})
    return est
