"""Package direction theory <- lgc <- paper_figures, checked on every import statement.

theory is pure numpy/scipy/sympy: it imports neither torch nor lgc nor paper_figures; lgc never
imports paper_figures (`lgc figures` runs the figure scripts in a child process instead). Imports
inside functions count: a lazy import is still an arrow.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"theory": ("torch", "lgc", "paper_figures"), "lgc": ("paper_figures",)}


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import statement in `source`, at any depth."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}"
           for p in sorted((ROOT / package).rglob("*.py"))
           for line, name in imported_packages(p.read_text()) if name in FORBIDDEN[package]]
    assert not bad, f"{package} must not import {', '.join(FORBIDDEN[package])}:\n" + "\n".join(bad)


def test_the_scan_sees_every_kind_of_import():
    src = "import torch.nn as nn\nfrom lgc.config import X\ndef f():\n    from paper_figures import quick\n"
    assert imported_packages(src) == [(1, "torch"), (2, "lgc"), (4, "paper_figures")]
    assert imported_packages("from . import sibling\nimport numpy\n") == [(2, "numpy")]
