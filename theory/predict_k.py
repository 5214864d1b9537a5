"""The recommended K*: the predictive error model (theory/predict.py, DERIVATION.md section 8) over the K of a
trade-off (theory/tradeoff.py), at its step sizes and rounds T(K) = floor(tau / E[R(K)]) (budget), or at the
model's own rounds to the target (target).

`lgc optimize-k` reports this K* as `k_star` and the bound's as `k_star_bound` (README "Choosing K"). With a
"heldout" record in the constants (theory/heldout.py), the budget's K* is the K of least predicted *held-out* loss
(eq. 8.14) instead of least predicted training gap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.algorithms import algorithm as algorithm_entry
from theory.errors import require
from theory.predict import MODELLED, ROUND_CAP, Bands, Prediction, least_k, predict_errors

MAX_KS = 64  # K values the model evaluates; above, a log-spaced subset of them (with the bound's K*, 1 and N)
MAX_N = 100_000  # workers above which the model is not run (its law costs O(N log N) a round): the bound chooses
CRITERIA = ("predict", "bound")


@dataclass(frozen=True)
class Recommendation:
    """k_star: the recommended K (the model's with criterion "predict", where it ran; else the bound's);
    k_star_bound: the bound's; prediction: the model's errors over `prediction.ks` (None where it did not run);
    note: why the model did not choose, or "" where it did."""

    k_star: int
    k_star_bound: int
    criterion: str
    prediction: Prediction | None
    note: str = ""
    time: np.ndarray | None = None  # per prediction.ks: T x E[R(K)], the predicted time (to the target)
    heldout: np.ndarray | None = None  # per prediction.ks: the predicted held-out loss (eq. 8.14), with a record
    heldout_excess: np.ndarray | None = None  # per prediction.ks: its excess g over the predicted F(w_T)
    objective: str = "gap"  # what the model's K* minimised: "gap" (training) or "heldout" (eq. 8.14)
    heldout_beyond: tuple = ()  # the K whose predicted progress lies beyond the pilot's (eq. 8.14 continued)
    k_star_gap: int | None = None  # budget, where the model ran: its K of least predicted training gap (eq. 8.7)

    def column(self, ks, name: str = "gap") -> np.ndarray:
        """The model's `name` ("gap", "gap_se", "grad2", "grad2_se", "rounds", "time", "heldout",
        "heldout_excess") over ks, nan where it was not evaluated."""
        out = np.full(len(ks), np.nan)
        own = {"time": self.time, "heldout": self.heldout, "heldout_excess": self.heldout_excess}
        if self.prediction is None or (name in own and own[name] is None):
            return out
        pos = {int(k): i for i, k in enumerate(self.prediction.ks)}
        vals = own[name] if name in own else getattr(self.prediction, name)
        for i, k in enumerate(np.asarray(ks, dtype=int)):
            if int(k) in pos:
                out[i] = vals[pos[int(k)]]
        return out


def model_ks(ks, k_bound: int, max_ks: int = MAX_KS) -> np.ndarray:
    """ks itself when short; else max_ks of them, log-spaced, with the bound's K*, the smallest and the largest."""
    ks = np.asarray(ks, dtype=int)
    if len(ks) <= max_ks:
        return ks
    idx = np.unique(np.round(np.geomspace(1, len(ks), max_ks - 1)).astype(int) - 1)
    return np.unique(np.concatenate([ks[idx], [k_bound, ks[0], ks[-1]]]))


def prior_floor(eta, rounds) -> float:
    """The run's curvature resolution (eq. 8.13): 1/(eta T) of the K whose run takes the most step (eta T, T capped
    at ROUND_CAP); a direction of lower curvature moves little within any K's run, so the prior spectrum lumps
    such directions into one band. eta, rounds: each K's step and T (inf or nan where unknown, as with a target:
    ROUND_CAP)."""
    T = np.asarray(rounds, float)
    steps = np.asarray(eta, float) * np.where(np.isfinite(T), np.minimum(T, ROUND_CAP), ROUND_CAP)
    return 1.0 / float(np.max(steps))


def recommend(res, prob, bands: Bands | None = None, *, criterion: str = "predict", momentum: float = 0.0,
              warmup: int = 0, seed: int = 0, gram=None, heldout: dict | None = None) -> Recommendation:
    """The model's predicted errors over res's K (a Tradeoff) and the recommended K*.

    bands: the constants' curvature bands (None: the scalar constants alone, spread by the prior spectrum
    Bands.prior(L, floor=prior_floor(eta, T), mu=mu), eqs. 8.12, 8.13). gram: the workers' Gram matrix the deviations
    take (eq. 8.2''; theory.predict_gram.model_gram), None: isotropic (8.2'). criterion "bound":
    the bound's K* is recommended, the model's errors still reported. Budget: the K of least predicted loss gap
    at T(K) = floor(tau / E[R(K)]) (eq. 8.7). Target: the K of least predicted time T_eps(K) E[R(K)], T_eps the
    fewest rounds whose predicted mean ||grad F||^2 (eq. 8.8, the bound's quantity) is at most the target.
    heldout: the constants' "heldout" record (theory/heldout.py): with a budget, the K of least predicted held-out
    loss (eq. 8.14) instead of least gap; unused with a target (whose quantity is mean ||grad F||^2)."""
    require(criterion in CRITERIA, f"criterion={criterion!r} must be one of {', '.join(CRITERIA)}")
    k_bound = int(res.k_star)
    if res.algorithm not in MODELLED:
        return Recommendation(k_bound, k_bound, "bound", None, f"no error model for {res.algorithm}")
    if prob.N > MAX_N:
        return Recommendation(k_bound, k_bound, "bound", None, f"the model runs for N <= {MAX_N} workers")
    ks = model_ks(res.ks, k_bound)
    pos = np.searchsorted(res.ks, ks)
    T, eta, rt = res.rounds[pos], res.eta[pos], res.round_time[pos]
    budget = res.criterion == "budget"
    ok = np.isfinite(eta) & (eta > 0) & np.isfinite(rt) & ((np.isfinite(T) & (T >= 1)) if budget else True)
    if not ok.any():
        return Recommendation(k_bound, k_bound, "bound", None, "no K has a finite number of rounds and step size")
    when = dict(rounds=T[ok]) if budget else dict(target=res.target)
    if bands is None:  # the scalar constants alone: the prior spectrum
        bands = Bands.prior(prob.L, floor=prior_floor(eta[ok], T[ok]), mu=prob.mu)
    common = dict(L=prob.L, sigma2=prob.sigma2, zeta2=prob.zeta2, Delta=prob.Delta, N=prob.N, M=prob.M,
                  timing=prob.timing, h=prob.h, semantics=prob.semantics, seed=seed, gram=gram)
    pred = predict_errors(res.algorithm, bands, B=prob.B, ks=ks[ok], eta=eta[ok], momentum=momentum, warmup=warmup,
                          **common, **when)
    with np.errstate(invalid="ignore"):
        time = pred.rounds * rt[ok]
    held = dict(heldout=None, heldout_excess=None, objective="gap")
    if heldout is not None and budget:  # eq. (8.14): the pilot's F and excess at the K's predicted progress
        from theory.heldout import beyond_pilot, predicted_heldout

        steps = np.asarray(heldout["steps"], dtype=int)  # the pilot itself, predicted: full-sync, plain SGD
        pilot = predict_errors("full-sync", bands, B=int(heldout["batch_per_worker"]), ks=np.full(len(steps), prob.N),
                               rounds=steps, eta=float(heldout["lr"]), **common)
        h, g, _ = predicted_heldout(heldout, pred.gap, pilot.gap, prob.Delta, pred.fit_shift)
        far = beyond_pilot(pred.gap, pilot.gap, pred.fit_shift)
        held = dict(heldout=h, heldout_excess=g, objective="heldout",
                    heldout_beyond=tuple(int(k) for k in pred.ks[far]))
    if algorithm_entry(res.algorithm).round_end == "all":  # full-sync: every worker, every round
        return Recommendation(k_bound, k_bound, criterion, pred, "full-sync waits for every worker", time, **held)
    if budget:
        held["k_star_gap"] = pred.k_star("gap")
        k_pred = held["k_star_gap"] if held["heldout"] is None else least_k(pred.ks, held["heldout"])
    elif np.isfinite(time).any():
        k_pred = least_k(pred.ks, time)
    else:
        return Recommendation(k_bound, k_bound, "bound", pred, "the model reaches the target with no K", time)
    return Recommendation(k_pred if criterion == "predict" else k_bound, k_bound, criterion, pred, "", time, **held)
