"""LGC-SGD trainers: data, partitions, models, aggregation rules, the `sim` (virtual clock,
batched on one device) and `dist` (torch.distributed) backends, and the `lgc` command.

The public Python API (README "Python API"), loaded on first use so that `lgc optimize-k`
never imports torch:

    lgc.Task(model=..., workers=[...], test=..., loss=...)   # lgc.task.Task
    lgc.simulate(task, config) -> lgc.Run                      # lgc.api
    lgc.estimate(task) -> theory Constants                     # lgc.api (the module lgc.estimate is callable)
    lgc.Rule(init, update, kind)                                # lgc.rules.Rule
"""

__version__ = "0.1.0"

__all__ = ["Task", "Run", "Rule", "simulate", "estimate", "task_config"]


def __getattr__(name: str):
    if name == "Task":
        from lgc.task import Task

        return Task
    if name == "Rule":
        from lgc.rules import Rule

        return Rule
    if name in ("Run", "simulate", "task_config"):
        from lgc import api

        return getattr(api, name)
    if name == "estimate":  # the module (its functions) is also callable: lgc.estimate(task)
        import importlib

        return importlib.import_module("lgc.estimate")
    raise AttributeError(f"module 'lgc' has no attribute {name!r}")
