"""theory/constants.py: the constants file `lgc estimate` writes and `lgc optimize-k` reads."""
import json

import pytest

from theory.constants import CONSTANTS_FORMAT_VERSION, Constants, read_constants, write_constants
from theory.errors import TheoryInputError


def test_write_then_read_returns_the_same_constants(tmp_path):
    c = Constants(L=2.5, sigma2=0.3, zeta2=0.0, Delta=4.0, intervals={"L": [2.0, 3.0]}, source={"seed": 1})
    write_constants(tmp_path / "sub" / "c.json", c)
    assert read_constants(tmp_path / "sub" / "c.json") == c
    assert json.loads((tmp_path / "sub" / "c.json").read_text())["format"] == CONSTANTS_FORMAT_VERSION
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["c.json"]  # no temporary file left


def test_gram_round_trips_and_stays_optional(tmp_path):
    g = [[[1.0, -1.0], [-1.0, 1.0]], [[2.0, -2.0], [-2.0, 2.0]]]
    c = Constants(L=1.0, sigma2=0.3, zeta2=1.0, Delta=4.0, gram=g)
    write_constants(tmp_path / "c.json", c)
    assert read_constants(tmp_path / "c.json").gram == g
    write_constants(tmp_path / "d.json", Constants(L=1.0, sigma2=0.3, zeta2=1.0, Delta=4.0))
    assert "gram" not in json.loads((tmp_path / "d.json").read_text())  # absent, not null


@pytest.mark.parametrize("bad,match", [
    ({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "gram": []}, "gram must be a non-empty list"),
    ({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "gram": [[[1, 0], [0]]]}, "gram must be .* 1 columns|columns"),
    ({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "gram": [[[-1]]]}, "negative diagonal"),
    ({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "gram": [[["x"]]]}, "finite number"),
    ({"sigma2": 1, "zeta2": 1, "Delta": 1}, "missing key 'L'"),
    ({"L": 0, "sigma2": 1, "zeta2": 1, "Delta": 1}, "L=0 must be > 0"),
    ({"L": 1, "sigma2": -1, "zeta2": 1, "Delta": 1}, "sigma2=-1 must be >= 0"),
    ({"L": 1, "sigma2": 1, "zeta2": True, "Delta": 1}, "zeta2=True must be a finite number"),
    ({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": float("nan")}, "Delta=nan must be a finite number"),
    ({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "format": 2}, "format=2 is not supported"),
    ({"L": 1, "sigma2": 1, "zeta2": 1, "Delta": 1, "intervals": {"L": [3, 2]}}, r"intervals\['L'\]=\[3, 2\]"),
])
def test_bad_constants_name_the_key_and_what_is_valid(tmp_path, bad, match):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(TheoryInputError, match=match):
        read_constants(p)


def test_a_failed_write_leaves_the_old_file(tmp_path):
    p = tmp_path / "c.json"
    write_constants(p, Constants(L=1.0, sigma2=1.0, zeta2=1.0, Delta=1.0))
    before = p.read_text()
    with pytest.raises(TheoryInputError, match="L=-1"):
        write_constants(p, {"L": -1, "sigma2": 1, "zeta2": 1, "Delta": 1})
    assert p.read_text() == before


def test_missing_and_malformed_files_name_themselves(tmp_path):
    with pytest.raises(TheoryInputError, match="does not exist"):
        read_constants(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{L: 1")
    with pytest.raises(TheoryInputError, match="bad.json' is not valid JSON"):
        read_constants(tmp_path / "bad.json")
