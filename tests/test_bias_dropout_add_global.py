"""Global addressing for the fused epilogue (docs/rng.md, "Global addressing"): bias_dropout_add and dropout_add
of a block of a global tensor (global_shape, local_start) decide exactly as dropout of the block does, so
each block's y is the whole call's y at the block's slice bit for bit, when the whole call's bias is the
concatenation of the blocks' bias slices along the last axis (the column-parallel case: each rank holds its
bias shard). The mask records the block: the backward's dx is the slice of the whole backward's, from the
stored bits or regenerated (store="seed"), and dbias is the block's own fixed-order reduction.

The CPU forward draws each tile's bits from the rows' pieces with dropout_global_range (the piece generator
of dropout_global); the CUDA kernel takes each 16-element group's bits from block_group_bits (the piece
loop of dropout_global_kernel). The shapes put row ends everywhere in a byte and a group, rows shorter than
a byte, rows across tiles and 2^16-element tasks, and every axis split.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import DTYPE_IDS, DTYPES, U64_MAX, assert_same_bits, random_values, run_each_simd, run_each_thread_count

import regdrop_fast as rdf
from regdrop_fast import reference

dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def block_of(start, stop):
    return tuple(slice(a, b) for a, b in zip(start, stop))


# (global shape, block start, block stop): 1-d to 4-d, every axis split, uneven splits, rows of 1..17 and odd
# lengths (rows starting mid-byte), a Shard(0) block (one run), the whole tensor, an empty block.
CASES = [
    ((37,), (5,), (30,)),
    ((8, 12), (0, 6), (8, 12)),          # Shard(1) of an even split: the column-parallel case
    ((7, 13), (2, 3), (6, 11)),
    ((9, 10), (3, 0), (7, 10)),          # Shard(0): one run
    ((5, 40), (0, 1), (5, 2)),           # rows of one element
    ((6, 33), (1, 7), (6, 24)),          # rows of 17
    ((4, 5, 6), (1, 2, 3), (3, 5, 5)),
    ((4, 5, 6), (0, 1, 0), (4, 3, 6)),   # axes 1-2 merge into rows of 12
    ((3, 4, 5, 7), (1, 1, 2, 3), (3, 4, 5, 6)),
    ((2, 3, 4, 5), (1, 0, 1, 0), (2, 3, 3, 5)),
    ((6, 7), (0, 0), (6, 7)),            # the whole tensor
    ((6, 7), (2, 3), (2, 5)),            # an empty block
]
CASE_IDS = [f"{g}@{a}:{b}" for g, a, b in CASES]
EMULATED_CASES = [CASES[i] for i in (1, 2, 5, 6, 8, 11)]
OFFSETS = [0, 3, U64_MAX - 40]  # aligned, not a multiple of 4, across the 2^64 wrap


def whole_inputs(rng, gshape, dtype, bias=True):
    """x, bias, residual and dy of the whole tensor."""
    x, r, g = (random_values(rng, gshape, dtype) for _ in range(3))
    b = random_values(rng, gshape[-1:], dtype) if bias else None
    return x, b, r, g


def local(a, sl):
    return np.ascontiguousarray(a[sl])


def check_block(backend, gshape, start, stop, dtype, rng, bias=True, offsets=OFFSETS, p=0.35, seed=0xC0FFEE):
    x, b, r, g = whole_inputs(rng, gshape, dtype, bias)
    sl = block_of(start, stop)
    xl, rl, gl = local(x, sl), local(r, sl), local(g, sl)
    bl = None if b is None else local(b, sl[-1:])  # the block's own bias slice
    for offset, store in itertools.product(offsets, ("bits", "seed")):
        what = f"offset={offset} store={store}"
        y_whole, m_whole = rdf.bias_dropout_add(x, b, r, p, seed=seed, offset=offset)
        keep_whole = m_whole.to_bool()
        kwargs = dict(seed=seed, offset=offset, store=store, global_shape=gshape, local_start=start)
        y_ref, m_ref = reference.bias_dropout_add(xl, bl, rl, p, **kwargs)
        assert_same_bits(y_ref, y_whole[sl], what + " reference")
        y, m = rdf.bias_dropout_add(*(None if a is None else backend.asarray(a) for a in (xl, bl, rl)), p, **kwargs)
        assert_same_bits(backend.to_numpy(y), y_whole[sl], what)
        assert (m.global_shape, m.local_start, m.offset, m.shape) == (gshape, start, offset, xl.shape)
        _, m_drop = rdf.dropout(xl, p, seed=seed, offset=offset, global_shape=gshape, local_start=start)
        if store == "bits":
            assert_same_bits(backend.to_numpy(m.bits), m_drop.bits, what + " bits vs dropout's")
            assert_same_bits(m_ref.bits, m_drop.bits, what + " reference bits")
        else:
            assert m.bits is None
        assert np.array_equal(backend.to_numpy(m.to_bool()), keep_whole[sl]), what
        if not xl.shape or xl.size == 0 and xl.shape[-1] == 0:
            continue
        # backward: dx is the slice of the whole backward (dy zero outside the block), dbias the block's own
        # fixed-order reduction (the reference's on the block)
        g_pad = np.zeros_like(g)
        g_pad[sl] = gl
        dx_whole, _, _ = rdf.bias_dropout_add_backward(g_pad, m_whole)
        dx, db, dres = rdf.bias_dropout_add_backward(backend.asarray(gl), m)
        dx_r, db_r, _ = reference.bias_dropout_add_backward(gl, m_ref)
        assert_same_bits(backend.to_numpy(dx), dx_whole[sl], what + " dx")
        assert_same_bits(dx_r, dx_whole[sl], what + " reference dx")
        assert_same_bits(backend.to_numpy(db), db_r, what + " dbias")
        assert_same_bits(backend.to_numpy(dx), backend.to_numpy(rdf.dropout_backward(backend.asarray(gl), m)),
                         what + " dx is dropout_backward's")


@dtype_param
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_block_is_the_slice_of_the_whole_call(backend, rng, dtype, case):
    backend.require(dtype)
    if backend.emulated and case not in EMULATED_CASES:
        pytest.skip("the emulated GPU runs a subset (a fiber per CUDA thread: slow)")
    offsets = OFFSETS if not backend.emulated else [3, U64_MAX - 40]
    check_block(backend, *case, dtype, rng, offsets=offsets)


@pytest.mark.parametrize("case", CASES[:8], ids=CASE_IDS[:8])
def test_dropout_add_of_a_block(backend, rng, case):
    if backend.emulated and case not in EMULATED_CASES:
        pytest.skip("the emulated GPU runs a subset")
    gshape, start, stop = case
    x, _, r, _ = whole_inputs(rng, gshape, np.float32, bias=False)
    sl = block_of(start, stop)
    y_whole, _ = rdf.dropout_add(x, r, 0.5, seed=5, offset=1)
    y, m = rdf.dropout_add(backend.asarray(local(x, sl)), backend.asarray(local(r, sl)), 0.5, seed=5, offset=1,
                           global_shape=gshape, local_start=start)
    assert_same_bits(backend.to_numpy(y), y_whole[sl])
    assert (m.global_shape, m.local_start) == (gshape, start)
    check_block(backend, gshape, start, stop, np.float32, rng, bias=False, offsets=[6])


def test_shards_of_every_split_tile_the_whole_call(backend, rng):
    """An uneven grid of blocks over every axis, each with its bias slice: the blocks' y and masks put
    together are the whole call's; each block's dbias is its own rows' reduction."""
    gshape = (5, 6, 19)
    cuts = [(0, 2, 5), (0, 1, 4, 6), (0, 7, 8, 19)]
    x, b, r, _ = whole_inputs(rng, gshape, np.float32)
    y_whole, m_whole = rdf.bias_dropout_add(x, b, r, 0.5, seed=77, offset=2)
    y_joined = np.zeros_like(x)
    keep_joined = np.zeros(gshape, bool)
    for idx in itertools.product(*(range(len(c) - 1) for c in cuts)):
        start = tuple(c[i] for c, i in zip(cuts, idx))
        stop = tuple(c[i + 1] for c, i in zip(cuts, idx))
        sl = block_of(start, stop)
        y, m = rdf.bias_dropout_add(backend.asarray(local(x, sl)), backend.asarray(local(b, sl[-1:])),
                                    backend.asarray(local(r, sl)), 0.5, seed=77, offset=2, store="seed",
                                    global_shape=gshape, local_start=start)
        y_joined[sl] = backend.to_numpy(y)
        keep_joined[sl] = backend.to_numpy(m.to_bool())
    assert_same_bits(y_joined, y_whole)
    assert np.array_equal(keep_joined, m_whole.to_bool())


@pytest.mark.parametrize("cols", [(17, 454), (0, 500), (3, 4), (1, 999)], ids=str)
def test_many_tasks_every_thread_count_and_simd_level(rng, cols):
    """Blocks of several 2^16-element tasks and many tiles whose rows end anywhere in a byte: the same bits
    on 1 and 2 threads and every SIMD level, equal to the slice of the whole call (forward, backward from
    bits and regenerated)."""
    gshape = (301, 1001)
    x, b, r, g = whole_inputs(rng, gshape, np.float32)
    y_whole, m_whole = rdf.bias_dropout_add(x, b, r, 0.5, seed=123, offset=7)
    sl = (slice(0, 301), slice(*cols))
    xl, bl, rl, gl = local(x, sl), local(b, sl[-1:]), local(r, sl), local(g, sl)
    g_pad = np.zeros_like(g)
    g_pad[sl] = gl
    dx_whole = rdf.bias_dropout_add_backward(g_pad, m_whole)[0][sl]
    db_ref = reference.bias_dropout_add_backward(gl, rdf.dropout(xl, 0.5, seed=123, offset=7, global_shape=gshape,
                                                                local_start=(0, cols[0]))[1])[1]

    def run():
        kwargs = dict(seed=123, offset=7, global_shape=gshape, local_start=(0, cols[0]))
        y, m = rdf.bias_dropout_add(xl, bl, rl, 0.5, **kwargs)
        _, ms = rdf.bias_dropout_add(xl, bl, rl, 0.5, store="seed", **kwargs)
        return (y, m.bits, *rdf.bias_dropout_add_backward(gl, m)[:2], *rdf.bias_dropout_add_backward(gl, ms)[:2])

    expected_bits = np.packbits(m_whole.to_bool()[sl].ravel(), bitorder="little")
    runs = [*run_each_thread_count(run, counts=(1, 2)).items(), *run_each_simd(run).items()]
    for label, (y, bits, dx, db, dx_seed, db_seed) in runs:
        assert_same_bits(y, y_whole[sl], f"{label}")
        assert_same_bits(bits, expected_bits, f"{label} bits")
        assert_same_bits(dx, dx_whole, f"{label} dx")
        assert_same_bits(dx_seed, dx_whole, f"{label} dx regenerated")
        assert_same_bits(db, db_ref, f"{label} dbias")
        assert_same_bits(db_seed, db_ref, f"{label} dbias regenerated")


def test_out_aliasing_residual_and_x(backend, rng):
    """out=residual (the in-place residual stream) and out=x work for a block as for a plain call."""
    gshape, start, stop = (10, 12), (2, 5), (9, 12)
    x, b, r, _ = whole_inputs(rng, gshape, np.float32)
    sl = block_of(start, stop)
    y_whole, _ = rdf.bias_dropout_add(x, b, r, 0.4, seed=8, offset=1)
    for target in ("residual", "x"):
        xl, rl = backend.asarray(local(x, sl)), backend.asarray(local(r, sl))
        out = rl if target == "residual" else xl
        y, _ = rdf.bias_dropout_add(xl, backend.asarray(local(b, sl[-1:])), rl, 0.4, seed=8, offset=1, out=out,
                                    global_shape=gshape, local_start=start)
        assert y is out
        assert_same_bits(backend.to_numpy(out), y_whole[sl], target)


def test_a_block_of_one_run_is_a_plain_call_at_its_position(rng):
    """Shard(0) blocks are one run of the stream: the same as a plain call at offset + the block's start."""
    x, b, r, _ = whole_inputs(rng, (4, 9), np.float32)
    y, m = rdf.bias_dropout_add(x[1:3], b, r[1:3], 0.5, seed=3, offset=2, global_shape=(4, 9), local_start=(1, 0))
    yp, mp = rdf.bias_dropout_add(x[1:3], b, r[1:3], 0.5, seed=3, offset=2 + 9)
    assert_same_bits(y, yp)
    assert_same_bits(m.bits, mp.bits)
    assert (m.global_shape, m.local_start, m.offset) == ((4, 9), (1, 0), 2)


def test_bad_blocks_change_nothing(rng):
    x, b, r, _ = whole_inputs(rng, (4, 6), np.float32)
    xl, bl, rl = local(x, (slice(0, 4), slice(0, 3))), b[:3].copy(), local(r, (slice(0, 4), slice(0, 3)))
    out = np.zeros_like(xl)
    before = [a.copy() for a in (xl, bl, rl, out)]
    bad = [
        (ValueError, "axes", {"global_shape": (4, 6, 1)}),
        (ValueError, "does not fit", {"global_shape": (4, 6), "local_start": (0, 4)}),
        (ValueError, "negative", {"global_shape": (4, 6), "local_start": (0, -1)}),
        (ValueError, "without global_shape", {"local_start": (0, 0)}),
        (TypeError, "global_shape", {"global_shape": 4.0}),
        (TypeError, "local_start", {"global_shape": (4, 6), "local_start": (0, 1.5)}),
    ]
    for exc, match, kwargs in bad:
        with pytest.raises(exc, match=match):
            rdf.bias_dropout_add(xl, bl, rl, 0.5, seed=1, out=out, **kwargs)
        with pytest.raises(exc, match=match):
            rdf.dropout_add(xl, rl, 0.5, seed=1, out=out, **kwargs)
        for a, c in zip((xl, bl, rl, out), before):
            assert_same_bits(a, c)


# ----------------------------------------------------------------------------------------------------------
# regdrop_fast.torch.bias_dropout_add(..., global_shape=, local_start=)


@pytest.mark.parametrize("store", ["bits", "seed"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_torch_block_is_the_slice_of_the_whole_call(store, with_bias):
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rt

    gshape, start = (6, 10, 7), (1, 4, 2)
    sl = (slice(1, 5), slice(4, 9), slice(2, 7))
    x = torch.randn(gshape, dtype=torch.float64)
    r = torch.randn(gshape, dtype=torch.float64)
    b = torch.randn(7, dtype=torch.float64) if with_bias else None
    xw, rw = x.clone().requires_grad_(True), r.clone().requires_grad_(True)
    bw = None if b is None else b.clone().requires_grad_(True)
    y_whole = rt.bias_dropout_add(xw, bw, rw, 0.4, generator=rdf.Generator(5, 3))
    grad = torch.zeros(gshape, dtype=torch.float64)
    grad[sl] = torch.randn(4, 5, 5, dtype=torch.float64)
    y_whole.backward(grad)

    xl, rl = x[sl].clone().requires_grad_(True), r[sl].clone().requires_grad_(True)
    bl = None if b is None else b[2:7].clone().requires_grad_(True)
    gen = rdf.Generator(5, 3)
    y = rt.bias_dropout_add(xl, bl, rl, 0.4, generator=gen, store=store, global_shape=gshape, local_start=start)
    assert torch.equal(y, y_whole[sl])
    assert gen.get_state() == (5, 3 + 420)  # the generator advances by the global tensor's element count
    y.backward(grad[sl])
    assert torch.equal(xl.grad, xw.grad[sl])
    assert torch.equal(rl.grad, rw.grad[sl])
    if b is not None:
        # the block's own rows' fixed-order sum (of the whole call's dx at the block)
        _, db, _ = reference.bias_dropout_add_backward(grad[sl].numpy(), rdf.dropout(
            np.zeros((4, 5, 5)), 0.4, seed=5, offset=3, global_shape=gshape, local_start=start)[1])
        assert torch.equal(bl.grad, torch.from_numpy(db))
    # the module takes the block too
    m = rt.BiasDropoutAdd(0.4, store=store, generator=rdf.Generator(5, 3))
    assert torch.equal(m(x[sl].contiguous(), None if b is None else b[2:7], r[sl].contiguous(), global_shape=gshape,
                         local_start=start), y_whole[sl])
    # forward-mode AD: the tangent through the same mask
    from torch.func import jvp

    _, tangent = jvp(lambda v: rt.bias_dropout_add(v, None, torch.zeros_like(v), 0.4, generator=rdf.Generator(5, 3),
                                                   store=store, global_shape=gshape, local_start=start),
                     (x[sl].contiguous(),), (grad[sl].contiguous(),))
    assert torch.equal(tangent, xw.grad[sl])
    # torch.compile traces it whole
    f = torch.compile(lambda v, w: rt.bias_dropout_add(v, None if b is None else b[2:7], w, 0.4, store=store,
                                                       generator=rdf.Generator(5, 3), global_shape=gshape,
                                                       local_start=start), backend="eager", fullgraph=True)
    assert torch.equal(f(x[sl].contiguous(), r[sl].contiguous()), y_whole[sl])


def test_torch_ops_pass_opcheck():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch  # noqa: F401  (registers the ops)

    x, b, r = torch.randn(6, 5), torch.randn(5), torch.randn(6, 5)
    seed = torch.tensor([5, 3])
    ops = torch.ops.regdrop_fast
    torch.library.opcheck(ops.bias_dropout_add_fwd.default, (x, b, r, 0.5, seed, True, [6, 10], [0, 4]))
    torch.library.opcheck(ops.bias_dropout_add_fwd.default, (x, None, r, 0.5, seed, False, [9, 5], [3, 0]))
    torch.library.opcheck(ops.bias_dropout_add_bwd.default,
                          (x, torch.empty(0, dtype=torch.uint8), seed, 0.5, False, [6, 10], [0, 4]))


def test_torch_vmap_refuses_global_addressing():
    torch = pytest.importorskip("torch")
    import regdrop_fast.torch as rt

    with pytest.raises(RuntimeError, match="global_shape is not supported under torch.func.vmap"):
        torch.func.vmap(lambda v: rt.bias_dropout_add(v, None, v, 0.5, global_shape=(8,), local_start=(2,)),
                        randomness="different")(torch.ones(3, 4))
