#!/usr/bin/env bash
# Your own model and data under torchrun: two processes on this machine (gloo on CPU), each one
# worker, each rebuilding the Task from examples/own_task.py:two_workers (docs/DIST.md).
#
#     PYTHONPATH=. bash examples/own_task_torchrun.sh [lgc train flags, e.g. --results DIR]
#
# On several machines: --nnodes, --node-rank and a reachable --master-addr instead (docs/DIST.md).
set -euo pipefail
exec torchrun --nnodes 1 --nproc-per-node 2 --master-addr 127.0.0.1 --master-port "${PORT:-29517}" \
    -m lgc.dist examples/own_task.py:two_workers \
    --k 1 --batch-size 8 --blocks 4 --rounds 6 --lr 0.1 --unit-ms 20 --quiet "$@"
