"""The `sim` backend's training loop: a run directory, the run cache and checkpoints.

    run_dir = train(TrainConfig(...))     # results/train/<key>/: rounds.csv, schedule.csv, final.json
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Optional

from lgc import runs
from lgc.checkpoint import load_checkpoint, save_checkpoint
from lgc.config import CHECKPOINT_EVERY_S, TrainConfig
from lgc.errors import check
from lgc.fingerprint import run_key
from lgc.protocol import DIVERGED, REFIT_FIELDS, ROUND_FIELDS, RUN_KIND, divergence_record, diverged, refit_rows
from lgc.sim.simulator import Simulator
from theory.schedule import schedule_to_csv


def round_fields(rows) -> list:
    """rounds.csv's columns: ROUND_FIELDS, then a task's own test metrics (test_<name>) in order of appearance."""
    extra = [k for r in rows for k in r if k not in ROUND_FIELDS]
    return list(ROUND_FIELDS) + list(dict.fromkeys(extra))


def _write_progress(path: Path, sim: Simulator) -> None:
    runs.atomic_write_csv(path / "rounds.csv", sim.rows, round_fields(sim.rows))
    runs.atomic_write_text(path / "schedule.csv", schedule_to_csv(sim.schedules))
    if sim.k_control is not None:  # --k auto: every refit (lgc.protocol.refit_rows)
        runs.atomic_write_csv(path / "refits.csv", refit_rows(sim.k_control.history), REFIT_FIELDS)
    save_checkpoint(path / "checkpoint.pt", sim.state_dict())


def train(
    config: TrainConfig, *, root=None, force: bool = False, resume: bool = True, quiet: bool = False,
    stop_after: Optional[int] = None, time_limit_s: Optional[float] = None, dataset=None, task=None, rule=None,
) -> Path:
    """Run (or reuse) the `sim` run of `config`; returns its directory results/train/<key>/.

    A finished run with the same config, input files and code is reused unless `force`; a
    forced rerun writes elsewhere and replaces the finished run only when it finishes. With
    `resume`, an unfinished run continues from its last checkpoint, and a finished run of the
    same settings with fewer rounds is extended; either ends bit-identical to an uninterrupted
    run. `stop_after` rounds or `time_limit_s` seconds end this call early after a checkpoint
    (chunked GPU sessions; tests); run `train` again to continue. `dataset`: the config's data
    set already in memory (a script training many runs loads CIFAR-10 once; it must be the
    config's own). `task`: an lgc.Task trained instead of the config's data and model, `rule`:
    an lgc.rules.Rule instead of the config's algorithm (its kind); both enter the run's key by
    their fingerprints (lgc.fingerprint), or, when they cannot be fingerprinted, the run is not
    cached and trains in a fresh directory. Ctrl-C or SIGTERM lets the round in flight finish, checkpoints
    it and says how to resume. A finished run that diverged is final: a longer run of the same
    settings takes its record as is. Two identical runs at once: the second waits for the first
    (runs.locked) and reuses its result.
    """
    cfg = config.resolved().validate()
    ident, uncached = run_key(task, rule, n_workers=cfg.n_workers, data_seed=cfg.task.data_seed)
    key = {**cfg.to_dict(), **ident}  # a user's task and rule by their fingerprints (lgc.fingerprint)
    path = runs.run_dir(RUN_KIND, key, root)
    if uncached is not None:
        path = _uncached_dir(path, uncached)
    with runs.locked(path):
        if runs.is_complete(path) and not force:
            return runs.reuse(path)
        rerun = force and runs.is_complete(path)
        check(not (rerun and (stop_after is not None or time_limit_s is not None)),
              "--force of a finished run must finish in one call: drop --stop-after/--time-limit")
        work = runs.staging_dir(path) if rerun else path
        sim = Simulator(cfg, dataset=dataset, task=task, rule=rule)
        ckpt = path / "checkpoint.pt"
        if resume and not force and ckpt.exists():
            sim.load_state_dict(load_checkpoint(ckpt), source=str(ckpt))
            runs.say(f"resuming {path} from round {sim.round} of {cfg.rounds}")
        else:
            if work.exists():
                shutil.rmtree(work)
            runs.start_run(work, {**key, "theory": cfg.theory_record()}, str(sim.device))
            runs.atomic_write_json(work / "data.json", sim.task.info())
            shorter = None if (force or not resume or uncached) else _extendable(cfg, ident, root)
            if shorter is not None and _diverged(shorter):  # final: the longer run diverges at the same round
                for name in ("rounds.csv", "schedule.csv", "refits.csv", "checkpoint.pt", "final.json"):
                    if (shorter / name).exists():
                        runs.atomic_write_bytes(work / name, (shorter / name).read_bytes())
                runs.say(f"the finished run {shorter} diverged: its record stands for {cfg.rounds} rounds")
                return path
            if shorter is not None:
                _extend_from(sim, shorter)
                runs.say(f"extending the finished run {shorter} from {sim.round} to {cfg.rounds} rounds")
        extra = _loop(sim, work, quiet=quiet, stop_after=stop_after, time_limit_s=time_limit_s,
                      resume_hint=None if rerun else _resume_command(path, root, ident))
        if extra is not None:
            runs.finish_run(work, {**sim.final_metrics(), **extra, "theory": cfg.theory_record()})
            if rerun:
                runs.replace_dir(work, path)
    return path


def _loop(sim: Simulator, work: Path, *, quiet, stop_after, time_limit_s, resume_hint) -> Optional[dict]:
    """Rounds until T ({}), until the run diverges (its final.json record, lgc.protocol.divergence_record)
    or until this call's budget ends (None, after a checkpoint). A checkpoint every
    cfg.checkpoint_every rounds and at least every CHECKPOINT_EVERY_S seconds. A first Ctrl-C or
    SIGTERM lets the round in flight finish, checkpoints it and stops (Interrupted); a second stops now."""
    import signal
    import threading

    from tqdm import tqdm

    cfg = sim.cfg
    stop = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (getattr(signal, n) for n in STOP_SIGNALS):  # SIGTERM (kill, a scheduler's end of job) checkpoints like Ctrl-C
            handlers[sig] = signal.signal(sig, lambda signum, _: stop.append(signum) if not stop else _raise_interrupt())
    began = saved = time.perf_counter()
    done_here = 0
    try:
        with tqdm(total=cfg.rounds, initial=sim.round, disable=quiet, desc=f"{cfg.algorithm} K={'auto' if cfg.k_auto else cfg.threshold_k}",
                  unit="round", leave=False) as bar:
            while sim.round < cfg.rounds:
                row = sim.step()
                done_here += 1
                bar.update(1)
                if diverged(row, sim.w):
                    _write_progress(work, sim)
                    return divergence_record(row["round"])
                if "test_acc" in row:
                    bar.set_postfix(acc=f"{row['test_acc']:.3f}", loss=f"{row['loss']:.3f}")
                if sim.round == cfg.rounds:
                    break
                out_of_time = time_limit_s is not None and time.perf_counter() - began > time_limit_s
                early = out_of_time or (stop_after is not None and done_here >= stop_after)
                due = cfg.checkpoint_every and (sim.round % cfg.checkpoint_every == 0
                                                or time.perf_counter() - saved >= CHECKPOINT_EVERY_S)
                if due or early or stop:
                    _write_progress(work, sim)
                    saved = time.perf_counter()
                if stop:
                    raise Interrupted(stop[0],
                        f"{'terminated' if stop[0] == signal.SIGTERM else 'interrupted'}: round {sim.round} of {cfg.rounds} is checkpointed; resume with: {resume_hint}"
                        if resume_hint else "interrupted: the forced rerun is discarded, the finished run is kept")
                if early:
                    return None
    finally:
        for sig, previous in handlers.items():
            signal.signal(sig, previous)
    _write_progress(work, sim)
    return {}


STOP_SIGNALS = ("SIGINT", "SIGTERM")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during `train`: its text says which round was checkpointed and how to
    resume; `signum` is the signal (lgc.cli exits with 128 + signum)."""

    def __init__(self, signum: int, text: str):
        super().__init__(text)
        self.signum = int(signum)


def _raise_interrupt():
    raise KeyboardInterrupt  # a second Ctrl-C: stop now (the last checkpoint stays)


def _uncached_dir(path: Path, why: str) -> Path:
    """A fresh run directory beside the cached ones, for a run whose task cannot be fingerprinted."""
    import uuid

    fresh = path.parent / f"uncached-{uuid.uuid4().hex[:12]}"
    runs.say(f"not cached: {why}; the run trains in {fresh}")
    return fresh


def _resume_command(path: Path, root, extra: dict) -> str:
    if extra:
        return "run the same Python call again (lgc.simulate resumes from the checkpoint)"
    cmd = f"lgc train --config {path / 'config.json'}"
    return cmd + (f" --results {root}" if root is not None else "")


def _extendable(cfg: TrainConfig, extra: dict, root) -> Optional[Path]:
    """The finished sim run with the most rounds T' < T whose settings, inputs, task and code are
    this run's but for T (its directory is the one runs.run_dir gives for T'), or None."""
    here = runs.run_dir(RUN_KIND, {**cfg.to_dict(), **extra}, root).parent
    best, best_t = None, 0
    for conf in here.glob("*/config.json"):
        try:
            t = int(json.loads(conf.read_text()).get("rounds", 0))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError, OSError):
            continue
        if best_t < t < cfg.rounds and runs.is_complete(conf.parent) and (conf.parent / "checkpoint.pt").exists() \
                and runs.run_dir(RUN_KIND, {**cfg.to_dict(), **extra, "rounds": t}, root) == conf.parent:
            best, best_t = conf.parent, t
    return best


def _diverged(path: Path) -> bool:
    """Whether the finished run `path` stopped because it diverged (lgc.protocol.divergence_record)."""
    try:
        return json.loads((path / "final.json").read_text()).get("status") == DIVERGED
    except (ValueError, AttributeError, UnicodeDecodeError, OSError):
        return False


def _extend_from(sim: Simulator, shorter: Path) -> None:
    """Continue from the final state of a finished run of T' < T rounds. Its last round was
    evaluated because it was last; an uninterrupted run evaluates it only on the eval_every
    grid, so those metrics go (evaluation changes no state: eval mode, no random numbers)."""
    sim.load_state_dict(load_checkpoint(shorter / "checkpoint.pt"))
    every = sim.cfg.eval_every
    if sim.rows and not (every and sim.round % every == 0):
        for k in ("test_loss", "test_acc"):
            sim.rows[-1].pop(k, None)
