"""The fused gradient engine: gA_t and gS_t from ONE forward and ONE input-gradient backward.

The fast workers' samples and the stragglers' finished samples need different parameter
gradients (weights w_fast[i]/B and w_strag[j]/(m_j b), DERIVATION.md (3.2)), but each
sample's backward signal is the same in both: with disjoint supports, the gradient of
sum_s c_s loss_s (c_s = the sample's one non-zero group weight) w.r.t. a layer's output,
restricted to a group's rows, is exactly that group's signal, because samples are treated
independently (GroupNorm). So the engine runs the model once over the union, with the rows
sorted fast-first, and only the weight-gradient contraction of each Conv2d / Linear /
GroupNorm-affine layer is split into rows [:n_A] and [n_A:] (docs/GPU.md, the H100 basis). The two-pass
`BatchedEngine` does the whole backward once per group instead.

    engine = FusedEngine(amp=True, compile="reduce-overhead")
    grads, loss = engine.grads(model, RoundBatch(x, y, weights))   # same contract as BatchedEngine

Each split layer gets two parameter leaves (the group's "copy" of the same weights, sharing
storage), passed through torch.func.functional_call so that the whole pass can be compiled.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from lgc.config import COMPILE_MODES
from lgc.errors import UserError
from lgc.sim.engines import GROUPS, BatchedEngine, RoundBatch
from lgc.task import per_sample_loss

SPLIT_TYPES = (nn.Conv2d, nn.Linear, nn.GroupNorm)
# rows per pass on a CPU: a round's union in one pass streams activations of many MB through
# memory; passes that stay in cache are faster. Small CNN, one thread, channels_last, the CPU
# profile's lgc round (about 430 rows): 0.40 s a round in passes of 64 rows, 0.51 s in passes of 256
# (and `make bench`'s per-worker loop, passes of one worker's 43 rows, beat one 431-row pass 1.9x)
CPU_CHUNK_ROWS = 64


# ----------------------------------------------------------------------------- mixed precision
def _cast(dtype, *ts):
    """The tensors in the compute dtype (unchanged when it is None; None stays None)."""
    return tuple(t if t is None or dtype is None else t.to(dtype) for t in ts)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last when x is (the convolution kernels want grad_output laid out like x)."""
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


def _row_sum(t: torch.Tensor, keep: int = 1) -> torch.Tensor:
    """Sum over every dim except `keep` (per-channel reduction over samples and positions)."""
    return t.sum(dim=[d for d in range(t.dim()) if d != keep])


# ----------------------------------------------------------------------------- split layers
class _SplitLinear(torch.autograd.Function):
    """y = x W^T + b; backward: dx over all rows, dW and db per group of rows."""

    @staticmethod
    def forward(ctx, x, n_a, w_a, w_s, b_a, b_s, dtype):
        xc, wc, bc = _cast(dtype, x, w_a, b_a)
        with torch.autocast(x.device.type, enabled=False):
            y = F.linear(xc, wc, bc)
        ctx.save_for_backward(xc, wc)
        ctx.n_a, ctx.has_bias, ctx.x_dtype, ctx.w_dtype = n_a, b_a is not None, x.dtype, w_a.dtype
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        n = ctx.n_a
        gy = gy.to(x.dtype)
        gx = (gy @ w).to(ctx.x_dtype) if ctx.needs_input_grad[0] else None
        g2, x2 = gy.reshape(gy.shape[0], -1, gy.shape[-1]), x.reshape(x.shape[0], -1, x.shape[-1])
        gw_a = torch.einsum("sko,ski->oi", g2[:n], x2[:n]).to(ctx.w_dtype)
        gw_s = torch.einsum("sko,ski->oi", g2[n:], x2[n:]).to(ctx.w_dtype)
        gb_a = gb_s = None
        if ctx.has_bias:
            gb_a, gb_s = g2[:n].sum(dim=(0, 1)).to(ctx.w_dtype), g2[n:].sum(dim=(0, 1)).to(ctx.w_dtype)
        return gx, None, gw_a, gw_s, gb_a, gb_s, None


class _SplitConv2d(torch.autograd.Function):
    """y = conv2d(x, W) + b; backward: one input-gradient convolution over all rows, the weight
    gradient (aten.convolution_backward, as autograd itself uses) per group of rows."""

    @staticmethod
    def forward(ctx, x, n_a, w_a, w_s, b_a, b_s, dtype, stride, padding, dilation, groups):
        xc, wc, bc = _cast(dtype, x, w_a, b_a)
        with torch.autocast(x.device.type, enabled=False):
            y = F.conv2d(xc, wc, bc, stride, padding, dilation, groups)
        ctx.save_for_backward(xc, wc)
        ctx.conf = (list(stride), list(padding), list(dilation), groups)
        ctx.n_a, ctx.has_bias, ctx.x_dtype, ctx.w_dtype = n_a, b_a is not None, x.dtype, w_a.dtype
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        n = ctx.n_a
        gy = gy.to(x.dtype).contiguous(memory_format=_memory_format(x))
        conv_bwd = torch.ops.aten.convolution_backward
        gx = None
        if ctx.needs_input_grad[0]:  # not for the stem: the images need no gradient
            gx = conv_bwd(gy, x, w, None, stride, padding, dilation, False, [0, 0], groups,
                          [True, False, False])[0].to(ctx.x_dtype)
        bias = [w.shape[0]] if ctx.has_bias else None
        mask = [False, True, ctx.has_bias]
        _, gw_a, gb_a = conv_bwd(gy[:n], x[:n], w, bias, stride, padding, dilation, False, [0, 0], groups, mask)
        _, gw_s, gb_s = conv_bwd(gy[n:], x[n:], w, bias, stride, padding, dilation, False, [0, 0], groups, mask)
        cast = lambda t: None if t is None else t.to(ctx.w_dtype)  # noqa: E731
        return gx, None, cast(gw_a), cast(gw_s), cast(gb_a), cast(gb_s), None, None, None, None, None


class _SplitAffine(torch.autograd.Function):
    """GroupNorm's affine part y = xhat * gamma + beta (per channel, dim 1), split by rows."""

    @staticmethod
    def forward(ctx, xhat, n_a, w_a, w_s, b_a, b_s):
        shape = [1, -1] + [1] * (xhat.dim() - 2)
        y = xhat * w_a.view(shape) + b_a.view(shape)
        ctx.save_for_backward(xhat, w_a)
        ctx.n_a, ctx.shape = n_a, shape
        return y

    @staticmethod
    def backward(ctx, gy):
        xhat, w = ctx.saved_tensors
        n = ctx.n_a
        gx = gy * w.view(ctx.shape).to(gy.dtype)
        gxh = gy * xhat
        return (gx, None, _row_sum(gxh[:n]).to(w.dtype), _row_sum(gxh[n:]).to(w.dtype),
                _row_sum(gy[:n]).to(w.dtype), _row_sum(gy[n:]).to(w.dtype))


class SplitLayer(nn.Module):
    """Stands in for one Conv2d / Linear / GroupNorm of the model: same hyper-parameters, two
    parameter slots per tensor (weight_a, weight_s, bias_a, bias_s) that functional_call fills
    with the fast and straggler leaves; `n_a` is the number of fast rows (set per call)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.kind = type(layer)
        self.n_a = 0
        self.dtype = None  # compute dtype of conv / linear products (bf16 under amp), set by the engine
        for name in ("weight", "bias"):
            p = getattr(layer, name, None)
            for g in ("a", "s"):  # placeholders only: every call substitutes real tensors
                self.register_parameter(f"{name}_{g}", None if p is None else
                                        nn.Parameter(torch.empty(p.shape, device="meta"), requires_grad=False))
        if isinstance(layer, nn.Conv2d):
            self.conf = (layer.stride, layer.padding, layer.dilation, layer.groups)
        elif isinstance(layer, nn.GroupNorm):
            self.conf = (layer.num_groups, layer.eps)

    def forward(self, x):
        n = self.n_a
        if issubclass(self.kind, nn.Conv2d):
            return _SplitConv2d.apply(x, n, self.weight_a, self.weight_s, self.bias_a, self.bias_s, self.dtype,
                                      *self.conf)
        if issubclass(self.kind, nn.Linear):
            return _SplitLinear.apply(x, n, self.weight_a, self.weight_s, self.bias_a, self.bias_s, self.dtype)
        num_groups, eps = self.conf
        # unit affine instead of None: torch 2.13's CPU float32 group_norm without a weight
        # returns twice the input gradient (found by tests/test_fused.py)
        ones = torch.ones(x.shape[1], device=x.device, dtype=x.dtype)
        xhat = F.group_norm(x, num_groups, ones, torch.zeros_like(ones), eps)
        return _SplitAffine.apply(xhat, n, self.weight_a, self.weight_s, self.bias_a, self.bias_s)


def split_model(model: nn.Module) -> tuple[nn.Module, list[tuple[str, str]]]:
    """A copy of `model`'s structure with every Conv2d / Linear / GroupNorm replaced by a
    SplitLayer, and for each trainable parameter (model.parameters() order) the names of its
    fast and straggler slots. UserError for a layer the fused engine cannot split."""
    slots: dict[str, tuple[str, str]] = {}
    for name, mod in model.named_modules():
        own = [(n, p) for n, p in mod.named_parameters(recurse=False)]
        if not own:
            continue
        ok = isinstance(mod, SPLIT_TYPES) and (not isinstance(mod, nn.Conv2d) or (
            mod.padding_mode == "zeros" and not isinstance(mod.padding, str) and mod.kernel_size and len(mod.kernel_size) == 2))
        ok = ok and (not isinstance(mod, nn.GroupNorm) or mod.affine)
        if not ok:
            raise UserError(f"engine=fused cannot split layer {name or 'model'!r} ({type(mod).__name__}); it supports "
                            "Conv2d (zero padding), Linear and affine GroupNorm: use engine=batched")
        for pn, _ in own:
            full = f"{name}.{pn}" if name else pn
            slots[full] = (f"{full}_a", f"{full}_s")
    shadow = copy.deepcopy(model)
    for name, mod in list(shadow.named_modules()):
        if isinstance(mod, SPLIT_TYPES):
            parent, _, child = name.rpartition(".")
            if not name:
                raise UserError("engine=fused needs a model with layers, not a single layer")
            setattr(shadow.get_submodule(parent) if parent else shadow, child, SplitLayer(mod))
    order = [slots[n] for n, p in model.named_parameters() if p.requires_grad]
    return shadow, order


# ----------------------------------------------------------------------------- the engine
def mark_step(mode: str) -> None:
    """Tell CUDA-graph trees a new iteration begins (reduce-overhead), so that outputs of the
    previous replay may be overwritten; a no-op otherwise."""
    if mode in ("reduce-overhead", "max-autotune") and hasattr(torch.compiler, "cudagraph_mark_step_begin"):
        torch.compiler.cudagraph_mark_step_begin()


def _maybe_compile(fn, mode: str):
    """torch.compile(fn) in `mode` ("none": fn itself). A round's size K*B + sum_j m_j b takes
    up to (N-K)(M-1)+1 values: dynamo's automatic dynamic shapes compile a size-generic graph
    at the second size (reduce-overhead then records one CUDA graph per size, cheaply); the
    recompile limit is raised so that no size falls back to eager."""
    if mode == "none":
        return fn
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 64))
    return torch.compile(fn, mode=None if mode == "default" else mode)


class FusedEngine:
    """GradientEngine (lgc.sim.engines) computing every group's gradient in one pass.

    Rounds with one group (warm-up, full-sync, fastest-K, anytime-minibatch, lgc rounds where no
    straggler finished a block) need one weighted backward; rounds with "fast" and "strag" use
    the split layers. `compile` wraps the forward and loss in torch.compile (its backward is
    compiled with it); `amp` runs the pass under bf16 autocast (CUDA).
    """

    def __init__(self, *, amp: bool = False, compile: str = "none", loss_fn=per_sample_loss,
                 chunk: Optional[int] = None):
        if compile not in COMPILE_MODES:
            raise UserError(f"compile={compile!r} must be one of {', '.join(COMPILE_MODES)}")
        if chunk is not None and chunk < 1:
            raise UserError(f"chunk={chunk} must be a positive number of rows (or None: one pass)")
        self.amp = amp
        self.compile = compile
        self.loss_fn = loss_fn
        self.chunk = chunk  # rows per pass (None: all); every layer is per-sample, so the sum is exact
        self._model_id = None
        self.fused_rounds = 0  # rounds that went through the split layers (a test checks it is used)

    def _prepare(self, model: nn.Module) -> None:
        if self._model_id == id(model):
            return
        self._model = model
        self._shadow, self._slots = split_model(model)
        self._splits = [m for m in self._shadow.modules() if isinstance(m, SplitLayer)]
        for m in self._splits:  # the dtype autocast would give conv / linear (an argument: compile-friendly)
            m.dtype = torch.bfloat16 if self.amp else None
        self._plain_fn = _maybe_compile(self._plain_loss, self.compile)
        self._fused_fn = _maybe_compile(self._fused_loss, self.compile)
        self._model_id = id(model)

    # the compiled regions: forward + per-sample loss + weighted sum
    def _plain_loss(self, params: dict, x, y, c):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = torch.func.functional_call(self._model, params, (x,))
        losses = self.loss_fn(self._model, out, y)
        return (losses * c).sum(), losses.detach()

    def _fused_loss(self, params: dict, x, y, c):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = torch.func.functional_call(self._shadow, params, (x,))
        losses = self.loss_fn(self._model, out, y)
        return (losses * c).sum(), losses.detach()

    def _pass(self, fn, leaves: list, params_in: dict, x, y, c) -> tuple[list, torch.Tensor]:
        """One forward + weighted backward of rows x: the gradient w.r.t. every leaf, per-sample losses."""
        mark_step(self.compile)
        total, losses = fn(params_in, x, y, c)
        return torch.autograd.grad(total, leaves), losses

    def _spans(self, n: int) -> list[tuple[int, int]]:
        step = self.chunk or n
        return [(s, min(s + step, n)) for s in range(0, n, step)]

    def grads(self, model: nn.Module, batch: RoundBatch) -> tuple[dict, float]:
        names = [g for g in GROUPS if g in batch.weights]
        params = [p for p in model.parameters() if p.requires_grad]
        if batch.x.shape[0] == 0 or not names:
            zero = torch.zeros(sum(p.numel() for p in params), device=params[0].device)
            return {g: zero for g in names}, float("nan")
        if set(names) != {"fast", "strag"} and len(names) != 1:
            return BatchedEngine(amp=self.amp, loss_fn=self.loss_fn).grads(model, batch)
        self._prepare(model)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        flat = lambda gs: torch.cat([g.reshape(-1) for g in gs])  # noqa: E731
        if len(names) == 1:
            x, y, c, n_a = batch.x, batch.y, batch.weights[names[0]], batch.x.shape[0]
        else:
            wf, ws = batch.weights["fast"], batch.weights["strag"]
            is_s = ws != 0
            n_s, overlap = torch.stack([is_s.sum(), ((wf != 0) & is_s).sum()]).tolist()
            if overlap:  # a sample in both groups: no shared backward signal; two passes instead
                return BatchedEngine(amp=self.amp, loss_fn=self.loss_fn).grads(model, batch)
            n_a = batch.x.shape[0] - n_s
            order = torch.argsort(is_s.to(torch.int8), stable=True)  # fast rows first, worker order kept
            x, y, c = batch.x[order], batch.y[order], (wf + ws)[order]
        # rows [0, n_a) belong to the first group, [n_a, n) to "strag"; a span inside one group
        # needs the plain pass, a span across n_a the split layers (one span unless self.chunk)
        res, losses, fused = {g: None for g in names}, [], False
        for s, e in self._spans(x.shape[0]):
            a = min(max(n_a - s, 0), e - s)
            if a in (0, e - s):
                g = names[0] if a else "strag"
                leaves = {nm: p.detach().requires_grad_(True) for nm, p in named}
                gs, ls = self._pass(self._plain_fn, list(leaves.values()), leaves, x[s:e], y[s:e], c[s:e])
                parts = {g: flat(gs)}
            else:
                for m in self._splits:
                    m.n_a = a
                leaves_a = [p.detach().requires_grad_(True) for _, p in named]
                leaves_s = [p.detach().requires_grad_(True) for _, p in named]
                params_in = {}
                for (sa, ss), la, lsl in zip(self._slots, leaves_a, leaves_s):
                    params_in[sa], params_in[ss] = la, lsl
                gs, ls = self._pass(self._fused_fn, leaves_a + leaves_s, params_in, x[s:e], y[s:e], c[s:e])
                k = len(leaves_a)
                parts, fused = {"fast": flat(gs[:k]), "strag": flat(gs[k:])}, True
            for g, v in parts.items():
                res[g] = v if res[g] is None else res[g] + v
            losses.append(ls)
        if fused:
            self.fused_rounds += 1
        for g in names:  # a group with no rows of its own ("strag" weights all zero): its gradient is 0
            if res[g] is None:
                res[g] = torch.zeros(sum(p.numel() for p in params), device=params[0].device)
        return res, float(torch.cat(losses).mean())


class CompiledBatchedEngine(BatchedEngine):
    """The two-pass BatchedEngine with the model's forward (and so its backward) compiled."""

    def __init__(self, *, amp: bool = False, compile: str = "default", loss_fn=per_sample_loss):
        super().__init__(amp=amp, loss_fn=loss_fn)
        if compile not in COMPILE_MODES:
            raise UserError(f"compile={compile!r} must be one of {', '.join(COMPILE_MODES)}")
        self.compile = compile
        self._compiled = None
        self._model_id = None

    def grads(self, model: nn.Module, batch: RoundBatch) -> tuple[dict, float]:
        if self._model_id != id(model):
            self._compiled = _maybe_compile(model, self.compile)
            self._model_id = id(model)
        mark_step(self.compile)
        res, loss = super().grads(_Forwarding(self._compiled, model), batch)
        return res, loss


class _Forwarding:
    """Calls the compiled module, but answers parameters() and attributes from the original."""

    def __init__(self, compiled, model):
        self._compiled, self._model = compiled, model

    def __call__(self, x):
        return self._compiled(x)

    def __getattr__(self, name):
        return getattr(self._model, name)


def make_engine(engine: str, compile: str, device: torch.device, loss_fn=per_sample_loss):
    """The GradientEngine a TrainConfig names (bf16 autocast on CUDA, as the sim backend does);
    loss_fn(model, outputs, targets): the task's per-sample loss."""
    amp = device.type == "cuda"
    if engine == "fused":
        return FusedEngine(amp=amp, compile=compile, chunk=CPU_CHUNK_ROWS if device.type == "cpu" else None,
                           loss_fn=loss_fn)
    if compile != "none":
        return CompiledBatchedEngine(amp=amp, compile=compile, loss_fn=loss_fn)
    return BatchedEngine(amp=amp, loss_fn=loss_fn)
