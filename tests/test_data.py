"""Embedded synthetic problems (exact constants) and the CIFAR-10 loader."""
import numpy as np
import pytest
import torch

from lgc.data.synthetic import QuadraticModel, make_classification, make_quadratic


def test_classification_is_balanced_seeded_and_learnable_only_by_its_labels():
    ds = make_classification(2000, 500, seed=3)
    assert ds.x_train.shape == (2000, 3, 8, 8) and ds.x_train.dtype == torch.float32
    assert torch.bincount(ds.y_train).tolist() == [200] * 10
    assert torch.equal(ds.x_train, make_classification(2000, 500, seed=3).x_train)
    assert not torch.equal(ds.x_train, make_classification(2000, 500, seed=4).x_train)
    # nearest class mean separates classes far better than chance (the labels carry signal)
    means = torch.stack([ds.x_train[ds.y_train == k].flatten(1).mean(0) for k in range(10)])
    pred = torch.cdist(ds.x_test.flatten(1), means).argmin(1)
    assert (pred == ds.y_test).float().mean() > 0.3


def test_quadratic_constants_are_exact():
    q = make_quadratic(5, 4, seed=0, h_min=0.5, h_max=2.0, spread=1.5, sigma2=0.7)
    assert q.L == 2.0
    cbar = q.c.mean(axis=0)
    np.testing.assert_allclose(q.cbar, cbar)
    # zeta^2 = (1/N) sum_i ||grad f_i(w) - grad F(w)||^2 at an arbitrary w (w-free)
    w = np.array([0.3, -1.0, 2.0, 0.1])
    gi = (w - q.c) * q.h
    np.testing.assert_allclose(q.zeta2, np.mean(np.sum((gi - gi.mean(0)) ** 2, axis=1)))
    np.testing.assert_allclose(q.grad_F(w), gi.mean(0))
    # F by its definition; F* = F(cbar) is the minimum; Delta = F(w0) - F*
    f = np.mean([0.5 * (w - ci) @ np.diag(q.h) @ (w - ci) for ci in q.c])
    np.testing.assert_allclose(q.F(w), f)
    assert q.F(q.cbar + 0.01) > q.F_star
    np.testing.assert_allclose(q.Delta, q.F(q.w0) - q.F(cbar))


def test_quadratic_noise_has_variance_sigma2_and_is_seeded():
    q = make_quadratic(3, 8, sigma2=2.5)
    xi = q.noise(1, 2, 0, 20000)
    assert xi.shape == (20000, 8) and xi.dtype == np.float32
    total_var = float(np.sum(xi.astype(np.float64).var(axis=0)))
    assert abs(total_var - 2.5) < 0.1  # E||xi||^2 = sigma^2
    assert np.array_equal(q.noise(1, 2, 0, 5), xi[:5])  # prefix property
    assert not np.array_equal(q.noise(1, 2, 1, 5), xi[:5])


def test_quadratic_model_per_sample_gradient_is_h_w_minus_c_plus_xi():
    q = make_quadratic(3, 4, seed=1)
    m = QuadraticModel(q)
    xi = q.noise(0, 0, 2, 3)
    losses = m(q.inputs(2, xi))
    assert losses.shape == (3,)
    (g,) = torch.autograd.grad(losses[1], m.w)
    expected = q.h * (q.w0 - q.c[2]) + xi[1]
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-5, atol=1e-6)
