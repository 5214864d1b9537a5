"""lgc/spectrum.py: stochastic Lanczos quadrature and the curvature bands written by `lgc estimate` (DERIVATION.md
section 8.3, eqs. 8.9-8.11), against problems whose spectrum is known exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lgc.estimate import EmpiricalProblem
from lgc.spectrum import BANDS, Ritz, band_index, curvature_bands, lanczos


def test_lanczos_is_the_exact_measure_on_a_small_krylov_space():
    """A start vector in 4 eigenspaces of a 30 x 30 symmetric matrix: its Krylov space has dimension 4, so 8 steps
    give those 4 eigenvalues as Ritz values, with weights its squared projections (eq. 8.9, exact)."""
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((30, 30)))[0]
    lam = np.repeat([5.0, 2.0, 0.5, 0.1, -0.3, 0.02], 5)
    H = torch.tensor(Q @ np.diag(lam) @ Q.T)
    coef = np.zeros(30)
    coef[[0, 5, 10, 20]] = [1.0, 2.0, 0.5, 1.5]  # eigenvalues 5, 2, 0.5, -0.3
    z = torch.tensor(Q @ coef)
    r = lanczos(lambda v: H @ v, z, 8)
    assert isinstance(r, Ritz) and r.vectors is None
    theta, w = r.values, r.weights
    keep = w > 1e-12
    np.testing.assert_allclose(np.sort(theta[keep]), [-0.3, 0.5, 2.0, 5.0], atol=1e-8)
    want = {5.0: 1.0, 2.0: 4.0, 0.5: 0.25, -0.3: 2.25}
    for t, wt in zip(theta[keep], w[keep]):
        assert wt == pytest.approx(want[round(t, 6)] / 7.5, rel=1e-8)


def test_lanczos_has_one_shape_and_its_vectors_are_the_ritz_vectors():
    """With vectors=True the same Ritz (values, weights) and the unit Ritz vectors V (P, m): H V = V diag(theta) on
    an exact Krylov space, V orthonormal, and z's squared projections on them the weights."""
    rng = np.random.default_rng(1)
    Q = np.linalg.qr(rng.standard_normal((12, 12)))[0]
    H = torch.tensor(Q @ np.diag([3.0, 1.0, 0.5] * 4) @ Q.T)
    z = torch.tensor(Q @ np.r_[[1.0, 2.0, 0.5], np.zeros(9)])
    plain, full = lanczos(lambda v: H @ v, z, 6), lanczos(lambda v: H @ v, z, 6, vectors=True)
    assert type(plain) is type(full) is Ritz and full._fields == ("values", "weights", "vectors")
    np.testing.assert_array_equal(plain.values, full.values)
    V = full.vectors.numpy()
    assert V.shape == (12, len(full.values))
    np.testing.assert_allclose(V.T @ V, np.eye(V.shape[1]), atol=1e-10)
    np.testing.assert_allclose(H.numpy() @ V, V * full.values, atol=1e-8)
    np.testing.assert_allclose((V.T @ (z / z.norm()).numpy()) ** 2, full.weights, atol=1e-10)


def test_band_index_is_a_factor_four_apart():
    th = np.array([10.0, 4.0, 1.0, 0.99, 0.25, 0.2, 0.01, -1.0])
    assert band_index(th, 4.0, 4).tolist() == [0, 0, 0, 1, 1, 2, 3, 3]
    assert BANDS == 4 and band_index(th, 4.0).tolist() == band_index(th, 4.0, BANDS).tolist()
    assert band_index(th, 4.0, 2).tolist() == [0, 0, 0, 1, 1, 1, 1, 1]


def _quadratic(h, dev, noise_dims, n=4, samples=40, seed=0):
    """f_i(w) = mean_s [ sum_k h_k (w_k - c_ik)^2 / 2 + <x_s, w> ]: a shared Hessian diag(h), deviations
    h (cbar - c_i) only in `dev` coordinates, per-sample noise x_s only in `noise_dims`."""
    g = torch.Generator().manual_seed(seed)
    d = len(h)
    h = torch.tensor(h, dtype=torch.float64)
    c = torch.zeros(n, d, dtype=torch.float64)
    c[:, dev] = torch.randn(n, len(dev), generator=g, dtype=torch.float64)
    workers = []
    for i in range(n):
        x = torch.zeros(samples, d, dtype=torch.float64)
        x[:, noise_dims] = torch.randn(samples, len(noise_dims), generator=g, dtype=torch.float64)
        workers.append((torch.cat([x, c[i].expand(samples, d)], 1), torch.zeros(samples, dtype=torch.long)))

    def loss(w, xs, ys):
        xi, ci = xs[:, :d], xs[:, d:]
        return 0.5 * ((w - ci) ** 2 * h).sum(1) + xi @ w

    w0 = torch.randn(d, generator=g, dtype=torch.float64) * 3
    return EmpiricalProblem(loss, workers, w0), h


def test_bands_of_a_quadratic_are_its_spectrum():
    """F's Hessian diag(h) with curvatures in 3 bands: delta per band is exactly sum_k g_k^2 / (2 h_k) of the
    gradient at w_0 (eq. 8.10, the Krylov space is exhausted); the deviations live in band 0's coordinates and
    the noise in band 2's, invariant subspaces, so their shares are in those bands only (eq. 8.11)."""
    h = [4.0, 3.0, 0.8, 0.5, 0.1, 0.09]  # bands of L = 4: [1, 4], [1/4, 1), [1/16, 1/4)
    prob, ht = _quadratic(h, dev=[0, 1], noise_dims=[4, 5])
    out = curvature_bands(prob, prob.w0, 4.0, bands=3, steps=10, probes=2)
    wg = prob.w0.clone().requires_grad_(True)
    from lgc.estimate import full_loss

    (g,) = torch.autograd.grad(full_loss(prob, wg), wg)
    exact = (g**2 / (2 * ht)).numpy()
    np.testing.assert_allclose(out["delta"], [exact[:2].sum(), exact[2:4].sum(), exact[4:].sum()], rtol=1e-6)
    # deviations: band 0's coordinates, and the workers' noise sample means in band 2's; none in band 1
    assert out["zeta2"][0] > 10 * out["zeta2"][2] > 0 and out["zeta2"][1] == pytest.approx(0, abs=1e-9 * out["zeta2"][0])
    assert out["sigma2"][2] > 0 and out["sigma2"][:2] == pytest.approx([0, 0], abs=1e-9 * out["sigma2"][2])
    assert 1 <= out["h"][0] <= 4 and 0.25 <= out["h"][1] < 1 and 1 / 16 <= out["h"][2] < 0.25


def test_cli_estimate_writes_bands_that_optimize_k_reads(tmp_path, capsys):
    from lgc.cli import main

    out = tmp_path / "c.json"
    assert main(["estimate", "--dataset", "quadratic", "--workers", "4", "--quad-dim", "8", "--bootstrap", "10",
                 "--l-bootstrap", "0", "--trajectory-steps", "2", "--lbfgs-iters", "20", "--bands", "3",
                 "--out", str(out), "--quiet"]) == 0
    d = json.loads(out.read_text())
    assert len(d["bands"]["h"]) == 3 and sum(d["bands"]["delta"]) > 0 and "Lanczos" in d["bands"]["method"]
    capsys.readouterr()
    assert main(["optimize-k", "--constants", str(out), "--workers", "4", "--budget", "100", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all(r["pred_gap"] is not None for r in doc["rows"])
    assert main(["estimate", "--dataset", "quadratic", "--workers", "2", "--bands", "-1", "--out", str(out)]) == 2
