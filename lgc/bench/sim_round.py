"""`make bench`: the `sim` round's throughput against a plain training step and against an
explicit per-worker loop (the target: README "Targets and guarantees"; docs/GPU.md).

Configuration (fixed): N = 10, K = 7, B = 50, M = 5, shifted-exponential timing (shift 1,
rate 1), h = 1, lgc. A sim round processes K*B + sum_j m_j*b samples (the fast mini-batches and
the stragglers' finished blocks). Three sides, on the same sequence of rounds:

  sim round       the whole `Simulator.step()`: data gather and augmentation on the device,
                  schedule, gradient engine (fused and/or two-pass), rule, server step;
  plain step      forward + backward + SGD with momentum on one batch of the round's size:
                  what the same samples cost a single-worker trainer;
  per-worker loop the structure of the authors' lab code: one forward and backward per worker
                  on its own samples, the groups' gradient means summed, the same rule and step.

Each side is timed in every compile mode asked for, `--repeats` times interleaved (the machine
may be shared: the median of each side, ratios from the same run), and the best mode of each
is compared:

    ratio = (sim samples/s) / (plain samples/s) = plain ms/round / sim ms/round  (target >= 0.9)

On CUDA: ResNet-18-GN width 64, bf16 autocast, channels_last, CUDA events, compile modes
none and reduce-overhead; compilation happens in an untimed first pass over the same rounds.
On a CPU: the small CNN (width 32), channels_last, one thread, eager. `--profile` adds a torch.profiler table
of one sim round and one plain step (where the time goes). The configuration, its rounds and the three sides:
lgc/bench/sides.py; here, the timing and the report.

    python -m lgc.bench                                   # GPU: ResNet-18-GN; CPU: small CNN
    python -m lgc.bench --device cpu --model resnet18 --width 8 --steps 4
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from lgc.bench.sides import (
    ALGORITHM, BATCH, BLOCKS, N_WORKERS, THRESHOLD_K, LoopSide, PlainSide, SimSide, bench_config, draw_rounds, plans,
)
from theory.jsonio import dumps


# ----------------------------------------------------------------------------- timers
class Timer:
    """Elapsed milliseconds of a block of work: CUDA events on a GPU, perf_counter otherwise."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.ms = self.start.elapsed_time(self.end)
        else:
            self.ms = (time.perf_counter() - self.t0) * 1e3


# ----------------------------------------------------------------------------- measuring
def _error(e: Exception) -> dict:
    return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}


def measure(sides: dict, steps: int, repeats: int, samples_per_round: float, device, report: dict, args) -> None:
    """Per side, one untimed pass (compilation, caches) and at once its first timed pass of
    `steps` rounds (a side whose compilation outlasts a timeout costs only itself); then the other
    `repeats - 1` passes with the sides interleaved, so that a busy neighbour slows them alike.
    The median so far is saved after every pass. Past --time-limit nothing new starts (the sides
    not measured say so)."""
    times: dict = {k: [] for k in sides}

    def out_of_time(key: str) -> bool:
        if args.time_limit is None or time.perf_counter() - args.began < args.time_limit:
            return False
        report["sides"].setdefault(key, {"skipped": f"--time-limit {args.time_limit:g} s reached"})
        return True

    def one_pass(key: str, side, timed: bool) -> bool:
        try:
            with Timer(device) as tm:
                side.run(steps)
        except Exception as e:  # a compile mode that fails on this machine is reported, not fatal
            report["sides"][key] = _error(e)
            del sides[key]
            _say(args, f"{key:<32} FAILED {report['sides'][key]['error'][:120]}")
            return False
        if timed:
            times[key].append(tm.ms / steps)
            ms = statistics.median(times[key])
            report["sides"][key] = {"ms_per_round": ms, "samples_per_s": samples_per_round / ms * 1e3,
                                    "ms_all_repeats": list(times[key]),
                                    **(side.extra() if hasattr(side, "extra") else {})}
            _save(args, report)
        return True

    for key, side in list(sides.items()):
        if out_of_time(key):
            del sides[key]
        elif one_pass(key, side, timed=False):
            one_pass(key, side, timed=True)
    for _ in range(repeats - 1):
        for key, side in list(sides.items()):
            if not out_of_time(key):
                one_pass(key, side, timed=True)
    for key in sides:
        res = report["sides"].get(key, {})
        if "ms_per_round" in res:
            _say(args, f"{key:<32} {res['ms_per_round']:9.2f} ms/round {res['samples_per_s']:10.0f} samples/s  "
                       f"(repeats: {', '.join(f'{t:.1f}' for t in res['ms_all_repeats'])})")


def best(report: dict, prefix: str):
    """(ms per round, key) of the fastest measured side whose key starts with prefix, or None."""
    got = [(v["ms_per_round"], k) for k, v in report["sides"].items() if k.startswith(prefix) and "ms_per_round" in v]
    return min(got) if got else None


def profile_table(side, steps: int, device, rows: int = 15) -> str:
    """torch.profiler's table of `steps` rounds of one side, sorted by self time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        side.run(steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def run(args) -> dict:
    from lgc import runs
    from lgc.data.cifar10 import write_fake_cifar10
    from lgc.sim import resolve_device

    device = resolve_device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    modes = [m for m in args.modes.split(",") if m]
    engines = [e for e in args.engines.split(",") if e]
    report = {"config": {"N": N_WORKERS, "K": THRESHOLD_K, "B": BATCH, "M": BLOCKS, "algorithm": ALGORITHM,
                         "model": args.model + ("-gn" if args.model == "resnet18" else ""), "width": args.width,
                         "steps": args.steps, "repeats": args.repeats,
                         "timing": "shifted-exp(shift=1, rate=1), h=1",
                         "amp_bf16": device.type == "cuda", "channels_last": device.type == "cuda",
                         "threads": torch.get_num_threads() if device.type == "cpu" else None},
              "device": runs.environment_info(str(device)), "code_version": runs.code_version(),
              "command": "python -m lgc.bench " + " ".join(args.argv), "sides": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or str(write_fake_cifar10(tmp, n_train=N_WORKERS * args.samples_per_worker,
                                                           n_test=100).parent)
        cfg = bench_config(args, data_dir, engines[0], "none", args.steps)
        rounds = draw_rounds(cfg, args.steps)
        plan = plans(cfg, rounds)
        samples = float(np.mean([p.counts.sum() for p in plan]))
        report["config"]["mean_samples_per_round"] = samples
        _say(args, f"{args.model} width {args.width} on {device}, {samples:.0f} samples/round on average, "
                   f"{args.steps} rounds x {args.repeats} repeats per side (median)")
        sides: dict = {}
        for mode in modes:  # one compile mode at a time: the sides of a mode are timed together
            mode_sides = {f"plain step {mode}": PlainSide(args, mode, device, plan)}  # first: every ratio needs it
            for engine in engines:
                try:
                    mode_sides[f"sim round {engine}/{mode}"] = SimSide(args, data_dir, engine, mode, rounds,
                                                                       passes=1 + args.repeats + 1)
                except Exception as e:
                    report["sides"][f"sim round {engine}/{mode}"] = _error(e)
            if mode in args.loop_modes.split(","):
                mode_sides[f"per-worker loop {mode}"] = LoopSide(args, mode, device, plan)
            measure(mode_sides, args.steps, args.repeats, samples, device, report, args)
            sides.update(mode_sides)
        ratios = {}
        b_sim, b_plain = best(report, "sim round "), best(report, "plain step ")
        b_loop = best(report, "per-worker loop ")
        if b_sim and b_plain:
            ratios["sim/plain"] = b_plain[0] / b_sim[0]
            for engine in engines:
                b_eng = best(report, f"sim round {engine}/")
                if b_eng:
                    ratios[f"sim {engine}/plain"] = b_plain[0] / b_eng[0]
        if b_loop and b_plain:
            ratios["per-worker loop/plain"] = b_plain[0] / b_loop[0]
        if b_sim and b_loop:
            ratios["sim/per-worker loop"] = b_loop[0] / b_sim[0]
        report["best"] = {"sim": b_sim and b_sim[1], "plain": b_plain and b_plain[1],
                          "per_worker_loop": b_loop and b_loop[1], "ratios": ratios}
        _save(args, report)
        if args.profile and b_sim and b_plain:
            report["profile"] = {}
            for key in (b_sim[1], b_plain[1]):
                table = profile_table(sides[key], 1, device)
                report["profile"][key] = table
                _say(args, f"\ntorch.profiler, one round of {key}:\n{table}")
            _save(args, report)
    return report


def _say(args, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def _save(args, report: dict) -> None:
    """The report so far (a step killed by its timeout still leaves what it measured)."""
    if args.out:
        from lgc.runs import atomic_write_json

        atomic_write_json(args.out, report)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m lgc.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cuda[:i] or cpu (default: auto)")
    p.add_argument("--model", choices=("resnet18", "cnn", "mlp"), default=None,
                   help="model (default: resnet18 on CUDA, cnn on a CPU)")
    p.add_argument("--width", type=int, default=None, help="model width (default: the model's: resnet18 64, cnn 32)")
    p.add_argument("--steps", type=int, default=None, help="rounds per timed pass (default: 30 on CUDA, 8 on a CPU)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per side, interleaved; the median (default 3)")
    p.add_argument("--modes", default=None,
                   help="compile modes, comma-separated: none, default, reduce-overhead, max-autotune "
                        "(default: none,reduce-overhead on CUDA; none on a CPU)")
    p.add_argument("--engines", default="fused,batched", help="sim gradient engines to time (default: fused,batched)")
    p.add_argument("--loop-modes", default=None,
                   help="compile modes of the per-worker loop, comma-separated, '' for none "
                        "(default: none: the lab code is eager)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="start no side's pass after this many seconds (the rest is reported as skipped)")
    p.add_argument("--samples-per-worker", type=int, default=500, help="data per worker (iid split)")
    p.add_argument("--data-dir", help="CIFAR-10 folder (default: random images in the official format)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (default 1: steadier on a shared machine; 0: torch's default; ignored on CUDA)")
    p.add_argument("--profile", action="store_true", help="also print a torch.profiler table of one round of the "
                                                         "best sim and plain sides")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", help="also write the JSON report here (rewritten after every measurement)")
    args = p.parse_args(argv)
    args.argv, args.began = argv, time.perf_counter()
    args.loop_modes = "none" if args.loop_modes is None else args.loop_modes
    from lgc.errors import UserError

    try:
        from lgc.sim import resolve_device

        cuda = resolve_device(args.device).type == "cuda"
        args.model = args.model or ("resnet18" if cuda else "cnn")
        args.width = {"resnet18": 64, "cnn": 32, "mlp": 128}[args.model] if args.width is None else args.width
        args.steps = (30 if cuda else 8) if args.steps is None else args.steps
        args.modes = args.modes or ("none,reduce-overhead" if cuda else "none")
        for name in ("steps", "repeats", "samples_per_worker", "width"):
            v = getattr(args, name)
            if v < 1:
                raise UserError(f"--{name.replace('_', '-')} {v} must be >= 1")
        report = run(args)
    except UserError as e:
        print(f"lgc bench: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(dumps(report, indent=2))
        return 0
    b, env = report["best"], report["device"]
    print("ratios (samples/s, best mode of each side): " +
          ", ".join(f"{k} {v:.3f}" for k, v in b["ratios"].items()) + "  (target sim/plain >= 0.9)")
    print(f"device {env.get('device_name')} ({env['device']}), torch {env.get('torch')}, "
          f"code {report['code_version']['git']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
