"""regdrop_fast.torch: the drop-in Dropout, seeding, autograd, torch.compile, and the penalty helpers.

PyTorch's own dropout test cases run against regdrop_fast.torch.Dropout; values are checked bit for bit
against the NumPy API (same seed and offset give the same mask, docs/rng.md); an MLP trained with it gives
the same losses as the same MLP written with torch ops fed the same masks. CUDA tests need a GPU.
"""

from __future__ import annotations

import copy
import itertools
import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import BFLOAT16, same_bits, to_numpy

import regdrop_fast as rf

torch = pytest.importorskip("torch")
import regdrop_fast.torch as rt  # only importable with torch

nn = torch.nn
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["float32", "float64", "float16", "bfloat16"]
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and rf.cuda.is_available()), reason="needs a CUDA GPU and the CUDA build"
)


def from_numpy(a: np.ndarray) -> torch.Tensor:
    if a.dtype == BFLOAT16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def keep_mask(shape, p, seed, offset) -> torch.Tensor:
    """The keep decisions of a call at (seed, offset), from the NumPy API (C-order flat index)."""
    return torch.from_numpy(rf.dropout_mask(tuple(shape), p, seed=seed, offset=offset).to_bool())


def scaled(x: torch.Tensor, p: float) -> torch.Tensor:
    """x * (1/(1-p)) rounded as the kernels do: in float32 for the 16-bit types, float64 for float64."""
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    return (x.to(compute) * torch.tensor(1.0 / (1.0 - p), dtype=compute)).to(x.dtype)


# ----------------------------------------------------------------------------------------------------------
# import


def test_import_without_torch_says_what_to_install():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import regdrop_fast\n"
        "g = regdrop_fast.Generator(3)\n"
        "try:\n"
        "    import regdrop_fast.torch\n"
        "except ImportError as e:\n"
        "    print('IMPORTERROR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "IMPORTERROR" in out and "pip install torch" in out and "regdrop_fast[torch]" in out


def test_module_exports():
    assert rt.Generator is rf.Generator
    assert issubclass(rt.Dropout, nn.Dropout)
    for name in rt.__all__:
        assert hasattr(rt, name)


# ----------------------------------------------------------------------------------------------------------
# PyTorch's own dropout test cases (test_nn.py: _test_dropout, _test_dropout_discontiguous,
# _test_dropout_stride_mean_preserve), run against regdrop_fast.torch.Dropout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_torch_dropout_case_mean(dtype):
    torch.manual_seed(0)
    p = 0.2
    input = torch.empty(1000, dtype=dtype).fill_(1 - p)

    module = rt.Dropout(p)
    input_var = input.clone().requires_grad_()
    output = module(input_var)
    assert output.is_contiguous()
    assert abs(output.float().mean().item() - (1 - p)) < 0.05
    output.backward(input)
    assert input_var.grad.is_contiguous()
    assert abs(input_var.grad.float().mean().item() - (1 - p)) < 0.05

    module = rt.Dropout(p, True)
    input_var = input.clone().requires_grad_()
    output = module(input_var + 0)
    assert output.is_contiguous()
    assert abs(output.float().mean().item() - (1 - p)) < 0.05
    output.backward(input)
    assert input_var.grad.is_contiguous()
    assert abs(input_var.grad.float().mean().item() - (1 - p)) < 0.05

    # eval mode changes nothing, in place or not
    for inplace in (True, False):
        module = rt.Dropout(p, inplace).eval()
        assert torch.equal(input, module(input))

    module.__repr__()
    str(module)


@pytest.mark.parametrize("p", [0.0, 1e-10])
def test_torch_dropout_case_discontiguous_unchanged(p):
    inp = torch.ones(2, 3, 3, 3)
    inp_discontiguous = torch.empty(2, 3, 3, 6)[..., ::2]
    inp_discontiguous.copy_(inp)
    out = rt.Dropout(p=p)(inp_discontiguous)
    if p != 0:
        assert out.is_contiguous()
    assert torch.equal(inp_discontiguous, out)


def test_torch_dropout_case_stride_mean_preserve():
    # PyTorch's case on a 3-D tensor: every axis permutation, shifted views; the mean is kept and p = 1e-10
    # changes nothing.
    torch.manual_seed(0)  # the statistical checks below are loose; a fixed seed makes them deterministic
    inp = torch.ones(3, 4, 5)
    for perm in itertools.permutations((0, 1, 2)):
        inverse = tuple(perm.index(k) for k in range(3))
        for shift in [(0, 0), (1, 0), (0, 1), (1, 1)]:
            for p in (1e-10, 0.3, 0.5, 0.7):
                permuted = inp.permute(perm).contiguous().permute(inverse)[shift[0]:, shift[1]:, :]
                out = rt.Dropout(p=p)(permuted)
                # Each output element is 0 (probability p) or 1/(1-p): mean 1, variance p/(1-p). The mean of
                # the n = permuted.numel() elements (30 to 60 here) has standard error sqrt(p / ((1-p) n));
                # allow k = 4 of them (a two-sided 4-sigma miss has probability 6e-5 per check, and the seed
                # is fixed) plus 1e-6 for float32 rounding of the sum. p = 1e-10 thus demands the exact mean.
                n = permuted.numel()
                tolerance = 4 * math.sqrt(p / ((1 - p) * n)) + 1e-6
                assert abs(out.mean().item() - inp.mean().item()) <= tolerance, (perm, shift, p)
                if p == 1e-10:
                    assert torch.equal(permuted, out)
                else:
                    assert not torch.equal(permuted, out)


def test_p_one_gives_zeros_and_zero_grads():
    x = torch.randn(100, requires_grad=True)
    y = rt.dropout(x, 1.0)
    assert torch.equal(y, torch.zeros(100))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros(100))
    # A dropped NaN or inf is 0 (a selection, not a multiplication by 0)
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0])
    assert torch.equal(rt.dropout(special, 1.0), torch.zeros(4))


@pytest.mark.parametrize("shape", [(0,), (0, 5), (3, 0, 2)])
def test_empty_tensors_keep_their_shape(shape):
    x = torch.empty(shape, requires_grad=True)
    y = rt.Dropout(0.5)(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert rt.Dropout(0.5, inplace=True)(torch.empty(shape)).shape == shape


def strided_views():
    base = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(3))
    views = [base.permute(perm) for perm in itertools.permutations((0, 1, 2))]
    views += [base[1:, ::2, 1:], base[..., ::3], base[:, 1:4].transpose(0, 2), base[::2, 1:, 2:5]]
    return base, views


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_strided_and_permuted_inputs(p):
    base, views = strided_views()
    before = base.clone()
    for k, x in enumerate(views):
        y = rt.dropout(x, p, generator=rf.Generator(100 + k))
        keep = keep_mask(x.shape, p, 100 + k, 0)
        assert y.shape == x.shape and y.stride() == torch.empty_like(x).stride(), f"view {k}"  # torch's layout
        assert torch.equal(y, torch.where(keep, scaled(x, p), torch.zeros(()))), f"view {k}"
        # default seeding: every element is 0 or x / (1 - p)
        y = rt.dropout(x, p)
        assert bool(((y == 0) | (y == scaled(x, p))).all())
    assert torch.equal(base, before)


# Memory formats (issue 11 part 1): the result has the input's strides, as torch's dropout, and the mask of
# the input's C-contiguous twin (decisions by logical index), forward and backward, both store modes.
MEMORY_FORMATS = [((2, 3, 5, 7), torch.channels_last), ((2, 3, 4, 5, 6), torch.channels_last_3d),
                  ((3, 70, 9, 11), torch.channels_last)]


@pytest.mark.parametrize("store", ["bits", "seed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
def test_memory_formats_keep_the_layout_and_the_twins_mask(dtype, store):
    for k, (shape, fmt) in enumerate(MEMORY_FORMATS):
        data = torch.randn(shape, generator=torch.Generator().manual_seed(k)).to(dtype)
        x = data.to(memory_format=fmt).requires_grad_()
        twin = data.clone().requires_grad_()
        y = rt.dropout(x, 0.3, store=store, generator=rf.Generator(7 + k))
        y_twin = rt.dropout(twin, 0.3, store=store, generator=rf.Generator(7 + k))
        assert y.stride() == x.stride() and y.is_contiguous(memory_format=fmt)
        assert torch.equal(y, y_twin)
        grad = torch.randn(shape, generator=torch.Generator().manual_seed(50 + k)).to(dtype)
        y.backward(grad.to(memory_format=fmt))
        y_twin.backward(grad)
        assert x.grad.stride() == x.stride()
        assert torch.equal(x.grad, twin.grad)


def test_every_permutation_keeps_its_strides_and_the_twins_mask():
    data = torch.randn(3, 4, 5, 6, generator=torch.Generator().manual_seed(1))
    for perm in itertools.permutations(range(4)):
        x = data.permute(perm).detach().requires_grad_()  # dense; C-contiguous only for the identity
        assert x.is_contiguous() == (perm == (0, 1, 2, 3))
        y = rt.dropout(x, 0.4, generator=rf.Generator(3))
        twin = rt.dropout(x.detach().contiguous(), 0.4, generator=rf.Generator(3))
        assert y.stride() == x.stride(), perm
        assert torch.equal(y, twin), perm
        y.backward(torch.ones_like(y))
        assert torch.equal(x.grad, (twin != 0).to(x.dtype) / 0.6), perm


@pytest.mark.parametrize("store", ["bits", "seed"])
def test_in_place_on_channels_last_keeps_the_tensor(store):
    data = torch.randn(2, 8, 5, 7, generator=torch.Generator().manual_seed(4))
    expected = rt.dropout(data, 0.5, store=store, generator=rf.Generator(11))
    x = data.to(memory_format=torch.channels_last)
    ptr, stride = x.data_ptr(), x.stride()
    out = rt.Dropout(0.5, inplace=True, store=store, generator=rf.Generator(11))(x)
    assert out is x and x.data_ptr() == ptr and x.stride() == stride
    assert torch.equal(x, expected)


def test_in_place_on_views_writes_through():
    _, views = strided_views()
    for k, x in enumerate(views):
        expected = rt.dropout(x, 0.4, generator=rf.Generator(k))
        out = rt.dropout(x, 0.4, inplace=True, generator=rf.Generator(k))
        assert out is x
        assert torch.equal(x, expected)


def test_invalid_p_raises_torchs_value_error():
    for p in (-0.1, 1.1, 2):
        with pytest.raises(ValueError) as ours:
            rt.Dropout(p)
        with pytest.raises(ValueError) as theirs:
            nn.Dropout(p)
        assert str(ours.value) == str(theirs.value)
        with pytest.raises(ValueError) as ours_f:
            rt.dropout(torch.ones(3), p)
        with pytest.raises(ValueError) as theirs_f:
            nn.functional.dropout(torch.ones(3), p)
        assert str(ours_f.value) == str(theirs_f.value)
    with pytest.raises(ValueError, match="between 0 and 1, but got nan"):
        rt.Dropout(float("nan"))
    with pytest.raises(TypeError, match="real number, got bool"):
        rt.Dropout(True)
    with pytest.raises(ValueError, match="between 0 and 1, but got nan"):
        rt.dropout(torch.ones(3), float("nan"))
    # p modified after construction is checked at the call
    m = rt.Dropout(0.5)
    m.p = 1.5
    with pytest.raises(ValueError, match="between 0 and 1"):
        m(torch.ones(3))


def test_repr_and_module_behaviour_match_torch():
    for args in [(), (0.3,), (0.3, True), (0.0, False)]:
        assert repr(rt.Dropout(*args)) == repr(nn.Dropout(*args))
    m = rt.Dropout(0.3)
    assert isinstance(m, nn.Dropout) and m.training
    assert repr(rt.Dropout(0.1, store="seed")) == "Dropout(p=0.1, inplace=False, store='seed')"
    assert "generator=regdrop_fast.Generator(seed=5, offset=0)" in repr(rt.Dropout(generator=rf.Generator(5)))
    x = torch.randn(10)
    assert m.eval()(x) is x  # eval returns the input itself, as torch does
    assert rt.dropout(x, 0.5, training=False) is x and rt.dropout(x, 0.0) is x
    assert nn.functional.dropout(x, 0.5, training=False) is x
    assert list(m.state_dict()) == []


def test_train_eval_inside_a_model():
    model = nn.Sequential(nn.Linear(8, 8), rt.Dropout(0.5, generator=rf.Generator(1)))
    x = torch.randn(4, 8)
    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a, b)
    assert model[1].generator.offset == 0  # eval draws nothing
    model.train()
    c, d = model(x), model(x)
    assert not torch.equal(c, d) and model[1].generator.offset == 64


def test_in_place_semantics():
    # no grad: the input's memory is written
    x = torch.randn(50)
    expected = rt.dropout(x, 0.3, generator=rf.Generator(2))
    assert rt.dropout(x, 0.3, inplace=True, generator=rf.Generator(2)) is x and torch.equal(x, expected)
    # non-leaf requiring grad: autograd sees the in-place write
    w = torch.randn(50, requires_grad=True)
    h = w * 2
    out = rt.dropout(h, 0.3, inplace=True, generator=rf.Generator(2))
    assert out is h
    out.sum().backward()
    keep = keep_mask((50,), 0.3, 2, 0)
    assert torch.equal(w.grad, torch.where(keep, scaled(torch.full((50,), 2.0), 0.3), torch.zeros(())))
    # a leaf that requires grad cannot be modified in place (torch's rule)
    leaf = torch.randn(5, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        nn.functional.dropout(leaf, 0.5, inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        rt.dropout(leaf, 0.5, inplace=True)


def test_bad_arguments():
    x = torch.ones(4)
    with pytest.raises(TypeError, match="dtype torch.int64 is not supported"):
        rt.dropout(torch.ones(4, dtype=torch.int64), 0.5)
    with pytest.raises(TypeError, match="dtype torch.complex64 is not supported"):
        rt.dropout(torch.ones(4, dtype=torch.complex64), 0.5)
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        rt.dropout(np.ones(4, np.float32), 0.5)
    with pytest.raises(TypeError, match="real number"):
        rt.dropout(x, "0.5")
    with pytest.raises(ValueError, match="store: expected 'bits' or 'seed'"):
        rt.dropout(x, 0.5, store="bytes")
    with pytest.raises(ValueError, match="store"):
        rt.Dropout(0.5, store="none")
    with pytest.raises(TypeError, match="torch.Generator cannot drive"):
        rt.dropout(x, 0.5, generator=torch.Generator())
    with pytest.raises(TypeError, match="regdrop_fast.Generator"):
        rt.Dropout(0.5, generator=7)
    with pytest.raises(ValueError, match="layout"):
        rt.dropout(torch.ones(4).to_sparse(), 0.5)
    assert torch.equal(x, torch.ones(4))


# ----------------------------------------------------------------------------------------------------------
# values: the same bits as the NumPy API for the same (seed, offset)


@dtype_param
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_forward_and_backward_equal_numpy_api(dtype, store):
    n, p, seed = 4099, 0.3, 0xDEADBEEF12345678
    x = (3 * torch.randn(n, generator=torch.Generator().manual_seed(0))).to(dtype).requires_grad_()
    g = (3 * torch.randn(n, generator=torch.Generator().manual_seed(1))).to(dtype)
    gen = rf.Generator(seed, offset=5)
    y = rt.dropout(x, p, store=store, generator=gen)
    y.backward(g)
    y_np, mask = rf.dropout(to_numpy(x), p, seed=seed, offset=5)
    assert same_bits(y, from_numpy(y_np))
    assert same_bits(x.grad, from_numpy(rf.dropout_backward(to_numpy(g), mask)))
    assert gen.get_state() == (seed, 5 + n)


@dtype_param
def test_mask_bits_returned_by_the_op(dtype):
    x = torch.randn(1001).to(dtype)
    seed = torch.tensor([7, 11])
    y, bits = torch.ops.regdrop_fast.dropout_fwd(x, 0.25, seed, True)
    assert bits.dtype == torch.uint8 and bits.shape == (126,)
    assert np.array_equal(bits.numpy(), rf.dropout_mask(1001, 0.25, seed=7, offset=11).bits)
    y2, no_bits = torch.ops.regdrop_fast.dropout_fwd(x, 0.25, seed, False)
    assert no_bits.shape == (0,) and same_bits(y, y2)


def test_seed_tensor_is_checked():
    with pytest.raises(ValueError, match="seed: expected a CPU int64 tensor of shape"):
        torch.ops.regdrop_fast.dropout_fwd(torch.ones(3), 0.5, torch.tensor([1, 2, 3]), True)


def test_memory_kept_for_backward():
    """store='bits' keeps n/8 bytes (+16 for the seed), store='seed' 16 bytes; torch's CPU dropout keeps a
    noise tensor of the input's dtype (4 bytes per float32 element)."""
    n = 1 << 16

    def saved(fn):
        sizes = []

        def pack(t):
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(torch.randn(n, requires_grad=True))
        return sum(sizes)

    assert saved(lambda x: rt.dropout(x, 0.5)) == n // 8 + 16
    assert saved(lambda x: rt.dropout(x, 0.5, store="seed")) == 16
    assert saved(lambda x: nn.functional.dropout(x, 0.5)) == 4 * n


# ----------------------------------------------------------------------------------------------------------
# seeding


def test_manual_seed_reproduces_and_calls_differ():
    x = torch.randn(3000)
    torch.manual_seed(1234)
    a1, a2 = rt.dropout(x, 0.5), rt.dropout(x, 0.5)
    torch.manual_seed(1234)
    b1, b2 = rt.dropout(x, 0.5), rt.dropout(x, 0.5)
    torch.manual_seed(4321)
    c1 = rt.dropout(x, 0.5)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2) and not torch.equal(a1, c1)
    # the draw is two words in [0, 2^62) from the default CPU generator: seed, then offset (rounded down to a
    # multiple of 4, a Philox block boundary)
    torch.manual_seed(1234)
    seed, offset = torch.randint(0, 1 << 62, (2,), dtype=torch.int64).tolist()
    offset -= offset % 4
    assert torch.equal(a1, torch.where(keep_mask((3000,), 0.5, seed, offset), scaled(x, 0.5), torch.zeros(())))


def test_generator_state_and_copies():
    g = rf.Generator(5)
    assert g.get_state() == (5, 0) and g.initial_seed() == 5
    assert g.next(10) == (5, 0) and g.next(3) == (5, 10) and g.offset == 13
    h = copy.deepcopy(g)
    assert h.get_state() == (5, 13) and h._state is not g._state
    h.next(100)
    assert g.offset == 13  # a copy has its own state
    u = pickle.loads(pickle.dumps(g))
    assert u.get_state() == (5, 13) and u._torch_state is not None
    g.set_offset((1 << 64) - 2)
    assert g.next(5) == (5, (1 << 64) - 2) and g.offset == 3  # the stream wraps
    g.manual_seed(9)
    assert g.get_state() == (9, 0)
    assert rf.Generator().seed != rf.Generator().seed  # fresh OS entropy
    with pytest.raises(ValueError):
        rf.Generator(-1)
    with pytest.raises(TypeError):
        rf.Generator(1.5)
    with pytest.raises(TypeError):
        g.set_state(3)


def test_generator_advances_per_call_like_philox():
    x = torch.randn(6, 7)
    g1, g2 = rf.Generator(77), rf.Generator(77)
    a = [rt.dropout(x, 0.5, generator=g1) for _ in range(3)]
    b = [rt.dropout(x, 0.5, generator=g2) for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], a[1])
    assert g1.offset == 3 * 42
    for k in range(3):
        assert torch.equal(a[k], torch.where(keep_mask(x.shape, 0.5, 77, 42 * k), scaled(x, 0.5), torch.zeros(())))
    # the state tensor is a view of the generator's own memory (NumPy and torch share one state)
    s, o = g1.next(1)
    assert (s, o) == (77, 126) and g1._torch_state.tolist() == [77, 127]


def test_generator_made_before_import_is_attached_on_use():
    g = rf.Generator(3)
    g._torch_state = None  # as for a generator created before regdrop_fast.torch was imported
    torch._dynamo.reset()
    f = torch.compile(lambda x: rt.dropout(x, 0.5, generator=g), fullgraph=True, backend="aot_eager")
    with pytest.raises(RuntimeError) as info:  # a clear error, not a silently frozen state
        f(torch.ones(10))
    assert "created before regdrop_fast.torch was imported" in str(info.value) + repr(info.value.__cause__)
    assert g.offset == 0
    rt.dropout(torch.ones(10), 0.5, generator=g)  # eager: attached on first use
    assert g.offset == 10 and g._torch_state.data_ptr() == g._state.ctypes.data
    f(torch.ones(10))
    assert g.offset == 20


# ----------------------------------------------------------------------------------------------------------
# autograd


@pytest.mark.parametrize("store", ["bits", "seed"])
def test_gradcheck_float64(store):
    x = torch.randn(7, 9, dtype=torch.float64, requires_grad=True)

    def f(x):  # a fresh generator per call: every evaluation uses the same mask
        return rt.dropout(x, 0.4, store=store, generator=rf.Generator(11))

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


# ----------------------------------------------------------------------------------------------------------
# forward-mode AD and vmap


def fixed(p=0.4, inplace=False, store="bits"):
    """rt.dropout with a fresh Generator per call, so every evaluation draws the same mask."""
    return lambda x: rt.dropout(x, p, inplace=inplace, store=store, generator=rf.Generator(11))


@pytest.mark.parametrize("store", ["bits", "seed"])
def test_fn_fwgrad_bwgrad(store):
    # OpInfo's fn_fwgrad_bwgrad and gradcheck with every check F.dropout's OpInfo runs
    x = torch.randn(7, 9, dtype=torch.float64, requires_grad=True)
    f = fixed(store=store)
    assert torch.autograd.gradcheck(f, (x,), check_forward_ad=True, check_backward_ad=True,
                                    check_batched_grad=True, check_batched_forward_grad=True)
    assert torch.autograd.gradgradcheck(f, (x,), check_fwd_over_rev=True, check_batched_grad=True)
    # in place on a non-leaf, as F.dropout's inplace variant is checked
    g = lambda x: fixed(inplace=True, store=store)(x * 1.0)  # noqa: E731
    assert torch.autograd.gradcheck(g, (x,), check_forward_ad=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(g, (x,), check_fwd_over_rev=True)


@pytest.mark.parametrize("inplace", [False, True])
def test_forward_ad_tangent_goes_through_the_mask(inplace):
    x, t = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    f = fixed(0.3)
    y, jt = torch.func.jvp(fixed(0.3, inplace), (x.clone(),), (t.clone(),))
    assert torch.equal(y, f(x)) and torch.equal(jt, f(t))
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        d = fwAD.make_dual(x.clone(), t.clone())
        out = fixed(0.3, inplace)(d)
        assert (out is d) == inplace
        primal, tangent = fwAD.unpack_dual(out)
        assert torch.equal(primal, f(x)) and torch.equal(tangent, f(t))  # not the tangent unchanged
    jac = torch.func.jacfwd(f, randomness="same")(x)
    assert torch.equal(jac.reshape(30, 30), torch.diag(f(torch.ones_like(x)).reshape(-1)))
    assert torch.equal(torch.func.jacrev(f)(x), jac)


def test_penalty_forward_ad():
    ws = [torch.randn(3, 4, dtype=torch.float64, requires_grad=True),
          torch.randn(5, dtype=torch.float64, requires_grad=True)]
    f = lambda a, b: rt.penalty([a, b], l1=0.1, l2=[0.3, 0.2])  # noqa: E731
    assert torch.autograd.gradcheck(f, tuple(ws), check_forward_ad=True)
    ts = [torch.randn_like(w) for w in ws]
    _, jt = torch.func.jvp(f, tuple(w.detach() for w in ws), tuple(ts))
    expected = sum(((0.1 * w.sign() + c * w) * t).sum() for w, t, c in zip(ws, ts, [0.3, 0.2]))
    assert torch.allclose(jt, expected.detach(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("use_generator", [False, True])
def test_vmap_randomness_follows_torch(use_generator):
    x = torch.ones(4, 64)
    ours = (lambda r: rt.dropout(r, 0.5, generator=rf.Generator(5))) if use_generator else \
        (lambda r: rt.dropout(r, 0.5))
    for f in (ours, lambda r: nn.functional.dropout(r, 0.5)):
        with pytest.raises(RuntimeError, match="randomness error mode"):
            torch.vmap(f)(x)  # randomness="error" is the default
        same = torch.vmap(f, randomness="same")(x)
        assert all(torch.equal(same[0], row) for row in same)
        different = torch.vmap(f, randomness="different")(x)
        assert len({tuple(row.tolist()) for row in different}) == 4
        assert set(different.unique().tolist()) <= {0.0, 2.0}
    # an unbatched input with randomness="different": every sample its own mask, as torch (default seeding
    # only: with a Generator nothing of the call is batched, so vmap does not reach the batching rule)
    if use_generator:
        return
    out = torch.vmap(lambda _, r: ours(r), in_dims=(0, None), randomness="different")(torch.arange(3), torch.ones(64))
    assert out.shape == (3, 64) and not torch.equal(out[0], out[1])
    # backward under vmap: the gradient of each sample uses that sample's mask
    grads = torch.vmap(torch.func.grad(lambda r: ours(r).sum()), randomness="different")(x)
    assert torch.equal(grads, torch.where(grads != 0, 2.0, 0.0)) and len({tuple(g.tolist()) for g in grads}) == 4


@pytest.mark.parametrize("store", ["bits", "seed"])
@pytest.mark.parametrize("n", [16, 13], ids=["one-call", "per-sample"])
@pytest.mark.parametrize("in_dim", [0, 1])
def test_vmap_different_with_a_generator_is_the_call_over_the_batch(n, store, in_dim, monkeypatch):
    """randomness="different" with a Generator: sample b uses offsets o + b * n .. (consecutive ranges), the
    masks of one call over the batch (batch axis first); made by one kernel call when n % 8 == 0 (per-sample
    mask bits start on a byte), forward and backward. The gradients use each sample's own mask, also with
    store="seed" (the backward's seed is not batched: the vmap rule keeps the bits)."""
    batch = torch.randn(3, n, generator=torch.Generator().manual_seed(n))
    whole = rt.dropout(batch, 0.5, generator=rf.Generator(1))
    x = batch if in_dim == 0 else batch.t().contiguous()
    calls = []
    for name in ("dropout", "dropout_backward"):
        original = getattr(rf, name)
        monkeypatch.setattr(rf, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))

    def f(v):
        return rt.dropout(v, 0.5, store=store, generator=rf.Generator(1))

    y = torch.vmap(f, in_dims=in_dim, randomness="different")(x)
    assert torch.equal(y, whole)
    assert calls == (["dropout"] if n % 8 == 0 else ["dropout"] * 3)
    calls.clear()
    grads = torch.vmap(torch.func.grad(lambda v: (f(v) * v).sum()), in_dims=in_dim, randomness="different")(x)
    assert torch.equal(grads, 2 * whole)  # d/dv (dropout(v) * v) = keep * 2 * v + dropout(v), sample by sample
    assert calls.count("dropout_backward") == (1 if n % 8 == 0 else 3)
    inplace = torch.vmap(lambda v: rt.dropout(v, 0.5, inplace=True, store=store, generator=rf.Generator(1)),
                         in_dims=in_dim, randomness="different")(x.clone())
    assert torch.equal(inplace, whole)


def test_vmap_same_mask_equals_one_call():
    x = torch.randn(3, 40)
    out = torch.vmap(lambda r: rt.dropout(r, 0.3, generator=rf.Generator(8)), randomness="same")(x)
    keep = keep_mask((40,), 0.3, 8, 0)
    assert torch.equal(out, torch.where(keep, scaled(x, 0.3), torch.zeros(())))


def test_mlp_training_equals_torch_ops_with_same_masks():
    """100 SGD steps: rt.Dropout vs torch.where with masks from regdrop_fast.dropout_mask; same losses."""
    p = 0.3

    class MaskedDropout(nn.Module):
        def __init__(self, gen):
            super().__init__()
            self.gen = gen

        def forward(self, x):
            seed, offset = self.gen.next(x.numel())
            keep = keep_mask(x.shape, p, seed, offset)
            return torch.where(keep, x * (1.0 / (1.0 - p)), torch.zeros(()))

    def mlp(d1, d2):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), d1, nn.Linear(64, 64), nn.ReLU(), d2,
                             nn.Linear(64, 3))

    gen_a, gen_b = rf.Generator(2024), rf.Generator(2024)
    ours = mlp(rt.Dropout(p, generator=gen_a), rt.Dropout(p, store="seed", generator=gen_a))
    ref = mlp(MaskedDropout(gen_b), MaskedDropout(gen_b))
    data = torch.Generator().manual_seed(1)
    X, Y = torch.randn(32, 20, generator=data), torch.randint(0, 3, (32,), generator=data)
    opt_a = torch.optim.SGD(ours.parameters(), lr=0.05)
    opt_b = torch.optim.SGD(ref.parameters(), lr=0.05)
    losses = []
    for step in range(100):
        for model, opt in ((ours, opt_a), (ref, opt_b)):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X), Y)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        assert torch.equal(losses[-2], losses[-1]), f"step {step}: {losses[-2].item()} != {losses[-1].item()}"
    assert losses[-1] < 0.75 * losses[0]  # it did train
    assert gen_a.get_state() == gen_b.get_state()


# ----------------------------------------------------------------------------------------------------------
# torch.compile (fullgraph=True: any graph break is an error)


def small_model(*dropouts):
    """Linear layers with a dropout after each hidden one (before its ReLU: an in-place dropout may not
    overwrite a ReLU output, which ReLU's backward needs, with torch's Dropout as with ours)."""
    torch.manual_seed(0)
    layers = [nn.Linear(16, 32)]
    for d in dropouts:
        layers += [d, nn.ReLU(), nn.Linear(32, 32)]
    return nn.Sequential(*layers, nn.ReLU(), nn.Linear(32, 4))


def step(model, x):
    out = model(x)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return out.detach(), grads


def test_compile_aot_eager_fullgraph_equals_eager():
    torch._dynamo.reset()
    model = small_model(rt.Dropout(0.3), rt.Dropout(0.2, store="seed"), rt.Dropout(0.1, inplace=True))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(8, 16)
    torch.manual_seed(5)
    out_c, grads_c = step(compiled, x)
    torch.manual_seed(5)
    out_e, grads_e = step(model, x)
    assert torch.equal(out_c, out_e)  # aot_eager runs the same random op: the eager masks
    assert all(torch.equal(a, b) for a, b in zip(grads_c, grads_e))
    out_c2, _ = step(compiled, x)
    assert not torch.equal(out_c, out_c2)  # the next call draws new masks


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_keeps_channels_last():
    """A compiled graph (inductor) on a channels_last input returns what eager returns: layout, values and
    gradients (test_opcheck_every_op holds the fakes' strides to the real ones)."""
    torch._dynamo.reset()
    data = torch.randn(2, 6, 5, 7, generator=torch.Generator().manual_seed(9))
    gen_c, gen_e = rf.Generator(21), rf.Generator(21)

    def model(gen):
        return lambda x, store: rt.dropout(x, 0.4, store=store, generator=gen) * 3

    compiled = torch.compile(model(gen_c), fullgraph=True, backend="inductor")
    for store in ("bits", "seed"):
        results = []
        for fn in (compiled, model(gen_e)):
            x = data.to(memory_format=torch.channels_last).requires_grad_()
            y = fn(x, store)
            y.backward(torch.ones_like(y))
            results.append((y, x.grad))
        (y_c, g_c), (y_e, g_e) = results
        assert y_c.stride() == y_e.stride() == data.to(memory_format=torch.channels_last).stride()
        assert torch.equal(y_c, y_e) and torch.equal(g_c, g_e)


# Inductor's CPU codegen touches a deprecated torch.jit API; pytest turns warnings into errors here.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_inductor_fullgraph_forward_backward():
    torch._dynamo.reset()
    gen_c, gen_e = rf.Generator(31), rf.Generator(31)
    model_c = small_model(rt.Dropout(0.3, generator=gen_c), rt.Dropout(0.5, store="seed", generator=gen_c))
    model_e = small_model(rt.Dropout(0.3, generator=gen_e), rt.Dropout(0.5, store="seed", generator=gen_e))
    compiled = torch.compile(model_c, fullgraph=True, backend="inductor")
    x = torch.randn(8, 16)
    for _ in range(2):  # the second call runs the cached graph with the advanced generator
        out_c, grads_c = step(compiled, x)
        out_e, grads_e = step(model_e, x)
        torch.testing.assert_close(out_c, out_e)
        for a, b in zip(grads_c, grads_e):
            torch.testing.assert_close(a, b)
        assert gen_c.get_state() == gen_e.get_state()
    # default seeding under inductor: reproducible under torch.manual_seed, fresh masks per call
    model_d = small_model(rt.Dropout(0.5))
    compiled_d = torch.compile(model_d, fullgraph=True, backend="inductor")
    with torch.no_grad():
        torch.manual_seed(3)
        a = compiled_d(x)
        torch.manual_seed(3)
        b = compiled_d(x)
        c = compiled_d(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_compile_keeps_separate_calls_separate():
    """Two calls on the same tensor are not merged (CSE): each has its own seed input."""
    torch._dynamo.reset()
    gen = rf.Generator(8)

    def f(x):
        return torch.stack([rt.dropout(x, 0.5), rt.dropout(x, 0.5), rt.dropout(x, 0.5, generator=gen),
                            rt.dropout(x, 0.5, generator=gen)])

    r = torch.compile(f, fullgraph=True, backend="aot_eager")(torch.ones(1000))
    assert not torch.equal(r[0], r[1]) and not torch.equal(r[2], r[3])
    assert torch.equal(r[2], torch.where(keep_mask((1000,), 0.5, 8, 0), 2.0, 0.0))
    assert torch.equal(r[3], torch.where(keep_mask((1000,), 0.5, 8, 1000), 2.0, 0.0))
    assert gen.offset == 2000


def test_compile_dynamic_shapes():
    torch._dynamo.reset()
    gen_c, gen_e = rf.Generator(12), rf.Generator(12)

    def model(gen):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 8), rt.Dropout(0.5, generator=gen), nn.Linear(8, 2), rt.Dropout(0.2))

    m_c, m_e = model(gen_c), model(gen_e)
    compiled = torch.compile(m_c, fullgraph=True, dynamic=True, backend="aot_eager")
    for batch in (3, 5, 9):
        x = torch.randn(batch, 8)
        torch.manual_seed(batch)
        out_c, grads_c = step(compiled, x)
        torch.manual_seed(batch)
        out_e, grads_e = step(m_e, x)
        assert torch.equal(out_c, out_e)
        assert all(torch.equal(a, b) for a, b in zip(grads_c, grads_e))
    assert gen_c.get_state() == gen_e.get_state() == (12, 8 * (3 + 5 + 9))


# torch 2.15's opcheck (test_aot_dispatch_dynamic) fakes the inputs; its meta_utils reads .grad of a
# non-leaf tensor and warns.
@pytest.mark.filterwarnings(
    "ignore:The .grad attribute of a Tensor that is not a leaf Tensor is being accessed:UserWarning:"
    "torch._subclasses.meta_utils"
)
def test_opcheck_every_op():
    seed = torch.tensor([5, 7])
    x = torch.randn(37, 5, dtype=torch.float64, requires_grad=True)
    _, bits = torch.ops.regdrop_fast.dropout_fwd(x.detach(), 0.3, seed, True)
    params = [torch.randn(4, 3, requires_grad=True), torch.randn(5, requires_grad=True)]
    detached = [w.detach().clone() for w in params]
    cl = torch.randn(2, 3, 4, 5, dtype=torch.float64).to(memory_format=torch.channels_last)
    cl_grad = torch.randn(2, 3, 4, 5, dtype=torch.float64).to(memory_format=torch.channels_last)
    _, cl_bits = torch.ops.regdrop_fast.dropout_fwd(cl, 0.3, seed, True)
    cases = [
        (torch.ops.regdrop_fast.dropout_fwd, (x, 0.3, seed, True)),
        (torch.ops.regdrop_fast.dropout_fwd, (x, 0.3, seed, False)),
        (torch.ops.regdrop_fast.dropout_bwd, (torch.randn(37, 5, dtype=torch.float64, requires_grad=True),
                                              bits, seed, 0.3, True)),
        (torch.ops.regdrop_fast.dropout_fwd_, (torch.randn(4, 6), 0.5, seed, True)),
        # channels_last and permuted inputs: the fakes must give the real outputs' strides
        (torch.ops.regdrop_fast.dropout_fwd, (cl.requires_grad_(), 0.3, seed, True)),
        (torch.ops.regdrop_fast.dropout_fwd, (x.detach().t().requires_grad_(), 0.3, seed, False)),
        (torch.ops.regdrop_fast.dropout_bwd, (cl_grad, cl_bits, seed, 0.3, True)),
        (torch.ops.regdrop_fast.dropout_fwd_, (cl.detach().clone(memory_format=torch.channels_last), 0.5, seed,
                                               True)),
        (torch.ops.regdrop_fast.penalty, (params, [0.1, 0.2], [0.3, 0.0], [], [])),
        (torch.ops.regdrop_fast.penalty, (params, [0.1, 0.2], [0.3, 0.0], [0.5, 0.0], [1])),
        (torch.ops.regdrop_fast.add_penalty_grad_, (detached, [torch.randn(4, 3), torch.randn(5)],
                                                    [0.1, 0.2], [0.3, 0.0], [], [])),
        (torch.ops.regdrop_fast.add_penalty_grad_, (detached, [torch.randn(4, 3), torch.randn(5)],
                                                    [0.1, 0.2], [0.3, 0.0], [0.5, 0.0], [1])),
        (torch.ops.regdrop_fast.prox_l1_, ([w.clone() for w in detached], [0.1, 0.2])),
        (torch.ops.regdrop_fast.decay_, ([w.clone() for w in detached], [0.1, 0.2])),
        (torch.ops.regdrop_fast.max_norm_, (torch.randn(4, 6), 0.5, 1)),
    ]
    for op, args in cases:
        result = torch.library.opcheck(op.default, args)
        assert set(result.values()) == {"SUCCESS"}, (op, result)


# ----------------------------------------------------------------------------------------------------------
# penalties


def param_set(dtype, with_grads=True):
    """Parameters of a few shapes (one with a transposed, non-contiguous grad), grads filled."""
    gen = torch.Generator().manual_seed(9)
    shapes = [(7, 5), (13,), (3, 4, 2)]
    params = [nn.Parameter((torch.randn(s, generator=gen)).to(dtype)) for s in shapes]
    if with_grads:
        for w in params:
            w.grad = torch.randn(w.shape, generator=gen).to(dtype)
        params[0].grad = torch.randn(5, 7, generator=gen).to(dtype).t()  # non-contiguous
    return params


@dtype_param
def test_add_penalty_grad_equals_numpy_api(dtype):
    params = param_set(dtype)
    extra = nn.Parameter(torch.randn(6).to(dtype))  # no grad: skipped
    all_params = [params[0], extra, params[1], params[2]]
    l1, l2 = [1e-3, 5.0, 0.0, 2e-2], [1e-2, 5.0, 3e-2, 0.0]
    ws = [to_numpy(w) for w in params]
    gs = [to_numpy(w.grad) for w in params]
    expected = rf.penalty_grad(ws, gs, l1=[l1[0], l1[2], l1[3]], l2=[l2[0], l2[2], l2[3]])
    versions = [w.grad._version for w in params]
    value = rt.add_penalty_grad_(all_params, l1=l1, l2=l2)
    value_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    assert value.dim() == 0 and value.dtype == value_dtype
    assert value.item() == torch.tensor(expected, dtype=value_dtype).item()
    for w, g in zip(params, gs):
        assert same_bits(w.grad, from_numpy(g))
    assert extra.grad is None
    assert [w.grad._version for w in params] != versions


def test_sgd_weight_decay_equals_plain_sgd_plus_add_penalty_grad():
    """Step by step: plain SGD + add_penalty_grad_(l2=wd) equals SGD(weight_decay=wd).

    add_penalty_grad_ computes g + wd*w with two roundings, which is exactly torch's ``g + wd * w``; torch's
    SGD computes ``g.add(w, alpha=wd)``, whose kernel rounds once in places, so those two trajectories agree
    to rounding (checked to 1e-6 relative on a convex problem) and the two-rounding one bit for bit.
    """
    wd, lr = 0.05, 0.1
    gen = torch.Generator().manual_seed(4)
    X, Y = torch.randn(64, 10, generator=gen), torch.randn(64, 3, generator=gen)

    def model():
        torch.manual_seed(0)
        return nn.Linear(10, 3)

    m_ours, m_sgd, m_manual = model(), model(), model()
    opt_ours = torch.optim.SGD(m_ours.parameters(), lr=lr)
    opt_sgd = torch.optim.SGD(m_sgd.parameters(), lr=lr, weight_decay=wd)
    opt_manual = torch.optim.SGD(m_manual.parameters(), lr=lr)
    for step in range(100):
        for m, opt in ((m_ours, opt_ours), (m_sgd, opt_sgd), (m_manual, opt_manual)):
            opt.zero_grad()
            nn.functional.mse_loss(m(X), Y).backward()
        value = rt.add_penalty_grad_(m_ours.parameters(), l2=wd)
        with torch.no_grad():
            for w in m_manual.parameters():
                w.grad += wd * w
            expected_value = sum(0.5 * wd * float((w.double() ** 2).sum()) for w in m_ours.parameters())
        assert value.dtype == torch.float32 and math.isclose(value.item(), expected_value, rel_tol=1e-6)
        for opt in (opt_ours, opt_sgd, opt_manual):
            opt.step()
        for a, b, c in zip(m_ours.parameters(), m_sgd.parameters(), m_manual.parameters()):
            assert torch.equal(a, c), f"step {step}"
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@dtype_param
def test_penalty_value_and_gradient(dtype):
    params = param_set(dtype, with_grads=False)
    l1, l2 = [1e-2, 0.0, 0.5], [0.1, 0.2, 0.0]
    value = rt.penalty(params, l1=l1, l2=l2)
    value_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    expected = rf.penalty([to_numpy(w) for w in params], l1=l1, l2=l2)
    assert value.dtype == value_dtype and value.item() == torch.tensor(expected, dtype=value_dtype).item()
    value.backward()
    zeros = [np.zeros(w.shape, to_numpy(w).dtype) for w in params]
    rf.penalty_grad([to_numpy(w) for w in params], zeros, l1=l1, l2=l2)
    for w, g in zip(params, zeros):
        assert same_bits(w.grad, from_numpy(g))
    # a scaled loss scales the gradient
    for w in params:
        w.grad = None
    (3 * rt.penalty(params, l1=l1, l2=l2)).backward()
    for w, g in zip(params, zeros):
        torch.testing.assert_close(w.grad, 3 * from_numpy(g))


def test_penalty_gradcheck_and_compile():
    params = [torch.randn(5, 4, dtype=torch.float64, requires_grad=True),
              torch.randn(3, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(lambda a, b: rt.penalty([a, b], l1=0.3, l2=[0.7, 0.2]), tuple(params))
    torch._dynamo.reset()
    model = nn.Linear(6, 2)

    def loss_fn(x):
        return model(x).square().mean() + rt.penalty(model.parameters(), l2=1e-2)

    x = torch.randn(4, 6)
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    loss = compiled(x)
    assert loss.dtype == torch.float32
    loss.backward()
    g_c = [w.grad.clone() for w in model.parameters()]
    model.zero_grad()
    loss_fn(x).backward()
    assert all(torch.equal(a, w.grad) for a, w in zip(g_c, model.parameters()))


@dtype_param
def test_prox_decay_equal_numpy_api(dtype):
    params = param_set(dtype, with_grads=False)
    params.append(nn.Parameter(torch.randn(6, 4).to(dtype).t()))  # non-contiguous parameter
    arrays = [to_numpy(w) for w in params]
    zeros = rf.prox_l1(arrays, [0.5, 0.1, 0.0, 1.0])
    versions = [w._version for w in params]
    count = rt.prox_l1_(params, [0.5, 0.1, 0.0, 1.0])
    assert count.dtype == torch.int64 and count.item() == zeros
    assert all(same_bits(w, from_numpy(a)) for w, a in zip(params, arrays))
    assert [w._version for w in params] != versions  # autograd sees the in-place change
    assert params[3].stride() == (1, 4)  # still the same tensor
    rf.decay(arrays, 0.25)
    assert rt.decay_(params, 0.25) is None
    assert all(same_bits(w, from_numpy(a)) for w, a in zip(params, arrays))


@dtype_param
def test_max_norm_equals_numpy_api_and_renorm(dtype):
    gen = torch.Generator().manual_seed(2)
    for shape, dim in [((8, 5), 0), ((8, 5), 1), ((8, 5), -1), ((4, 3, 5), 1), ((4, 3, 5), 0), ((9,), 0)]:
        w = (2 * torch.randn(shape, generator=gen)).to(dtype)
        a = to_numpy(w)
        work = a.reshape(-1, 1) if a.ndim == 1 else a
        d = dim % work.ndim
        expected = rf.max_norm(work, 1.5, axis=tuple(k for k in range(work.ndim) if k != d))
        before = w.clone()
        count = rt.max_norm_(w, 1.5, dim)
        assert count.item() == expected and 0 < expected
        assert same_bits(w, from_numpy(a)), (shape, dim)
        if w.dim() >= 2:  # torch.renorm takes 2 or more dimensions
            renormed = torch.renorm(before.double(), 2, dim, 1.5)
            tol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-6
            torch.testing.assert_close(w.double(), renormed, rtol=tol, atol=tol)


def test_penalty_helpers_reject_bad_input_and_change_nothing():
    params = param_set(torch.float32)
    before = [(w.detach().clone(), w.grad.clone()) for w in params]
    with pytest.raises(ValueError, match="l2"):
        rt.add_penalty_grad_(params, l2=-1.0)
    with pytest.raises(ValueError, match="one per array"):
        rt.add_penalty_grad_(params, l2=[0.1, 0.2])
    with pytest.raises(TypeError, match="dtype torch.int32 is not supported"):
        rt.add_penalty_grad_(params + [torch.ones(3, dtype=torch.int32)], l2=0.1)
    with pytest.raises(TypeError, match="iterable of tensors"):
        rt.penalty(5, l2=0.1)
    with pytest.raises(ValueError, match="factor"):
        rt.decay_(params, 1.5)
    with pytest.raises(ValueError, match="threshold"):
        rt.prox_l1_(params, float("nan"))
    with pytest.raises(ValueError, match="dim: 2 is out of range"):
        rt.max_norm_(params[0], 1.0, 2)
    with pytest.raises(TypeError, match="dim: expected an int"):
        rt.max_norm_(params[0], 1.0, 0.5)
    with pytest.raises(ValueError, match="max_value"):
        rt.max_norm_(params[0], 0.0, 0)
    for w, (w0, g0) in zip(params, before):
        assert torch.equal(w, w0) and torch.equal(w.grad, g0)
    assert rt.add_penalty_grad_([nn.Parameter(torch.ones(3))], l2=1.0).item() == 0.0  # no grads: nothing
    assert rt.penalty([]).item() == 0.0


OVERLAP = "overlaps .* in memory: an array modified in place may not share memory"
SELF_OVERLAP = "its elements overlap each other in memory"


def _state(tensors):
    return [t.detach().clone() for t in tensors]


def _same_state(tensors, before):
    return all(torch.equal(t, b) for t, b in zip(tensors, before))


def test_penalty_helpers_check_overlap_of_the_original_tensors():
    """Non-contiguous tensors are modified through contiguous copies; the overlap rule still applies to
    their own memory, with the NumPy API's message for the contiguous equivalent (before: accepted, and a
    term was lost or a decay applied once)."""
    w1, w2 = nn.Parameter(torch.randn(3, 3)), nn.Parameter(torch.randn(3, 3))
    g = torch.randn(3, 3).t()
    w1.grad = w2.grad = g
    before = _state([w1, w2, g])
    with pytest.raises(ValueError, match=r"grads\[0\] overlaps grads\[1\] in memory"):
        rt.add_penalty_grad_([w1, w2], l2=1.0)
    assert _same_state([w1, w2, g], before)
    gc = g.contiguous()  # the contiguous equivalent through the NumPy API: the same error
    with pytest.raises(ValueError, match=r"grads\[0\] overlaps grads\[1\] in memory"):
        rf.penalty_grad([w1.detach().numpy(), w2.detach().numpy()], [gc.numpy(), gc.numpy()], l2=1.0)

    a = torch.randn(3, 3)
    before = _state([a])
    with pytest.raises(ValueError, match=r"params\[0\] overlaps params\[1\] in memory"):
        rt.decay_([a.t(), a.t()], 0.5)
    b = torch.randn(4, 4)
    before_b = _state([b])
    with pytest.raises(ValueError, match=OVERLAP):
        rt.prox_l1_([b[:, :3], b[:, 1:]], 0.1)
    with pytest.raises(ValueError, match=OVERLAP):
        rt.prox_l1_([b, b[:, ::2]], 0.1)  # a contiguous tensor and a strided view of it
    assert _same_state([a], before) and _same_state([b], before_b)
    # a parameter written into a non-contiguous grad that views it differently: another parameter's memory
    w3 = nn.Parameter(torch.randn(3, 3))
    w4 = nn.Parameter(torch.randn(3, 3))
    w3.grad, w4.grad = torch.zeros(3, 3), w3.data.t()
    with pytest.raises(ValueError, match=r"grads\[1\] overlaps params\[0\] in memory"):
        rt.add_penalty_grad_([w3, w4], l2=1.0)


def test_penalty_helpers_accept_what_the_rule_allows():
    """A gradient that is exactly its own (non-contiguous) parameter, disjoint strided views, and
    non-contiguous read-only parameters (read from a copy, as the NumPy API reads them)."""
    base = torch.randn(4, 6)
    w = nn.Parameter(base[:, ::2])
    w.grad = w.data  # exactly its own parameter: grad += 2 * w, one term
    w0 = w.detach().clone()
    rt.add_penalty_grad_([w], l2=1.0)
    assert torch.allclose(w.detach(), 2 * w0)
    a, b = torch.randn(5, 4), torch.randn(4, 5)
    a0, b0 = a.clone(), b.clone()
    rt.decay_([a.t(), b.t()], 0.5)
    assert torch.equal(a, a0 * 0.5) and torch.equal(b, b0 * 0.5)
    c = torch.randn(4, 4)
    rt.prox_l1_([c[:2].t(), c[2:].t()], 0.0)  # disjoint rows: spans apart


def test_penalty_helpers_reject_self_overlapping_written_tensors_before_writing():
    """An expanded (stride-0) written tensor is a ValueError raised before any tensor is written (before:
    torch's RuntimeError from copy_ after the other gradients had been changed)."""
    w, b = nn.Parameter(torch.randn(3)), nn.Parameter(torch.randn(3))
    w.grad, b.grad = torch.ones(3), torch.zeros(1).expand(3)
    before = _state([w, w.grad, b])
    with pytest.raises(ValueError, match=r"grads\[1\]: " + SELF_OVERLAP):
        rt.add_penalty_grad_([w, b], l2=1.0)
    assert _same_state([w, w.grad, b], before)
    x, e = torch.randn(3), torch.zeros(2, 1).expand(2, 3)
    before = _state([x])
    with pytest.raises(ValueError, match=r"params\[1\]: " + SELF_OVERLAP):
        rt.decay_([x, e], 0.5)
    with pytest.raises(ValueError, match=r"params\[1\]: " + SELF_OVERLAP):
        rt.prox_l1_([x, e], 0.5)
    assert _same_state([x], before)
    with pytest.raises(ValueError, match="w: " + SELF_OVERLAP):
        rt.max_norm_(torch.ones(1, 3).expand(4, 3), 1.0, 0)
    interleaved = torch.zeros(10).as_strided((3, 3), (2, 1))  # rows overlap without a zero stride
    with pytest.raises(ValueError, match=SELF_OVERLAP):
        rt.decay_([interleaved], 0.5)
    assert not interleaved.any()


# ----------------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)


@needs_cuda
@dtype_param
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_cuda_equals_cpu(dtype, store):
    x = torch.randn(100003).to(dtype)
    g = torch.randn(100003).to(dtype)
    xc = x.cuda().requires_grad_()
    yc = rt.dropout(xc, 0.3, store=store, generator=rf.Generator(5, offset=3))
    yc.backward(g.cuda())
    x.requires_grad_()
    y = rt.dropout(x, 0.3, store=store, generator=rf.Generator(5, offset=3))
    y.backward(g)
    assert yc.is_cuda and same_bits(yc, y) and same_bits(xc.grad, x.grad)


@needs_cuda
def test_cuda_default_seeding_is_device_independent_and_in_place():
    x = torch.randn(64, 33)
    torch.manual_seed(7)
    a = rt.dropout(x, 0.5)
    torch.manual_seed(7)
    b = rt.dropout(x.cuda(), 0.5)
    assert same_bits(a, b)
    xc = x.cuda().t()  # non-contiguous, in place
    expected = rt.dropout(xc, 0.5, generator=rf.Generator(1))
    assert rt.dropout(xc, 0.5, inplace=True, generator=rf.Generator(1)) is xc and torch.equal(xc, expected)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_penalties_equal_cpu(dtype):
    torch.manual_seed(3)
    shapes = [(33, 7), (5,), (1000,)]
    cpu = [nn.Parameter(torch.randn(s).to(dtype)) for s in shapes]
    for w in cpu:
        w.grad = torch.randn(w.shape).to(dtype)
    gpu = [nn.Parameter(w.detach().cuda()) for w in cpu]
    for w, c in zip(gpu, cpu):
        w.grad = c.grad.cuda()
    v_cpu = rt.add_penalty_grad_(cpu, l1=1e-3, l2=[1e-2, 0.0, 1e-1])
    v_gpu = rt.add_penalty_grad_(gpu, l1=1e-3, l2=[1e-2, 0.0, 1e-1])
    assert v_gpu.is_cuda and abs(v_gpu.item() - v_cpu.item()) <= 2**-22 * abs(v_cpu.item())  # float64 sums within 1e-12, then one float32 rounding each
    for w, c in zip(gpu, cpu):
        assert same_bits(w.grad, c.grad)
    z_cpu, z_gpu = rt.prox_l1_(cpu, 0.5), rt.prox_l1_(gpu, 0.5)
    assert z_gpu.is_cuda and z_gpu.item() == z_cpu.item()
    rt.decay_(cpu, 0.01)
    rt.decay_(gpu, 0.01)
    assert rt.max_norm_(gpu[0], 0.5, 0).item() == rt.max_norm_(cpu[0], 0.5, 0).item()
    for w, c in zip(gpu, cpu):
        assert same_bits(w, c)
    loss_gpu = rt.penalty(gpu, l1=1e-3, l2=1e-2)
    loss_gpu.backward()
    loss_cpu = rt.penalty(cpu, l1=1e-3, l2=1e-2)
    loss_cpu.backward()
    assert abs(loss_gpu.item() - loss_cpu.item()) <= 2**-22 * abs(loss_cpu.item())

@pytest.mark.parametrize("n", [1000, 1 << 19])
def test_outputs_are_ordinary_resizable_tensors(n):
    """y and dx are tensors from torch's allocator, not NumPy memory: resize_ works on them (before:
    "Trying to resize storage that is not resizable"), and the values are the NumPy API's."""
    x = torch.randn(n, requires_grad=True)
    y = rt.dropout(x, 0.5, generator=rt.Generator(6))
    expected, mask = rf.dropout(x.detach().numpy(), 0.5, seed=6, offset=0)
    assert same_bits(y.detach().clone(), torch.from_numpy(expected))  # a clone: .numpy() pins a storage
    y.backward(torch.ones(n))
    dx = x.grad
    assert same_bits(dx.clone(), torch.from_numpy(rf.dropout_backward(np.ones(n, np.float32), mask)))
    for t in (y.detach(), dx, rt.dropout(torch.randn(n), 0.5, store="seed")):
        t.resize_(2 * n)
        assert t.shape == (2 * n,)
        t.resize_(3)
    rt.empty_cache()  # kept for compatibility: nothing is cached


_HUGE_PAGE_PROBE = """
import json, torch, regdrop_fast.torch as rt

def vm_flags(address):
    with open("/proc/self/smaps") as f:
        lines = f.read().splitlines()
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "VmFlags:":
            return line.split()[1:]
    return None

n = 3 << 20  # 12 MiB of float32: a mapping of its own in a fresh process, whole pages inside
plain = torch.empty(n)
x = torch.randn(n, requires_grad=True)
y = rt.dropout(x, 0.5, generator=rt.Generator(3))
y.backward(torch.ones(n))
print(json.dumps([vm_flags(t.data_ptr() + (1 << 21)) for t in (plain, y, x.grad)]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="huge-page advice is given on Linux only")
def test_large_new_outputs_get_huge_page_advice_and_same_values():
    """A new CPU output of >= 4 MiB is advised huge pages before the kernel writes it (torch's allocator
    gives no advice; first-touch faults per 4 KiB page cost more than the kernel on a VM): in a fresh process
    (where a 12 MiB tensor is a mapping of its own, not memory reused from earlier advised allocations) the
    mappings of y and dx carry the 'hg' flag and a plain torch.empty's does not, so the test fails without
    the advice. The values are the NumPy API's bit for bit."""
    import json
    import os

    if not os.path.exists("/proc/self/smaps"):
        pytest.skip("no /proc/self/smaps")
    out = subprocess.run([sys.executable, "-c", _HUGE_PAGE_PROBE], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    plain, y_flags, dx_flags = json.loads(out.strip().splitlines()[-1])
    assert "hg" not in plain, "torch's own allocations are advised already: this test proves nothing"
    assert "hg" in y_flags and "hg" in dx_flags
    n = 1 << 21  # 8 MiB: advised here too (when its memory is a mapping of its own)
    x = torch.randn(n, requires_grad=True)
    y = rt.dropout(x, 0.5, generator=rt.Generator(3))
    y.backward(torch.ones(n))
    expected, mask = rf.dropout(x.detach().numpy(), 0.5, seed=3, offset=0)
    assert same_bits(y.detach().clone(), torch.from_numpy(expected))
    assert same_bits(x.grad.clone(), torch.from_numpy(rf.dropout_backward(np.ones(n, np.float32), mask)))


# ----------------------------------------------------------------------------------------------------------
# the group_l1 term through regdrop_fast.torch (issue #15)


def test_penalty_group_l1_matches_torch_autograd_jvp_and_compile():
    """rt.penalty(group_l1=c, axis=dims) against the loss a user writes, c * vector_norm(w, dim=dims).sum() (plus
    an L2 term): the value, the backward (torch's norm backward is 0 at a zero group, as ours), the jvp, and
    torch.compile(fullgraph=True); add_penalty_grad_ adds the same gradient; the custom op passes opcheck."""
    w = torch.randn(6, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    w[2] = 0
    ours = w.clone().requires_grad_(True)
    value = rt.penalty(ours, l2=0.1, group_l1=0.3, axis=(1, 2, 3))
    value.backward()
    theirs = w.clone().requires_grad_(True)
    expected = 0.05 * (theirs * theirs).sum() + 0.3 * torch.linalg.vector_norm(theirs, dim=(1, 2, 3)).sum()
    expected.backward()
    assert value.dtype == torch.float64
    torch.testing.assert_close(value.detach(), expected.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-15)
    assert torch.all(ours.grad[2] == 0.1 * w[2])
    p = torch.nn.Parameter(w.clone())
    p.grad = torch.zeros_like(p)
    v = rt.add_penalty_grad_([p], l2=0.1, group_l1=0.3, axis=(1, 2, 3))
    torch.testing.assert_close(v, expected.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(p.grad, theirs.grad, rtol=1e-12, atol=1e-15)
    tangent = torch.randn_like(w)
    _, ours_jvp = torch.func.jvp(lambda x: rt.penalty(x, group_l1=0.3, axis=(1, 2, 3)), (w,), (tangent,))
    _, their_jvp = torch.func.jvp(lambda x: 0.3 * torch.linalg.vector_norm(x, dim=(1, 2, 3)).sum(), (w,), (tangent,))
    torch.testing.assert_close(ours_jvp, their_jvp, rtol=1e-12, atol=1e-15)
    compiled = torch.compile(lambda x: rt.penalty(x, group_l1=0.3, axis=(1, 2, 3)), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(w), 0.3 * torch.linalg.vector_norm(w, dim=(1, 2, 3)).sum(), rtol=1e-12, atol=0)
    torch.library.opcheck(torch.ops.regdrop_fast.penalty, ([w], [0.0], [0.1], [0.3], [1, 2, 3]))
    g = torch.zeros_like(w)
    torch.library.opcheck(torch.ops.regdrop_fast.add_penalty_grad_, ([w], [g], [0.0], [0.1], [0.3], [1, 2, 3]))


def test_add_penalty_grad_group_l1_skips_params_without_grads_and_per_param_coefficients():
    gen = torch.Generator().manual_seed(1)
    layer = torch.nn.Linear(7, 5)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(5, 7, generator=gen))
    layer.weight.grad = torch.zeros(5, 7)
    # the bias has no grad: skipped; its coefficient 0 means axis need not fit it either
    v = rt.add_penalty_grad_([layer.weight, layer.bias], group_l1=[0.5, 0.0], axis=1)
    w = layer.weight.detach().numpy()
    g = np.zeros_like(w)
    assert float(v) == pytest.approx(rf.penalty_grad(w, g, group_l1=0.5, axis=1), rel=1e-6)
    assert np.array_equal(layer.weight.grad.numpy(), g)
