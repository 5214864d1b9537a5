"""lgc.estimate: L, sigma^2, zeta^2, Delta land near the exact constants of the quadratics;
the building blocks agree with explicit computations; the CLI reports bad input in one line."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lgc.data.synthetic import make_quadratic
from lgc.estimate import (
    EmpiricalProblem, estimate_constants, gradient_moments, problem_from_model, quadratic_problem,
    top_hessian_eigenvalue, worker_loss,
)


@pytest.fixture(scope="module")
def quad_estimate():
    quad = make_quadratic(6, 8, seed=3, h_min=0.2, h_max=2.0, spread=1.0, sigma2=2.0)
    problem = quadratic_problem(quad, samples_per_worker=1500, seed=1)
    return quad, estimate_constants(problem, bootstrap=60, l_bootstrap=5, seed=0)


def test_quadratic_estimates_land_near_the_exact_constants(quad_estimate):
    quad, est = quad_estimate
    exact = quad.constants()
    # L: power iteration on the exact Hessian H (eigenvalues 0.2..2.0, gap 0.26): 1%
    assert est.L == pytest.approx(exact["L"], rel=0.01)
    # sigma^2: max over 6 workers x 3 points of a variance from 1500 samples in d=8
    # (relative sd per worker sqrt(2/(d n)) = 1.3%): within 8%, and not below the truth by > 3%
    assert est.sigma2 == pytest.approx(exact["sigma2"], rel=0.08)
    assert est.sigma2 > 0.97 * exact["sigma2"]
    # zeta^2: w-free for the quadratics; the sample noise adds only sigma^2/n per worker
    assert est.zeta2 == pytest.approx(exact["zeta2"], rel=0.05)
    # Delta: L-BFGS reaches the empirical minimum; the noise term xi^T w moves F by O(1/sqrt(n))
    assert est.Delta == pytest.approx(exact["Delta"], rel=0.03)


def test_gram_is_the_workers_deviations_gram_matrix(quad_estimate):
    """A4G (theory/DERIVATION.md 4.7): one Gram matrix per trajectory point; with a shared Hessian a_i = H (cbar - c_i)
    is w-free, so each is the exact G = A A^T up to the sample noise, and tr G / N is the zeta^2 of that point."""
    quad, est = quad_estimate
    a = (np.asarray(quad.c).mean(0)[None] - np.asarray(quad.c)) * np.asarray(quad.h)[None]
    exact = a @ a.T
    assert len(est.gram) == len(est.source["trajectory"]["points"])
    for g in est.gram:
        g = np.asarray(g)
        assert g.shape == (6, 6) and np.allclose(g, g.T)
        assert np.abs(g - exact).max() < 0.05 * np.abs(exact).max()
    assert max(np.trace(np.asarray(g)) / 6 for g in est.gram) == pytest.approx(est.zeta2, rel=0.01)


def test_intervals_are_ordered_and_contain_the_estimates(quad_estimate):
    _, est = quad_estimate
    for k in ("sigma2", "zeta2", "Delta"):
        lo, hi = est.intervals[k]
        assert lo < getattr(est, k) < hi, (k, lo, hi)
    lo, hi = est.intervals["L"]
    assert lo <= hi and hi - lo < 1e-3 * est.L  # the quadratics' Hessian does not depend on the data
    assert est.source["L_secant"] <= est.L * (1 + 1e-6)  # a secant never exceeds the top curvature
    points = est.source["by_point"]  # each constant is the largest over the trajectory points
    assert [bp["step"] for bp in points] == est.source["trajectory"]["points"] and len(points) == 3
    assert est.sigma2 == max(bp["sigma2"] for bp in points) and est.zeta2 == max(bp["zeta2"] for bp in points)
    assert est.L >= max(bp["L"] for bp in points)


def _softmax_problem(n_workers=3, n=40, dim=5, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(dim, classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    workers = [(torch.randn(n, dim, generator=gen) + i, torch.randint(classes, (n,), generator=gen))
               for i in range(n_workers)]
    return model, workers, problem_from_model(model, workers, name="softmax")


def test_power_iteration_matches_the_explicit_hessian():
    model, workers, problem = _softmax_problem()
    f = lambda w: worker_loss(problem, w, 1)  # noqa: E731
    hess = torch.autograd.functional.hessian(f, problem.w0.double().float())
    exact = float(torch.linalg.eigvalsh(hess.double()).abs().max())
    lam, v = top_hessian_eigenvalue(f, problem.w0, iters=500, tol=1e-9)
    assert lam == pytest.approx(exact, rel=1e-3)
    assert float((hess @ v - lam * v).norm()) < 1e-2 * lam


def test_gradient_moments_equal_an_explicit_per_sample_loop():
    model, workers, problem = _softmax_problem()
    x, y = workers[2]
    grads = []
    for s in range(len(x)):  # one backward per sample, through the nn.Module itself
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[s:s + 1]), y[s:s + 1]).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    g = torch.stack(grads)
    counts = torch.ones(2, len(x), dtype=torch.long)
    counts[1] = 0
    counts[1, :4] = 10  # a "bootstrap" replicate: 4 samples, 10 times each
    means, second = gradient_moments(problem, problem.w0, 2, counts, chunk=7)
    torch.testing.assert_close(means[0], g.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second[0], (g * g).sum(1).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(means[1], g[:4].sum(0) * 10 / len(x), rtol=1e-5, atol=1e-6)


def test_problem_rejects_bad_weights():
    from lgc.errors import UserError

    _, workers, problem = _softmax_problem()
    with pytest.raises(UserError, match="pi must be N=3"):
        EmpiricalProblem(problem.per_sample_loss, workers, problem.w0, pi=np.array([0.5, 0.5, 0.5]))


def test_cli_estimate_writes_the_constants_json(tmp_path, capsys):
    from lgc.cli import main

    out = tmp_path / "constants.json"
    rc = main(["estimate", "--dataset", "quadratic", "--workers", "4", "--quad-dim", "6", "--samples-per-worker",
               "400", "--bootstrap", "20", "--out", str(out), "--json"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == data
    for k in ("L", "sigma2", "zeta2", "Delta"):
        assert data[k] > 0 and len(data["intervals"][k]) == 2
        assert data[k] == pytest.approx(data["source"]["exact"][k], rel=0.1)


@pytest.mark.parametrize("argv, needle", [
    (["--workers", "0"], "N=0"),
    (["--model", "transformer"], "transformer"),
    (["--partition", "random"], "random"),
    (["--bootstrap", "3"], "--bootstrap 3"),
    (["--dataset", "cifar10"], "--data-dir"),
    (["--checkpoint", "/nonexistent/w.pt"], "/nonexistent/w.pt"),
])
def test_cli_estimate_bad_input_is_one_line_and_exit_2(argv, needle, tmp_path, capsys):
    from lgc.cli import main

    rc = main(["estimate", "--samples-per-worker", "20", "--workers", "2", *argv, "--out", str(tmp_path / "c.json")])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c.json").exists()


def test_pipeline_softmax_estimate_then_optimize_k(tmp_path, capsys):
    """Data -> constants -> recommended K -> training with it: `lgc estimate` on a softmax
    model over a main-label split writes constants that `lgc optimize-k --constants` reads,
    and `lgc train` runs the same configuration with the recommended K (all via lgc.cli.main)."""
    from lgc.cli import main

    out = tmp_path / "constants.json"
    rc = main(["estimate", "--dataset", "synthetic", "--model", "softmax", "--partition", "main-label",
               "--workers", "4", "--classes-per-worker", "2", "--samples-per-worker", "60", "--bootstrap", "20",
               "--power-iters", "10", "--l-bootstrap", "3", "--trajectory-steps", "4", "--lbfgs-iters", "20",
               "--out", str(out)])
    assert rc == 0
    est = json.loads(out.read_text())
    assert est["source"]["model"] == "softmax" and est["source"]["samples_per_worker"] == [60] * 4
    assert est["zeta2"] > 0 and est["Delta"] > 0  # a non-IID split from a random start
    capsys.readouterr()
    rc = main(["optimize-k", "--workers", "4", "--blocks", "2", "--batch-size", "10", "--constants", str(out), "--budget", "200",
               "--algorithm", "lgc", "--json"])
    assert rc == 0
    table = json.loads(capsys.readouterr().out)
    assert table["constants"] == {k: est[k] for k in ("L", "sigma2", "zeta2", "Delta", "delta")}
    assert len(est["gram"][0]) == 4 and table["dissimilarity"].startswith("Gram forms")  # A4G used when measured
    k_star = table["k_star"]
    assert 1 <= k_star <= 4 and [r["K"] for r in table["rows"]] == [1, 2, 3, 4]
    run = {**est["source"]["train_config"], "threshold_k": k_star, "batch_size": 10, "blocks": 2, "rounds": 3,
           "eval_every": 0}
    (tmp_path / "run.json").write_text(json.dumps(run))
    rc = main(["train", "--config", str(tmp_path / "run.json"), "--results", str(tmp_path / "results"),
               "--quiet", "--json"])
    assert rc == 0
    rounds = (next((tmp_path / "results").rglob("rounds.csv"))).read_text().splitlines()
    assert len(rounds) == 1 + 3 and json.loads((next((tmp_path / "results").rglob("config.json"))).read_text())[
        "threshold_k"] == k_star


def test_cli_estimate_config_estimates_the_training_runs_problem(tmp_path):
    """--config FILE: the same TrainConfig JSON `lgc train --config` reads, flags over it as in
    `lgc train`; the estimate's F(w_0) is the pi-weighted initial training loss of that run's
    workers and weights."""
    from lgc.cli import main
    from lgc.config import TrainConfig
    from lgc.task import make_task

    cfg = TrainConfig(dataset="synthetic", model="softmax", n_workers=3, threshold_k=2, partition="main-label",
                      classes_per_worker=2, samples_per_worker=40, seed=5, synthetic_train=2000, device="cpu")
    (tmp_path / "run.json").write_text(json.dumps(cfg.to_dict()))
    out = tmp_path / "c.json"
    assert main(["estimate", "--config", str(tmp_path / "run.json"), "--samples-per-worker", "30", "--bootstrap", "10",
                 "--power-iters", "5", "--l-bootstrap", "0", "--trajectory-steps", "2", "--lbfgs-iters", "5",
                 "--out", str(out)]) == 0
    est = json.loads(out.read_text())
    assert est["source"]["workers"] == 3 and est["source"]["samples_per_worker"] == [30, 30, 30]  # the flag wins
    assert est["source"]["train_config"]["threshold_k"] == 2  # the file's K (no --workers given)
    cfg = dataclasses.replace(cfg, samples_per_worker=30)
    task = make_task(cfg.resolved(), torch.device("cpu"))
    with torch.no_grad():
        f0 = sum(p * float(torch.nn.functional.cross_entropy(task.model(task.ds.normalize(task.ds.x_train[idx])),
                                                             task.ds.y_train[idx]))
                 for p, idx in zip(task.pi, (torch.from_numpy(part) for part in task.parts)))
    assert est["source"]["F_w0"] == pytest.approx(f0, rel=1e-5)


def test_torch_threads_scope_sets_and_restores():
    from lgc.threads import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_a_model_that_cannot_take_one_sample_is_a_user_error():
    """Per-sample gradients run the model on one sample; GroupNorm over a single value per
    group cannot, and the message says so in one line (not a traceback from deep inside)."""
    from lgc.errors import UserError

    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Unflatten(1, (4, 1)), torch.nn.GroupNorm(4, 4),
                                torch.nn.Flatten())
    workers = [(torch.randn(6, 5), torch.randint(4, (6,)))]
    with pytest.raises(UserError, match=r"cannot evaluate a single sample of shape \(5,\)"):
        problem_from_model(model, workers, name="gn")
