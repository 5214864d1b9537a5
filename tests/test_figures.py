"""The figure style writes PDF (TrueType) + PNG + CSV; quick.py finds and runs fig_*.py modules."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

import paper_figures
from paper_figures import quick, style


def test_save_writes_truetype_pdf_png_and_csv(tmp_path):
    fig, axes = style.figure()
    axes[0, 0].plot([0, 1, 2], [1, 4, 9], label="a curve")
    axes[0, 0].set_xlabel("virtual time (time units)")
    axes[0, 0].legend()
    rows = [{"x": x, "y": x * x} for x in range(3)]
    paths = style.save(fig, tmp_path / "sub" / "demo", rows)
    assert sorted(p.suffix for p in paths) == [".csv", ".pdf", ".png"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 0 and p.stem == "demo"
    pdf = (tmp_path / "sub" / "demo.pdf").read_bytes()
    assert b"/FontFile2" in pdf, "PDF fonts must be embedded TrueType (fonttype 42)"
    assert b"/Type3" not in pdf
    assert (tmp_path / "sub" / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "sub" / "demo.csv") as f:
        assert list(csv.DictReader(f)) == [{"x": "0", "y": "0"}, {"x": "1", "y": "1"}, {"x": "2", "y": "4"}]


def test_discovery_lists_exactly_the_fig_modules():
    folder = Path(paper_figures.__file__).parent
    on_disk = sorted(p.stem for p in folder.glob("fig_*.py"))
    assert quick.discover() == on_disk
    for name in on_disk:  # each has the make(out_dir, profile=...) entry point
        src = (folder / f"{name}.py").read_text()
        assert "def make(out_dir" in src, name


@pytest.fixture
def fake_figures(tmp_path, monkeypatch):
    """Two extra figure modules on paper_figures' path: one works, one raises."""
    (tmp_path / "fig_zz_ok.py").write_text(
        "from pathlib import Path\n"
        "def make(out_dir, profile='quick'):\n"
        "    p = Path(out_dir) / f'ok_{profile}.txt'\n"
        "    p.parent.mkdir(parents=True, exist_ok=True)\n"
        "    p.write_text('drawn')\n"
        "    return [p]\n")
    (tmp_path / "fig_zz_bad.py").write_text(
        "def make(out_dir, profile='quick'):\n"
        "    raise RuntimeError('this figure is broken')\n")
    monkeypatch.setattr(paper_figures, "__path__", [*paper_figures.__path__, str(tmp_path)])
    yield
    for m in ("paper_figures.fig_zz_ok", "paper_figures.fig_zz_bad"):
        sys.modules.pop(m, None)


def test_one_failing_figure_does_not_stop_the_others(fake_figures, tmp_path, capsys):
    out = tmp_path / "out"
    rc = quick.main(["--only", "zz_ok", "zz_bad", "--out", str(out), "--quiet"])
    assert rc == 1  # a failure makes the exit status non-zero
    assert (out / "ok_quick.txt").read_text() == "drawn"  # the other still ran
    captured = capsys.readouterr()
    assert "this figure is broken" in captured.err
    assert "total wall time" in captured.out
    rc = quick.main(["--only", "zz_ok", "--out", str(out), "--quiet"])
    assert rc == 0


def test_lgc_figures_rejects_an_unknown_figure(capsys):
    from lgc.cli import main

    assert main(["figures", "--only", "no_such_figure"]) == 2
    err = capsys.readouterr().err
    assert "no_such_figure" in err and len(err.strip().splitlines()) == 1


def test_lgc_figures_paper_profile_needs_a_data_dir(capsys):
    from lgc.cli import main

    assert main(["figures", "--profile", "paper"]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and len(err.strip().splitlines()) == 1


def test_figures_that_share_runs_are_chained_in_order():
    """fig_error_time reads the runs fig_validation's sweep caches: one chain, validation first;
    a figure CHAINS does not name runs alone; every figure runs exactly once."""
    names = quick.discover() + ["fig_zz_new"]
    chains = quick.chains(names)
    assert ("fig_validation", "fig_error_time") in chains and ("fig_zz_new",) in chains
    assert sorted(n for c in chains for n in c) == sorted(names)
    assert quick.chains(["fig_error_time"]) == [("fig_error_time",)]


def test_one_process_and_two_draw_the_same(fake_figures, tmp_path):
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        assert quick.main(["--only", "zz_ok", "zz_bad", "--out", str(out), "--quiet", "--jobs", jobs]) == 1
        assert (out / "ok_quick.txt").read_text() == "drawn"
    one, two = ({p.name: p.read_bytes() for p in (tmp_path / f"out{j}").iterdir() if p.name != "provenance.json"}
                for j in ("1", "2"))
    assert one == two  # the same files with the same contents (provenance records times and the job count)


def test_a_bad_job_count_leaves_no_output_folder(fake_figures, tmp_path):
    out = tmp_path / "never"
    assert quick.main(["--only", "zz_ok", "--out", str(out), "--quiet", "--jobs", "0"]) == 2
    assert not out.exists()
