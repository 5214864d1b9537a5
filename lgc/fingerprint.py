"""The identity of a user's Task (and rule) in the run cache: what `lgc.sim.train` adds to a run's key.

A built-in task is named by its config fields (TaskConfig, cfg.task; and its input files:
lgc.runs.input_digests). A user's Task has no such names, so its key holds, under "task" in place
of the TaskConfig, a fingerprint of what it trains: the model's
architecture (its repr) and every parameter's name, shape, dtype and initial value at seed 0,
the training and test data (sha256 of the tensors' bytes), the partition (the N index arrays the
run uses) and the loss and metrics (their code). Same config and other data -> another run;
the same data -> the cached run. What cannot be fingerprinted (a loss that is neither a function,
a functools.partial of one nor an nn.Module) is not cached: `run_key` says why, and the run
trains in a fresh directory.
"""
from __future__ import annotations

import functools
import hashlib
import types
from typing import Optional

import numpy as np
import torch
from torch import nn


class Unidentifiable(Exception):
    """A part of a task or rule whose content cannot be hashed (the message says which)."""


def _tensor(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _value(h, v, what: str) -> None:
    """Hash a constant a function uses (closures, defaults, partial arguments)."""
    if isinstance(v, torch.Tensor):
        _tensor(h, v)
    elif isinstance(v, np.ndarray):
        _tensor(h, torch.from_numpy(np.ascontiguousarray(v)))
    elif isinstance(v, (types.FunctionType, functools.partial, nn.Module, types.BuiltinFunctionType)):
        _callable(h, v, what)
    elif isinstance(v, (tuple, list)):
        for x in v:
            _value(h, x, what)
    elif isinstance(v, dict):
        for k in sorted(v, key=repr):
            h.update(repr(k).encode())
            _value(h, v[k], what)
    elif v is None or isinstance(v, (bool, int, float, complex, str, bytes, type, types.ModuleType)):
        h.update(repr(v).encode())
    else:
        raise Unidentifiable(f"{what} holds a {type(v).__name__}, whose content cannot be hashed")


def _code(h, code: types.CodeType, what: str) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _code(h, c, what)
        else:
            h.update(repr(c).encode())


def _callable(h, fn, what: str) -> None:
    """Hash a function by its code, defaults and closure; a partial by its function and arguments;
    a module by its repr and state."""
    if isinstance(fn, functools.partial):
        _callable(h, fn.func, what)
        _value(h, fn.args, what)
        _value(h, fn.keywords, what)
    elif isinstance(fn, types.FunctionType):
        h.update(f"{fn.__module__}.{fn.__qualname__}".encode())
        _code(h, fn.__code__, what)
        _value(h, fn.__defaults__, what)
        _value(h, [c.cell_contents for c in fn.__closure__ or ()], what)
    elif isinstance(fn, types.BuiltinFunctionType):
        h.update(f"{fn.__module__}.{fn.__qualname__}".encode())
    elif isinstance(fn, nn.Module):
        h.update(repr(fn).encode())
        for k, t in fn.state_dict().items():
            h.update(k.encode())
            _tensor(h, t)
    else:
        raise Unidentifiable(f"{what} is a {type(fn).__name__}, not a function, functools.partial or nn.Module")


def task_fingerprint(task, n_workers: int, data_seed: int) -> str:
    """sha256 (16 hex digits) of the model, data, partition, loss and metrics of `task` (an
    lgc.Task) for a run of N workers and this data seed. Raises Unidentifiable."""
    h = hashlib.sha256()
    model = task.build_model(0)
    h.update(repr(model).encode())
    for name, p in model.named_parameters():
        h.update(name.encode())
        _tensor(h, p)
    for name, b in model.named_buffers():
        h.update(name.encode())
        _tensor(h, b)
    ds, parts = task.materialize(n_workers, data_seed)
    for t in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        _tensor(h, t)
    for p in parts:
        _tensor(h, torch.from_numpy(p))
    h.update(repr((ds.mean, ds.std, task.worker_weights, task.augment)).encode())
    _callable(h, task.loss_fn, f"Task {task.name!r} loss")
    for k, fn in sorted(task.metric_fns.items()):
        h.update(k.encode())
        _callable(h, fn, f"Task {task.name!r} metric {k!r}")
    return h.hexdigest()[:16]


def rule_fingerprint(rule) -> str:
    """sha256 (16 hex digits) of a Rule's init, update and kind. Raises Unidentifiable."""
    h = hashlib.sha256(rule.kind.encode())
    if isinstance(rule.init, type):  # a state class such as RuleState
        h.update(f"{rule.init.__module__}.{rule.init.__qualname__}".encode())
    else:
        _callable(h, rule.init, "the rule's init")
    _callable(h, rule.update, "the rule's update")
    return h.hexdigest()[:16]


def run_key(task=None, rule=None, *, n_workers: int, data_seed: int) -> tuple[dict, Optional[str]]:
    """(what the run's key adds for a user's task and rule, None) or ({...}, why they cannot be
    fingerprinted: the run is then not cached). Built-in task and rule: ({}, None)."""
    extra: dict = {}
    try:
        if task is not None:
            # in the run's key and config.json in place of the built-in TaskConfig (which the Task replaces);
            # data_seed, the one TaskConfig field a Task run reads (its partition), stays recorded
            extra["task"] = {"name": task.name, "fingerprint": task_fingerprint(task, n_workers, data_seed),
                             "data_seed": data_seed}
        if rule is not None and not isinstance(rule, str):
            extra["rule"] = {"kind": rule.kind, "fingerprint": rule_fingerprint(rule)}
    except Unidentifiable as e:
        return extra, str(e)
    return extra, None
