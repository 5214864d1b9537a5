"""`make figures-paper`: the paper profile on CIFAR-10 (docs/PAPER_PROFILE.md), in resumable chunks.

    python -m paper_figures.paper --data-dir DIR [--chunk-minutes 9] [--only fig1,fig3]
                                  [--shared-data .carry] [--constants constants.json]
                                  [--archive $OUT/results.tar.gz] [--plan] [--draw-only]

Runs the profile's jobs (paper_figures/paper_profile.py) in priority order through the run cache
(lgc.sim.train: a finished run is reused, an unfinished one resumes from its checkpoint), stops
cleanly before the chunk budget (the run in flight checkpoints), then draws every figure from
the runs that are complete (mean and 95% band over seeds) into paper_figures/out/paper/ and,
with --archive, packs the run records (no checkpoints) and the figures into one tar.gz.
Run it again to continue; `--plan` prints the runs and the estimated GPU time.
Works with a bare python3 and the project on PYTHONPATH (the GPU machine).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from paper_figures import paper_profile as pp
from theory.jsonio import dumps

OUT = Path(__file__).resolve().parent / "out" / "paper"
RECORD_FILES = ("config.json", "meta.json", "data.json", "rounds.csv", "schedule.csv", "final.json")
# planning figures for an H100, eager fused engine, bf16, channels_last (docs/PAPER_PROFILE.md):
# ~445 samples per lgc round at ~26 ms per eager 500-sample pass (GPU.md: 9.5 ms x 2.7) is 23 ms of plain
# work; the sim round reached 0.74 of plain throughput on this project's CPU (lgc.bench): 23 / 0.74
MS_PER_ROUND = 31.0
EVAL_MS = 175.0  # forward over the 10,000 test images (a third of a training pass per sample)
RUN_START_MS = 1000.0  # per run: model, data to the device, run directory


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


def plan_estimate(jobs, scale) -> dict:
    rounds = sum(j.config.rounds for j in jobs)
    evals = sum(j.config.rounds // j.config.eval_every + 1 for j in jobs)
    # an evaluation on a subset costs its share of the 10,000 images; each run's last uses all
    share = min(1.0, scale.eval_subset / 10_000) if scale.eval_subset else 1.0
    eval_ms = (evals - len(jobs)) * EVAL_MS * share + len(jobs) * EVAL_MS
    minutes = (rounds * MS_PER_ROUND + eval_ms + len(jobs) * RUN_START_MS) / 6e4
    return {"runs": len(jobs), "rounds": rounds, "evaluations": evals,
            "estimated_gpu_minutes": round(minutes, 1), "assumed_ms_per_round": MS_PER_ROUND,
            "assumed_ms_per_evaluation": EVAL_MS, "assumed_ms_per_run_start": RUN_START_MS}


def measured_speed(done) -> dict:
    """ms per round and per run from the finished runs' final.json (this machine's numbers)."""
    wall, rounds = 0.0, 0
    for _, path in done:
        fin = json.loads((Path(path) / "final.json").read_text())
        wall += float(fin.get("wall_s") or 0.0)
        rounds += int(fin.get("rounds") or 0)
    return {"finished_rounds": rounds, "train_wall_s": round(wall, 1),
            "ms_per_round": round(1e3 * wall / rounds, 2) if rounds else None}


def run_chunk(jobs, *, results, budget_s: float, quiet: bool, max_runs: int | None = None) -> tuple[list, int]:
    """Train jobs in order until the budget is spent; returns ([(job, dir)] complete, started)."""
    from lgc import runs
    from lgc.data.cifar10 import load_cifar10
    from lgc.sim import train

    began = time.perf_counter()
    done, started = [], 0
    loaded = {}  # CIFAR-10 once per chunk, not once per run (about 2 s each)
    for i, job in enumerate(jobs):
        path = runs.run_dir("train", job.config.resolved().to_dict(), results)
        if runs.is_complete(path):
            done.append((job, path))
            continue
        left = budget_s - (time.perf_counter() - began)
        if left < min(5.0, 0.1 * budget_s) or (max_runs is not None and started >= max_runs):
            break
        started += 1
        if not quiet:
            print(f"[{time.perf_counter() - began:6.0f} s] run {i + 1}/{len(jobs)} {', '.join(job.figures)} "
                  f"{job.config.algorithm} {job.tags} seed={job.config.seed} T={job.config.rounds}", flush=True)
        cfg = job.config
        data = None
        if cfg.dataset == "cifar10":
            key = (str(cfg.data_dir), cfg.accept_md5_mismatch)
            if key not in loaded:
                loaded[key] = load_cifar10(cfg.data_dir, accept_md5_mismatch=cfg.accept_md5_mismatch)
            data = loaded[key]
        path = train(cfg, root=results, quiet=True, time_limit_s=left, dataset=data)
        if runs.is_complete(path):
            done.append((job, path))
        else:
            break  # out of time: the run checkpointed; the next chunk resumes it
    # later jobs finished in earlier chunks still count for the figures
    seen = {id(j) for j, _ in done}
    for job in jobs:
        if id(job) not in seen:
            path = runs.run_dir("train", job.config.resolved().to_dict(), results)
            if runs.is_complete(path):
                done.append((job, path))
    return done, started


def archive(path: Path, done, out_dir: Path, results_root: Path | None, progress: dict) -> None:
    """One tar.gz: each finished run's records (no checkpoint) under results/train/<key>/, the
    figures under paper_figures/out/paper/, and progress.json."""
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
                tar.add(f, arcname=f"paper_figures/out/paper/{f.name}")
        data = dumps(progress, indent=2).encode()
        info = tarfile.TarInfo("paper_figures/out/paper/progress.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m paper_figures.paper", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="CIFAR-10 folder (holding cifar-10-batches-py/)")
    p.add_argument("--shared-data", type=Path,
                   help="folder with cifar10-jpeg.tar.xz + cifar10_from_jpeg.py: convert into --data-dir first "
                        "(implies --accept-md5-mismatch)")
    p.add_argument("--accept-md5-mismatch", action="store_true", help="use CIFAR-10 files whose MD5 differs")
    p.add_argument("--chunk-minutes", type=float, default=9.0, help="stop cleanly within this time (default 9)")
    p.add_argument("--only", default=",".join(pp.FIGURES), help="figures, comma-separated (default: all)")
    p.add_argument("--results", type=Path, default=None, help="results root (default: results/)")
    p.add_argument("--out", type=Path, default=OUT, help=f"figure folder (default: {OUT})")
    p.add_argument("--constants", type=Path, help="constants JSON of `lgc estimate` (bound curves of fig4, fig6)")
    p.add_argument("--archive", type=Path, help="write the run records and figures to this .tar.gz")
    p.add_argument("--plan", action="store_true", help="print the runs and the GPU-time estimate, run nothing")
    p.add_argument("--draw-only", action="store_true", help="draw from finished runs, train nothing")
    p.add_argument("--engine", default="fused", help="gradient engine of every run: fused (default) or batched")
    p.add_argument("--compile", default="none", help="torch.compile mode of every run (default none: one graph "
                                                     "per round size and run would cost more than it saves)")
    p.add_argument("--max-runs", type=int, help="start at most this many runs in this chunk")
    p.add_argument("--tiny", action="store_true",
                   help="tiny CPU scale (small CNN of width 4, 4 rounds, 40 samples per worker, 2 seeds, "
                        "evaluations on 100 test images and the last on all, one thread): a smoke test")
    p.add_argument("--eval-subset", type=int, metavar="N",
                   help="evaluations before a run's last on the first N test images (a cut; the last uses all)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    from lgc.errors import UserError
    from theory.errors import TheoryInputError

    only = tuple(f.strip() for f in args.only.split(",") if f.strip())
    bad = [f for f in only if f not in pp.FIGURES]
    if bad:
        print(f"lgc figures: error: --only {bad[0]!r} is not a figure of the paper profile ({', '.join(pp.FIGURES)})",
              file=sys.stderr)
        return 2
    scale = pp.TINY if args.tiny else pp.PAPER
    if args.eval_subset is not None:
        scale = dataclasses.replace(scale, eval_subset=args.eval_subset)
    accept = args.accept_md5_mismatch or args.shared_data is not None
    try:
        jobs = pp.select(pp.jobs(args.data_dir, scale, accept_md5_mismatch=accept, engine=args.engine,
                                 compile=args.compile), only)
        for j in jobs:
            j.config.validate()
        constants = None
        if args.constants is not None:  # read before any training: a bad file must not cost a chunk
            from theory.constants import read_constants

            constants = read_constants(args.constants)
    except (UserError, TheoryInputError) as e:
        print(f"lgc figures: error: {e}", file=sys.stderr)
        return 2
    est = plan_estimate(jobs, scale)
    if args.plan:
        for j in jobs:
            print(f"{','.join(j.figures):<10} {j.config.algorithm:<18} {j.tags} seed={j.config.seed} T={j.config.rounds}")
        print(dumps(est, indent=2))
        return 0
    t0 = time.perf_counter()
    budget_s = args.chunk_minutes * 60 - (30 if not args.tiny else 0)  # leave time to draw and pack
    try:
        if args.shared_data is not None:
            convert_shared(args.shared_data, Path(args.data_dir))
        budget_s -= time.perf_counter() - t0
        from lgc.threads import torch_threads

        with torch_threads(1 if args.tiny else None):  # tiny models: one thread is fastest (lgc/threads.py)
            done, started = run_chunk(jobs, results=args.results, budget_s=0 if args.draw_only else budget_s,
                                      quiet=args.quiet, max_runs=args.max_runs)
        paths = pp_draw().draw_all(done, args.out, constants=constants, scale=scale, only=only)
    except UserError as e:
        print(f"lgc figures: error: {e}", file=sys.stderr)
        return 2
    from lgc import runs

    speed = measured_speed(done)
    left_rounds = sum(j.config.rounds for j in jobs) - speed["finished_rounds"]
    if speed["ms_per_round"]:  # wall_s of a round includes its evaluations
        speed["projected_minutes_left"] = round(left_rounds * speed["ms_per_round"] / 6e4, 1)
    progress = {"complete_runs": len(done), "planned_runs": len(jobs), "started_this_chunk": started,
                "plan": est, "measured": speed, "chunk_wall_s": round(time.perf_counter() - t0, 1),
                "code_version": runs.code_version(), "environment": runs.environment_info(),
                "figures": [str(x) for x in paths]}
    runs.atomic_write_json(args.out / "progress.json", progress)
    if args.archive:
        archive(args.archive, done, args.out, args.results, progress)
    left = len(jobs) - len(done)
    print(f"{len(done)}/{len(jobs)} runs complete; {len(paths)} figure files in {args.out}"
          + (f"; {left} runs left: run the same command again" if left else "") +
          f"; measured {progress['measured']['ms_per_round']} ms/round", flush=True)
    return 0


def pp_draw():
    from paper_figures import paper_draw

    return paper_draw


if __name__ == "__main__":
    sys.exit(main())
