"""Command-line flags generated from the config dataclasses (lgc/config.py).

Every field of TrainConfig and DistOptions is one flag, named --field-name unless the field's
metadata names it otherwise (`--workers` for n_workers, `--k` for threshold_k, ...), with the
field's help text and its default. A field that is a config dataclass itself (TrainConfig's
`task`, a TaskConfig) gives its own fields' flags, flat (`--dataset`, `--model`, ...), and its
values nest under its name (config_values, to_argv). `lgc train`, `lgc estimate` and `lgc optimize-k` call
`add_config_arguments` with the fields they use, so a quantity has the same flag, help and
default everywhere. The dict field timing_params is the repeatable `--timing-param KEY=VALUE`,
parsed here once (`parse_timing_params`).

No torch import here: `lgc optimize-k` stays light.
"""
from __future__ import annotations

import argparse
import json
import typing
from dataclasses import MISSING, fields
from typing import Iterable, Optional

from lgc.commands._paths import input_path
from lgc.config_fields import check_not_null, nested
from lgc.errors import check
from lgc.runs import INPUT_METAVARS


def flag_name(f) -> str:
    """The command-line name of a dataclass field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _types(cls) -> dict:
    """int / float / str / bool / dict of each field (Optional[...] unwrapped)."""
    out = {}
    for name, tp in typing.get_type_hints(cls).items():
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        out[name] = typing.get_origin(args[0] if args else tp) or (args[0] if args else tp)
    return out


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def _help(f) -> str:
    d = _default(f)
    if d is None:
        shown = f.metadata.get("none") or "none"
    elif isinstance(d, bool):
        shown = "on" if d else "off"
    elif isinstance(d, dict):
        return f.metadata.get("help", "")
    else:
        shown = d
    return f"{f.metadata.get('help', '')} (default: {shown})"


def select(cls, only: Optional[Iterable[str]] = None, exclude: Iterable[str] = ()) -> list:
    """The fields of cls named in `only` (all when None), in declaration order, less `exclude`."""
    names = None if only is None else set(only)
    if names is not None:
        unknown = names - {f.name for f in fields(cls)}
        assert not unknown, f"{cls.__name__} has no fields {sorted(unknown)}"
    return [f for f in fields(cls) if (names is None or f.name in names) and f.name not in set(exclude)]


def add_config_arguments(parser, cls, *, only: Optional[Iterable[str]] = None, exclude: Iterable[str] = (),
                         layered: bool = True) -> None:
    """One flag per selected field of the dataclass cls. layered=True: a flag not given parses
    as None, so a config file can fill it (config_values); False: it parses as the default."""
    types, inner = _types(cls), nested(cls)
    for f in select(cls, only, exclude):
        if f.name in inner:  # TrainConfig.task: the TaskConfig's flags, flat
            add_config_arguments(parser, inner[f.name], layered=layered)
            continue
        tp, name = types[f.name], flag_name(f)
        default = None if layered else _default(f)
        if f.metadata.get("hidden"):
            continue
        if f.metadata.get("auto"):  # `--k 7` or `--k auto`
            parser.add_argument(name, dest=f.name, type=_or_auto(tp), default=default,
                                metavar=f.metadata.get("metavar"), help=_help(f))
        elif tp is bool:
            parser.add_argument(name, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=_help(f))
        elif tp is dict:
            parser.add_argument(name, dest=f.name, action="append", default=None,
                                metavar=f.metadata.get("metavar") or "KEY=VALUE", help=_help(f))
        else:
            metavar = f.metadata.get("metavar") or {str: "NAME", int: "INT", float: "X"}[tp]
            if metavar in INPUT_METAVARS:  # a file or folder the command reads (lgc.runs.input_paths)
                tp = input_path
            parser.add_argument(name, dest=f.name, type=tp, default=default, metavar=metavar, help=_help(f))


def _or_auto(tp):
    def parse(v: str):
        return "auto" if v == "auto" else tp(v)

    parse.__name__ = f"{tp.__name__} or auto"  # argparse's message: "invalid int or auto value: 'x'"
    return parse


def parse_timing_params(items: Optional[Iterable[str]], base: Optional[dict] = None) -> dict:
    """--timing-param KEY=VALUE items (VALUE is JSON, else text) over the parameters `base`."""
    params = dict(base or {})
    for item in items or []:
        check("=" in item, f"--timing-param {item!r} must look like KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            params[k.strip()] = v
    return params


def config_values(cls, args, base: Optional[dict] = None, *, only: Optional[Iterable[str]] = None,
                  source: str = "config") -> dict:
    """The values of cls's fields: `base` (a config file's), overridden by the flags given,
    each checked against the field's type (a JSON file could hold "rounds": "ten")."""
    d = dict(base or {})
    types, inner = _types(cls), nested(cls)
    for f in select(cls, only):
        if f.name in inner:  # TrainConfig.task: from the same flat flags, nested under "task"
            d[f.name] = config_values(inner[f.name], args, d.get(f.name), source=source)
            continue
        v = getattr(args, f.name, None)
        if types[f.name] is dict:
            if v:
                d[f.name] = parse_timing_params(v, d.get(f.name))
        elif v == "auto" and f.metadata.get("auto"):
            d[f.metadata["auto"]] = True
        elif v is not None:
            d[f.name] = v
            if f.metadata.get("auto"):  # `--k 7` over a file's "k_auto": true
                d[f.metadata["auto"]] = False
    check_not_null(d, cls, source=source)
    for name, v in d.items():
        tp = types.get(name)
        if tp is None or v is None or name in inner:
            continue
        ok = isinstance(v, tp) and not (tp is int and isinstance(v, bool))
        if tp is float and isinstance(v, int) and not isinstance(v, bool):
            d[name], ok = float(v), True
        check(ok, f"{source}: config key {name!r}={v!r} must be {tp.__name__}")
    return d


def to_argv(obj, *, only: Optional[Iterable[str]] = None) -> list[str]:
    """The flags that make `obj` (a TrainConfig, TaskConfig or DistOptions): config_values(parse(to_argv(c)))
    gives c back. None values have no flag (None is the default of every Optional field)."""
    types, inner = _types(type(obj)), nested(type(obj))
    argv: list[str] = []
    for f in select(type(obj), only):
        v, name = getattr(obj, f.name), flag_name(f)
        if f.name in inner:
            argv += to_argv(v)
            continue
        if v is None or f.metadata.get("hidden"):
            continue
        if f.metadata.get("auto") and getattr(obj, f.metadata["auto"]):
            argv += [name, "auto"]
            continue
        if types[f.name] is bool:
            argv.append(name if v else "--no-" + name[2:])
        elif types[f.name] is dict:
            for k, x in v.items():
                argv += [name, f"{k}={json.dumps(x)}"]
        else:
            argv += [name, str(v)]
    return argv
