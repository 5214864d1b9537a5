"""`python -m lgc.dist MODULE:FUNCTION [flags]`: the dist backend on your own lgc.Task.

The same as `lgc train --backend dist --task MODULE:FUNCTION [flags]` (every flag of `lgc train`
but the built-in data set's and model's): spawns N local processes, or, started by torchrun,
runs this process as one rank (docs/DIST.md):

    torchrun --standalone --nproc-per-node 2 -m lgc.dist examples/own_task.py:make_task --k 1 --rounds 5
"""
import sys

from lgc.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0].startswith("-"):
        sys.stderr.write("usage: python -m lgc.dist MODULE:FUNCTION [lgc train flags]  (see lgc train --help)\n")
        sys.exit(2)
    sys.exit(main(["train", "--backend", "dist", "--task", argv[0], *argv[1:]]))
