"""regdrop_fast.torch.bias_dropout_add / BiasDropoutAdd: the NumPy-level op's values and masks, dropout's
stream, autograd (backward, double backward, forward-mode AD), eval mode, and torch.compile fullgraph."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BFLOAT16, same_bits, to_numpy

import regdrop_fast as rf

torch = pytest.importorskip("torch")
import regdrop_fast.torch as rt  # noqa: E402  (only importable with torch)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def tensors(shape, dtype, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, r = (3 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype), \
        (3 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    b = (3 * torch.randn(shape[-1:], generator=g, dtype=torch.float64)).to(dtype) if bias else None
    return x, b, r


def host(t):
    return None if t is None else to_numpy(t)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_forward_backward_equal_the_numpy_op(dtype, with_bias, store):
    x, b, r = tensors((37, 70), dtype, with_bias)
    xs = [t.clone().requires_grad_() if t is not None else None for t in (x, b, r)]
    y = rt.bias_dropout_add(*xs, 0.3, store=store, generator=rf.Generator(9, 5))
    y_np, mask = rf.bias_dropout_add(host(x), host(b), host(r), 0.3, seed=9, offset=5)
    assert same_bits(y, y_np)
    g = (torch.arange(y.numel(), dtype=torch.float64).reshape(y.shape) / 100).to(dtype)
    y.backward(g)
    dx, dbias, dres = rf.bias_dropout_add_backward(host(g), mask)
    assert same_bits(xs[0].grad, dx) and same_bits(xs[2].grad, host(g))
    if with_bias:
        assert same_bits(xs[1].grad, dbias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_equals_the_unfused_composition_with_dropout(dtype):
    """float32/float64: residual + dropout(x + bias) with this module's dropout and the same Generator
    position is the fused result bit for bit; so are the gradients of x and residual."""
    x, b, r = tensors((64, 48), dtype)
    y = rt.bias_dropout_add(x, b, r, 0.25, generator=rf.Generator(3))
    z = r + rt.dropout(x + b, 0.25, generator=rf.Generator(3))
    assert same_bits(y, z)


def test_gradcheck_backward_double_backward_and_forward_ad():
    x, b, r = (t.requires_grad_() for t in tensors((6, 5), torch.float64))
    for store in ("bits", "seed"):
        def f(x, b, r, store=store):  # a fresh Generator per call: the same mask on every evaluation
            return rt.bias_dropout_add(x, b, r, 0.4, store=store, generator=rf.Generator(11))
        assert torch.autograd.gradcheck(f, (x, b, r), check_forward_ad=True)
        assert torch.autograd.gradgradcheck(f, (x, b, r))
        def g(x, r, store=store):
            return rt.bias_dropout_add(x, None, r, 0.4, store=store, generator=rf.Generator(11))
        assert torch.autograd.gradcheck(g, (x, r), check_forward_ad=True)


def test_dbias_does_not_depend_on_the_thread_count():
    x, b, r = (t.requires_grad_() for t in tensors((700, 130), torch.float32))
    grads = []
    previous = rf.get_num_threads()
    try:
        for n in (1, 2):
            rf.set_num_threads(n)
            b.grad = None
            rt.bias_dropout_add(x, b, r, 0.5, generator=rf.Generator(1)).sum().backward()
            grads.append(b.grad.clone())
    finally:
        rf.set_num_threads(previous)
    assert same_bits(grads[0], grads[1])


def test_module_eval_and_repr():
    m = rt.BiasDropoutAdd(0.2, store="seed", generator=rf.Generator(4))
    assert repr(m) == "BiasDropoutAdd(p=0.2, store='seed', generator=regdrop_fast.Generator(seed=4, offset=0))"
    x, b, r = tensors((3, 8), torch.float32)
    assert same_bits(m(x, b, r), rf.bias_dropout_add(host(x), host(b), host(r), 0.2, seed=4)[0])
    assert same_bits(m.eval()(x, b, r), r + (x + b))
    assert same_bits(m(x, None, r), r + x)


def test_mask_is_dropouts():
    x, b, r = tensors((10, 30), torch.float32)
    y = rt.bias_dropout_add(x, b, r, 0.5, generator=rf.Generator(8))
    keep = rf.dropout_mask((10, 30), 0.5, seed=8).to_bool()
    assert np.array_equal(to_numpy(y) == to_numpy(r), ~keep | (to_numpy(x + b) == 0))


# Inductor's CPU codegen touches a deprecated torch.jit API; pytest turns warnings into errors here.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_equals_eager(backend):
    torch._dynamo.reset()
    x, b, r = tensors((16, 40), torch.float32)

    def f(x, b, r, gen):
        return (rt.bias_dropout_add(x, b, r, 0.3, generator=gen) * 2).sum()

    compiled = torch.compile(f, fullgraph=True, backend=backend)
    gen_c, gen_e = rf.Generator(21), rf.Generator(21)
    for _ in range(2):  # the second call runs the cached graph at the advanced generator position
        inputs_c = [t.clone().requires_grad_() for t in (x, b, r)]
        inputs_e = [t.clone().requires_grad_() for t in (x, b, r)]
        out_c, out_e = compiled(*inputs_c, gen_c), f(*inputs_e, gen_e)
        out_c.backward()
        out_e.backward()
        torch.testing.assert_close(out_c, out_e)
        for a, e in zip(inputs_c, inputs_e):
            assert same_bits(a.grad, e.grad)
        assert gen_c.get_state() == gen_e.get_state()
