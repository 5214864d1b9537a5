"""The error model with each worker's own curvature (theory/predict_curv.py, DERIVATION.md eqs. 8.5''a-d).

Development settings of this file's own (none from paper_figures/kstar_check.py's grids or the model cells):
two bands (h = 1, 0.3) on N = 8 workers under shifted-exponential and heterogeneous timing, and a one-band N = 4
case under deterministic times whose fast set and reporters are fixed (worked by hand below).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from theory.errors import TheoryInputError
from theory.predict import Bands, predict_errors
from theory.timing import Deterministic, HeterogeneousSpeed, ShiftedExponential

ROOT = Path(__file__).resolve().parents[1]
N = 8
TWO = dict(h=(1.0, 0.3), delta=(1.0, 1.0), sigma2=(1.0, 1.0), zeta2=(1.0, 2.0))


@pytest.mark.parametrize("alg", ["lgc", "fastest-k", "lgc-fresh", "full-sync"])
@pytest.mark.parametrize("timing,h", [(ShiftedExponential(shift=1.0, rate=0.5), 1),
                                      (ShiftedExponential(shift=1.0, rate=0.5), 10),
                                      (HeterogeneousSpeed(slow_fraction=0.25, slowdown=3.0, rate=0.5), 10**9)])
def test_equal_curvatures_reduce_to_the_shared_hessian_model(alg, timing, h):
    """r_ij = h_j for every worker (any common scale: they are scaled to the bands' h) gives eq. (8.5)'s model:
    the same draws, the same sets, the gaps and mean ||grad F||^2 equal to rounding (momentum and warm-up too)."""
    kw = dict(L=1.0, sigma2=1.0, zeta2=1.0, Delta=2.0, N=N, M=4, B=8, timing=timing, h=h, ks=np.arange(1, N + 1),
              rounds=40, eta=0.5, momentum=0.3, warmup=2, method="simulate")
    base = predict_errors(alg, Bands(**TWO), **kw)
    same = predict_errors(alg, Bands(**TWO, workers=((3.0, 0.9),) * N), **kw)
    assert same.curvatures and not base.curvatures
    np.testing.assert_allclose(same.gap, base.gap, rtol=1e-12)
    np.testing.assert_allclose(same.grad2, base.grad2, rtol=1e-12)


# the hand-worked case: times 1, 1.2, 2, 3 (M = 4), K = 2: A = {0, 1}, t_cut = 1.2; worker 2 finished 2 blocks and
# worker 3 one, so both report (rho = 2/4); one band, curvatures r = (2, 1, .5, .5) (h = 1), deviations a (sum 0)
R, A_DEV = np.array([2.0, 1.0, 0.5, 0.5]), np.array([1.0, -2.0, 0.5, 0.5])
EXACT = dict(L=2.0, zeta2=float((A_DEV**2).mean()), Delta=0.5, N=4, M=4, B=8, timing=Deterministic(times=(1, 1.2, 2, 3)),
             ks=[2], eta=0.3)


def _exact(alg, sigma2, T):
    bands = Bands(h=(1.0,), delta=(1.0,), sigma2=(1.0,), zeta2=(1.0,), workers=tuple((float(r),) for r in R))
    return predict_errors(alg, bands, sigma2=sigma2, rounds=T, gram=np.outer(A_DEV, A_DEV), **EXACT)


def test_fastest_k_on_a_fixed_set_moves_along_its_own_curvature_to_its_own_optimum():
    """Fastest-K with A fixed: e_{t+1} = (1 - eta r_A) e_t - eta (a_A + xi), r_A = 1.5, a_A = -0.5 (eq. 8.5''b):
    E[e_T] = q^T e_0 - (a_A / r_A)(1 - q^T), q = 1 - eta r_A, Var = sum_{s<T} q^{2s} eta^2 sigma2 / (K B); the
    gap is (h / 2) E[e_T^2] with h = 1 (the start's and deviations' parts add, eq. 8.6)."""
    T, eta, sigma2 = 25, 0.3, 2.0
    q = 1 - eta * 1.5
    e0 = 1.0  # sqrt(2 Delta / h)
    dev = -(-0.5 / 1.5) * (1 - q**T)
    var = sum(q ** (2 * s) for s in range(T)) * eta**2 * sigma2 / (2 * 8)
    pred = _exact("fastest-k", sigma2, T)
    assert pred.gap[0] == pytest.approx(0.5 * ((q**T * e0) ** 2 + dev**2 + var), rel=1e-12)
    # the shared-Hessian model moves along h = 1 and stops at -a_A / h: a different gap
    shared = predict_errors("fastest-k", Bands(h=(1.0,), delta=(1.0,), sigma2=(1.0,), zeta2=(1.0,)), sigma2=sigma2,
                            rounds=T, gram=np.outer(A_DEV, A_DEV), **EXACT)
    assert abs(shared.gap[0] / pred.gap[0] - 1) > 0.2


def test_lgc_compensation_carries_the_curvature_difference():
    """lgc with A = {0, 1}, S' = {2, 3}, rho = 1/2 fixed, no noise: d_t = r_A e_t + a_A + u_{t-1},
    u_t = rho ((r_S' - r_A) e_t + a_S' - a_A) (eq. 8.5''b), iterated by hand for the start's part (e_0 = 1, no a)
    and the deviations' part (e_0 = 0); the gap is h/2 times the sum of their squares."""
    T, eta, rho = 30, 0.3, 0.5
    r_a, r_s, a_a, a_s = 1.5, 0.5, -0.5, 0.5

    def run(e, with_a):
        u = 0.0
        for _ in range(T):
            d = r_a * e + with_a * a_a + u
            u = rho * ((r_s - r_a) * e + with_a * (a_s - a_a))
            e = e - eta * d
        return e

    want = 0.5 * (run(1.0, 0.0) ** 2 + run(0.0, 1.0) ** 2)
    assert _exact("lgc", 0.0, T).gap[0] == pytest.approx(want, rel=1e-12)


def test_bad_curvatures_are_refused():
    """A wrong shape, a curvature <= 0, N above the cap, and method='law' with per-worker curvatures."""
    with pytest.raises(TheoryInputError, match="workers must be N rows of 2"):
        Bands(**TWO, workers=((1.0,),) * N)
    with pytest.raises(TheoryInputError, match="finite curvatures > 0"):
        Bands(**TWO, workers=((1.0, 0.0),) * N)
    kw = dict(L=1.0, sigma2=1.0, zeta2=1.0, Delta=2.0, M=4, B=8, timing=ShiftedExponential(), rounds=10, eta=0.5)
    with pytest.raises(TheoryInputError, match="N x J = 8 x 2"):
        predict_errors("lgc", Bands(**TWO, workers=((1.0, 1.0),) * 5), N=N, ks=[4], **kw)
    with pytest.raises(TheoryInputError, match="N <= 64"):
        predict_errors("lgc", Bands(**TWO, workers=((1.0, 1.0),) * 65), N=65, ks=[4], **kw)
    with pytest.raises(TheoryInputError, match="method='law'"):
        predict_errors("lgc", Bands(**TWO, workers=((1.0, 1.0),) * N), N=N, ks=[4], method="law", **kw)


def _constants(path, workers):
    from theory.constants import write_constants

    write_constants(path, {"L": 1.0, "sigma2": 1.0, "zeta2": 0.5, "Delta": 5.0,
                           "bands": {**{k: list(v) for k, v in TWO.items()}, "workers": workers}})


def _cli(path, workers=N):
    return subprocess.run([sys.executable, "-m", "lgc", "optimize-k", "--constants", str(path), "--workers",
                           str(workers), "--budget", "100", "--json"], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("workers,n,match", [([[1.0, -1.0]] * N, N, "bands.workers must be N lists of 2"),
                                             ([[1.0, 0.3]] * 4, N, "N x J = 8 x 2")])
def test_bad_curvatures_at_the_cli_exit_2_in_one_line(tmp_path, workers, n, match):
    """A curvature <= 0 in the constants JSON (refused on read), or rows for 4 workers at --workers 8 (refused by
    the model): exit status 2, one line naming the value, no traceback."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"L": 1.0, "sigma2": 1.0, "zeta2": 0.5, "Delta": 5.0,
                                "bands": {**{k: list(v) for k, v in TWO.items()}, "workers": workers}}))
    r = _cli(path, n)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and match in r.stderr, r.stderr


def test_optimize_k_uses_the_constants_curvatures_and_says_so(tmp_path):
    """bands.workers in the constants JSON reaches the model through theory.optimize_k (model_curvatures true)."""
    path = tmp_path / "c.json"
    _constants(path, [[1.5, 0.3]] * 2 + [[0.8, 0.3]] * 6)
    r = _cli(path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model_curvatures"] is True


def test_kstar_predict_passes_each_worker_s_curvature_per_band():
    """paper_figures/kstar_predict.py's exact bands carry "workers": each band's per-worker curvatures, whose mean
    over the workers is the band's h (eq. 8.5''a). (A development quadratic of this test's own.)"""
    from paper_figures.kstar_predict import exact_bands
    from paper_figures.kstar_sim import Quadratic

    rng = np.random.default_rng(5)
    q = Quadratic(h=rng.uniform(0.02, 1.0, (N, 6)), c=rng.normal(size=(N, 6)), w0=np.full(6, 3.0), sigma2=2.0)
    assert "workers" not in exact_bands(q, q.noise_sd(8))
    b = exact_bands(q, q.noise_sd(8), per_worker=True)
    w = np.array(b["workers"])
    assert w.shape == (N, len(b["h"]))
    np.testing.assert_allclose(w.mean(0), b["h"], rtol=1e-12)
    assert Bands.from_json(b).workers is not None
    from paper_figures.kstar_predict import deviations_at_optimum, predict
    from theory.tradeoff import Problem, tradeoff

    a = deviations_at_optimum(q)
    np.testing.assert_allclose(a.sum(0), 0, atol=1e-12)
    np.testing.assert_allclose(np.array(b["zeta2"]).sum(), (a**2).sum(1).mean(), rtol=1e-12)
    from paper_figures.kstar_predict import band_grams

    G = band_grams(q)
    assert G.shape == (len(b["h"]), N, N)
    np.testing.assert_allclose(np.trace(G, axis1=1, axis2=2) / N, b["zeta2"], rtol=1e-12)  # each band's own share
    prob = Problem(N=N, M=4, B=8, timing=HeterogeneousSpeed(slow_fraction=0.25, slowdown=3.0), h=1, semantics="abort",
                   **q.constants(q.noise_sd(8)))
    res = tradeoff("fastest-k", prob, budget=100, eta=0.5 / q.L)
    rec = predict(res, prob, q, q.noise_sd(8), curvatures=True)
    assert rec["bands"].prediction.curvatures and not rec["scalar"].prediction.curvatures
    assert not predict(res, prob, q, q.noise_sd(8), curvatures=False)["bands"].prediction.curvatures


def _diagonal_problem(r, seed=0, samples=30):
    """f_i(w) = mean_s [ sum_k r_ik (w_k - c_ik)^2 / 2 + <x_s, w> ]: worker i's own diagonal Hessian diag(r_i)."""
    import torch

    from lgc.estimate import EmpiricalProblem

    g = torch.Generator().manual_seed(seed)
    n, d = r.shape
    rt = torch.tensor(r, dtype=torch.float64)
    c = torch.randn(n, d, generator=g, dtype=torch.float64)
    workers = []
    for i in range(n):
        x = torch.randn(samples, d, generator=g, dtype=torch.float64) * 0.3
        workers.append((torch.cat([x, c[i].expand(samples, d), rt[i].expand(samples, d)], 1),
                        torch.zeros(samples, dtype=torch.long)))

    def loss(w, xs, ys):
        xi, ci, ri = xs[:, :d], xs[:, d:2 * d], xs[:, 2 * d:]
        return 0.5 * ((w - ci) ** 2 * ri).sum(1) + xi @ w

    return EmpiricalProblem(loss, workers, torch.randn(d, generator=g, dtype=torch.float64) * 3)


def test_lanczos_ritz_vectors_give_each_worker_s_curvature_per_band():
    """A diagonal quadratic with one coordinate per band (F's curvatures 1, 0.15, 0.03, 0.005: bands a factor 4 apart
    below L = 1) and known per-worker curvatures r_ik = hbar_k s_ik: 12 Lanczos steps on a 4-dimensional space give
    the eigenvectors, so each band's Ritz vector is its coordinate and the Rayleigh quotients are r_ik exactly
    (eq. 8.5''e); the model's input validates (mean over workers = the band's h)."""
    from lgc.spectrum import curvature_bands

    hbar = np.array([1.0, 0.15, 0.03, 0.005])
    s = np.array([[0.5, 1.5, 0.8, 1.2], [1.5, 0.5, 1.2, 0.8], [0.8, 1.2, 0.5, 1.5], [1.2, 0.8, 1.5, 0.5]])
    r = s * hbar[None]
    prob = _diagonal_problem(r)
    L = float(hbar.max())
    out = curvature_bands(prob, prob.w0, L, workers=True)
    np.testing.assert_allclose(out["workers"], r, rtol=1e-8)
    np.testing.assert_allclose(out["h"], hbar, rtol=1e-8)
    assert "Rayleigh" in out["method"]
    b = Bands.from_json(out)
    assert np.array(b.workers).shape == (4, 4)
    assert "workers" not in curvature_bands(prob, prob.w0, L)  # off unless asked for


def test_estimate_writes_worker_curvatures_that_optimize_k_uses(tmp_path):
    """`lgc estimate --worker-curvatures` writes bands.workers (N x J, > 0); `lgc optimize-k` then runs the
    per-worker-curvature model (model_curvatures true). Without the flag the file has none."""
    out = tmp_path / "c.json"
    args = [sys.executable, "-m", "lgc", "estimate", "--dataset", "quadratic", "--workers", "3", "--quad-dim", "3",
            "--samples-per-worker", "20", "--bootstrap", "10", "--l-bootstrap", "0", "--trajectory-steps", "4",
            "--lbfgs-iters", "20", "--quiet", "--out", str(out)]
    r = subprocess.run(args + ["--worker-curvatures"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    bands = json.loads(out.read_text())["bands"]
    w = np.array(bands["workers"])
    assert w.shape == (3, len(bands["h"])) and bool(np.all(w > 0))
    r = subprocess.run([sys.executable, "-m", "lgc", "optimize-k", "--constants", str(out), "--workers", "3",
                        "--budget", "50", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model_curvatures"] is True
    assert subprocess.run(args, capture_output=True, text=True, cwd=ROOT).returncode == 0
    assert "workers" not in json.loads(out.read_text())["bands"]
