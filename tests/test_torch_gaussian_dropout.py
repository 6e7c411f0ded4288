"""regdrop_fast.torch.gaussian_dropout / GaussianDropout: the NumPy-level op's values (forward and backward),
autograd (backward, double backward, forward-mode AD), vmap, eval mode and p = 0, torch.compile fullgraph,
Keras's expectation through the module."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import same_bits, to_numpy

import regdrop_fast as rf

torch = pytest.importorskip("torch")
import regdrop_fast.torch as rt  # noqa: E402  (only importable with torch)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_forward_backward_equal_the_numpy_op(dtype):
    x = (3 * torch.randn(37, 70, dtype=torch.float64, generator=torch.Generator().manual_seed(0))).to(dtype)
    xs = x.clone().requires_grad_()
    y = rt.gaussian_dropout(xs, 0.3, generator=rf.Generator(9, 5))
    y_np, noise = rf.gaussian_dropout(to_numpy(x), 0.3, seed=9, offset=5)
    assert same_bits(y, y_np) and y.is_contiguous()
    g = (torch.arange(y.numel(), dtype=torch.float64).reshape(y.shape) / 100).to(dtype)
    y.backward(g)
    assert same_bits(xs.grad, rf.gaussian_dropout_backward(to_numpy(g), noise))


def test_strided_input_takes_its_logical_order():
    x = torch.randn(30, 40).t()
    y = rt.gaussian_dropout(x, 0.4, generator=rf.Generator(2))
    assert same_bits(y, rf.gaussian_dropout(to_numpy(x.contiguous()), 0.4, seed=2)[0])


def test_generator_advances_by_numel():
    gen = rf.Generator(11)
    a = rt.gaussian_dropout(torch.ones(10), 0.5, generator=gen)
    b = rt.gaussian_dropout(torch.ones(6), 0.5, generator=gen)
    both = rf.gaussian_dropout(np.ones(16, np.float32), 0.5, seed=11)[0]
    assert same_bits(torch.cat([a, b]), both)
    assert gen.offset == 16


def test_default_seeding_follows_torch_manual_seed():
    torch.manual_seed(5)
    a = rt.gaussian_dropout(torch.ones(100), 0.5)
    torch.manual_seed(5)
    assert torch.equal(a, rt.gaussian_dropout(torch.ones(100), 0.5))
    assert not torch.equal(a, rt.gaussian_dropout(torch.ones(100), 0.5))


def test_eval_mode_and_p_zero_return_the_input():
    x = torch.randn(5)
    assert rt.gaussian_dropout(x, 0.5, training=False) is x
    assert rt.gaussian_dropout(x, 0.0) is x
    m = rt.GaussianDropout(0.5).eval()
    assert m(x) is x


def test_gradcheck_backward_double_backward_and_forward_ad():
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)

    def f(t):  # a fresh Generator per call: the same noise on every evaluation
        return rt.gaussian_dropout(t, 0.3, generator=rf.Generator(4))

    assert torch.autograd.gradcheck(f, (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(f, (x,))
    with torch.autograd.forward_ad.dual_level():
        tangent = torch.randn(6, 5, dtype=torch.float64)
        out = f(torch.autograd.forward_ad.make_dual(x.detach(), tangent))
        _, jvp = torch.autograd.forward_ad.unpack_dual(out)
    assert torch.equal(jvp, f(tangent))  # linear: the tangent gets the same factors


def test_vmap_randomness():
    x = torch.ones(3, 64)
    same = torch.func.vmap(lambda t: rt.gaussian_dropout(t, 0.5), randomness="same")(x)
    assert torch.equal(same[0], same[1]) and torch.equal(same[1], same[2])
    torch.manual_seed(0)
    different = torch.func.vmap(lambda t: rt.gaussian_dropout(t, 0.5), randomness="different")(x)
    assert not torch.equal(different[0], different[1])
    with pytest.raises(RuntimeError, match="randomness"):
        torch.func.vmap(lambda t: rt.gaussian_dropout(t, 0.5))(x)
    with pytest.raises(RuntimeError, match="randomness='same' only"):
        torch.func.vmap(lambda t: rt.gaussian_dropout(t, 0.5, generator=rf.Generator(1)),
                        randomness="different")(x)


# Inductor's CPU codegen touches a deprecated torch.jit API; pytest turns warnings into errors here.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_equals_eager(backend):
    """torch.compile(fullgraph=True) traces the module without a graph break; with a Generator the compiled
    forward and backward equal eager ones bit for bit, also on the second call (the cached graph at the
    advanced generator position)."""
    torch._dynamo.reset()
    m_c = rt.GaussianDropout(0.3, generator=rf.Generator(21))
    m_e = rt.GaussianDropout(0.3, generator=rf.Generator(21))
    compiled = torch.compile(lambda t: m_c(t) * 2, fullgraph=True, backend=backend)
    x = torch.randn(257)
    for _ in range(2):
        xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
        yc, ye = compiled(xc), m_e(xe) * 2
        yc.backward(torch.ones_like(yc))
        ye.backward(torch.ones_like(ye))
        assert same_bits(yc.detach(), ye.detach()) and same_bits(xc.grad, xe.grad)
        assert m_c.generator.get_state() == m_e.generator.get_state()


def test_module_keras_expectation():
    """Keras's GaussianDropout test through the module: std of the output on ones (20, 500) at 0.3 is
    sqrt(0.3 / 0.7) within 0.02, mean 1 within 0.02."""
    torch.manual_seed(0)
    y = rt.GaussianDropout(0.3)(torch.ones(20, 500))
    assert abs(y.std().item() - math.sqrt(0.3 / 0.7)) < 0.02
    assert abs(y.mean().item() - 1.0) < 0.02


def test_module_repr_and_checks():
    assert repr(rt.GaussianDropout(0.25)) == "GaussianDropout(p=0.25)"
    with pytest.raises(ValueError, match="below 1"):
        rt.GaussianDropout(1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        rt.GaussianDropout(-0.1)
    with pytest.raises(TypeError, match="regdrop_fast.Generator"):
        rt.GaussianDropout(0.1, generator=torch.Generator())
