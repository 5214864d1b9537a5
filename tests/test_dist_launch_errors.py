"""torchrun's environment and rendezvous failures are one line (issue 24 items 4 and 11): MASTER_PORT=abc was a
traceback, an unknown MASTER_ADDR printed 46-113 lines of c10d retry warnings first, and a MASTER_PORT in use was
reported as "lost the other ranks"."""
import os
import socket
import subprocess
import sys
import time

import pytest

ARGV = [sys.executable, "-m", "lgc", "train", "--workers", "1", "--k", "1", "--batch-size", "4", "--blocks", "2",
        "--rounds", "2", "--model", "softmax", "--partition", "iid", "--synthetic-train", "40", "--synthetic-test", "8",
        "--samples-per-worker", "20", "--threads", "1", "--quiet", "--backend", "dist", "--timeout-s", "20"]


def _rank0(tmp_path, addr, port, rank="0"):
    env = {**os.environ, "RANK": rank, "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": addr, "MASTER_PORT": port}
    t0 = time.monotonic()
    p = subprocess.run(ARGV + ["--results", str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    return p, time.monotonic() - t0


def _one_line(p, *matches):
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    for m in matches:
        assert m in p.stderr, p.stderr


@pytest.mark.parametrize("port", ["abc", "0", "70000", ""])
def test_a_bad_master_port_is_one_line(tmp_path, port):
    p, _ = _rank0(tmp_path, "127.0.0.1", port)
    _one_line(p, f"MASTER_PORT={port!r}", "1..65535")


def test_an_unknown_master_addr_is_one_line_before_the_timeout(tmp_path):
    p, took = _rank0(tmp_path, "no-such-host.invalid", "29541")
    _one_line(p, "MASTER_ADDR 'no-such-host.invalid' cannot be resolved")
    assert "c10d" not in p.stderr and took < 20  # not --timeout-s of retries


def test_a_master_port_in_use_says_so(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p, _ = _rank0(tmp_path, "127.0.0.1", str(port))
    _one_line(p, f"MASTER_PORT={port}: the port is in use")
    assert "lost the other ranks" not in p.stderr


def test_a_bad_rank_is_said_not_swallowed(tmp_path):
    """The other ranks stay quiet (rank 0 speaks for them), but RANK=abc is no other rank."""
    p, _ = _rank0(tmp_path, "127.0.0.1", "29542", rank="abc")
    _one_line(p, "RANK='abc' must be an integer in 0..0")
