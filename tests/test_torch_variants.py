"""regdrop_fast.torch's variant functions (issue 13): dropout_shared, dropout1d/2d/3d, alpha_dropout,
feature_alpha_dropout, drop_path. The NumPy API's results bit for bit, torch's rank rules, warnings and errors,
autograd (double backward, forward AD), vmap, torch.compile (fullgraph), opcheck of the custom ops."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import BFLOAT16, to_numpy

import regdrop_fast as rf

torch = pytest.importorskip("torch")
import regdrop_fast.torch as rt  # noqa: E402  only importable with torch

F = torch.nn.functional
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["float32", "float64", "float16", "bfloat16"]


def numpy_of(t):
    return to_numpy(t)


# (name, our function, its NumPy twin (x, p, seed, offset) -> (y, mask), input shape)
def _np_dims(dims, alpha=False):
    fn = rf.alpha_dropout if alpha else rf.dropout
    return lambda x, p, s, o: fn(x, p, broadcast_dims=dims, seed=s, offset=o)


FUNCS = [
    ("dropout_shared", lambda t, p, **kw: rt.dropout_shared(t, p, broadcast_dims=(0, 2), **kw), _np_dims((0, 2)),
     (5, 6, 7)),
    ("dropout1d", lambda t, p, **kw: rt.dropout1d(t, p, **kw), _np_dims((2,)), (4, 6, 9)),
    ("dropout1d-unbatched", lambda t, p, **kw: rt.dropout1d(t, p, **kw), _np_dims((1,)), (6, 9)),
    ("dropout2d", lambda t, p, **kw: rt.dropout2d(t, p, **kw), _np_dims((2, 3)), (3, 4, 5, 6)),
    ("dropout3d", lambda t, p, **kw: rt.dropout3d(t, p, **kw), _np_dims((2, 3, 4)), (2, 3, 4, 3, 5)),
    ("dropout3d-unbatched", lambda t, p, **kw: rt.dropout3d(t, p, **kw), _np_dims((1, 2, 3)), (3, 4, 3, 5)),
    ("alpha_dropout", lambda t, p, **kw: rt.alpha_dropout(t, p, True, **kw), _np_dims((), alpha=True), (7, 11)),
    ("feature_alpha_dropout", lambda t, p, **kw: rt.feature_alpha_dropout(t, p, True, **kw),
     _np_dims((2, 3), alpha=True), (3, 4, 5, 6)),
    ("drop_path", lambda t, p, **kw: rt.drop_path(t, p, True, **kw),
     lambda x, p, s, o: rf.drop_path(x, p, seed=s, offset=o), (8, 3, 5)),
    ("drop_path-unscaled", lambda t, p, **kw: rt.drop_path(t, p, True, False, **kw),
     lambda x, p, s, o: rf.drop_path(x, p, seed=s, offset=o, scale_by_keep=False), (8, 3, 5)),
]
func_param = pytest.mark.parametrize("name,fn,np_fn,shape", FUNCS, ids=[f[0] for f in FUNCS])


def randn(shape, dtype=torch.float32, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@func_param
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_equals_numpy_api_forward_and_backward(name, fn, np_fn, shape, dtype, store):
    """The tensor functions are the NumPy API at the Generator's position, bit for bit, forward and backward;
    the Generator advances by the number of decisions."""
    x = randn(shape, dtype).requires_grad_()
    gen = rf.Generator(17, offset=5)
    y = fn(x, 0.4, store=store, generator=gen)
    y_ref, m_ref = np_fn(numpy_of(x), 0.4, 17, 5)
    assert np.array_equal(numpy_of(y).view(np.uint8), y_ref.view(np.uint8)), name
    assert gen.get_state() == (17, 5 + m_ref.reduced_size)
    g = randn(shape, dtype, seed=1)
    y.backward(g)
    backward = rf.alpha_dropout_backward if "alpha" in name else rf.dropout_backward
    assert np.array_equal(numpy_of(x.grad).view(np.uint8), backward(numpy_of(g), m_ref).view(np.uint8)), name


def test_mask_kept_is_one_bit_per_decision():
    """Dropout2d's backward keeps N*C bits (torch's Dropout2d keeps a full-size mask), nothing with
    store="seed"."""
    x = randn((4, 8, 16, 16))
    _, bits = torch.ops.regdrop_fast.dropout_variant_fwd(x, 0.5, torch.tensor([1, 0]), True, [2, 3], 0)
    assert bits.numel() == 4 * 8 // 8 and bits.dtype == torch.uint8
    _, none = torch.ops.regdrop_fast.dropout_variant_fwd(x, 0.5, torch.tensor([1, 0]), False, [2, 3], 0)
    assert none.numel() == 0


@pytest.mark.parametrize("ours,theirs,shapes", [
    (rt.dropout1d, F.dropout1d, [(6, 7), (6, 7, 8), (40,), (6, 7, 8, 9)]),
    (rt.dropout2d, F.dropout2d, [(6, 7, 8, 9), (6, 7, 8), (6, 7), (4, 5, 6, 7, 3), (40,)]),
    (rt.dropout3d, F.dropout3d, [(4, 5, 6, 7, 3), (6, 7, 8, 9), (6, 7, 8), (40,), ()]),
    (rt.feature_alpha_dropout, F.feature_alpha_dropout, [(6, 7, 8, 9), (6, 7), (40,)]),
    (rt.alpha_dropout, F.alpha_dropout, [(6, 7), (40,), ()]),
], ids=["dropout1d", "dropout2d", "dropout3d", "feature_alpha", "alpha"])
def test_rank_rules_warnings_and_errors_are_torchs(ours, theirs, shapes):
    """Each rank gives what torch gives: the same exception type and message, the same warnings, and the
    same axes sharing one decision (every axis has 6 or more entries, so a chance of equal decisions along
    an independent axis is below 2^-5 per slice, and the slices are many)."""
    for shape in shapes:
        outcomes = []
        for f in (theirs, ours):
            torch.manual_seed(0)
            x = torch.ones(shape) if shape else torch.tensor(1.0)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    y = f(x, 0.5, True)
                    error = None
                except Exception as exc:  # noqa: BLE001  compared below
                    y, error = None, (type(exc), str(exc))
            outcomes.append((error, [str(w.message) for w in caught], y))
        (e_t, w_t, y_t), (e_o, w_o, y_o) = outcomes
        assert e_o == e_t, shape
        assert w_o == w_t, shape
        if y_t is not None:
            assert y_o.shape == y_t.shape
            if y_t.dim() > 0:
                assert shared_axes(y_o) == shared_axes(y_t), shape


def shared_axes(y):
    """The axes along which every slice of y is constant (where torch's noise is broadcast)."""
    return {d for d in range(y.dim()) if bool((y == y.narrow(d, 0, 1)).all())}


def test_eval_p_zero_and_empty_return_the_input():
    x = torch.ones(2, 3, 4, 5)
    for f in (lambda t, p, tr: rt.dropout2d(t, p, tr), lambda t, p, tr: rt.dropout3d(t, p, tr),
              lambda t, p, tr: rt.alpha_dropout(t, p, tr), lambda t, p, tr: rt.feature_alpha_dropout(t, p, tr),
              lambda t, p, tr: rt.drop_path(t, p, tr), lambda t, p, tr: rt.dropout_shared(t, p, tr, broadcast_dims=1)):
        assert f(x, 0.5, False) is x
        assert f(x, 0.0, True) is x
        e = torch.ones(0, 3, 4, 5)
        assert f(e, 0.5, True) is e
    assert rt.alpha_dropout(x, 0.5) is x and rt.drop_path(x, 0.5) is x  # their default: training=False


@pytest.mark.parametrize("fn", [rt.dropout1d, rt.dropout2d, rt.dropout3d, rt.alpha_dropout, rt.feature_alpha_dropout])
def test_inplace(fn):
    x = randn((2, 3, 4, 5, 6)) if fn is rt.dropout3d else randn((3, 4, 5, 6)) if fn is rt.dropout2d else randn((3, 4, 5))
    expected = fn(x.clone(), 0.3, True, generator=rf.Generator(2))
    y = fn(x, 0.3, True, True, generator=rf.Generator(2))
    assert y is x and torch.equal(x, expected)


@pytest.mark.parametrize("store", ["bits", "seed"])
def test_gradcheck_double_backward_and_forward_ad(store):
    x = randn((3, 4, 5), torch.float64).requires_grad_()
    for f in (lambda t: rt.dropout_shared(t, 0.3, broadcast_dims=-1, store=store, generator=rf.Generator(4)),
              lambda t: rt.alpha_dropout(t, 0.3, True, store=store, generator=rf.Generator(4)),
              lambda t: rt.feature_alpha_dropout(t, 0.3, True, store=store, generator=rf.Generator(4)),
              lambda t: rt.drop_path(t, 0.5, True, False, store=store, generator=rf.Generator(4))):
        assert torch.autograd.gradcheck(f, (x,), check_forward_ad=True)
        assert torch.autograd.gradgradcheck(f, (x,), check_fwd_over_rev=True)


def test_channels_last_keeps_layout_and_the_twins_mask():
    x = randn((2, 6, 5, 7)).to(memory_format=torch.channels_last)
    y = rt.dropout2d(x, 0.5, generator=rf.Generator(3))
    assert y.stride() == x.stride()
    assert torch.equal(y, rt.dropout2d(x.contiguous(), 0.5, generator=rf.Generator(3)))


def test_vmap_randomness():
    x = torch.ones(3, 4, 6, 5)

    def f(t):
        return rt.dropout1d(t, 0.5)

    with pytest.raises(RuntimeError, match="randomness"):
        torch.vmap(f)(x)
    torch.manual_seed(0)
    same = torch.vmap(f, randomness="same")(x)
    assert all(torch.equal(same[0], same[b]) for b in range(3))
    different = torch.vmap(f, randomness="different")(torch.ones(8, 4, 6, 5))
    assert not all(torch.equal(different[0], different[b]) for b in range(8))
    # a Generator's unbatched seed: sample b uses the stream from offset + b * (decisions per sample)
    gen = torch.vmap(lambda t: rt.dropout1d(t, 0.5, generator=rf.Generator(6)), randomness="different")(x)
    for b in range(3):
        expected, _ = rf.dropout(np.ones((4, 6, 5), np.float32), 0.5, broadcast_dims=2, seed=6, offset=b * 24)
        assert np.array_equal(gen[b].numpy(), expected)
    grads = torch.vmap(torch.func.grad(lambda t: (rt.drop_path(t, 0.5, True, generator=rf.Generator(6)) * t).sum()),
                       randomness="different")(randn((3, 4, 2)))
    assert grads.shape == (3, 4, 2)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_equals_eager(backend):
    torch._dynamo.reset()

    def model(gen):
        def run(x):
            h = rt.dropout2d(x, 0.3, generator=gen)
            h = rt.feature_alpha_dropout(h, 0.2, True, store="seed", generator=gen)
            h = rt.alpha_dropout(h, 0.1, True, generator=gen)
            h = rt.drop_path(h, 0.25, True, generator=gen)
            return rt.dropout_shared(h, 0.2, broadcast_dims=(0, 3), generator=gen) * 2
        return run

    gen_c, gen_e = rf.Generator(9), rf.Generator(9)
    compiled = torch.compile(model(gen_c), fullgraph=True, backend=backend)
    data = randn((4, 3, 5, 6))
    for _ in range(2):
        outs = []
        for fn in (compiled, model(gen_e)):
            x = data.clone().requires_grad_()
            y = fn(x)
            y.backward(torch.ones_like(y))
            outs.append((y.detach(), x.grad))
        (y_c, g_c), (y_e, g_e) = outs
        torch.testing.assert_close(y_c, y_e, rtol=0, atol=0)
        torch.testing.assert_close(g_c, g_e, rtol=0, atol=0)
        assert gen_c.get_state() == gen_e.get_state()


@pytest.mark.filterwarnings(
    "ignore:The .grad attribute of a Tensor that is not a leaf Tensor is being accessed:UserWarning:"
    "torch._subclasses.meta_utils"
)
def test_opcheck_variant_ops():
    seed = torch.tensor([5, 7])
    x = randn((6, 5, 4), torch.float64).requires_grad_()
    cl = randn((2, 3, 4, 5), torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    _, bits = torch.ops.regdrop_fast.dropout_variant_fwd(x.detach(), 0.3, seed, True, [1], 0)
    cases = [
        (torch.ops.regdrop_fast.dropout_variant_fwd, (x, 0.3, seed, True, [1], 0)),
        (torch.ops.regdrop_fast.dropout_variant_fwd, (x, 0.3, seed, False, [], 2)),
        (torch.ops.regdrop_fast.dropout_variant_fwd, (x, 0.3, seed, True, [1, 2], 1)),
        (torch.ops.regdrop_fast.dropout_variant_fwd, (cl, 0.3, seed, True, [2, 3], 2)),
        (torch.ops.regdrop_fast.dropout_variant_bwd, (randn((6, 5, 4), torch.float64).requires_grad_(), bits, seed,
                                                      0.3, True, [1], 0)),
        (torch.ops.regdrop_fast.dropout_variant_bwd, (randn((6, 5, 4), torch.float64).requires_grad_(),
                                                      torch.empty(0, dtype=torch.uint8), seed, 0.3, False, [1], 2)),
    ]
    for op, args in cases:
        result = torch.library.opcheck(op.default, args)
        assert set(result.values()) == {"SUCCESS"}, (op, result)


def test_time_shared_rnn_dropout():
    """Variational RNN dropout: one mask for every step of a (T, N, H) sequence, the same as dropping each
    step with the mask of the first."""
    seq = randn((7, 3, 16)).requires_grad_()
    y = rt.dropout_shared(seq, 0.5, broadcast_dims=0, generator=rf.Generator(12))
    zero = y == 0
    assert torch.equal(zero, zero[:1].expand_as(zero))
    y.sum().backward()
    assert torch.equal(seq.grad != 0, ~zero)


@pytest.mark.parametrize("p", (0.2, 0.5, 0.8))
def test_alpha_keeps_mean_and_std_like_torch(p):
    """On standard-normal input the output keeps mean 0 and std 1 within 0.1 (Keras's bound), as torch's
    own alpha_dropout does on the same input."""
    x = randn((100000,))
    ours = rt.alpha_dropout(x, p, True, generator=rf.Generator(1))
    theirs = F.alpha_dropout(x, p, True)
    for y in (ours, theirs):
        assert abs(float(y.mean())) < 0.1 and abs(float(y.std()) - 1) < 0.1
    assert math.isclose(float(ours.std()), float(theirs.std()), abs_tol=0.03)
