"""Run helpers: atomic files are ordinary readable files, provenance is recorded, keys are stable."""
import os
import stat

from lgc import runs


def test_atomic_write_leaves_a_readable_file_and_no_temporaries(tmp_path):
    p = tmp_path / "sub" / "x.json"
    runs.atomic_write_json(p, {"a": 1})
    runs.atomic_write_json(p, {"a": 2})
    assert p.read_text().strip().endswith("}") and '"a": 2' in p.read_text()
    mode = stat.S_IMODE(os.stat(p).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]


def test_csv_roundtrip(tmp_path):
    p = tmp_path / "r.csv"
    runs.atomic_write_csv(p, [{"round": 0, "loss": 1.5}, {"round": 1}], ["round", "loss"])
    assert runs.read_csv(p) == [{"round": "0", "loss": "1.5"}, {"round": "1", "loss": ""}]


def test_config_key_depends_on_config_and_code(monkeypatch):
    a = runs.config_key({"k": 7, "n": 10})
    assert a == runs.config_key({"n": 10, "k": 7})  # order-free
    assert a != runs.config_key({"k": 6, "n": 10})
    monkeypatch.setattr(runs, "code_version", lambda: {"git": "x", "source_hash": "other"})
    assert a != runs.config_key({"k": 7, "n": 10})


def test_start_and_finish_record_provenance(tmp_path):
    d = runs.start_run(tmp_path / "run", {"k": 7}, device="cpu")
    meta = __import__("json").loads((d / "meta.json").read_text())
    assert meta["code_version"]["source_hash"] and meta["environment"]["numpy"]
    assert meta["environment"]["device"] == "cpu"
    assert not runs.is_complete(d)
    runs.finish_run(d, {"acc": 0.5})
    assert runs.is_complete(d)
