"""The torch penalty helpers under torch's function transforms: forward-mode AD (forward_ad dual tensors,
torch.func.jvp) and torch.func.vmap.

The in-place helpers run under torch.no_grad(), which leaves forward-mode AD on: a dual parameter must get
the derivative of the update as its new tangent (it used to keep its tangent unchanged, silently). Each
expectation is torch's own forward AD through the torch composition of the same update (softshrink,
clamp_min, the Keras MinMaxNorm formula), and each vmap is checked against a loop over the samples.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.autograd.forward_ad as fwAD  # noqa: E402

import regdrop_fast.torch as rt  # noqa: E402


def _minmax(w: torch.Tensor, lo: float, hi: float, rate: float) -> torch.Tensor:
    """Keras MinMaxNorm over the rows of a 2-D w, in torch ops (no epsilon, as regdrop_fast)."""
    n = torch.linalg.vector_norm(w, dim=1, keepdim=True)
    return w * ((rate * n.clamp(lo, hi) + (1 - rate) * n) / n)


# name -> (the helper on one tensor, the same update as a torch composition)
HELPERS = {
    "decay_": (lambda w: rt.decay_(w, 0.1), lambda w: w * 0.9),
    "prox_l1_": (lambda w: rt.prox_l1_(w, 0.5), lambda w: torch.nn.functional.softshrink(w, 0.5)),
    "non_neg_": (lambda w: rt.non_neg_(w), lambda w: w.clamp_min(0)),
    "max_norm_": (lambda w: rt.max_norm_(w, 1.5, dim=0), lambda w: _minmax(w, 0.0, 1.5, 1.0)),
    "norm_constraint_": (lambda w: rt.norm_constraint_(w, min_value=1.5, max_value=2.0, rate=0.7, dim=0),
                         lambda w: _minmax(w, 1.5, 2.0, 0.7)),
    "unit_norm_": (lambda w: rt.unit_norm_(w, dim=0), lambda w: _minmax(w, 1.0, 1.0, 1.0)),
}


def _weights(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Rows of norm below, inside and above the bounds used above; no element at a kink of the updates."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(6, 5, generator=g, dtype=dtype)
    return w * torch.tensor([0.2, 0.7, 1.0, 1.7, 3.0, 5.0], dtype=dtype).unsqueeze(1)


def _applied(helper, w: torch.Tensor) -> torch.Tensor:
    w = w.clone()
    helper(w)
    return w


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_dual_tensor_gets_the_derivative_of_the_update(name):
    helper, composition = HELPERS[name]
    w0 = _weights()
    t0 = torch.randn_like(w0)
    with fwAD.dual_level():
        w = fwAD.make_dual(w0.clone(), t0.clone())
        helper(w)
        primal, tangent = fwAD.unpack_dual(w)
    expected_primal, expected_tangent = torch.func.jvp(composition, (w0,), (t0,))
    assert torch.allclose(primal, expected_primal, rtol=1e-12, atol=1e-12)
    assert torch.allclose(tangent, expected_tangent, rtol=1e-10, atol=1e-12)
    assert not torch.equal(tangent, t0)  # the old behaviour: the tangent passed through unchanged


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_func_jvp_through_the_helper(name):
    helper, composition = HELPERS[name]
    w0 = _weights()
    t0 = torch.randn_like(w0)
    primal, tangent = torch.func.jvp(lambda w: _applied(helper, w), (w0,), (t0,))
    expected_primal, expected_tangent = torch.func.jvp(composition, (w0,), (t0,))
    assert torch.allclose(primal, expected_primal, rtol=1e-12, atol=1e-12)
    assert torch.allclose(tangent, expected_tangent, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_jacfwd_of_the_update(name):
    helper, composition = HELPERS[name]
    w0 = _weights()[:3, :3].contiguous()
    assert torch.allclose(torch.func.jacfwd(lambda w: _applied(helper, w))(w0),
                          torch.func.jacfwd(composition)(w0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_dual_tensor_of_a_narrow_dtype_keeps_its_primal_bits(dtype):
    helper = HELPERS["norm_constraint_"][0]
    w0 = _weights(dtype)
    plain = w0.clone()
    helper(plain)
    with fwAD.dual_level():
        w = fwAD.make_dual(w0.clone(), torch.ones_like(w0))
        helper(w)
        primal = fwAD.unpack_dual(w).primal
    assert torch.equal(primal, plain)  # the out-of-place route computes the same bits as the in-place op


def test_add_penalty_grad_under_forward_ad():
    w0, g0 = _weights(), torch.randn(6, 5, dtype=torch.float64)
    tw, tg = torch.randn_like(w0), torch.randn_like(g0)
    with fwAD.dual_level():
        dual_w = fwAD.make_dual(w0.clone(), tw.clone())
        dual_g = fwAD.make_dual(g0.clone(), tg.clone())  # (make_dual keeps the tangent tensor itself)
        dual_w.grad = dual_g
        value = rt.add_penalty_grad_([dual_w], l1=0.1, l2=0.3)
        g_primal, g_tangent = fwAD.unpack_dual(dual_g)
        v_primal, v_tangent = fwAD.unpack_dual(value)
    assert torch.allclose(g_primal, g0 + 0.1 * w0.sign() + 0.3 * w0, rtol=1e-12, atol=0)
    assert torch.allclose(g_tangent, tg + 0.3 * tw, rtol=1e-12, atol=0)
    expected = (0.1 * w0.abs().sum() + 0.15 * (w0 * w0).sum()).item()
    assert v_primal.item() == pytest.approx(expected, rel=1e-12)
    assert v_tangent.item() == pytest.approx(((0.1 * w0.sign() + 0.3 * w0) * tw).sum().item(), rel=1e-10)


class _WithGrad(torch.Tensor):
    """A tensor whose .grad is a given (dual) tensor: add_penalty_grad_ reads params[i].grad."""

    @staticmethod
    def __new__(cls, data: torch.Tensor, grad: torch.Tensor) -> _WithGrad:
        return data.as_subclass(cls)

    def __init__(self, data: torch.Tensor, grad: torch.Tensor) -> None:
        self._given_grad = grad

    @property
    def grad(self) -> torch.Tensor:  # type: ignore[override]
        return self._given_grad


def test_no_tangent_no_detour(monkeypatch):
    # Without a dual level or transform the helpers call the custom op directly (no copy of the tensors).
    calls = []
    monkeypatch.setattr(rt._InplaceHelperFn, "apply", lambda *a: calls.append(a))
    w = _weights()
    rt.decay_(w, 0.5)
    with fwAD.dual_level():
        rt.prox_l1_(w, 0.1)  # a level is open but w is not dual
    assert calls == []


# ---------------------------------------------------------------------------------------------------------
# vmap: a batched parameter gets one update (and one value) per sample; an unbatched one is written once


@pytest.mark.parametrize("name", sorted(HELPERS))
@pytest.mark.parametrize("in_dim", [0, 1])
def test_vmap_equals_a_loop_over_the_samples(name, in_dim):
    helper = HELPERS[name][0]
    batch = torch.stack([_weights() * (b + 1) for b in range(4)], dim=in_dim)
    looped = torch.stack([_applied(helper, batch.select(in_dim, b)) for b in range(4)])
    mapped = torch.func.vmap(lambda w: _applied(helper, w), in_dims=in_dim)(batch)
    assert torch.equal(mapped, looped)


def test_vmap_counts_per_sample_and_unbatched_tensors_written_once():
    batch = torch.stack([_weights() * s for s in (0.1, 1.0, 10.0)])
    shared = _weights()
    before = shared.clone()

    def f(w):
        w = w.clone()
        return rt.prox_l1_([w, shared], 0.5), w

    counts, out = torch.func.vmap(f)(batch)
    once = before.clone()
    shared_zeros = rt.prox_l1_(once, 0.5)
    assert torch.equal(shared, once)  # written once, not once per sample
    for b in range(3):
        w = batch[b].clone()
        assert counts[b].item() == rt.prox_l1_(w, 0.5).item() + shared_zeros.item()
        assert torch.equal(out[b], w)


def test_vmap_of_penalty_and_per_sample_gradients():
    batch = torch.randn(5, 4, 3, dtype=torch.float64)

    def f(w):
        return rt.penalty([w], l1=0.1, l2=0.2)

    values = torch.func.vmap(f)(batch)
    assert torch.allclose(values, torch.stack([f(w) for w in batch]), rtol=1e-15, atol=0)
    grads = torch.func.vmap(torch.func.grad(f))(batch)
    assert torch.allclose(grads, 0.1 * batch.sign() + 0.2 * batch, rtol=1e-15, atol=0)
    # forward over reverse: the penalty's gradient is linear in w with slope l2 (sign has derivative 0)
    t = torch.randn(4, 3, dtype=torch.float64)
    _, dgrad = torch.func.jvp(torch.func.grad(f), (batch[0],), (t,))
    assert torch.allclose(dgrad, 0.2 * t, rtol=1e-15, atol=0)


def test_vmap_add_penalty_grad_per_sample():
    ws = torch.randn(3, 4, dtype=torch.float64)
    gs = torch.randn(3, 4, dtype=torch.float64)

    def f(w, g):
        g = g.clone()
        p = _WithGrad(w, g)
        return rt.add_penalty_grad_([p], l1=0.1, l2=0.2), g

    values, new = torch.func.vmap(f)(ws, gs)
    for b in range(3):
        g = gs[b].clone()
        assert values[b].item() == pytest.approx(rt.add_penalty_grad_([_WithGrad(ws[b], g)], l1=0.1,
                                                                       l2=0.2).item(), rel=1e-15)
        assert torch.equal(new[b], g)


def test_vmap_add_penalty_grad_refuses_a_shared_grad_of_a_batched_param():
    g = torch.zeros(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="batched but its grad is not"):
        torch.func.vmap(lambda w: rt.add_penalty_grad_([_WithGrad(w, g)], l2=0.2))(torch.ones(3, 4,
                                                                                             dtype=torch.float64))
    assert torch.equal(g, torch.zeros(4, dtype=torch.float64))


def test_numpy_untouched_by_the_torch_detour():
    # The out-of-place route must not change the NumPy API's answer for the same values.
    import regdrop_fast as rf

    w = _weights().numpy().copy()
    expected = w.copy()
    rf.norm_constraint(expected, min_value=1.5, max_value=2.0, rate=0.7, axis=1)
    with fwAD.dual_level():
        d = fwAD.make_dual(torch.from_numpy(w.copy()), torch.ones(6, 5, dtype=torch.float64))
        rt.norm_constraint_(d, min_value=1.5, max_value=2.0, rate=0.7, dim=0)
        assert np.array_equal(fwAD.unpack_dual(d).primal.numpy(), expected)


# group_l1: the group-Lasso term group_l1 * sum_g ||w_g|| (norms over `axis`) under the same transforms, against
# torch's AD of that term written in torch ops. The weights have no all-zero group (no kink).

def _group_penalty(w: torch.Tensor, l1: float, l2: float, group: float, axis) -> torch.Tensor:
    return (l1 * w.abs().sum() + 0.5 * l2 * (w * w).sum()
            + group * torch.linalg.vector_norm(w, dim=axis).sum())


@pytest.mark.parametrize("axis", [1, (0,), (0, 2)], ids=["rows", "columns", "two-axes"])
def test_group_l1_under_vmap_grad_and_forward_over_reverse(axis):
    batch = torch.randn(4, 3, 5, 2, dtype=torch.float64)
    axes = (axis,) if isinstance(axis, int) else axis

    def f(w):
        return rt.penalty([w], l1=0.1, l2=0.2, group_l1=0.3, axis=axis)

    def composition(w):
        return _group_penalty(w, 0.1, 0.2, 0.3, axes)

    values = torch.func.vmap(f)(batch)
    assert torch.allclose(values, torch.stack([composition(w) for w in batch]), rtol=1e-12, atol=0)
    grads = torch.func.vmap(torch.func.grad(f))(batch)
    assert torch.allclose(grads, torch.func.vmap(torch.func.grad(composition))(batch), rtol=1e-12, atol=1e-15)
    t = torch.randn(3, 5, 2, dtype=torch.float64)
    _, dgrad = torch.func.jvp(torch.func.grad(f), (batch[0],), (t,))
    _, expected = torch.func.jvp(torch.func.grad(composition), (batch[0],), (t,))
    assert torch.allclose(dgrad, expected, rtol=1e-10, atol=1e-13)
    # reverse over reverse (the Hessian-vector product) through the penalty's differentiable backward
    w = batch[1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(w), w, create_graph=True)
    (hv,) = torch.autograd.grad(g, w, grad_outputs=t)
    wc = batch[1].clone().requires_grad_(True)
    (gc,) = torch.autograd.grad(composition(wc), wc, create_graph=True)
    (expected_hv,) = torch.autograd.grad(gc, wc, grad_outputs=t)
    assert torch.allclose(hv, expected_hv, rtol=1e-10, atol=1e-13)


def test_add_penalty_grad_with_group_l1_under_forward_ad():
    w0, g0 = _weights(), torch.randn(6, 5, dtype=torch.float64)
    tw, tg = torch.randn_like(w0), torch.randn_like(g0)
    with fwAD.dual_level():
        dual_w = fwAD.make_dual(w0.clone(), tw.clone())
        dual_g = fwAD.make_dual(g0.clone(), tg.clone())
        dual_w.grad = dual_g
        value = rt.add_penalty_grad_([dual_w], l1=0.1, l2=0.3, group_l1=0.4, axis=1)
        g_primal, g_tangent = fwAD.unpack_dual(dual_g)
        v_primal, v_tangent = fwAD.unpack_dual(value)

    def grad_of_penalty(w):
        return torch.func.grad(lambda v: _group_penalty(v, 0.1, 0.3, 0.4, (1,)))(w)

    expected_g, expected_dg = torch.func.jvp(grad_of_penalty, (w0,), (tw,))
    assert torch.allclose(g_primal, g0 + expected_g, rtol=1e-12, atol=1e-15)
    assert torch.allclose(g_tangent, tg + expected_dg, rtol=1e-10, atol=1e-13)
    expected_v, expected_dv = torch.func.jvp(lambda w: _group_penalty(w, 0.1, 0.3, 0.4, (1,)), (w0,), (tw,))
    assert v_primal.item() == pytest.approx(expected_v.item(), rel=1e-12)
    assert v_tangent.item() == pytest.approx(expected_dv.item(), rel=1e-10)


def test_vmap_add_penalty_grad_with_group_l1_per_sample():
    ws = torch.randn(3, 4, 6, dtype=torch.float64)
    gs = torch.randn(3, 4, 6, dtype=torch.float64)

    def f(w, g):
        g = g.clone()
        return rt.add_penalty_grad_([_WithGrad(w, g)], l2=0.2, group_l1=0.5, axis=0), g

    values, new = torch.func.vmap(f)(ws, gs)
    for b in range(3):
        g = gs[b].clone()
        value = rt.add_penalty_grad_([_WithGrad(ws[b], g)], l2=0.2, group_l1=0.5, axis=0)
        assert values[b].item() == pytest.approx(value.item(), rel=1e-15)
        assert torch.equal(new[b], g)
