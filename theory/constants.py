"""The constants JSON (README "File formats"): read, validate, write (format v1).

    {"L": 4.0, "sigma2": 1.0, "zeta2": 0.5, "Delta": 2.0,
     "delta": 0.3,                              # optional: Lipschitz constant of grad f_i - grad F
     "mu": 0.1,                                 # optional: F is mu-strongly convex (never estimated)
     "gram": [[[...N numbers], ...N rows], ...], # optional: the workers' Gram matrices G(w_p) at points
     "bands": {"h": [...], "delta": [...], "sigma2": [...], "zeta2": [...]},  # optional: curvature bands
                                                # (optional in it: "workers": [[...J] x N], r_ij)
     "heldout": {"train": [...], "heldout": [...], ...},  # optional: a pilot's training objective and held-out
                                                # loss at checkpoints (theory/heldout.py, DERIVATION.md eq. 8.14)
     "intervals": {"L": [3.8, 4.2], ...},      # optional: bootstrap intervals [lo, hi]
     "source": {...},                           # optional: how they were obtained
     "format": 1}                               # optional on read; written by write_constants

L > 0 (smoothness), sigma2 >= 0 (per-sample gradient variance), zeta2 >= 0 (dissimilarity),
Delta >= 0 (F(w_0) - F*); optional delta >= 0, the Lipschitz constant of the dissimilarity
grad f_i - grad F (assumption A6 of theory/DERIVATION.md; files without it still load, and the
bounds then use L); optional mu > 0, F's strong-convexity constant (assumption A7, section 4.8; given by
the user, `lgc estimate` does not estimate it); optional gram, the Gram matrices G_ij = <a_i, a_j> of the deviations
a_i = grad f_i - grad F at one or more points (assumption A4G, DERIVATION.md section 4.7; without
it the bounds use zeta2 alone); optional bands, J curvature bands h_j > 0 with each band's share of Delta,
sigma2 and zeta2 (numbers >= 0, J of each; an optional "delta_split" records Delta's two splits, eqs. 8.10 and
8.10', and which one "delta" is; an optional "workers", N lists of J curvatures r_ij > 0, each worker's own
curvature per band, eq. 8.5''a, modelled for N <= 64: theory/predict_curv.py), for the error model of theory/predict.py (DERIVATION.md section 8; without it
the model uses the scalar constants' prior spectrum, eq. 8.12); optional heldout, a pilot run's training objective
and held-out loss at checkpoints, with which optimize-k's recommended K* minimises the predicted held-out loss
(theory/heldout.py, eq. 8.14; without it, the predicted training gap). Written by `lgc estimate`, read by `lgc optimize-k
--constants`.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from theory.errors import require
from theory.heldout import HELDOUT_KEY, validate_heldout
from theory.jsonio import atomic_write_json

CONSTANTS_FORMAT_VERSION = 1
KEYS = ("L", "sigma2", "zeta2", "Delta")
OPTIONAL_KEYS = ("delta", "mu")  # mu: strong convexity of F (A7, DERIVATION.md section 4.8), never estimated
GRAM_KEY = "gram"  # optional: a list of N x N Gram matrices (A4G)
BANDS_KEY = "bands"  # optional: curvature bands for the error model (DERIVATION.md section 8)
BAND_FIELDS = ("h", "delta", "sigma2", "zeta2")


@dataclass(frozen=True)
class Constants:
    L: float
    sigma2: float
    zeta2: float
    Delta: float
    delta: float | None = None
    mu: float | None = None
    gram: list | None = None  # [P][N][N]: G at P points (A4G), or None
    bands: dict | None = None  # {"h": [J], "delta": [J], "sigma2": [J], "zeta2": [J]} (section 8), or None
    intervals: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    heldout: dict | None = None  # a pilot's F(w_p) and held-out loss (theory/heldout.py, eq. 8.14), or None

    def __post_init__(self):
        validate_constants(asdict(self))


def validate_constants(d, *, source: str = "constants") -> dict:
    """Check a constants mapping; TheoryInputError names the missing or bad key."""
    require(isinstance(d, dict), f"{source}: must be a JSON object with keys {', '.join(KEYS)}")
    for k in KEYS:
        require(k in d, f"{source}: missing key {k!r} (needs {', '.join(KEYS)})")
        v = d[k]
        require(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                f"{source}: {k}={v!r} must be a finite number")
    require(d["L"] > 0, f"{source}: L={d['L']} must be > 0")
    for k in ("sigma2", "zeta2", "Delta"):
        require(d[k] >= 0, f"{source}: {k}={d[k]} must be >= 0")
    for k in OPTIONAL_KEYS:
        v = d.get(k)
        require(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0),
                f"{source}: {k}={v!r} must be a finite number >= 0 (or absent)")
    _validate_gram(d.get(GRAM_KEY), source)
    _validate_bands(d.get(BANDS_KEY), source)
    validate_heldout(d.get(HELDOUT_KEY), source)
    fmt = d.get("format", CONSTANTS_FORMAT_VERSION)
    require(fmt == CONSTANTS_FORMAT_VERSION, f"{source}: format={fmt!r} is not supported (expected {CONSTANTS_FORMAT_VERSION})")
    intervals = d.get("intervals", {})
    require(isinstance(intervals, dict), f"{source}: intervals must be an object of [lo, hi] pairs")
    for k, iv in intervals.items():
        ok = isinstance(iv, (list, tuple)) and len(iv) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in iv)
        require(ok and iv[0] <= iv[1], f"{source}: intervals[{k!r}]={iv!r} must be [lo, hi] with lo <= hi")
    require(isinstance(d.get("source", {}), dict), f"{source}: source must be an object")
    return d


def _validate_gram(g, source: str) -> None:
    """gram: absent, or a non-empty list of equally sized square matrices of finite numbers with a
    nonnegative diagonal (Gram matrices)."""
    if g is None:
        return
    what = f"{source}: {GRAM_KEY} must be a non-empty list of N x N Gram matrices (lists of rows of numbers)"
    require(isinstance(g, (list, tuple)) and len(g) > 0, what)
    for m in g:
        require(isinstance(m, (list, tuple)) and len(m) > 0 and all(isinstance(r, (list, tuple)) for r in m), what)
        n = len(m)
        require(all(len(r) == n for r in m) and n == len(g[0]), f"{what}; got a matrix of {n} rows, "
                f"{sorted({len(r) for r in m})} columns (the first has {len(g[0])} rows)")
        for r in m:
            require(all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in r),
                    f"{what}; every entry must be a finite number")
        require(all(m[i][i] >= 0 for i in range(n)), f"{source}: {GRAM_KEY} has a negative diagonal entry "
                                                     f"(a squared norm ||a_i||^2 is >= 0)")
    for p, m in enumerate(g):
        _require_gram_matrix(np.asarray(m, dtype=float), f"{source}: {GRAM_KEY}[{p}]")


GRAM_TOL = 1e-8  # relative to tr G: estimate's float64 a a^T is symmetric and PSD to about 1e-15 of it


def _require_gram_matrix(G, what: str) -> None:
    """G_ij = <a_i, a_j> is symmetric and positive semidefinite (hence |G_ij| <= sqrt(G_ii G_jj)), within
    GRAM_TOL tr G. A non-PSD 'gram' lowered the bound (0.1406 -> 0.1115) and moved K* (issue 24 item 8)."""
    tol = GRAM_TOL * max(float(np.trace(G)), np.finfo(float).tiny)
    asym = np.abs(G - G.T)
    i, j = np.unravel_index(int(np.argmax(asym)), G.shape)
    require(asym[i, j] <= tol, f"{what} is not symmetric: G[{i}][{j}]={G[i, j]:.6g} but G[{j}][{i}]={G[j, i]:.6g} "
                               f"(a Gram matrix <a_i, a_j> is symmetric, within {GRAM_TOL:g} tr G)")
    lam = float(np.linalg.eigvalsh((G + G.T) / 2)[0])
    cs = np.abs(G) - np.sqrt(np.outer(np.diag(G), np.diag(G)))
    i, j = np.unravel_index(int(np.argmax(cs)), G.shape)
    hint = (f"; |G[{i}][{j}]|={abs(G[i, j]):.6g} > sqrt(G[{i}][{i}] G[{j}][{j}])={abs(G[i, j]) - cs[i, j]:.6g} breaks "
            f"Cauchy-Schwarz" if cs[i, j] > tol else "")
    require(lam >= -tol, f"{what} is not positive semidefinite: smallest eigenvalue {lam:.6g} < 0 (a Gram matrix "
                         f"<a_i, a_j> has none below -{GRAM_TOL:g} tr G){hint}")


def _validate_bands(b, source: str) -> None:
    """bands: absent, or an object of J >= 1 numbers per field of BAND_FIELDS (finite, >= 0; curvatures > 0),
    plus an optional "method" string, "delta_split" and "workers" (N lists of J per-worker curvatures > 0)."""
    if b is None:
        return
    what = f"{source}: {BANDS_KEY} must be an object with lists {', '.join(BAND_FIELDS)} of equal length >= 1"
    require(isinstance(b, dict) and all(isinstance(b.get(k), (list, tuple)) for k in BAND_FIELDS), what)
    extra = {"method", "delta_split", "workers"}
    require(set(b) <= set(BAND_FIELDS) | extra, f"{what}; unknown key(s) {sorted(set(b) - set(BAND_FIELDS) - extra)}")
    n = len(b["h"])
    require(n >= 1 and all(len(b[k]) == n for k in BAND_FIELDS), f"{what}; got lengths {[len(b[k]) for k in BAND_FIELDS]}")
    for k in BAND_FIELDS:
        require(all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in b[k]),
                f"{source}: {BANDS_KEY}.{k}={b[k]!r} must be finite numbers >= 0")
    require(all(v > 0 for v in b["h"]), f"{source}: {BANDS_KEY}.h={b['h']!r}: every curvature must be > 0")
    w = b.get("workers")  # optional: per-worker curvatures r_ij, N rows of J (eq. 8.5''a; theory/predict_curv.py)
    if w is not None:
        require(isinstance(w, list) and len(w) >= 1 and all(
            isinstance(row, list) and len(row) == n and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in row)
            for row in w), f"{source}: {BANDS_KEY}.workers must be N lists of {n} finite curvatures > 0 (worker i's "
                           f"curvature in each band), got {str(w)[:80]}")
    split = b.get("delta_split")  # optional: both splits of Delta (eqs. 8.10, 8.10') and which one "delta" is
    if split is not None:
        from theory.delta_fit import DELTA_SPLITS

        require(isinstance(split, dict) and split.get("used") in DELTA_SPLITS
                and isinstance(split.get("spectrum"), list) and len(split["spectrum"]) == n
                and (split.get("fit") is None or (isinstance(split["fit"], list) and len(split["fit"]) == n)),
                f"{source}: {BANDS_KEY}.delta_split must be an object with used (one of {', '.join(DELTA_SPLITS)}), "
                f"spectrum ({n} numbers) and fit ({n} numbers or null)")


def read_constants(path) -> Constants:
    """Read and validate a constants JSON; a missing or malformed file names itself."""
    p = Path(path)
    require(p.is_file(), f"constants file {str(p)!r} does not exist")
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        require(False, f"constants file {str(p)!r} is not valid JSON: {e}")
    validate_constants(d, source=str(p))
    opt = {k: float(d[k]) for k in OPTIONAL_KEYS if d.get(k) is not None}
    return Constants(**{k: float(d[k]) for k in KEYS}, **opt, gram=d.get(GRAM_KEY), bands=d.get(BANDS_KEY),
                     heldout=d.get(HELDOUT_KEY), intervals=d.get("intervals", {}),
                     source=d.get("source", {}))


def write_constants(path, constants) -> None:
    """Validate, then write atomically (temporary file in the same folder, fsync, rename), with
    the permissions of any new file (0644 under umask 022)."""
    d = asdict(constants) if isinstance(constants, Constants) else dict(constants)
    d = {k: v for k, v in d.items() if not (k in OPTIONAL_KEYS + (GRAM_KEY, BANDS_KEY, HELDOUT_KEY) and v is None)}  # absent, not null
    validate_constants(d, source=str(path))
    d["format"] = CONSTANTS_FORMAT_VERSION
    atomic_write_json(path, d)  # `lgc estimate --out` checks its folder exists first
