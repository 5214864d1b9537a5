"""The `lgc` command: optimize-k, estimate, train, sweep-k, figures (README "The `lgc` command").

Each subcommand lives in lgc/commands/<name>.py with two functions:
`add_arguments(parser)` and `run(args) -> int` (a module with PASS_THROUGH = True gets the flags
it does not declare in args.passed: `lgc figures` hands them to the script it runs). A user error (UserError from lgc,
TheoryInputError from theory, a bad flag, a path that cannot be created, read or written) prints
one line and exits 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from lgc.errors import UserError
from theory.algorithms import NAMES
from theory.errors import TheoryInputError

SUBCOMMANDS = {
    "optimize-k": ("optimize_k", "table of the predicted error, the bound and E[R] over K; the recommended K* (the error "
                   "model's: use it to choose K) and the bound's (a guarantee)"),
    "estimate": ("estimate", "estimate L, sigma^2, zeta^2, Delta (and the error model's curvature bands) from a model "
                 "and data"),
    "train": ("train", "train with " + ", ".join(NAMES[:-1]) + " or " + NAMES[-1]),
    "sweep-k": ("sweep_k", "measure the test loss at a time budget over K (successive halving over seeds)"),
    "figures": ("figures", "draw the quick-profile (CPU) or paper-profile figures"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _load(module: str):
    return importlib.import_module(f"lgc.commands.{module}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `only`, just that subcommand's module is imported (its flags are
    added), so `lgc optimize-k` does not pay for torch imported by `train`."""
    parser = _Parser(prog="lgc", description=__doc__.splitlines()[0])
    from lgc import __version__

    parser.add_argument("--version", action="version", version=f"lgc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            _load(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    command = words[0] if words and words[0] in SUBCOMMANDS else None
    parser = build_parser(only=command)
    if command is not None and getattr(_load(SUBCOMMANDS[command][0]), "PASS_THROUGH", False):
        args, passed = parser.parse_known_args(argv)  # the flags its child process declares (`lgc figures`)
        args.passed = passed
    else:
        args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    mod = _load(args._module)
    try:
        from lgc.config_fields import check_finite_flags

        check_finite_flags(args)
        status = int(mod.run(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that left (BrokenPipeError) is handled below
        return status
    except (UserError, TheoryInputError) as e:
        if os.environ.get("RANK", "0") not in ("0", "") and os.environ["RANK"].isdigit() and "MASTER_ADDR" in os.environ:
            from lgc.errors import quiet_rank_exit_wait

            quiet_rank_exit_wait()  # rank 0 says it once, before torchrun stops the ranks
            return 2  # under torchrun every rank checks the same flags
        sys.stderr.write(f"lgc {args.command}: error: {e}\n")
        return 2
    except BrokenPipeError:  # `lgc optimize-k --json | head -1`: the reader left; exit quietly as Unix tools do
        _quiet_stdout()
        return 141
    except OSError as e:  # a path that cannot be created, read or written (--out, --results, ...)
        if e.filename is None:
            raise
        sys.stderr.write(f"lgc {args.command}: error: {e.filename}: {e.strerror}\n")
        return 2
    except MemoryError:
        sys.stderr.write(f"lgc {args.command}: error: out of memory: a size is too large for this machine "
                         f"(model width, data set size, N x B)\n")
        return 2
    except RuntimeError as e:  # torch's allocators raise RuntimeError subclasses
        if "out of memory" not in str(e) and "can't allocate memory" not in str(e):
            raise
        sys.stderr.write(f"lgc {args.command}: error: out of memory ({str(e).splitlines()[0][:120]}): a size is "
                         f"too large for this machine (model width, data set size, N x B)\n")
        return 2
    except KeyboardInterrupt as e:  # lgc.sim.Interrupted says which round was checkpointed
        sys.stderr.write(f"lgc {args.command}: {e or 'interrupted'}\n")
        return 128 + getattr(e, "signum", 2)  # 130 after Ctrl-C, 143 after SIGTERM


if __name__ == "__main__":
    sys.exit(main())
