"""The fast set's own curvature in the error model (theory/DERIVATION.md eqs. 8.5''a-8.5''d, beside 8.5).

The surrogate of theory/predict.py (eq. 8.1) gives every worker F's Hessian. With per-worker curvatures r_ij
(worker i's curvature in band j, diagonal in F's bands, h_j = (1/N) sum_i r_ij; eq. 8.5''a) a round's direction
has the fast set's curvature r_{A_t,j} = (1/K) sum_{i in A_t} r_ij, and lgc's compensation carries
rho_t (r_{S'_t,j} - r_{A_t,j}) e_{t,j} (8.5''b): the round's linear map on (e, v, u) depends on its sets. This
module makes those per-round maps; theory/predict.py simulates them on the drawn schedules (the sets' mean
curvatures come from the same prefix sums as their deviations). Pure numpy.
"""
from __future__ import annotations

import numpy as np

from theory.errors import require

MAX_N = 64  # workers up to which per-worker curvatures are modelled (each round's map is per draw, K and band)


def worker_curvatures(workers, h_j, n: int) -> np.ndarray:
    """(N, J) per-worker curvatures r_ij scaled per band so that (1/N) sum_i r_ij = h_j, the band's curvature as the
    model uses it (capped at L, eq. 8.5''a): the given array sets each band's spread over the workers, the bands'
    h its mean. Refused (one line) for a wrong shape, a value that is not finite and > 0, or N > MAX_N."""
    h = np.asarray(h_j, dtype=float)
    r = np.asarray(workers, dtype=float)
    require(n <= MAX_N, f"bands.workers: per-worker curvatures are modelled for N <= {MAX_N} workers, got N={n} "
                        f"(each round's map is per set: drop 'workers' from the bands for the shared-Hessian model)")
    require(r.shape == (n, len(h)), f"bands.workers must be N x J = {n} x {len(h)} curvatures (one row per worker, "
                                    f"one column per band), got shape {r.shape}")
    require(bool(np.all(np.isfinite(r) & (r > 0))), "bands.workers: every per-worker curvature must be finite and > 0")
    return r * (h / r.mean(0))[None, :]


def set_curvatures(algorithm: str, r_a, r_s, rho):
    """The round's curvature of d in e, h_eff, and of the new u in e, h_u (eq. 8.5''b), per (..., K, J): from the fast
    set's and the reporters' mean curvatures r_a, r_s (..., K, J) and rho (..., K). fastest-K: (r_A, 0); lgc:
    (r_A, rho (r_S' - r_A)); lgc-fresh: ((1 - rho) r_A + rho r_S', 0)."""
    rho = np.asarray(rho, dtype=float)[..., None]
    zero = np.zeros_like(r_a)
    if algorithm == "fastest-k":
        return r_a, zero
    if algorithm == "lgc":
        return r_a, rho * (r_s - r_a)
    if algorithm == "lgc-fresh":
        return (1 - rho) * r_a + rho * r_s, zero
    require(False, f"per-worker curvatures have no round for algorithm={algorithm!r}")


def set_transition(eta, h_eff, h_u, mu: float) -> np.ndarray:
    """(..., K, J, 3, 3): the round's map on x = (e, v, u) (eq. 8.5''c): d = h_eff e + u, v' = mu v + d,
    e' = e - eta v', u' = h_u e (+ inputs). With h_eff = h_j and h_u = 0 it is eq. (8.5)'s A(h_j)."""
    eta = np.asarray(eta, dtype=float)[:, None]
    A = np.zeros(np.shape(h_eff) + (3, 3))
    A[..., 0, 0], A[..., 0, 1], A[..., 0, 2] = 1 - eta * h_eff, -eta * mu, -eta
    A[..., 1, 0], A[..., 1, 1], A[..., 1, 2] = h_eff, mu, 1.0
    A[..., 2, 0] = h_u
    return A
