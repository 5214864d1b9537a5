"""The training configuration: one dataclass vocabulary, validated, the same for the CLI, JSON
files and the Python API (`lgc.sim.train(TrainConfig(...))`). Symbols as in theory/DERIVATION.md
section 1 (N workers, K fastest, B samples per worker, M blocks of b = B / M samples).

Each field is written once here, with its default and its help text (field metadata); the
command-line flags of `lgc train`, `lgc estimate` and `lgc optimize-k` are generated from these
fields (lgc/commands/_config_args.py), so a quantity has one flag everywhere: `--workers` (N),
`--k` (K), `--blocks` (M), `--batch-size` (B), `--rounds` (T). The built-in task (data set,
partition, pi, model: TaskConfig, lgc/config_task.py) is the field `task`: `cfg.task.dataset`,
flags `--dataset`, ..., JSON `"task": {...}` (its keys at the top level still read, the flat form
before the nesting: nest_task_keys), and `TrainConfig(dataset=...)` still takes them as keywords.
The dist backend's own options are `DistOptions` (recorded in a dist run's config.json under "dist").

No torch import here: `lgc optimize-k` reads these fields without loading torch.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

from lgc.config_fields import check_finite, check_not_null, check_seed, option, read_json_object
from lgc.errors import UserError, check
from lgc.config_task import TaskConfig
from theory.algorithms import NAMES as ALGORITHMS
from theory.schedule import DEFAULT_SEMANTICS, SEMANTICS

ENGINES = ("auto", "batched", "fused")  # auto (default_engine), lgc.sim.engines.BatchedEngine, lgc.sim.fused.FusedEngine
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")  # torch.compile of the engine's pass
BACKENDS = ("sim", "dist")
# default rounds between checkpoints: a sim run resumes bit-identically from any round and a
# checkpoint rewrites its CSVs; a dist run's measured rounds cannot be redone, so it saves
# often (and also every CHECKPOINT_EVERY_S seconds: lgc.dist.runner, lgc.sim.training)
CHECKPOINT_EVERY = {"sim": 50, "dist": 10}
CHECKPOINT_EVERY_S = 60.0
DIST_BACKENDS = ("auto", "gloo", "nccl")
REDUCE_MODES = ("auto", "gather", "allreduce")
ON_WORKER_DEATH = ("stop", "straggler")
@dataclass(frozen=True)
class TrainConfig:
    # algorithm and the round structure
    algorithm: str = option("lgc", ", ".join(ALGORITHMS[:-1]) + " or " + ALGORITHMS[-1])
    n_workers: int = option(10, "N, number of workers", flag="--workers", metavar="N")
    threshold_k: int = option(7, "K, the server waits for the K fastest workers; auto: chosen online from the "
                                 "measured round times (--budget, README 'K chosen online')", flag="--k",
                              metavar="K|auto", auto="k_auto")
    k_auto: bool = option(False, "K chosen online (--k auto); threshold_k is then the K before the first fit, N",
                          hidden=True)
    batch_size: int = option(50, "B, samples per worker per round", metavar="B")
    blocks: int = option(5, "M, blocks per mini-batch (B must be divisible by M; b = B / M)", metavar="M")
    rounds: int = option(200, "T, number of rounds", metavar="T")
    warmup_rounds: int = option(2, "full-sync rounds at the start (the lab code uses 2)")
    # server optimiser (identical across algorithms)
    lr: float = option(0.05, "step size eta", metavar="ETA")
    momentum: float = option(0.9, "server heavy-ball momentum")
    weight_decay: float = option(0.0, "server weight decay")
    # data, partition and model: the built-in task (lgc/config_task.py; its flags are flat, --dataset, ...)
    task: TaskConfig = option(help="the built-in task: data set, partition, worker weights pi and model",
                              factory=TaskConfig)
    # timing (README "Timing models"; theory/DERIVATION.md section 2)
    timing: str = option("shifted-exp", "timing model: shifted-exp, pareto, lognormal, heterogeneous, "
                                        "deterministic, trace or trace-fit", metavar="NAME")
    timing_params: dict = option(help="a parameter of the timing model (repeatable; VALUE is JSON or text), "
                                      "e.g. rate=0.5, slowdown=3, path=trace.csv",
                                 flag="--timing-param", metavar="KEY=VALUE", factory=dict)
    straggling_period: int = option(1, "h, rounds for which the drawn times are held", metavar="H")
    semantics: str = option(DEFAULT_SEMANTICS, "abort (stragglers stop at t_cut; the paper's) or boundary (they finish "
                                                "the block in flight and start the next round late)")
    comm_alpha: float = option(0.0, "communication latency per round [time units] (eq. 2.5)", metavar="A")
    comm_beta: float = option(0.0, "communication time per byte sent [time units] (eq. 2.5)", metavar="B")
    deadline: Optional[float] = option(None, "anytime-minibatch deadline [time units]", none="E[X_(K:N)]")
    peer_s: Optional[int] = option(None, "S, block gradients per step of rennala / malenia (eq. 6.7)", flag="--peer-s",
                                   metavar="S", none="quadratic: max(ceil(sigma^2/(b eps)), 1), malenia at least N; "
                                                     "else N*M")
    target_eps: float = option(0.01, "eps, the target E||grad F||^2 that sets the quadratic's default S (--peer-s)",
                               metavar="EPS")
    # K chosen online (--k auto; theory/adaptive.py, theory/DERIVATION.md section 7)
    budget: Optional[float] = option(None, "tau, the time budget on the run's clock that --k auto picks K for "
                                           "(required with --k auto; the run still ends after --rounds)",
                                     metavar="TAU", none="none")
    k_refit: int = option(10, "--k auto: rounds between refits of the timing model", metavar="R")
    k_window: int = option(40, "--k auto: a refit uses the last this many rounds", metavar="W")
    k_first_fit: int = option(10, "--k auto: rounds measured (at K = N) before the first fit", metavar="R")
    k_constants: Optional[str] = option(None, "--k auto: constants JSON (lgc estimate) of the model that picks K",
                                        metavar="FILE", none="exact on quadratic, else required")
    k_criterion: str = option("predict", "--k auto: which K* a refit takes: predict (the error model refitted from "
                                         "the run's rounds, as optimize-k's k_star) or bound (the bound's)")
    schedule_file: Optional[str] = option(None, "replay a recorded schedule.csv instead of the timing model",
                                          metavar="FILE", none="none")
    # bookkeeping
    seed: int = option(0, "seed of timing, mini-batches, augmentation and initial weights")
    eval_every: int = option(10, "test evaluation every n rounds and after the last (0: only at the end)")
    eval_subset: Optional[int] = option(None, "evaluations before the last use the first n test samples; the last "
                                              "uses all (sim backend)", metavar="N", none="all")
    checkpoint_every: Optional[int] = option(None, "checkpoint every n rounds and at least every 60 s (0: only at the "
                                                   "end)", none="50 for sim, 10 for dist")
    device: str = option("auto", "auto, cpu or cuda[:i]")
    engine: str = option("auto", "gradient engine: auto (fused where it applies, else batched), batched (one "
                                 "backward per group) or fused (one backward, split weight gradients)")
    compile: str = option("none", "torch.compile of the gradient pass: none, default, reduce-overhead or max-autotune")
    backend: str = option("sim", "sim (one process, virtual clock) or dist (torch.distributed)")

    # ------------------------------------------------------------------ derived values
    @property
    def block_size(self) -> int:
        """b = B / M."""
        return self.batch_size // self.blocks

    def theory_departures(self) -> list[str]:
        """How this run leaves what the bounds of theory/bounds.py assume (plain SGD from round 0 under the
        rule, pi_i = 1/N; DERIVATION.md section 1), one phrase each; empty when it does not. Recorded in
        the run's config.json and final.json under "theory" and printed by `lgc train`."""
        out = []
        if self.momentum != 0:
            out.append(f"momentum {self.momentum:g} (the bounds assume plain SGD, momentum 0)")
        if self.weight_decay != 0:
            out.append(f"weight decay {self.weight_decay:g} (the bounds assume none)")
        from theory.algorithms import NAMES, algorithm

        if self.warmup_rounds > 0 and not (self.algorithm in NAMES and algorithm(self.algorithm).round_end == "all"):
            out.append(f"{self.warmup_rounds} full-sync warm-up rounds (the bounds count none; they apply from "
                       f"round {self.warmup_rounds} with Delta = F(w_{self.warmup_rounds}) - F*)")
        if self.algorithm in NAMES and not algorithm(self.algorithm).has_bound:
            out.append(f"{self.algorithm} has no bound in theory/bounds.py")
        return out

    def theory_record(self) -> dict:
        d = self.theory_departures()
        return {"within_assumptions": not d, "departures": d}

    def resolved(self) -> "TrainConfig":
        """Fill the defaults that depend on other fields (recorded in config.json)."""
        return replace(
            self,
            task=self.task.resolved(self.seed),
            timing_params=(dict(sorted(self.timing_params.items())) if isinstance(self.timing_params, dict)
                           else self.timing_params),  # validate() names a non-object
            engine=default_engine(self.task.dataset, self.task.norm) if self.engine == "auto" else self.engine,
            checkpoint_every=(CHECKPOINT_EVERY.get(self.backend, 50) if self.checkpoint_every is None
                              else self.checkpoint_every),
            threshold_k=self.n_workers if self.k_auto else self.threshold_k,  # until the first fit
        )

    def validate(self) -> "TrainConfig":
        """Raise UserError (one line naming the value) for an invalid configuration."""
        c = self
        check_not_null(c)
        for f in fields(c):
            check_finite(f.name, getattr(c, f.name))
        check_seed("seed", c.seed)
        check(c.algorithm in ALGORITHMS, f"algorithm={c.algorithm!r} must be one of {', '.join(ALGORITHMS)}")
        check(c.n_workers >= 1, f"N={c.n_workers} must be >= 1")
        check(1 <= c.threshold_k <= c.n_workers, f"K={c.threshold_k} must satisfy 1 <= K <= N={c.n_workers}")
        check(c.batch_size >= 1, f"B={c.batch_size} must be >= 1")
        check(c.blocks >= 1, f"M={c.blocks} must be >= 1")
        check(c.batch_size % c.blocks == 0, f"B={c.batch_size} is not divisible by M={c.blocks}")
        check(c.rounds >= 1, f"rounds={c.rounds} must be >= 1")
        check(c.warmup_rounds >= 0, f"warmup_rounds={c.warmup_rounds} must be >= 0")
        check(c.lr > 0, f"lr={c.lr} must be > 0")
        check(0 <= c.momentum < 1, f"momentum={c.momentum} must be in [0, 1)")
        check(c.weight_decay >= 0, f"weight_decay={c.weight_decay} must be >= 0")
        c.task.validate()
        check(c.straggling_period >= 1, f"straggling_period h={c.straggling_period} must be >= 1")
        check(c.semantics in SEMANTICS, f"semantics={c.semantics!r} must be one of {', '.join(SEMANTICS)}")
        check(c.comm_alpha >= 0 and c.comm_beta >= 0, f"comm_alpha={c.comm_alpha}, comm_beta={c.comm_beta} must be >= 0")
        check(c.deadline is None or c.deadline > 0, f"deadline={c.deadline} must be > 0")
        check(c.peer_s is None or c.peer_s >= 1, f"peer_s S={c.peer_s} must be >= 1")
        check(c.target_eps > 0, f"target_eps={c.target_eps} must be > 0")
        check(c.schedule_file is None or Path(c.schedule_file).is_file(), f"schedule_file={c.schedule_file} does not exist")
        check(c.eval_every >= 0, f"eval_every={c.eval_every} must be >= 0")
        check(c.eval_subset is None or c.eval_subset >= 1, f"eval_subset={c.eval_subset} must be >= 1")
        check(c.eval_subset is None or c.backend == "sim", "eval_subset: the sim backend only (dist evaluates all)")
        check(c.checkpoint_every is None or c.checkpoint_every >= 0, f"checkpoint_every={c.checkpoint_every} must be >= 0")
        check(c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:"), f"device={c.device!r} must be auto, cpu or cuda[:i]")
        check(c.engine in ENGINES, f"engine={c.engine!r} must be one of {', '.join(ENGINES)}")
        check(c.compile in COMPILE_MODES, f"compile={c.compile!r} must be one of {', '.join(COMPILE_MODES)}")
        check(c.engine != "fused" or (c.task.dataset != "quadratic" and c.task.norm == "group"),
              f"engine=fused needs GroupNorm models (dataset={c.task.dataset!r}, norm={c.task.norm!r}): use engine=batched")
        check(c.backend in BACKENDS, f"backend={c.backend!r} must be one of {', '.join(BACKENDS)}")
        c.validate_k_auto()
        check(isinstance(c.timing_params, dict), f"timing_params={c.timing_params!r} must be a JSON object")
        return self

    def validate_k_auto(self) -> None:
        """The settings of --k auto (theory/adaptive.py); --budget and the --k-* options only with it."""
        c = self
        if not c.k_auto:
            check(c.budget is None, f"budget={c.budget}: --budget is the horizon of --k auto; give --k auto or drop it")
            check(c.k_constants is None, "k_constants: only --k auto reads it; give --k auto or drop it")
            check(c.k_criterion == "predict", f"k_criterion={c.k_criterion}: only --k auto reads it; give --k auto or "
                                              f"drop it")
            return
        from theory.algorithms import NAMES, algorithm

        waits = [a for a in NAMES if algorithm(a).waits_for_k]
        check(algorithm(c.algorithm).waits_for_k,
              f"--k auto: algorithm={c.algorithm} does not wait for K workers; valid: {', '.join(waits)}")
        check(c.budget is not None, "--k auto needs --budget TAU, the time budget K is chosen for")
        check(c.budget > 0, f"budget={c.budget} must be > 0")
        from theory.predict_k import CRITERIA

        check(c.k_criterion in CRITERIA, f"k_criterion={c.k_criterion!r} must be one of {', '.join(CRITERIA)}")
        for name in ("k_refit", "k_first_fit"):
            check(getattr(c, name) >= 1, f"{name}={getattr(c, name)} must be >= 1")
        # a fit needs two finished mini-batch times and a round at K = 1 finishes one (theory/adaptive.py)
        check(c.k_window >= 2, f"--k-window {c.k_window}: a refit's window must hold >= 2 rounds")
        check(c.k_constants is not None or c.task.dataset == "quadratic",
              f"--k auto on dataset={c.task.dataset} needs --k-constants FILE (lgc estimate writes it; quadratic: exact)")
        check(c.k_constants is None or Path(c.k_constants).is_file(), f"k_constants={c.k_constants} does not exist")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "TrainConfig":
        """A config from its JSON form: the task nested (`"task": {...}`, as to_dict writes it) or its
        keys at the top level (the flat form before the nesting); a key in both is an error."""
        check_not_null(d, cls, source=source)  # "task": null too
        d = nest_task_keys(d, source=source)
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise UserError(f"{source}: unknown config key {unknown[0]!r} (valid: see `lgc train --help`)")
        if "task" in d:
            d["task"] = TaskConfig.from_dict(d["task"], source=source)
        try:
            return cls(**d)
        except TypeError as e:  # pragma: no cover - dataclass init with valid names only
            raise UserError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        """A config file, or a run's config.json: its "dist" object (the dist backend's options,
        which `lgc train` reads from it too) is not a TrainConfig key."""
        d = read_json_object(path)
        own = d.get("task") if isinstance(d.get("task"), dict) and "fingerprint" in d["task"] else d.get("rule")
        check(own is None, f"{path} is the config of a run of a Python Task or rule ({own}); "
                           f"`lgc train` cannot rebuild it: run the same Python call again (lgc.simulate)")
        d.pop("dist", None)
        d.pop("theory", None)  # a run's record of the bounds' assumptions (theory_record), not an option
        return cls.from_dict(d, source=str(path))


TASK_KEYS = tuple(f.name for f in fields(TaskConfig))  # the keys of "task", also read at the top level


def nest_task_keys(d: dict[str, Any], *, source: str = "config") -> dict[str, Any]:
    """A copy of the config dict `d` with its top-level task keys ("dataset", "model", ...: the flat
    form of config files before TaskConfig) moved under "task". UserError (one line) for a key given
    in both places or a "task" that is not an object."""
    out = {k: v for k, v in d.items() if k not in TASK_KEYS}
    if "task" not in d:
        flat = {k: d[k] for k in TASK_KEYS if k in d}
        return {**out, "task": flat} if flat else out
    task = asdict(d["task"]) if isinstance(d["task"], TaskConfig) else d["task"]
    check(isinstance(task, dict), f"{source}: \"task\" must be a JSON object of task keys (dataset, model, ...), "
                                  f"not {task!r}")
    both = [k for k in TASK_KEYS if k in d and k in task]
    check(not both, f"{source}: {both[0] if both else ''!r} is given both at the top level and under \"task\"; "
                    f"give it once")
    out["task"] = {**task, **{k: d[k] for k in TASK_KEYS if k in d}}
    return out


def _flat_task_keywords(init):
    """TrainConfig(dataset="quadratic", model=..., ...): the task's fields as keywords, as before the
    nesting, update `task` (a TaskConfig, or a dict of its fields; default TaskConfig()). So scripts
    and dataclasses.replace(cfg, dataset=...) keep working; cfg.task.dataset reads the value."""
    @functools.wraps(init)
    def __init__(self, *args, task=None, **kw):
        flat = {k: kw.pop(k) for k in TASK_KEYS if k in kw}
        if task is None:
            task = TaskConfig()
        elif isinstance(task, dict):
            task = TaskConfig.from_dict(task)
        check(isinstance(task, TaskConfig), f"task={task!r} must be a TaskConfig or a dict of its fields")
        init(self, *args, task=replace(task, **flat) if flat else task, **kw)

    return __init__


TrainConfig.__init__ = _flat_task_keywords(TrainConfig.__init__)


@dataclass(frozen=True)
class DistOptions:
    """Options of the dist backend beyond TrainConfig (recorded in config.json under "dist";
    docs/DIST.md). Times in milliseconds or seconds, not the timing model's units."""

    inject: bool = option(True, "sleep until the timing model's block finish times (injected stragglers); "
                                "--no-inject runs at the workers' real speeds")
    unit_ms: float = option(100.0, "milliseconds per time unit (one fast mini-batch)", metavar="MS")
    timeout_s: float = option(60.0, "a round without progress for this long ends the run, naming the worker it "
                                    "waits for; the run ends within about timeout + 5 s", metavar="SECONDS")
    process_backend: str = option("auto", "process-group engine: auto (NCCL when every rank has its own GPU, "
                                          "else gloo), gloo or nccl", flag="--dist-backend")
    host: str = option("127.0.0.1", "rendezvous address of locally spawned workers", flag="--rendezvous-host",
                       metavar="ADDR")
    threads: int = option(1, "torch CPU threads per process (1 is fastest for small models)")
    slow_worker: int = option(-1, "demo/test: worker I does extra work the timing model does not know about "
                                  "(-1: none)", metavar="I")
    slow_ms: float = option(0.0, "demo/test: the extra work of --slow-worker, milliseconds of sleep per block",
                            metavar="MS")
    reduce: str = option("auto", "how gradient sums travel: gather (to rank 0, summed in rank order, then "
                                 "broadcast), allreduce, or auto (gather for gloo on CPU)", flag="--dist-reduce")
    on_worker_death: str = option("stop", "stop: a dead or hung worker ends the run (resume with --resume); "
                                          "straggler: continue from the last checkpoint with it as a permanent "
                                          "straggler (m_j = 0; a local spawn, an algorithm with stragglers)")

    def validate(self, n_workers: int) -> "DistOptions":
        check_not_null(self)
        for f in fields(self):
            check_finite(f.name, getattr(self, f.name))
        check(self.unit_ms > 0, f"unit_ms={self.unit_ms} must be > 0")
        check(self.timeout_s > 0, f"timeout_s={self.timeout_s} must be > 0")
        check(self.process_backend in DIST_BACKENDS,
              f"dist backend {self.process_backend!r} must be one of {', '.join(DIST_BACKENDS)}")
        check(self.threads >= 1, f"threads={self.threads} must be >= 1")
        check(-1 <= self.slow_worker < n_workers, f"slow_worker={self.slow_worker} must be -1 or in 0..{n_workers - 1}")
        check(self.slow_ms >= 0, f"slow_ms={self.slow_ms} must be >= 0")
        check(self.reduce in REDUCE_MODES, f"reduce={self.reduce!r} must be one of {', '.join(REDUCE_MODES)}")
        check(self.on_worker_death in ON_WORKER_DEATH,
              f"on_worker_death={self.on_worker_death!r} must be one of {', '.join(ON_WORKER_DEATH)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "DistOptions":
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        check(not unknown, f"{source}: unknown dist option {unknown[0]!r} (valid: see `lgc train --help`)" if unknown else "")
        return cls(**d)


def default_engine(dataset: str, norm: str) -> str:
    """engine=auto: the fused engine wherever it applies (models without BatchNorm, not the
    quadratic), else the two-pass engine. Both are exact (tests/test_fused.py); fused was faster on
    every model measured (`python -m lgc.bench`, 2-core CPU, 1 thread, 451 samples a round; docs/GPU.md):
    small CNN 1401 vs 2425 ms a round, MLP 168 vs 190 ms, ResNet-18-GN width 8 684 vs 879 ms."""
    return "fused" if dataset != "quadratic" and norm == "group" else "batched"


