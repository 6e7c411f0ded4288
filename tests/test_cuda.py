"""CUDA backend: every kernel against the CPU kernels and the NumPy reference (skipped without a GPU).

Masks must be bit-identical across CUDA, CPU and reference for every dtype, size, alignment and offset;
values equal bit for bit as well (same element body, same single rounding, no FMA contraction).
"""

import numpy as np
import pytest
from conftest import assert_close

import regdrop_fast as rf
from regdrop_fast import cuda, reference

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not (cuda.is_available() and torch.cuda.is_available()), reason="needs a CUDA GPU"),
]

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SIZES = [0, 1, 7, 8, 9, 31, 1025, 278011, (1 << 20) + 3]
OFFSETS = [0, 1, 3, (1 << 32) - 5, (1 << 64) - 7]


def to_numpy(t):
    """Host copy of a tensor with bfloat16 kept as ml_dtypes.bfloat16 (bit-exact)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(rf._checks.BFLOAT16)
    return t.numpy()


def same_bits(a, b):
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("offset", OFFSETS)
def test_forward_matches_cpu_and_reference(dtype, n, offset):
    x = torch.randn(n, device="cuda").to(dtype)
    for p in (0.0, 0.1, 0.5, 1.0):
        y, mask = rf.dropout(x, p, seed=1234, offset=offset)
        assert y.is_cuda and y.dtype == dtype and mask.bits.is_cuda
        xh = to_numpy(x)
        yc, mc = rf.dropout(xh, p, seed=1234, offset=offset)
        yr, mr = reference.dropout(xh, p, seed=1234, offset=offset)
        assert same_bits(mask.bits.cpu().numpy(), mc.bits) and same_bits(mc.bits, mr.bits)
        assert same_bits(to_numpy(y), yc) and same_bits(yc, yr)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_backward_matches_cpu(dtype, store):
    n = 278011
    g = torch.randn(n, device="cuda").to(dtype)
    _, mask = rf.dropout(torch.empty(n, device="cuda", dtype=dtype), 0.3, seed=7, offset=5, store=store)
    dx = rf.dropout_backward(g, mask)
    cpu_mask = rf.dropout_mask(n, 0.3, seed=7, offset=5)
    assert same_bits(to_numpy(dx), rf.dropout_backward(to_numpy(g), cpu_mask))


@pytest.mark.parametrize("shift", [1, 2, 3, 5])
def test_misaligned_views(shift):
    base = torch.randn(100003 + shift, device="cuda")
    x = base[shift:]
    out = torch.empty(100003 + shift, device="cuda")[shift:]
    y, mask = rf.dropout(x, 0.25, seed=99, offset=11, out=out)
    yc, mc = rf.dropout(x.cpu().numpy(), 0.25, seed=99, offset=11)
    assert y.data_ptr() == out.data_ptr()
    assert same_bits(y.cpu().numpy(), yc) and same_bits(mask.bits.cpu().numpy(), mc.bits)


def test_non_contiguous_input():
    x = torch.randn(64, 33, device="cuda").t()
    y, _ = rf.dropout(x, 0.5, seed=3)
    yc, _ = rf.dropout(x.cpu().numpy(), 0.5, seed=3)
    assert same_bits(y.cpu().numpy(), yc)


def test_in_place():
    x = torch.randn(4097, device="cuda")
    expected, _ = rf.dropout(x.cpu().numpy(), 0.5, seed=3)
    y, _ = rf.dropout(x, 0.5, seed=3, out=x)
    assert y.data_ptr() == x.data_ptr() and same_bits(x.cpu().numpy(), expected)


def test_non_default_stream():
    x = torch.randn(1 << 20, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y, mask = rf.dropout(x, 0.5, seed=5)
    torch.cuda.current_stream().wait_stream(stream)
    yc, _ = rf.dropout(x.cpu().numpy(), 0.5, seed=5)
    assert same_bits(y.cpu().numpy(), yc)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_mask_bit_identical(dtype):
    n = 1 << 28
    mask = rf.dropout(torch.empty(n, device="cuda", dtype=dtype), 0.1, seed=2024, store="bits")[1]
    cpu = rf.dropout_mask(n, 0.1, seed=2024)
    assert same_bits(mask.bits.cpu().numpy(), cpu.bits)


def test_mixed_devices_rejected():
    x = torch.randn(16, device="cuda")
    with pytest.raises(ValueError, match="same CUDA device"):
        rf.dropout(x, 0.5, seed=1, out=np.empty(16, np.float32))
    with pytest.raises(ValueError, match="CUDA device"):
        rf.dropout(np.ones(16, np.float32), 0.5, seed=1, out=x)
    _, mask = rf.dropout(x, 0.5, seed=1)
    with pytest.raises(ValueError, match="host array"):
        rf.dropout_backward(np.ones(16, np.float32), mask)


def test_bad_dtype_on_device():
    with pytest.raises(TypeError, match="int32"):
        rf.dropout(torch.ones(8, device="cuda", dtype=torch.int32), 0.5, seed=1)


def test_to_bool_on_device():
    x = torch.randn(1001, device="cuda")
    _, mask = rf.dropout(x, 0.5, seed=8)
    assert np.array_equal(mask.to_bool().cpu().numpy(), rf.dropout_mask(1001, 0.5, seed=8).to_bool())


def test_backend_info_lists_devices():
    info = rf.backend_info()
    assert info["cuda_compiled"] is True
    assert len(info["cuda_devices"]) == torch.cuda.device_count()


def test_overlapping_out_view_reads_the_original_values():
    base = torch.randn(10001, device="cuda")
    x, out = base[1:], base[:-1]  # out starts one element before x: the kernel must not read what it wrote
    expected, _ = rf.dropout(x.cpu().numpy(), 0.5, seed=12)
    rf.dropout(x, 0.5, seed=12, out=out)
    assert same_bits(out.cpu().numpy(), expected)


# ----------------------------------------------------------------------------------------------------------
# weight penalties: penalty_grad / penalty, prox_l1, decay, max_norm
#
# Gradients and updated arrays must equal the CPU kernels and the reference bit for bit (same element bodies,
# one rounding, no FMA); values within 1e-12 relative of the reference (the GPU groups the float64 sum
# differently); counts exactly. NaN results are compared as NaN (the GPU's arithmetic returns the canonical
# NaN where x86 keeps the operand's payload), every other bit exactly.

BF16 = rf._checks.BFLOAT16
NP_DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BF16]
NP_IDS = ["float32", "float64", "float16", "bfloat16"]
PENALTY_SIZES = [0, 1, 7, 1025, 65536, 65537, 278011]
TERMS = [(0.0, 0.1), (0.01, 0.0), (0.01, 0.1)]


def to_device(a):
    """A CUDA tensor with the bits of host array a (bfloat16 through int16)."""
    a = np.ascontiguousarray(a)
    if a.dtype == BF16:
        return torch.from_numpy(a.view(np.int16).copy()).cuda().view(torch.bfloat16)
    return torch.from_numpy(a.copy()).cuda()


def host_values(rng, n, dtype, specials=False):
    a = (3.0 * rng.standard_normal(n)).astype(dtype)
    if specials and n >= 40:
        info = np.finfo(np.float32) if dtype == BF16 else np.finfo(dtype)
        sv = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, float(info.tiny), float(info.smallest_subnormal),
              -float(info.smallest_subnormal), 1e-30, 0.01, -0.01]
        with np.errstate(over="ignore", under="ignore"):
            a[10:10 + len(sv)] = np.array(sv).astype(dtype)
    return a


def assert_same_or_nan(actual, expected, what=""):
    """Bit-identical except that a NaN only has to be a NaN (the GPU's canonical one)."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.dtype == e.dtype and a.shape == e.shape, what
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    nan = np.isnan(e64)
    assert np.array_equal(np.isnan(a64), nan), f"{what}: NaN positions differ"
    differ = np.count_nonzero(a[~nan].view(np.uint8) != e[~nan].view(np.uint8))
    assert differ == 0, f"{what}: {differ} bytes differ"


def is_device_scalar(v, dtype):
    return isinstance(v, torch.Tensor) and v.is_cuda and v.dim() == 0 and v.dtype == dtype


@pytest.mark.parametrize("dtype", NP_DTYPES, ids=NP_IDS)
@pytest.mark.parametrize("n", PENALTY_SIZES)
@pytest.mark.parametrize("l1,l2", TERMS, ids=["l2", "l1", "l1+l2"])
def test_penalty_grad_matches_cpu_and_reference(dtype, n, l1, l2):
    rng = np.random.default_rng(n + 17)
    w, g = host_values(rng, n, dtype), host_values(rng, n, dtype)
    wd, gd = to_device(w), to_device(g)
    value = rf.penalty_grad([wd], [gd], l1=l1, l2=l2)
    assert is_device_scalar(value, torch.float64)
    g_cpu, g_ref = g.copy(), g.copy()
    v_cpu = rf.penalty_grad([w], [g_cpu], l1=l1, l2=l2)
    v_ref = reference.penalty_grad([w], [g_ref], l1=l1, l2=l2)
    assert same_bits(to_numpy(gd), g_cpu) and same_bits(g_cpu, g_ref)
    assert same_bits(to_numpy(wd), w), "the parameter was modified"
    assert_close(value, v_ref)
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    assert_close(rf.penalty([wd], l1=l1, l2=l2), v_ref)


@pytest.mark.parametrize("dtype", NP_DTYPES, ids=NP_IDS)
def test_penalty_grad_special_values(dtype):
    rng = np.random.default_rng(3)
    w, g = host_values(rng, 4099, dtype, specials=True), host_values(rng, 4099, dtype)
    gd = to_device(g)
    value = rf.penalty_grad(to_device(w), gd, l1=0.02, l2=0.3, as_float=True)
    g_cpu = g.copy()
    v_cpu = rf.penalty_grad(w, g_cpu, l1=0.02, l2=0.3)
    assert type(value) is float and np.isnan(value) and np.isnan(v_cpu)
    assert_same_or_nan(to_numpy(gd), g_cpu, "grad")
    w[np.isnan(w.astype(np.float64))] = 0  # finite and infinite values: the value matches
    finite = rf.penalty(to_device(w), l1=0.02, l2=0.3, as_float=True)
    assert_close(finite, reference.penalty(w, l1=0.02, l2=0.3))


def mixed_list(rng, count, sizes, with_specials=False):
    dtypes = [NP_DTYPES[i % 4] for i in range(count)]
    shapes = [sizes[i % len(sizes)] for i in range(count)]
    params = [host_values(rng, s, d, with_specials) for s, d in zip(shapes, dtypes)]
    grads = [host_values(rng, s, d) for s, d in zip(shapes, dtypes)]
    return params, grads


@pytest.mark.parametrize("count", [1, 5, 48, 49, 200])
def test_penalty_list_mixing_dtypes_and_sizes(count):
    rng = np.random.default_rng(count)
    params, grads = mixed_list(rng, count, [0, 1, 3, 64, 1000, 65535, 65536, 65537, 278011, 9408])
    l1 = [0.0 if i % 7 == 3 else 0.01 * (1 + i % 3) for i in range(count)]
    l2 = [0.0 if i % 5 == 2 or i % 7 == 3 else 0.1 / (1 + i % 4) for i in range(count)]
    wd, gd = [to_device(p) for p in params], [to_device(g) for g in grads]
    value = rf.penalty_grad(wd, gd, l1=l1, l2=l2)
    g_cpu, g_ref = [g.copy() for g in grads], [g.copy() for g in grads]
    v_cpu = rf.penalty_grad(params, g_cpu, l1=l1, l2=l2)
    v_ref = reference.penalty_grad(params, g_ref, l1=l1, l2=l2)
    for i in range(count):
        assert same_bits(to_numpy(gd[i]), g_cpu[i]), f"grads[{i}] ({params[i].dtype}, {params[i].size})"
        assert same_bits(g_cpu[i], g_ref[i])
    assert_close(value, v_ref)
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    assert_close(rf.penalty(wd, l1=l1, l2=l2), v_ref)


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), BF16], ids=["float32", "bfloat16"])
def test_penalty_array_spanning_launches(dtype):
    n = cuda._cuda.MAX_BLOCKS_PER_LAUNCH * cuda._cuda.CHUNK_ELEMS + 12345  # continues in a second launch
    rng = np.random.default_rng(5)
    params = [host_values(rng, 3, dtype), host_values(rng, n, dtype), host_values(rng, 100, dtype)]
    grads = [host_values(rng, p.size, dtype) for p in params]
    gd = [to_device(g) for g in grads]
    value = rf.penalty_grad([to_device(p) for p in params], gd, l1=1e-3, l2=1e-2)
    v_cpu = rf.penalty_grad(params, grads, l1=1e-3, l2=1e-2)
    for i in range(3):
        assert same_bits(to_numpy(gd[i]), grads[i]), f"grads[{i}]"
    assert_close(value, v_cpu, rtol=1e-11)  # the CPU is within 1e-12 of the reference itself


@pytest.mark.parametrize("shift", [1, 2, 3])
@pytest.mark.parametrize("which", ["params", "grads", "both"])
def test_penalty_misaligned_views(shift, which):
    n = 278011
    rng = np.random.default_rng(shift)
    w, g = host_values(rng, n, np.float32), host_values(rng, n, np.float32)
    wb = torch.full((n + 3,), 7.0, device="cuda")
    gb = torch.full((n + 3,), 7.0, device="cuda")
    ws = shift if which in ("params", "both") else 0
    gs = shift if which in ("grads", "both") else 0
    wb[ws:ws + n] = to_device(w)
    gb[gs:gs + n] = to_device(g)
    value = rf.penalty_grad(wb[ws:ws + n], gb[gs:gs + n], l1=0.01, l2=0.1)
    g_cpu = g.copy()
    v_cpu = rf.penalty_grad(w, g_cpu, l1=0.01, l2=0.1)
    gh = gb.cpu().numpy()
    assert same_bits(gh[gs:gs + n], g_cpu)
    assert np.all(gh[:gs] == 7.0) and np.all(gh[gs + n:] == 7.0), "written outside the gradient view"
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference


def test_penalty_non_contiguous_params_and_grads_that_are_params():
    rng = np.random.default_rng(9)
    w = host_values(rng, 300 * 70, np.float32).reshape(300, 70)
    g = host_values(rng, 70 * 300, np.float32).reshape(70, 300)
    wd = to_device(w).t()  # read-only parameter in any layout: copied
    gd = to_device(g)
    value = rf.penalty_grad(wd, gd, l2=0.3, l1=0.01)
    g_cpu = g.copy()
    v_cpu = rf.penalty_grad(np.ascontiguousarray(w.T), g_cpu, l2=0.3, l1=0.01)
    assert same_bits(to_numpy(gd), g_cpu)
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    # grads is params: the value is of the weights on entry, the update reads them too.
    p = host_values(rng, 5000, np.float32)
    pd = to_device(p)
    value = rf.penalty_grad(pd, pd, l1=0.5, l2=2.0)
    p_cpu = p.copy()
    v_cpu = rf.penalty_grad(p_cpu, p_cpu, l1=0.5, l2=2.0)
    assert same_bits(to_numpy(pd), p_cpu)
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference


def test_penalty_empty_and_excluded():
    assert rf.penalty_grad([], []) == 0.0  # an empty list is a host call
    z = torch.empty(0, device="cuda")
    v = rf.penalty_grad([z], [torch.empty(0, device="cuda")], l2=1.0)
    assert is_device_scalar(v, torch.float64) and float(v) == 0.0
    w, g = torch.randn(100, device="cuda"), torch.randn(100, device="cuda")
    before = g.clone()
    assert float(rf.penalty_grad(w, g, l1=0.0, l2=0.0)) == 0.0
    assert torch.equal(g, before)


@pytest.mark.parametrize("dtype", NP_DTYPES, ids=NP_IDS)
@pytest.mark.parametrize("threshold", [0.0, 0.5, 3.0])
def test_prox_l1_matches_cpu_and_reference(dtype, threshold):
    rng = np.random.default_rng(11)
    params = [host_values(rng, n, dtype, specials=True) for n in (278011, 0, 1, 17, 65537)]
    params[0][:8] = np.array([0.5, -0.5, 0.0, -0.0, 3.0, -3.0, 0.49999, 2.9999]).astype(dtype)
    dev = [to_device(p) for p in params]
    count = rf.prox_l1(dev, threshold)
    assert is_device_scalar(count, torch.int64)
    cpu, ref = [p.copy() for p in params], [p.copy() for p in params]
    c_cpu = rf.prox_l1(cpu, threshold)
    assert int(count) == c_cpu == reference.prox_l1(ref, threshold)
    for i in range(len(params)):
        assert_same_or_nan(to_numpy(dev[i]), cpu[i], f"params[{i}]")
    again = rf.prox_l1([to_device(p) for p in params], threshold, as_int=True)
    assert type(again) is int and again == c_cpu


@pytest.mark.parametrize("dtype", NP_DTYPES, ids=NP_IDS)
@pytest.mark.parametrize("factor", [0.0, 1e-3, 0.5, 1.0])
def test_decay_matches_cpu_and_reference(dtype, factor):
    rng = np.random.default_rng(13)
    params = [host_values(rng, n, dtype, specials=True) for n in (278011, 3, 0, 65536)]
    dev = [to_device(p) for p in params]
    assert rf.decay(dev, factor) is None
    cpu, ref = [p.copy() for p in params], [p.copy() for p in params]
    rf.decay(cpu, factor)
    reference.decay(ref, factor)
    for i in range(len(params)):
        assert_same_or_nan(to_numpy(dev[i]), cpu[i], f"params[{i}]")
        if factor == 0.0:
            assert same_bits(to_numpy(dev[i]), params[i])


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_prox_and_decay_misaligned_views(shift):
    n = 100003
    rng = np.random.default_rng(shift)
    w = host_values(rng, n, np.float16)
    base = torch.full((n + 3,), 5.0, device="cuda", dtype=torch.float16)
    base[shift:shift + n] = to_device(w)
    count = rf.prox_l1(base[shift:shift + n], 0.7, as_int=True)
    rf.decay(base[shift:shift + n], 0.25)
    cpu = w.copy()
    assert count == rf.prox_l1(cpu, 0.7)
    rf.decay(cpu, 0.25)
    bh = base.cpu().numpy()
    assert same_bits(bh[shift:shift + n], cpu)
    assert np.all(bh[:shift] == 5.0) and np.all(bh[shift + n:] == 5.0)


MAX_NORM_CASES = [
    ((300, 70), 0),              # strided columns (inner 70)
    ((300, 70), 1),              # contiguous rows
    ((70, 3000), 1),             # long rows
    ((5, 6, 7, 8), (0, 1, 2)),   # Keras Conv2D kernel: columns, inner 8
    ((8, 7, 3, 3), (1, 2, 3)),   # torch Conv2d weight: rows
    ((5, 6, 7, 8), (1, 2)),      # (outer, reduce, inner) in place
    ((5, 6, 7, 8), (0, 2)),      # axes apart: the transposed-copy path
    ((40,), 0),
    ((3, 4, 5), -1),
    ((0, 5), 0),
    ((5, 0), 0),
    ((4097, 19), 0),
    ((30000, 3, 2), 1),
    ((2, 300001), 1),            # a few very long rows
    ((1000, 1000), 0),           # more tiles than blocks: the grid-stride loop
]


@pytest.mark.parametrize("dtype", NP_DTYPES, ids=NP_IDS)
@pytest.mark.parametrize("shape,axis", MAX_NORM_CASES, ids=[f"{s}-{a}" for s, a in MAX_NORM_CASES])
def test_max_norm_matches_cpu_and_reference(dtype, shape, axis):
    rng = np.random.default_rng(sum(shape))
    w = (3.0 * rng.standard_normal(shape)).astype(dtype)
    if w.size:  # slices of very different norms: some exceed the bound, some do not
        w = (w.astype(np.float64) * rng.uniform(0.05, 2.0, size=shape[-1])).astype(dtype)
        axes = axis if isinstance(axis, tuple) else (axis,)
        norms = np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=axes))
        max_value = float(np.median(norms)) if norms.size > 1 else float(norms.reshape(-1)[0]) / 2
    else:
        max_value = 1.0
    wd = to_device(w)
    count = rf.max_norm(wd, max_value, axis=axis)
    assert is_device_scalar(count, torch.int64)
    cpu, ref = w.copy(), w.copy()
    c_cpu = rf.max_norm(cpu, max_value, axis=axis)
    assert int(count) == c_cpu == reference.max_norm(ref, max_value, axis=axis)
    assert same_bits(to_numpy(wd), cpu) and same_bits(cpu, ref)


def test_max_norm_special_values_and_parameters():
    # A NaN norm and a zero row are left alone; an infinite norm gives the factor 0 (inf * 0 is NaN).
    host = np.array([[np.nan, 10.0], [0.0, -0.0], [3.0, 4.0], [np.inf, 1.0]], np.float32)
    w = to_device(host)
    count = rf.max_norm(w, 1.0, axis=1, as_int=True)
    assert type(count) is int
    assert count == rf.max_norm(host, 1.0, axis=1) == 2
    assert_same_or_nan(w.cpu().numpy(), host, "w")
    assert same_bits(w[:2].cpu().numpy(), np.array([[np.nan, 10.0], [0.0, -0.0]], np.float32))
    # A parameter that requires grad, on the transposed-copy path.
    p = torch.nn.Parameter(torch.randn(4, 5, 6, device="cuda") * 3)
    host = p.detach().cpu().numpy()
    rescaled = rf.max_norm(p, 2.0, axis=(0, 2), as_int=True)
    assert rescaled == rf.max_norm(host, 2.0, axis=(0, 2))
    assert same_bits(p.detach().cpu().numpy(), host)


def test_penalties_on_a_non_default_stream():
    rng = np.random.default_rng(21)
    params, grads = mixed_list(rng, 60, [1, 1000, 65537, 278011])
    wd, gd = [to_device(p) for p in params], [to_device(g) for g in grads]
    m = host_values(rng, 500 * 300, np.float32).reshape(500, 300)
    md = to_device(m)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        value = rf.penalty_grad(wd, gd, l1=1e-3, l2=1e-2)
        zeros = rf.prox_l1(wd, 0.5)
        rf.decay(wd, 0.1)
        rescaled = rf.max_norm(md, 5.0, axis=0)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    g_cpu = [g.copy() for g in grads]
    v_cpu = rf.penalty_grad(params, g_cpu, l1=1e-3, l2=1e-2)
    z_cpu = rf.prox_l1(params, 0.5)
    rf.decay(params, 0.1)
    assert int(rescaled) == rf.max_norm(m, 5.0, axis=0)
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    assert int(zeros) == z_cpu
    for i in range(len(params)):
        assert same_bits(to_numpy(gd[i]), g_cpu[i]) and same_bits(to_numpy(wd[i]), params[i])
    assert same_bits(to_numpy(md), m)


def test_penalty_value_is_deterministic():
    from regdrop_fast.bench.shapes import RESNET50_PARAMETERS

    torch.manual_seed(0)
    params = [torch.randn(s, device="cuda") for _, s in RESNET50_PARAMETERS]
    params += [torch.randn(1000, device="cuda", dtype=torch.bfloat16) for _ in range(60)]
    values = [rf.penalty(params, l1=1e-5, l2=1e-4) for _ in range(5)]
    bits = {v.cpu().numpy().tobytes() for v in values}
    assert len(bits) == 1, "the penalty value changed from run to run"
    host = [to_numpy(p) for p in params]
    assert_close(values[0], reference.penalty(host, l1=1e-5, l2=1e-4))
    counts = {int(rf.prox_l1([p.clone() for p in params], 0.7)) for _ in range(3)}
    assert len(counts) == 1


def test_no_host_synchronization():
    w = [torch.randn(1000, device="cuda") for _ in range(3)]
    g = [torch.randn(1000, device="cuda") for _ in range(3)]
    m = torch.randn(4, 5, 6, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        rf.penalty_grad(w, g, l1=0.1, l2=0.1)
        rf.penalty(w, l2=0.1)
        rf.prox_l1(w, 0.1)
        rf.decay(w, 0.1)
        rf.max_norm(m, 1.0, axis=1)
        rf.max_norm(m, 1.0, axis=(0, 2))
        y, mask = rf.dropout(w[0], 0.5, seed=1)
        rf.dropout_backward(y, mask)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_penalty_bad_inputs_modify_nothing():
    w = [torch.randn(50, device="cuda"), torch.randn(60, device="cuda")]
    g = [torch.randn(50, device="cuda"), torch.randn(60, device="cuda")]
    snap = [t.clone() for t in w + g]

    def unchanged():
        return all(torch.equal(a, b) for a, b in zip(w + g, snap))

    cases = [
        (ValueError, "host array", lambda: rf.penalty_grad(w, [g[0], g[1].cpu().numpy()], l2=0.1)),
        (ValueError, "host array", lambda: rf.penalty_grad([w[0], np.ones(60, np.float32)], g, l2=0.1)),
        (ValueError, "CUDA array", lambda: rf.penalty_grad([np.ones(50, np.float32), w[1]], g, l2=0.1)),
        (ValueError, "CUDA array", lambda: rf.prox_l1([np.ones(50, np.float32), w[1]], 0.1)),
        (ValueError, "host array", lambda: rf.prox_l1([w[0], np.ones(5, np.float32)], 0.1)),
        (ValueError, "host array", lambda: rf.decay([w[0], np.ones(5, np.float32)], 0.1)),
        (TypeError, "int32", lambda: rf.penalty_grad([w[0], torch.ones(60, device="cuda", dtype=torch.int32)], g)),
        (TypeError, "int64", lambda: rf.prox_l1([w[0], torch.ones(60, device="cuda", dtype=torch.int64)], 0.1)),
        (ValueError, "shape", lambda: rf.penalty_grad(w, [g[0], torch.randn(61, device="cuda")], l2=0.1)),
        (ValueError, "dtype", lambda: rf.penalty_grad(w, [g[0], g[1].double()], l2=0.1)),
        (ValueError, "C-contiguous", lambda: rf.penalty_grad(
            [w[0], torch.randn(6, 10, device="cuda")], [g[0], torch.randn(10, 6, device="cuda").t()], l2=0.1)),
        (ValueError, "C-contiguous", lambda: rf.prox_l1([w[0], torch.randn(10, 6, device="cuda").t()], 0.1)),
        (ValueError, "overlaps", lambda: rf.penalty_grad(w, [w[1][:50], g[1]], l2=0.1)),
        (ValueError, "overlaps", lambda: rf.prox_l1([w[0], w[0][10:20]], 0.1)),
        (ValueError, "pair up", lambda: rf.penalty_grad(w, g[:1], l2=0.1)),
        (ValueError, "l2", lambda: rf.penalty_grad(w, g, l2=-1.0)),
        (TypeError, "as_float", lambda: rf.penalty_grad(w, g, l2=0.1, as_float=1)),
        (ValueError, "C-contiguous", lambda: rf.max_norm(torch.randn(10, 6, device="cuda").t(), 1.0, axis=0)),
        (ValueError, "max_value", lambda: rf.max_norm(w[0], 0.0, axis=0)),
        (ValueError, "axis", lambda: rf.max_norm(w[0], 1.0, axis=1)),
        (TypeError, "int32", lambda: rf.max_norm(torch.ones(3, 3, device="cuda", dtype=torch.int32), 1.0, axis=0)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
        assert unchanged(), f"a rejected call ({match}) modified an array"


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_penalty_arrays_on_two_devices_rejected():
    w = [torch.randn(5, device="cuda:0"), torch.randn(5, device="cuda:1")]
    g = [torch.randn(5, device="cuda:0"), torch.randn(5, device="cuda:0")]
    with pytest.raises(ValueError, match="device"):
        rf.penalty_grad(w, g, l2=0.1)
    w1 = [torch.randn(5, device="cuda:1")]
    g1 = [torch.randn(5, device="cuda:1")]
    g1_cpu = [to_numpy(g1[0])]
    value = rf.penalty_grad(w1, g1, l2=0.5)  # launched on device 1 whatever device is current
    assert value.device == torch.device("cuda:1")
    v_cpu = rf.penalty_grad([to_numpy(w1[0])], g1_cpu, l2=0.5)
    assert_close(value, v_cpu, rtol=2e-12)  # both within 1e-12 of the reference
    assert same_bits(to_numpy(g1[0]), g1_cpu[0])


def test_penalty_mixed_libraries_rejected_and_cupy_supported():
    cupy = pytest.importorskip("cupy")
    wc = cupy.asarray(np.linspace(-2, 2, 1001, dtype=np.float32))
    gc = cupy.zeros(1001, np.float32)
    with pytest.raises(ValueError, match="library"):
        rf.penalty_grad([wc, torch.randn(3, device="cuda")], [gc, torch.zeros(3, device="cuda")], l2=0.1)
    with pytest.raises(ValueError, match="library"):
        rf.penalty_grad([wc], [torch.zeros(1001, device="cuda")], l2=0.1)
    assert not bool(gc.any())
    value = rf.penalty_grad(wc, gc, l1=0.1, l2=0.2)
    assert isinstance(value, cupy.ndarray) and value.shape == () and value.dtype == np.float64
    w, g = cupy.asnumpy(wc), np.zeros(1001, np.float32)
    assert_close(float(value), rf.penalty_grad(w, g, l1=0.1, l2=0.2))
    assert same_bits(cupy.asnumpy(gc), g)
    count = rf.prox_l1(wc, 0.5)
    assert isinstance(count, cupy.ndarray) and int(count) == rf.prox_l1(w, 0.5)
    m = cupy.asarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    mh = cupy.asnumpy(m)
    assert int(rf.max_norm(m, 5.0, axis=(0, 2))) == rf.max_norm(mh, 5.0, axis=(0, 2))
    assert same_bits(cupy.asnumpy(m), mh)
