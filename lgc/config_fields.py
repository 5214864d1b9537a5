"""What every config dataclass (TrainConfig, TaskConfig, DistOptions) is made of: `option`, a field
with its help text (the command-line flags are generated from it, lgc/commands/_config_args.py),
and the checks every field gets (not null unless Optional, finite, seeds in range).

No torch import here: `lgc optimize-k` reads the configs without loading torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import field, fields
from pathlib import Path
from typing import Any

from lgc.errors import UserError, check


def option(default: Any = None, help: str = "", *, flag: str | None = None, metavar: str | None = None,
           none: str | None = None, factory=None, auto: str | None = None, hidden: bool = False):
    """A config field with its help text. flag: the command-line name when it is not
    --field-name; none: what a None default means (shown as the flag's default); auto: the
    flag also takes the word `auto`, which sets that bool field instead (`--k auto`); hidden:
    no flag of its own (set through another field's `auto`)."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "none": none, "auto": auto, "hidden": hidden}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def nested(cls) -> dict[str, type]:
    """The fields of the config dataclass cls that are config dataclasses themselves (TrainConfig's
    `task`): name -> class. Their flags are flat (--dataset, not --task-dataset)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if dataclasses.is_dataclass(hints[f.name])}


SEED_MAX = 2**63 - 1  # seeds travel as int64 (numpy, torch); 99999999999999999999 overflowed deep in a run


def check_seed(name: str, value: Any) -> None:
    """A seed is an integer in 0..SEED_MAX (numpy's SeedSequence refuses negatives, int64 larger ones)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEED_MAX
    check(ok, f"{name}={value} must be an integer in 0..{SEED_MAX} (2^63 - 1)")


def nullable(cls) -> set[str]:
    """The fields of the config dataclass cls whose type is Optional[...] (None is their 'not set')."""
    hints = typing.get_type_hints(cls)
    return {f.name for f in fields(cls) if type(None) in typing.get_args(hints[f.name])}


def check_not_null(obj_or_values, cls=None, *, source: str = "config") -> None:
    """No field outside nullable(cls) is None: a config file's {"lr": null} reached the checks (None > 0)
    and the run as a traceback. obj_or_values: a TrainConfig / DistOptions, or a dict of cls's fields."""
    cls = cls or type(obj_or_values)
    values = obj_or_values if isinstance(obj_or_values, dict) else {f.name: getattr(obj_or_values, f.name)
                                                                     for f in fields(cls)}
    allowed = nullable(cls)
    hints = typing.get_type_hints(cls)
    for name, v in values.items():
        if v is None and name in hints and name not in allowed:
            tp = typing.get_origin(hints[name]) or hints[name]
            where = f"null is valid only for {', '.join(sorted(allowed))}" if allowed else "no key may be null"
            what = "a JSON object" if tp is dict or dataclasses.is_dataclass(tp) else tp.__name__
            check(False, f"{source}: config key {name!r} is null; it must be {what} ({where})")


def check_finite(name: str, value: Any) -> None:
    """Every number must be finite: argparse's float() takes 'inf' and 'nan', Python's json reads
    NaN and Infinity, and either would run to a NaN loss or time with exit status 0."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(f"{name}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            check_finite(name, v)
    else:
        check(not isinstance(value, float) or math.isfinite(value), f"{name}={value} must be a finite number")


def check_finite_flags(args) -> None:
    """check_finite for every parsed flag of a command (lgc.cli calls it before the command runs)."""
    for dest, value in vars(args).items():
        if not dest.startswith("_"):
            check_finite("--" + dest.replace("_", "-"), value)


def read_json_object(path: str | Path) -> dict:
    """The JSON object in a config file; UserError (one line) if it is missing or malformed."""
    p = Path(path)
    check(p.is_file(), f"config file {p} does not exist")
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"config file {p} is not valid JSON: {getattr(e, 'msg', e)}"
                        + (f" at line {e.lineno}" if hasattr(e, "lineno") else "")) from None
    check(isinstance(d, dict), f"config file {p} must hold a JSON object")
    return d
