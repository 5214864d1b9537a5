"""theory/jsonio.py: strict JSON, and the one atomic writer every file goes through."""
import json
import os
import stat
from pathlib import Path

import pytest

from theory.jsonio import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def test_one_atomic_writer():
    """A temporary file renamed over the target is written in one place (constants JSON and
    lgc.runs' files both go through it), so a fix to it (fsync, permissions, naming the target
    in errors) reaches every file."""
    writers = [p.relative_to(ROOT).as_posix() for pkg in ("theory", "lgc", "paper_figures")
               for p in sorted((ROOT / pkg).rglob("*.py")) if "mkstemp(" in p.read_text()]
    assert writers == ["theory/jsonio.py"]


def test_atomic_write_json_is_strict_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "x.json"
    atomic_write_json(path, {"b": float("nan"), "a": 1})
    assert path.read_text() == '{\n  "a": 1,\n  "b": null\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})  # fails before anything is written
    assert json.loads(path.read_text()) == {"a": 1, "b": None}  # the old file stays whole
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
