"""The run cache: keyed on what a run reads, one writer per run, --force replaces atomically,
a finished run extends to more rounds bit-identically (lgc/runs.py, lgc/sim.py train)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lgc import runs
from lgc.checkpoint import load_checkpoint
from lgc.config import TrainConfig
from lgc.sim import train

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cfg(**kw):
    base = dict(algorithm="lgc", n_workers=4, threshold_k=2, batch_size=10, blocks=5, rounds=12, lr=0.1,
                momentum=0.9, dataset="synthetic", synthetic_train=2000, synthetic_test=100, model="cnn", width=4,
                augment=True, samples_per_worker=100, eval_every=5, checkpoint_every=4, straggling_period=3,
                device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _rows_without_wall(path):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in runs.read_csv(path / "rounds.csv")]


# ----------------------------------------------------------------------------- the key: what a run reads
def test_editing_the_schedule_file_gives_a_new_run(tmp_path):
    cfg = _cfg(dataset="quadratic", rounds=4, eval_every=0)
    first = train(cfg, root=tmp_path / "rec", quiet=True)
    sched = tmp_path / "schedule.csv"
    sched.write_text((first / "schedule.csv").read_text())
    replay = _cfg(dataset="quadratic", rounds=4, eval_every=0, schedule_file=str(sched))
    a = train(replay, root=tmp_path, quiet=True)
    lines = sched.read_text().splitlines()
    header = next(line for line in lines if line.startswith("round,")).split(",")
    col = header.index("wall")
    row = lines[-1].split(",")
    row[col] = repr(float(row[col]) + 1.0)  # the last round took one time unit longer
    sched.write_text("\n".join(lines[:-1] + [",".join(row)]) + "\n")
    b = train(replay, root=tmp_path, quiet=True)
    assert a != b and runs.is_complete(a) and runs.is_complete(b)
    ta, tb = (json.loads((p / "final.json").read_text())["time"] for p in (a, b))
    assert tb == pytest.approx(ta + 1.0)


def test_run_key_hashes_trace_file_content_not_its_path(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("worker,round,block,time\n0,0,0,1.0\n")
    config = {"timing": "trace", "timing_params": {"path": str(trace)}}
    a = runs.run_dir("train", config, tmp_path)
    assert runs.run_dir("train", config, tmp_path) == a
    trace.write_text("worker,round,block,time\n0,0,0,2.0\n")
    assert runs.run_dir("train", config, tmp_path) != a


def test_cifar_folder_identity_is_in_the_key(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"x" * 10)
    config = TrainConfig(dataset="cifar10", data_dir=str(tmp_path)).to_dict()  # the key holds task.data_dir
    a = runs.run_dir("train", config, tmp_path)
    (tmp_path / "data_batch_1").write_bytes(b"y" * 11)
    assert runs.run_dir("train", config, tmp_path) != a


# ----------------------------------------------------------------------------- --force, lock, Ctrl-C
CLI_CFG = dict(n_workers=4, threshold_k=2, batch_size=10, blocks=5, rounds=400, model="mlp", width=8,
               synthetic_train=2000, synthetic_test=100, samples_per_worker=100, eval_every=0, checkpoint_every=5,
               device="cpu")


def _cli(root, *extra):
    c = CLI_CFG
    return [sys.executable, "-m", "lgc", "train", "--workers", str(c["n_workers"]), "--k", str(c["threshold_k"]),
            "--batch-size", str(c["batch_size"]), "--blocks", str(c["blocks"]), "--rounds", str(c["rounds"]),
            "--model", c["model"],
            "--width", str(c["width"]), "--synthetic-train", str(c["synthetic_train"]),
            "--synthetic-test", str(c["synthetic_test"]), "--samples-per-worker", str(c["samples_per_worker"]),
            "--eval-every", "0", "--checkpoint-every", "5", "--device", "cpu", "--threads", "1", "--quiet",
            "--results", str(root), *extra]


def _wait_for(folder, name, proc, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = list(Path(folder).rglob(name)) if Path(folder).exists() else []
        if found:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no {name} appeared under {folder} (exit {proc.poll()})")


def test_killed_forced_rerun_leaves_the_finished_run_intact(tmp_path):
    done = train(TrainConfig(**CLI_CFG), root=tmp_path, quiet=True)
    before = {p.name: p.read_bytes() for p in done.iterdir()}
    proc = subprocess.Popen(_cli(tmp_path, "--force"), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for(tmp_path / ".lgc" / "staging", "checkpoint.pt", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert {p.name: p.read_bytes() for p in done.iterdir()} == before  # nothing of the finished run is lost
    # a forced rerun that finishes replaces it: same results, new files, no staging left behind
    assert train(TrainConfig(**CLI_CFG), root=tmp_path, quiet=True, force=True) == done
    assert runs.is_complete(done) and (done / "final.json").read_bytes() != before["final.json"]  # wall_s differs
    assert not list((tmp_path / ".lgc" / "staging").iterdir())


def test_a_second_identical_run_waits_and_reuses_the_first(tmp_path):
    first = subprocess.Popen(_cli(tmp_path, "--json"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    _wait_for(tmp_path / "train", "config.json", first)  # the first holds the lock and is training
    loud = [a for a in _cli(tmp_path, "--json") if a != "--quiet"]  # --quiet drops the notes checked below
    second = subprocess.run(loud, cwd=ROOT, capture_output=True, text=True)
    out1, err1 = first.communicate()
    assert first.returncode == 0 and second.returncode == 0, (err1, second.stderr)
    assert "waiting for another process running the same run" in second.stderr
    assert "reusing the finished run" in second.stderr
    a, b = json.loads(out1), json.loads(second.stdout)
    assert a == b  # the same stored result, not a second run's (its wall_s would differ)
    assert len(runs.read_csv(Path(a["run_dir"]) / "rounds.csv")) == CLI_CFG["rounds"]


def test_ctrl_c_checkpoints_and_names_the_round_and_the_resume_command(tmp_path):
    proc = subprocess.Popen(_cli(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "train", "checkpoint.pt", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    assert "interrupted: round" in line and "is checkpointed; resume with: lgc train --config" in line, err
    t = int(line.split("interrupted: round ")[1].split()[0])
    run = next((tmp_path / "train").iterdir())
    assert load_checkpoint(run / "checkpoint.pt")["round"] == t
    command = line.split("resume with: ")[1].split()
    assert command[0] == "lgc"
    r = subprocess.run([sys.executable, "-m", *command, "--threads", "1"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert f"resuming {run} from round {t} of" in r.stderr
    assert runs.is_complete(run)


# ----------------------------------------------------------------------------- extension
def test_more_rounds_extend_a_finished_run_bit_identically(tmp_path, capsys):
    short = train(_cfg(rounds=7), root=tmp_path, quiet=True)
    long = train(_cfg(rounds=12), root=tmp_path, quiet=True)
    assert long != short and runs.is_complete(short)
    assert f"extending the finished run {short} from 7 to 12 rounds" in capsys.readouterr().err
    ref = train(_cfg(rounds=12), root=tmp_path / "ref", quiet=True)
    a, b = load_checkpoint(ref / "checkpoint.pt"), load_checkpoint(long / "checkpoint.pt")
    for k in ("w", "momentum", "u"):
        assert torch.equal(a[k], b[k]), k
    assert _rows_without_wall(ref) == _rows_without_wall(long)
    assert (ref / "schedule.csv").read_text() == (long / "schedule.csv").read_text()
    # the first 7 rounds were not recomputed: their measured seconds are the short run's
    assert [r["wall_s"] for r in runs.read_csv(long / "rounds.csv")[:7]] == \
        [r["wall_s"] for r in runs.read_csv(short / "rounds.csv")]


def test_a_run_with_another_setting_is_not_extended(tmp_path, capsys):
    train(_cfg(rounds=7, dataset="quadratic"), root=tmp_path, quiet=True)
    long = train(_cfg(rounds=12, dataset="quadratic", lr=0.05), root=tmp_path, quiet=True)
    assert "extending" not in capsys.readouterr().err
    assert len(runs.read_csv(long / "rounds.csv")) == 12


def test_a_reused_run_says_so_even_with_other_threads(tmp_path, capsys):
    cfg = _cfg(rounds=3, dataset="quadratic")
    p = train(cfg, root=tmp_path, quiet=True)
    stamp = (p / "final.json").stat().st_mtime_ns
    capsys.readouterr()
    from lgc.threads import torch_threads

    with torch_threads(2):  # threads do not change the result: not in the key, the run is reused
        assert train(cfg, root=tmp_path, quiet=True) == p
    assert f"reusing the finished run {p}" in capsys.readouterr().err
    assert (p / "final.json").stat().st_mtime_ns == stamp


# ----------------------------------------------------------------------------- the key: input files by contents (issue 24)
def _parser(command):
    from lgc.commands._paths import command_parser

    return command_parser(command)


def _make_input(path, metavar, text):
    """An input of the flag's kind at `path`: a file holding `text`, or a folder holding one."""
    if metavar == "DIR":
        path.mkdir(parents=True, exist_ok=True)
        (path / "data_batch_1").write_text(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _edit(path, metavar, text):
    (path / "data_batch_1" if metavar == "DIR" else path).write_text(text)


def _copy(src, dst):
    import shutil

    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)


def _input_flags(command):
    from lgc.commands._paths import input_actions

    return {a.option_strings[0]: a.metavar for a in input_actions(_parser(command))}


def test_every_input_flag_of_train_enters_the_run_key_by_contents_not_path(tmp_path, monkeypatch):
    """Each file-valued flag of `lgc train` (found from the flag definitions) and the trace of
    --timing-param path=: a copy elsewhere and an absolute spelling give the run's key, an edit
    another key (issue 24 items 1 and 2: the key missed --k-constants, and held paths)."""
    from lgc.commands._paths import TRACE_FLAG
    from lgc.commands.train import config_from_args

    flags = _input_flags("train")
    assert {"--config", "--k-constants", "--schedule-file", "--data-dir"} <= set(flags), flags
    monkeypatch.chdir(tmp_path)

    def key(flag, value):
        argv = ["--timing-param", f"path={value}"] if flag == TRACE_FLAG else [flag, value]
        args = _parser("train").parse_args(argv)
        return runs.run_dir("train", config_from_args(args).resolved().to_dict(), tmp_path / "res")

    for flag, metavar in {**flags, TRACE_FLAG: "FILE"}.items():
        folder = Path("cache") / flag.strip("-").replace(" ", "_")
        p1, p2 = folder / "p1.csv", folder / "p2.csv"
        _make_input(p1, metavar, '{"rounds": 5}\n')
        _copy(p1, p2)
        base = key(flag, str(p1))
        assert key(flag, str(p2)) == base, f"{flag}: a copy under another name gives another key"
        assert key(flag, str(tmp_path / p1)) == base, f"{flag}: the absolute path gives another key"
        _edit(p1, metavar, '{"rounds": 6}\n')
        assert key(flag, str(p1)) != base, f"{flag}: editing the file keeps the key (a stale result)"


def test_k_constants_are_recorded_by_contents_in_meta_json(tmp_path):
    kc = tmp_path / "kc.json"
    kc.write_text('{"L": 1}')
    path = runs.start_run(tmp_path / "run", {"k_constants": str(kc), "timing_params": {}})
    assert json.loads((path / "meta.json").read_text())["inputs"] == {"k_constants": runs.path_digest(kc)}


def test_estimate_and_optimize_k_record_their_inputs_by_contents(tmp_path, capsys):
    """lgc estimate and optimize-k keep no run key: their output names every input flag (found from
    the flag definitions) by the sha256 of its contents, the same for a copy, another for an edit."""
    from lgc.commands._paths import input_record
    from lgc.cli import main

    for command in ("estimate", "optimize-k"):
        flags = _input_flags(command)
        assert flags, command
        for flag, metavar in flags.items():
            p1, p2 = tmp_path / command / flag.strip("-") / "p1", tmp_path / command / flag.strip("-") / "p2"
            _make_input(p1, metavar, "a\n")
            _copy(p1, p2)
            def rec(p):
                args = _parser(command).parse_args([flag, str(p)])
                args.command = command
                return input_record(args)[flag]

            assert rec(p1) == rec(p2) and len(rec(p1)) == 16, (command, flag)
            _edit(p1, metavar, "b\n")
            assert rec(p1) != rec(p2), (command, flag)
    # and the outputs carry it
    conf = tmp_path / "run.json"
    conf.write_text('{"dataset": "quadratic", "n_workers": 3, "threshold_k": 2, "quad_dim": 3, "samples_per_worker": 20}')
    out = tmp_path / "kc.json"
    assert main(["estimate", "--config", str(conf), "--bootstrap", "10", "--l-bootstrap", "0", "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads(out.read_text())["source"]["inputs"] == {"--config": runs.path_digest(conf)}
    capsys.readouterr()
    assert main(["optimize-k", "--workers", "3", "--constants", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"] == {"--constants": runs.path_digest(out)}


# ----------------------------------------------------------------------------- a diverged run is final (issue 24 item 5)
def test_a_diverged_run_is_not_extended(tmp_path, capsys):
    cfg = dict(dataset="quadratic", lr=1e308, eval_every=0)
    short = train(_cfg(rounds=5, **cfg), root=tmp_path, quiet=True)
    first = json.loads((short / "final.json").read_text())
    assert first["status"] == "diverged"
    capsys.readouterr()
    long = train(_cfg(rounds=10, **cfg), root=tmp_path, quiet=True)
    assert "diverged: its record stands for 10 rounds" in capsys.readouterr().err
    fresh = train(_cfg(rounds=10, **cfg), root=tmp_path / "fresh", quiet=True)
    a, b = json.loads((long / "final.json").read_text()), json.loads((fresh / "final.json").read_text())
    for k in ("status", "diverged_round", "rounds", "loss"):
        assert a[k] == b[k] == first[k], k
    assert _rows_without_wall(long) == _rows_without_wall(fresh)
    assert json.loads((long / "config.json").read_text())["rounds"] == 10


# ----------------------------------------------------------------------------- signals and stale temporary files (item 12)
def test_sigterm_checkpoints_like_ctrl_c(tmp_path):
    proc = subprocess.Popen(_cli(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(tmp_path / "train", "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    line = err.strip().splitlines()[-1]
    assert "terminated: round" in line and "is checkpointed; resume with: lgc train --config" in line, err
    t = int(line.split("terminated: round ")[1].split()[0])
    run = next((tmp_path / "train").iterdir())
    assert load_checkpoint(run / "checkpoint.pt")["round"] == t


def test_a_dead_writers_temporary_files_go_when_the_run_is_next_opened(tmp_path):
    cfg = _cfg(dataset="quadratic", rounds=6, eval_every=0, checkpoint_every=2)
    path = train(cfg, root=tmp_path, quiet=True, stop_after=2)
    stale = [path / ".schedule.csv.abc123.tmp", path / ".checkpoint.pt.x.tmp"]
    for f in stale:
        f.write_bytes(b"half a file")  # what kill -9 during atomic_write_bytes leaves
    assert train(cfg, root=tmp_path, quiet=True) == path and runs.is_complete(path)
    assert not any(f.exists() for f in stale)
    assert not list(path.glob(".*.tmp"))


def test_an_unwritable_result_file_is_named_not_its_temporary_file(tmp_path):
    with pytest.raises(OSError) as e:
        runs.atomic_write_text("/proc/e.json", "x")
    assert e.value.filename == "/proc/e.json"


def test_editing_k_constants_reruns_and_a_renamed_copy_reuses(tmp_path):
    """Issue 24 item 1 end to end: --k auto read kc.json; editing L in it must not reuse the run
    (it had: "reusing the finished run", K 1,1 where a fresh run picks K 4,4), a copy under
    another name must (same contents)."""
    kc = tmp_path / "kc.json"

    def write(L):
        kc.write_text(json.dumps({"format": 1, "L": L, "sigma2": 1.0, "zeta2": 0.5, "Delta": 5.0}))

    def run(path):
        r = subprocess.run([sys.executable, "-m", "lgc", "train", "--workers", "4", "--k", "auto", "--batch-size", "8",
                            "--blocks", "4", "--rounds", "25", "--budget", "50", "--dataset", "quadratic",
                            "--k-constants", str(path), "--threads", "1", "--results", str(tmp_path / "r"),
                            "--json"], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["run_dir"], "reusing the finished run" in r.stderr

    write(1.0)
    first, _ = run(kc)
    copy = tmp_path / "other_name.json"
    copy.write_bytes(kc.read_bytes())
    assert run(copy) == (first, True)
    write(50.0)
    edited, reused = run(kc)
    assert edited != first and not reused
