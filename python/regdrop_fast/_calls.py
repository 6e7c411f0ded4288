"""The call records: what validation (_validate) makes of a public call's arguments, and all that a backend
(_backend_cpu, _backend_cuda) receives. Plain named tuples; arrays in them are already in the backend's form
(ndarrays for the CPU, _arrays.DeviceArray for CUDA)."""

from __future__ import annotations

from typing import Any, NamedTuple

from . import _args


class DropoutCall(NamedTuple):
    x: Any  # input: ndarray / DeviceArray
    out: Any  # out= or None (same form)
    shape: tuple
    p: float
    seed: int
    offset: int
    keep_bits: bool  # store="bits"
    rule: _args.KeepRule
    block: Any = None  # _args.GlobalBlock: x is a block of a global tensor (global_shape=); None: plain


class BackwardCall(NamedTuple):
    grad: Any
    out: Any
    bits: Any  # the mask's bits (host ndarray / device array object) or None: regenerate from the stream
    seed: int
    offset: int
    rule: _args.KeepRule
    block: Any = None  # the mask's _args.GlobalBlock (used only to regenerate), or None


class VariantCall(NamedTuple):
    """A mask-based dropout variant (dropout with broadcast axes, drop_path, alpha_dropout) forward, or a
    backward (x: grad, bits: the mask's or None) of one: decisions at the reduced shape, a value policy
    (csrc/common/dropout_broadcast_element.h: MaskedValue)."""

    x: Any  # input (forward) or grad (backward): ndarray / DeviceArray
    out: Any  # out= or None (same form)
    bits: Any  # backward: the mask's bits or None (regenerate); forward: None
    shape: tuple
    dims: tuple  # broadcast axes, sorted
    reduced: tuple  # shape with the broadcast axes set to 1
    m: int  # decisions: the product of reduced
    p: float
    seed: int
    offset: int
    keep_bits: bool  # forward: store="bits"
    rule: _args.KeepRule
    value: int  # 0 scaled (keep ? x * scale : 0), 1 alpha ((keep ? x : sat) * a + b)
    scale: float
    alpha: _args.AlphaRule
    name: str  # the array's name in messages: "x" (forward) or "grad" (backward)
    block: Any = None  # the decisions' _args.GlobalBlock (_args.reduced_block) of a block of a global tensor
    full_block: Any = None  # forward: the array's own _args.GlobalBlock (what the Mask records)


class BiasDropoutAddCall(NamedTuple):
    x: Any  # ndarray / DeviceArray
    bias: Any  # (h,) of x's dtype, or None (dropout_add)
    residual: Any  # x's shape and dtype
    out: Any  # out= or None; may be x or residual itself, never a partial overlap of them or of bias
    shape: tuple
    h: int  # the bias length: x.shape[-1] (x.size without a bias)
    p: float
    seed: int
    offset: int
    keep_bits: bool  # store="bits"
    rule: _args.KeepRule
    block: Any = None  # _args.GlobalBlock: x (residual, out) is a block of a global tensor; None: plain


class BiasGradCall(NamedTuple):
    grad: BackwardCall  # dropout_backward's record of (dy, mask): dx is exactly dropout_backward(dy, mask)
    rows: int  # dy viewed as (rows, h): the bias axis is the last
    h: int


class GaussianCall(NamedTuple):
    """gaussian_dropout and its backward (the same pass over grad with the forward's noise)."""

    x: Any  # input (x, or grad): ndarray / DeviceArray, any strides
    out: Any  # out= or None: C-contiguous; may be x itself (in place), never a partial overlap of it
    shape: tuple
    p: float
    seed: int
    offset: int
    std: float  # sqrt(p / (1 - p)) in float64
    block: Any = None  # _args.GlobalBlock: x is a block of a global tensor (global_shape=); None: plain


class MaskCall(NamedTuple):
    shape: tuple
    n: int
    p: float
    seed: int
    offset: int
    rule: _args.KeepRule
    block: Any = None  # _args.GlobalBlock of a mask of a block of a global tensor, or None


class PenaltyCall(NamedTuple):
    # Host: lists/tuples, checked by the native reader as it reads them (see _lists). CUDA: params is a
    # _lists.DeviceList of both lists, and grads the same object (or None for the value only).
    params: Any
    grads: Any  # list/tuple, or None for the value only
    l1: Any  # float, list or float64 ndarray (_args.coefficients)
    l2: Any
    as_python: bool  # CUDA: return a Python number (waits for the device) instead of a 0-d device array
    # The group_l1 term: None when no array has one; else per array its coefficient (a float) and view below.
    group: Any = None
    views: Any = None  # per array: None (group coefficient 0) or a GroupView


class GroupView(NamedTuple):
    """An array's groups for penalty's group_l1 term, max_norm's slices: the array (or, with `order`, its copy
    permuted to the axis order kept + reduced, the reduced axes last) viewed as (outer, reduce, inner)."""

    order: tuple | None
    outer: int
    reduce: int
    inner: int


class UpdateCall(NamedTuple):
    params: Any  # host: list/tuple; CUDA: a _lists.DeviceList
    coef: Any  # threshold (prox_l1) or factor (decay)
    as_python: bool


class MaxNormCall(NamedTuple):
    w: Any  # ndarray / DeviceArray, written in place: the argument, or a C-contiguous view of it (_validate._host_slices)
    max_value: float
    axes: tuple  # the reduced axes, sorted, each in [0, ndim)
    order: tuple | None  # None: the reduced axes are adjacent; else the axis order kept + reduced of a copy
    outer: int  # slices w[a, :, b] of w (or of the permuted copy) viewed as (outer, reduce, inner)
    reduce: int
    inner: int
    as_python: bool


class NormConstraintCall(NamedTuple):
    """norm_constraint and unit_norm: the slices of max_norm (a MaxNormCall's fields) and Keras MinMaxNorm's
    bounds (csrc/common/constraint_element.h)."""

    slices: MaxNormCall  # its max_value field holds max_value too
    min_value: float
    rate: float


class GroupL1Call(NamedTuple):
    """prox_group_l1: each array's groups as max_norm's slices (max_value unused), one threshold each."""

    slices: list  # MaxNormCall per array
    thresholds: list  # float per array
    as_python: bool
