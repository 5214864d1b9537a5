"""K chosen online (`--k auto`), the same in both backends: the controller of a run (theory.adaptive
fed by the run's problem), the K of each round, and what the run records of its refits
(refits.csv rows, final.json's summary)."""
from __future__ import annotations

from lgc.config import TrainConfig
from lgc.errors import UserError, check
from lgc.protocol.round_end import make_timing
from theory.algorithms import algorithm as algorithm_entry
from theory.errors import TheoryInputError

REFIT_FIELDS = ("round", "window_first", "window_last", "clock", "remaining", "pooled", "distinct", "k_before", "k",
                "expected_round_time", "shift", "rate", "criterion", "k_bound", "gap", "gap_fit", "f_star", "sigma2",
                "zeta2", "noise_fit")


def k_controller(cfg: TrainConfig, model_bytes: float):
    """The KController of a --k auto run (theory.adaptive; None otherwise), the same in both
    backends: the run's algorithm at its step size and momentum, with the exact constants and curvature bands of
    the quadratics or those of --k-constants (Problem.from_constants, as optimize-k reads them: delta, mu, the Gram
    matrices and the bands, DERIVATION.md 4.7-4.8, 8.3), for --budget on the run's clock (DERIVATION.md eq. 7.5),
    choosing with --k-criterion (the error model's K* by default)."""
    if not cfg.k_auto:
        return None
    from theory.adaptive import AutoK, KController
    from theory.order_stats import CommModel
    from theory.predict import Bands
    from theory.tradeoff import Problem

    try:
        settings = dict(N=cfg.n_workers, M=cfg.blocks, B=cfg.batch_size, timing=make_timing(cfg), h=cfg.straggling_period,
                        semantics=cfg.semantics, comm=CommModel(cfg.comm_alpha, cfg.comm_beta, model_bytes))
        if cfg.k_constants is not None:  # as optimize-k reads them (delta, mu, gram and bands included)
            from theory.constants import read_constants

            c = read_constants(cfg.k_constants)
            check(c.gram is None or len(c.gram[0]) == cfg.n_workers,
                  f"k_constants {cfg.k_constants}: its gram is for N={len(c.gram[0]) if c.gram else 0} workers, the run "
                  f"has N={cfg.n_workers}")
            prob = Problem.from_constants(c, **settings)
            bands = Bands.from_json(c.bands) if c.bands else None
        else:  # the quadratics' exact constants (lgc.task.QuadraticTask builds the same problem)
            from lgc.data.synthetic import make_quadratic

            t = cfg.task
            q = make_quadratic(cfg.n_workers, t.quad_dim, seed=t.data_seed, h_min=t.quad_h_min, h_max=t.quad_h_max,
                               spread=t.quad_spread, sigma2=t.quad_sigma2)
            prob = Problem.from_constants(q.constants(), **settings)
            bands = quadratic_bands(q)
        return KController(AutoK(budget=cfg.budget, every=cfg.k_refit, window=cfg.k_window, first=cfg.k_first_fit,
                                 seed=cfg.seed, criterion=cfg.k_criterion), prob, cfg.algorithm, eta=cfg.lr,
                           momentum=cfg.momentum, bands=bands)
    except TheoryInputError as e:
        raise UserError(str(e)) from None


def quadratic_bands(q):
    """The quadratics' exact bands for the error model (DERIVATION.md 8.1-8.4): one per coordinate k, curvature h_k,
    Delta's share h_k (w0_k - cbar_k)^2 / 2, the isotropic noise's 1/d, zeta2's (1/N) sum_i (h_k (c_ik - cbar_k))^2."""
    import numpy as np

    from theory.predict import Bands

    h = np.asarray(q.h, dtype=float)
    dev = h * (np.asarray(q.c, dtype=float) - q.cbar)
    return Bands(h=tuple(h), delta=tuple(h / 2 * (np.asarray(q.w0, dtype=float) - q.cbar) ** 2),
                 sigma2=(1.0,) * len(h), zeta2=tuple((dev**2).mean(0)))


def deviation_norm2(grads: dict) -> float:
    """||gS_t - gA_t||^2 of a round whose rule formed both means (lgc, lgc-fresh with a reporting straggler; eq.
    7.8), nan otherwise: one norm of gradients the round already computed, for --k auto's refit."""
    import torch

    g_a, g_s = grads.get("fast"), grads.get("strag")
    if g_a is None or g_s is None:
        return float("nan")
    return float(torch.linalg.vector_norm(g_s - g_a)) ** 2  # one kernel and one sync, no float64 copies


def round_k(cfg: TrainConfig, controller, warmup: bool) -> int:
    """K of a round: N in warm-up and for full-sync, the controller's choice under --k auto, else cfg's K."""
    if warmup or algorithm_entry(cfg.algorithm).round_end == "all":
        return cfg.n_workers
    return controller.k if controller is not None else cfg.threshold_k


def refit_rows(history) -> list[dict]:
    """refits.csv rows (REFIT_FIELDS; README "File formats"): one per refit of --k auto; shift and
    rate per worker, space-separated; distinct: the workers fitted on their own; the error model's
    coefficients (DERIVATION.md eqs. 7.7-7.9; records of checkpoints before them: empty)."""
    return [{"round": h["round"], "window_first": h["window"][0], "window_last": h["window"][1], "clock": h["clock"],
             "remaining": h["remaining"], "pooled": int(h["pooled"]), "distinct": " ".join(map(str, h["distinct"])),
             "k_before": h["k_before"], "k": h["k"], "expected_round_time": h["expected_round_time"],
             "shift": " ".join(f"{v:.6g}" for v in h["shift"]), "rate": " ".join(f"{v:.6g}" for v in h["rate"]),
             **{k: h.get(k) for k in REFIT_FIELDS[12:]}}
            for h in history]


def k_auto_summary(controller) -> dict:
    """final.json's record of --k auto: the refits, the K of each, the last K and the criterion that chose them."""
    return {"k_auto": {"refits": len(controller.history), "k_chosen": [h["k"] for h in controller.history],
                       "k_last": int(controller.k), "budget": controller.settings.budget,
                       "criterion": controller.settings.criterion}}
