"""What the figure scripts' command lines share. `lgc figures` runs a profile's script
(`python -m paper_figures.quick`, `python -m paper_figures.paper`) in a child process and passes
its flags through, so each flag is declared once, here in paper_figures, and lgc never imports
paper_figures. A user error is one line on stderr and exit status 2, as everywhere in `lgc`.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from lgc.errors import UserError, check

PROG = "lgc figures"  # what the user typed, in the usual case; the scripts' own prog names say how to run them


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2. `said`: the name the line starts with (PROG, for
    the scripts `lgc figures` runs; a script run only by hand, such as kstar_check, says its own prog)."""

    def __init__(self, *args, said: str = PROG, **kwargs):
        super().__init__(*args, **kwargs)
        self.said = said

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.said}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def fail(message: str, said: str = PROG) -> int:
    """Print a user error as one line (starting with `said`, as Parser's); returns the exit status 2."""
    print(f"{said}: error: {message}", file=sys.stderr)
    return 2


def make_out_folder(out: Path | None) -> None:
    """Create the --out folder (not the folders above it: a missing one is more often a typo than a
    wish), before any figure is drawn: one line now, rather than one traceback per figure later."""
    if out is None:
        return
    above = Path(out).absolute().parent
    check(above.is_dir(), f"--out {out}: folder {above} does not exist")
    try:
        Path(out).mkdir(exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create the folder ({e.strerror})") from None


def prepare_output_file(path: Path, flag: str = "--csv") -> None:
    """Create FILE's folder (parents included) now, before a long run rather than after it: a FILE that is a folder,
    or a folder that cannot be created, is a UserError naming the flag and the path."""
    path = Path(path)
    check(not path.is_dir(), f"{flag} {path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot create its folder {path.parent} ({e.strerror})") from None


def run_lgc(argv: list[str]) -> str:
    """`lgc ARGV` in this process (the scripts that chain estimate -> optimize-k -> sweep-k); returns what it
    printed on stdout. A non-zero exit status raises RuntimeError naming the command."""
    from lgc.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"lgc {' '.join(argv)} exited with {rc}")
    return buf.getvalue()
