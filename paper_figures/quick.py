"""`make figures`: every paper_figures/fig_*.py for the quick profile (CPU, embedded data).

Each module has `make(out_dir, profile="quick") -> list[Path]`. Runs go through the run
cache (lgc/runs.py), so a second call redraws from cached results. One failing figure prints
its error and the others still run; the exit status is then 1. Output: paper_figures/out/<profile>/.

    python -m paper_figures.quick [--only NAME ...] [--out DIR]
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

import paper_figures
from lgc.errors import UserError
from lgc.threads import torch_threads
from paper_figures.command import Parser, fail, make_out_folder

OUT_ROOT = Path(__file__).resolve().parent / "out"


def discover() -> list[str]:
    """Names of the figure modules (`fig_<name>`), sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(paper_figures.__path__) if m.name.startswith("fig_"))


def run_all(out_dir: Path, *, profile: str = "quick", only: list[str] | None = None,
            quiet: bool = False) -> tuple[list[Path], dict[str, str]]:
    """Run every figure module; returns (written paths, {module: error line}) ."""
    from tqdm import tqdm

    names = discover()
    if only:
        wanted = {n if n.startswith("fig_") else f"fig_{n}" for n in only}
        unknown = wanted - set(names)
        if unknown:
            raise SystemExit(f"unknown figure(s) {', '.join(sorted(unknown))}; known: {', '.join(names)}")
        names = [n for n in names if n in wanted]
    written: list[Path] = []
    failed: dict[str, str] = {}
    bar = tqdm(names, desc=f"figures ({profile})", unit="fig", disable=quiet)
    for name in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"paper_figures.{name}")
            with torch_threads(1 if profile == "quick" else None):  # small CPU models: one thread (lgc/threads.py)
                paths = list(mod.make(out_dir, profile=profile))
            written.extend(paths)
            tqdm.write(f"{name}: {len(paths)} files in {time.perf_counter() - t0:.1f} s")
        except Exception as e:  # one figure's failure must not stop the others
            failed[name] = f"{type(e).__name__}: {e}"
            tqdm.write(f"{name}: FAILED ({failed[name]})")
            traceback.print_exc(file=sys.stderr)
    return written, failed


def _write_provenance(out_dir: Path, profile: str, written: list[Path], failed: dict[str, str],
                      wall: float) -> None:
    """provenance.json beside the figures: code version, libraries, device, command, files.
    Merged with an earlier one, so `--only` keeps the record of the figures it did not redraw."""
    import json

    from lgc import runs

    path = out_dir / "provenance.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    files = dict(old.get("files", {}))
    record = {"code_version": runs.code_version(), "environment": runs.environment_info("cpu"),
              "command": " ".join(sys.argv), "profile": profile, "wall_s": round(wall, 1)}
    for p in written:
        files[Path(p).name] = record["code_version"]["git"]
    runs.atomic_write_json(path, {**record, "failed": failed, "files": dict(sorted(files.items()))})


def main(argv: list[str] | None = None, *, profile: str = "quick") -> int:
    parser = Parser(prog="python -m paper_figures.quick", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="draw only these figures (module names without fig_, e.g. tradeoff)")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default {OUT_ROOT}/{profile})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    known = discover()
    for name in args.only or []:
        if (name if name.startswith("fig_") else f"fig_{name}") not in known:
            return fail(f"--only {name}: no such figure; known: {', '.join(n[4:] for n in known)}")
    try:
        make_out_folder(args.out)
    except UserError as e:
        return fail(str(e))
    out_dir = args.out or OUT_ROOT / profile
    t0 = time.perf_counter()
    written, failed = run_all(out_dir, profile=profile, only=args.only, quiet=args.quiet)
    wall = time.perf_counter() - t0
    _write_provenance(out_dir, profile, written, failed, wall)
    print(f"{len(written)} files in {out_dir}; {len(failed)} figure(s) failed; total wall time {wall:.1f} s")
    for name, err in failed.items():
        print(f"  {name}: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
