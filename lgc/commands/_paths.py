"""Paths on the command line: output paths checked before the work that fills them (a typo must
not cost a long computation), and input paths marked (`input_path`) so that what a command read
is recorded by content (`input_record`)."""
from __future__ import annotations

import os
from pathlib import Path

from lgc.errors import check


def check_writable_file(path: str | os.PathLike, flag: str) -> None:
    """UserError unless `path` can be written: it is not a folder, and its folder exists and is
    writable. Every command creates the file (or folder) it is told to write, never the folders
    above it: a missing folder is more often a typo than a wish."""
    p = Path(path).absolute()
    check(not p.is_dir(), f"{flag} {path}: is a folder, expected a file name")
    folder = p.parent
    check(folder.exists(), f"{flag} {path}: folder {folder} does not exist")
    check(folder.is_dir(), f"{flag} {path}: {folder} is not a folder")
    check(os.access(folder, os.W_OK | os.X_OK), f"{flag} {path}: folder {folder} is not writable")


def check_plot_file(path: str, flag: str = "--plot") -> None:
    """check_writable_file, and the name must end in an extension matplotlib writes: it picks the
    format (without one, matplotlib would write PATH.png, not the file named)."""
    check(path.strip() != "", f"{flag} '': an empty file name; give a file such as curve.png or curve.pdf")
    check_writable_file(path, flag)
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = sorted(FigureCanvasBase.get_supported_filetypes())
    ext = Path(path).suffix[1:].lower()
    check(ext in kinds, f"{flag} {path}: the file name's extension picks the format; end it in one of "
                        f"{', '.join('.' + k for k in kinds)}")


def input_path(text: str) -> str:
    """The argparse type of every flag that names an input file or folder (--config, --constants,
    --k-constants, --schedule-file, --data-dir, --checkpoint, ...): input_actions finds them."""
    return text


def command_parser(command: str):
    """A parser holding just the flags of `lgc <command>` (lgc.cli.SUBCOMMANDS)."""
    import argparse
    import importlib

    from lgc.cli import SUBCOMMANDS

    parser = argparse.ArgumentParser(prog=f"lgc {command}")
    importlib.import_module(f"lgc.commands.{SUBCOMMANDS[command][0]}").add_arguments(parser)
    return parser


def input_actions(parser) -> list:
    """The actions of `parser` (its groups included) whose type is input_path."""
    return [a for a in parser._actions if a.type is input_path]


TRACE_FLAG = "--timing-param path"  # the trace of the trace and trace-fit timing models


def input_record(args) -> dict[str, str]:
    """{flag: sha256 of its contents (16 hex digits; lgc.runs.path_digest)} for every input path
    given to this command, and the trace among --timing-param; a command that keeps no run key
    records this in its output, so its result names its inputs by content, not by path."""
    from lgc.commands._config_args import parse_timing_params
    from lgc.runs import path_digest

    out = {}
    for a in input_actions(command_parser(args.command)):
        v = getattr(args, a.dest, None)
        if v is not None:
            out[a.option_strings[0]] = path_digest(v)
    trace = parse_timing_params(getattr(args, "timing_params", None) or []).get("path")
    if isinstance(trace, str):
        out[TRACE_FLAG] = path_digest(trace)
    return out
