"""The error model's predictions (theory/predict.py) on small development settings of our own against the values
the code gave before issue 21's speed-up of optimize-k at N = 10^4 (recorded with commit 1495cdc): the speed-up
computes the same quantities (every K's fast set and reporters from one sort; the deviations' sums at the
evaluated K as segment sums instead of a running sum over every worker, so the same sums added in another order).
Predictions within rtol 1e-10 (the recorded and the current runs differ in the last bits; other machines' BLAS and
LAPACK kernels also do), K* equal. The settings (none from paper_figures/kstar_check.py's grids or the model
cells) cover every branch of the sets' statistics: even split and per-block times, ties (deterministic times),
heterogeneous speeds, boundary semantics, independent sets (the law), M = 1, N above EXACT_N, momentum, warm-up,
two bands and the target criterion.

Regenerate only from the code the values stand for: `PYTHONPATH=<checkout of 1495cdc> python
tests/test_predict_golden.py --write` (this file imports only theory.predict's public names)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from theory.predict import Bands, predict_errors
from theory.timing_factory import make_timing_model

GOLDEN = Path(__file__).parent / "data" / "predict_golden.json"
FIELDS = ("rounds", "gap", "gap_se", "grad2", "grad2_se")


def settings() -> dict:
    """name -> (algorithm, bands, keyword arguments of predict_errors)."""
    base = dict(L=1.0, sigma2=2.0, zeta2=0.5, Delta=3.0, eta=0.5, M=4, B=8)
    two = Bands(h=(1.0, 0.1), delta=(1, 2), sigma2=(1, 1), zeta2=(2, 1))
    exp = lambda **p: make_timing_model("shifted-exp", **p)
    cases = {
        "lgc-h10": ("lgc", None, dict(N=8, timing=exp(), h=10, ks=np.arange(1, 9), rounds=60)),
        "fastest-k-persistent": ("fastest-k", None, dict(N=8, timing=exp(), h=float("inf"), ks=np.arange(1, 9),
                                                         rounds=60)),
        "lgc-fresh-h1-law": ("lgc-fresh", None, dict(N=8, timing=exp(), h=1, ks=np.arange(1, 9), rounds=60)),
        "lgc-h1-simulated": ("lgc", None, dict(N=9, timing=exp(), h=1, ks=np.arange(1, 10), rounds=80,
                                               method="simulate")),
        "lgc-two-bands-momentum-warmup": ("lgc", two, dict(N=30, timing=exp(), h=5, ks=np.arange(1, 31, 3),
                                                           rounds=np.arange(10) * 7 + 20, momentum=0.5, warmup=2)),
        "lgc-deterministic-ties": ("lgc", None, dict(N=20, timing=make_timing_model("deterministic"), h=10,
                                                     ks=np.arange(1, 21), rounds=40)),
        "lgc-per-block": ("lgc", None, dict(N=12, timing=exp(per_block=True), h=3, ks=np.arange(1, 13), rounds=30)),
        "lgc-heterogeneous-boundary": ("lgc", None, dict(N=12, timing=make_timing_model("heterogeneous"), h=4,
                                                         ks=np.arange(1, 13), rounds=30, semantics="boundary")),
        "lgc-target": ("lgc", None, dict(N=10, timing=exp(), h=10, ks=np.arange(2, 11), target=0.12, momentum=0.3,
                                         rounds=None)),
        "lgc-one-block": ("lgc", None, dict(N=6, timing=exp(), h=3, ks=np.arange(1, 7), rounds=50, M=1)),
        "lgc-n100-heterogeneous": ("lgc", two, dict(N=100, timing=make_timing_model("heterogeneous"), h=7,
                                                    ks=np.array([1, 5, 20, 50, 99, 100]), rounds=200)),
        "fastest-k-n3000": ("fastest-k", None, dict(N=3000, timing=exp(), h=10, ks=np.array([1, 7, 100, 2999, 3000]),
                                                    rounds=300)),
    }
    out = {}
    for name, (alg, bands, kw) in cases.items():
        b = dict(base)
        b.update(kw)
        out[name] = (alg, bands or Bands.scalar(1.0), b)
    return out


def _predict(name):
    alg, bands, kw = settings()[name]
    return predict_errors(alg, bands, **kw)


def _record(p) -> dict:
    clean = lambda v: [None if not np.isfinite(x) else float(x) for x in np.asarray(v, float)]
    return dict(ks=[int(k) for k in p.ks], draws=int(p.draws), k_star=p.k_star("gap"), k_star_grad2=p.k_star("grad2"),
                **{f: clean(getattr(p, f)) for f in FIELDS})


@pytest.mark.parametrize("name", list(settings()))
def test_predictions_equal_the_recorded_ones(name):
    want = json.loads(GOLDEN.read_text())[name]
    got = _record(_predict(name))
    assert got["ks"] == want["ks"] and got["draws"] == want["draws"]
    assert (got["k_star"], got["k_star_grad2"]) == (want["k_star"], want["k_star_grad2"])
    for f in FIELDS:
        g, w = (np.array([np.nan if v is None else v for v in d[f]]) for d in (got, want))
        # a standard error is the spread of draws that agree to rounding: where it is ~1e-17 of a value of order
        # 1 it is rounding noise, which other CPUs' kernels change (OPENBLAS_CORETYPE=Prescott), so it is compared
        # on the scale of the mean it is the error of
        scale = np.nanmax(np.abs(np.array([np.nan if v is None else v for v in got[f[:-3]]]))) if f.endswith("_se") else 0.0
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10 * scale, equal_nan=True, err_msg=f"{name}: {f}")


def test_prefix_sums_at_positions_equal_the_running_sum():
    """prefix_sums: sum of rows[:p] at each p, any order, repeats, 0 and len(rows) included."""
    from theory.predict_sets import prefix_sums

    rows = np.random.default_rng(1).standard_normal((50, 3))
    at = np.array([50, 0, 7, 7, 1, 49, 23])
    want = np.concatenate([np.zeros((1, 3)), np.cumsum(rows, 0)])[at]
    np.testing.assert_allclose(prefix_sums(rows, at), want, rtol=1e-12, atol=1e-12)
    assert prefix_sums(rows, np.array([0, 0])).tolist() == [[0.0] * 3] * 2


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps({n: _record(_predict(n)) for n in settings()}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
