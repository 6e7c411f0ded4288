"""Global addressing of gaussian_dropout (docs/rng.md, "Global addressing"): a block of a global tensor, given
by global_shape and local_start, takes exactly the normals of one call on the whole tensor at the block's
elements: the element of global flat index g takes the normal of stream position offset + g. Every result
is compared bit for bit with the slice of the whole-tensor call and with the NumPy reference: values,
backward (regenerated from the noise record), out= and in place, on every backend.

The CPU runs each piece of a row through the contiguous loop with the pass's offset moved to the row's
position (csrc/cpu/gaussian_dropout_driver.cpp: global_range); the CUDA kernel splits each 16-element group
at the row ends and keeps one Philox block and one pair per piece (gaussian_dropout_global_kernel). The
Box-Muller pairing belongs to the global index, so rows that start at odd positions take the second normal
of their first pair: the shapes below start rows at every position in a pair and a Philox block, give rows
of one element, rows across the 2^16-element tasks, and split every axis.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import DTYPE_IDS, DTYPES, U64_MAX, assert_same_bits, random_values, run_each_simd, run_each_thread_count
from hypothesis import given, settings
from hypothesis import strategies as st

import regdrop_fast as rdf
from regdrop_fast import reference

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def block_of(start, stop):
    return tuple(slice(a, b) for a, b in zip(start, stop))


def pad_to(g_local, gshape, start, stop):
    """g_local placed at its block of a zero tensor of gshape."""
    if not gshape:
        return g_local
    return np.pad(g_local, [(a, g - b) for g, a, b in zip(gshape, start, stop)])


# (global shape, block start, block stop): 1-d to 4-d, every axis split, uneven splits, rows of 1..17
# elements starting at even and odd positions, a Shard(0) block (one run), the whole tensor, an empty block,
# a 0-d tensor.
CASES = [
    ((37,), (5,), (30,)),
    ((37,), (0,), (37,)),
    ((8, 12), (0, 6), (8, 12)),          # Shard(1) of an even split: rows of 6 at even positions
    ((7, 13), (2, 3), (6, 11)),          # rows of 8 at odd and even positions (the row stride is odd)
    ((9, 10), (3, 0), (7, 10)),          # Shard(0): one run
    ((5, 41), (0, 1), (5, 2)),           # rows of one element, odd and even positions
    ((6, 33), (1, 7), (6, 24)),          # rows of 17
    ((4, 5, 6), (1, 2, 3), (3, 5, 5)),
    ((4, 5, 7), (0, 1, 0), (4, 3, 7)),   # axes 1-2 merge into rows of 14, odd row stride
    ((4, 5, 6), (2, 0, 0), (3, 5, 6)),
    ((3, 4, 5, 7), (1, 1, 2, 3), (3, 4, 5, 6)),
    ((3, 4, 5, 7), (0, 2, 0, 0), (3, 3, 5, 7)),
    ((2, 3, 4, 5), (1, 0, 1, 0), (2, 3, 3, 5)),
    ((6, 7), (2, 3), (2, 5)),            # an empty block
    ((), (), ()),                        # 0-d: the block is the whole tensor
]
CASE_IDS = [f"{g}@{a}" for g, a, _ in CASES]
OFFSETS = [0, 1, 2, 3, 6, U64_MAX - 40]  # every position in a Philox block, across the 2^64 wrap
P = 0.35


@dtype_param
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_block_is_the_slice_of_the_whole_call(backend, rng, dtype, case):
    backend.require(dtype)
    gshape, start, stop = case
    whole = np.asarray(random_values(rng, gshape, dtype))
    sl = block_of(start, stop)
    local = np.array(whole[sl], order="C")  # 0-d stays 0-d (ascontiguousarray would make it 1-d)
    g_local = np.asarray(random_values(rng, local.shape, dtype))
    offsets = OFFSETS if not backend.emulated else [3, U64_MAX - 40]
    for offset in offsets:
        what = f"offset={offset}"
        y_whole, n_whole = reference.gaussian_dropout(whole, P, seed=0xC0FFEE, offset=offset)
        y_ref, n_ref = reference.gaussian_dropout(local, P, seed=0xC0FFEE, offset=offset, global_shape=gshape,
                                                  local_start=start)
        assert_same_bits(y_ref, y_whole[sl], what + " reference")
        y, noise = rdf.gaussian_dropout(backend.asarray(local), P, seed=0xC0FFEE, offset=offset, global_shape=gshape,
                                        local_start=start)
        assert_same_bits(backend.to_numpy(y), y_whole[sl], what)
        assert noise == n_ref
        assert (noise.shape, noise.global_shape, noise.local_start, noise.offset) == (local.shape, gshape, start,
                                                                                       offset)
        # the backward regenerates the block's noise: the whole call's backward, sliced
        dx_whole = reference.gaussian_dropout_backward(pad_to(g_local, gshape, start, stop), n_whole)
        dx = rdf.gaussian_dropout_backward(backend.asarray(g_local), noise)
        assert_same_bits(backend.to_numpy(dx), dx_whole[sl], what + " backward")
        assert_same_bits(reference.gaussian_dropout_backward(g_local, n_ref), dx_whole[sl], what + " reference backward")


@pytest.mark.parametrize("case", [CASES[3], CASES[5], CASES[10]], ids=[CASE_IDS[3], CASE_IDS[5], CASE_IDS[10]])
def test_out_and_in_place(backend, rng, case):
    gshape, start, stop = case
    whole = random_values(rng, gshape, np.float32)
    sl = block_of(start, stop)
    y_whole, n_whole = rdf.gaussian_dropout(whole, P, seed=8, offset=1)
    x = backend.asarray(np.ascontiguousarray(whole[sl]))
    out = backend.asarray(np.zeros(x.shape, np.float32))
    y, _ = rdf.gaussian_dropout(x, P, seed=8, offset=1, out=out, global_shape=gshape, local_start=start)
    assert y is out
    assert_same_bits(backend.to_numpy(out), y_whole[sl])
    y, noise = rdf.gaussian_dropout(x, P, seed=8, offset=1, out=x, global_shape=gshape, local_start=start)
    assert y is x
    assert_same_bits(backend.to_numpy(x), y_whole[sl])
    # the backward in place: grad = ones gives the factors, the whole call's on ones
    g = backend.asarray(np.ones(x.shape, np.float32))
    assert rdf.gaussian_dropout_backward(g, noise, out=g) is g
    assert_same_bits(backend.to_numpy(g), rdf.gaussian_dropout(np.ones(gshape, np.float32), P, seed=8, offset=1)[0][sl])
    # a non-contiguous block is read by its logical index
    t = backend.transpose(backend.asarray(np.ascontiguousarray(whole[sl].T)))
    y, _ = rdf.gaussian_dropout(t, P, seed=8, offset=1, global_shape=gshape, local_start=start)
    assert_same_bits(backend.to_numpy(y), y_whole[sl])


def test_shards_of_every_split_tile_the_whole_call(backend, rng):
    """An uneven grid of blocks over every axis: the blocks' values put together are the whole call's."""
    gshape = (5, 6, 19)
    cuts = [(0, 2, 5), (0, 1, 4, 6), (0, 7, 8, 19)]
    whole = random_values(rng, gshape, np.float32)
    y_whole, _ = rdf.gaussian_dropout(whole, 0.5, seed=77, offset=3)
    joined = np.zeros_like(whole)
    for idx in itertools.product(*(range(len(c) - 1) for c in cuts)):
        start = tuple(c[i] for c, i in zip(cuts, idx))
        stop = tuple(c[i + 1] for c, i in zip(cuts, idx))
        sl = block_of(start, stop)
        y, _ = rdf.gaussian_dropout(backend.asarray(np.ascontiguousarray(whole[sl])), 0.5, seed=77, offset=3,
                                    global_shape=gshape, local_start=start)
        joined[sl] = backend.to_numpy(y)
    assert_same_bits(joined, y_whole)


def test_the_whole_tensor_as_its_own_block_is_a_plain_call(backend, rng):
    x = random_values(rng, (9, 31), np.float32)
    y, noise = rdf.gaussian_dropout(backend.asarray(x), 0.3, seed=4, offset=5)
    yg, ng = rdf.gaussian_dropout(backend.asarray(x), 0.3, seed=4, offset=5, global_shape=(9, 31))
    assert_same_bits(backend.to_numpy(yg), backend.to_numpy(y))
    assert (ng.global_shape, ng.local_start) == ((9, 31), (0, 0))
    assert (noise.global_shape, noise.local_start) == (None, None)
    assert ng != noise


@pytest.mark.parametrize("cols", [(17, 454), (0, 500), (3, 4), (1, 999)], ids=str)
def test_many_tasks_every_thread_count_and_simd_level(rng, cols):
    """Blocks of several 2^16-element tasks whose rows start at odd and even positions: the same values on 1
    and 2 threads and every SIMD path, equal to the slice of the whole call."""
    gshape = (301, 1001)
    whole = random_values(rng, gshape, np.float32)
    y_whole, _ = rdf.gaussian_dropout(whole, 0.5, seed=123, offset=7)
    sl = (slice(0, 301), slice(*cols))
    local = np.ascontiguousarray(whole[sl])
    noise = rdf.GaussianNoise(local.shape, 0.5, 123, 7, global_shape=gshape, local_start=(0, cols[0]))

    def run():
        y, _ = rdf.gaussian_dropout(local, 0.5, seed=123, offset=7, global_shape=gshape, local_start=(0, cols[0]))
        return y, rdf.gaussian_dropout_backward(local, noise)

    for label, (y, dx) in [*run_each_thread_count(run, counts=(1, 2)).items(), *run_each_simd(run).items()]:
        assert_same_bits(y, y_whole[sl], f"{label}")
        assert_same_bits(dx, y_whole[sl], f"{label} backward")


def test_noise_fields():
    n = rdf.GaussianNoise((2, 3), 0.5, seed=1, offset=2, global_shape=[4, 6], local_start=(1, 3))
    assert (n.global_shape, n.local_start) == ((4, 6), (1, 3))
    assert repr(n) == ("GaussianNoise(shape=(2, 3), p=0.5, seed=1, offset=2, global_shape=(4, 6), "
                       "local_start=(1, 3))")
    assert n == rdf.GaussianNoise((2, 3), 0.5, 1, 2, global_shape=(4, 6), local_start=[1, 3])
    assert hash(n) == hash(rdf.GaussianNoise((2, 3), 0.5, 1, 2, global_shape=(4, 6), local_start=[1, 3]))
    assert n != rdf.GaussianNoise((2, 3), 0.5, 1, 2, global_shape=(4, 6), local_start=(2, 3))
    assert n != rdf.GaussianNoise((2, 3), 0.5, 1, 2)
    assert rdf.GaussianNoise((2, 3), 0.5, 1, global_shape=(4, 6)).local_start == (0, 0)
    ones = np.ones((4, 6), np.float32)
    whole, _ = rdf.gaussian_dropout(ones, 0.5, seed=1, offset=2)
    assert_same_bits(rdf.gaussian_dropout_backward(np.ones((2, 3), np.float32), n), whole[1:3, 3:6])


@st.composite
def blocks(draw):
    ndim = draw(st.integers(1, 4))
    gshape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    start, stop = [], []
    for g in gshape:
        a = draw(st.integers(0, g))
        b = draw(st.integers(a, g))
        start.append(a)
        stop.append(b)
    return gshape, tuple(start), tuple(stop)


@settings(max_examples=60, deadline=None)
@given(blocks(), st.sampled_from(DTYPES), st.one_of(st.integers(0, 64), st.integers(U64_MAX - 200, U64_MAX)),
       st.integers(0, U64_MAX), st.sampled_from([0.0, 0.3, 0.9]))
def test_any_block_is_the_slice_of_the_whole_call(case, dtype, offset, seed, p):
    gshape, start, stop = case
    whole = (np.arange(np.prod(gshape)).reshape(gshape) % 7 - 3).astype(dtype)
    sl = block_of(start, stop)
    local = np.ascontiguousarray(whole[sl])
    y_whole, _ = rdf.gaussian_dropout(whole, p, seed=seed, offset=offset)
    y, noise = rdf.gaussian_dropout(local, p, seed=seed, offset=offset, global_shape=gshape, local_start=start)
    y_ref, _ = reference.gaussian_dropout(local, p, seed=seed, offset=offset, global_shape=gshape, local_start=start)
    assert_same_bits(y, y_whole[sl])
    assert_same_bits(y_ref, y_whole[sl])
    assert_same_bits(rdf.gaussian_dropout_backward(local, noise), y_whole[sl])


# ----------------------------------------------------------------------------------------------------------
# regdrop_fast.torch.gaussian_dropout(..., global_shape=, local_start=): through the custom op, autograd,
# forward-mode AD and torch.compile.


def test_torch_block_is_the_slice_of_the_whole_call():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rt

    whole = torch.randn(6, 10, 3, dtype=torch.float32)
    leaf_whole = whole.clone().requires_grad_(True)
    y_whole = rt.gaussian_dropout(leaf_whole, 0.4, generator=rdf.Generator(5, 3))
    sl = (slice(1, 5), slice(3, 9), slice(0, 3))
    gshape, start = (6, 10, 3), (1, 3, 0)
    grad = torch.zeros(gshape)
    grad[sl] = torch.randn(4, 6, 3)
    y_whole.backward(grad)
    local = whole[sl].clone().requires_grad_(True)
    gen = rdf.Generator(5, 3)
    y = rt.gaussian_dropout(local, 0.4, generator=gen, global_shape=gshape, local_start=start)
    assert torch.equal(y, y_whole[sl])
    assert gen.get_state() == (5, 3 + 180)  # the generator advances by the global tensor's element count
    y.backward(grad[sl])
    assert torch.equal(local.grad, leaf_whole.grad[sl])
    from torch.func import jvp

    _, tangent = jvp(lambda v: rt.gaussian_dropout(v, 0.4, generator=rdf.Generator(5, 3), global_shape=gshape,
                                                   local_start=start), (whole[sl].contiguous(),), (grad[sl].contiguous(),))
    assert torch.equal(tangent, leaf_whole.grad[sl])
    f = torch.compile(lambda v: rt.gaussian_dropout(v, 0.4, generator=rdf.Generator(5, 3), global_shape=gshape,
                                                    local_start=start), backend="eager", fullgraph=True)
    assert torch.equal(f(whole[sl].contiguous()), y_whole[sl])
    # eval mode and p = 0 still check the block, then return the input
    t = whole[sl].contiguous()
    assert rt.gaussian_dropout(t, 0.4, training=False, global_shape=gshape, local_start=start) is t
    with pytest.raises(ValueError, match="does not fit"):
        rt.gaussian_dropout(t, 0.4, training=False, global_shape=gshape, local_start=(3, 3, 0))


def test_torch_op_passes_opcheck():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch  # noqa: F401  (registers the ops)

    x = torch.randn(6, 5, requires_grad=True)
    seed = torch.tensor([5, 3])
    torch.library.opcheck(torch.ops.regdrop_fast.gaussian_dropout_fwd.default, (x, 0.5, seed, [6, 10], [0, 5]))
    torch.library.opcheck(torch.ops.regdrop_fast.gaussian_dropout_fwd.default, (x, 0.5, seed, [9, 5], [3, 0]))


def test_torch_vmap_refuses_global_addressing():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rt

    with pytest.raises(RuntimeError, match="gaussian_dropout with global_shape is not supported under torch.func.vmap"):
        torch.func.vmap(lambda v: rt.gaussian_dropout(v, 0.5, global_shape=(8,), local_start=(2,)),
                        randomness="same")(torch.ones(3, 4))
