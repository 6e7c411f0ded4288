"""regdrop_fast.dask: dropout, its backward and the penalty of Dask arrays equal the library's calls on the
computed arrays, bit for bit (the penalty to float64 rounding), for any chunking; on a real
dask.distributed LocalCluster of 2 worker processes too."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import BFLOAT16

da = pytest.importorskip("dask.array")

import regdrop_fast as rf  # noqa: E402
import regdrop_fast.dask as rfd  # noqa: E402

SHAPE = (7, 9, 5)
CHUNKINGS = {
    "whole": SHAPE,
    "rows": (3, 9, 5),  # axis 0 only: each block one contiguous run
    "axis1": (7, 4, 5),  # along axis 1
    "last-axis": (7, 9, 2),  # along the last axis: one run per row
    "every-axis": (2, 4, 2),
    "uneven": ((1, 6), (2, 2, 5), (3, 2)),
    "single-elements": (1, 1, 1),
}


def data(dtype=np.float32, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("store", ["bits", "seed"])
@pytest.mark.parametrize("name", sorted(CHUNKINGS))
def test_any_chunking_equals_the_whole_array_call(name, store):
    x, g = data(), data(seed=1)
    offset = 2**64 - 100  # the stream wraps inside the array (315 elements)
    y, mask = rfd.dropout(da.from_array(x, chunks=CHUNKINGS[name]), 0.35, seed=77, offset=offset, store=store)
    want, want_mask = rf.dropout(x, 0.35, seed=77, offset=offset)
    assert y.chunks == da.from_array(x, chunks=CHUNKINGS[name]).chunks
    assert y.compute().tobytes() == want.tobytes()
    assert np.array_equal(mask.to_bool().compute(), want_mask.to_bool())
    dx = rfd.dropout_backward(da.from_array(g, chunks=CHUNKINGS[name]), mask)
    assert dx.compute().tobytes() == rf.dropout_backward(g, want_mask).tobytes()
    assert (mask.bits is None) == (store == "seed")


@pytest.mark.parametrize("dtype", [np.float64, np.float16, BFLOAT16], ids=str)
def test_dtypes(dtype):
    x = data(dtype)
    y, mask = rfd.dropout(da.from_array(x, chunks=(4, 3, 5)), 0.5, seed=1)
    assert y.dtype == x.dtype and y.compute().tobytes() == rf.dropout(x, 0.5, seed=1)[0].tobytes()


def test_rechunked_input_and_gradient():
    x, g = data(), data(seed=2)
    dx = da.from_array(x, chunks=(7, 9, 5)).rechunk((2, 5, 3)).rechunk(((3, 4), (9,), (1, 4)))
    y, mask = rfd.dropout(dx, 0.2, seed=4, offset=3)
    want, want_mask = rf.dropout(x, 0.2, seed=4, offset=3)
    assert y.compute().tobytes() == want.tobytes()
    # A gradient chunked otherwise is rechunked to the mask's chunks.
    back = rfd.dropout_backward(da.from_array(g, chunks=(5, 2, 5)), mask)
    assert back.chunks == mask.chunks
    assert back.compute().tobytes() == rf.dropout_backward(g, want_mask).tobytes()


def test_other_shapes():
    for shape, chunks in [((), ()), ((0, 4), (1, 2)), ((10,), 3), ((4, 1, 6), (3, 1, 4))]:
        x = data(shape=shape)
        y, mask = rfd.dropout(da.from_array(x, chunks=chunks), 0.5, seed=6)
        assert y.compute().tobytes() == rf.dropout(x, 0.5, seed=6)[0].tobytes(), shape


def test_a_wrong_block_position_would_be_seen():
    """The comparison can fail: every block drawing from the array's offset (no global position) differs."""
    x = data()
    blocks = da.from_array(x, chunks=(3, 4, 5))
    naive = blocks.map_blocks(lambda b: rf.dropout(b, 0.35, seed=77, store="seed")[0], dtype=x.dtype)
    assert naive.compute().tobytes() != rf.dropout(x, 0.35, seed=77)[0].tobytes()


def test_one_core_call_per_block(monkeypatch):
    """Each block is one call of the core with its place in the whole array (global addressing), whatever
    axes the chunking cuts: counted by wrapping the core's dropout and dropout_mask."""
    calls = []

    def counted(fn):
        def call(*args, **kwargs):
            if kwargs.get("global_shape") is not None:
                calls.append((kwargs["global_shape"], kwargs["local_start"]))
            return fn(*args, **kwargs)
        return call

    monkeypatch.setattr(rfd, "_rf", types.SimpleNamespace(**{**vars(rf), "dropout": counted(rf.dropout),
                                                             "dropout_mask": counted(rf.dropout_mask)}))
    x, g = data(), data(seed=4)
    for store in ("seed", "bits"):
        calls.clear()
        y, mask = rfd.dropout(da.from_array(x, chunks=(4, 5, 2)), 0.4, seed=8, store=store)
        dx = rfd.dropout_backward(da.from_array(g, chunks=(4, 5, 2)), mask)
        want, want_mask = rf.dropout(x, 0.4, seed=8)
        y_got, dx_got = da.compute(y, dx, scheduler="sync")
        assert y_got.tobytes() == want.tobytes()
        assert dx_got.tobytes() == rf.dropout_backward(g, want_mask).tobytes()
        blocks = 2 * 2 * 3
        # One call per block for y, and one per block for the bits (store="bits": the backward then reads
        # them) or for the backward regenerating the decisions (store="seed").
        assert len(calls) == 2 * blocks
        assert {c[0] for c in calls} == {SHAPE}
        assert sorted(set(c[1] for c in calls))[:3] == [(0, 0, 0), (0, 0, 2), (0, 0, 4)]


@pytest.mark.parametrize("chunks", [(7, 9, 5), (2, 3, 5), (1, 1, 1)])
def test_penalty_is_the_library_value(chunks):
    w1, w2 = data(np.float64), data(np.float32, shape=(13,), seed=3)
    got = rfd.penalty([da.from_array(w1, chunks=chunks), da.from_array(w2, chunks=4)], l1=[0.1, 0.2], l2=0.3)
    assert got.shape == () and got.dtype == np.float64
    np.testing.assert_allclose(got.compute(), rf.penalty([w1, w2], l1=[0.1, 0.2], l2=0.3), rtol=1e-12)
    single = rfd.penalty(da.from_array(w1, chunks=chunks), l2=2.0)
    np.testing.assert_allclose(single.compute(), rf.penalty(w1, l2=2.0), rtol=1e-12)
    assert float(rfd.penalty([], l1=1.0).compute()) == 0.0


def test_penalty_is_a_tree_reduction():
    """Many blocks are summed in a tree (dask's sum), not in one task holding every block's value."""
    w = da.from_array(data(np.float64, shape=(64, 64)), chunks=4)  # 256 blocks
    graph = dict(rfd.penalty(w, l1=1.0).__dask_graph__())
    assert len(graph) > 256 + 2  # the blocks' values, then intermediate partial sums, then the total


def test_importing_regdrop_fast_does_not_import_dask():
    code = "import sys, regdrop_fast; assert 'dask' not in sys.modules and 'regdrop_fast.dask' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


# ----------------------------------------------------------------------------------------------------------
# A real cluster: 2 worker processes, one thread each, on loopback.


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.distributed
def test_on_a_local_cluster_of_two_processes(client):
    # The workers import regdrop_fast from this tree (they inherit PYTHONPATH).
    here = os.path.dirname(rf.__file__)
    assert set(client.run(lambda: os.path.dirname(__import__("regdrop_fast").__file__)).values()) == {here}
    x, g = data(seed=5), data(seed=6)
    for chunks in [(3, 9, 5), (2, 4, 2), ((1, 6), (2, 2, 5), (3, 2))]:
        for store in ("bits", "seed"):
            y, mask = rfd.dropout(da.from_array(x, chunks=chunks), 0.5, seed=123, offset=40, store=store)
            dx = rfd.dropout_backward(da.from_array(g, chunks=chunks).rechunk((4, 4, 4)), mask)
            y_got, dx_got = client.compute([y, dx], sync=True)
            want, want_mask = rf.dropout(x, 0.5, seed=123, offset=40)
            assert y_got.tobytes() == want.tobytes()
            assert dx_got.tobytes() == rf.dropout_backward(g, want_mask).tobytes()
    w = da.from_array(data(np.float64, shape=(40, 30)), chunks=(7, 8))
    total = client.compute(rfd.penalty([w, w[:5]], l1=0.5, l2=[1.0, 3.0]), sync=True)
    wc = w.compute()
    np.testing.assert_allclose(total, rf.penalty([wc, wc[:5]], l1=0.5, l2=[1.0, 3.0]), rtol=1e-12)
    # The tasks ran on both workers.
    assert len(client.run(lambda: 1)) == 2


def _bad_inputs():
    x = da.ones((6, 4), chunks=3, dtype=np.float32)
    mask = rfd.dropout(x, 0.5, seed=1)[1]
    return [
        ("x a NumPy array", TypeError, "x: expected a dask.array.Array, got ndarray",
         lambda: rfd.dropout(np.ones(3, np.float32), 0.5, seed=1)),
        ("x of int32", TypeError, "x: dtype int32 is not supported",
         lambda: rfd.dropout(da.ones(4, chunks=2, dtype=np.int32), 0.5, seed=1)),
        ("p = 2", ValueError, "p: dropout probability has to be between 0 and 1", lambda: rfd.dropout(x, 2.0, seed=1)),
        ("p a str", TypeError, "p: expected a real number", lambda: rfd.dropout(x, "a", seed=1)),
        ("seed -1", ValueError, r"seed: -1 is outside \[0, 2\*\*64\)", lambda: rfd.dropout(x, 0.5, seed=-1)),
        ("offset a float", TypeError, "offset: expected an int", lambda: rfd.dropout(x, 0.5, seed=1, offset=1.5)),
        ("store 'x'", ValueError, "store: expected 'bits' or 'seed'", lambda: rfd.dropout(x, 0.5, seed=1, store="x")),
        ("unknown chunks", ValueError, "chunk sizes are unknown",
         lambda: rfd.dropout(x[x[:, 0] > 0], 0.5, seed=1)),
        ("a core Mask", TypeError, "mask: expected a regdrop_fast.dask.Mask, got Mask",
         lambda: rfd.dropout_backward(x, rf.dropout_mask((6, 4), 0.5, seed=1))),
        ("grad of another shape", ValueError, r"grad: shape \(5, 4\) does not match the mask's \(6, 4\)",
         lambda: rfd.dropout_backward(da.ones((5, 4), chunks=3, dtype=np.float32), mask)),
        ("grad a NumPy array", TypeError, "grad: expected a dask.array.Array",
         lambda: rfd.dropout_backward(np.ones((6, 4), np.float32), mask)),
        ("params of NumPy arrays", TypeError, r"params\[0\]: expected a dask.array.Array",
         lambda: rfd.penalty([np.ones(3)], l2=0.1)),
        ("l2 < 0", ValueError, "l2: expected a finite number >= 0", lambda: rfd.penalty([x], l2=-1.0)),
        ("l1 a str", TypeError, "l1: expected a number or a sequence of numbers", lambda: rfd.penalty([x], l1="a")),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_bad_inputs_raise_before_any_task(case):
    """Every rejected call raises at call time (not when computed), with the core's type and message."""
    _, exc, match, call = case
    with pytest.raises(exc, match=match):
        call()
