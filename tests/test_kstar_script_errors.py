"""paper_figures/kstar_check.py and kstar_dev.py: a bad argument is one line naming the bad value and what is valid,
exit status 2, no traceback and no usage dump (as `lgc`'s commands, lgc/cli.py), before any cell runs."""
import subprocess
import sys
from pathlib import Path

import pytest

from paper_figures import kstar_check as kc
from paper_figures import kstar_dev as kd

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    (kc, ["--seeds", "1"], ["--seeds 1", ">= 2"]),
    (kc, ["--seeds", "x"], ["--seeds", "'x'"]),
    (kc, ["--grid", "third"], ["'third'", "'first'", "'second'"]),
    (kc, ["--eta-mode", "best"], ["'best'", "'fixed'", "'optimized'"]),
    (kc, ["--aligned", "--grid", "second"], ["--aligned", "--grid second"]),
    (kc, ["--no-such-flag"], ["--no-such-flag"]),
    (kc, ["--csv", "FOLDER"], ["--csv", "is a folder"]),
    (kd, ["--seeds", "0"], ["--seeds 0", ">= 2"]),
    (kd, ["--seeds", "2.5"], ["--seeds", "'2.5'"]),
    (kd, ["--no-such-flag"], ["--no-such-flag"]),
    (kd, ["--csv", "FOLDER"], ["--csv", "is a folder"]),
]


@pytest.mark.parametrize("module,argv,names", CASES, ids=[f"{m.__name__.split('.')[-1]} {' '.join(a)}"
                                                          for m, a, _ in CASES])
def test_bad_argument_is_one_line_and_status_2(module, argv, names, tmp_path, monkeypatch, capsys):
    def no_run(*a, **k):
        raise AssertionError("the check ran despite a bad argument")

    monkeypatch.setattr(module, "run", no_run)
    argv = [str(tmp_path) if a == "FOLDER" else a for a in argv]
    try:
        rc = module.main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    prog = f"python -m {module.__name__}"
    assert lines[0].startswith(f"{prog}: error: ") and "usage:" not in err
    for name in names:
        assert name in lines[0], lines[0]


def test_csv_folder_that_cannot_be_made_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    """A --csv whose folder cannot be created (a file stands in its way) fails now, not after the run."""
    monkeypatch.setattr(kc, "run", lambda *a, **k: pytest.fail("ran"))
    (tmp_path / "f").write_text("")
    assert kc.main(["--csv", str(tmp_path / "f" / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot create its folder" in err and str(tmp_path / "f") in err


def test_from_the_shell_no_traceback():
    r = subprocess.run([sys.executable, "-m", "paper_figures.kstar_check", "--grid", "third"], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr and "'third'" in r.stderr
