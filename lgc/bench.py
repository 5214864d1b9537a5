"""`make bench`: the `sim` round's throughput against a plain training step (SPEC section 8).

Configuration (fixed): ResNet-18 with GroupNorm, N = 10, K = 7, B = 50, M = 5, shifted-exponential
timing (shift 1, rate 1), h = 1, lgc. A sim round processes K*B + sum_j m_j*b samples (the fast
mini-batches and the stragglers' finished blocks); the plain step is forward + backward + SGD
with momentum on the same number of samples, round by round (the same sequence of sizes).
Each side is timed in every compile mode asked for and the best is compared:

    ratio = (sim samples/s) / (plain samples/s) = plain ms/step / sim ms/step   (target >= 0.9, H100)

The sim round is the whole `Simulator.step()` (data gather and augmentation on the device,
schedule, gradient engine, rule, server step). On CUDA: bf16 autocast, channels_last, CUDA
events. The timed rounds replay a schedule seen once untimed before, so compilation (one
graph per distinct round size) happens outside the timed window.

    python -m lgc.bench                                   # GPU, full width
    python -m lgc.bench --device cpu --width 8 --steps 3  # CPU smoke run (says nothing of the GPU)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

N_WORKERS, THRESHOLD_K, BATCH, BLOCKS = 10, 7, 50, 5


# ----------------------------------------------------------------------------- data stand-in
def write_fake_cifar10(folder, *, n_train: int = 5000, n_test: int = 500, seed: int = 0) -> Path:
    """Random images and labels in CIFAR-10's official python layout (data_batch_1..5,
    test_batch, batches.meta) under folder/cifar-10-batches-py; load with accept_md5_mismatch.
    For benchmarks and pipeline tests that need CIFAR-shaped data without the download."""
    rng = np.random.default_rng(seed)
    out = Path(folder) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    per = -(-n_train // 5)
    sizes = [min(per, n_train - k * per) for k in range(5)] + [n_test]
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for name, n in zip(names, sizes):
        n = max(n, 0)
        # every class present in every batch (partitions need each label)
        labels = [int(v) for v in (np.arange(n) + rng.integers(0, 10)) % 10]
        d = {b"batch_label": name.encode(), b"labels": labels,
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"fake.png"] * n}
        (out / name).write_bytes(pickle.dumps(d, protocol=2))
    (out / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"class{i}".encode() for i in range(10)]},
                                                    protocol=2))
    return out


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


# ----------------------------------------------------------------------------- the two sides
def bench_config(args, data_dir: str, engine: str, mode: str, rounds: int):
    from lgc.config import TrainConfig

    return TrainConfig(
        algorithm="lgc", n_workers=N_WORKERS, threshold_k=THRESHOLD_K, batch_size=BATCH, blocks=BLOCKS,
        rounds=rounds, warmup_rounds=0, lr=0.05, momentum=0.9, dataset="cifar10", data_dir=data_dir,
        accept_md5_mismatch=True, model="resnet18", width=args.width, partition="iid",
        samples_per_worker=args.samples_per_worker, timing="shifted-exp", straggling_period=1, seed=args.seed,
        eval_every=0, checkpoint_every=0, device=args.device, engine=engine, compile=mode)


def replayed_schedule(cfg, steps: int) -> list:
    """`steps` rounds drawn from the timing model, then the same rounds again (the first pass
    warms up every round size; the second is timed)."""
    from lgc.protocol import make_timing
    from theory.schedule import schedule_round

    timing = make_timing(cfg)
    first = [schedule_round(timing.block_finish_times(cfg.seed, t, cfg.n_workers, cfg.blocks, period=1),
                            cfg.threshold_k, semantics=cfg.semantics, round_index=t) for t in range(steps)]
    return first + [dataclasses.replace(s, round=s.round + steps) for s in first] + \
        [dataclasses.replace(first[0], round=2 * steps)]


def time_sim(args, data_dir, engine: str, mode: str) -> dict:
    from lgc.sim import Simulator

    steps = args.steps
    cfg = bench_config(args, data_dir, engine, mode, 2 * steps + 1)
    sim = Simulator(cfg, schedule=replayed_schedule(cfg, steps))
    for _ in range(steps):  # untimed: compiles every round size
        sim.step()
    with Timer(sim.device) as tm:
        rows = [sim.step() for _ in range(steps)]
    samples = [r["samples"] for r in rows]
    return {"ms_per_step": tm.ms / steps, "samples": samples, "samples_per_s": sum(samples) / tm.ms * 1e3,
            "fused_rounds": getattr(sim.engine, "fused_rounds", None)}


def time_plain(args, samples: list, mode: str, device: torch.device) -> dict:
    """forward + backward + SGD (momentum 0.9) on len(samples) batches of the given sizes."""
    from lgc.sim.fused import _maybe_compile, mark_step
    from lgc.models import make_model

    torch.manual_seed(args.seed)
    cl = device.type == "cuda"
    model = make_model("resnet18", 10, (3, 32, 32), width=args.width).to(
        device, memory_format=torch.channels_last if cl else torch.preserve_format)
    model.train()
    fwd = _maybe_compile(model, mode)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    batches = {}
    for n in sorted(set(samples)):
        x = torch.randn(n, 3, 32, 32, generator=g).to(device)
        batches[n] = (x.contiguous(memory_format=torch.channels_last) if cl else x,
                      torch.randint(0, 10, (n,), generator=g).to(device))

    def step(n):
        x, y = batches[n]
        mark_step(mode)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cl):
            out = fwd(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for n in samples:  # untimed: compiles every size
        step(n)
    with Timer(device) as tm:
        for n in samples:
            step(n)
    return {"ms_per_step": tm.ms / len(samples), "samples_per_s": sum(samples) / tm.ms * 1e3}


# ----------------------------------------------------------------------------- main
def run(args) -> dict:
    from lgc import runs
    from lgc.sim import resolve_device

    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or torch.get_num_threads())
    modes = [m for m in args.modes.split(",") if m]
    engines = [e for e in args.engines.split(",") if e]
    report = {"config": {"N": N_WORKERS, "K": THRESHOLD_K, "B": BATCH, "M": BLOCKS, "model": "resnet18-gn",
                         "width": args.width, "steps": args.steps, "timing": "shifted-exp(shift=1, rate=1), h=1",
                         "amp_bf16": device.type == "cuda", "channels_last": device.type == "cuda"},
              "device": runs.environment_info(str(device)), "code_version": runs.code_version(),
              "sim": {}, "plain": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or str(write_fake_cifar10(tmp, n_train=N_WORKERS * args.samples_per_worker,
                                                           n_test=100).parent)
        samples = None
        for engine in engines:
            for mode in modes:
                key = f"{engine}/{mode}"
                try:
                    res = time_sim(args, data_dir, engine, mode)
                except Exception as e:  # a compile mode that fails on this machine is reported, not fatal
                    res = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
                report["sim"][key] = res
                samples = samples or res.get("samples")
                _say(args, f"sim round   {key:<26} " + _fmt(res))
        for mode in modes:
            try:
                res = time_plain(args, samples, mode, device)
            except Exception as e:
                res = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
            report["plain"][mode] = res
            _say(args, f"plain step  {mode:<26} " + _fmt(res))
    best = lambda d: min((v["ms_per_step"], k) for k, v in d.items() if "ms_per_step" in v)  # noqa: E731
    sim_ms, sim_key = best(report["sim"])
    plain_ms, plain_key = best(report["plain"])
    report["best"] = {"sim": sim_key, "sim_ms": sim_ms, "plain": plain_key, "plain_ms": plain_ms,
                      "ratio": plain_ms / sim_ms, "mean_samples_per_round": float(np.mean(samples))}
    for eng in engines:
        ms = [v["ms_per_step"] for k, v in report["sim"].items() if k.startswith(eng + "/") and "ms_per_step" in v]
        if ms:
            report["best"][f"ratio_{eng}"] = plain_ms / min(ms)
    return report


def _fmt(res: dict) -> str:
    if "error" in res:
        return f"FAILED {res['error'][:120]}"
    return f"{res['ms_per_step']:8.2f} ms/step  {res['samples_per_s']:10.0f} samples/s"


def _say(args, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lgc.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cuda[:i] or cpu (default: auto)")
    p.add_argument("--width", type=int, default=64, help="ResNet-18 width (64: the usual model)")
    p.add_argument("--steps", type=int, default=30, help="timed rounds per measurement (after as many untimed)")
    p.add_argument("--modes", default=None,
                   help="compile modes, comma-separated: none, default, reduce-overhead, max-autotune "
                        "(default: none,reduce-overhead on CUDA; none on CPU)")
    p.add_argument("--engines", default="fused,batched", help="sim gradient engines to time (default: fused,batched)")
    p.add_argument("--samples-per-worker", type=int, default=500, help="data per worker (iid split)")
    p.add_argument("--data-dir", help="CIFAR-10 folder (default: random images in the official format)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (default 1: steadier on a shared machine; ignored on CUDA)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", help="also write the JSON report here")
    args = p.parse_args(argv)
    from lgc.errors import UserError

    try:
        from lgc.sim import resolve_device

        dev = resolve_device(args.device)
        if args.modes is None:
            args.modes = "none,reduce-overhead" if dev.type == "cuda" else "none"
        report = run(args)
    except UserError as e:
        print(f"lgc bench: error: {e}", file=sys.stderr)
        return 2
    b = report["best"]
    env = report["device"]
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(f"best sim round {b['sim']}: {b['sim_ms']:.2f} ms/step; best plain step {b['plain']}: "
              f"{b['plain_ms']:.2f} ms/step; ratio {b['ratio']:.3f} (target >= 0.9 on an H100); "
              f"{b['mean_samples_per_round']:.0f} samples/round")
        print(f"device {env.get('device_name')} ({env['device']}), torch {env.get('torch')}, "
              f"code {report['code_version']['git']}")
    if args.out:
        from lgc.runs import atomic_write_json

        atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
