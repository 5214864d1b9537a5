"""The fused gradient engine (lgc/sim/fused.py) against the two-pass engine and an explicit
per-worker loop written here, independently: every worker's mean gradient by its own backward,
combined by theory/DERIVATION.md eq. (3.2) (gA = sum_A pi_i g_i / sum_A pi,
gS = sum_j pi_j gp_j / rho)."""
import numpy as np
import pytest
import torch
from torch import nn

from lgc.config import TrainConfig
from lgc.errors import UserError
from lgc.sim.fused import FusedEngine, split_model
from lgc.models import make_model
from lgc.sim import Simulator
from lgc.protocol import round_plan
from lgc.sim.engines import BatchedEngine, RoundBatch, sample_weights

N, K, B, M = 5, 2, 6, 3
b = B // M
SHAPES = {"resnet18": (3, 16, 16), "cnn": (3, 8, 8), "mlp": (3, 4, 4)}
WIDTHS = {"resnet18": 4, "cnn": 4, "mlp": 16}
# (fast set, blocks): stragglers with 0, some (1) and M-1 (2) blocks; and none reporting
ROUNDS = [((0, 3), (3, 0, 2, 3, 1)), ((1, 2), (2, 3, 3, 0, 2)), ((3, 4), (0, 0, 0, 3, 3))]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _workers(name, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(B, *SHAPES[name], generator=g) for _ in range(N)]
    ys = [torch.randint(0, 10, (B,), generator=g) for _ in range(N)]
    torch.manual_seed(seed)
    model = make_model(name, 10, SHAPES[name], width=WIDTHS[name])
    return model, xs, ys


def explicit_groups(model, xs, ys, fast, blocks, pi):
    """gA and gS worker by worker (None when no straggler finished a block)."""
    params = list(model.parameters())

    def mean_grad(x, y):
        loss = nn.functional.cross_entropy(model(x), y)
        return torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)])

    pa = sum(pi[i] for i in fast)
    gA = sum(pi[i] / pa * mean_grad(xs[i], ys[i]) for i in fast)
    strag = [j for j in range(N) if j not in fast and blocks[j] >= 1]
    rho = sum(pi[j] for j in strag)
    gS = sum(pi[j] / rho * mean_grad(xs[j][: blocks[j] * b], ys[j][: blocks[j] * b]) for j in strag) if strag else None
    return gA, gS


def _round_batch(xs, ys, fast, blocks, pi):
    mask = np.isin(np.arange(N), fast)
    plan = round_plan("lgc", mask, blocks, pi, B, b, warmup=False)
    x = torch.cat([xs[i][:n] for i, n in enumerate(plan.counts)])
    y = torch.cat([ys[i][:n] for i, n in enumerate(plan.counts)])
    return RoundBatch(x, y, sample_weights(plan, "cpu"))


def _close(actual, expected):
    """float32 rtol 1e-5, with an absolute floor relative to the gradient's scale."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("name", ["resnet18", "cnn", "mlp"])
def test_fused_equals_two_pass_and_explicit_loop(name):
    model, xs, ys = _workers(name)
    pi = np.array([0.1, 0.3, 0.2, 0.15, 0.25])  # non-uniform, so weights are not all equal
    engine = FusedEngine()
    for fast, blocks in ROUNDS:
        batch = _round_batch(xs, ys, fast, blocks, pi)
        fused, loss_f = engine.grads(model, batch)
        two_pass, loss_b = BatchedEngine().grads(model, batch)
        gA, gS = explicit_groups(model, xs, ys, fast, blocks, pi)
        assert set(fused) == set(two_pass)
        _close(fused["fast"], gA)
        _close(fused["fast"], two_pass["fast"])
        if gS is None:
            assert "strag" not in fused
        else:
            _close(fused["strag"], gS)
            _close(fused["strag"], two_pass["strag"])
            assert (gS - gA).abs().max() > 1e-3 * gA.abs().max()  # the groups differ: not vacuous
        assert loss_f == pytest.approx(loss_b, rel=1e-5)
    assert engine.fused_rounds == 2  # the rounds with stragglers went through the split layers


@pytest.mark.parametrize("chunk", [1, 5, 7])
def test_chunked_passes_equal_the_explicit_loop(chunk):
    """Rows in passes of `chunk` (the CPU default): spans of fast rows only, of straggler rows
    only and across the boundary all add up to the groups' gradients."""
    model, xs, ys = _workers("cnn", seed=2)
    pi = np.array([0.1, 0.3, 0.2, 0.15, 0.25])
    engine = FusedEngine(chunk=chunk)
    for fast, blocks in ROUNDS:
        batch = _round_batch(xs, ys, fast, blocks, pi)
        got, loss = engine.grads(model, batch)
        gA, gS = explicit_groups(model, xs, ys, fast, blocks, pi)
        _close(got["fast"], gA)
        if gS is not None:
            _close(got["strag"], gS)
        assert loss == pytest.approx(BatchedEngine().grads(model, batch)[1], rel=1e-5)
    assert engine.fused_rounds == (2 if chunk > 1 else 0)  # 12 fast rows: a 5- or 7-row pass straddles them
    with pytest.raises(UserError, match="chunk=0"):
        FusedEngine(chunk=0)


def test_single_group_rounds_equal_two_pass():
    """Warm-up / full-sync ("all") and anytime-minibatch ("any") need one weighted backward."""
    model, xs, ys = _workers("cnn", seed=1)
    pi = np.full(N, 1 / N)
    for algorithm, warm in (("lgc", True), ("anytime-minibatch", False)):
        plan = round_plan(algorithm, np.zeros(N, bool), (1, 3, 0, 2, 3), pi, B, b, warmup=warm)
        x = torch.cat([xs[i][:n] for i, n in enumerate(plan.counts)])
        y = torch.cat([ys[i][:n] for i, n in enumerate(plan.counts)])
        batch = RoundBatch(x, y, sample_weights(plan, "cpu"))
        fused, _ = FusedEngine().grads(model, batch)
        ref, _ = BatchedEngine().grads(model, batch)
        (g,) = fused
        _close(fused[g], ref[g])


def _sim_config(engine, **kw):
    base = dict(algorithm="lgc", n_workers=N, threshold_k=K, batch_size=B, blocks=M, rounds=6, warmup_rounds=1,
                lr=0.1, momentum=0.9, weight_decay=1e-3, dataset="synthetic", synthetic_train=300, synthetic_test=30,
                model="cnn", width=4, partition="main-label", classes_per_worker=3, samples_per_worker=30,
                augment=True, seed=5, eval_every=0, device="cpu", engine=engine)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("algorithm", ["lgc", "lgc-fresh"])
def test_sim_run_with_fused_engine_ends_at_the_same_parameters(algorithm):
    fused = Simulator(_sim_config("fused", algorithm=algorithm))
    ref = Simulator(_sim_config("batched", algorithm=algorithm))
    w0 = ref.w.clone()
    for _ in range(6):
        rf, rb = fused.step(), ref.step()
        assert rf["samples"] == rb["samples"] and rf["time"] == rb["time"]
    assert isinstance(fused.engine, FusedEngine) and fused.engine.fused_rounds >= 2
    torch.testing.assert_close(fused.w, ref.w, rtol=1e-5, atol=1e-6)
    assert (ref.w - w0).abs().max() > 1e-3  # it trained


def test_fused_refuses_layers_it_cannot_split():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(UserError, match=r"'1' \(BatchNorm2d\).*engine=batched"):
        split_model(model)
    with pytest.raises(UserError, match="engine=fused needs GroupNorm models"):
        _sim_config("fused", norm="batch").validate()
    with pytest.raises(UserError, match="compile='fast' must be one of"):
        _sim_config("fused", compile="fast").validate()


def test_split_model_keeps_parameter_order_and_shares_nothing():
    model, _, _ = _workers("resnet18")
    shadow, slots = split_model(model)
    names = [n for n, _ in model.named_parameters()]
    assert [a for a, _ in slots] == [n + "_a" for n in names]
    assert all(p.device.type == "meta" for p in shadow.parameters())  # placeholders only: no copy


def test_bf16_autocast_path_matches_two_pass_within_bf16_accuracy():
    """amp=True (bf16 products, as on CUDA) exercised on the CPU's autocast: the fused engine
    rounds like the two-pass engine and both stay within bf16 accuracy of the float32 loop.
    (The CNN: the width-4 ResNet's one-channel GroupNorm groups on random images amplify bf16
    rounding to tens of percent in both engines alike, so no tolerance would test anything.)"""
    model, xs, ys = _workers("cnn", seed=2)
    pi = np.full(N, 1 / N)
    fast, blocks = ROUNDS[0]
    batch = _round_batch(xs, ys, fast, blocks, pi)
    fused, _ = FusedEngine(amp=True).grads(model, batch)
    ref, _ = BatchedEngine(amp=True).grads(model, batch)
    gA, gS = explicit_groups(model, xs, ys, fast, blocks, pi)
    rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
    for g, exact in (("fast", gA), ("strag", gS)):
        assert rel(fused[g], ref[g]) < 1e-2
        assert rel(fused[g], exact) < 8e-2 and rel(ref[g], exact) < 8e-2
        assert rel(fused[g], exact) > 1e-4  # bf16 really was used
