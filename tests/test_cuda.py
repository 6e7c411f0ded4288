"""CUDA backend: every kernel against the CPU kernels and the NumPy reference (skipped without a GPU).

Masks must be bit-identical across CUDA, CPU and reference for every dtype, size, alignment and offset;
values equal bit for bit as well (same element body, same single rounding, no FMA contraction).
"""

import numpy as np
import pytest

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
