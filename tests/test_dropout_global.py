"""Global addressing (docs/rng.md, "Global addressing"): dropout of a block of a global tensor, given by
global_shape and local_start, makes exactly the decisions of one call on the whole tensor at the block's
elements. Every result is compared bit for bit with the NumPy reference and with the slice of the
whole-tensor call: values, mask bits (the block's decisions in its own C order), regenerated masks and
backward, on every backend.

The CPU runs each row of the block (a run along the global flat index) through the contiguous loop and ORs
the bits of rows that do not start on a mask byte into place (csrc/cpu/dropout_driver.cpp: dropout_global_range);
the CUDA kernel splits each 16-element group at the row ends. The shapes below put row ends everywhere in a
byte and a group, rows shorter than a byte, rows across the 2^16-element tasks, and every axis split.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import (
    DTYPE_IDS,
    DTYPES,
    U64_MAX,
    assert_same_bits,
    assert_unchanged,
    random_values,
    run_each_simd,
    run_each_thread_count,
    snapshot,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import regdrop_fast as rdf
from regdrop_fast import _args, _native, reference

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def block_of(global_shape, start, stop):
    """The slices of the block [start, stop) of a tensor of global_shape."""
    assert len(start) == len(stop) == len(global_shape)
    return tuple(slice(a, b) for a, b in zip(start, stop))


# (global shape, block start, block stop): 1-d to 4-d, every axis split, uneven splits, rows of 1..16 and
# odd lengths, size-1 blocks, a block equal to the whole tensor, an empty block.
CASES = [
    ((37,), (5,), (30,)),
    ((37,), (0,), (37,)),
    ((8, 12), (0, 6), (8, 12)),          # Shard(1) of an even split
    ((7, 13), (2, 3), (6, 11)),
    ((9, 10), (3, 0), (7, 10)),          # Shard(0): one run
    ((5, 40), (0, 1), (5, 2)),           # rows of one element
    ((6, 33), (1, 7), (6, 24)),          # rows of 17
    ((4, 5, 6), (1, 2, 3), (3, 5, 5)),
    ((4, 5, 6), (0, 1, 0), (4, 3, 6)),   # axes 1-2 merge into rows of 12
    ((4, 5, 6), (2, 0, 0), (3, 5, 6)),
    ((3, 4, 5, 7), (1, 1, 2, 3), (3, 4, 5, 6)),
    ((3, 4, 5, 7), (0, 2, 0, 0), (3, 3, 5, 7)),
    ((2, 3, 4, 5), (1, 0, 1, 0), (2, 3, 3, 5)),
    ((6, 7), (2, 3), (2, 5)),            # an empty block
]
CASE_IDS = [f"{g}@{a}" for g, a, _ in CASES]
OFFSETS = [0, 1, 3, 6, U64_MAX - 40]  # aligned, not multiples of 4, across the 2^64 wrap


def _global_call(fn, x, *args, block, **kwargs):
    gshape, start, _ = block
    return fn(x, *args, global_shape=gshape, local_start=start, **kwargs)


@dtype_param
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_block_is_the_slice_of_the_whole_call(backend, rng, dtype, case):
    backend.require(dtype)
    gshape, start, stop = case
    whole = random_values(rng, gshape, dtype)
    sl = block_of(gshape, start, stop)
    local = np.ascontiguousarray(whole[sl])
    g_local = random_values(rng, local.shape, dtype)
    offsets = OFFSETS if not backend.emulated else [3, U64_MAX - 40]
    for offset, store in itertools.product(offsets, ("bits", "seed")):
        y_whole, m_whole = reference.dropout(whole, 0.35, seed=0xC0FFEE, offset=offset)
        keep_whole = m_whole.to_bool()
        y_ref, m_ref = reference.dropout(local, 0.35, seed=0xC0FFEE, offset=offset, store=store,
                                         global_shape=gshape, local_start=start)
        assert_same_bits(y_ref, y_whole[sl], f"reference offset={offset}")
        y, m = rdf.dropout(backend.asarray(local), 0.35, seed=0xC0FFEE, offset=offset, store=store,
                           global_shape=gshape, local_start=start)
        what = f"offset={offset} store={store}"
        assert_same_bits(backend.to_numpy(y), y_whole[sl], what)
        assert (m.global_shape, m.local_start, m.offset, m.shape) == (gshape, start, offset, local.shape)
        if store == "bits":
            assert_same_bits(backend.to_numpy(m.bits), m_ref.bits, what + " bits")
            assert_same_bits(m_ref.bits, np.packbits(keep_whole[sl].ravel(), bitorder="little"), what)
        else:
            assert m.bits is None
        assert np.array_equal(backend.to_numpy(m.to_bool()), keep_whole[sl]), what
        # backward from the stored bits or regenerated from (seed, offset): the whole call's, sliced
        dx_whole = reference.dropout_backward(np.pad(g_local, [(a, g - b) for g, a, b in zip(gshape, start, stop)]),
                                              m_whole)
        dx = rdf.dropout_backward(backend.asarray(g_local), m)
        assert_same_bits(backend.to_numpy(dx), dx_whole[sl], what + " backward")
        assert_same_bits(reference.dropout_backward(g_local, m_ref), dx_whole[sl], what + " reference backward")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dropout_mask_of_a_block(case):
    gshape, start, stop = case
    sl = block_of(gshape, start, stop)
    local_shape = tuple(b - a for a, b in zip(start, stop))
    for offset in OFFSETS:
        whole = rdf.dropout_mask(gshape, 0.5, seed=9, offset=offset).to_bool()
        m = rdf.dropout_mask(local_shape, 0.5, seed=9, offset=offset, global_shape=gshape, local_start=start)
        r = reference.dropout_mask(local_shape, 0.5, seed=9, offset=offset, global_shape=gshape, local_start=start)
        assert_same_bits(m.bits, r.bits)
        assert np.array_equal(m.to_bool(), whole[sl])
        m.bits = None  # regenerated
        assert np.array_equal(m.to_bool(), whole[sl])


def test_shards_of_every_split_tile_the_whole_mask(backend, rng):
    """An uneven grid of blocks over every axis: the blocks' masks put together are the whole call's."""
    gshape = (5, 6, 19)
    cuts = [(0, 2, 5), (0, 1, 4, 6), (0, 7, 8, 19)]
    whole = random_values(rng, gshape, np.float32)
    y_whole, m_whole = rdf.dropout(whole, 0.5, seed=77, offset=2)
    y_joined = np.zeros_like(whole)
    keep_joined = np.zeros(gshape, bool)
    for idx in itertools.product(*(range(len(c) - 1) for c in cuts)):
        start = tuple(c[i] for c, i in zip(cuts, idx))
        stop = tuple(c[i + 1] for c, i in zip(cuts, idx))
        sl = block_of(gshape, start, stop)
        y, m = rdf.dropout(backend.asarray(np.ascontiguousarray(whole[sl])), 0.5, seed=77, offset=2,
                           global_shape=gshape, local_start=start)
        y_joined[sl] = backend.to_numpy(y)
        keep_joined[sl] = backend.to_numpy(m.to_bool())
    assert_same_bits(y_joined, y_whole)
    assert np.array_equal(keep_joined, m_whole.to_bool())


def test_the_whole_tensor_as_its_own_block_is_a_plain_call(backend, rng):
    x = random_values(rng, (9, 31), np.float32)
    y, m = rdf.dropout(backend.asarray(x), 0.3, seed=4, offset=5)
    yg, mg = rdf.dropout(backend.asarray(x), 0.3, seed=4, offset=5, global_shape=(9, 31))
    assert_same_bits(backend.to_numpy(yg), backend.to_numpy(y))
    assert_same_bits(backend.to_numpy(mg.bits), backend.to_numpy(m.bits))
    assert (mg.global_shape, mg.local_start) == ((9, 31), (0, 0))


@pytest.mark.parametrize("cols", [(17, 454), (0, 500), (3, 4), (1, 999)], ids=str)
def test_many_tasks_every_thread_count_and_simd_level(rng, cols):
    """Blocks of several 2^16-element tasks whose rows end anywhere in a byte: the same bits on every thread
    count and SIMD path, equal to the slice of the whole call."""
    gshape = (301, 1001)
    whole = random_values(rng, gshape, np.float32)
    y_whole, m_whole = rdf.dropout(whole, 0.5, seed=123, offset=7)
    sl = (slice(0, 301), slice(*cols))
    local = np.ascontiguousarray(whole[sl])

    def run():
        y, m = rdf.dropout(local, 0.5, seed=123, offset=7, global_shape=gshape, local_start=(0, cols[0]))
        dx = rdf.dropout_backward(local, rdf.Mask(local.shape, 0.5, 123, 7, global_shape=gshape,
                                                  local_start=(0, cols[0])))
        return y, m.bits, dx

    expected_bits = np.packbits(m_whole.to_bool()[sl].ravel(), bitorder="little")
    for label, (y, bits, dx) in [*run_each_thread_count(run).items(), *run_each_simd(run).items()]:
        assert_same_bits(y, y_whole[sl], f"{label}")
        assert_same_bits(bits, expected_bits, f"{label} bits")
        assert_same_bits(dx, y_whole[sl], f"{label} backward")


def test_layouts_out_and_in_place(backend, rng):
    """A block in another axis order decides by its logical index and comes back in its layout; out= and
    out=x (in place) work as for a plain call."""
    gshape, start = (10, 12), (2, 5)
    whole = random_values(rng, gshape, np.float32)
    sl = (slice(2, 9), slice(5, 12))
    y_whole, _ = rdf.dropout(whole, 0.4, seed=8, offset=1)
    t = backend.transpose(backend.asarray(np.ascontiguousarray(whole[sl].T)))  # a Fortran-order block
    y, _ = rdf.dropout(t, 0.4, seed=8, offset=1, global_shape=gshape, local_start=start)
    assert_same_bits(backend.to_numpy(y), y_whole[sl])
    if backend.name == "cpu":
        assert y.strides == t.strides
    x = backend.asarray(np.ascontiguousarray(whole[sl]))
    out = backend.asarray(np.zeros(x.shape, np.float32))
    y, _ = rdf.dropout(x, 0.4, seed=8, offset=1, out=out, global_shape=gshape, local_start=start)
    assert y is out
    assert_same_bits(backend.to_numpy(out), y_whole[sl])
    y, _ = rdf.dropout(x, 0.4, seed=8, offset=1, out=x, global_shape=gshape, local_start=start)
    assert_same_bits(backend.to_numpy(x), y_whole[sl])


def test_mask_fields():
    m = rdf.Mask((2, 3), 0.5, seed=1, offset=2, global_shape=[4, 6], local_start=(1, 3))
    assert (m.global_shape, m.local_start) == ((4, 6), (1, 3))
    assert repr(m) == ("Mask(shape=(2, 3), p=0.5, seed=1, offset=2, global_shape=(4, 6), local_start=(1, 3), "
                       "store='seed')")
    whole = rdf.dropout_mask((4, 6), 0.5, seed=1, offset=2).to_bool()
    assert np.array_equal(m.to_bool(), whole[1:3, 3:6])
    m.local_start = (2, 0)
    assert np.array_equal(m.to_bool(), whole[2:4, 0:3])
    m.local_start = None  # zeros
    assert m.local_start == (0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        m.global_shape = (1, 6)
    with pytest.raises(ValueError, match="set global_shape first"):
        m.shape = (5, 3)
    m.broadcast_dims = 1  # the decisions of the whole (4, 1) reduced tensor at the block's rows 0 and 1
    whole_rows = rdf.dropout_mask((4, 6), 0.5, seed=1, offset=2, broadcast_dims=1).to_bool()
    assert np.array_equal(m.to_bool(), whole_rows[0:2])
    m.broadcast_dims = ()
    assert (m.shape, m.global_shape, m.broadcast_dims) == ((2, 3), (4, 6), ())
    m.global_shape = None
    assert (m.global_shape, m.local_start) == (None, None)
    with pytest.raises(ValueError, match="without global_shape"):
        m.local_start = (0, 0)
    with pytest.raises(TypeError, match="local_start"):
        m.local_start = "ab"
    assert rdf.Mask((2, 3), 0.5, seed=1).global_shape is None


def test_blocks_are_reduced_to_rows():
    """_args.global_block: the rows the kernels run (row length, outer axes and their global strides)."""
    b = _args.global_block((8, 12), (0, 6), (8, 6))
    assert (b.start, b.row_len, b.outer_shape, b.outer_strides) == (6, 6, (8,), (12,))
    b = _args.global_block((4, 5, 6), (0, 1, 0), (4, 2, 6))
    assert (b.start, b.row_len, b.outer_shape, b.outer_strides) == (6, 12, (4,), (30,))
    b = _args.global_block((3, 4, 5, 7), (1, 0, 2, 3), (2, 4, 3, 3))  # axes 0-1 merge (axis 1 whole)
    assert (b.start, b.row_len, b.outer_shape, b.outer_strides) == (140 + 17, 3, (8, 3), (35, 7))
    b = _args.global_block((9, 10), (3, 0), (4, 10))
    assert (b.start, b.row_len, b.outer_shape) == (30, 40, ())
    assert _args.global_block(None, None, (3,)) is None
    assert _args.GLOBAL_MAX_OUTER_DIMS == _native.core.MAX_GLOBAL_OUTER_DIMS


def test_too_many_split_axes_are_refused():
    shape = (2,) * 35
    with pytest.raises(ValueError, match="splits too many axes"):
        _args.global_block((3,) * 35, (0,) * 35, shape)
    # 16 outer axes are fine
    b = _args.global_block((3,) * 17, (0,) * 17, (2,) * 17)
    assert len(b.outer_shape) == 16


# (function, its reference, its backward, its reference backward, keyword arguments): the mask-based
# variants, whose decisions are those of the whole tensor's reduced shape at the block's slices.
VARIANTS = [
    (rdf.dropout, reference.dropout, rdf.dropout_backward, reference.dropout_backward, {"broadcast_dims": (2, 3)}),
    (rdf.dropout, reference.dropout, rdf.dropout_backward, reference.dropout_backward, {"broadcast_dims": 0}),
    (rdf.drop_path, reference.drop_path, rdf.dropout_backward, reference.dropout_backward, {}),
    (rdf.drop_path, reference.drop_path, rdf.dropout_backward, reference.dropout_backward, {"scale_by_keep": False}),
    (rdf.alpha_dropout, reference.alpha_dropout, rdf.alpha_dropout_backward, reference.alpha_dropout_backward, {}),
    (rdf.alpha_dropout, reference.alpha_dropout, rdf.alpha_dropout_backward, reference.alpha_dropout_backward,
     {"broadcast_dims": 1}),
]
VARIANT_IDS = ["dropout2d", "time-shared", "drop_path", "drop_path-unscaled", "alpha", "feature-alpha"]


@pytest.mark.parametrize("fn, ref, back, ref_back, kw", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("case", [((6, 5, 7, 9), (1, 0, 2, 3), (5, 5, 7, 8)), ((5, 4, 3, 6), (0, 1, 0, 2), (5, 4, 3, 3))],
                         ids=["4d-split", "4d-inner"])
def test_variants_of_a_block_are_the_slice_of_the_whole_call(backend, rng, fn, ref, back, ref_back, kw, case):
    gshape, start, stop = case
    sl = block_of(gshape, start, stop)
    whole = random_values(rng, gshape, np.float32)
    local = np.ascontiguousarray(whole[sl])
    g = random_values(rng, local.shape, np.float32)
    g_whole = np.zeros(gshape, np.float32)
    g_whole[sl] = g
    y_whole, m_whole = fn(whole, 0.4, seed=21, offset=5, **kw)
    dx_whole = back(g_whole, m_whole)
    keep_whole = np.broadcast_to(m_whole.to_bool(), gshape)[sl]
    for store in ("bits", "seed"):
        y, m = fn(backend.asarray(local), 0.4, seed=21, offset=5, store=store, global_shape=gshape, local_start=start,
                  **kw)
        y_ref, m_ref = ref(local, 0.4, seed=21, offset=5, store=store, global_shape=gshape, local_start=start, **kw)
        assert_same_bits(backend.to_numpy(y), y_whole[sl], store)
        assert_same_bits(y_ref, y_whole[sl], store + " reference")
        assert (m.global_shape, m.local_start, m.broadcast_dims) == (gshape, start, m_whole.broadcast_dims)
        if store == "bits":
            assert_same_bits(backend.to_numpy(m.bits), m_ref.bits, "bits")
        assert np.array_equal(np.broadcast_to(backend.to_numpy(m.to_bool()), local.shape), keep_whole)
        assert_same_bits(backend.to_numpy(back(backend.asarray(g), m)), dx_whole[sl], store + " backward")
        assert_same_bits(ref_back(g, m_ref), dx_whole[sl], store + " reference backward")


def test_dropout_mask_with_broadcast_axes_of_a_block():
    gshape, start, local = (6, 5, 7), (2, 1, 3), (3, 4, 4)
    sl = block_of(gshape, start, tuple(a + n for a, n in zip(start, local)))
    for dims in [(0,), (1, 2), (2,)]:
        whole = np.broadcast_to(rdf.dropout_mask(gshape, 0.5, seed=4, offset=1, broadcast_dims=dims).to_bool(), gshape)
        m = rdf.dropout_mask(local, 0.5, seed=4, offset=1, broadcast_dims=dims, global_shape=gshape, local_start=start)
        r = reference.dropout_mask(local, 0.5, seed=4, offset=1, broadcast_dims=dims, global_shape=gshape,
                                   local_start=start)
        assert_same_bits(m.bits, r.bits)
        assert np.array_equal(np.broadcast_to(m.to_bool(), local), whole[sl])


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


@settings(max_examples=80, deadline=None)
@given(blocks(), st.sampled_from(DTYPES), st.one_of(st.integers(0, 64), st.integers(U64_MAX - 200, U64_MAX)),
       st.integers(0, U64_MAX), st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_any_block_is_the_slice_of_the_whole_call(case, dtype, offset, seed, p):
    gshape, start, stop = case
    whole = (np.arange(np.prod(gshape)).reshape(gshape) % 7 - 3).astype(dtype)
    sl = block_of(gshape, start, stop)
    local = np.ascontiguousarray(whole[sl])
    y_whole, m_whole = rdf.dropout(whole, p, seed=seed, offset=offset)
    y, m = rdf.dropout(local, p, seed=seed, offset=offset, global_shape=gshape, local_start=start)
    y_ref, m_ref = reference.dropout(local, p, seed=seed, offset=offset, global_shape=gshape, local_start=start)
    assert_same_bits(y, y_whole[sl])
    assert_same_bits(y_ref, y_whole[sl])
    assert_same_bits(m.bits, m_ref.bits)
    assert np.array_equal(m.to_bool(), m_whole.to_bool()[sl])
    m.bits = None
    assert_same_bits(rdf.dropout_backward(local, m), y_whole[sl])


# ----------------------------------------------------------------------------------------------------------
# regdrop_fast.torch.dropout(..., global_shape=, local_start=): through the custom ops, autograd, in place,
# forward-mode AD and torch.compile.


@pytest.mark.parametrize("store", ["bits", "seed"])
def test_torch_block_is_the_slice_of_the_whole_call(store):
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rt

    whole = torch.randn(6, 10, 3, dtype=torch.float32)
    y_whole = rt.dropout(whole, 0.4, generator=rdf.Generator(5, 3))
    sl = (slice(1, 5), slice(4, 9), slice(0, 3))
    gshape, start = (6, 10, 3), (1, 4, 0)
    local = whole[sl].clone().requires_grad_(True)
    gen = rdf.Generator(5, 3)
    y = rt.dropout(local, 0.4, generator=gen, store=store, global_shape=gshape, local_start=start)
    assert torch.equal(y, y_whole[sl])
    assert gen.get_state() == (5, 3 + 180)  # the generator advances by the global tensor's element count
    (y * 3).sum().backward()
    assert torch.equal(local.grad, (y_whole[sl] != 0).float() * (3 / 0.6))
    # in place, without grad
    t = whole[sl].clone()
    assert rt.dropout(t, 0.4, inplace=True, generator=rdf.Generator(5, 3), global_shape=gshape,
                      local_start=start) is t
    assert torch.equal(t, y_whole[sl])
    # forward-mode AD: the tangent through the same mask
    from torch.func import jvp

    _, tangent = jvp(lambda v: rt.dropout(v, 0.4, generator=rdf.Generator(5, 3), store=store, global_shape=gshape,
                                          local_start=start), (whole[sl].contiguous(),), (torch.ones(4, 5, 3),))
    assert torch.equal(tangent, (y_whole[sl] != 0).float() / 0.6)
    # torch.compile traces it whole
    f = torch.compile(lambda v: rt.dropout(v, 0.4, generator=rdf.Generator(5, 3), store=store,
                                           global_shape=gshape, local_start=start), backend="eager", fullgraph=True)
    assert torch.equal(f(whole[sl].contiguous()), y_whole[sl])


def test_torch_ops_pass_opcheck():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch  # noqa: F401  (registers the ops)

    x = torch.randn(6, 5)
    seed = torch.tensor([5, 3])
    torch.library.opcheck(torch.ops.regdrop_fast.dropout_fwd.default, (x, 0.5, seed, True, [6, 10], [0, 4]))
    torch.library.opcheck(torch.ops.regdrop_fast.dropout_fwd.default, (x, 0.5, seed, False, [9, 5], [3, 0]))
    torch.library.opcheck(torch.ops.regdrop_fast.dropout_bwd.default,
                          (x, torch.empty(0, dtype=torch.uint8), seed, 0.5, False, [6, 10], [0, 4]))


def test_torch_vmap_refuses_global_addressing():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rt

    with pytest.raises(RuntimeError, match="global_shape is not supported under torch.func.vmap"):
        torch.func.vmap(lambda v: rt.dropout(v, 0.5, global_shape=(8,), local_start=(2,)),
                        randomness="different")(torch.ones(3, 4))


def test_masks_of_blocks_in_the_other_backwards(rng):
    """bias_dropout_add_backward takes a block's mask with its bits (the block's own order: nothing global is
    left to apply) or regenerates it from the seed (the mask records the block;
    tests/test_bias_dropout_add_global.py covers the epilogue's own blocks)."""
    whole = random_values(rng, (6, 8), np.float32)
    _, m_whole = rdf.dropout(whole, 0.5, seed=3)
    g = random_values(rng, (6, 3), np.float32)
    _, m = rdf.dropout(np.ascontiguousarray(whole[:, 5:]), 0.5, seed=3, global_shape=(6, 8), local_start=(0, 5))
    dx, dbias, _ = rdf.bias_dropout_add_backward(g, m)
    expected = np.where(m_whole.to_bool()[:, 5:], g * np.float32(2), np.float32(0))
    assert_same_bits(dx, expected)
    m.bits = None
    dx2, dbias2, _ = rdf.bias_dropout_add_backward(g, m)
    assert_same_bits(dx2, expected)
    assert_same_bits(dbias2, dbias)


@pytest.mark.parametrize("which", ["dropout_shared", "drop_path", "drop_path-unscaled", "alpha_dropout"])
@pytest.mark.parametrize("store", ["bits", "seed"])
def test_torch_variants_of_a_block(which, store):
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rt

    def run(t, gen, **block):
        if which == "dropout_shared":
            return rt.dropout_shared(t, 0.4, broadcast_dims=(2, 3), generator=gen, store=store, **block)
        if which == "alpha_dropout":
            return rt.alpha_dropout(t, 0.4, training=True, generator=gen, store=store, **block)
        return rt.drop_path(t, 0.4, training=True, scale_by_keep=which == "drop_path", generator=gen, store=store,
                            **block)

    gshape, start = (6, 5, 4, 7), (2, 1, 0, 3)
    sl = (slice(2, 6), slice(1, 4), slice(0, 4), slice(3, 7))
    whole = torch.randn(gshape, dtype=torch.float64)
    leaf_whole = whole.clone().requires_grad_(True)
    y_whole = run(leaf_whole, rdf.Generator(8, 2))
    grad = torch.zeros(gshape, dtype=torch.float64)
    grad[sl] = torch.randn(4, 3, 4, 4, dtype=torch.float64)
    y_whole.backward(grad)
    local = whole[sl].clone().requires_grad_(True)
    gen = rdf.Generator(8, 2)
    y = run(local, gen, global_shape=gshape, local_start=start)
    assert torch.equal(y, y_whole[sl])
    decisions = {"dropout_shared": 6 * 5, "alpha_dropout": 6 * 5 * 4 * 7}.get(which, 6)
    assert gen.get_state() == (8, 2 + decisions)  # advanced by the whole tensor's decision count
    y.backward(grad[sl])
    assert torch.equal(local.grad, leaf_whole.grad[sl])
    from torch.func import jvp

    _, tangent = jvp(lambda v: run(v, rdf.Generator(8, 2), global_shape=gshape, local_start=start),
                     (whole[sl].contiguous(),), (grad[sl].contiguous(),))
    assert torch.equal(tangent, leaf_whole.grad[sl])
    f = torch.compile(lambda v: run(v, rdf.Generator(8, 2), global_shape=gshape, local_start=start), backend="eager",
                      fullgraph=True)
    assert torch.equal(f(whole[sl].contiguous()), y_whole[sl])


def test_torch_variant_ops_pass_opcheck():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch  # noqa: F401  (registers the ops)

    x = torch.randn(4, 3, 5)
    seed = torch.tensor([5, 3])
    torch.library.opcheck(torch.ops.regdrop_fast.dropout_variant_fwd.default,
                          (x, 0.5, seed, True, [1, 2], 0, [8, 3, 5], [2, 0, 0]))
    torch.library.opcheck(torch.ops.regdrop_fast.dropout_variant_bwd.default,
                          (x, torch.empty(0, dtype=torch.uint8), seed, 0.5, False, [], 2, [4, 6, 5], [0, 3, 0]))
