"""The aggregation rules (lgc/rules.py; theory/DERIVATION.md section 3): weights, reductions, delay,
SGD."""
import numpy as np
import pytest
import torch

from lgc.rules import RuleState, ServerState, aggregate, group_weights, server_step


def test_group_weights_follow_the_definitions():
    fast = np.array([True, False, True, False, False])
    blocks = np.array([4, 0, 4, 2, 3])
    pi = np.array([0.1, 0.2, 0.3, 0.15, 0.25])
    w = group_weights(fast, blocks, pi)
    np.testing.assert_allclose(w.w_fast, [0.25, 0, 0.75, 0, 0])  # pi_i / sum_A pi
    assert w.rho == pytest.approx(0.4)  # stragglers with m_j >= 1: workers 3 and 4
    np.testing.assert_allclose(w.w_strag, [0, 0, 0, 0.375, 0.625])  # worker 1 finished nothing
    np.testing.assert_allclose(w.w_any, blocks / 13)


def test_no_reporting_straggler_gives_rho_zero_and_no_compensation():
    w = group_weights([True, True, False], [3, 3, 0], np.full(3, 1 / 3))
    assert w.rho == 0.0 and not w.w_strag.any()
    g = torch.tensor([1.0, -2.0])
    d, st = aggregate("lgc", {"fast": g}, w.rho, RuleState(u=torch.tensor([0.5, 0.5])))
    assert torch.equal(d, g + 0.5) and torch.equal(st.u, torch.zeros(2))


def test_compensated_direction_equals_full_gradient_when_sets_are_fixed():
    """gA + rho (gS - gA) = sum_i pi_i g_i when every straggler reports its full gradient."""
    torch.manual_seed(0)
    g = torch.randn(5, 7, dtype=torch.float64)
    pi = np.array([0.1, 0.2, 0.3, 0.15, 0.25])
    fast = np.array([True, False, True, False, True])
    w = group_weights(fast, [4, 2, 4, 1, 4], pi)
    gA = sum(float(w.w_fast[i]) * g[i] for i in range(5))
    gS = sum(float(w.w_strag[i]) * g[i] for i in range(5))
    full = sum(float(pi[i]) * g[i] for i in range(5))
    fresh, _ = aggregate("lgc-fresh", {"fast": gA, "strag": gS}, w.rho, RuleState())
    torch.testing.assert_close(fresh, full)
    # LGC applies the same correction one round late: with an unchanged gradient it is exact
    _, st = aggregate("lgc", {"fast": gA, "strag": gS}, w.rho, RuleState())
    d, _ = aggregate("lgc", {"fast": gA, "strag": gS}, w.rho, st)
    torch.testing.assert_close(d, full)


def test_lgc_applies_the_compensation_one_round_later():
    rho = 0.3
    rounds = [(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 1.0])), (torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])),
              (torch.tensor([5.0, 5.0]), None)]
    st = RuleState()
    ds = []
    for gA, gS in rounds:
        grads = {"fast": gA} if gS is None else {"fast": gA, "strag": gS}
        d, st = aggregate("lgc", grads, rho, st)
        ds.append(d)
    assert torch.equal(ds[0], rounds[0][0])  # u_{-1} = 0
    torch.testing.assert_close(ds[1], rounds[1][0] + rho * (rounds[0][1] - rounds[0][0]))
    torch.testing.assert_close(ds[2], rounds[2][0] + rho * (rounds[1][1] - rounds[1][0]))
    assert torch.equal(st.u, torch.zeros(2))  # round 2 had no straggler report


def test_warmup_is_full_sync_and_resets_the_state():
    g_all = torch.tensor([1.0, 2.0])
    for alg in ("fastest-k", "lgc", "lgc-fresh", "anytime-minibatch", "full-sync"):
        d, st = aggregate(alg, {"all": g_all, "fast": -g_all}, 0.3, RuleState(u=torch.ones(2)), warmup=True)
        assert torch.equal(d, g_all) and st.u is None
    with pytest.raises(ValueError, match="algorithm='sgd'"):
        aggregate("sgd", {"fast": g_all}, 0.0, RuleState())


@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.9, 0.0), (0.9, 5e-4)])
def test_server_step_equals_torch_sgd(momentum, wd):
    torch.manual_seed(1)
    w0 = torch.randn(6)
    ds = [torch.randn(6) for _ in range(4)]
    p = torch.nn.Parameter(w0.clone())
    opt = torch.optim.SGD([p], lr=0.1, momentum=momentum, weight_decay=wd)
    w, st = w0.clone(), ServerState()
    for d in ds:
        opt.zero_grad()
        p.grad = d.clone()
        opt.step()
        w, st = server_step(w, d, st, lr=0.1, momentum=momentum, weight_decay=wd)
    torch.testing.assert_close(w, p.detach(), rtol=1e-6, atol=1e-7)
    if momentum == 0.0 and wd == 0.0:
        torch.testing.assert_close(w, w0 - 0.1 * sum(ds))  # plain SGD, eq. 3.6


@pytest.mark.parametrize("algorithm", ["lgc", "lgc-fresh"])
def test_rho_per_row_tensor_equals_the_rule_row_by_row(algorithm):
    """A batch of runs (lgc.validate): one rho_t per row, a zero among them, gives bit for bit
    what each row gives with its rho_t as a float."""
    torch.manual_seed(2)
    g_fast, g_strag, u = (torch.randn(3, 4, dtype=torch.float64) for _ in range(3))
    rho = torch.tensor([0.25, 0.0, 0.6], dtype=torch.float64)
    grads = {"fast": g_fast, "strag": g_strag}
    d, st = aggregate(algorithm, grads, rho, RuleState(u=u))
    for r in range(3):
        d_r, st_r = aggregate(algorithm, {k: v[r] for k, v in grads.items()}, float(rho[r]), RuleState(u=u[r]))
        assert torch.equal(d[r], d_r)
        assert (st.u is None) == (st_r.u is None) and (st.u is None or torch.equal(st.u[r], st_r.u))
    if algorithm == "lgc":
        assert torch.equal(st.u[1], torch.zeros(4))  # rho_t = 0: no compensation carried
