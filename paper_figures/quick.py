"""`make figures`: every paper_figures/fig_*.py for the quick profile (CPU, embedded data).

Each module has `make(out_dir, profile="quick") -> list[Path]`. Runs go through the run
cache (lgc/runs.py), so a second call redraws from cached results. The figures run in `--jobs`
processes (2: the two cores the quick profile is sized for), figures that share runs in one
chain (CHAINS). One failing figure prints its error and the others still run; the exit status is
then 1. Each figure's wall and CPU time is printed. Output: paper_figures/out/<profile>/.

    python -m paper_figures.quick [--only NAME ...] [--out DIR] [--jobs N]
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


# Figures that share runs go in one chain, in this order, in one process (the later ones read the
# earlier ones' cached results); chains start heaviest first (measured CPU, paper_figures/README.md),
# so two workers finish together. A figure missing here runs as its own chain, after these.
CHAINS = (("fig_peers_mlp",), ("fig_algorithms",), ("fig_validation", "fig_error_time"), ("fig_kauto",),
          ("fig_peers",), ("fig_regimes",), ("fig_tradeoff",), ("fig_timing",))


def chains(names: list[str]) -> list[tuple[str, ...]]:
    """`names` grouped into CHAINS' chains (kept in CHAINS' order), the others one by one."""
    out = [tuple(n for n in c if n in names) for c in CHAINS]
    known = {n for c in CHAINS for n in c}
    return [c for c in out if c] + [(n,) for n in names if n not in known]


def _run_chain(names: tuple[str, ...], out_dir: Path, profile: str) -> list[tuple]:
    """Run the figures of one chain; per figure (name, paths, error or None, wall s, CPU s)."""
    out = []
    for name in names:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            mod = importlib.import_module(f"paper_figures.{name}")
            with torch_threads(1 if profile == "quick" else None):  # small CPU models: one thread (lgc/threads.py)
                paths, err = list(mod.make(out_dir, profile=profile)), None
        except Exception as e:  # one figure's failure must not stop the others
            paths, err = [], f"{type(e).__name__}: {e}"
            traceback.print_exc(file=sys.stderr)
        out.append((name, paths, err, time.perf_counter() - t0, time.process_time() - c0))
    return out


def _worker_init(path: list[str]) -> None:
    paper_figures.__path__[:] = path  # figure modules found where the parent finds them


def run_all(out_dir: Path, *, profile: str = "quick", only: list[str] | None = None,
            quiet: bool = False, jobs: int = 2) -> tuple[list[Path], dict[str, str]]:
    """Run every figure module, `jobs` processes at a time; returns (written paths, {module: error line})."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

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
    bar = tqdm(total=len(names), desc=f"figures ({profile}, {jobs} processes)", unit="fig", disable=quiet)

    def record(results):
        for name, paths, err, wall, cpu in results:
            written.extend(paths)
            if err is None:
                tqdm.write(f"{name}: {len(paths)} files in {wall:.1f} s ({cpu:.1f} s CPU)")
            else:
                failed[name] = err
                tqdm.write(f"{name}: FAILED ({err})")
            bar.update(1)

    todo = chains(names)
    if jobs <= 1 or len(todo) <= 1:
        for chain in todo:
            record(_run_chain(chain, out_dir, profile))
    else:  # spawn: a fresh interpreter per worker (no forked torch or OpenMP state)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(list(paper_figures.__path__),)) as pool:
            for fut in as_completed([pool.submit(_run_chain, c, out_dir, profile) for c in todo]):
                record(fut.result())
    bar.close()
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
    parser.add_argument("--jobs", type=int, default=2, help="figures drawn at once, one process each (default 2)")
    args = parser.parse_args(argv)
    known = discover()
    for name in args.only or []:
        if (name if name.startswith("fig_") else f"fig_{name}") not in known:
            return fail(f"--only {name}: no such figure; known: {', '.join(n[4:] for n in known)}")
    if args.jobs < 1:  # before the folder is made: a refused command leaves nothing behind
        return fail(f"--jobs {args.jobs}: must be >= 1")
    try:
        make_out_folder(args.out)
    except UserError as e:
        return fail(str(e))
    out_dir = args.out or OUT_ROOT / profile
    t0 = time.perf_counter()
    written, failed = run_all(out_dir, profile=profile, only=args.only, quiet=args.quiet, jobs=args.jobs)
    wall = time.perf_counter() - t0
    _write_provenance(out_dir, profile, written, failed, wall)
    print(f"{len(written)} files in {out_dir}; {len(failed)} figure(s) failed; total wall time {wall:.1f} s")
    for name, err in failed.items():
        print(f"  {name}: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
