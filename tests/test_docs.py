"""The repository cites only documents it contains.

Code and docs cite the README's sections, docs/*.md and theory/DERIVATION.md; the product
specification the project was built from is not shipped, so no file may send a reader to it.
Every section a file cites by its quoted title after README or docs/NAME.md must be a heading there.
"""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".sh", ""}
UNSHIPPED = "SP" + "EC"  # spelled in two parts so this file does not cite it either


def _repo_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        names = out.split()
    except (OSError, subprocess.CalledProcessError):  # an exported tree (the GPU machine) has no .git
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not {".venv", "results", "out", ".git"} & set(p.relative_to(ROOT).parts)]
    return [ROOT / n for n in names if Path(n).suffix in TEXT_SUFFIXES and (ROOT / n).is_file()]


def _headings(path: Path) -> set[str]:
    """Every heading, also without a parenthesised tail ("File formats (version 2)" -> "File formats")."""
    heads = {m.group(1).strip() for m in re.finditer(r"^#+\s+(.*)$", path.read_text(), re.M)}
    return heads | {re.sub(r"\s*\(.*\)$", "", h) for h in heads}


def test_no_file_cites_the_unshipped_spec():
    pattern = re.compile(rf"\b{UNSHIPPED}\b")
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
            for p in _repo_files() for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
            if pattern.search(line)]
    assert not hits, "cite README / docs/ / theory/DERIVATION.md instead:\n" + "\n".join(hits)


@pytest.mark.parametrize("doc", ["README.md", "docs/DIST.md", "docs/GPU.md", "docs/PAPER_PROFILE.md"])
def test_cited_sections_exist(doc):
    name = "README" if doc == "README.md" else re.escape(doc)
    cite = re.compile(rf'{name}(?:\.md)?(?:\'s)?,? "([^"\n]+)"')
    headings = _headings(ROOT / doc)
    missing = [f"{p.relative_to(ROOT)}: {m.group(1)!r}" for p in _repo_files()
               for m in cite.finditer(p.read_text(errors="replace")) if m.group(1) not in headings]
    assert not missing, f"sections cited in {doc} that it does not have:\n" + "\n".join(missing)


def test_the_checks_can_fail(tmp_path):
    """The two patterns above match the citations they are meant to catch."""
    assert re.search(rf"\b{UNSHIPPED}\b", f"({UNSHIPPED} section 3)")
    assert re.compile(r'README(?:\.md)?(?:\'s)?,? "([^"\n]+)"').search('the README\'s "Nowhere"').group(1) == "Nowhere"
