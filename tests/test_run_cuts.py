"""Paper cuts of issue 12: constants.json permissions and fsync, estimate's flags checked up
front and its progress bar, --out folders, the --threads default of `lgc train`."""
import json
import os
import stat

import pytest

from lgc.cli import main

CONSTS = {"L": 1.0, "sigma2": 1.0, "zeta2": 0.5, "Delta": 2.0}
QUAD = ["estimate", "--dataset", "quadratic", "--workers", "3", "--quad-dim", "4", "--samples-per-worker", "50",
        "--bootstrap", "10", "--l-bootstrap", "2", "--trajectory-steps", "2", "--lbfgs-iters", "5"]


def test_constants_file_is_an_ordinary_file_written_with_fsync(tmp_path, monkeypatch):
    from theory.constants import write_constants

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    old = os.umask(0o022)
    try:
        write_constants(tmp_path / "c.json", CONSTS)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o644  # mkstemp's 0600 was kept before
    assert synced and json.loads((tmp_path / "c.json").read_text())["L"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]


@pytest.mark.parametrize("flags, needle", [
    (["--trajectory-lr", "-1"], "--trajectory-lr -1.0 must be a finite number > 0"),
    (["--trajectory-lr", "nan"], "--trajectory-lr=nan must be a finite number"),  # lgc.cli: every flag
    (["--lbfgs-iters", "-1"], "--lbfgs-iters -1 must be >= 1"),
    (["--level", "nan"], "--level=nan must be a finite number"),
])
def test_estimate_flags_are_refused_before_any_work(flags, needle, tmp_path, capsys, monkeypatch):
    import lgc.commands.estimate as est

    monkeypatch.setattr(est, "build_problem", lambda args: pytest.fail("the problem was built before the check"))
    rc = main([*QUAD, *flags, "--out", str(tmp_path / "c.json")])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_estimate_draws_progress_unless_quiet(tmp_path, capsys):
    assert main([*QUAD, "--out", str(tmp_path / "a.json")]) == 0
    assert "estimate" in capsys.readouterr().err  # the tqdm bar, on stderr
    assert main([*QUAD, "--quiet", "--out", str(tmp_path / "b.json")]) == 0
    assert capsys.readouterr().err == ""


def test_out_into_a_missing_folder_is_an_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "no" / "such"
    rc = main([*QUAD, "--out", str(missing / "c.json")])
    err = capsys.readouterr().err
    assert rc == 2 and f"folder {missing} does not exist" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "no").exists()
    rc = main(["figures", "--out", str(missing / "figs")])
    err = capsys.readouterr().err
    assert rc == 2 and f"folder {missing} does not exist" in err, err
    assert not (tmp_path / "no").exists()


def test_train_threads_default_to_one_for_small_models(tmp_path, capsys):
    from lgc.threads import default_threads, torch_threads

    assert default_threads("mlp") == default_threads("cnn") == default_threads("quadratic") == 1
    assert default_threads("resnet18") is None
    tiny = ["train", "--workers", "3", "--k", "2", "--batch-size", "4", "--blocks", "2", "--model", "mlp", "--width", "4", "--partition",
            "iid", "--synthetic-train", "120", "--synthetic-test", "12", "--samples-per-worker", "20", "--rounds", "1",
            "--device", "cpu", "--quiet", "--json", "--results", str(tmp_path)]
    with torch_threads(2):
        assert main(tiny) == 0
    run = json.loads(capsys.readouterr().out)["run_dir"]
    meta = json.loads((tmp_path / run / "meta.json").read_text() if not os.path.isabs(run) else
                      open(os.path.join(run, "meta.json")).read())
    assert meta["environment"]["torch_threads"] == 1
