"""torch's own dropout tests, ported mechanically with regdrop_fast.torch substituted for torch.nn.Dropout /
torch.nn.functional.dropout.

Upstream sources (PyTorch, not installed with the wheel; ported from what they assert):
- test/nn/test_dropout.py: TestDropoutNN / TestDropoutNNDeviceType: ``test_Dropout`` (via ``_test_dropout``,
  ``_test_dropout_discontiguous``, ``_test_dropout_stride_mean_preserve``), ``test_empty_dropout``,
  ``test_invalid_dropout_p``;
- test/test_nn.py: ``test_native_dropout_corner_case`` (p = 0 and p = 1, train and eval);
- torch/testing/_internal/common_methods_invocations.py: the OpInfo of ``nn.functional.dropout`` (a wrapper
  that fixes the randomness, ``supports_forward_ad``, ``supports_fwgrad_bwgrad``, an inplace variant) as run
  by test/test_ops.py's ``test_fn_grad``, ``test_fn_gradgrad``, ``test_forward_mode_AD``,
  ``test_fn_fwgrad_bwgrad``, ``test_inplace_grad`` / ``test_inplace_forward_mode_AD`` and
  ``test_variant_consistency_eager``. As in OpInfo, the gradient checks run in float64 only (gradcheck's
  finite differences need it); float32 and bfloat16 get the value checks (forward, backward, tangent, and
  the inplace variant against the out-of-place one) against a float64 reference with the same mask.

The layout assertions (channels_last kept, strides preserved, discontiguous inputs) run as upstream's.
"""

from __future__ import annotations

import itertools

import pytest

import regdrop_fast as rf

torch = pytest.importorskip("torch")
import regdrop_fast.torch as rt  # noqa: E402  (only importable with torch)

nn = torch.nn
F = torch.nn.functional

DTYPES = [torch.float32, torch.float64, torch.bfloat16]
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])


def fixed(p=0.5, inplace=False):
    """The OpInfo's wrapper: dropout with its randomness fixed, so repeated evaluations (finite differences,
    batched grads) see one mask. A fresh Generator per call gives the same mask every time."""
    return lambda x: rt.dropout(x, p, training=True, inplace=inplace, generator=rf.Generator(1234))


# ----------------------------------------------------------------------------------------------------------
# test/nn/test_dropout.py


def _test_dropout(cls, input, memory_format=torch.contiguous_format):
    """Upstream ``_test_dropout``: value and gradient statistics, the inplace module, eval mode."""
    p = 0.2
    input = input.to(memory_format=memory_format).fill_(1 - p)

    module = cls(p)
    input_var = input.clone(memory_format=memory_format).requires_grad_()
    output = module(input_var)
    assert abs(output.data.mean() - (1 - p)) < 0.05
    output.backward(input)
    assert abs(input_var.grad.data.mean() - (1 - p)) < 0.05

    module = cls(p, True)
    input_var = input.clone(memory_format=memory_format).requires_grad_()
    output = module(input_var + 0)
    assert abs(output.data.mean() - (1 - p)) < 0.05
    output.backward(input)
    assert abs(input_var.grad.data.mean() - (1 - p)) < 0.05

    # check eval mode doesn't change anything
    for inplace in [True, False]:
        module = cls(p, inplace).eval()
        assert torch.equal(input, module(input))

    # check that these don't raise errors
    module.__repr__()
    str(module)


def test_Dropout():
    """Upstream ``test_Dropout`` (the contiguous part)."""
    _test_dropout(rt.Dropout, torch.empty(1000))


@pytest.mark.parametrize("p", [0.0, 0.2, 0.7])
def test_Dropout_discontiguous_values(p):
    """Upstream ``_test_dropout_discontiguous``, value part: each output is 0 or 1/(1-p) for ones in."""
    inp = torch.ones(2, 3, 3, 3)
    inp_discontiguous = torch.empty(2, 3, 3, 6)[..., ::2]
    inp_discontiguous.copy_(inp)
    out = rt.Dropout(p=p)(inp_discontiguous)
    if p == 0:
        assert torch.equal(out, inp_discontiguous)
    else:
        assert all(v == 0 or abs(v - 1 / (1 - p)) < 1e-6 for v in out.unique().tolist())
    assert torch.equal(inp_discontiguous, inp)  # the input is not written


@pytest.mark.parametrize("memory_format", [torch.channels_last])
def test_Dropout_discontiguous_strides(memory_format):
    """Upstream ``_test_dropout_discontiguous``, layout part: for p != 0 a discontiguous input gives an
    output with the strides torch's empty_like gives (dense, in the input's permutation)."""
    inp_discontiguous = torch.empty(2, 3, 3, 6).to(memory_format=memory_format)[..., ::2].fill_(1)
    out = rt.Dropout(p=0.3)(inp_discontiguous)
    assert out.stride() == torch.empty_like(inp_discontiguous).stride()
    assert out.stride() == nn.Dropout(p=0.3)(inp_discontiguous).stride()


def test_Dropout_channels_last():
    """Upstream ``test_Dropout``'s channels_last runs: ``_test_dropout(..., memory_format=channels_last)``,
    whose outputs stay channels_last."""
    input = torch.empty(2, 3, 4, 5).to(memory_format=torch.channels_last)
    out = rt.Dropout(0.2)(input.fill_(0.8))
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_Dropout_stride_mean_preserve_values():
    """Upstream ``_test_dropout_stride_mean_preserve``, value part: for every permutation, every element is
    0 or x/(1-p) and the mean is preserved within 5%."""
    p = 0.2
    for perm in itertools.permutations((0, 1, 2, 3), r=4):
        inp = torch.ones(2, 3, 4, 5).permute(perm)
        out = rt.dropout(inp, p)
        assert out.shape == inp.shape
        assert all(v == 0 or abs(v - 1 / (1 - p)) < 1e-6 for v in out.unique().tolist())
        assert abs(out.mean().item() - 1.0) < 0.25  # 120 elements: a loose bound, upstream checks shape


def test_Dropout_stride_mean_preserve_strides():
    """Upstream ``_test_dropout_stride_mean_preserve``, layout part: ``out.stride() == inp.stride()``."""
    for perm in itertools.permutations((0, 1, 2, 3), r=4):
        inp = torch.ones(2, 3, 4, 5).permute(perm)
        assert rt.dropout(inp, 0.2).stride() == inp.stride(), perm


def test_empty_dropout():
    """Upstream ``test_empty_dropout``."""
    x = torch.tensor([])
    out = rt.dropout(x)
    assert out.size() == x.size()


def test_invalid_dropout_p():
    """Upstream ``test_invalid_dropout_p``: the modules and the functional raise ValueError."""
    v = torch.ones(1)
    for p in (-0.1, 1.1):
        with pytest.raises(ValueError):
            rt.Dropout(p)
        with pytest.raises(ValueError):
            rt.dropout(v, p)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_native_dropout_corner_case(train, p):
    """Upstream ``test_native_dropout_corner_case`` (test_nn.py): at p = 0 and p = 1 the output and the
    gradient equal torch's dropout."""
    x = torch.randn(5, requires_grad=True)
    x_ref = x.detach().requires_grad_()
    o = rt.dropout(x, p, train)
    o_ref = F.dropout(x_ref, p, train)
    o.sum().backward()
    o_ref.sum().backward()
    assert torch.equal(o, o_ref)
    assert torch.equal(x.grad, x_ref.grad)


# ----------------------------------------------------------------------------------------------------------
# OpInfo nn.functional.dropout through test/test_ops.py: gradient checks (float64)


def _x(dtype=torch.float64, requires_grad=True):
    return torch.randn(5, 6, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)


def test_fn_grad():
    """test_ops ``test_fn_grad``: gradcheck, with the batched-grad check OpInfo runs."""
    assert torch.autograd.gradcheck(fixed(), (_x(),), check_batched_grad=True)


def test_fn_gradgrad():
    """test_ops ``test_fn_gradgrad``."""
    assert torch.autograd.gradgradcheck(fixed(), (_x(),), check_batched_grad=True)


def test_forward_mode_AD():
    """test_ops ``test_forward_mode_AD``: gradcheck with check_forward_ad (and batched forward grads)."""
    assert torch.autograd.gradcheck(fixed(), (_x(),), check_forward_ad=True, check_backward_ad=False,
                                    check_undefined_grad=False, check_batched_grad=False,
                                    check_batched_forward_grad=True)


def test_fn_fwgrad_bwgrad():
    """test_ops ``test_fn_fwgrad_bwgrad``: forward-over-backward."""
    assert torch.autograd.gradgradcheck(fixed(), (_x(),), check_fwd_over_rev=True, check_rev_over_rev=True)


def test_inplace_grad():
    """test_ops ``test_inplace_grad`` / ``test_inplace_gradgrad``: the inplace variant on a non-leaf."""
    f = fixed(inplace=True)
    g = lambda x: f(x.clone())  # noqa: E731
    assert torch.autograd.gradcheck(g, (_x(),), check_batched_grad=True)
    assert torch.autograd.gradgradcheck(g, (_x(),))


def test_inplace_forward_mode_AD():
    """test_ops ``test_inplace_forward_mode_AD``."""
    f = fixed(inplace=True)
    g = lambda x: f(x.clone())  # noqa: E731
    assert torch.autograd.gradcheck(g, (_x(),), check_forward_ad=True, check_backward_ad=False,
                                    check_undefined_grad=False, check_batched_grad=False)
    assert torch.autograd.gradgradcheck(g, (_x(),), check_fwd_over_rev=True, check_rev_over_rev=False,
                                        check_undefined_grad=False)


# ----------------------------------------------------------------------------------------------------------
# OpInfo value checks per dtype: test_variant_consistency_eager and the reference with the same mask


@dtype_param
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_values_forward_backward_tangent(dtype, p):
    """Forward, backward and forward-mode tangent in each dtype equal x * mask / (1 - p) computed from the
    float64 input with the same mask, rounded once to the dtype."""
    import torch.autograd.forward_ad as fwAD

    x = _x(dtype)
    y = fixed(p)(x)
    keep = fixed(p)(torch.ones(5, 6, dtype=torch.float64)) != 0
    scale = 1.0 / (1.0 - p)
    ref = torch.where(keep, x.detach().double() * scale, 0.0).to(dtype)
    assert y.dtype == dtype
    torch.testing.assert_close(y, ref)  # the dtype's default tolerances, as OpInfo's comparisons
    g = torch.randn(5, 6, dtype=torch.float64).to(dtype)
    y.backward(g)
    torch.testing.assert_close(x.grad, torch.where(keep, g.double() * scale, 0.0).to(dtype))
    t = torch.randn(5, 6, dtype=torch.float64).to(dtype)
    with fwAD.dual_level():
        out = fixed(p)(fwAD.make_dual(x.detach(), t))
        torch.testing.assert_close(fwAD.unpack_dual(out).tangent, torch.where(keep, t.double() * scale, 0.0).to(dtype))


@dtype_param
def test_variant_consistency_eager(dtype):
    """test_ops ``test_variant_consistency_eager``: the functional, the module and the inplace variant give
    the same output and the same gradient."""
    outs, grads = [], []
    x0 = _x(dtype, requires_grad=False)
    for variant in (fixed(), lambda x: fixed(inplace=True)(x.clone()),
                    lambda x: rt.Dropout(0.5, generator=rf.Generator(1234))(x)):
        x = x0.clone().requires_grad_()
        y = variant(x)
        y.backward(torch.ones_like(y))
        outs.append(y.detach())
        grads.append(x.grad)
    assert all(torch.equal(outs[0], o) for o in outs) and all(torch.equal(grads[0], g) for g in grads)
