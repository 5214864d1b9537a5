"""`make figures-paper` / `make figures-cifar`: the paper profile on CIFAR-10 (docs/PAPER_PROFILE.md)
at the GPU scale or at the CPU scale (`--scale cpu`), in resumable chunks.

    python -m paper_figures.paper --data-dir DIR [--scale paper|cpu] [--chunk-minutes 9]
                                  [--only fig1,fig3] [--processes 2] [--shared-data .carry]
                                  [--constants constants.json] [--archive $OUT/results.tar.gz]
                                  [--plan] [--draw-only] [--records DIR] [--tiny]

Runs the profile's jobs (paper_figures/paper_profile.py) in priority order through the run cache
(lgc.sim.train: a finished run is reused, an unfinished one resumes from its checkpoint), stops
cleanly before the chunk budget (the run in flight checkpoints), then draws every figure from
the runs that are complete (mean and 95% band over seeds) into paper_figures/out/<scale>/ and,
with --archive, packs the run records (no checkpoints) and the figures into one tar.gz.
Run it again to continue; `--plan` prints the runs and the estimated time. The CPU scale runs
`lgc estimate` once on its base run's model and partition (constants.json next to the figures,
reused afterwards; in a process of its own beside the runs) for fig4's bound and K*, and can train
independent runs in parallel processes (--processes, one thread each).
Works with a bare python3 and the project on PYTHONPATH (the GPU machine).
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from lgc.errors import UserError, check
from paper_figures import paper_constants as pc
from paper_figures import paper_profile as pp
from paper_figures.command import Parser, fail, make_out_folder
from paper_figures.paper_runs import run_chunk, run_chunk_parallel
from theory.algorithms import algorithm as algorithm_entry
from theory.errors import TheoryInputError
from theory.jsonio import atomic_write_json, dumps

OUT_ROOT = Path(__file__).resolve().parent / "out"
OUT = OUT_ROOT / "paper"
RECORD_FILES = ("config.json", "meta.json", "data.json", "rounds.csv", "schedule.csv", "final.json")
# planning figures for an H100, eager fused engine, bf16, channels_last (docs/PAPER_PROFILE.md):
# ~445 samples per lgc round at ~26 ms per eager 500-sample pass (GPU.md: 9.5 ms x 2.7) is 23 ms of plain
# work; the sim round reached 0.74 of plain throughput on this project's CPU (lgc.bench): 23 / 0.74
MS_PER_ROUND = 31.0
EVAL_MS = 175.0  # forward over the 10,000 test images (a third of a training pass per sample)
RUN_START_MS = 1000.0  # per run: model, data to the device, run directory
# planning figures for this project's 2-core CPU, one thread per run, small CNN of width 32, K = 7,
# two runs at a time: calibrated on the first profile run (code 8e9e4da: 48 runs, 15,408 rounds in
# 3,822 s, where 400 ms a round had planned 49.9 minutes). Without the estimate it plans 61.2 minutes;
# the two runs of the 64-row fused engine (28dee93, efd844f) took 59.4 and 61.5
# (paper_figures/out/cifar/README.md). An evaluation on the 10,000 test images about 3 s.
CPU_MS_PER_ROUND = 530.0
CPU_EVAL_MS = 3000.0
# the scale's `lgc estimate` (estimate_args and the held-out pilot of paper_constants.pilot_args), in a process beside
# the runs: 868 s user alone on this machine (14 min 56 s wall), of which about 550 s the pilot (316 s without it)
CPU_ESTIMATE_MS = 15 * 60e3
CPU_RUN_START_MS = 3000.0


def convert_shared(shared: Path, data_dir: Path) -> None:
    """../shared/data's JPEG copy -> the official python format in data_dir (skipped if present)."""
    if (data_dir / "cifar-10-batches-py" / "test_batch").exists():
        return
    script = shared / "cifar10_from_jpeg.py"
    if not script.exists() or not (shared / "cifar10-jpeg.tar.xz").exists():
        raise SystemExit(f"--shared-data {shared}: needs cifar10_from_jpeg.py and cifar10-jpeg.tar.xz there")
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"converting {shared / 'cifar10-jpeg.tar.xz'} -> {data_dir}", flush=True)
    subprocess.run([sys.executable, str(script), str(data_dir)], check=True)


def plan_estimate(jobs, scale, processes: int = 1, estimate: bool = False) -> dict:
    """The plan's size and its estimated time: GPU figures for a GPU scale, this CPU's for a CPU
    one. A round's cost scales with the samples it trains (K of N workers' for fastest-K).
    `estimate`: whether the CPU scale's `lgc estimate` will run (paper_constants.ready says when not)."""
    cpu = scale.device == "cpu"
    ms_round, ms_eval, ms_start = (CPU_MS_PER_ROUND, CPU_EVAL_MS, CPU_RUN_START_MS) if cpu else \
        (MS_PER_ROUND, EVAL_MS, RUN_START_MS)
    rounds = sum(j.config.rounds for j in jobs)
    evals = sum(j.config.rounds // j.config.eval_every + 1 for j in jobs)
    # an evaluation on a subset costs its share of the 10,000 images; each run's last uses all
    share = min(1.0, scale.eval_subset / 10_000) if scale.eval_subset else 1.0
    eval_ms = (evals - len(jobs)) * ms_eval * share + len(jobs) * ms_eval
    if cpu:  # the measured ms per round is lgc's at K = 7 (about N of N workers' samples)
        work = sum(j.config.rounds * (j.config.threshold_k / j.config.n_workers
                                      if algorithm_entry(j.config.algorithm).groups == ("fast",) else 1.0)
                   for j in jobs)  # a rule that reads only the fast workers' samples trains K of N
    else:
        work = rounds
    minutes = (work * ms_round + eval_ms + len(jobs) * ms_start) / 6e4
    if estimate:
        minutes += CPU_ESTIMATE_MS / 6e4
    est = {"runs": len(jobs), "rounds": rounds, "evaluations": evals, "processes": processes,
           "assumed_ms_per_round": ms_round, "assumed_ms_per_evaluation": ms_eval,
           "assumed_ms_per_run_start": ms_start}
    if cpu:
        est["includes_constants_estimate"] = estimate
        est["estimated_cpu_minutes"] = round(minutes, 1)
        est["estimated_wall_minutes"] = round(minutes / processes, 1)
    else:
        est["estimated_gpu_minutes"] = round(minutes, 1)
    return est


def measured_speed(done) -> dict:
    """ms per round and per run from the finished runs' final.json (this machine's numbers)."""
    wall, rounds = 0.0, 0
    for _, path in done:
        fin = json.loads((Path(path) / "final.json").read_text())
        wall += float(fin.get("wall_s") or 0.0)
        rounds += int(fin.get("rounds") or 0)
    return {"finished_rounds": rounds, "train_wall_s": round(wall, 1),
            "ms_per_round": round(1e3 * wall / rounds, 2) if rounds else None}


def archive(path: Path, done, out_dir: Path, results_root: Path | None, progress: dict, name: str = "paper") -> None:
    """One tar.gz: each finished run's records (no checkpoint) under results/train/<key>/, the
    figures under paper_figures/out/<name>/ (the scale's), and progress.json."""
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for _, run in done:
            for f in RECORD_FILES:
                if (Path(run) / f).exists():
                    tar.add(Path(run) / f, arcname=f"results/train/{Path(run).name}/{f}")
        for f in sorted(out_dir.glob("*")):
            if f.is_file():
                tar.add(f, arcname=f"paper_figures/out/{name}/{f.name}")
        data = dumps(progress, indent=2).encode()
        info = tarfile.TarInfo(f"paper_figures/out/{name}/progress.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)


def parser() -> Parser:
    """The script's flags (`lgc figures --profile paper|cifar` passes its own through to them)."""
    p = Parser(prog="python -m paper_figures.paper", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="CIFAR-10 folder (holding cifar-10-batches-py/)")
    p.add_argument("--shared-data", type=Path,
                   help="folder with cifar10-jpeg.tar.xz + cifar10_from_jpeg.py: convert into --data-dir first "
                        "(implies --accept-md5-mismatch)")
    p.add_argument("--accept-md5-mismatch", action="store_true", help="use CIFAR-10 files whose MD5 differs")
    p.add_argument("--chunk-minutes", type=float, default=9.0, help="stop cleanly within this time (default 9)")
    p.add_argument("--only", nargs="+", metavar="FIG", help="figures, by space or comma (default: all of the scale's)")
    p.add_argument("--results", type=Path, default=None, help="results root (default: results/)")
    p.add_argument("--scale", choices=("paper", "cpu"), default="paper",
                   help="paper: ResNet-18-GN on a GPU (default); cpu: the same profile at this CPU's scale "
                        "(small CNN, c = 3, h in {1, 10} and a persistent slow set, abort semantics; "
                        "`make figures-cifar`)")
    p.add_argument("--processes", type=int, default=1, help="independent runs at a time (default 1)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"figure folder (default: {OUT_ROOT}/paper, or {OUT_ROOT}/cifar with --scale cpu)")
    p.add_argument("--constants", type=Path, help="constants JSON of `lgc estimate` (bound curves of fig4, fig6); "
                                                  "--scale cpu estimates its own when none is given")
    p.add_argument("--archive", type=Path, help="write the run records and figures to this .tar.gz")
    p.add_argument("--plan", action="store_true", help="print the runs and the GPU-time estimate, run nothing")
    p.add_argument("--draw-only", action="store_true", help="draw from finished runs, train nothing")
    p.add_argument("--records", type=Path, metavar="DIR",
                   help="draw from the finished run records in DIR (e.g. paper_figures/out/cifar/runs), matched to "
                        "the profile's runs by config whatever code made them; trains nothing")
    p.add_argument("--engine", default="fused", help="gradient engine of every run: fused (default) or batched")
    p.add_argument("--compile", default="none", help="torch.compile mode of every run (default none: one graph "
                                                     "per round size and run would cost more than it saves)")
    p.add_argument("--max-runs", type=int, help="start at most this many runs in this chunk")
    p.add_argument("--tiny", action="store_true",
                   help="the scale's profile at tiny size (small CNN of width 4, 3-4 rounds, 40 samples per "
                        "worker, 2 seeds, evaluations on 100 test images and the last on all, one thread): "
                        "a smoke test")
    p.add_argument("--eval-subset", type=int, metavar="N",
                   help="evaluations before a run's last on the first N test images (a cut; the last uses all)")
    p.add_argument("--quiet", action="store_true")
    return p


@dataclasses.dataclass
class Chunk:
    """What one call works on, checked before anything runs: the figures, the scale, the figure
    folder, the runs, whether CIFAR-10 files with other sums are accepted, the constants given."""

    only: tuple
    scale: object
    out: Path
    jobs: list
    accept: bool
    constants: object = None
    records: list | None = None  # [(job, folder)] of --records (paper_records), None: the run cache


def chunk_of(args) -> Chunk:
    """The call's Chunk from its flags; UserError (or TheoryInputError) naming the bad value."""
    only = tuple(f.strip() for word in args.only or () for f in word.split(",") if f.strip())
    bad = [f for f in only if f not in pp.FIGURES]
    if bad:
        raise UserError(f"--only {bad[0]!r} is not a figure of the paper profile ({', '.join(pp.FIGURES)})")
    check(args.processes >= 1, f"--processes {args.processes} must be >= 1")
    scale = pp.SCALES[args.scale + ("-tiny" if args.tiny else "")]
    out = args.out if args.out is not None else OUT_ROOT / scale.name
    if args.eval_subset is not None:
        scale = dataclasses.replace(scale, eval_subset=args.eval_subset)
    accept = args.accept_md5_mismatch or args.shared_data is not None
    make_out_folder(args.out)
    jobs = pp.select(pp.jobs(args.data_dir, scale, accept_md5_mismatch=accept, engine=args.engine,
                             compile=args.compile), only or tuple(pp.FIGURES))
    for j in jobs:
        j.config.validate()
    constants = None
    if args.constants is not None:  # read before any training: a bad file must not cost a chunk
        from theory.constants import read_constants

        constants = read_constants(args.constants)
    records = None
    if args.records is not None:  # the runs' own records, not the run cache (paper_records)
        from paper_figures.paper_records import from_records

        records = from_records(jobs, args.records)
    return Chunk(only or tuple(pp.FIGURES), scale, out, jobs, accept, constants, records)


def train_and_draw(args, chunk: Chunk, to_estimate: bool, t0: float) -> tuple[list, int, list]:
    """Train what the budget allows (and the CPU scale's constants beside the runs), then draw
    every figure from the complete runs: (complete runs, runs started, figure files)."""
    from lgc.threads import torch_threads
    from theory.constants import read_constants

    budget_s = args.chunk_minutes * 60 - (30 if not args.tiny else 0)  # leave time to draw and pack
    if args.shared_data is not None:
        convert_shared(args.shared_data, Path(args.data_dir))
    budget_s -= time.perf_counter() - t0
    scale, out = chunk.scale, chunk.out
    estimating = pc.start(scale, args.data_dir, chunk.accept, out, args.quiet) if to_estimate else None
    if chunk.records is not None:
        done, started = chunk.records, 0
    elif args.processes > 1 and not args.draw_only:
        done, started = run_chunk_parallel(chunk.jobs, results=args.results, budget_s=budget_s, quiet=args.quiet,
                                           processes=args.processes, threads=scale.threads, max_runs=args.max_runs)
    else:
        with torch_threads(scale.threads):  # small models: one thread is fastest (lgc/threads.py)
            done, started = run_chunk(chunk.jobs, results=args.results, budget_s=0 if args.draw_only else budget_s,
                                      quiet=args.quiet, max_runs=args.max_runs)
    constants = chunk.constants
    if estimating is not None:
        constants = read_constants(pc.finish(*estimating))
    elif constants is None and (out / "constants.json").exists():
        constants = read_constants(out / "constants.json")
    paths = pp_draw().draw_all(done, out, constants=constants, scale=scale, only=chunk.only)
    return done, started, paths


def progress_record(chunk: Chunk, done, started: int, est: dict, paths, t0: float) -> dict:
    """progress.json: the plan, what is complete, the measured speed and what is left, provenance."""
    from lgc import runs

    speed = measured_speed(done)
    left_rounds = sum(j.config.rounds for j in chunk.jobs) - speed["finished_rounds"]
    if speed["ms_per_round"]:  # wall_s of a round includes its evaluations
        speed["projected_minutes_left"] = round(left_rounds * speed["ms_per_round"] / 6e4, 1)
    return {"scale": dataclasses.asdict(chunk.scale), "command": " ".join(sys.argv),
            "complete_runs": len(done), "planned_runs": len(chunk.jobs), "started_this_chunk": started,
            "plan": est, "measured": speed, "chunk_wall_s": round(time.perf_counter() - t0, 1),
            "code_version": runs.code_version(), "environment": runs.environment_info(),
            "figures": [str(x) for x in paths]}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        chunk = chunk_of(args)
    except (UserError, TheoryInputError) as e:
        return fail(str(e))
    # the CPU scale's own constants for fig4, estimated beside the runs unless they are there (paper_constants)
    to_estimate = chunk.constants is None and chunk.scale.device == "cpu" and "fig4" in chunk.only \
        and not args.draw_only
    est = plan_estimate(chunk.jobs, chunk.scale, args.processes, estimate=to_estimate and not pc.ready(
        chunk.out, *pc.request(chunk.scale, args.data_dir, chunk.accept)))
    if args.plan:
        for j in chunk.jobs:
            print(f"{','.join(j.figures):<10} {j.config.algorithm:<18} {j.tags} seed={j.config.seed} T={j.config.rounds}")
        print(dumps(est, indent=2))
        return 0
    t0 = time.perf_counter()
    try:
        done, started, paths = train_and_draw(args, chunk, to_estimate, t0)
    except (UserError, TheoryInputError) as e:
        return fail(str(e))
    progress = progress_record(chunk, done, started, est, paths, t0)
    atomic_write_json(chunk.out / "progress.json", progress)
    if args.archive:
        archive(args.archive, done, chunk.out, args.results, progress, chunk.scale.name)
    left = len(chunk.jobs) - len(done)
    print(f"{len(done)}/{len(chunk.jobs)} runs complete; {len(paths)} figure files in {chunk.out}"
          + (f"; {left} runs left: run the same command again" if left else "") +
          f"; measured {progress['measured']['ms_per_round']} ms/round", flush=True)
    return 0


def pp_draw():
    from paper_figures import paper_draw

    return paper_draw


if __name__ == "__main__":
    sys.exit(main())
