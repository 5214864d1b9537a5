"""delta, the Lipschitz constant of the dissimilarity grad f_i - grad F (A6 of theory/DERIVATION.md):
`lgc estimate` writes it (0 for shared-curvature quadratics, the exact value for least squares whose
workers have different Hessians), the constants JSON keeps it optional, optimize-k uses it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lgc.data.synthetic import make_quadratic
from lgc.estimate import EmpiricalProblem, estimate_constants, quadratic_problem
from theory.constants import Constants, read_constants, write_constants
from theory.errors import TheoryInputError

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = dict(bootstrap=10, l_bootstrap=0, power_iters=40, trajectory_steps=4, points=2, lbfgs_iters=30)


def test_shared_curvature_quadratic_has_delta_zero():
    quad = make_quadratic(4, 5, seed=0, h_min=0.2, h_max=2.0, spread=1.0, sigma2=1.0)
    est = estimate_constants(quadratic_problem(quad, samples_per_worker=200, seed=0), **FAST)
    assert est.delta is not None and est.delta <= 1e-6 * est.L


def test_least_squares_with_different_curvatures_gets_the_exact_delta():
    """f_i(w) = (1/2n) ||X_i w - y_i||^2 with H_i = X_i^T X_i / n: a_i is affine with Jacobian H_i - Hbar.
    Two workers: H_1 - Hbar = -(H_2 - Hbar), so both have the same operator norm, the exact delta."""
    g = torch.Generator().manual_seed(0)
    workers = []
    for scale in (torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.3, 1.0, 1.5])):
        x = torch.randn(300, 3, generator=g, dtype=torch.float64) * scale
        workers.append((x, x @ torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64) + torch.randn(300, generator=g, dtype=torch.float64)))
    problem = EmpiricalProblem(lambda w, x, y: 0.5 * (x @ w - y) ** 2, workers, torch.zeros(3, dtype=torch.float64),
                               name="lsq")
    hs = [x.T @ x / len(x) for x, _ in workers]
    exact = float(torch.linalg.matrix_norm(hs[0] - (hs[0] + hs[1]) / 2, ord=2))
    est = estimate_constants(problem, **FAST)
    assert est.delta == pytest.approx(exact, rel=1e-3)
    assert est.delta < est.L


def test_constants_json_delta_is_optional_and_round_trips(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"L": 1.0, "sigma2": 1.0, "zeta2": 0.1, "Delta": 2.0, "format": 1}))
    assert read_constants(old).delta is None
    write_constants(tmp_path / "no_delta.json", Constants(L=1.0, sigma2=1.0, zeta2=0.1, Delta=2.0))
    assert "delta" not in json.loads((tmp_path / "no_delta.json").read_text())
    write_constants(tmp_path / "new.json", Constants(L=1.0, sigma2=1.0, zeta2=0.1, Delta=2.0, delta=0.25))
    assert read_constants(tmp_path / "new.json").delta == 0.25
    with pytest.raises(TheoryInputError, match="delta=-1"):
        Constants(L=1.0, sigma2=1.0, zeta2=0.1, Delta=2.0, delta=-1.0)


def test_optimize_k_uses_delta_from_the_file_and_the_flag(tmp_path, capsys):
    """Fixed per-worker times (sets never change): delta = 0 removes lgc's set staleness (eq. 4.15'): the bound at every K is no larger, and
    smaller somewhere, than with delta = L (the default when the file has none)."""
    from lgc.cli import main

    def bounds(*extra):
        rc = main(["optimize-k", "--workers", "8", "--blocks", "2", "--batch-size", "10", "--budget", "400",
                   "--algorithm", "lgc", "--eta", "0.3", "--timing", "deterministic", "--json", *extra])
        assert rc == 0
        return np.array([r["bound"] for r in json.loads(capsys.readouterr().out)["rows"]])

    f = tmp_path / "c.json"
    write_constants(f, Constants(L=1.0, sigma2=1.0, zeta2=2.0, Delta=2.0, delta=0.0))
    with_file = bounds("--constants", str(f))
    without = bounds("--L", "1", "--sigma2", "1", "--zeta2", "2", "--Delta", "2")
    with_flag = bounds("--L", "1", "--sigma2", "1", "--zeta2", "2", "--Delta", "2", "--delta", "0")
    assert np.allclose(with_file, with_flag)
    assert np.all(with_file <= without * (1 + 1e-12)) and np.any(with_file < without * 0.999)
