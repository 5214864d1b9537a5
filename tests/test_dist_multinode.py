"""The several-machine path as far as one machine allows (issue 12): two `torchrun --nnodes 2`
launchers rendezvous through c10d on 127.0.0.1 with the README's command; the launcher without
rank 0 is killed mid-run (its machine gone); the other ends within --timeout-s + 15 s with one
line from rank 0 naming the checkpoint, and the run resumes from it to the end.

Slow (two torchrun launchers, four processes, then a resume): `make test-dist-slow`."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lgc.checkpoint import load_checkpoint
from lgc.runs import REPO_ROOT, read_csv

pytestmark = pytest.mark.slow

ROUNDS = 200
TIMEOUT_S = 10
ARGS = ["train", "--backend", "dist", "--workers", "4", "--k", "3", "--algorithm", "lgc", "--rounds", str(ROUNDS),
        "--batch-size", "8", "--blocks", "4", "--dataset", "synthetic", "--synthetic-train", "800",
        "--synthetic-test", "80", "--partition", "iid", "--samples-per-worker", "200", "--model", "softmax",
        "--eval-every", "0", "--unit-ms", "10", "--timeout-s", str(TIMEOUT_S), "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """`pid` and every process below it (torchrun starts its workers in their own sessions)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _ranks_of(pid: int) -> set[int]:
    """RANK of every torchrun worker below `pid`."""
    out = set()
    for p in _tree(pid):
        try:
            env = dict(kv.split("=", 1) for kv in (Path(f"/proc/{p}/environ").read_bytes().decode(errors="replace")
                                                   .split("\0")) if "=" in kv)
        except OSError:
            continue
        if "RANK" in env and "TORCHELASTIC_RUN_ID" in env:
            out.add(int(env["RANK"]))
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_two_torchrun_nodes_one_killed_the_other_ends_with_a_resumable_checkpoint(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this python")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    # the README's command, with HOST = 127.0.0.1 and a free port
    cmd = [torchrun, "--nnodes", "2", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
           "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "lgc", *ARGS, "--results", str(tmp_path)]
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 150
        run = None
        while time.monotonic() < deadline:  # wait for a checkpoint of round >= 10 (the dist default)
            for ck in tmp_path.glob("train/*/checkpoint.pt"):
                try:
                    if int(load_checkpoint(ck)["round"]) >= 10:
                        run = ck.parent
                except Exception:
                    pass
            if run is not None:
                break
            assert all(n.poll() is None for n in nodes), [n.communicate() for n in nodes]
            time.sleep(0.1)
        assert run is not None, "no checkpoint appeared"
        ranks = [_ranks_of(n.pid) for n in nodes]
        assert sorted(ranks[0] | ranks[1]) == [0, 1, 2, 3], ranks
        victim = 0 if 0 not in ranks[0] else 1  # the node without rank 0 (whose machine holds the run)
        survivor = nodes[1 - victim]
        for p in _tree(nodes[victim].pid):  # the launcher and its workers: a machine gone
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed_at = time.monotonic()
        _, err = survivor.communicate(timeout=TIMEOUT_S + 60)
        ended_after = time.monotonic() - killed_at
    finally:
        for n in nodes:
            if n.poll() is None:
                for p in _tree(n.pid):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                n.communicate()
    assert survivor.returncode != 0
    assert ended_after < TIMEOUT_S + 15, ended_after
    ours = [ln for ln in err.splitlines() if ln.startswith("lgc train")]
    assert len(ours) == 1, err[-3000:]
    assert "lost the other ranks" in ours[0] and "checkpoint at round" in ours[0] and "--resume" in ours[0], ours
    assert not re.search(r'File ".*/lgc/', err), err[-3000:]  # no traceback from our code (torchrun prints its own)
    ck_round = int(load_checkpoint(run / "checkpoint.pt")["round"])
    before = read_csv(run / "rounds.csv")
    assert 10 <= ck_round < ROUNDS and [int(r["round"]) for r in before] == list(range(ck_round))
    assert not (run / "final.json").exists()
    # the checkpoint resumes: the same run (same flags, a local spawn of the 4 workers) finishes
    r = subprocess.run([sys.executable, "-m", "lgc", *ARGS, "--rounds", str(ROUNDS), "--results", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (run / "final.json").exists()
    after = read_csv(run / "rounds.csv")
    assert [int(x["round"]) for x in after] == list(range(ROUNDS)) and after[:ck_round] == before
