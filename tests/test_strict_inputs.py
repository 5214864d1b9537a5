"""Numbers that are not finite or out of range, files that are binary or malformed, checkpoints
that load but are wrong, a run that diverges, a reader that leaves the pipe: one line and exit 2
(a diverged run: exit 3 and final.json says so), never a traceback, and every JSON written is
strict (issue 12, items 4 and 5)."""
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lgc.cli import main
from lgc.runs import REPO_ROOT

from cli_refusal import RUN_NOTES, refused  # tests/cli_refusal.py

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = ["--workers", "3", "--k", "2", "--batch-size", "4", "--blocks", "2", "--model", "softmax", "--partition", "iid",
        "--synthetic-train", "120", "--synthetic-test", "12", "--samples-per-worker", "20", "--device", "cpu",
        "--threads", "1", "--quiet", "--eval-every", "0"]
QUAD = ["--dataset", "quadratic", "--workers", "3", "--k", "2", "--batch-size", "4", "--blocks", "2", "--device", "cpu", "--quiet",
        "--eval-every", "0"]
CONSTS = ["--L", "1", "--sigma2", "1", "--zeta2", "1", "--Delta", "1"]


def strict_loads(text: str):
    """json.loads that refuses NaN / Infinity (what other programs' parsers do)."""
    def refuse(name):
        raise AssertionError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def _fails(capsys, argv, match):
    return refused(capsys, argv, match, notes=RUN_NOTES)


# ----------------------------------------------------------------------------- item 4: numbers
@pytest.mark.parametrize("argv, match", [
    (["train", "--lr", "inf"], "--lr=inf must be a finite number"),
    (["train", "--lr", "nan"], "--lr=nan must be a finite number"),
    (["train", "--comm-alpha", "inf"], "--comm-alpha=inf must be a finite number"),
    (["train", "--algorithm", "anytime-minibatch", "--deadline", "inf"], "--deadline=inf must be a finite number"),
    (["train", "--timing-param", "rate=Infinity"], "timing_params.rate=inf must be a finite number"),
    (["optimize-k", *CONSTS, "--budget", "inf"], "--budget=inf must be a finite number"),
    (["optimize-k", *CONSTS, "--comm-alpha=-inf"], "--comm-alpha=-inf must be a finite number"),
    (["optimize-k", "--L", "nan", "--sigma2", "1", "--zeta2", "1", "--Delta", "1"], "--L=nan must be a finite number"),
])
def test_non_finite_flags_are_one_line_exit_2(capsys, tmp_path, argv, match):
    _fails(capsys, [*argv, *(["--results", str(tmp_path)] if argv[0] == "train" else [])], match)
    assert not (tmp_path / "train").exists()


def test_non_finite_number_in_a_config_file(capsys, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"lr": NaN}')  # Python's json reads it
    _fails(capsys, ["train", "--config", str(cfg), "--print-config"], "lr=nan must be a finite number")


@pytest.mark.parametrize("wall", ["nan", "-5", "inf"])
def test_schedule_walls_not_finite_or_negative_are_refused(capsys, tmp_path, wall):
    rows = "\n".join(f"{t},0 1 2,2 2 2,1.0,{wall if t == 1 else '1.0'},0.0" for t in range(3))
    f = tmp_path / "s.csv"
    f.write_text("round,fast,blocks,t_cut,wall,comm\n" + rows + "\n")
    _fails(capsys, ["train", *QUAD, "--rounds", "3", "--algorithm", "full-sync", "--schedule-file", str(f),
                    "--results", str(tmp_path)], f"wall={float(wall)} must be a finite number >= 0")


def test_a_diverging_run_stops_says_so_and_exits_3(capsys, tmp_path):
    argv = ["train", *QUAD, "--rounds", "60", "--lr", "100", "--results", str(tmp_path), "--json"]
    assert main(argv) == 3
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and "diverged at round" in err and "Traceback" not in err, err
    shown = strict_loads(out)
    run = Path(shown["run_dir"])
    final = strict_loads((run / "final.json").read_text())  # strict JSON: the NaN loss is null
    assert final["status"] == "diverged" and final["loss"] is None
    t = final["diverged_round"]
    assert t < 59 and final["rounds"] == t + 1  # it stopped there, not at T
    assert len((run / "rounds.csv").read_text().splitlines()) == t + 2  # header + rounds 0..t
    assert main(argv) == 3  # the cached run says it again
    assert "diverged at round" in capsys.readouterr().err


def test_strict_json_helper_writes_null_for_non_finite():
    from theory.jsonio import dumps

    text = dumps({"a": float("nan"), "b": [1.0, float("inf")], "c": np.float64("-inf"), "d": np.arange(2)})
    assert strict_loads(text) == {"a": None, "b": [1.0, None], "c": None, "d": [0, 1]}


# ----------------------------------------------------------------------------- item 5: files
@pytest.mark.parametrize("flag", ["--schedule-file", "--timing-param"])
def test_binary_schedule_or_trace_file(capsys, tmp_path, flag):
    f = tmp_path / "bin.csv"
    f.write_bytes(bytes(range(256)))
    extra = [flag, str(f)] if flag == "--schedule-file" else ["--timing", "trace", flag, f"path={f}"]
    _fails(capsys, ["train", *QUAD, "--rounds", "2", *extra, "--results", str(tmp_path)], "is not a text (CSV) file")


def _sim_run(tmp_path, capsys, rounds=4):
    argv = ["train", *TINY, "--rounds", str(rounds), "--stop-after", "2", "--checkpoint-every", "1",
            "--results", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    run = next((tmp_path / "train").iterdir())
    return argv, run


@pytest.mark.parametrize("edit, match", [
    (lambda st: st.pop("u"), "lacks u"),
    (lambda st: st.update(w=torch.zeros(3)), "w has shape (3,)"),
    (lambda st: st.update(round=-1), "round=-1 must be an integer in 0..4"),
    (lambda st: st.update(round=10**9), "round=1000000000 must be an integer in 0..4"),
    (lambda st: st.update(rows=[]), "holds 0 rows for round 2"),
    (lambda st: st.update(clock=float("nan")), "clock=nan must be a finite number"),
])
def test_checkpoint_that_loads_but_is_wrong(capsys, tmp_path, edit, match):
    from lgc.checkpoint import load_checkpoint, save_checkpoint

    argv, run = _sim_run(tmp_path, capsys)
    st = load_checkpoint(run / "checkpoint.pt")
    edit(st)
    st.pop("version")
    save_checkpoint(run / "checkpoint.pt", st)
    rows = (run / "rounds.csv").read_text()
    _fails(capsys, argv, match)
    assert not (run / "final.json").exists()  # round = 1e9 does not mark the run complete
    assert (run / "rounds.csv").read_text() == rows  # nothing written is lost


def test_final_json_that_is_a_list(capsys, tmp_path):
    argv = ["train", *QUAD, "--rounds", "2", "--results", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    final = next((tmp_path / "train").iterdir()) / "final.json"
    final.write_text("[1, 2]")
    _fails(capsys, argv, "is corrupt (not a JSON object)")
    assert final.read_text() == "[1, 2]"


def test_sizes_beyond_the_stated_limit_and_memory_errors(capsys, tmp_path, monkeypatch):
    _fails(capsys, ["train", "--synthetic-side", "100000", "--results", str(tmp_path)], "exceeds the limit")
    import lgc.commands.train as train_cmd

    def no_memory(*a, **k):
        raise MemoryError
    monkeypatch.setattr(train_cmd, "_report", no_memory)
    _fails(capsys, ["train", *QUAD, "--rounds", "1", "--results", str(tmp_path)], "out of memory")


def _write_cifar(root: Path, *, labels=None, meta=None):
    from lgc.data import cifar10

    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    for name in cifar10.TRAIN_FILES + [cifar10.TEST_FILE]:
        d = {b"labels": list(labels if labels is not None else [1, 2]),
             b"data": np.zeros((2, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))
    m = meta if meta is not None else {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (folder / cifar10.META_FILE).write_bytes(pickle.dumps(m, protocol=2))


@pytest.mark.parametrize("labels, meta, match", [
    (["a", "b"], None, "labels must be a list of integers"),
    ([0.5, 1.5], None, "labels must be a list of integers"),
    (None, {b"label_names": 7}, "malformed batches.meta"),
    (None, {b"label_names": [b"x"] * 3}, "malformed batches.meta"),
])
def test_malformed_cifar_files_are_one_line(tmp_path, labels, meta, match):
    from lgc.data import cifar10
    from lgc.errors import UserError

    _write_cifar(tmp_path, labels=labels, meta=meta)
    with pytest.raises(UserError, match=match):
        cifar10.load_cifar10(tmp_path, accept_md5_mismatch=True)


def test_optimize_k_json_into_a_closed_pipe_exits_quietly():
    """`lgc optimize-k --json | head -1`: no BrokenPipeError traceback, the SIGPIPE status."""
    cmd = f"{sys.executable} -m lgc optimize-k --workers 200 {' '.join(CONSTS)} --json | head -c 1 >/dev/null; " \
          f"echo ${{PIPESTATUS[0]}} >&2"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=REPO_ROOT,
                       env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    lines = r.stderr.strip().splitlines()
    assert lines == ["141"], r.stderr


# ----------------------------------------------------------------------------- issue 24 item 13: schedule and trace readers
def test_schedule_row_of_too_many_fields_says_so_once():
    from theory.errors import TheoryInputError
    from theory.schedule import SCHEDULE_FIELDS, schedule_from_csv

    text = ",".join(SCHEDULE_FIELDS) + "\n0,0 1,4 4,1.0,1.0,0.0,,,extra\n"
    with pytest.raises(TheoryInputError) as e:
        schedule_from_csv(text, source="s.csv")
    assert str(e.value) == "s.csv: malformed row 2: 9 fields, expected 8"


@pytest.mark.parametrize("version", ["9", "x", "0"])
def test_schedule_of_an_unknown_format_version_is_refused(version):
    from theory.errors import TheoryInputError
    from theory.schedule import SCHEDULE_FIELDS, schedule_from_csv

    text = f"# lgc schedule v{version}\n" + ",".join(SCHEDULE_FIELDS) + "\n0,0 1,4 4,1.0,1.0,0.0,,\n"
    with pytest.raises(TheoryInputError, match=f"schedule format v{version} is not readable here"):
        schedule_from_csv(text, source="s.csv")
    assert len(schedule_from_csv(text.replace(f"v{version}", "v3"), source="s.csv")) == 1


@pytest.mark.parametrize("rows,match", [
    ("0,0,0,-1.0,0.5\n", "need 0 <= start_s <= end_s"),
    ("0,0,0,0.0,0.5\n0,0,0,0.0,0.5\n", "row 3 repeats round 0, worker 0, block 0 (row 2)"),
])
def test_trace_rows_with_negative_times_or_repeated_blocks_are_refused(rows, match):
    from theory.errors import TheoryInputError
    from theory.trace import read_trace

    with pytest.raises(TheoryInputError, match=match.replace("(", r"\(").replace(")", r"\)")):
        read_trace("round,worker,block,start_s,end_s\n" + rows, source="t.csv")
