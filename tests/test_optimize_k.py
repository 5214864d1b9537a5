"""`lgc optimize-k`: table, JSON, plot, constants file, and one-line errors with exit status 2."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lgc.cli import main
from theory.constants import read_constants, write_constants
from theory.errors import TheoryInputError

ROOT = Path(__file__).resolve().parent.parent
CONST = ["--L", "1", "--sigma2", "1", "--zeta2", "0.1", "--Delta", "5"]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "lgc", "optimize-k", *args], capture_output=True, text=True, cwd=ROOT)


def test_json_rows_match_the_trade_off_and_k_star(capsys):
    assert main(["optimize-k", "--workers", "8", "--blocks", "2", "--batch-size", "4", *CONST, "--budget", "100", "--algorithm", "fastest-k",
                 "--semantics", "abort", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    assert [r["K"] for r in rows] == list(range(1, 9)) and out["N"] == 8
    best = min((r for r in rows if r["bound"] is not None), key=lambda r: r["bound"])
    assert out["k_star_bound"] == best["K"]  # the bound's K*; k_star is the error model's (DERIVATION.md 9)
    assert out["k_star"] == min(rows, key=lambda r: (r["pred_gap"], -r["K"]))["K"] and out["k_criterion"] == "predict"
    for r in rows:  # T = floor(tau / E[R]) and the terms add up to the bound
        assert r["T"] == np.floor(100 / r["E[R]"])
        assert sum(v for k, v in r.items() if k.startswith("term:")) == pytest.approx(r["bound"])


def test_table_marks_k_star_and_constants_file_is_read(tmp_path, capsys):
    path = tmp_path / "c.json"
    write_constants(path, {"L": 1.0, "sigma2": 1.0, "zeta2": 0.1, "Delta": 5.0, "intervals": {"L": [0.9, 1.1]}})
    assert read_constants(path).zeta2 == 0.1
    assert main(["optimize-k", "--constants", str(path), "--zeta2", "0.0", "--budget", "300", "--eta", "0.1"]) == 0
    out = capsys.readouterr().out
    star = [ln for ln in out.splitlines() if ln.startswith("K* = ")]
    assert len(star) == 1
    k = int(star[0].split()[2])
    assert any(ln.strip().startswith(f"{k}*") for ln in out.splitlines())


def test_selected_ks(capsys):
    assert main(["optimize-k", "--workers", "9", "--ks", "3,7,9", *CONST, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["K"] for r in out["rows"]] == [3, 7, 9] and out["k_star"] in (3, 7, 9)


def test_plot_writes_the_trade_off_curve(tmp_path):
    p = tmp_path / "curve.png"
    assert main(["optimize-k", "--workers", "6", *CONST, "--target", "2.0", "--plot", str(p)]) == 0
    assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"


def test_large_n_prints_a_sample_of_rows(capsys):
    assert main(["optimize-k", "--workers", "500", *CONST, "--budget", "500", "--eta", "0.2", "--mc-rounds", "20"]) == 0
    out = capsys.readouterr().out
    assert "rows shown" in out and len(out.splitlines()) < 60


@pytest.mark.parametrize("args,needle", [
    (["--workers", "4", *CONST, "--ks-dummy"], None),
    (["--workers", "0", *CONST], "N=0"),
    (["--workers", "5", "--ks", "3,6", *CONST], "K=6"),
    (["--workers", "5", "--ks", "0", *CONST], "K=0"),
    (["--workers", "5", "--ks", "a", *CONST], "--ks 'a'"),
    (["--workers", "5", "--ks", "", *CONST], "--ks '' names no K"),  # not "every K"
    ([*CONST, "--mc-rounds", "-5"], "--mc-rounds=-5"),
    (["--blocks", "0", *CONST], "M=0"),
    (["--batch-size", "10", "--blocks", "3", *CONST], "B=10"),
    (["--timing-param", "rate=-1", *CONST], "rate=-1"),
    (["--timing-param", "rate=0", *CONST], "rate=0"),
    (["--timing", "gamma", *CONST], "gamma"),
    (["--L", "1"], "sigma2"),
    (["--constants", "/nonexistent/c.json"], "/nonexistent/c.json"),
    ([*CONST, "--budget", "-5"], "budget=-5"),
    ([*CONST, "--L", "-1"], "L=-1"),
])
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path):
    r = _run(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    if needle:
        assert needle in lines[0]


def test_malformed_constants_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    missing = tmp_path / "missing_key.json"
    missing.write_text(json.dumps({"L": 1.0, "sigma2": 1.0, "zeta2": 0.0}))
    neg = tmp_path / "neg.json"
    neg.write_text(json.dumps({"L": 1.0, "sigma2": -1.0, "zeta2": 0.0, "Delta": 1.0}))
    for path, needle in ((bad, "not valid JSON"), (missing, "'Delta'"), (neg, "sigma2=-1.0")):
        r = _run("--constants", str(path))
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(TheoryInputError, match="intervals"):
        write_constants(tmp_path / "x.json", {"L": 1.0, "sigma2": 1.0, "zeta2": 0.0, "Delta": 1.0, "intervals": {"L": [2, 1]}})


def test_optimize_k_does_not_import_torch():
    code = ("import sys; from lgc.cli import main; "
            "main(['optimize-k', '--workers', '5', '--L', '1', '--sigma2', '1', '--zeta2', '0', '--Delta', '1', '--json']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_constants_gram_drives_the_set_terms_and_must_match_n(tmp_path, capsys):
    """A gram in the constants (A4G, DERIVATION.md 4.7) lowers fastest-K's persistent bias below the zeta2 form
    (workers whose deviations are not aligned with any fast set); a gram for other N is one line, exit 2."""
    from theory.constants import Constants

    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 3))
    a -= a.mean(0)
    path = tmp_path / "c.json"
    write_constants(path, Constants(L=1.0, sigma2=1.0, zeta2=float((a**2).sum() / 6), Delta=5.0,
                                    gram=[(a @ a.T).tolist()]))
    args = ["optimize-k", "--workers", "6", "--blocks", "2", "--batch-size", "4", "--budget", "100",
            "--algorithm", "fastest-k", "--straggling-period", "1000000", "--json"]
    assert main([*args, "--constants", str(path)]) == 0
    with_g = json.loads(capsys.readouterr().out)
    assert with_g["dissimilarity"].startswith("Gram forms") and "gram" not in with_g["constants"]
    zeta_only = tmp_path / "z.json"
    write_constants(zeta_only, Constants(L=1.0, sigma2=1.0, zeta2=float((a**2).sum() / 6), Delta=5.0))
    assert main([*args, "--constants", str(zeta_only)]) == 0
    without = json.loads(capsys.readouterr().out)
    bias = lambda t: np.array([r["term:bias"] for r in t["rows"]])
    assert np.all(bias(with_g) <= bias(without) + 1e-12) and bias(with_g)[0] < 0.5 * bias(without)[0]
    r = _run("--workers", "8", "--constants", str(path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "gram is for N=6" in r.stderr
