"""CUDA-only tests (`make test-gpu` on the device machine): the fused engine eager and compiled,
and the compiled two-pass engine, against an explicit per-worker loop on the GPU.

The loop (explicit_groups, tests/test_fused.py) backpropagates every worker's mean loss on its
own. float32 paths must agree to rtol 1e-5 (eager) or 1e-4 (compiled kernels reorder sums);
bf16 autocast paths are compared by relative error of the whole vector (bf16 has 8 bits)."""
import numpy as np
import pytest
import torch

from lgc.sim.fused import CompiledBatchedEngine, FusedEngine
from lgc.sim import Simulator
from lgc.sim.engines import BatchedEngine

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")]

from test_fused import N, ROUNDS, _round_batch, _sim_config, _workers, explicit_groups  # noqa: E402

PI = np.array([0.1, 0.3, 0.2, 0.15, 0.25])


def _on_cuda(name, channels_last=False):
    model, xs, ys = _workers(name)
    fmt = torch.channels_last if channels_last else torch.preserve_format
    model = model.cuda().to(memory_format=fmt)
    xs = [x.cuda().contiguous(memory_format=fmt) if x.dim() == 4 else x.cuda() for x in xs]
    return model, xs, [y.cuda() for y in ys]


def _batch_cuda(xs, ys, fast, blocks):
    batch = _round_batch([x.cpu() for x in xs], [y.cpu() for y in ys], fast, blocks, PI)
    return type(batch)(batch.x.cuda(), batch.y.cuda(), {g: w.cuda() for g, w in batch.weights.items()})


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture(autouse=True)
def _fp32_matmul():
    """No TF32: the float32 comparisons need full float32 products."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("name,mode,rtol", [("resnet18", "none", 1e-5), ("cnn", "none", 1e-5), ("mlp", "none", 1e-5),
                                            ("resnet18", "default", 1e-4), ("resnet18", "reduce-overhead", 1e-4)])
def test_fused_float32_on_cuda_equals_explicit_loop(name, mode, rtol):
    model, xs, ys = _on_cuda(name, channels_last=name != "mlp")
    engine = FusedEngine(compile=mode)
    for fast, blocks in ROUNDS:
        batch = _batch_cuda(xs, ys, fast, blocks)
        got, _ = engine.grads(model, batch)
        gA, gS = explicit_groups(model, xs, ys, fast, blocks, PI)
        scale = float(gA.abs().max())
        torch.testing.assert_close(got["fast"], gA, rtol=rtol, atol=rtol * scale)
        if gS is not None:
            torch.testing.assert_close(got["strag"], gS, rtol=rtol, atol=rtol * float(gS.abs().max()))
    assert engine.fused_rounds == 2


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_two_pass_engine_equals_explicit_loop(mode):
    model, xs, ys = _on_cuda("resnet18", channels_last=True)
    engine = CompiledBatchedEngine(compile=mode)
    fast, blocks = ROUNDS[0]
    got, _ = engine.grads(model, _batch_cuda(xs, ys, fast, blocks))
    gA, gS = explicit_groups(model, xs, ys, fast, blocks, PI)
    torch.testing.assert_close(got["fast"], gA, rtol=1e-4, atol=1e-4 * float(gA.abs().max()))
    torch.testing.assert_close(got["strag"], gS, rtol=1e-4, atol=1e-4 * float(gS.abs().max()))


@pytest.mark.parametrize("mode", ["none", "reduce-overhead"])
def test_fused_bf16_matches_two_pass_bf16_and_the_float32_loop(mode):
    """Under bf16 autocast the fused and two-pass engines round the same products the same way
    up to summation order; both stay within bf16 accuracy of the float32 loop."""
    model, xs, ys = _on_cuda("cnn", channels_last=True)  # see test_fused's bf16 test for why not the ResNet
    fast, blocks = ROUNDS[0]
    batch = _batch_cuda(xs, ys, fast, blocks)
    fused, _ = FusedEngine(amp=True, compile=mode).grads(model, batch)
    ref, _ = BatchedEngine(amp=True).grads(model, batch)
    gA, gS = explicit_groups(model, xs, ys, fast, blocks, PI)
    for g, exact in (("fast", gA), ("strag", gS)):
        assert _rel(fused[g], ref[g]) < 1e-2
        assert _rel(fused[g], exact) < 8e-2 and _rel(ref[g], exact) < 8e-2


def test_sim_run_fused_compiled_on_cuda_equals_batched_eager():
    cfg = dict(device="cuda", algorithm="lgc", augment=True)
    fused = Simulator(_sim_config("fused", compile="default", **cfg))
    ref = Simulator(_sim_config("batched", **cfg))
    for _ in range(6):
        fused.step(), ref.step()
    assert fused.engine.fused_rounds >= 2
    # bf16 autocast on CUDA in both: compare the update, not bit patterns
    w0 = Simulator(_sim_config("batched", **cfg)).w
    assert _rel(fused.w - w0, ref.w - w0) < 5e-2
