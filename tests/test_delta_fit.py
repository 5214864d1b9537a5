"""theory/delta_fit.py and its measuring side (lgc/spectrum.py calibrate_delta, `lgc estimate --delta-split`):
Delta's split over the curvature bands fitted on the first full-sync steps (DERIVATION.md 8.3, eq. 8.10')."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from theory.delta_fit import MIN_R2, MIN_STEPS, SEEN, decay_columns, fit_delta_split, noise_term, nnls_sum

pytestmark = pytest.mark.usefixtures("one_thread")

H = np.array([4.0, 0.8, 0.2, 0.01])  # one curvature in each of 4 bands a factor 4 apart below L = 4
TRUE = np.array([1.0, 2.0, 3.0, 4.0])  # Delta_j
ETA, STEPS = 0.25, 20  # 1 / L, the trajectory's default length: bands 0-2 are seen, band 3 is not
WRONG = [0.1, 0.1, 0.1, 10.0]  # a spectrum split that puts nearly all of Delta in the slowest band


def _sgd_losses(delta, sig2, samples, steps, seed=0, dims=200):
    """F(w_t) of one run of SGD on a diagonal quadratic with `dims` coordinates per band of H, band j's error
    energy Delta_j and per-sample noise variance sig2_j (spread over its coordinates), batches of `samples`."""
    rng = np.random.default_rng(seed)
    h = np.repeat(H, dims)
    e = np.repeat(np.sqrt(2 * np.asarray(delta) / H / dims), dims) * rng.choice([-1.0, 1.0], h.size)
    sd = np.repeat(np.sqrt(np.asarray(sig2) / dims / samples), dims)
    out = []
    for _ in range(steps + 1):
        out.append(float((h / 2 * e**2).sum()))
        e = e - ETA * (h * e + sd * rng.standard_normal(h.size))
    return np.array(out)


def test_noiseless_steps_recover_the_split_exactly():
    """Gradient descent's losses are sum_j Delta_j r_j^t + F* exactly (eq. 8.10' without noise): the three seen bands
    are recovered and the one slow band holds the rest of Delta, whatever (8.10) said."""
    losses = _sgd_losses(TRUE, np.zeros(4), 1, STEPS) + 0.7  # F* = 0.7 plays no part
    s = fit_delta_split(losses, eta=ETA, h=H, spectrum=WRONG, sigma2_bands=np.zeros(4), samples=1, Delta=TRUE.sum())
    assert s.used == "fit" and s.seen == (True, True, True, False)
    np.testing.assert_allclose(s.delta, TRUE, rtol=1e-8)
    assert s.r2 == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(s.spectrum, np.array(WRONG) / sum(WRONG) * TRUE.sum())


def test_noisy_steps_recover_the_split_within_five_percent_of_delta():
    """One run of SGD whose step noise adds about 10% of Delta to the loss by step 20: with the noise term of
    (8.10') subtracted, every band's amount is within 0.05 Delta of the truth (5 seeds); without it, the fit
    misses by more (the noise term is what makes the noisy fit right)."""
    sig2, samples = np.full(4, 60.0), 16
    gap = noise_term(H, ETA, sig2, samples, STEPS)[-1]
    assert 0.05 * TRUE.sum() < gap < 0.2 * TRUE.sum()
    errs, errs_no_noise = [], []
    for seed in range(5):
        losses = _sgd_losses(TRUE, sig2, samples, STEPS, seed=seed)
        s = fit_delta_split(losses, eta=ETA, h=H, spectrum=WRONG, sigma2_bands=sig2, samples=samples, Delta=TRUE.sum())
        assert s.used == "fit"
        errs.append(np.abs(np.array(s.delta) - TRUE).max())
        naive = fit_delta_split(losses, eta=ETA, h=H, spectrum=WRONG, sigma2_bands=np.zeros(4), samples=samples,
                                Delta=TRUE.sum())
        errs_no_noise.append(np.abs(np.array(naive.fit) - TRUE).max())
    assert max(errs) < 0.05 * TRUE.sum(), errs
    assert np.mean(errs_no_noise) > 2 * np.mean(errs), (errs, errs_no_noise)


def test_the_slow_bands_share_their_amount_in_the_spectrum_proportions():
    """Two slow bands (0.01 and 0.004: neither loses SEEN of its error in 20 steps) get one amount, split as (8.10)
    splits them; the split still sums to Delta."""
    h = np.array([4.0, 0.8, 0.01, 0.004])
    true = np.array([1.0, 2.0, 3.0, 1.0])  # the slow bands' amounts in the proportions (8.10) gives them
    r = (1 - ETA * h) ** 2
    losses = (true[None] * r[None] ** np.arange(STEPS + 1)[:, None]).sum(1)
    spec = [5.0, 0.0, 3.0, 1.0]
    s = fit_delta_split(losses, eta=ETA, h=h, spectrum=spec, sigma2_bands=np.zeros(4), samples=1, Delta=true.sum())
    assert s.seen == (True, True, False, False) and s.used == "fit"
    np.testing.assert_allclose(s.delta, true, rtol=1e-6)
    assert s.delta[2] == pytest.approx(3 * s.delta[3], rel=1e-9)
    assert sum(s.delta) == pytest.approx(true.sum(), rel=1e-12)


@pytest.mark.parametrize("case", ["short", "no band seen", "flat curve", "no Delta", "asked for the spectrum"])
def test_the_fallback_to_the_spectrum_split(case):
    """(8.10) stands where the fit is not informative: fewer than MIN_STEPS steps; no band that the trajectory would
    bring down by SEEN (a tiny step); a curve the fit explains less than MIN_R2 of (pure noise around a constant);
    Delta = 0. And where the user asks for it, with the fit still recorded."""
    losses, eta, Delta = _sgd_losses(TRUE, np.zeros(4), 1, STEPS), ETA, TRUE.sum()
    if case == "short":
        losses = losses[:MIN_STEPS]
    elif case == "no band seen":
        eta = 1e-4
        assert decay_columns(H, eta, STEPS)[-1].max() < SEEN
    elif case == "flat curve":
        losses = 3.0 + 1e-3 * np.random.default_rng(1).standard_normal(STEPS + 1)
    elif case == "no Delta":
        Delta = 0.0
    prefer = "spectrum" if case == "asked for the spectrum" else "fit"
    s = fit_delta_split(losses, eta=eta, h=H, spectrum=WRONG, sigma2_bands=np.zeros(4), samples=1, Delta=Delta,
                        prefer=prefer)
    assert s.used == "spectrum" and s.delta == s.spectrum
    if case == "flat curve":
        assert s.r2 < MIN_R2 and "explains" in s.reason
    if case == "asked for the spectrum":
        np.testing.assert_allclose(s.fit, TRUE, rtol=1e-8)
    # the informative case, for contrast: the same call with the defaults fits
    ok = fit_delta_split(_sgd_losses(TRUE, np.zeros(4), 1, STEPS), eta=ETA, h=H, spectrum=WRONG,
                         sigma2_bands=np.zeros(4), samples=1, Delta=TRUE.sum())
    assert ok.used == "fit"


def test_nnls_with_a_fixed_sum_meets_its_optimality_conditions():
    """On random problems the exact enumeration returns x >= 0, sum x = total, and the KKT conditions: the gradient
    of ||C x - y||^2 plus the multiplier is 0 on the support and >= 0 off it."""
    rng = np.random.default_rng(3)
    for _ in range(30):
        C, y, total = rng.standard_normal((15, 4)), rng.standard_normal(15), float(rng.uniform(0.5, 3))
        x = nnls_sum(C, y, total)
        assert np.all(x >= 0) and x.sum() == pytest.approx(total, rel=1e-9)
        g = 2 * C.T @ (C @ x - y)
        on = x > 1e-10
        lam = -g[on].mean()
        np.testing.assert_allclose(g[on] + lam, 0, atol=1e-7)
        assert np.all(g[~on] + lam >= -1e-7)


# ----------------------------------------------------------------------------- the measuring side (lgc)
def _problem(seed=0, n=4, samples=64):
    """A diagonal quadratic with the curvatures H (10 coordinates each), every worker's optimum at 0, per-sample
    noise x_s in every coordinate: f_i(w) = mean_s [sum_k h_k w_k^2 / 2 + <x_s, w>]."""
    from lgc.estimate import EmpiricalProblem

    g = torch.Generator().manual_seed(seed)
    h = torch.tensor(np.repeat(H, 10))
    workers = [(0.3 * torch.randn(samples, h.numel(), generator=g, dtype=torch.float64),
                torch.zeros(samples, dtype=torch.long)) for _ in range(n)]

    def loss(w, xs, ys):
        return 0.5 * (h * w**2).sum() + xs @ w

    w0 = torch.tensor(np.repeat(np.sqrt(2 * TRUE / H / 10), 10)) * (1 - 2 * (torch.arange(h.numel()) % 2))
    return EmpiricalProblem(loss, workers, w0)


def test_estimate_calibrates_the_split_on_its_trajectory():
    """`estimate_constants` on a quadratic with known bands: its trajectory's losses (SGD at 1 / L, 20 steps) give a
    fit within 0.1 Delta per band of the exact split; the JSON keeps both splits, and "delta" is the one used."""
    from lgc.estimate import estimate_constants, full_loss

    prob = _problem()
    est = estimate_constants(prob, bootstrap=10, l_bootstrap=0, lbfgs_iters=50, bands=4, lanczos_steps=12)
    b = est.bands
    # the exact split about the problem's true optimum (the workers' noise means move it slightly off 0)
    w_star = torch.linalg.solve(torch.diag(torch.tensor(np.repeat(H, 10))),
                                -sum(float(p) * x.mean(0) for p, (x, _) in zip(prob.pi, prob.workers)))
    e0 = (prob.w0 - w_star).numpy()
    exact = np.array([(np.repeat(H, 10) / 2 * e0**2)[10 * j:10 * (j + 1)].sum() for j in range(4)])
    assert est.Delta == pytest.approx(exact.sum(), rel=1e-6)
    assert float(full_loss(prob, prob.w0)) - est.Delta == pytest.approx(float(full_loss(prob, w_star)), abs=1e-9)
    split = b["delta_split"]
    assert split["used"] == "fit" and b["delta"] == split["fit"] and len(split["losses"]) == 21
    np.testing.assert_allclose(split["fit"], exact, atol=0.1 * exact.sum())
    np.testing.assert_allclose(split["spectrum"], exact, rtol=1e-4)  # (8.10) is exact on a quadratic
    assert split["samples_per_step"] == pytest.approx(4 * 32)


def test_cli_table_shows_both_splits_and_the_choice(tmp_path, capsys):
    from lgc.cli import main

    out = tmp_path / "c.json"
    argv = ["estimate", "--dataset", "quadratic", "--workers", "4", "--quad-dim", "8", "--bootstrap", "10",
            "--l-bootstrap", "0", "--lbfgs-iters", "20", "--out", str(out), "--quiet"]
    assert main(argv + ["--delta-split", "spectrum"]) == 0
    text = capsys.readouterr().out
    assert "Delta split: spectrum (8.10)" in text and "uses spectrum" in text
    b = json.loads(out.read_text())["bands"]
    assert b["delta"] == b["delta_split"]["spectrum"] and b["delta_split"]["used"] == "spectrum"
    with pytest.raises(SystemExit) as exc:
        main(argv + ["--delta-split", "both"])
    assert exc.value.code == 2
    assert "--delta-split" in capsys.readouterr().err


def test_constants_refuse_a_malformed_delta_split():
    from theory.constants import validate_constants
    from theory.errors import TheoryInputError

    bands = {"h": [1.0, 0.1], "delta": [1.0, 1.0], "sigma2": [1.0, 1.0], "zeta2": [1.0, 1.0]}
    base = {"L": 1.0, "sigma2": 1.0, "zeta2": 1.0, "Delta": 2.0}
    validate_constants({**base, "bands": {**bands, "delta_split": {"used": "fit", "spectrum": [1.0, 1.0], "fit": None}}})
    with pytest.raises(TheoryInputError, match="delta_split"):
        validate_constants({**base, "bands": {**bands, "delta_split": {"used": "mean", "spectrum": [1.0, 1.0]}}})
