"""The CPU scale's own bound constants for fig4: `lgc estimate` on the profile's base run (model,
partition, data) with the scale's `estimate_args`, written next to the figures as constants.json
with the config (constants_config.json) and arguments (constants_args.json) it came from, and
reused while both are unchanged and the file holds what the figures read (NEEDED: the curvature bands of
fig4's error model, DERIVATION.md section 8, which constants written before `lgc estimate` measured them
lack, and the bands' record of how Delta was split over them, bands["delta_split"], which constants written
before `lgc estimate` calibrated that split on its trajectory (eq. 8.10', DERIVATION.md 8.3) lack: their split
is eq. 8.10's alone, so they are stale for today's model, and the held-out pilot's record, "heldout", with which
fig4's model K* minimises the predicted held-out loss, eq. 8.14, DERIVATION.md 8.5: constants without it show the
training-gap model only). The pilot's flags come from the scale (`pilot_args`). It runs in a process of its own beside the training runs
(paper_figures/paper.py); the runs need not wait for it.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from paper_figures import paper_profile as pp

CONSTANTS, CONFIG, ARGS = "constants.json", "constants_config.json", "constants_args.json"
# key paths of constants.json beyond the bound's that the figures read (fig4's predicted curve): the bands, and
# their Delta split as today's `lgc estimate` records it (eq. 8.10'); a file lacking one is estimated again
NEEDED = (("bands",), ("bands", "delta_split"), ("heldout",))
# the held-out pilot's step size: plain SGD, below 2 / L for the CPU profile's L (5.5: stable), about `lgc estimate`'s
# default 0.5 / L, fixed here so that pilot_args can size the pilot before L is measured
PILOT_LR = 0.1


def pilot_args(scale) -> list[str]:
    """`lgc estimate`'s held-out pilot flags for fig4 (DERIVATION.md 8.5): the pilot must reach the predicted progress
    of every K of the budget, which a full-sync step makes at least of a round at the same step size. fig4's runs take
    up to max_K T(K) rounds (K = 1, the shortest round) at step eta with momentum beta, whose steady step along the
    slow directions, the ones that hold most of Delta, is eta / (1 - beta); so the pilot takes
    ceil(T(1) eta / ((1 - beta) PILOT_LR)) steps at PILOT_LR (the default 200 steps at 0.5 / L would cover about 0.06 of it)."""
    most = max(pp.rounds_for("lgc", k, scale) for k in range(1, pp.BASE_N + 1))
    steps = math.ceil(most * pp.BASE_LR / ((1 - pp.BASE_MOMENTUM) * PILOT_LR) - 1e-9)
    return ["--heldout-lr", f"{PILOT_LR:g}", "--heldout-steps", str(steps)]


def request(scale, data_dir: str, accept: bool) -> tuple[dict, list[str]]:
    """The base run's resolved config and the `lgc estimate` arguments the scale's constants come from."""
    cfg = pp.base_config(data_dir, scale, accept_md5_mismatch=accept).resolved().to_dict()
    return cfg, list(scale.estimate_args) + pilot_args(scale) + (["--threads", str(scale.threads)] if scale.threads
                                                                 else [])


def ready(out: Path, cfg: dict, args: list[str]) -> bool:
    """Whether out/constants.json is there from this config and these arguments, with the NEEDED keys (reused,
    not re-estimated)."""
    files = [out / f for f in (CONSTANTS, CONFIG, ARGS)]
    return all(f.exists() for f in files) and _stored_config(files[1]) == cfg \
        and json.loads(files[2].read_text()) == args and _has_needed(files[0])


def _has_needed(path: Path) -> bool:
    try:
        d = json.loads(path.read_text())
    except ValueError:
        return False
    return all(_get(d, keys) for keys in NEEDED)


def _get(d, keys: tuple):
    """d[keys[0]][keys[1]]..., or None where a level is missing or not an object."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _stored_config(path: Path):
    """The config in constants_config.json in today's shape (one written before lgc.config_task holds
    the task's keys at the top level), or None if it is not a config."""
    from lgc.config import TrainConfig
    from lgc.errors import UserError

    try:
        d = json.loads(path.read_text())
        return TrainConfig.from_dict(d).to_dict() if isinstance(d, dict) else None
    except (UserError, ValueError):
        return None


def start(scale, data_dir: str, accept: bool, out: Path, quiet: bool):
    """Start `lgc estimate` unless its constants are ready. Returns (path, process): process is None
    when they are; else wait for it with `finish`."""
    from lgc import runs

    cfg, args = request(scale, data_dir, accept)
    path = out / CONSTANTS
    if ready(out, cfg, args):
        return path, None
    out.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_json(out / CONFIG, cfg)
    runs.atomic_write_json(out / ARGS, args)
    path.unlink(missing_ok=True)  # never read constants of other settings
    if not quiet:
        print(f"lgc estimate {' '.join(args)} on the base run's model and partition -> {path} (log: "
              f"{out / 'constants.log'})", flush=True)
    cmd = [sys.executable, "-m", "lgc", "estimate", "--config", str(out / CONFIG), "--out", str(path), "--quiet", *args]
    log = open(out / "constants.log", "w")
    return path, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def finish(path: Path, proc) -> Path:
    """Wait for start's process; UserError naming its log if it failed."""
    from lgc.errors import UserError

    if proc is not None and proc.wait() != 0:
        raise UserError(f"lgc estimate exited with status {proc.returncode}; see {path.parent / 'constants.log'}")
    return path
