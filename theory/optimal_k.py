"""The optimal straggler threshold K* of a problem: the computation `lgc optimize-k` runs.

    from theory import optimize_k
    best = optimize_k("constants.json", workers=10, batch_size=50, blocks=5, budget=500.0)
    best.k_star, best.table, best.plot("tradeoff.pdf")

The keyword arguments are named as the command's flags (--workers, --batch-size, --blocks,
--budget, --timing, --timing-param, --straggling-period, ...), with its defaults; the command
parses its flags, calls `optimize_k` and prints the result. The trade-off itself is
theory.tradeoff.tradeoff (DERIVATION.md section 5); the Problem is Problem.from_constants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from theory.algorithms import BOUND_NAMES
from theory.algorithms import algorithm as algorithm_entry
from theory.errors import TheoryInputError, require
from theory.schedule import DEFAULT_SEMANTICS, SEMANTICS
from theory.tradeoff import Problem, Tradeoff, tradeoff

DEFAULT_BUDGET = 1000.0  # tau when neither a budget nor a target is given


@dataclass
class KStar:
    """What optimize_k found: the recommended K* (`k_star`: the error model's, DERIVATION.md section 8,
    unless criterion="bound"), the bound's K* (`k_star_bound`, sections 4-5), the trade-off over K
    (theory.tradeoff.Tradeoff), the error model's recommendation (theory.predict_k.Recommendation:
    its predicted curve, or why the bound chose), the Problem and the constants it was built from.
    `extras` holds further results by name."""

    k_star: int
    tradeoff: Tradeoff
    problem: Problem
    constants: dict
    k_star_bound: Optional[int] = None
    recommendation: Optional[object] = None
    extras: dict = field(default_factory=dict)

    @property
    def table(self) -> list[dict]:
        """One row per K: K, E[R] and its standard error, T, eta, the bound, its terms, the time, and
        the error model's predicted loss gap and mean ||grad F||^2 where it evaluated that K."""
        rows = self.tradeoff.rows()
        pred = getattr(self.recommendation, "prediction", None)
        if pred is not None:
            at = {int(k): i for i, k in enumerate(pred.ks)}
            for r in rows:
                i = at.get(int(r["K"]))
                r["pred_gap"] = None if i is None else float(pred.gap[i])
                r["pred_grad2"] = None if i is None else float(pred.grad2[i])
        return rows

    def plot(self, path: Optional[str] = None):
        """The trade-off curve (the bound and T against K, K* marked) as a matplotlib Figure,
        saved to `path` when given (TheoryInputError when it cannot be written)."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        res = self.tradeoff
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(res.ks, res.bound, marker="o" if len(res.ks) <= 50 else None, ms=3, label="bound")
        ax.axvline(res.k_star, color="0.4", ls="--", lw=1, label=f"bound's K* = {res.k_star}")
        pred = getattr(self.recommendation, "prediction", None)
        if pred is not None:
            ax.plot(pred.ks, pred.gap, marker="s" if len(pred.ks) <= 50 else None, ms=3, color="C1",
                    label="predicted F(w_T) - F*")
            ax.axvline(self.k_star, color="C1", ls=":", lw=1, label=f"recommended K* = {self.k_star}")
        ax.set_xlabel("straggler threshold K")
        ax.set_ylabel(("bound on mean ||grad F||^2" + ("; predicted error" if pred is not None else ""))
                      if res.criterion == "budget" else "bound (at the target)")
        finite = res.bound[np.isfinite(res.bound)]
        if finite.size and finite.max() / max(finite.min(), 1e-300) > 50:
            ax.set_yscale("log")
        ax2 = ax.twinx()
        ax2.plot(res.ks, res.time if res.criterion == "target" else res.rounds, color="C2", lw=1,
                 label="time to target [time units]" if res.criterion == "target" else "rounds T within budget")
        ax2.set_ylabel("time [time units]" if res.criterion == "target" else "rounds T")
        lines, lines2 = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="best")
        ax.set_title(f"{res.algorithm}: {res.criterion} criterion", fontsize=9)
        fig.tight_layout()
        if path is not None:
            try:
                fig.savefig(path, dpi=150)
            except (OSError, ValueError) as e:  # unwritable folder, unknown extension
                raise TheoryInputError(f"--plot {path}: cannot write it ({e})") from None
            finally:
                plt.close(fig)
        return fig


def optimize_k(
    constants, timing=None, *, workers: int = 10, batch_size: int = 50, blocks: int = 5, algorithm: str = "lgc",
    budget: Optional[float] = None, target: Optional[float] = None, ks=None, eta: Optional[float] = None,
    optimize_eta: bool = False, straggling_period: float = 1, semantics: str = DEFAULT_SEMANTICS,
    timing_params: Optional[dict] = None, comm_alpha: float = 0.0, comm_beta: float = 0.0, model_bytes: float = 0.0,
    report_latency: float = 0.0, mc_rounds: Optional[int] = None, seed: int = 0,
    progress: Optional[Callable[[int, int], None]] = None, criterion: str = "predict", momentum: float = 0.0,
    warmup_rounds: int = 0,
) -> KStar:
    """K* for `constants` under `timing`: the bound at the budget (default criterion, tau = 1000
    when neither is given) or the time to reach `target`, for every K (or `ks`).

    Args:
      constants: a theory.constants.Constants (lgc.estimate(task) gives one), a constants mapping
        or the path of a constants JSON (`lgc estimate`); delta, mu and gram are used when present.
      timing: a TimingModel, or a model name with `timing_params` (theory.timing_factory);
        default: the shifted exponential (shift 1, rate 1).
      workers, batch_size, blocks: N, B, M. algorithm: one with a bound (theory.algorithms).
      eta: one step size for every K (default 0.5 / L); optimize_eta: the best per K instead.
      straggling_period, semantics, comm_alpha, comm_beta, model_bytes, report_latency: as the flags.
      mc_rounds: Monte Carlo rounds for E[R] (default by N and M); seed: their seed.
      progress: progress(rounds_done, rounds_total) during the Monte Carlo of E[R].
      criterion: "predict" (default): K* is the error model's (theory/predict.py, DERIVATION.md section 8,
        fed the constants' curvature bands when they have them); "bound": the bound's K*.
      momentum, warmup_rounds: the run's, for the error model (the bounds assume neither).
    Raises TheoryInputError (one line) for a bad value or when no K qualifies.
    """
    from theory.order_stats import CommModel, expected_round_times, round_count
    from theory.timing_factory import make_timing_model

    require(algorithm in BOUND_NAMES, f"algorithm={algorithm!r} has no bound; must be one of {', '.join(BOUND_NAMES)}")
    require(mc_rounds is None or mc_rounds >= 2, f"mc_rounds={mc_rounds} must be >= 2")
    require(budget is None or target is None, "give a budget or a target, not both")
    require(semantics in SEMANTICS, f"semantics={semantics!r} must be one of {', '.join(SEMANTICS)}")
    if timing is None or isinstance(timing, str):
        timing = make_timing_model(timing or "shifted-exp", **(timing_params or {}))
    # asked of the object, not its class (tests/test_tradeoff_sets.py: no caller dispatches on a model's type)
    require(callable(getattr(timing, "expected_order_statistic", None)),
            f"timing={timing!r} must be a TimingModel or a model name")
    require(semantics == "abort" or np.isfinite(timing.mean()),
            f"timing model {timing.name!r} has an infinite mean (pareto needs alpha > 1): with boundary semantics "
            f"E[R] is infinite for every K; use --semantics abort or a finite-mean model")
    if not isinstance(constants, dict):  # a path: read (and validated, gram included) once, not per use below
        from theory.constants import Constants, read_constants

        constants = constants if isinstance(constants, Constants) else read_constants(constants)
    prob = Problem.from_constants(constants, N=workers, M=blocks, B=batch_size, timing=timing, h=straggling_period,
                                  semantics=semantics, comm=CommModel(comm_alpha, comm_beta, model_bytes),
                                  report_latency=report_latency)
    if ks is not None:
        ks = sorted({int(k) for k in ks})
        require(bool(ks), "ks names no K")
        for k in ks:
            require(1 <= k <= workers, f"K={k} must satisfy 1 <= K <= N={workers}")
    if target is None and budget is None:
        budget = DEFAULT_BUDGET
    kw = dict(semantics=prob.semantics, ks=ks, comm=prob.comm, report_latency=prob.report_latency, rounds=mc_rounds,
              seed=seed)
    if progress is not None:
        total = round_count(prob.timing, prob.N, prob.M, algorithm, semantics=prob.semantics,
                            n_ks=prob.N if ks is None else len(ks), rounds=mc_rounds)  # as expected_round_times draws them
        kw["progress"] = lambda r: progress(r, total)
    rt = expected_round_times(prob.timing, prob.N, prob.M, algorithm, **kw)
    res = tradeoff(algorithm, prob, budget=budget, target=target, eta=eta, optimize_eta=optimize_eta, ks=ks, seed=seed,
                   round_times=rt)
    crit = res.bound if res.criterion == "budget" else res.time
    require(bool(np.any(np.isfinite(crit))), f"no K qualifies: {why_no_k(res, prob)}")
    const = _constants_dict(constants)
    rec = recommendation(res, prob, const, criterion=criterion, momentum=momentum, warmup_rounds=warmup_rounds,
                         seed=seed)
    return KStar(k_star=rec.k_star, tradeoff=res, problem=prob, constants=const, k_star_bound=res.k_star,
                 recommendation=rec)


def recommendation(res: Tradeoff, prob: Problem, const: dict, *, criterion: str = "predict", momentum: float = 0.0,
                   warmup_rounds: int = 0, seed: int = 0):
    """The error model's predictions over res's K and the recommended K* (theory.predict_k.recommend),
    with the constants' curvature bands when they have them (else the scalar constants' prior spectrum, DERIVATION.md
    eq. 8.12), and their workers' Gram matrices when they have them (the mean over the points, eq. 8.2''; else
    isotropic deviations, 8.2'), and their "heldout" record when they have one (the budget's K* then minimises the
    predicted held-out loss, eq. 8.14)."""
    from theory.gram import GramPoints
    from theory.predict import Bands
    from theory.predict_gram import model_gram
    from theory.predict_k import recommend

    require(0 <= momentum < 1, f"momentum={momentum} must be in [0, 1)")
    require(warmup_rounds >= 0, f"warmup_rounds={warmup_rounds} must be >= 0")
    bands = Bands.from_json(const["bands"]) if const.get("bands") else None
    gram = model_gram(prob.dissimilarity.gram) if isinstance(prob.dissimilarity, GramPoints) else None
    return recommend(res, prob, bands, criterion=criterion, momentum=momentum, warmup=warmup_rounds, seed=seed,
                     gram=gram, heldout=const.get("heldout"))


def _constants_dict(constants) -> dict:
    """The constants as a mapping (the path's file read), as the result and optimize-k's JSON record them."""
    from theory.constants import BANDS_KEY, GRAM_KEY, HELDOUT_KEY, KEYS, OPTIONAL_KEYS, Constants, read_constants

    if isinstance(constants, dict):
        return dict(constants)
    c = constants if isinstance(constants, Constants) else read_constants(constants)
    d = {k: getattr(c, k) for k in KEYS + OPTIONAL_KEYS if getattr(c, k) is not None}
    if c.gram is not None:
        d[GRAM_KEY] = c.gram
    if c.bands is not None:
        d[BANDS_KEY] = c.bands
    if c.heldout is not None:
        d[HELDOUT_KEY] = c.heldout
    return d


def why_no_k(res: Tradeoff, prob: Problem) -> str:
    """Why every K's bound (budget) or time to the target is infinite or undefined, in one line."""
    from theory import bounds
    from theory.set_models import fastest_k_set_model

    set_model = fastest_k_set_model(prob.timing, prob.h) if algorithm_entry(res.algorithm).waits_for_k else "persistent"
    emax = bounds.eta_max(res.algorithm, prob.N, res.ks, prob.L, set_model, delta=prob.delta)
    if np.all(res.eta > emax * (1 + 1e-12)):
        return (f"eta={res.eta.min():.4g} exceeds the largest step size the bounds allow for every K "
                f"(eta_max <= {emax.max():.4g} = 1/L with L={prob.L:g}); give a smaller --eta or --optimize-eta")
    if res.criterion == "budget" and np.all(res.rounds < 1):
        return (f"budget tau={res.budget:g} is shorter than one round for every K (E[R] >= "
                f"{np.nanmin(res.round_time):.4g}); give a larger --budget")
    if res.criterion == "target":
        return (f"no K reaches the target bound {res.target:g} within 1e15 rounds (the bound's floor, reached as "
                f"T grows, lies above it); give a larger --target")
    return (f"the bound is infinite or undefined for every K (constants L={prob.L:g}, sigma2={prob.sigma2:g}, "
            f"zeta2={prob.zeta2:g}, Delta={prob.Delta:g} overflow it); check the constants")
