"""The lgc bound forms of theory/DERIVATION.md sections 4.4 to 4.5 (eqs. 4.12-4.34).

Each form maps parameters (theory/bounds.py's names) to named terms, with a `sqrt` that works on
numbers, numpy arrays and sympy symbols alike; theory/bounds.py dispatches to them and evaluates.
lgc-fresh's noise and bias (eqs. 4.12-4.13) live here too: the lgc forms are built from them.
"""
from __future__ import annotations

import numpy as np

LAMBDA = 1.0  # Young's parameter in ||P + S||^2 <= (1 + LAMBDA)||P||^2 + (1 + 1/LAMBDA)||S||^2, eq. (4.27)
THETA = 1.0  # Young's parameter in ||m + eps||^2 <= (1 + THETA)||m||^2 + (1 + 1/THETA)||eps||^2, eq. (4.33)


def tight(p, key, worst):
    """A set term: the Gram form p[key] (theory/gram.py, eqs. 4.36-4.40) where given, else the zeta^2 form
    `worst`. Numerically the smaller of the two (both bound the same quantity, eq. 4.41); a sympy symbol
    in p[key] replaces `worst` (the symbolic forms of section 4.7)."""
    g = p.get(key)
    if g is None:
        return worst
    if isinstance(g, (int, float, np.ndarray, np.generic)):
        return np.minimum(g, worst)
    return g


def moments(p):
    """Straggler-count moments (eq. 4.12'): z stragglers with no block, s = N - K - z reporting."""
    N, K, f = p["N"], p["K"], p["zero_frac"]
    zsq = p.get("zero_sq", f)
    n_s = N - K
    return dict(ez=n_s * f, ez2=n_s**2 * zsq, es=n_s * (1 - f), es2=n_s**2 * (1 - 2 * f + zsq), one_m=1 - 2 * f + zsq)


def fresh_parts(p):
    """lgc-fresh's noise V_fresh (eq. 4.13) and bias E z (z + K) zeta^2 / (N K) (eq. 4.12), exact moments."""
    N, K, B = p["N"], p["K"], p["B"]
    b = B / p["M"]
    mo = moments(p)
    v = p["sigma2"] * ((K**2 + 2 * K * mo["ez"] + mo["ez2"]) / (N**2 * K * B) + (N - K) * p["m_inv"] / (N**2 * b))
    bias = tight(p, "g_fresh", (mo["ez2"] + K * mo["ez"]) * p["zeta2"] / (N * K))  # eq. (4.12) or (4.37)
    return v, bias, mo


def lgc_parts(p, sqrt):
    """The quantities of eqs. (4.15)-(4.22) and (4.27) that the lgc bounds are made of."""
    N, K, B, L, eta = p["N"], p["K"], p["B"], p["L"], p["eta"]
    b = B / p["M"]
    dl = p.get("delta_eff", L)  # Lipschitz constant of a_i: L, or delta under A6 (eq. 4.15')
    rho = (N - K) / N  # rho_bar, eq. (4.15)
    v_fresh, fresh_bias, mo = fresh_parts(p)
    v_a = p["sigma2"] / (K * B)  # fast-set noise, eq. (4.16)
    # eq. (4.17) with E rho_t^2 = E s^2 / N^2; E_eps / sqrt(rho_bar), eq. (4.18)
    e_eps = p["sigma2"] * ((N - K) * p["m_inv"] / (N**2 * b) + mo["es2"] / (N**2 * K * B))
    e_eps_split = p["sigma2"] * sqrt(rho) * (p["m_inv"] / (N * b) + rho * mo["one_m"] / (K * B))
    q = 24 * rho**2 * dl**2 * eta**2  # eq. (4.19)
    r2 = 4 * rho**2 * dl**2 * eta**2  # ||S_t||^2 <= r2 ||d_{t-1}||^2, eq. (4.27)
    c = tight(p, "g_bias", (N - K) * p["zeta2"] / K)  # eq. (4.9) or (4.36)
    # eq. (4.20'): a period start costs 2 N (N-K) zeta^2 / (K max(K, N-K)); max(K, N-K) = (N + |2K - N|)/2
    # (or its Gram form, eq. 4.39); the first post-warm-up round only the fastest-K bias (4.9), (N-K) zeta^2 / K
    if p.get("g_change") is None:  # the zeta^2 form, its arithmetic in this order (bit-identical K*: tests/data)
        b_set = p["phi"] * 4 * N * (N - K) * p["zeta2"] / (K * (N + sqrt((2 * K - N) ** 2))) + c / p["T"]
    else:
        b_set = p["phi"] * tight(p, "g_change", 4 * N * (N - K) * p["zeta2"] / (K * (N + sqrt((2 * K - N) ** 2)))) + c / p["T"]
    b_zero = (1 - p["phi"] - 1 / p["T"]) * fresh_bias  # eq. (4.21)
    # E||Delta_t||^2 (eq. 4.31), or its Gram form (4.38)
    e_delta = tight(p, "g_delta", (mo["es2"] + K * mo["es"]) * p["zeta2"] / (N * K))
    return dict(rho=rho, v_a=v_a, e_eps=e_eps, e_eps_split=e_eps_split, q=q, r2=r2, b_set=b_set, b_zero=b_zero,
                v_fresh=v_fresh, fresh_bias=fresh_bias, e_delta=e_delta, mo=mo)


def sgd_variance(p, x, sqrt):
    """The O(eta) sigma^2 part of eqs. (4.23) and (4.29) beyond full-sync's noise."""
    L, eta = p["L"], p["eta"]
    return (L * eta * p["sigma2"] * (1 / p["K"] - 1 / p["N"]) / p["B"]
            + L * eta * (x["e_eps"] + x["e_eps_split"]) + 2 * L * eta * sqrt(x["v_a"] * x["e_eps"]))


def recursive(p, sqrt):
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
        "variance": sgd_variance(p, x, sqrt),
        "set_change": 2 * x["b_set"],
        "zero_block": 2 * x["b_zero"],
    }
    s0 = sum(base.values())
    q = x["q"]
    base["staleness"] = q / (1 - 2 * q) * (s0 + 2 * (x["b_set"] + x["b_zero"]) + x["e_eps"] + x["v_a"] / 3)
    return base


def direct(p, sqrt):
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
        "variance": sgd_variance(p, x, sqrt),
        "set_change": (1 + LAMBDA) * x["b_set"],
        "zero_block": (1 + LAMBDA) * x["b_zero"],
        "staleness": (1 + 1 / LAMBDA) * x["r2"] * (x["e_eps"] + x["e_eps_split"] + x["v_a"]),
    }


def virtual(p, sqrt):
    """eq. (4.31): lgc through the virtual sequence x_t = w_t - eta u_{t-1}, which takes lgc-fresh
    steps (eq. 4.30): lgc-fresh's bound (4.14) plus L^2 eta^2/(1 - eta L) E||u_{t-1}||^2, for any
    sets (persistent or uniform, no set-change term); valid for eta L < 1."""
    L, eta = p["L"], p["eta"]
    x = lgc_parts(p, sqrt)
    full_noise = L * eta * p["sigma2"] / (p["N"] * p["B"])
    return {
        "optimization": 2 * p["Delta"] / (eta * p["T"]),
        "noise": full_noise,
        "variance": L * eta * x["v_fresh"] - full_noise,
        "set_change": 0 * p["zeta2"],
        "zero_block": x["fresh_bias"],
        "staleness": L**2 * eta**2 / (1 - L * eta) * (x["e_delta"] + x["e_eps"]),  # E||u||^2, eq. (4.31)
    }


def exchangeable(p, sqrt):
    """eq. (4.32): the virtual sequence with exchangeable sets (i.i.d. times, h = 1): every set
    term is zero-mean noise over a random assignment, 1/(N-1) of its persistent size; eta L < 1."""
    L, eta, N, K = p["L"], p["eta"], p["N"], p["K"]
    x = lgc_parts(p, sqrt)
    mo = x["mo"]
    nm1 = p.get("Nm1", N - 1)
    full_noise = L * eta * p["sigma2"] / (N * p["B"])
    return {
        "optimization": 2 * p["Delta"] / (eta * p["T"]),
        "noise": full_noise,
        "variance": L * eta * x["v_fresh"] - full_noise,
        "set_change": 0 * p["zeta2"],
        "zero_block": L * eta * (mo["ez2"] + K * mo["ez"]) * p["zeta2"] / (N * K * nm1),
        "staleness": L**2 * eta**2 / (1 - L * eta) * ((mo["es2"] + K * mo["es"]) * p["zeta2"] / (N * K * nm1)
                                                      + x["e_eps"]),
    }


def noise_virtual(p, sqrt, lam=LAMBDA, theta=THETA):
    """eq. (4.33): persistent sets, the virtual sequence x_t = w_t - eta eps_{t-1} over the noise part
    of u only; the set part stays a bias, its staleness absorbed by the descent inequality.

    total = 2 Delta/(eta T) + L eta V_fresh + (1 + lam) bbar + (1 + 1/lam) r2 [(1 + 1/theta) E_eps + V_A]
            + L^2 eta^2 E_eps / alpha,  alpha = 1 - eta L - (1 + 1/lam)(1 + theta) r2 > 0 (eq. 4.34)."""
    x = lgc_parts(p, sqrt)
    L, eta = p["L"], p["eta"]
    alpha = 1 - L * eta - (1 + 1 / lam) * (1 + theta) * x["r2"]
    full_noise = L * eta * p["sigma2"] / (p["N"] * p["B"])
    return {
        "optimization": 2 * p["Delta"] / (eta * p["T"]),
        "noise": full_noise,
        "variance": L * eta * x["v_fresh"] - full_noise,
        "set_change": (1 + lam) * x["b_set"],
        "zero_block": (1 + lam) * x["b_zero"],
        "staleness": (1 + 1 / lam) * x["r2"] * ((1 + 1 / theta) * x["e_eps"] + x["v_a"])
        + L**2 * eta**2 * x["e_eps"] / alpha,
    }


def uniform(p, sqrt):
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


# the forms by name (theory/bounds.py LGC_FORMS)
FORMS = {"virtual": virtual, "noise-virtual": noise_virtual, "direct": direct, "recursive": recursive,
         "exchangeable": exchangeable, "uniform": uniform}
