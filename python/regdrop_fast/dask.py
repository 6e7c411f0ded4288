"""regdrop_fast on Dask arrays: dropout, its backward and the penalty value, block by block.

A mask is a pure function of (seed, offset + flat C-order index) (docs/rng.md), so each block of a Dask
array draws its own slice of the whole array's mask from its global position: the result equals
``regdrop_fast.dropout(x.compute(), ...)`` bit for bit for any chunking, the blocks need nothing from each
other, and Dask's scheduler (threads, processes, dask.distributed) runs them wherever it likes.

How a block finds its decisions: it is one call of the core with its place in the whole array
(``global_shape=``, ``local_start=``: global addressing, docs/rng.md), whatever its shape.

Importing regdrop_fast does not import this module (nor Dask); ``import regdrop_fast.dask`` does.
"""

from __future__ import annotations

del annotations  # the __future__ flag, not API

import math as _math
from typing import Any as _Any, Sequence as _Sequence

import numpy as _np

try:
    import dask.array as _da
except ImportError as exc:  # dask is optional: say what to install
    raise ImportError(
        "regdrop_fast.dask needs Dask, which is not installed: pip install 'dask[array]' "
        "(or pip install 'regdrop_fast[dask]')"
    ) from exc

import regdrop_fast as _rf
from regdrop_fast import _args

__all__ = ["Mask", "dropout", "dropout_backward", "penalty"]

_U64 = 1 << 64

def _location(block_info: dict[_Any, _Any] | None, key: _Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(global shape, block start) of the block Dask is computing."""
    assert block_info is not None, "map_blocks passes block_info"
    info = block_info[key]
    return tuple(info["shape"]), tuple(lo for lo, _ in info["array-location"])


def _dropout_block(block: _np.ndarray, p: float, seed: int, offset: int,
                   block_info: dict[_Any, _Any] | None = None) -> _np.ndarray:
    """The block's part of dropout(whole array): forward on x, and the backward from the seed on a gradient
    (dropout_backward applies the very rule of dropout to the gradient: docs/rng.md, "Values")."""
    global_shape, start = _location(block_info, 0)
    return _rf.dropout(block, p, seed=seed, offset=offset, store="seed", global_shape=global_shape,
                       local_start=start)[0]


def _keep_block(global_shape: tuple[int, ...], start: tuple[int, ...], shape: tuple[int, ...], p: float,
                seed: int, offset: int) -> _np.ndarray:
    """The keep decisions of a block (bool, the block's shape), from dropout_mask (no data)."""
    mask = _rf.dropout_mask(shape, p, seed=seed, offset=offset, global_shape=global_shape, local_start=start)
    # A block's bits are its decisions in the block's own C order (docs/rng.md, "Global addressing").
    return _unpack(mask.bits, _math.prod(shape)).reshape(shape)


def _bits_block(block: _np.ndarray, p: float, seed: int, offset: int,
                block_info: dict[_Any, _Any] | None = None) -> _np.ndarray:
    """The block's keep bits, packed along the last axis (each row of the block: ceil(width / 8) bytes)."""
    global_shape, start = _location(block_info, 0)
    return _np.packbits(_keep_block(global_shape, start, block.shape, p, seed, offset), axis=-1, bitorder="little")


def _unpack(bits: _np.ndarray, width: int) -> _np.ndarray:
    return _np.unpackbits(bits, axis=-1, count=width, bitorder="little").astype(bool)


def _backward_from_bits(grad: _np.ndarray, bits: _np.ndarray, p: float, seed: int) -> _np.ndarray:
    """dropout_backward of a gradient block with its stored bits (the library's kernel, one call)."""
    keep = _unpack(bits, grad.shape[-1])
    flat = _np.packbits(keep.ravel(), bitorder="little")
    return _rf.dropout_backward(grad, _rf.Mask(grad.shape, p, seed, 0, flat))


def _bits_chunks(chunks: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    return chunks[:-1] + (tuple((c + 7) // 8 for c in chunks[-1]),)


def _dask_array(x: object, name: str) -> _da.Array:
    if not isinstance(x, _da.Array):
        raise TypeError(f"{name}: expected a dask.array.Array, got {type(x).__name__}")
    if any(_math.isnan(c) for cs in x.chunks for c in cs):
        raise ValueError(f"{name}: chunk sizes are unknown (NaN); call {name}.compute_chunk_sizes() first")
    return x


class Mask:
    """Which elements a ``regdrop_fast.dask.dropout`` call kept: ``Mask(shape, p, seed, offset=0, *, chunks,
    bits=None)``.

    ``dropout`` returns one and ``dropout_backward`` consumes one; constructing one by hand describes the
    mask of a dropout call with these arguments, regenerated from ``(seed, offset)`` (``bits=None``).
    The arguments, checked and normalized (chunks as ``normalize_chunks`` gives them), are its read-only
    attributes ``shape``, ``chunks``, ``p``, ``seed``, ``offset`` and ``bits``.

    Parameters
    ----------
    shape : int or sequence of int
        Shape of the whole array.
    p : float
        Drop probability, ``0 <= p <= 1``.
    seed : int
        Seed in ``[0, 2**64)``.
    offset : int, default 0
        Position of the array's element 0 in the random stream (docs/rng.md).
    chunks : chunks
        The array's chunks (anything ``dask.array.core.normalize_chunks`` takes for this shape).
    bits : dask array of uint8, optional
        The keep decisions packed along the last axis, ``np.packbits(keep, axis=-1, bitorder="little")``
        block by block: shape ``shape[:-1] + (sum of ceil(c / 8) over the last axis's chunks c,)``, chunks
        the array's with each last-axis chunk c replaced by ``ceil(c / 8)``. None: regenerated.

    Raises
    ------
    TypeError
        A non-integer shape, seed or offset, a non-real p, bits that are not a uint8 dask array.
    ValueError
        A negative dimension, p outside [0, 1], a seed or offset outside ``[0, 2**64)``, chunks that do not
        fit the shape, bits of the wrong shape or chunks, a 0-d shape with bits.

    Examples
    --------
    >>> import dask.array as da
    >>> import regdrop_fast.dask as rfd
    >>> x = da.ones((4, 6), chunks=(2, 4), dtype=np.float32)
    >>> y, mask = rfd.dropout(x, 0.5, seed=1)
    >>> mask
    regdrop_fast.dask.Mask(shape=(4, 6), p=0.5, seed=1, offset=0, chunks=((2, 2), (4, 2)), store='bits')
    >>> bool((mask.to_bool().compute() == (y.compute() != 0)).all())
    True
    """

    __slots__ = ("_shape", "_p", "_seed", "_offset", "_chunks", "_bits")

    def __init__(self, shape: int | _Sequence[int], p: float, seed: int, offset: int = 0, *, chunks: _Any,
                 bits: _Any = None) -> None:
        self._shape = _args.shape_tuple(shape)
        self._p = _args.probability(p)
        self._seed = _args.uint64(seed, "seed")
        self._offset = _args.uint64(offset, "offset")
        try:
            self._chunks = _da.core.normalize_chunks(chunks, self._shape)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"chunks: {chunks!r} do not fit the shape {self._shape}: {exc}") from None
        if bits is not None:
            if not isinstance(bits, _da.Array) or bits.dtype != _np.uint8:
                raise TypeError(f"bits: expected a uint8 dask.array.Array or None, got "
                                f"{getattr(bits, 'dtype', type(bits).__name__)}")
            if not self._shape:
                raise ValueError("bits: a 0-d mask is regenerated from its seed (pass bits=None)")
            want = _bits_chunks(self._chunks)
            if bits.chunks != want:
                raise ValueError(f"bits: expected chunks {want} (the array's, the last axis packed by 8), "
                                 f"got {bits.chunks}")
        self._bits = bits

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        return self._chunks

    @property
    def p(self) -> float:
        return self._p

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def bits(self) -> _Any:
        return self._bits

    def to_bool(self) -> _da.Array:
        """The keep decisions as a lazy bool dask array of the mask's shape and chunks (True where kept).

        Returns
        -------
        dask.array.Array
            Unpacked from the bits, or regenerated block by block from ``(seed, offset)``.

        Examples
        --------
        >>> import dask.array as da
        >>> import regdrop_fast.dask as rfd
        >>> m = rfd.Mask((3, 5), 0.5, 7, chunks=2)
        >>> bool((m.to_bool().compute() == rf.dropout_mask((3, 5), 0.5, seed=7).to_bool()).all())
        True
        """
        if self._bits is not None:
            widths = self._chunks[-1]

            def unpack(bits: _np.ndarray, block_info: dict[_Any, _Any] | None = None) -> _np.ndarray:
                assert block_info is not None
                return _unpack(bits, widths[block_info[0]["chunk-location"][-1]])

            return _da.map_blocks(unpack, self._bits, chunks=self._chunks, dtype=bool,
                                         meta=_np.empty((0,) * len(self._shape), bool))
        p, seed, offset = self._p, self._seed, self._offset

        def regenerate(block: _np.ndarray, block_info: dict[_Any, _Any] | None = None) -> _np.ndarray:
            global_shape, start = _location(block_info, None)
            return _keep_block(global_shape, start, block.shape, p, seed, offset)

        return _da.map_blocks(regenerate, _da.empty(self._shape, chunks=self._chunks, dtype=_np.uint8), dtype=bool,
                              meta=_np.empty((0,) * len(self._shape), bool))

    def __repr__(self) -> str:
        store = "bits" if self._bits is not None else "seed"
        return (f"regdrop_fast.dask.Mask(shape={self._shape}, p={self._p}, seed={self._seed}, "
                f"offset={self._offset}, chunks={self._chunks}, store={store!r})")


def dropout(x: _da.Array, p: float, *, seed: int | None = None, offset: int = 0,
            store: str = "bits") -> tuple[_da.Array, Mask]:
    """Dropout of a Dask array, lazily, block by block: returns ``(y, mask)``.

    ``y.compute()`` equals ``regdrop_fast.dropout(x.compute(), p, seed=seed, offset=offset)[0]`` bit for bit
    for any chunking of x: each block draws the decisions of its own elements' global flat (C-order)
    indices. The blocks are independent tasks (no communication), run by whatever scheduler computes y.

    Parameters
    ----------
    x : dask.array.Array
        Of float32, float64, float16 or bfloat16 blocks (NumPy), known chunk sizes, any chunking.
    p : float
        Drop probability, ``0 <= p <= 1``.
    seed : int, optional
        Seed in ``[0, 2**64)``; None draws one now, from the OS (recorded in the mask).
    offset : int, default 0
        Position of x's element 0 in the random stream.
    store : {"bits", "seed"}, default "bits"
        What the mask keeps: the keep bits as a lazy dask array (1/8 byte per element, packed along the
        last axis; persist it to keep it), or only the seed (the backward regenerates the decisions).

    Returns
    -------
    y : dask.array.Array
        x's shape, dtype and chunks.
    mask : Mask
        What ``dropout_backward`` needs.

    Raises
    ------
    TypeError
        x is not a dask array or has an unsupported dtype, p is not a real number, a non-int seed or
        offset, store is not a str.
    ValueError
        p outside [0, 1], a seed or offset outside ``[0, 2**64)``, store other than "bits" or "seed", or
        unknown chunk sizes.

    Examples
    --------
    >>> import dask.array as da
    >>> import regdrop_fast.dask as rfd
    >>> x = np.arange(1, 31, dtype=np.float32).reshape(5, 6)
    >>> y, mask = rfd.dropout(da.from_array(x, chunks=(2, 4)), 0.5, seed=3)
    >>> np.array_equal(y.compute(), rf.dropout(x, 0.5, seed=3)[0])
    True
    """
    x = _dask_array(x, "x")
    # The library's own checks and messages for dtype, p, seed, offset and store, on an empty array.
    _, checked = _rf.dropout(_np.empty(0, x.dtype), p, seed=seed, offset=offset, store=store)
    p, seed, offset = checked.p, checked.seed, checked.offset
    meta = _np.empty((0,) * x.ndim, x.dtype)
    y = _da.map_blocks(_dropout_block, x, p, seed, offset, dtype=x.dtype, meta=meta)
    bits = None
    if store == "bits" and x.ndim:
        bits = _da.map_blocks(_bits_block, x, p, seed, offset, chunks=_bits_chunks(x.chunks), dtype=_np.uint8,
                            meta=_np.empty((0,) * x.ndim, _np.uint8))
    return y, Mask(x.shape, p, seed, offset, chunks=x.chunks, bits=bits)


def dropout_backward(grad: _da.Array, mask: Mask) -> _da.Array:
    """Backward of ``regdrop_fast.dask.dropout``, lazily: ``grad * mask.scale`` where kept, 0 elsewhere.

    Equals ``regdrop_fast.dropout_backward(grad.compute(), <the mask of the whole array>)`` bit for bit. A
    gradient chunked unlike the mask is rechunked to the mask's chunks first.

    Parameters
    ----------
    grad : dask.array.Array
        The mask's shape, a supported float dtype.
    mask : Mask
        From ``dropout`` (bits, or regenerated from the seed).

    Returns
    -------
    dask.array.Array
        The gradient with respect to x, grad's dtype, the mask's chunks.

    Raises
    ------
    TypeError
        grad is not a dask array or has an unsupported dtype, mask is not a regdrop_fast.dask.Mask.
    ValueError
        grad's shape differs from the mask's, or its chunk sizes are unknown.

    Examples
    --------
    >>> import dask.array as da
    >>> import regdrop_fast.dask as rfd
    >>> x = da.ones((4, 5), chunks=(3, 2), dtype=np.float32)
    >>> y, mask = rfd.dropout(x, 0.5, seed=9)
    >>> np.array_equal(rfd.dropout_backward(x, mask).compute(), y.compute())  # the same decisions
    True
    """
    grad = _dask_array(grad, "grad")
    if not isinstance(mask, Mask):
        raise TypeError(f"mask: expected a regdrop_fast.dask.Mask, got {type(mask).__name__}")
    _rf.dropout_backward(_np.empty(0, grad.dtype), _rf.Mask((0,), mask.p, mask.seed))  # the dtype check
    if grad.shape != mask.shape:
        raise ValueError(f"grad: shape {grad.shape} does not match the mask's {mask.shape}")
    if grad.chunks != mask.chunks:
        grad = grad.rechunk(mask.chunks)
    meta = _np.empty((0,) * grad.ndim, grad.dtype)
    if mask.bits is None:
        return _da.map_blocks(_dropout_block, grad, mask.p, mask.seed, mask.offset, dtype=grad.dtype, meta=meta)
    index = tuple(range(grad.ndim))
    # Block (i, j, ...) of the bits belongs to block (i, j, ...) of the gradient; their last axes differ in
    # length (packed), so the blocks are paired by index rather than aligned by size.
    return _da.blockwise(_backward_from_bits, index, grad, index, mask.bits, index, p=mask.p, seed=mask.seed,
                        align_arrays=False, dtype=grad.dtype, meta=meta)


def penalty(params: _da.Array | _Sequence[_da.Array], *, l1: float | _Sequence[float] = 0.0,
            l2: float | _Sequence[float] = 0.0) -> _da.Array:
    """The penalty value ``l1*sum|w| + (l2/2)*sum w^2`` over Dask arrays, as a lazy tree reduction.

    Each block's value is ``regdrop_fast.penalty`` of the block; Dask sums the blocks' values in a tree
    (``sum``'s ``split_every``), in float64. The summation order differs from one call on the computed
    arrays, so the two agree to float64 rounding of the partial sums (not bit for bit).

    Parameters
    ----------
    params : dask array or sequence of dask arrays
        The weights w, of supported float dtypes.
    l1, l2 : float or sequence of float, default 0.0
        Coefficients >= 0, one for all arrays or one per array.

    Returns
    -------
    dask.array.Array
        A 0-d float64 array; ``.compute()`` gives the value.

    Raises
    ------
    TypeError
        params is not a dask array or a sequence of them, an unsupported dtype, non-numeric coefficients.
    ValueError
        Negative or non-finite coefficients, a coefficient list of the wrong length, unknown chunk sizes.

    Examples
    --------
    >>> import dask.array as da
    >>> import regdrop_fast.dask as rfd
    >>> w = da.from_array(np.array([3.0, -4.0, 1.0, 2.0]), chunks=2)
    >>> float(rfd.penalty(w, l1=1.0, l2=2.0).compute())  # 10 + 30
    40.0
    """
    arrays = [params] if isinstance(params, _da.Array) else params
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"params: expected a dask.array.Array or a sequence of them, got {type(params).__name__}")
    arrays = [_dask_array(a, f"params[{i}]") for i, a in enumerate(arrays)]
    # The library's checks and messages for the dtypes and the coefficients, on empty arrays.
    _rf.penalty([_np.empty(0, a.dtype) for a in arrays], l1=l1, l2=l2)
    c1 = _args.as_list(_args.coefficients(l1, len(arrays), "l1"), len(arrays))
    c2 = _args.as_list(_args.coefficients(l2, len(arrays), "l2"), len(arrays))

    def block_value(block: _np.ndarray, a1: float, a2: float) -> _np.ndarray:
        return _np.full((1,) * block.ndim, _rf.penalty(block, l1=a1, l2=a2), _np.float64)

    parts = [_da.map_blocks(block_value, a, a1, a2, chunks=tuple((1,) * len(c) for c in a.chunks), dtype=_np.float64,
                          meta=_np.empty((0,) * a.ndim, _np.float64)).ravel()
             for a, a1, a2 in zip(arrays, c1, c2) if a.size]
    if not parts:
        return _da.zeros((), dtype=_np.float64)
    return _da.concatenate(parts).sum()
