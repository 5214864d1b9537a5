"""The environment files agree, the CLI is wired, and the package direction holds."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# conda-forge names of the PyPI distributions
CONDA_NAME = {"torch": "pytorch"}


def _pyproject_deps():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["test"]
    return {re.split(r"[<>=!~ ]", d, maxsplit=1)[0].lower(): d for d in deps}


def _conda_deps():
    names = {}
    text = (ROOT / "environment.yml").read_text()
    section = text.split("dependencies:", 1)[1]
    for line in section.splitlines():
        m = re.match(r"^\s{2}- ([A-Za-z0-9_.-]+)(.*)$", line)
        if m and m.group(1) not in ("pip", "python"):
            names[m.group(1).lower()] = m.group(1) + m.group(2).strip()
    return names


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    py = _pyproject_deps()
    conda = _conda_deps()
    expected = {CONDA_NAME.get(n, n) for n in py}
    assert expected == set(conda), f"pyproject {sorted(expected)} vs environment.yml {sorted(conda)}"
    for n, spec in py.items():
        lower = re.search(r">=\s*([0-9.]+)", spec)
        if lower:
            assert f">={lower.group(1)}" in conda[CONDA_NAME.get(n, n)], f"{n}: lower bounds differ"


def test_theory_never_imports_torch():
    code = "import sys, theory, theory.timing, theory.schedule; import pkgutil, importlib\n" \
           "[importlib.import_module('theory.' + m.name) for m in pkgutil.iter_modules(theory.__path__)]\n" \
           "assert 'torch' not in sys.modules, 'theory imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_theory_does_not_import_lgc():
    for p in (ROOT / "theory").rglob("*.py"):
        text = p.read_text()
        assert not re.search(r"^\s*(from|import)\s+lgc\b", text, re.M), f"{p} imports lgc"


def _lgc(*args):
    return subprocess.run([sys.executable, "-m", "lgc", *args], capture_output=True, text=True, cwd=ROOT)


def test_help_lists_the_subcommands():
    r = _lgc("--help")
    assert r.returncode == 0
    for name in ("optimize-k", "estimate", "train", "sweep-k", "figures"):
        assert name in r.stdout


def test_unknown_subcommand_is_one_line_and_exit_2():
    r = _lgc("optimise-k")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "optimise-k" in r.stderr
    assert "Traceback" not in r.stderr


def test_makefile_offers_the_readme_targets():
    mk = (ROOT / "Makefile").read_text()
    for t in ("help", "install", "test", "test-gpu", "figures", "figures-paper", "data", "bench", "clean"):
        assert re.search(rf"^{re.escape(t)}:", mk, re.M), t
