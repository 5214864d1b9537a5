"""Bounds on (1/T) sum_{t<T} E||grad F(w_t)||^2 for full-sync, fastest-K, lgc and lgc-fresh.

Plain SGD, pi_i = 1/N, the assumptions A1-A5 of theory/DERIVATION.md section 4. Each bound is
a sum of named terms; one function per algorithm builds the terms from a parameter mapping and
works on sympy symbols (exact algebra, `symbolic`) and on numpy arrays (fast sweeps over K,
`evaluate`) alike, so the two cannot drift apart.

Parameters (the same names in `evaluate`):
  N, K        workers, straggler threshold (1 <= K <= N)
  B, M        mini-batch per worker, blocks per mini-batch (b = B/M samples per block)
  eta, T      step size, rounds
  L, sigma2, zeta2, Delta   the constants of SPEC section 1
  phi         fraction of rounds whose sets may differ from the previous round's, (eq. 4.20):
              phi = min(1, (1 + floor((T-1)/h)) / T) for straggling period h (h = inf: 1/T)
  m_inv       E[1{m_j >= 1} / m_j] over stragglers (<= 1; 1 is the worst case)
  zero_frac   E[fraction of stragglers with m_j = 0] (0 under boundary semantics with M >= 2)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.errors import require

BOUND_ALGORITHMS = ("full-sync", "fastest-k", "lgc", "lgc-fresh")
SET_MODELS = ("persistent", "uniform")
# lgc's bounds (each holds under its own step-size condition; `evaluate` takes the smallest):
# "virtual" eq. (4.31), any sets; persistent sets: "direct" eq. (4.29), "recursive" eq. (4.23);
# uniform random sets: "uniform" eq. (4.26)
LGC_FORMS = ("virtual", "direct", "recursive", "uniform")
_FORMS_FOR = {"persistent": ("virtual", "direct", "recursive"), "uniform": ("virtual", "uniform")}
LAMBDA = 1.0  # Young's parameter in ||P + S||^2 <= (1 + LAMBDA)||P||^2 + (1 + 1/LAMBDA)||S||^2, eq. (4.27)


# ----------------------------------------------------------------------------- the terms
def _full_sync(p, sqrt):
    """eq. (4.6): 2 Delta/(eta T) + L eta sigma^2/(N B), for eta L <= 1."""
    return {
        "optimization": 2 * p["Delta"] / (p["eta"] * p["T"]),
        "noise": p["L"] * p["eta"] * p["sigma2"] / (p["N"] * p["B"]),
    }


def _fastest_k(p, sqrt, set_model="persistent"):
    """eq. (4.10) persistent sets: + (N-K) zeta^2/K; eq. (4.11) uniform random sets:
    + L eta (N-K) zeta^2 / (K (N-1)) (no bias). eta L <= 1."""
    N, K = p["N"], p["K"]
    t = {
        "optimization": 2 * p["Delta"] / (p["eta"] * p["T"]),
        "noise": p["L"] * p["eta"] * p["sigma2"] / (K * p["B"]),
    }
    if set_model == "persistent":
        t["bias"] = (N - K) * p["zeta2"] / K
    else:
        t["sampling"] = p["L"] * p["eta"] * (N - K) * p["zeta2"] / (K * p.get("Nm1", N - 1))
    return t


def _lgc_fresh(p, sqrt):
    """eq. (4.14): zero-block bias f (N-K) zeta^2 / K and the mixed noise; eta L <= 1."""
    N, K, B, f = p["N"], p["K"], p["B"], p["zero_frac"]
    b = B / p["M"]
    v = p["sigma2"] * ((K**2 + f * (N - K) * (N + K)) / (N**2 * K * B) + (N - K) * p["m_inv"] / (N**2 * b))
    return {
        "optimization": 2 * p["Delta"] / (p["eta"] * p["T"]),
        "noise": p["L"] * p["eta"] * v,
        "zero_block": f * (N - K) * p["zeta2"] / K,
    }


def lgc_parts(p, sqrt):
    """The quantities of eqs. (4.15)-(4.22) and (4.27) that the lgc bounds are made of."""
    N, K, B, L, eta = p["N"], p["K"], p["B"], p["L"], p["eta"]
    b = B / p["M"]
    rho = (N - K) / N  # rho_bar, eq. (4.15)
    v_a = p["sigma2"] / (K * B)  # fast-set noise, eq. (4.16)
    e_eps = p["sigma2"] * ((N - K) * p["m_inv"] / (N**2 * b) + rho**2 / (K * B))  # eq. (4.17)
    e_eps_split = p["sigma2"] * sqrt(rho) * (p["m_inv"] / (N * b) + rho / (K * B))  # E_eps / sqrt(rho), eq. (4.18)
    q = 24 * rho**2 * L**2 * eta**2  # eq. (4.19)
    r2 = 4 * rho**2 * L**2 * eta**2  # ||S_t||^2 <= r2 ||d_{t-1}||^2, eq. (4.27)
    c = (N - K) * p["zeta2"] / K
    # eq. (4.20): ||P_t||^2 <= (2 (N-K) + 2 min(K, N-K)) zeta^2 / K; min(K, N-K) = (N - |N - 2K|)/2
    b_set = p["phi"] * (2 * (N - K) + N - sqrt((N - 2 * K) ** 2)) * p["zeta2"] / K
    b_zero = p["zero_frac"] * (1 - p["phi"]) * c  # eq. (4.21)
    return dict(rho=rho, v_a=v_a, e_eps=e_eps, e_eps_split=e_eps_split, q=q, r2=r2, b_set=b_set, b_zero=b_zero)


def _lgc_recursive(p, sqrt):
    """eq. (4.23): lgc = full-sync's terms + variance + set change + zero-block + staleness.

    total = [2 Delta/(eta T) + (2 + 2a) bbar + L eta V_A + L eta (1 + 1/sqrt(rho)) E_eps
             + 2 L eta sqrt(V_A E_eps) + (a/3)(3 E_eps + V_A)] / (1 - a),  a = q / (1 - q);
    valid for eta L (1 + sqrt(rho)) <= 1 and q < 1/2 (eq. 4.22).
    """
    x = lgc_parts(p, sqrt)
    L, eta = p["L"], p["eta"]
    base = {
        "optimization": 2 * p["Delta"] / (eta * p["T"]),
        "noise": L * eta * p["sigma2"] / (p["N"] * p["B"]),
        "variance": L * eta * p["sigma2"] * (1 / p["K"] - 1 / p["N"]) / p["B"]
        + L * eta * (x["e_eps"] + x["e_eps_split"]) + 2 * L * eta * sqrt(x["v_a"] * x["e_eps"]),
        "set_change": 2 * x["b_set"],
        "zero_block": 2 * x["b_zero"],
    }
    s0 = sum(base.values())
    q = x["q"]
    base["staleness"] = q / (1 - 2 * q) * (s0 + 2 * (x["b_set"] + x["b_zero"]) + x["e_eps"] + x["v_a"] / 3)
    return base


def _lgc_direct(p, sqrt):
    """eq. (4.29): lgc with the step length charged to the descent inequality's own -||E_t d_t||^2.

    total = 2 Delta/(eta T) + (1 + LAMBDA) bbar + L eta V_A + L eta (1 + 1/sqrt(rho)) E_eps
            + 2 L eta sqrt(V_A E_eps) + (1 + 1/LAMBDA) r2 [(1 + 1/sqrt(rho)) E_eps + V_A],
    r2 = 4 rho^2 L^2 eta^2; valid for eta L (1 + sqrt(rho)) + (1 + 1/LAMBDA)(1 + sqrt(rho)) r2 <= 1
    (eq. 4.28). No division by 1 - a: the staleness is an absolute O(eta^2) term.
    """
    x = lgc_parts(p, sqrt)
    L, eta = p["L"], p["eta"]
    return {
        "optimization": 2 * p["Delta"] / (eta * p["T"]),
        "noise": L * eta * p["sigma2"] / (p["N"] * p["B"]),
        "variance": L * eta * p["sigma2"] * (1 / p["K"] - 1 / p["N"]) / p["B"]
        + L * eta * (x["e_eps"] + x["e_eps_split"]) + 2 * L * eta * sqrt(x["v_a"] * x["e_eps"]),
        "set_change": (1 + LAMBDA) * x["b_set"],
        "zero_block": (1 + LAMBDA) * x["b_zero"],
        "staleness": (1 + 1 / LAMBDA) * x["r2"] * (x["e_eps"] + x["e_eps_split"] + x["v_a"]),
    }


def _lgc_virtual(p, sqrt):
    """eq. (4.31): lgc through the virtual sequence x_t = w_t - eta u_{t-1}, which takes lgc-fresh
    steps (eq. 4.30): lgc-fresh's bound (4.14) plus L^2 eta^2/(1 - eta L) E||u_{t-1}||^2, for any
    sets (persistent or uniform, no set-change term); valid for eta L < 1."""
    N, K, L, eta, f = p["N"], p["K"], p["L"], p["eta"], p["zero_frac"]
    fresh = _lgc_fresh(p, sqrt)
    full_noise = L * eta * p["sigma2"] / (N * p["B"])
    e_u = (1 - f) * (N - K) * p["zeta2"] / K + lgc_parts(p, sqrt)["e_eps"]  # E||u||^2, eq. (4.30)
    return {
        "optimization": fresh["optimization"],
        "noise": full_noise,
        "variance": fresh["noise"] - full_noise,
        "set_change": 0 * p["zeta2"],
        "zero_block": fresh["zero_block"],
        "staleness": L**2 * eta**2 / (1 - L * eta) * e_u,
    }


def _lgc_uniform(p, sqrt):
    """eq. (4.26): lgc when A_t is a uniformly random K-subset every round (h = 1, i.i.d. times).

    The previous round's compensation is zero-mean delayed noise, so there is no staleness
    and no bias term; valid for eta L (1 + sqrt(rho)) <= 1."""
    N, K, B, L, eta = p["N"], p["K"], p["B"], p["L"], p["eta"]
    x = lgc_parts(p, sqrt)
    rho = x["rho"]
    nm1 = p.get("Nm1", N - 1)
    v_set = (N - K) * p["zeta2"] / (K * nm1)  # eq. (4.24)
    v_set_split = sqrt(rho) * N * p["zeta2"] / (K * nm1)  # V_set / sqrt(rho)
    return {
        "optimization": 2 * p["Delta"] / (eta * p["T"]),
        "noise": L * eta * p["sigma2"] / (N * B),
        "variance": L * eta * p["sigma2"] * (1 / K - 1 / N) / B + L * eta * (x["e_eps"] + x["e_eps_split"])
        + 2 * L * eta * sqrt((x["v_a"] + v_set) * (x["e_eps"] + v_set)),
        "set_change": L * eta * (2 * v_set + v_set_split),
        "zero_block": 0 * p["zeta2"],
        "staleness": 0 * p["zeta2"],
    }


def terms(algorithm: str, p, sqrt=math.sqrt, *, set_model: str = "persistent", form: str | None = None) -> dict:
    """Named terms of `algorithm`'s bound; their sum is the bound. `p` maps parameter names
    (module docstring) to numbers, numpy arrays or sympy symbols; `sqrt` matches them.
    form (lgc only): one of LGC_FORMS; None: "direct" (persistent sets) or "uniform" (uniform
    sets). Every form holds under its own step-size condition; `evaluate` takes the smallest."""
    require(algorithm in BOUND_ALGORITHMS,
            f"no bound for algorithm={algorithm!r}; bounds exist for {', '.join(BOUND_ALGORITHMS)}")
    require(set_model in SET_MODELS, f"set_model={set_model!r} must be one of {', '.join(SET_MODELS)}")
    if algorithm == "full-sync":
        return _full_sync(p, sqrt)
    if algorithm == "fastest-k":
        return _fastest_k(p, sqrt, set_model)
    if algorithm == "lgc-fresh":
        return _lgc_fresh(p, sqrt)
    form = _FORMS_FOR[set_model][1] if form is None else form
    require(form in _FORMS_FOR[set_model], f"form={form!r} must be one of {', '.join(_FORMS_FOR[set_model])} "
                                           f"for set_model={set_model!r}")
    return {"virtual": _lgc_virtual, "direct": _lgc_direct, "recursive": _lgc_recursive,
            "uniform": _lgc_uniform}[form](p, sqrt)


def eta_max(algorithm: str, N, K, L, set_model: str = "persistent", form: str | None = None):
    """Largest step size for which the bound holds: 1/L (eqs. 4.6, 4.10, 4.14); lgc by form:
    "virtual" eta L < 1 (eq. 4.31); "uniform" eta L (1 + sqrt(rho)) <= 1 (eq. 4.26);
    "recursive" also q = 24 rho^2 eta^2 L^2 < 1/2 (eq. 4.22); "direct"
    eta L (1 + sqrt(rho)) (1 + (1 + 1/LAMBDA) 4 rho^2 eta L) <= 1 (eq. 4.28); form None: the
    largest over the forms of `set_model` (where `evaluate` has a finite bound)."""
    N = np.asarray(N, dtype=float)
    K = np.asarray(K, dtype=float)
    if algorithm != "lgc":
        return np.broadcast_to(1.0 / L, np.broadcast(N, K).shape).astype(float)
    if form is None:
        return np.maximum.reduce([eta_max(algorithm, N, K, L, set_model, f) for f in _FORMS_FOR[set_model]])
    require(form in LGC_FORMS, f"form={form!r} must be one of {', '.join(LGC_FORMS)}")
    rho = (N - K) / N
    if form == "virtual":  # eta L < 1 strictly where u can be nonzero: stay a hair inside
        return np.where(rho > 0, (1 - 1e-9) / L, 1.0 / L)
    cap = 1.0 / ((1.0 + np.sqrt(rho)) * L)
    if form == "uniform":
        return cap
    if form == "recursive":
        with np.errstate(divide="ignore"):
            stale = np.where(rho > 0, 1.0 / (np.sqrt(48.0) * np.maximum(rho, 1e-300) * L), np.inf)
        return np.minimum(cap, stale * (1 - 1e-9))  # q < 1/2 strictly: stay a hair inside
    # eq. (4.28) as a x^2 + b x <= 1 in x = eta L; root 2 / (b + sqrt(b^2 + 4a)) (also at a = 0)
    b = 1.0 + np.sqrt(rho)
    a = (1 + 1 / LAMBDA) * b * 4 * rho**2
    return 2.0 / ((b + np.sqrt(b * b + 4 * a)) * L)


def set_change_fraction(T, h) -> np.ndarray:
    """phi = (1 + floor((T-1)/h)) / T, capped at 1 (eq. 4.20); h = inf gives 1/T."""
    T = np.asarray(T, dtype=float)
    h = np.asarray(h, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        changes = 1 + np.where(np.isinf(h), 0.0, np.floor(np.maximum(T - 1, 0) / np.where(np.isinf(h), 1, h)))
        phi = np.where(T > 0, changes / np.maximum(T, 1), 1.0)
    return np.minimum(phi, 1.0)


# ----------------------------------------------------------------------------- numeric evaluation
@dataclass(frozen=True)
class BoundValue:
    total: np.ndarray
    terms: dict
    valid: np.ndarray
    eta_max: np.ndarray

    def as_dict(self) -> dict:
        return {"total": self.total, "terms": self.terms, "valid": self.valid, "eta_max": self.eta_max}


def evaluate(
    algorithm: str, *, N, K, B, M, eta, T, L, sigma2, zeta2, Delta, h=1, m_inv=1.0, zero_frac=0.0,
    set_model: str = "persistent",
) -> dict:
    """The bound of `algorithm` (eqs. 4.6, 4.10/4.11, 4.14; lgc: the smallest of 4.23, 4.26, 4.29,
    4.31 that hold), vectorized over any argument.

    Args (numbers or broadcastable numpy arrays, e.g. K = np.arange(1, N + 1)):
      N, K, B, M, eta, T: as in SPEC section 1 (B divisible by M); T rounds (T >= 1).
      L, sigma2, zeta2, Delta: the constants (pi_i = 1/N).
      h: rounds between changes of the fast set (the straggling period; np.inf: sets never change).
      m_inv: E[1{m_j >= 1}/m_j] over stragglers (default 1.0, the worst case m_j = 1);
        zero_frac: E[fraction of stragglers with m_j = 0]. theory.order_stats.round_stats or
        `straggler_statistics` give both from a timing model or a recorded schedule.
      set_model: "persistent" (default; any timing) or "uniform" (fastest-k and lgc only:
        A_t a uniformly random K-subset every round, i.e. h = 1 with i.i.d. times; no bias,
        no staleness term, eqs. 4.11 and 4.26).
    Returns:
      dict(total=..., terms={name: ...}, valid=..., eta_max=...): total is +inf where T < 1 or
      eta exceeds eta_max (the bound does not hold there).
    """
    require(algorithm in BOUND_ALGORITHMS,
            f"no bound for algorithm={algorithm!r}; bounds exist for {', '.join(BOUND_ALGORITHMS)}")
    N_, K_ = np.asarray(N, dtype=float), np.asarray(K, dtype=float)
    require(bool(np.all(N_ >= 1)), f"N={N} must be >= 1")
    require(bool(np.all((K_ >= 1) & (K_ <= N_))), f"K={K} must satisfy 1 <= K <= N={N}")
    require(bool(np.all(np.asarray(M) >= 1)), f"M={M} must be >= 1")
    require(bool(np.all(np.asarray(B) >= 1)) and bool(np.all(np.asarray(B) % np.asarray(M) == 0)),
            f"B={B} must be a positive multiple of M={M}")
    require(bool(np.all(np.asarray(eta) > 0)), f"eta={eta} must be > 0")
    require(float(L) > 0 if np.ndim(L) == 0 else bool(np.all(np.asarray(L) > 0)), f"L={L} must be > 0")
    for name, v in (("sigma2", sigma2), ("zeta2", zeta2), ("Delta", Delta)):
        require(bool(np.all(np.asarray(v) >= 0)), f"{name}={v} must be >= 0")
    require(bool(np.all(np.asarray(h) >= 1)), f"h={h} must be >= 1")
    require(bool(np.all((np.asarray(m_inv) >= 0) & (np.asarray(m_inv) <= 1))), f"m_inv={m_inv} must be in [0, 1]")
    require(bool(np.all((np.asarray(zero_frac) >= 0) & (np.asarray(zero_frac) <= 1))),
            f"zero_frac={zero_frac} must be in [0, 1]")
    if set_model == "uniform":
        require(algorithm in ("fastest-k", "lgc"), f"set_model='uniform' has a bound for fastest-k and lgc, not {algorithm}")
        require(bool(np.all(np.asarray(h) == 1)), "set_model='uniform' needs h=1 (fresh i.i.d. draws every round)")
    T_ = np.asarray(T, dtype=float)
    Ts = np.maximum(T_, 1.0)
    p = dict(N=N_, K=K_, B=np.asarray(B, float), M=np.asarray(M, float), eta=np.asarray(eta, float), T=Ts,
             L=np.asarray(L, float), sigma2=np.asarray(sigma2, float), zeta2=np.asarray(zeta2, float),
             Delta=np.asarray(Delta, float), phi=set_change_fraction(Ts, h),
             m_inv=np.asarray(m_inv, float), zero_frac=np.asarray(zero_frac, float))
    p["Nm1"] = np.maximum(N_ - 1, 1.0)  # N = 1 means K = N, where every (N-1) term is 0
    forms = _FORMS_FOR[set_model] if algorithm == "lgc" else (None,)
    best = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for form in forms:  # lgc: every proven bound, keep the smallest where each holds
            t = terms(algorithm, p, np.sqrt, set_model=set_model, form=form)
            emax = eta_max(algorithm, N_, K_, float(np.max(L)), set_model, form)
            valid = (np.asarray(eta) <= emax * (1 + 1e-12)) & (T_ >= 1)
            total = sum(t.values())
            shape = np.broadcast(total, valid).shape
            total = np.where(valid, np.broadcast_to(total, shape), np.inf)
            t = {k: np.broadcast_to(v, shape) for k, v in t.items()}
            if best is None:
                best = (total, t, np.broadcast_to(valid, shape), emax)
                continue
            use = total < best[0]
            best = (np.where(use, total, best[0]), {k: np.where(use, t[k], best[1][k]) for k in t},
                    best[2] | valid, np.maximum(emax, best[3]))
    total, t, valid, emax = best
    return BoundValue(total=total, terms=t, valid=valid, eta_max=emax).as_dict()


def straggler_statistics(fast, blocks) -> dict:
    """m_inv and zero_frac (the bound's inputs) from recorded schedules: boolean fast masks and
    block counts, arrays (..., N). Averaged over every straggler of every round."""
    fast = np.asarray(fast, dtype=bool)
    blocks = np.asarray(blocks)
    strag = ~fast
    n = max(int(strag.sum()), 1)
    m = blocks[strag]
    return {
        "m_inv": float(np.where(m >= 1, 1.0 / np.maximum(m, 1), 0.0).sum() / n),
        "zero_frac": float((m == 0).sum() / n),
        "m_mean": float(m.sum() / n),
    }


# ----------------------------------------------------------------------------- sympy
SYMBOL_NAMES = ("N", "K", "B", "M", "eta", "T", "L", "sigma2", "zeta2", "Delta", "phi", "m_inv", "zero_frac")


def symbols():
    """Positive sympy symbols for every parameter (phi, m_inv, zero_frac nonnegative)."""
    import sympy as sp

    s = {n: sp.Symbol(n, positive=True) for n in SYMBOL_NAMES}
    for n in ("phi", "m_inv", "zero_frac", "zeta2", "sigma2", "Delta"):
        s[n] = sp.Symbol(n, nonnegative=True)
    return s


def symbolic(algorithm: str, *, set_model: str = "persistent", form: str | None = None, syms=None) -> dict:
    """The bound's terms as sympy expressions (the same code as `evaluate`)."""
    import sympy as sp

    syms = symbols() if syms is None else syms
    return terms(algorithm, syms, sp.sqrt, set_model=set_model, form=form)
