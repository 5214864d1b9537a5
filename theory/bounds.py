"""Bounds on (1/T) sum_{t<T} E||grad F(w_t)||^2 for full-sync, fastest-K, lgc and lgc-fresh.

Plain SGD, pi_i = 1/N, the assumptions A1-A5 of theory/DERIVATION.md section 4. Each bound is
a sum of named terms; one function per algorithm builds the terms from a parameter mapping and
works on sympy symbols (exact algebra, `symbolic`) and on numpy arrays (fast sweeps over K,
`evaluate`) alike, so the two cannot drift apart.

Parameters (the same names in `evaluate`):
  N, K        workers, straggler threshold (1 <= K <= N)
  B, M        mini-batch per worker, blocks per mini-batch (b = B/M samples per block)
  eta, T      step size, rounds
  L, sigma2, zeta2, Delta   the constants of docs and DERIVATION.md section 4.1
  delta       Lipschitz constant of the dissimilarity a_i = grad f_i - grad F (A6, optional;
              `evaluate` uses min(delta, L), and L when it is not given)
  phi         fraction of rounds, after the first, that start a straggling period (eq. 4.20):
              floor((T-1)/h) / T (h = inf: 0)
  m_inv       E[1{m_j >= 1} / m_j] over stragglers (<= 1 - zero_frac)
  zero_frac   E[z] / (N - K), z the number of stragglers with m_j = 0
  zero_sq     E[z^2] / (N - K)^2, in [zero_frac^2, zero_frac] (zero_frac: the linearised bound)
  set_bias, set_var   fastest-K with independent sets (eq. 4.11'): N ||pi/K - 1/N||^2 and
              N lambda_max(Cov 1_A) / K^2 from the inclusion law of A_t
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.algorithms import BOUND_NAMES
from theory.algorithms import algorithm as algorithm_entry
from theory.errors import require
from theory import lgc_bounds
from theory.gram import FORM_KEYS
from theory.lgc_bounds import LAMBDA, THETA, tight

BOUND_ALGORITHMS = BOUND_NAMES  # the table (theory/algorithms.py): entries with has_bound
# persistent: any timing; uniform: exchangeable sets (i.i.d. times, h = 1); independent (fastest-k):
# A_t redrawn every round from a fixed inclusion law (e.g. held heterogeneous speeds)
SET_MODELS = ("persistent", "uniform", "independent")
# lgc's bounds (each holds under its own step-size condition; `evaluate` takes the smallest):
# any sets: "virtual" eq. (4.31); persistent sets: "noise-virtual" eq. (4.33), "direct" eq. (4.29),
# "recursive" eq. (4.23); exchangeable sets: "exchangeable" eq. (4.32), "uniform" eq. (4.26)
LGC_FORMS = ("virtual", "noise-virtual", "direct", "recursive", "exchangeable", "uniform")
_FORMS_FOR = {"persistent": ("virtual", "noise-virtual", "direct", "recursive"),
              "uniform": ("virtual", "exchangeable", "uniform")}
_DEFAULT_FORM = {"persistent": "noise-virtual", "uniform": "exchangeable"}
# eq. (4.33) holds for every lambda > 0; `evaluate` takes the best of these (2^-20: S = 0 when delta = 0)
LAMBDAS = (2.0**-20, 0.125, 0.5, 1.0, 2.0, 8.0)


# ----------------------------------------------------------------------------- the terms
def _full_sync(p, sqrt):
    """eq. (4.6): 2 Delta/(eta T) + L eta sigma^2/(N B), for eta L <= 1."""
    return {
        "optimization": 2 * p["Delta"] / (p["eta"] * p["T"]),
        "noise": p["L"] * p["eta"] * p["sigma2"] / (p["N"] * p["B"]),
    }


def _fastest_k(p, sqrt, set_model="persistent"):
    """eq. (4.10) persistent sets: + (N-K) zeta^2/K; eq. (4.11) uniform random sets:
    + L eta (N-K) zeta^2 / (K (N-1)) (no bias); eq. (4.11') independent sets with inclusion
    law pi: + set_bias zeta^2 + L eta set_var zeta^2. eta L <= 1."""
    N, K = p["N"], p["K"]
    t = {
        "optimization": 2 * p["Delta"] / (p["eta"] * p["T"]),
        "noise": p["L"] * p["eta"] * p["sigma2"] / (K * p["B"]),
    }
    if set_model == "persistent":
        t["bias"] = tight(p, "g_bias", (N - K) * p["zeta2"] / K)  # eq. (4.10) or (4.36)
    elif set_model == "uniform":
        t["sampling"] = p["L"] * p["eta"] * tight(p, "g_ivar", (N - K) * p["zeta2"] / (K * p.get("Nm1", N - 1)))
    else:  # eq. (4.11') or (4.40)
        t["bias"] = tight(p, "g_ibias", p["set_bias"] * p["zeta2"])
        t["sampling"] = p["L"] * p["eta"] * tight(p, "g_ivar", p["set_var"] * p["zeta2"])
    return t


def _lgc_fresh(p, sqrt, set_model="persistent"):
    """eq. (4.14): zero-block bias E z (z + K) zeta^2/(N K) and the mixed noise; eq. (4.14'), exchangeable
    sets: the zero-block set is noise, L eta E z (z + K) zeta^2/(N K (N-1)). eta L <= 1."""
    v, bias, mo = lgc_bounds.fresh_parts(p)
    if set_model == "uniform":
        bias = p["L"] * p["eta"] * (mo["ez2"] + p["K"] * mo["ez"]) * p["zeta2"] / (p["N"] * p["K"] * p.get("Nm1", p["N"] - 1))
    return {
        "optimization": 2 * p["Delta"] / (p["eta"] * p["T"]),
        "noise": p["L"] * p["eta"] * v,
        "zero_block": bias,
    }


def terms(algorithm: str, p, sqrt=math.sqrt, *, set_model: str = "persistent", form: str | None = None,
          lam: float = LAMBDA) -> dict:
    """Named terms of `algorithm`'s bound; their sum is the bound. `p` maps parameter names
    (module docstring) to numbers, numpy arrays or sympy symbols; `sqrt` matches them.
    form (lgc only): one of LGC_FORMS for `set_model`; None: "noise-virtual" (persistent sets) or
    "exchangeable" (uniform sets). lam: Young's parameter of "noise-virtual" (eq. 4.33).
    Every form holds under its own step-size condition; `evaluate` takes the smallest."""
    require(algorithm in BOUND_ALGORITHMS,
            f"no bound for algorithm={algorithm!r}; bounds exist for {', '.join(BOUND_ALGORITHMS)}")
    require(set_model in SET_MODELS, f"set_model={set_model!r} must be one of {', '.join(SET_MODELS)}")
    if algorithm == "full-sync":
        return _full_sync(p, sqrt)
    if algorithm == "fastest-k":
        return _fastest_k(p, sqrt, set_model)
    if algorithm == "lgc-fresh":
        require(set_model in _FORMS_FOR, f"set_model={set_model!r} has no lgc-fresh bound (use persistent or uniform)")
        return _lgc_fresh(p, sqrt, set_model)
    require(set_model in _FORMS_FOR, f"set_model={set_model!r} has no lgc bound (use persistent or uniform)")
    form = _DEFAULT_FORM[set_model] if form is None else form
    require(form in _FORMS_FOR[set_model], f"form={form!r} must be one of {', '.join(_FORMS_FOR[set_model])} "
                                           f"for set_model={set_model!r}")
    if form == "noise-virtual":
        return lgc_bounds.noise_virtual(p, sqrt, lam=lam)
    return lgc_bounds.FORMS[form](p, sqrt)


def eta_max(algorithm: str, N, K, L, set_model: str = "persistent", form: str | None = None, *,
            delta=None, lam: float | None = None):
    """Largest step size for which the bound holds: 1/L (eqs. 4.6, 4.10, 4.14); lgc by form:
    "virtual", "exchangeable" eta L < 1 (eqs. 4.31, 4.32); "uniform" eta L (1 + sqrt(rho)) <= 1
    (eq. 4.26); "recursive" also q = 24 rho^2 eta^2 delta^2 < 1/2 (eq. 4.22); "direct"
    eta L (1 + sqrt(rho)) (1 + (1 + 1/LAMBDA) 4 rho^2 r^2 eta L) <= 1 (eq. 4.28); "noise-virtual"
    eta L + (1 + 1/lam)(1 + THETA) 4 rho^2 r^2 (eta L)^2 < 1 (eq. 4.34), r = min(delta, L)/L
    (lam None: the largest over LAMBDAS); form None: the largest over the forms of `set_model`."""
    N = np.asarray(N, dtype=float)
    K = np.asarray(K, dtype=float)
    if algorithm != "lgc":
        return np.broadcast_to(1.0 / L, np.broadcast(N, K).shape).astype(float)
    if form is None:
        return np.maximum.reduce([eta_max(algorithm, N, K, L, set_model, f, delta=delta) for f in _FORMS_FOR[set_model]])
    require(form in LGC_FORMS, f"form={form!r} must be one of {', '.join(LGC_FORMS)}")
    rho = (N - K) / N
    r = 1.0 if delta is None else np.minimum(np.asarray(delta, float), L) / L  # eq. (4.15')
    hair = np.where(rho > 0, 1 - 1e-9, 1.0)  # strict conditions: stay a hair inside where u can be nonzero
    if form in ("virtual", "exchangeable"):
        return hair / L
    cap = 1.0 / ((1.0 + np.sqrt(rho)) * L)
    if form == "uniform":
        return cap
    if form == "recursive":
        with np.errstate(divide="ignore"):
            stale = np.where(rho * r > 0, 1.0 / (np.sqrt(48.0) * np.maximum(rho * r, 1e-300) * L), np.inf)
        return np.minimum(cap, stale * (1 - 1e-9))  # q < 1/2 strictly: stay a hair inside
    if form == "noise-virtual":
        if lam is None:
            return np.maximum.reduce([eta_max(algorithm, N, K, L, set_model, form, delta=delta, lam=x) for x in LAMBDAS])
        a = (1 + 1 / lam) * (1 + THETA) * 4 * (rho * r) ** 2  # eq. (4.34) as a x^2 + x < 1 in x = eta L
        return hair * 2.0 / ((1.0 + np.sqrt(1.0 + 4 * a)) * L)
    # eq. (4.28) as a x^2 + b x <= 1 in x = eta L; root 2 / (b + sqrt(b^2 + 4a)) (also at a = 0)
    b = 1.0 + np.sqrt(rho)
    a = (1 + 1 / LAMBDA) * b * 4 * (rho * r) ** 2
    return 2.0 / ((b + np.sqrt(b * b + 4 * a)) * L)


def set_change_fraction(T, h) -> np.ndarray:
    """phi = floor((T-1)/h) / T (eq. 4.20): the rounds after the first that start a straggling
    period; h = inf gives 0. The first round is charged separately (eq. 4.9)."""
    T = np.asarray(T, dtype=float)
    h = np.asarray(h, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        changes = np.where(np.isinf(h), 0.0, np.floor(np.maximum(T - 1, 0) / np.where(np.isinf(h), 1, h)))
        phi = np.where(T > 0, changes / np.maximum(T, 1), 0.0)
    return phi


# ----------------------------------------------------------------------------- numeric evaluation
@dataclass(frozen=True)
class BoundValue:
    total: np.ndarray
    terms: dict
    valid: np.ndarray
    eta_max: np.ndarray

    def as_dict(self) -> dict:
        return {"total": self.total, "terms": self.terms, "valid": self.valid, "eta_max": self.eta_max}


def _straggler_cases(M, semantics, m_inv, zero_frac):
    """(m_inv, zero_frac) to bound with. Given: themselves. Otherwise from M and the semantics:
    M = 1 means m_j = 0 for every straggler (0, 1); else both vertices of {m_inv <= 1 - zero_frac},
    since every form is linear and increasing in m_inv at fixed zero_frac (DERIVATION.md section 4.5,
    "statistics"). Boundary semantics gives no m_j >= 1 either: a straggler still busy with the
    previous round's overrun at t_cut reports no block (eq. 2.3')."""
    if m_inv is not None and zero_frac is not None:
        return [(np.asarray(m_inv, float), np.asarray(zero_frac, float))]
    require(m_inv is None and zero_frac is None, "give both m_inv and zero_frac, or neither")
    one = np.asarray(M) == 1
    return [(np.where(one, 0.0, 1.0), np.where(one, 1.0, 0.0)), (np.zeros(np.shape(M)), np.ones(np.shape(M)))]


def _need(condition, message) -> None:
    """require() with the message built only on failure: _check's messages format arrays of up to
    a chunk of K values (theory/tradeoff.py), 2 ms each, and they almost never fail."""
    if not condition:
        require(False, message())


def _check(N_, K_, M, B, eta, L, sigma2, zeta2, Delta, h, m_inv, zero_frac, zero_sq, delta, semantics):
    _need(bool(np.all(N_ >= 1)), lambda: f"N={N_} must be >= 1")
    _need(bool(np.all((K_ >= 1) & (K_ <= N_))), lambda: f"K={K_} must satisfy 1 <= K <= N={N_}")
    _need(bool(np.all(np.asarray(M) >= 1)), lambda: f"M={M} must be >= 1")
    _need(bool(np.all(np.asarray(B) >= 1)) and bool(np.all(np.asarray(B) % np.asarray(M) == 0)),
          lambda: f"B={B} must be a positive multiple of M={M}")
    _need(bool(np.all(np.asarray(eta) > 0)), lambda: f"eta={eta} must be > 0")
    _need(bool(np.all(np.asarray(L) > 0)), lambda: f"L={L} must be > 0")
    for name, v in (("sigma2", sigma2), ("zeta2", zeta2), ("Delta", Delta)) + ((("delta", delta),) if delta is not None else ()):
        _need(bool(np.all(np.asarray(v) >= 0)), lambda: f"{name}={v} must be >= 0")
    _need(bool(np.all(np.asarray(h) >= 1)), lambda: f"h={h} must be >= 1")
    require(semantics in (None, "boundary", "abort"), f"semantics={semantics!r} must be 'boundary', 'abort' or None")
    require((m_inv is None) == (zero_frac is None), "give both m_inv and zero_frac, or neither")
    if m_inv is None:
        return
    mi, zf = np.asarray(m_inv, float), np.asarray(zero_frac, float)
    _need(bool(np.all((zf >= 0) & (zf <= 1))), lambda: f"zero_frac={zero_frac} must be in [0, 1]")
    _need(bool(np.all((mi >= 0) & (mi <= 1 - zf + 1e-9))),
          lambda: f"m_inv={m_inv} must be in [0, 1 - zero_frac] (1{{m_j >= 1}}/m_j is 0 where m_j = 0)")
    _need(bool(np.all((np.asarray(M) > 1) | (K_ == N_) | (zf >= 1 - 1e-9))),
          lambda: f"zero_frac={zero_frac} must be 1 where M=1 (a straggler reports at most M - 1 = 0 blocks)")
    if zero_sq is not None:
        zs = np.asarray(zero_sq, float)
        _need(bool(np.all((zs >= zf**2 - 1e-9) & (zs <= zf + 1e-9))),
              lambda: f"zero_sq={zero_sq} must be in [zero_frac^2, zero_frac] (a second moment of a fraction)")


def evaluate(
    algorithm: str, *, N, K, B, M, eta, T, L, sigma2, zeta2, Delta, h=1, m_inv=None, zero_frac=None, zero_sq=None,
    delta=None, semantics: str | None = None, set_model: str = "persistent", set_bias=None, set_var=None,
    g_bias=None, g_fresh=None, g_delta=None, g_change=None, g_ibias=None, g_ivar=None,
) -> dict:
    """The bound of `algorithm` (eqs. 4.6, 4.10/4.11/4.11', 4.14; lgc: the smallest of 4.23, 4.26,
    4.29, 4.31, 4.32, 4.33 that hold for the set model), vectorized over any argument.

    Args (numbers or broadcastable numpy arrays, e.g. K = np.arange(1, N + 1)):
      N, K, B, M, eta, T: workers, threshold, batch, blocks (B divisible by M), step, rounds (T >= 1).
      L, sigma2, zeta2, Delta: the constants (pi_i = 1/N). delta: Lipschitz constant of the
        dissimilarity (A6; optional, min(delta, L) is used).
      h: rounds between changes of the fast set (the straggling period; np.inf: sets never change).
      m_inv, zero_frac: E[1{m_j >= 1}/m_j] and E[fraction of stragglers with m_j = 0]
        (theory.round_stats: round_stats or straggler_statistics); zero_sq: E[fraction^2]
        (default zero_frac, the linearised bound). Without m_inv and zero_frac, they follow from
        M and `semantics` (M = 1: every straggler reports nothing; "boundary", M >= 2: every one
        reports >= 1 block, worst case m_inv = 1; None or "abort": the worst of both).
      set_model: "persistent" (default; any timing), "uniform" (fastest-k, lgc, lgc-fresh: exchangeable
        sets, i.i.d. times with h = 1, eqs. 4.11, 4.14', 4.26, 4.32) or "independent" (fastest-k: sets
        redrawn each round from a fixed law, with set_bias and set_var from
        theory.set_models.inclusion_coefficients, eq. 4.11').
      g_bias, g_fresh, g_delta, g_change, g_ibias, g_ivar: the set terms as Gram forms (A4G,
        theory/gram.py set_forms, eqs. 4.36-4.40), each used where it is below its zeta^2 form (4.41);
        absent: the zeta^2 forms.
    Returns:
      dict(total=..., terms={name: ...}, valid=..., eta_max=...): total is +inf where T < 1,
      eta exceeds eta_max or a term is not finite (the bound does not hold there).
    """
    require(algorithm in BOUND_ALGORITHMS,
            f"no bound for algorithm={algorithm!r}; bounds exist for {', '.join(BOUND_ALGORITHMS)}")
    N_, K_ = np.asarray(N, dtype=float), np.asarray(K, dtype=float)
    _check(N_, K_, M, B, eta, L, sigma2, zeta2, Delta, h, m_inv, zero_frac, zero_sq, delta, semantics)
    _check_set_model(algorithm, set_model, h, set_bias, set_var)
    T_ = np.asarray(T, dtype=float)
    p = _parameters(N_, K_, B, M, eta, T_, L, sigma2, zeta2, Delta, h, delta, set_model, set_bias, set_var,
                    dict(g_bias=g_bias, g_fresh=g_fresh, g_delta=g_delta, g_change=g_change, g_ibias=g_ibias,
                         g_ivar=g_ivar))
    cases = _straggler_cases(M, semantics, m_inv, zero_frac)
    if algorithm == "lgc":
        forms = [(f, lam) for f in _FORMS_FOR[set_model] for lam in (LAMBDAS if f == "noise-virtual" else (LAMBDA,))]
    else:
        forms = [(None, LAMBDA)]
    l_max = float(np.max(L))
    best = None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for form, lam in forms:  # lgc: every proven bound, keep the smallest where each holds
            emax = eta_max(algorithm, N_, K_, l_max, set_model, form, delta=delta,
                           lam=lam if form == "noise-virtual" else None)
            valid = (np.asarray(eta) <= emax * (1 + 1e-12)) & (T_ >= 1)
            total, t = _worst_case(algorithm, p, cases, zero_sq, valid, set_model=set_model, form=form, lam=lam)
            ok = np.broadcast_to(valid, total.shape) & np.isfinite(total) & (total >= 0)
            total = np.where(ok, total, np.inf)
            if best is None:
                best = (total, t, ok, np.broadcast_to(emax, total.shape))
                continue
            use = total < best[0]
            best = (np.where(use, total, best[0]), {k: np.where(use, t[k], best[1][k]) for k in t},
                    best[2] | ok, np.maximum(emax, best[3]))
    total, t, valid, emax = best
    return BoundValue(total=total, terms=t, valid=valid, eta_max=emax).as_dict()


def _check_set_model(algorithm, set_model, h, set_bias, set_var) -> None:
    """What each set model needs: uniform, a K-worker fast set redrawn every round (h = 1);
    independent, fastest-k's bound and its inclusion coefficients (eq. 4.11')."""
    require(set_model in SET_MODELS, f"set_model={set_model!r} must be one of {', '.join(SET_MODELS)}")
    if set_model == "uniform":
        require(algorithm_entry(algorithm).waits_for_k,  # a K-worker fast set A_t (theory/algorithms.py)
                f"set_model='uniform' is about the fast set A_t; {algorithm} has none")
        require(bool(np.all(np.asarray(h) == 1)), "set_model='uniform' needs h=1 (fresh i.i.d. draws every round)")
    if set_model == "independent":
        require(algorithm == "fastest-k", f"set_model='independent' has a bound for fastest-k, not {algorithm}")
        require(set_bias is not None and set_var is not None,
                "set_model='independent' needs set_bias and set_var (theory.set_models.inclusion_coefficients)")


def _parameters(N_, K_, B, M, eta, T_, L, sigma2, zeta2, Delta, h, delta, set_model, set_bias, set_var,
                given: dict) -> dict:
    """The terms' parameters as float arrays (`terms`' p): T at least 1, the fraction phi of
    rounds that start a straggling period (DERIVATION.md section 4.5), N - 1 floored at 1,
    min(delta, L), the independent set model's coefficients, and the Gram forms `given` (A4G)."""
    Ts = np.maximum(T_, 1.0)
    p = dict(N=N_, K=K_, B=np.asarray(B, float), M=np.asarray(M, float), eta=np.asarray(eta, float), T=Ts,
             L=np.asarray(L, float), sigma2=np.asarray(sigma2, float), zeta2=np.asarray(zeta2, float),
             Delta=np.asarray(Delta, float), phi=set_change_fraction(Ts, h))
    p["Nm1"] = np.maximum(N_ - 1, 1.0)  # N = 1 means K = N, where every (N-1) term is 0
    p["delta_eff"] = p["L"] if delta is None else np.minimum(np.asarray(delta, float), p["L"])
    if set_model == "independent":
        p["set_bias"], p["set_var"] = np.asarray(set_bias, float), np.asarray(set_var, float)
    for name in FORM_KEYS:
        v = given[name]
        if v is not None:
            _need(bool(np.all(np.asarray(v) >= 0)), lambda: f"{name}={v} must be >= 0 (a squared norm)")
            p[name] = np.asarray(v, float)
    return p


def _worst_case(algorithm, p, cases, zero_sq, valid, *, set_model, form, lam) -> tuple:
    """(total, terms) of one bound form, the worse over the straggler statistics `cases`
    (_straggler_cases: a single case when m_inv and zero_frac are given), broadcast to valid's
    shape; a NaN total (0 * inf) is no bound: +inf."""
    worst = None
    for mi, zf in cases:
        q = dict(p, m_inv=mi, zero_frac=zf)
        if zero_sq is not None:
            q["zero_sq"] = np.asarray(zero_sq, float)
        t = terms(algorithm, q, np.sqrt, set_model=set_model, form=form, lam=lam)
        total = sum(t.values())
        shape = np.broadcast(total, valid).shape
        total = np.broadcast_to(total, shape)
        total = np.where(np.isnan(total), np.inf, total)  # 0 * inf is no bound
        t = {k: np.broadcast_to(v, shape) for k, v in t.items()}
        if worst is None:
            worst = (total, t)
        else:
            use = total > worst[0]
            worst = (np.where(use, total, worst[0]), {k: np.where(use, t[k], worst[1][k]) for k in t})
    return worst


# ----------------------------------------------------------------------------- sympy
SYMBOL_NAMES = ("N", "K", "B", "M", "eta", "T", "L", "sigma2", "zeta2", "Delta", "phi", "m_inv", "zero_frac",
                "zero_sq", "delta_eff")
GRAM_SYMBOLS = FORM_KEYS  # the Gram forms of section 4.7 (theory/gram.py)


def symbols():
    """Positive sympy symbols for every parameter (phi, m_inv, zero_frac, zero_sq nonnegative)."""
    import sympy as sp

    s = {n: sp.Symbol(n, positive=True) for n in SYMBOL_NAMES}
    for n in ("phi", "m_inv", "zero_frac", "zero_sq", "zeta2", "sigma2", "Delta", "delta_eff"):
        s[n] = sp.Symbol(n, nonnegative=True)
    return s


def symbolic(algorithm: str, *, set_model: str = "persistent", form: str | None = None, syms=None,
             lam: float = LAMBDA, gram: bool = False) -> dict:
    """The bound's terms as sympy expressions (the same code as `evaluate`); gram: the set terms as the
    nonnegative symbols GRAM_SYMBOLS (the Gram forms of section 4.7) instead of their zeta^2 forms."""
    import sympy as sp

    syms = symbols() if syms is None else syms
    if gram:
        syms = dict(syms, **{n: sp.Symbol(n, nonnegative=True) for n in GRAM_SYMBOLS})
    return terms(algorithm, syms, sp.sqrt, set_model=set_model, form=form, lam=lam)
