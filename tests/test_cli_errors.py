"""Bad input to every `lgc` subcommand: one line naming the value, exit status 2, no traceback,
and nothing already written is lost. (The common cases live beside each command's tests:
test_train_cli.py, test_optimize_k.py, test_estimate.py, test_figures.py, test_dist_failures.py;
these are the ones a newcomer hit that those did not cover.)"""
import json

import numpy as np
import pytest

from lgc.cli import main

from cli_refusal import refused as _fails  # tests/cli_refusal.py

TINY = ["--workers", "3", "--k", "2", "--batch-size", "4", "--blocks", "2", "--model", "softmax", "--partition", "iid",
        "--synthetic-train", "120", "--synthetic-test", "12", "--samples-per-worker", "20", "--device", "cpu",
        "--threads", "1", "--quiet"]
CONSTS = ["--L", "1", "--sigma2", "1", "--zeta2", "1", "--Delta", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_train_accepts_the_flag_names_of_the_readme_and_optimize_k(capsys):
    """README: `lgc train --workers 10 --k 7`; optimize-k and estimate call N --workers too."""
    assert main(["train", "--workers", "6", "--k", "4", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["n_workers"], cfg["threshold_k"]) == (6, 4)
    _fails(capsys, ["train", "--workers", "3", "--k", "5", "--print-config"], "K=5 must satisfy 1 <= K <= N=3")


@pytest.mark.parametrize("flags,match", [
    (["--threads", "0"], "--threads=0 must be >= 1"),
    (["--stop-after", "-1"], "--stop-after=-1 must be >= 1"),
    (["--time-limit", "-5"], "--time-limit=-5.0 must be > 0"),
])
def test_train_run_control_flags_out_of_range(capsys, tmp_path, flags, match):
    _fails(capsys, ["train", *TINY, "--rounds", "1", *flags, "--results", str(tmp_path)], match)
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize("junk", [b"junk\n", b"PK\x03\x04 not a zip", bytes(range(64))])
def test_corrupt_checkpoint_stops_the_resume_and_keeps_the_rows(capsys, tmp_path, junk):
    """Any garbage in checkpoint.pt (torch.load raises KeyError, BadZipFile, UnpicklingError, ...)."""
    argv = ["train", *TINY, "--rounds", "4", "--checkpoint-every", "1", "--results", str(tmp_path)]
    assert main([*argv, "--stop-after", "2"]) == 0
    capsys.readouterr()
    (run,) = tmp_path.glob("train/*")
    kept = {f.name: f.read_bytes() for f in run.iterdir() if f.name != "checkpoint.pt"}
    (run / "checkpoint.pt").write_bytes(junk)
    _fails(capsys, argv, "checkpoint.pt cannot be read")
    assert {f.name: f.read_bytes() for f in run.iterdir() if f.name != "checkpoint.pt"} == kept
    assert len((run / "rounds.csv").read_text().splitlines()) == 3  # header + the 2 rounds done


@pytest.mark.parametrize("text,match", [
    ("garbage\n", "header must be round,fast,blocks_done,t_cut,wall,comm"),
    ("# lgc schedule v1\nround,fast,blocks,t_cut,wall,comm\n0,0 1,x y z,1,1,0\n", "sched.csv"),
    ("# lgc schedule v1\nround,fast,blocks,t_cut,wall,comm\n", "lacks rounds"),
])
@pytest.mark.parametrize("backend", ["sim", "dist"])
def test_corrupt_schedule_csv(capsys, tmp_path, text, match, backend):
    path = _write(tmp_path / "sched.csv", text)
    _fails(capsys, ["train", *TINY, "--rounds", "3", "--backend", backend, "--schedule-file", path,
                    "--results", str(tmp_path)], match)
    assert not list(tmp_path.glob("train/*/rounds.csv"))


def test_cifar_folder_of_junk_files(capsys, tmp_path):
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"junk\n")
    base = ["train", *TINY, "--rounds", "1", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"),
            "--results", str(tmp_path)]
    _fails(capsys, base, "MD5")
    _fails(capsys, [*base, "--accept-md5-mismatch"], "corrupt")


def test_dist_refuses_modelled_communication(capsys, tmp_path):
    _fails(capsys, ["train", *TINY, "--rounds", "2", "--backend", "dist", "--comm-alpha", "1", "--results", str(tmp_path)],
           "comm_alpha/comm_beta")


@pytest.mark.parametrize("plot,match", [
    ("{tmp}/no/such/folder/k.png", "folder"),
    ("{tmp}/k.xyz", "extension picks the format"),
])
def test_optimize_k_plot_path_that_cannot_be_written(capsys, tmp_path, plot, match):
    out = _fails(capsys, ["optimize-k", "--workers", "4", *CONSTS, "--plot", plot.format(tmp=tmp_path)], match)
    if match == "folder":
        assert out == ""  # refused before the computation


@pytest.mark.parametrize("text,match", [
    ("garbage\n", "header must be round,worker,block,start_s,end_s"),
    ("round,worker,block,start_s,end_s\n0,0,0,oops,1\n", "trace.csv"),
])
def test_optimize_k_corrupt_trace(capsys, tmp_path, text, match):
    path = _write(tmp_path / "trace.csv", text)
    _fails(capsys, ["optimize-k", "--workers", "4", *CONSTS, "--timing", "trace", "--timing-param", f"path={path}"], match)


@pytest.mark.parametrize("text,match", [
    ("[1, 2]", "must be a JSON object"),
    ('{"L": 1, "sigma2": 1, "zeta2": 1}', "missing key 'Delta'"),
    ('{"L": "big", "sigma2": 1, "zeta2": 1, "Delta": 1}', "L='big' must be a finite number"),
])
def test_optimize_k_malformed_constants(capsys, tmp_path, text, match):
    _fails(capsys, ["optimize-k", "--constants", _write(tmp_path / "c.json", text)], match)


def test_estimate_corrupt_checkpoint_keeps_the_old_constants(capsys, tmp_path):
    out = tmp_path / "constants.json"
    out.write_text('{"L": 1}')
    bad = _write(tmp_path / "w.pt", "junk")
    _fails(capsys, ["estimate", "--checkpoint", bad, "--out", str(out), "--bootstrap", "10"], "--checkpoint")
    assert out.read_text() == '{"L": 1}'


def test_figures_unknown_profile_and_figure(capsys):
    _fails(capsys, ["figures", "--profile", "huge"], "invalid choice: 'huge'")
    _fails(capsys, ["figures", "--only", "fig_nothing"], "no such figure")


def test_paper_profile_reads_constants_before_training(capsys, tmp_path):
    """A bad --constants is refused before the chunk trains (it used to be read only to draw,
    after up to --chunk-minutes of GPU time, and a TheoryInputError escaped as a traceback)."""
    bad = _write(tmp_path / "c.json", '{"L": 1}')
    argv = ["figures", "--profile", "paper", "--data-dir", str(tmp_path / "no-cifar"), "--constants", bad,
            "--out", str(tmp_path / "figs")]
    _fails(capsys, argv, "missing key 'sigma2'")
    assert not list((tmp_path / "figs").glob("*"))  # no progress.json, no figure


@pytest.mark.parametrize("model", ["trace", "trace-fit"])
def test_trace_timing_without_a_path(capsys, model):
    """It was a TypeError traceback (the factory's required argument was never checked)."""
    _fails(capsys, ["optimize-k", "--workers", "4", *CONSTS, "--timing", model], f"timing model '{model}' needs the parameter 'path'")


def test_pareto_order_statistic_with_an_infinite_mean_is_inf_not_noise():
    """E[X_(k:n)] of Pareto(alpha) is finite only when alpha (n - k + 1) > 1; quadrature of the
    divergent integral returned arbitrary values (negative ones included)."""
    from theory.order_stats import expected_order_statistic
    from theory.timing import Pareto

    model = Pareto(alpha=0.5)
    assert expected_order_statistic(model, 10, 10) == float("inf")
    assert expected_order_statistic(model, 9, 10) == float("inf")  # alpha * 2 = 1: still divergent
    # alpha (n - k + 1) > 1: the closed form E[X_(k:n)] = scale G(n+1) G(n-k+1-1/a) / (G(n-k+1) G(n+1-1/a))
    from scipy.special import gammaln

    for k in (1, 5, 8):
        a, n = model.alpha, 10
        exact = model.scale * np.exp(gammaln(n + 1) + gammaln(n - k + 1 - 1 / a) - gammaln(n - k + 1) - gammaln(n + 1 - 1 / a))
        assert expected_order_statistic(model, k, n) == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize("command", [
    ["train", *TINY, "--rounds", "1", "--results", "{file}/results"],
    ["estimate", "--dataset", "quadratic", "--bootstrap", "10", "--out", "{file}/c.json"],
    ["estimate", "--dataset", "quadratic", "--bootstrap", "10", "--out", "{tmp}"],
    ["figures", "--only", "tradeoff", "--quiet", "--out", "{file}/figs"],
])
def test_output_path_that_cannot_be_created(capsys, tmp_path, command):
    """An output under a plain file (or a folder given as a file) was an OSError traceback."""
    blocker = tmp_path / "plain-file"
    blocker.write_text("keep me")
    _fails(capsys, [a.format(file=blocker, tmp=tmp_path) for a in command], str(tmp_path))
    assert blocker.read_text() == "keep me"


def test_corrupt_final_json_of_a_finished_run(capsys, tmp_path):
    argv = ["train", *TINY, "--rounds", "2", "--results", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    (final,) = tmp_path.glob("train/*/final.json")
    final.write_text("{trunc")
    _fails(capsys, argv, "final.json is corrupt")
    assert main([*argv, "--force"]) == 0 and json.loads(final.read_text())["rounds"] == 2


@pytest.mark.parametrize("backend", ["sim", "dist"])
def test_replayed_schedule_with_another_k(capsys, tmp_path, backend):
    """A K = 2 schedule replayed with -K 1 used to run silently with K = 2 while config.json said 1."""
    argv = ["train", *TINY, "--rounds", "4", "--results", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    (sched,) = tmp_path.glob("train/*/schedule.csv")
    out = tmp_path / "other"
    _fails(capsys, [*argv[:-1], str(out), "--k", "1", "--backend", backend, "--schedule-file", str(sched)],
           "schedule round 2 has K=2 fast workers, run has K=1")
    assert not list(out.glob("train/*/rounds.csv"))


def test_a_dist_runs_config_json_reruns_it(capsys, tmp_path):
    """`lgc train --config results/train/<key>/config.json` of a dist run was refused ("unknown
    config key 'dist'"): now its dist options are read too, so the same run is found and reused;
    a flag still overrides the file; a bad dist option is one line."""
    argv = ["train", *TINY, "--rounds", "2", "--backend", "dist", "--unit-ms", "7", "--results", str(tmp_path), "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    config = f"{first['run_dir']}/config.json"
    stamp = (tmp_path / first["run_dir"] / "final.json").stat().st_mtime_ns
    assert main(["train", "--config", config, "--quiet", "--results", str(tmp_path), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["run_dir"] == first["run_dir"] and again["unit_ms"] == 7
    assert (tmp_path / first["run_dir"] / "final.json").stat().st_mtime_ns == stamp  # reused, not rerun
    _fails(capsys, ["train", "--config", config, "--unit-ms", "-1", "--results", str(tmp_path)], "unit_ms=-1.0")
    bad = json.loads(open(config).read())
    bad["dist"]["warp_speed"] = 9
    _fails(capsys, ["train", "--config", _write(tmp_path / "bad.json", json.dumps(bad))], "unknown dist option 'warp_speed'")


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an infinite E[R] row must not warn
def test_optimize_k_with_an_infinite_mean_timing_model(capsys):
    """Pareto alpha <= 1 with boundary semantics: the carry-overs have infinite mean, E[R] would
    be a Monte Carlo figure of an infinite mean and K* arbitrary, so it is refused. With abort
    semantics (the default) E[R(K)] = E[X_(K:N)], finite for small K."""
    args = ["optimize-k", "--workers", "6", *CONSTS, "--timing", "pareto", "--timing-param", "alpha=0.5"]
    _fails(capsys, [*args, "--semantics", "boundary"], "infinite mean")
    assert main([*args, "--json"]) == 0  # abort, the default
    rows = json.loads(capsys.readouterr().out)["rows"]
    finite = [r["K"] for r in rows if r["E[R]"] is not None]
    assert finite == [1, 2, 3, 4]  # alpha (N - K + 1) > 1 needs K <= N - 2


# ----------------------------------------------------------------------------- issue 24 (third pass): items 9, 10, 13
BASE = ["--workers", "4", "--k", "3", "--batch-size", "8", "--blocks", "4", "--rounds", "5", "--threads", "1", "--quiet"]


@pytest.mark.parametrize("flags,match", [
    (["--timing", "deterministic", "--timing-param", "times=[1,2]"], "deterministic model has 2 times, but N=4"),
    (["--timing-param", "change_round=2", "--timing-param", "change_workers=[9]"], "change_workers=[9] must be < N=4"),
    (["--timing", "trace", "--timing-param", "path={trace}"], "trace has N=2 workers"),
    (["--rounds", "25", "--k", "auto", "--budget", "50", "--dataset", "quadratic", "--k-window", "1"], "--k-window 1"),
])
def test_errors_found_when_a_round_is_drawn_leave_no_run_directory(capsys, tmp_path, flags, match):
    trace = tmp_path / "trace.csv"
    trace.write_text("round,worker,block,start_s,end_s\n" + "".join(
        f"0,{w},{b},{b},{b + 1}\n" for w in range(2) for b in range(4)))
    flags = [f.format(trace=trace) for f in flags]
    _fails(capsys, ["train", *BASE, *flags, "--results", str(tmp_path / "res")], match)
    assert not (tmp_path / "res" / "train").exists() or not list((tmp_path / "res" / "train").iterdir())


def test_empty_results_folder(capsys):
    _fails(capsys, ["train", *BASE, "--results", ""], "--results ''")


@pytest.mark.parametrize("plot,match", [
    ("{tmp}", "is a folder"), ("{tmp}/noext", "extension picks the format"), ("", "--plot ''"),
])
def test_optimize_k_plot_name_is_checked_before_the_work(capsys, tmp_path, monkeypatch, plot, match):
    monkeypatch.chdir(tmp_path)
    out = _fails(capsys, ["optimize-k", "--workers", "4", *CONSTS, "--plot", plot.format(tmp=tmp_path)], match)
    assert out == "" and not list(tmp_path.glob("*.png"))


def test_optimize_k_plot_prints_the_file_it_wrote(capsys, tmp_path):
    plot = tmp_path / "curve.pdf"
    assert main(["optimize-k", "--workers", "4", *CONSTS, "--plot", str(plot)]) == 0
    assert f"plot: {plot}" in capsys.readouterr().out and plot.is_file()


def test_estimate_out_that_cannot_be_written_names_the_file(capsys, tmp_path):
    try:
        code = main(["estimate", "--dataset", "quadratic", "--workers", "3", "--quad-dim", "3", "--samples-per-worker",
                     "20", "--bootstrap", "10", "--l-bootstrap", "0", "--out", "/proc/e.json", "--quiet"])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "/proc/e.json" in err and ".tmp" not in err, err
