"""PyTorch integration: a drop-in ``nn.Dropout``, the functional ``dropout``, and weight-penalty helpers.

Everything runs on the regdrop_fast kernels: CPU tensors are handed to them zero-copy (NumPy views of the
tensors' own memory; outputs are allocated by torch in the input's memory format, as torch's own dropout
does), CUDA tensors go to the CUDA backend
on PyTorch's current stream. float32, float64, float16 and bfloat16.

The kernels are registered as ``torch.library`` custom ops (namespace ``regdrop_fast``) with fake
implementations and autograd formulas, so ``torch.compile(model, fullgraph=True)`` traces a model that
uses :class:`Dropout` without a graph break, forward and backward. docs/torch.md has the details: seeding,
memory kept for backward, compile behaviour.

PyTorch is an optional dependency (``pip install torch`` or the ``[torch]`` extra).
"""

from __future__ import annotations

del annotations  # the __future__ flag, not API

import ctypes as _ctypes
import inspect as _inspect
import math as _math
import warnings as _warnings
import numbers as _numbers
from typing import Any as _Any, Iterable as _Iterable, Sequence as _Sequence, Union as _Union

import numpy as _numpy

try:
    import torch
    import torch.autograd.forward_ad as _forward_ad
except ImportError as exc:  # torch is optional: say what to install
    raise ImportError(
        "regdrop_fast.torch needs PyTorch, which is not installed: pip install torch "
        "(or pip install 'regdrop_fast[torch]')"
    ) from exc

import regdrop_fast as _rf
from regdrop_fast import _args, _arrays, _dtensor, _dtypes, _generator, _lists, _validate
from regdrop_fast._generator import DataParallelGenerator, Generator
from regdrop_fast._mask import Mask as _Mask

__all__ = [
    "AlphaDropout",
    "BiasDropoutAdd",
    "DataParallelGenerator",
    "DropPath",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "FeatureAlphaDropout",
    "GaussianDropout",
    "Generator",
    "add_penalty_grad_",
    "alpha_dropout",
    "bias_dropout_add",
    "decay_",
    "drop_path",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "dropout_shared",
    "empty_cache",
    "feature_alpha_dropout",
    "gaussian_dropout",
    "max_norm_",
    "non_neg_",
    "norm_constraint_",
    "penalty",
    "prox_l1_",
    "unit_norm_",
]

_U64_MASK = (1 << 64) - 1

# The four storage dtypes of the kernels.
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

# Default seeding draws [seed, offset] below this bound from torch's default CPU generator (see _draw_seed).
_SEED_BOUND = 1 << 62

# Annotations: `ctx` of the autograd callbacks is Any (torch's context object, which carries the attributes
# set here); an array handed to or returned by the regdrop_fast functions is Any (a NumPy view on the CPU,
# the tensor itself on CUDA).
_Tensors = _Union[torch.Tensor, _Iterable[torch.Tensor]]  # one tensor or any iterable of them
_Coefficient = _Union[float, _Sequence[float], _numpy.ndarray]  # one number for every tensor, or one per tensor


# ---------------------------------------------------------------------------------------------------------
# tensors <-> NumPy views


_np = _arrays.host_view  # a NumPy view of a CPU tensor's memory (zero-copy), as every host call takes it


def empty_cache() -> None:
    """Kept for compatibility: does nothing.

    CPU outputs are ordinary tensors from torch's allocator and CUDA outputs come from PyTorch's caching
    allocator (``torch.cuda.empty_cache`` releases that), so regdrop_fast.torch keeps no cache of its own.

    Examples
    --------
    >>> import regdrop_fast.torch as rft
    >>> rft.empty_cache() is None
    True
    """


_NP_DTYPE = {torch.float32: _numpy.dtype(_numpy.float32), torch.float64: _numpy.dtype(_numpy.float64),
             torch.float16: _numpy.dtype(_numpy.float16), torch.bfloat16: _dtypes.BFLOAT16}


def _out_view(t: torch.Tensor) -> _numpy.ndarray:
    """A NumPy view of a new output tensor's memory for the kernel to write, made from its address:
    ``t.numpy()`` would mark the tensor's storage non-resizable for good. t is dense (from _new_like: its
    numel elements fill its memory span, in any axis order), so the view has t's strides. Used only during
    the call that returns t, so t outlives the view. Nothing has written t yet: a large t gets huge-page
    advice first (torch's allocator gives none; NumPy's does)."""
    dtype = _NP_DTYPE[t.dtype]
    if t.numel() == 0:
        return _numpy.empty(tuple(t.shape), dtype)
    buffer = (_ctypes.c_char * (t.numel() * dtype.itemsize)).from_address(t.data_ptr())
    flat = _numpy.frombuffer(buffer, dtype)
    _arrays.advise_fresh_output(flat)
    if t.is_contiguous():
        return flat.reshape(tuple(t.shape))
    strides = tuple(s * dtype.itemsize for s in t.stride())
    return _numpy.lib.stride_tricks.as_strided(flat, tuple(t.shape), strides, writeable=True)


def _new_like(t: torch.Tensor) -> torch.Tensor:
    """A new tensor for an element-wise result on t, in t's memory format as torch's own dropout gives it
    (empty_like, preserve_format: t's strides when t is dense, its axis order otherwise); C order beyond
    the kernels' axis limit (_arrays.MAX_LAYOUT_DIMS). The fake implementations use it too, so compiled
    graphs see the same strides."""
    if t.dim() > _arrays.MAX_LAYOUT_DIMS:
        return torch.empty(t.shape, dtype=t.dtype, device=t.device)
    return torch.empty_like(t, memory_format=torch.preserve_format)


def _check_tensor(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _DTYPES:
        raise _dtypes.unsupported(name, t.dtype)
    if t.layout != torch.strided:
        raise ValueError(f"{name}: layout {t.layout} is not supported; expected a dense (strided) tensor")
    return t


def _seed_offset(seed: torch.Tensor) -> tuple[int, int]:
    """The (seed, offset) pair of a seed tensor: int64 [seed, offset] on the CPU, two's complement."""
    if seed.dtype != torch.int64 or seed.shape != (2,) or seed.device.type != "cpu":
        raise ValueError(
            f"seed: expected a CPU int64 tensor of shape (2,) holding [seed, offset], got {seed.dtype} "
            f"{tuple(seed.shape)} on {seed.device}"
        )
    s, o = seed.tolist()
    return s & _U64_MASK, o & _U64_MASK


def _unsupported_device(t: torch.Tensor, what: str) -> NotImplementedError:
    return NotImplementedError(f"regdrop_fast.torch.{what}: tensors on {t.device.type} are not supported "
                               "(CPU and CUDA are)")


# ---------------------------------------------------------------------------------------------------------
# The autograd Functions' per-call cost


def _signature_kept(cls: _Any) -> _Any:
    """Class decorator for an autograd.Function with setup_context: torch's Function.apply binds every call's
    arguments to forward's signature, and inspect.signature rebuilt that signature each time (~10 us of a
    ~120 us dropout call on 1,024 elements). Computed here once and kept as forward.__signature__, which
    inspect.signature returns as it is; the binding itself is unchanged."""
    cls.forward.__signature__ = _inspect.signature(cls.forward)
    return cls


# ---------------------------------------------------------------------------------------------------------
# The custom ops called from the autograd Functions' forwards


# The Python implementation behind each out-of-place custom op registered by _custom_op (for _in_eager).
_OP_IMPL: dict[_Any, _Any] = {}
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
# The dispatch keys of a plain dense CPU tensor, whatever its dtype, strides or requires_grad: (CPU,
# ADInplaceOrView, AutogradCPU, AutocastCPU). A batched tensor of torch's legacy vmap (gradcheck's batched
# gradients) is a torch.Tensor without the CPU key; a zero tensor, a conjugate view, an inference tensor, a
# meta or a fake tensor carry other keys. Taken from an ordinary CPU tensor even when this module is
# imported under inference_mode or a default device.
with torch.inference_mode(False):
    _PLAIN_CPU_KEYS = torch._C._dispatch_keys(torch.empty(0, device="cpu")).raw_repr()


def _custom_op(name: str, *, schema: str) -> _Any:
    """torch.library.custom_op for an op that writes none of its inputs, remembering its implementation."""
    def register(impl: _Any) -> _Any:
        op = torch.library.custom_op(name, mutates_args=(), schema=schema)(impl)
        _OP_IMPL[op] = impl
        return op
    return register


def _plain_eager() -> bool:
    """Nothing but eager torch is watching: no torch.func transform, no torch function or dispatch mode, not
    compiling or jit-tracing, no autograd profiler. Then a call may take shortcuts that a mode or a trace would
    not see (a direct op implementation, a tensor kept between calls). is_compiling() comes first: Dynamo
    folds it to True, and cannot trace the C queries after it."""
    return not (torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
                or torch._C._len_torch_dispatch_stack() > 0 or torch._C._is_torch_function_mode_enabled()
                or torch._C._get_tracing_state() is not None or torch.autograd._profiler_enabled())


def _in_eager(op: _Any, *tensors: torch.Tensor | None) -> _Any:
    """What an autograd.Function's forward calls for the custom op `op`: op itself, or, in plain eager use,
    its implementation directly.

    The Function already does the autograd work; the dispatcher's second pass (the op's own autograd
    wrapper, then its kernel) cost ~32 us of a ~120 us dropout on 1,024 elements, twice the implementation's
    own cost (BENCHMARKS.md, "small calls of the torch layer"). The implementation is called directly only
    when nothing else may need to see the op: plain dense CPU tensors (no subclass, no batched, zero, meta or
    fake tensor: _PLAIN_CPU_KEYS), no torch.func transform, no torch function or dispatch mode (FakeTensorMode,
    make_fx, FlopCounterMode, a default device, ...), not while torch.compile or torch.jit.trace traces (the
    kernel writes through NumPy, which a trace cannot see), not while the autograd profiler records (it names
    the op). CUDA tensors keep the dispatcher. The op writes no input, so its implementation is all it does;
    kernels registered on the op from outside (torch.library.register_kernel) are not consulted then."""
    if not _plain_eager():
        return op
    for t in tensors:
        if t is not None and (type(t) not in _PLAIN_TENSOR_TYPES
                              or torch._C._dispatch_keys(t).raw_repr() != _PLAIN_CPU_KEYS):
            return op
    return _OP_IMPL[op]


def _apply(function: _Any, op: _Any, tensors: tuple[torch.Tensor | None, ...], *args: _Any) -> _Any:
    """function.apply(*args), the autograd.Function whose forward is op(*args) (function None: op(*args)
    itself, whose registered autograd then applies); or op's implementation directly when no tensor of
    `tensors` (the call's tensor arguments) can take a gradient or a tangent from the call (grad mode off or
    none requires grad, no forward-AD level open) and _in_eager allows it: the Function's own cost (~35 us
    on a small tensor) then buys nothing. The outputs are the same."""
    if ((not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors))
            and getattr(_forward_ad, "_current_level", 0) < 0):
        direct = _in_eager(op, *tensors)
        if direct is not op:
            return direct(*args)
    return op(*args) if function is None else function.apply(*args)


# ---------------------------------------------------------------------------------------------------------
# Dropout ops
#
# dropout_fwd is a pure function of (x, p, seed): the seed tensor [seed, offset] is an input, drawn outside
# the op (from torch's RNG, or by generator_next_ from a regdrop_fast.Generator). So compilers may treat
# it like any other functional op (CSE merges two calls only when their seeds are the same node, and then
# the masks are equal too), and the backward receives exactly the stream position the forward used.


# A block of a global tensor (dropout(..., global_shape=, local_start=); docs/rng.md, "Global addressing")
# travels through the ops as two int lists, both empty for a plain call (a 0-d tensor's block is the whole
# tensor, so an empty global_shape means the same for it).


def _block_kwargs(global_shape: _Sequence[int], local_start: _Sequence[int]) -> dict[str, _Any]:
    """The global_shape= and local_start= of regdrop_fast's functions from the ops' int lists."""
    if not global_shape:
        return {}
    return {"global_shape": tuple(global_shape), "local_start": tuple(local_start)}


def _mask_block(global_shape: _Sequence[int], local_start: _Sequence[int], shape: tuple[int, ...]) -> _Any:
    """The Mask's block (an _args.GlobalBlock) of a grad of this shape, or None."""
    if not global_shape:
        return None
    return _args.global_block(tuple(global_shape), tuple(local_start), shape)


@_custom_op(
    "regdrop_fast::dropout_fwd",
    schema="(Tensor x, float p, Tensor seed, bool keep_bits, int[] global_shape=[], int[] local_start=[]) "
           "-> (Tensor, Tensor)",
)
def _dropout_fwd(
    x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, global_shape: _Sequence[int] = (),
    local_start: _Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, bits): y in x's memory format (_new_like); bits uint8 of ceil(n/8) bytes in logical (C-order)
    element order (docs/rng.md), or empty without keep_bits."""
    s, o = _seed_offset(seed)
    store = "bits" if keep_bits else "seed"
    block = _block_kwargs(global_shape, local_start)
    if x.device.type == "cpu":
        y = _new_like(x)
        # x as it is: the kernel reads it in y's layout, through a copy only when x's differs (not dense)
        _, mask = _rf.dropout(_np(x), p, seed=s, offset=o, out=_out_view(y), store=store, **block)
        bits = torch.from_numpy(mask.bits) if keep_bits else torch.empty(0, dtype=torch.uint8)
        return y, bits
    if x.device.type == "cuda":
        y, mask = _rf.dropout(x, p, seed=s, offset=o, store=store, **block)
        bits = mask.bits if keep_bits else torch.empty(0, dtype=torch.uint8, device=x.device)
        return y, bits
    raise _unsupported_device(x, "dropout")


@_dropout_fwd.register_fake
def _(x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, global_shape: _Sequence[int] = (),
      local_start: _Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    nbytes = (x.numel() + 7) // 8 if keep_bits else 0
    return _new_like(x), x.new_empty((nbytes,), dtype=torch.uint8)


@torch.library.custom_op(
    "regdrop_fast::dropout_fwd_", mutates_args=("x",),
    schema="(Tensor(a!) x, float p, Tensor seed, bool keep_bits, int[] global_shape=[], int[] local_start=[]) "
           "-> Tensor",
)
def _dropout_fwd_(x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, global_shape: _Sequence[int] = (),
                  local_start: _Sequence[int] = ()) -> torch.Tensor:
    """In place: x becomes dropout(x); returns the bits (as dropout_fwd). Used only when no grad is needed.
    A dense x (any memory format) is written directly; others through an out-of-place result."""
    if x.device.type == "cpu":
        dense = _arrays.is_dense(_np(x))
    else:
        dense = x.is_contiguous() or _arrays.layout_strides(tuple(x.shape), x.stride()) is not None
    if not dense:
        y, bits = _dropout_fwd(x, p, seed, keep_bits, global_shape, local_start)
        x.copy_(y)
        return bits
    s, o = _seed_offset(seed)
    store = "bits" if keep_bits else "seed"
    block = _block_kwargs(global_shape, local_start)
    if x.device.type == "cpu":
        xn = _np(x)
        _, mask = _rf.dropout(xn, p, seed=s, offset=o, out=xn, store=store, **block)  # out is x: no copy is made
        return torch.from_numpy(mask.bits) if keep_bits else torch.empty(0, dtype=torch.uint8)
    if x.device.type == "cuda":
        _, mask = _rf.dropout(x, p, seed=s, offset=o, out=x, store=store, **block)
        return mask.bits if keep_bits else torch.empty(0, dtype=torch.uint8, device=x.device)
    raise _unsupported_device(x, "dropout")


@_dropout_fwd_.register_fake
def _(x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, global_shape: _Sequence[int] = (),
      local_start: _Sequence[int] = ()) -> torch.Tensor:
    nbytes = (x.numel() + 7) // 8 if keep_bits else 0
    return x.new_empty((nbytes,), dtype=torch.uint8)


@_custom_op(
    "regdrop_fast::dropout_bwd",
    schema="(Tensor grad, Tensor bits, Tensor seed, float p, bool from_bits, int[] global_shape=[], "
           "int[] local_start=[]) -> Tensor",
)
def _dropout_bwd(
    grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float, from_bits: bool,
    global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> torch.Tensor:
    """grad * scale where the forward call at this seed kept the element, 0 elsewhere, in grad's memory
    format (_new_like; autograd gives a leaf's .grad the leaf's own layout in any case). With a global
    block, regenerated decisions are the block's (stored bits are in the block's own order already)."""
    s, o = _seed_offset(seed)
    shape = tuple(grad.shape)
    from_bits = from_bits or bits.numel() > 0  # bits kept by a vmap rule for a store="seed" call
    block = _mask_block(global_shape, local_start, shape)
    if grad.device.type == "cpu":
        mask = _Mask._trusted(shape, p, s, o, _np(bits) if from_bits else None, (), True, block)
        dx = _new_like(grad)
        _rf.dropout_backward(_np(grad), mask, out=_out_view(dx))
        return dx
    if grad.device.type == "cuda":
        mask = _Mask._trusted(shape, p, s, o, bits if from_bits else None, (), True, block)
        return _rf.dropout_backward(grad, mask)
    raise _unsupported_device(grad, "dropout")


@_dropout_bwd.register_fake
def _(grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float, from_bits: bool,
      global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> torch.Tensor:
    return _new_like(grad)


def _dropout_setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, p, seed, keep_bits, global_shape, local_start = inputs
    ctx.save_for_backward(output[1], seed)
    ctx.p, ctx.from_bits, ctx.block = p, keep_bits, (list(global_shape), list(local_start))
    # The bits output has no gradient; by default autograd would fill a zero tensor for it on every backward.
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def _dropout_backward(
    ctx: _Any, grad_y: torch.Tensor | None, _grad_bits: torch.Tensor | None
) -> tuple[torch.Tensor | None, None, None, None, None, None]:
    if grad_y is None:  # y did not reach the loss
        return None, None, None, None, None, None
    bits, seed = ctx.saved_tensors
    return _dropout_bwd(grad_y, bits, seed, ctx.p, ctx.from_bits, *ctx.block), None, None, None, None, None


_dropout_fwd.register_autograd(_dropout_backward, setup_context=_dropout_setup_context)


def _dropout_bwd_setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: torch.Tensor) -> None:
    _, bits, seed, p, from_bits, global_shape, local_start = inputs
    ctx.save_for_backward(bits, seed)
    ctx.p, ctx.from_bits, ctx.block = p, from_bits, (list(global_shape), list(local_start))


def _dropout_bwd_backward(ctx: _Any, grad_dx: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None, None, None]:
    # The backward is linear in grad with the same mask, so its derivative is itself (double backward).
    bits, seed = ctx.saved_tensors
    return _dropout_bwd(grad_dx, bits, seed, ctx.p, ctx.from_bits, *ctx.block), None, None, None, None, None, None


_dropout_bwd.register_autograd(_dropout_bwd_backward, setup_context=_dropout_bwd_setup_context)


# ---------------------------------------------------------------------------------------------------------
# Forward-mode AD and vmap
#
# torch.library.custom_op registers backward formulas only, so forward-mode AD (torch.func.jvp / jacfwd,
# torch.autograd.forward_ad dual tensors, gradcheck's check_forward_ad) goes through the autograd.Functions
# below: each wraps one custom op and gives its jvp. Dropout is linear in x, so its tangent goes through the
# same mask and scale: the backward op with the forward's bits and seed. TorchDynamo does not trace a
# Function with a custom jvp (it would break the graph), so under torch.compile the public functions call
# the custom ops directly, whose registered autograd the compiled backward uses; compiled code has no
# forward-mode AD anyway.
#
# vmap: the custom ops have batching rules that follow vmap's randomness= option, as torch's own dropout:
# "error" raises, "different" gives every sample its own mask, "same" one mask for the whole batch. The
# default seeding's torch.randint already follows the option (a batched [seed, offset] per sample under
# "different"); a Generator's seed is not batched, so under "different" sample b uses offset + b * n.

_VMAP_RANDOMNESS_ERROR = (
    "vmap: called random operation while in randomness error mode. Please either use the 'same' or "
    "'different' randomness flags on vmap or perform the randomness operation out of vmap"
)


def _sample(t: torch.Tensor, dim: int | None, b: int) -> torch.Tensor:
    """Sample b of a batched argument of a vmap rule (the argument itself when it is not batched)."""
    return t if dim is None else t.select(dim, b)


def _sample_seeds(info: _Any, seed: torch.Tensor, seed_dim: int | None, n: int) -> list[torch.Tensor]:
    """The [seed, offset] tensor of each sample under vmap, by vmap's randomness option; n: one sample's
    numel."""
    if seed_dim is not None:  # torch.randint under randomness="different"
        return [seed.select(seed_dim, b) for b in range(info.batch_size)]
    if info.randomness == "error":
        raise RuntimeError(_VMAP_RANDOMNESS_ERROR)
    if info.randomness == "same":
        return [seed] * info.batch_size
    s, o = seed.tolist()  # one position for the batch (a Generator): consecutive ranges of n per sample
    offsets = [((o & _U64_MASK) + b * n) & _U64_MASK for b in range(info.batch_size)]
    return [torch.tensor([s, v - (1 << 64) if v >> 63 else v], dtype=torch.int64) for v in offsets]


def _batch_first(info: _Any, x: torch.Tensor, x_dim: int | None) -> torch.Tensor:
    """The batch of x with the batch axis first: a view (a permuted one when x_dim > 0, dense when x is, so the
    kernels read it in place), or an expanded view of an unbatched x."""
    if x_dim is None:
        return x.expand(info.batch_size, *x.shape)
    return x.movedim(x_dim, 0)


def _no_vmap_block(global_shape: _Sequence[int], op: str = "dropout") -> None:
    if global_shape:
        raise RuntimeError(f"vmap: {op} with global_shape is not supported under torch.func.vmap")


def _dropout_fwd_vmap(
    info: _Any, in_dims: tuple[_Any, ...], x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool,
    global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[int, int]]:
    _no_vmap_block(global_shape)
    x_dim, seed_dim = in_dims[0], in_dims[2]
    n = x.numel() // info.batch_size if x_dim is not None else x.numel()
    if seed_dim is None and info.randomness == "different":
        # One position for the batch (a Generator): sample b uses the stream from offset o + b * n, which is
        # element b * n + i of one call over the batch with its batch axis first, so one call gives every
        # sample's mask. The bits are kept even for store="seed": the backward sees the same unbatched seed
        # and could not tell the samples' offsets apart (_dropout_bwd reads bits whenever there are any).
        # Per-sample bits must start on a byte: one call when n is a multiple of 8, else one per sample.
        if n % 8 == 0:
            y, bits = _dropout_fwd(_batch_first(info, x, x_dim), p, seed, True)
            return (y, bits.view(info.batch_size, n // 8)), (0, 0)
        keep_bits = True
    seeds = _sample_seeds(info, seed, seed_dim, n)
    outs = [_dropout_fwd(_sample(x, x_dim, b), p, s, keep_bits) for b, s in enumerate(seeds)]
    return (torch.stack([y for y, _ in outs]), torch.stack([bits for _, bits in outs])), (0, 0)


_dropout_fwd.register_vmap(_dropout_fwd_vmap)


def _dropout_fwd__vmap(
    info: _Any, in_dims: tuple[_Any, ...], x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool,
    global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> tuple[torch.Tensor, int]:
    _no_vmap_block(global_shape)
    x_dim, seed_dim = in_dims[0], in_dims[2]
    if x_dim is None:
        raise RuntimeError(
            "vmap: dropout(inplace=True) cannot write per-sample masks into a tensor that is not batched; "
            "use inplace=False"
        )
    n = x.numel() // info.batch_size
    if seed_dim is None and info.randomness == "different":
        # As _dropout_fwd_vmap: one call over the batch (written in place through the batch-first view).
        if n % 8 == 0:
            return _dropout_fwd_(x.movedim(x_dim, 0), p, seed, True).view(info.batch_size, n // 8), 0
        keep_bits = True
    seeds = _sample_seeds(info, seed, seed_dim, n)
    return torch.stack([_dropout_fwd_(x.select(x_dim, b), p, s, keep_bits) for b, s in enumerate(seeds)]), 0


_dropout_fwd_.register_vmap(_dropout_fwd__vmap)


def _dropout_bwd_vmap(
    info: _Any, in_dims: tuple[_Any, ...], grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float,
    from_bits: bool, global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> tuple[torch.Tensor, int]:
    _no_vmap_block(global_shape)
    g_dim, b_dim, s_dim = in_dims[:3]
    n = grad.numel() // info.batch_size if g_dim is not None else grad.numel()
    if b_dim is not None and bits.numel() > 0 and n % 8 == 0:
        # Every sample's bits (byte-aligned: n % 8 == 0) side by side are the bits of one call over the batch
        # with its batch axis first: one call.
        flat = bits.movedim(b_dim, 0).reshape(-1)
        return _dropout_bwd(_batch_first(info, grad, g_dim), flat, _sample(seed, s_dim, 0), p, True), 0
    return torch.stack([
        _dropout_bwd(_sample(grad, g_dim, b), _sample(bits, b_dim, b), _sample(seed, s_dim, b), p, from_bits)
        for b in range(info.batch_size)
    ]), 0


_dropout_bwd.register_vmap(_dropout_bwd_vmap)


def _save_mask(ctx: _Any, p: float, bits: torch.Tensor, seed: torch.Tensor, from_bits: bool,
               global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> None:
    """What the backward and the jvp of a dropout Function need: the forward's bits and seed (and its global
    block, empty lists for a plain call)."""
    ctx.save_for_backward(bits, seed)
    ctx.save_for_forward(bits, seed)
    ctx.p, ctx.from_bits, ctx.block = p, from_bits, (list(global_shape), list(local_start))


@_signature_kept
class _DropoutBwdFn(torch.autograd.Function):
    """dropout_bwd with its derivatives: it is linear in grad with the same mask, so its backward and its
    jvp are itself (double backward, forward-over-backward)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float, from_bits: bool,
                global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> _Any:
        return _in_eager(_dropout_bwd, grad, bits, seed)(grad, bits, seed, p, from_bits, global_shape, local_start)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: _Any) -> None:
        _, bits, seed, p, from_bits, *block = inputs
        _save_mask(ctx, p, bits, seed, from_bits, *block)

    @staticmethod
    def backward(ctx: _Any, grad_dx: torch.Tensor) -> tuple[_Any, ...]:
        bits, seed = ctx.saved_tensors
        return (_DropoutBwdFn.apply(grad_dx, bits, seed, ctx.p, ctx.from_bits, *ctx.block), None, None, None, None,
                None, None)

    @staticmethod
    def jvp(ctx: _Any, d_grad: torch.Tensor | None, *_: _Any) -> _Any:
        return None if d_grad is None else _through_mask(ctx, d_grad)


def _through_mask(ctx: _Any, t: torch.Tensor) -> torch.Tensor:
    """t through the saved mask and scale: dropout is linear in x, so its jvp and its backward are this."""
    bits, seed = ctx.saved_tensors
    return _dropout_bwd(t, bits, seed, ctx.p, ctx.from_bits, *ctx.block)


def _mask_backward(ctx: _Any, grad: torch.Tensor | None) -> tuple[_Any, None, None, None, None, None]:
    """The backward of a dropout forward (out of place or in place): differentiable again, for double
    backward and forward-over-backward."""
    if grad is None:  # the output did not reach the loss
        return None, None, None, None, None, None
    bits, seed = ctx.saved_tensors
    return (_apply(_DropoutBwdFn, _dropout_bwd, (grad, bits, seed), grad, bits, seed, ctx.p, ctx.from_bits, *ctx.block),
            None, None, None, None, None)


@_signature_kept
class _DropoutFn(torch.autograd.Function):
    """dropout_fwd with its backward and its jvp (the tangent through the same mask and scale)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, global_shape: _Sequence[int] = (),
                local_start: _Sequence[int] = ()) -> _Any:
        return _in_eager(_dropout_fwd, x, seed)(x, p, seed, keep_bits, global_shape, local_start)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        _, p, seed, keep_bits, *block = inputs
        _save_mask(ctx, p, output[1], seed, keep_bits, *block)
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: _Any, grad_y: torch.Tensor | None, _grad_bits: _Any) -> tuple[_Any, ...]:
        return _mask_backward(ctx, grad_y)

    @staticmethod
    def jvp(ctx: _Any, dx: torch.Tensor | None, *_: _Any) -> tuple[_Any, None]:
        return (None if dx is None else _through_mask(ctx, dx)), None


@_signature_kept
class _DropoutInplaceFn(torch.autograd.Function):
    """dropout_fwd_ (x written in place) with its backward and its jvp (the tangent, written in place too)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, global_shape: _Sequence[int] = (),
                local_start: _Sequence[int] = ()) -> _Any:
        return x, _dropout_fwd_(x, p, seed, keep_bits, global_shape, local_start)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, p, seed, keep_bits, *block = inputs
        _save_mask(ctx, p, output[1], seed, keep_bits, *block)
        ctx.mark_dirty(x)
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: _Any, grad_x: torch.Tensor | None, _grad_bits: _Any) -> tuple[_Any, ...]:
        return _mask_backward(ctx, grad_x)

    @staticmethod
    def jvp(ctx: _Any, dx: torch.Tensor | None, *_: _Any) -> tuple[_Any, None]:
        return (None if dx is None else dx.copy_(_through_mask(ctx, dx))), None


@torch.library.custom_op(
    "regdrop_fast::generator_next_", mutates_args=("state",), schema="(Tensor(a!) state, SymInt n) -> Tensor"
)
def _generator_next_(state: torch.Tensor, n: int) -> torch.Tensor:
    """[seed, offset] of a call on n elements from a Generator's state tensor, whose offset advances by n.

    A DataParallelGenerator's state has two more words, [rank, world_size]: the call is this rank's n
    elements of a global call on world_size * n, so it starts at offset + rank * n and the offset advances
    by world_size * n (regdrop_fast._generator.DataParallelGenerator.next, the same rule).
    """
    with _generator.LOCK:
        words = _np(state).view(_numpy.uint64)
        seed, offset = int(words[0]), int(words[1])
        rank, world = (int(words[2]), int(words[3])) if len(words) == 4 else (0, 1)
        start = (offset + rank * n) & _U64_MASK
        taken = torch.from_numpy(_numpy.array([seed, start], dtype=_numpy.uint64).view(_numpy.int64))
        words[1] = (offset + world * n) & _U64_MASK
    return taken


@_generator_next_.register_fake
def _(state: torch.Tensor, n: int) -> torch.Tensor:
    return state.new_empty((2,))


def _attach_state_tensor(gen: Generator) -> None:
    """Give a Generator an int64 tensor view of its state array (the memory is shared, not copied)."""
    gen._torch_state = torch.from_numpy(gen._state.view(_numpy.int64))


# Every Generator created (or copied, or unpickled) from now on gets its tensor view at once, so that its
# state is a plain tensor attribute when torch.compile traces a call that uses it.
_generator.on_new_state = _attach_state_tensor


def _generator_state(generator: object) -> torch.Tensor | None:
    """The state tensor of a regdrop_fast.Generator (None for None)."""
    if generator is None:
        return None
    if not isinstance(generator, Generator):
        hint = " (a torch.Generator cannot drive these masks)" if isinstance(generator, torch.Generator) else ""
        raise TypeError(
            f"generator: expected a regdrop_fast.Generator or None, got {type(generator).__name__}{hint}"
        )
    if generator._torch_state is None:  # made before this module was imported
        if torch.compiler.is_compiling():
            raise RuntimeError(
                "generator: this regdrop_fast.Generator was created before regdrop_fast.torch was imported; use "
                "it once outside torch.compile (or create it after the import) so it can be traced"
            )
        _attach_state_tensor(generator)
    return generator._torch_state


with torch.inference_mode(False):  # an ordinary CPU tensor, also when imported under a mode or default device
    _SEED_OFFSET_MASK = torch.tensor([-1, -4], dtype=torch.int64, device="cpu")


def _draw_seed(state: torch.Tensor | None, n: int) -> torch.Tensor:
    """The [seed, offset] tensor of a call on n elements.

    With a Generator: its current position, which then advances by n. Otherwise two draws in [0, 2^62) from
    torch's default CPU generator (the same for CPU and CUDA tensors, so torch.manual_seed(s) reproduces a
    run and the masks do not depend on the device), the offset rounded down to a multiple of 4: a call that
    starts on a Philox block boundary needs no extra block per group (on CUDA a misaligned start costs
    ~15% more instructions per element, BENCHMARKS.md). Under torch.compile the draw is an ordinary random op of
    the graph: masks are reproducible under torch.manual_seed but, as for torch's own dropout, not equal to
    eager ones unless torch._inductor.config.fallback_random is set.
    """
    if state is not None:
        return _generator_next_(state, n)
    draw = torch.randint(0, _SEED_BOUND, (2,), dtype=torch.int64, device="cpu")
    # The [-1, -4] mask is kept between calls in plain eager (building it took half of this function's ~7 us);
    # under a mode or a trace it is built inside, as a fake tensor or a graph constant must be.
    if _plain_eager():
        return draw.bitwise_and_(_SEED_OFFSET_MASK)
    return draw & torch.tensor([-1, -4], dtype=torch.int64, device="cpu")  # on the CPU under a default device too


# ---------------------------------------------------------------------------------------------------------
# Dropout API


def _dropout_probability(p: float) -> float:
    """p as torch.nn.functional.dropout checks it (the same message), NaN included."""
    return _args.probability(p, label="")


def _keep_bits(store: str) -> bool:
    return _args.store_mode(store) == "bits"


def dropout(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, store: str = "bits",
    generator: Generator | None = None, global_shape: _Sequence[int] | None = None,
    local_start: _Sequence[int] | None = None,
) -> torch.Tensor:
    """Drop-in ``torch.nn.functional.dropout`` on the regdrop_fast kernels.

    Zeroes each element with probability p and scales the kept ones by 1 / (1 - p). In eval mode
    (``training=False``) and for p = 0 the input itself is returned, as torch does. The output has the
    input's memory format, as torch's (channels_last stays channels_last; a dense input's strides are
    kept exactly, with no copy of the data); the mask belongs to the logical C-order flat index, so a
    channels_last tensor gets the mask of its contiguous twin (docs/rng.md).

    Differentiable (backward, double backward, forward-mode AD), usable under ``torch.func.vmap`` (by its
    ``randomness`` option) and traced by ``torch.compile`` without a graph break; docs/torch.md.

    Parameters
    ----------
    input : Tensor
        float32, float64, float16 or bfloat16, dense (strided), on the CPU or a CUDA device; or a DTensor
        with Shard/Replicate placements, whose result is the DTensor of our dropout of its full tensor
        (each rank drops its shard as a block of the global tensor; docs/distributed.md).
    p : float, default 0.5
        Drop probability, ``0 <= p <= 1``.
    training : bool, default True
        False returns input unchanged.
    inplace : bool, default False
        Write the result into input and return it.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps: ``"bits"`` (1 bit per element, 1/32 of float32) or ``"seed"`` (nothing:
        the mask is regenerated from the 16-byte seed in the backward pass).
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from (its offset advances by ``input.numel()`` per call, by the global
        tensor's element count with ``global_shape``); by default every call draws its seed from torch's
        RNG, so ``torch.manual_seed`` reproduces a run.
    global_shape : sequence of int, optional
        input is a block (a shard) of a global tensor of this shape: each element takes the decision that
        a call on the whole tensor makes at its global flat C-order index, so the shards of all ranks
        together make exactly one call's mask (``regdrop_fast.dropout``; docs/rng.md, "Global
        addressing"). Every rank must use the same seed: the same Generator state, or the same torch RNG
        state. Not under ``torch.func.vmap``.
    local_start : sequence of int, optional
        The global index of input's first element (default zeros); only with global_shape.

    Returns
    -------
    Tensor
        The dropped-out tensor (input itself in eval mode, for p = 0, or with ``inplace=True``).

    Raises
    ------
    TypeError
        input is not a tensor or of an unsupported dtype, p is not a real number, store is not a str,
        generator is not a regdrop_fast.Generator (a ``torch.Generator`` included).
    ValueError
        p outside [0, 1] (torch's message), store other than "bits" or "seed", a non-strided layout.
    NotImplementedError
        input on a device other than the CPU or CUDA.
    RuntimeError
        Under ``torch.func.vmap`` with ``randomness="error"``, or ``inplace=True`` on an input vmap does
        not batch; under ``torch.compile``, a Generator created before regdrop_fast.torch was imported and
        not yet used outside it.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> x = torch.ones(8)
    >>> y = rft.dropout(x, 0.5, generator=rf.Generator(42))
    >>> y
    tensor([2., 0., 0., 0., 2., 0., 2., 0.])
    >>> torch.equal(y, torch.from_numpy(rf.dropout(x.numpy(), 0.5, seed=42)[0]))  # the same stream
    True
    >>> rft.dropout(x, 0.5, training=False) is x
    True
    """
    p = _dropout_probability(p)
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input: expected a torch.Tensor, got {type(input).__name__}")
    if _dtensor.is_dtensor(input):  # each rank: its shard as the block of the global tensor
        return _dtensor.call(input, global_shape, local_start, inplace, torch.is_grad_enabled(),
                             lambda local, inplace_, gs, ls: dropout(local, p, training, inplace_, store=store,
                                                                     generator=generator, global_shape=gs,
                                                                     local_start=ls))
    keep_bits = _keep_bits(store)
    state = _generator_state(generator)
    gb = _args.global_block(global_shape, local_start, tuple(input.shape))  # None for a plain call
    if not training or p == 0.0:
        return input
    _check_tensor(input, "input")
    n = input.numel()
    block: tuple[list[int], list[int]] = ([], [])  # the ops' global_shape and local_start: empty for a plain call
    if gb is not None:
        n, block = _math.prod(gb.global_shape), (list(gb.global_shape), list(gb.local_start))
    seed = _draw_seed(state, n)
    if torch.compiler.is_compiling():  # the custom ops themselves (Dynamo does not trace a custom jvp)
        if inplace:
            if torch.is_grad_enabled() and input.requires_grad:
                # Autograd must see the in-place write: compute out of place, then copy into input.
                y, _ = _dropout_fwd(input, p, seed, keep_bits, *block)
                return input.copy_(y)
            _dropout_fwd_(input, p, seed, keep_bits, *block)
            return input
        return _dropout_fwd(input, p, seed, keep_bits, *block)[0]
    if inplace:
        if (torch.is_grad_enabled() and input.requires_grad) or torch._C._are_functorch_transforms_active():
            # Out of place, then copied into input: autograd sees the in-place write, and torch.func's
            # transforms do not let a Function's jvp write the (captured) tangent in place.
            y, _ = _DropoutFn.apply(input, p, seed, keep_bits, *block)
            return input.copy_(y)
        _DropoutInplaceFn.apply(input, p, seed, keep_bits, *block)  # its jvp drops the tangent in place too
        return input
    return _apply(_DropoutFn, _dropout_fwd, (input, seed), input, p, seed, keep_bits, *block)[0]


class Dropout(torch.nn.Dropout):
    """Drop-in ``torch.nn.Dropout`` (same constructor, repr, train/eval behaviour and errors; an instance of
    torch.nn.Dropout) running on the regdrop_fast kernels.

    Keyword-only extras: ``store="bits" | "seed"`` (what the backward keeps, see :func:`dropout`) and
    ``generator`` (a ``regdrop_fast.Generator``; default: torch's RNG). ``forward(input)`` is
    ``dropout(input, self.p, self.training, self.inplace, store=self.store, generator=self.generator)``.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability, ``0 <= p <= 1``.
    inplace : bool, default False
        Write the result into the input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps: packed bits or only the seed.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from; None draws every call's seed from torch's RNG.

    Attributes
    ----------
    p : float
        The drop probability.
    inplace : bool
        Whether forward writes into its input.
    store : str
        ``"bits"`` or ``"seed"``.
    generator : regdrop_fast.Generator or None
        The generator the masks are drawn from.
    training : bool
        Train mode (``train()`` / ``eval()``); in eval mode forward returns its input.

    Raises
    ------
    TypeError
        p is not a real number, store is not a str, generator is not a regdrop_fast.Generator.
    ValueError
        p outside [0, 1] (torch's message), store other than "bits" or "seed".

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> m = rft.Dropout(0.5, generator=rf.Generator(42))
    >>> m
    Dropout(p=0.5, inplace=False, generator=regdrop_fast.Generator(seed=42, offset=0))
    >>> isinstance(m, torch.nn.Dropout)
    True
    >>> m(torch.ones(8))
    tensor([2., 0., 0., 0., 2., 0., 2., 0.])
    >>> x = torch.ones(3)
    >>> m.eval()(x) is x
    True
    """

    def __init__(
        self, p: float = 0.5, inplace: bool = False, *, store: str = "bits", generator: Generator | None = None
    ) -> None:
        super().__init__(p, inplace)
        _dropout_probability(p)  # what torch's own check lets through: NaN, bool
        _keep_bits(store)
        _generator_state(generator)
        self.store = store
        self.generator = generator

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dropout(input, self.p, self.training, self.inplace, store=self.store, generator=self.generator)

    def extra_repr(self) -> str:
        extra = super().extra_repr()
        if self.store != "bits":
            extra += f", store={self.store!r}"
        if self.generator is not None:
            extra += f", generator={self.generator!r}"
        return extra


# ---------------------------------------------------------------------------------------------------------
# Fused transformer epilogue: residual + dropout(x + bias)
#
# bias_dropout_add_fwd is, like dropout_fwd, a pure function of its inputs and the [seed, offset] tensor;
# its mask bits are dropout's. The backward is one op for dx and dbias together (bias_dropout_add_bwd, one
# pass over memory); without a bias it is dropout_bwd. The residual's gradient is grad_y itself. A block of a
# global tensor travels through them as through the dropout ops: two int lists, empty for a plain call.


@_custom_op(
    "regdrop_fast::bias_dropout_add_fwd",
    schema="(Tensor x, Tensor? bias, Tensor residual, float p, Tensor seed, bool keep_bits, int[] global_shape=[], "
           "int[] local_start=[]) -> (Tensor, Tensor)",
)
def _bias_dropout_add_fwd(
    x: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool,
    global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, bits) as dropout_fwd: y C-contiguous, bits the mask bytes or empty without keep_bits."""
    s, o = _seed_offset(seed)
    store = "bits" if keep_bits else "seed"
    block = _block_kwargs(global_shape, local_start)
    if x.device.type == "cpu":
        y = torch.empty(x.shape, dtype=x.dtype)  # C order: the fused op does not keep x's layout (its fake too)
        b = None if bias is None else _np(bias.contiguous())
        _, mask = _rf.bias_dropout_add(_np(x.contiguous()), b, _np(residual.contiguous()), p, seed=s, offset=o,
                                       out=_out_view(y), store=store, **block)
        return y, torch.from_numpy(mask.bits) if keep_bits else torch.empty(0, dtype=torch.uint8)
    if x.device.type == "cuda":
        y, mask = _rf.bias_dropout_add(x, bias, residual, p, seed=s, offset=o, store=store, **block)
        return y, mask.bits if keep_bits else torch.empty(0, dtype=torch.uint8, device=x.device)
    raise _unsupported_device(x, "bias_dropout_add")


@_bias_dropout_add_fwd.register_fake
def _(x: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor, p: float, seed: torch.Tensor,
      keep_bits: bool, global_shape: _Sequence[int] = (),
      local_start: _Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    nbytes = (x.numel() + 7) // 8 if keep_bits else 0
    return x.new_empty(x.shape), x.new_empty((nbytes,), dtype=torch.uint8)


def _host_tensor(a: _numpy.ndarray) -> torch.Tensor:
    """A CPU tensor sharing a kernel result's memory (bfloat16 through its 16-bit patterns: torch.from_numpy
    does not know ml_dtypes' bfloat16)."""
    if a.dtype == _dtypes.BFLOAT16:
        return torch.from_numpy(a.view(_numpy.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


@_custom_op(
    "regdrop_fast::bias_dropout_add_bwd",
    schema="(Tensor grad, Tensor bits, Tensor seed, float p, bool from_bits, int[] global_shape=[], "
           "int[] local_start=[]) -> (Tensor, Tensor)",
)
def _bias_dropout_add_bwd(
    grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float, from_bits: bool,
    global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx, dbias): dx = dropout_bwd(grad), dbias its fixed-order sum over all axes but the last (a block's:
    over its own rows). With a global block, regenerated decisions are the block's."""
    s, o = _seed_offset(seed)
    shape = tuple(grad.shape)
    block = _mask_block(global_shape, local_start, shape)
    if grad.device.type == "cpu":
        mask = _Mask._trusted(shape, p, s, o, _np(bits) if from_bits else None, (), True, block)
        dx = torch.empty(shape, dtype=grad.dtype)
        _, dbias, _ = _rf.bias_dropout_add_backward(_np(grad.contiguous()), mask, out=_out_view(dx))
        return dx, _host_tensor(dbias)
    if grad.device.type == "cuda":
        mask = _Mask._trusted(shape, p, s, o, bits if from_bits else None, (), True, block)
        dx, dbias, _ = _rf.bias_dropout_add_backward(grad, mask)
        return dx, dbias
    raise _unsupported_device(grad, "bias_dropout_add")


@_bias_dropout_add_bwd.register_fake
def _(grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float, from_bits: bool,
      global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    return grad.new_empty(grad.shape), grad.new_empty(grad.shape[-1:])


def _bias_dropout_add_setup_context(ctx: _Any, inputs: tuple[_Any, ...],
                                    output: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, bias, _, p, seed, keep_bits, global_shape, local_start = inputs
    ctx.save_for_backward(output[1], seed)
    ctx.p, ctx.from_bits, ctx.with_bias = p, keep_bits, bias is not None
    ctx.block = (list(global_shape), list(local_start))
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def _bias_dropout_add_backward(ctx: _Any, grad_y: torch.Tensor | None, _grad_bits: _Any) -> tuple[_Any, ...]:
    """(dx, dbias, dresidual, None x 5): one fused pass for dx and dbias; dresidual is grad_y."""
    if grad_y is None:  # y did not reach the loss
        return None, None, None, None, None, None, None, None
    bits, seed = ctx.saved_tensors
    args = (grad_y, bits, seed, ctx.p, ctx.from_bits, *ctx.block)
    if ctx.with_bias:
        dx, dbias = _apply(None, _bias_dropout_add_bwd, (grad_y, bits, seed), *args)
    else:
        dx, dbias = _apply(None, _dropout_bwd, (grad_y, bits, seed), *args), None
    return dx, dbias, grad_y, None, None, None, None, None


_bias_dropout_add_fwd.register_autograd(_bias_dropout_add_backward, setup_context=_bias_dropout_add_setup_context)


def _plus_row(a: torch.Tensor | None, row: torch.Tensor | None, shape: torch.Size) -> torch.Tensor | None:
    """a + row broadcast along the last axis, either of them possibly absent (None: both are)."""
    if row is None:
        return a
    return row.expand(shape) if a is None else a + row


def _bias_dropout_add_bwd_setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: _Any) -> None:
    grad, bits, seed, p, from_bits, global_shape, local_start = inputs
    ctx.save_for_backward(bits, seed)
    ctx.p, ctx.from_bits, ctx.shape = p, from_bits, grad.shape
    ctx.block = (list(global_shape), list(local_start))
    ctx.set_materialize_grads(False)


def _bias_dropout_add_bwd_backward(ctx: _Any, g_dx: torch.Tensor | None,
                                   g_dbias: torch.Tensor | None) -> tuple[_Any, ...]:
    # (dx, dbias) is linear in grad: dx = mask(grad), dbias = sum of dx over the leading axes, so the
    # gradient with respect to grad is mask(g_dx + g_dbias broadcast along the last axis) (double backward).
    t = _plus_row(g_dx, g_dbias, ctx.shape)
    if t is None:
        return None, None, None, None, None, None, None
    bits, seed = ctx.saved_tensors
    return _dropout_bwd(t, bits, seed, ctx.p, ctx.from_bits, *ctx.block), None, None, None, None, None, None


_bias_dropout_add_bwd.register_autograd(_bias_dropout_add_bwd_backward,
                                        setup_context=_bias_dropout_add_bwd_setup_context)


@_signature_kept
class _BiasDropoutAddFn(torch.autograd.Function):
    """bias_dropout_add_fwd with its backward and its jvp: y is linear in (x, bias, residual), so the tangent
    is residual's plus (x's + bias's) through the forward's mask and scale."""

    @staticmethod
    def forward(x: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor, p: float, seed: torch.Tensor,
                keep_bits: bool, global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> _Any:
        return _in_eager(_bias_dropout_add_fwd, x, bias, residual, seed)(x, bias, residual, p, seed, keep_bits,
                                                                          global_shape, local_start)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, bias, _, p, seed, keep_bits, global_shape, local_start = inputs
        _save_mask(ctx, p, output[1], seed, keep_bits, global_shape, local_start)
        ctx.with_bias, ctx.shape = bias is not None, x.shape
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: _Any, grad_y: torch.Tensor | None, _grad_bits: _Any) -> tuple[_Any, ...]:
        return _bias_dropout_add_backward(ctx, grad_y, _grad_bits)

    @staticmethod
    def jvp(ctx: _Any, dx: torch.Tensor | None, dbias: torch.Tensor | None, dres: torch.Tensor | None,
            *_: _Any) -> tuple[_Any, None]:
        t = _plus_row(dx, dbias, ctx.shape)
        dy = None if t is None else _through_mask(ctx, t)
        if dres is not None:
            dy = dres if dy is None else dy + dres
        return dy, None

    @staticmethod
    def vmap(info: _Any, in_dims: tuple[_Any, ...], x: torch.Tensor, bias: torch.Tensor | None,
             residual: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool,
             global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> _Any:
        # No batching rule: a block refuses as dropout's does; a plain call as an autograd.Function without one.
        _no_vmap_block(global_shape, "bias_dropout_add")
        raise RuntimeError("vmap: bias_dropout_add is not supported under torch.func.vmap")


def bias_dropout_add(
    input: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor, p: float = 0.5, training: bool = True,
    *, store: str = "bits", generator: Generator | None = None, global_shape: _Sequence[int] | None = None,
    local_start: _Sequence[int] | None = None,
) -> torch.Tensor:
    """``residual + dropout(input + bias)`` in one pass: the fused transformer epilogue.

    The mask is the one :func:`dropout` would draw for ``input`` with the same seed (the same stream and
    bits), and the values are those of :func:`regdrop_fast.bias_dropout_add`: on float32 and float64 equal
    to ``residual + dropout(input + bias)`` of torch's own add and this module's dropout, on float16 and
    bfloat16 rounded once. The backward computes the input's and the bias's gradients in one pass (the
    bias's in a fixed order, the same bits on any thread count) and passes the residual's gradient through.
    In eval mode (``training=False``) it returns ``residual + (input + bias)``.

    Differentiable (backward, double backward, forward-mode AD) and traced by ``torch.compile`` without a
    graph break.

    Parameters
    ----------
    input : Tensor
        float32, float64, float16 or bfloat16, dense (strided), on the CPU or a CUDA device.
    bias : Tensor or None
        Shape ``(input.shape[-1],)``, input's dtype and device; None for no bias.
    residual : Tensor
        input's shape, dtype and device.
    p : float, default 0.5
        Drop probability, ``0 <= p <= 1``.
    training : bool, default True
        False skips the dropout.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps: packed bits or only the seed.
    generator : regdrop_fast.Generator, optional
        Where to draw the mask from (its offset advances by ``input.numel()``, by the global tensor's element
        count with ``global_shape``); by default torch's RNG.
    global_shape : sequence of int, optional
        input, residual and the result are a block (a shard) of a global tensor of this shape: each element
        takes the decision of the whole tensor's call at its global flat C-order index, as :func:`dropout`
        with ``global_shape`` (``regdrop_fast.bias_dropout_add``; docs/rng.md, "Global addressing"). bias
        is the block's own slice (shape ``(input.shape[-1],)``: with the last axis split, each rank's bias
        shard), and its gradient the sum over the block's rows. Every rank must use the same seed. Not under
        ``torch.func.vmap``.
    local_start : sequence of int, optional
        The global index of input's first element (default zeros); only with global_shape.

    Returns
    -------
    Tensor
        ``residual + dropout(input + bias)``, C-contiguous.

    Raises
    ------
    TypeError
        A tensor argument that is not a tensor or of an unsupported dtype, a bad p, store or generator type,
        a global_shape or local_start that is not a sequence of ints.
    ValueError
        p outside [0, 1], a bad store, bias not of shape ``(input.shape[-1],)``, residual of another shape,
        bias or residual of another dtype than input, a block that does not fit global_shape.
    NotImplementedError
        Tensors on a device other than the CPU or CUDA.
    RuntimeError
        With global_shape under ``torch.func.vmap``.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> x, b, r = torch.ones(2, 4), torch.zeros(4), torch.full((2, 4), 10.0)
    >>> rft.bias_dropout_add(x, b, r, 0.5, generator=rf.Generator(42))
    tensor([[12., 10., 10., 10.],
            [12., 10., 12., 10.]])
    >>> torch.equal(_, r + rft.dropout(x + b, 0.5, generator=rf.Generator(42)))
    True
    """
    p = _dropout_probability(p)
    keep_bits = _keep_bits(store)
    state = _generator_state(generator)
    _check_tensor(input, "input")
    _check_tensor(residual, "residual")
    if bias is not None:
        _check_tensor(bias, "bias")
    _validate.bias_operands(tuple(input.shape), _NP_DTYPE[input.dtype],
                            None if bias is None else (tuple(bias.shape), _NP_DTYPE[bias.dtype]),
                            tuple(residual.shape), _NP_DTYPE[residual.dtype])
    gb = _args.global_block(global_shape, local_start, tuple(input.shape))  # None for a plain call
    if not training:
        return residual + (input if bias is None else input + bias)
    n = input.numel()
    block: tuple[list[int], list[int]] = ([], [])  # the ops' global_shape and local_start: empty for a plain call
    if gb is not None:
        n, block = _math.prod(gb.global_shape), (list(gb.global_shape), list(gb.local_start))
    seed = _draw_seed(state, n)
    if torch.compiler.is_compiling():  # the custom op itself (Dynamo does not trace a custom jvp)
        return _bias_dropout_add_fwd(input, bias, residual, p, seed, keep_bits, *block)[0]
    return _apply(_BiasDropoutAddFn, _bias_dropout_add_fwd, (input, bias, residual, seed), input, bias, residual, p,
                  seed, keep_bits, *block)[0]


class BiasDropoutAdd(torch.nn.Module):
    """``forward(input, bias, residual)`` = :func:`bias_dropout_add` with this module's p, train/eval mode,
    store and generator: the end of a transformer sub-block (its projection computed without bias).

    Parameters
    ----------
    p : float, default 0.5
        Drop probability, ``0 <= p <= 1``.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from; None draws every call's seed from torch's RNG.

    Attributes
    ----------
    p : float
        The drop probability.
    store : str
        ``"bits"`` or ``"seed"``.
    generator : regdrop_fast.Generator or None
        The generator the masks are drawn from.
    training : bool
        Train mode; in eval mode forward returns ``residual + (input + bias)``.

    Raises
    ------
    TypeError
        p is not a real number, store is not a str, generator is not a regdrop_fast.Generator.
    ValueError
        p outside [0, 1], store other than "bits" or "seed".

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> m = rft.BiasDropoutAdd(0.5, generator=rf.Generator(42))
    >>> m
    BiasDropoutAdd(p=0.5, generator=regdrop_fast.Generator(seed=42, offset=0))
    >>> m(torch.ones(4), torch.zeros(4), torch.ones(4))
    tensor([3., 1., 1., 1.])
    >>> m.eval()(torch.ones(4), torch.zeros(4), torch.ones(4))
    tensor([2., 2., 2., 2.])
    """

    def __init__(self, p: float = 0.5, *, store: str = "bits", generator: Generator | None = None) -> None:
        super().__init__()
        self.p = _dropout_probability(p)
        _keep_bits(store)
        _generator_state(generator)
        self.store = store
        self.generator = generator

    def forward(self, input: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor, *,
                global_shape: _Sequence[int] | None = None, local_start: _Sequence[int] | None = None) -> torch.Tensor:
        """:func:`bias_dropout_add` of the arguments with this module's settings; global_shape and
        local_start make input a block of a global tensor (as there)."""
        return bias_dropout_add(input, bias, residual, self.p, self.training, store=self.store,
                                generator=self.generator, global_shape=global_shape, local_start=local_start)

    def extra_repr(self) -> str:
        extra = f"p={self.p}"
        if self.store != "bits":
            extra += f", store={self.store!r}"
        if self.generator is not None:
            extra += f", generator={self.generator!r}"
        return extra


# ---------------------------------------------------------------------------------------------------------
# Gaussian dropout: x * (1 + std * z)
#
# gaussian_dropout_fwd is a pure function of (x, p, seed) like dropout_fwd, and takes a block of a global
# tensor the same way (two int lists, empty for a plain call). Nothing per element is saved for the backward:
# the noise is regenerated from the seed tensor (and the block), and as the op is linear in x with those
# factors, its backward (and its jvp, and the backward's backward) is the same op applied to the gradient.


@_custom_op(
    "regdrop_fast::gaussian_dropout_fwd",
    schema="(Tensor x, float p, Tensor seed, int[] global_shape=[], int[] local_start=[]) -> Tensor",
)
def _gaussian_dropout_fwd(x: torch.Tensor, p: float, seed: torch.Tensor, global_shape: _Sequence[int] = (),
                          local_start: _Sequence[int] = ()) -> torch.Tensor:
    """x * (1 + std * z) with the noise of stream position [seed, offset] (of the global tensor's element 0
    for a block), C-contiguous."""
    s, o = _seed_offset(seed)
    block = _block_kwargs(global_shape, local_start)
    if x.device.type == "cpu":
        y = torch.empty(x.shape, dtype=x.dtype)
        # x read through a copy if strided
        _rf.gaussian_dropout(_np(x), p, seed=s, offset=o, out=_out_view(y), **block)
        return y
    if x.device.type == "cuda":
        return _rf.gaussian_dropout(x, p, seed=s, offset=o, **block)[0]
    raise _unsupported_device(x, "gaussian_dropout")


@_gaussian_dropout_fwd.register_fake
def _(x: torch.Tensor, p: float, seed: torch.Tensor, global_shape: _Sequence[int] = (),
      local_start: _Sequence[int] = ()) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


def _gaussian_setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: torch.Tensor) -> None:
    _, p, seed, global_shape, local_start = inputs
    ctx.save_for_backward(seed)
    ctx.p, ctx.block = p, (list(global_shape), list(local_start))


def _gaussian_backward(ctx: _Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
    (seed,) = ctx.saved_tensors
    return _gaussian_dropout_fwd(grad, ctx.p, seed, *ctx.block), None, None, None, None


_gaussian_dropout_fwd.register_autograd(_gaussian_backward, setup_context=_gaussian_setup_context)


def _gaussian_dropout_fwd_vmap(
    info: _Any, in_dims: tuple[_Any, ...], x: torch.Tensor, p: float, seed: torch.Tensor,
    global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> tuple[torch.Tensor, int]:
    """vmap: a batched seed (torch.randint under randomness="different") gives each sample its own noise,
    randomness="same" one noise for the batch. An unbatched seed under "different" (a Generator) is refused:
    the backward, which sees the same unbatched seed, could not tell the samples' offsets apart. A block of a
    global tensor is refused, as dropout's."""
    _no_vmap_block(global_shape, "gaussian_dropout")
    x_dim, _, seed_dim = in_dims[:3]
    if seed_dim is None and info.randomness == "different":
        raise RuntimeError("vmap: gaussian_dropout with a regdrop_fast.Generator supports randomness='same' only; "
                           "without a generator each sample draws its own seed")
    n = x.numel() // info.batch_size if x_dim is not None else x.numel()
    seeds = _sample_seeds(info, seed, seed_dim, n)
    return torch.stack([_gaussian_dropout_fwd(_sample(x, x_dim, b), p, s) for b, s in enumerate(seeds)]), 0


_gaussian_dropout_fwd.register_vmap(_gaussian_dropout_fwd_vmap)


@_signature_kept
class _GaussianDropoutFn(torch.autograd.Function):
    """gaussian_dropout_fwd with its derivatives: linear in x with the same factors, so the backward, its own
    backward and the jvp are all the op itself on the incoming tensor."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, p: float, seed: torch.Tensor, global_shape: _Sequence[int] = (),
                local_start: _Sequence[int] = ()) -> _Any:
        return _in_eager(_gaussian_dropout_fwd, x, seed)(x, p, seed, global_shape, local_start)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: torch.Tensor) -> None:
        _, p, seed, global_shape, local_start = inputs
        ctx.save_for_backward(seed)
        ctx.save_for_forward(seed)
        ctx.p, ctx.block = p, (list(global_shape), list(local_start))

    @staticmethod
    def backward(ctx: _Any, grad: torch.Tensor) -> tuple[_Any, None, None, None, None]:
        (seed,) = ctx.saved_tensors
        return (_apply(_GaussianDropoutFn, _gaussian_dropout_fwd, (grad, seed), grad, ctx.p, seed, *ctx.block),
                None, None, None, None)

    @staticmethod
    def jvp(ctx: _Any, dx: torch.Tensor | None, *_: _Any) -> _Any:
        (seed,) = ctx.saved_tensors
        return None if dx is None else _gaussian_dropout_fwd(dx, ctx.p, seed, *ctx.block)


def _gaussian_probability(p: float) -> float:
    """p of Gaussian dropout: in [0, 1) (torch's message for [0, 1], then the bound at 1)."""
    p = _dropout_probability(p)
    if p == 1.0:
        raise ValueError("gaussian dropout probability has to be below 1 (the noise variance p / (1 - p) is "
                         "infinite at 1), but got 1.0")
    return p


def gaussian_dropout(input: torch.Tensor, p: float = 0.5, training: bool = True, *,
                     generator: Generator | None = None, global_shape: _Sequence[int] | None = None,
                     local_start: _Sequence[int] | None = None) -> torch.Tensor:
    """Gaussian dropout (Keras ``GaussianDropout``): ``input * (1 + sqrt(p / (1 - p)) * z)``, z standard normal.

    The multiplicative noise has mean 1 and the variance ``p / (1 - p)`` of inverted dropout's factor. Each
    element's z comes from the dropout stream through the transform of docs/rng.md ("Gaussian noise"), so
    :func:`regdrop_fast.gaussian_dropout` with the same seed and offset gives the same bits, on the CPU and
    on CUDA. In eval mode (``training=False``) and for p = 0 the input itself is returned. A DTensor input
    (Shard / Replicate placements) takes, on each rank, the noise of its shard as the block of the global
    tensor it is, and comes back as a DTensor (docs/distributed.md).

    The backward keeps nothing per element (only the 16-byte seed): it regenerates the noise. Differentiable
    (backward, double backward, forward-mode AD), usable under ``torch.func.vmap`` and traced by
    ``torch.compile(fullgraph=True)`` without a graph break.

    Parameters
    ----------
    input : Tensor
        float32, float64, float16 or bfloat16, dense (strided), on the CPU or a CUDA device.
    p : float, default 0.5
        ``0 <= p < 1``.
    training : bool, default True
        False returns input unchanged.
    generator : regdrop_fast.Generator, optional
        Where to draw the noise from (its offset advances by ``input.numel()``, by the global tensor's
        element count with ``global_shape``); by default every call draws its seed from torch's RNG.
    global_shape : sequence of int, optional
        input is a block (a shard) of a global tensor of this shape: each element takes the normal that a
        call on the whole tensor gives at its global flat C-order index, so the shards of all ranks together
        make exactly one call's noise (``regdrop_fast.gaussian_dropout``; docs/rng.md, "Global
        addressing"). Every rank must use the same seed: the same Generator state, or the same torch RNG
        state. Not under ``torch.func.vmap``, and not with a DTensor input (which carries its own).
    local_start : sequence of int, optional
        The global index of input's first element (default zeros); only with global_shape.

    Returns
    -------
    Tensor
        C-contiguous (input itself in eval mode or for p = 0); a DTensor for a DTensor input.

    Raises
    ------
    TypeError
        input is not a tensor or of an unsupported dtype, p is not a real number, generator is not a
        regdrop_fast.Generator, global_shape or local_start is not a tuple or list of ints.
    ValueError
        p outside [0, 1), a non-strided layout; a block that does not fit global_shape (as
        ``regdrop_fast.gaussian_dropout``), local_start without global_shape, either with a DTensor input, a
        DTensor placement other than Shard and Replicate.
    NotImplementedError
        input on a device other than the CPU or CUDA.
    RuntimeError
        Under ``torch.func.vmap`` with ``randomness="error"``, with a Generator under
        ``randomness="different"``, or with global_shape.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.gaussian_dropout(torch.ones(2000), 0.3, generator=rf.Generator(7))
    >>> round(y.mean().item(), 1), round(y.std().item(), 1)
    (1.0, 0.7)
    >>> torch.equal(y, torch.from_numpy(rf.gaussian_dropout(torch.ones(2000).numpy(), 0.3, seed=7)[0]))
    True
    """
    p = _gaussian_probability(p)
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input: expected a torch.Tensor, got {type(input).__name__}")
    if _dtensor.is_dtensor(input):  # each rank: its shard as the block of the global tensor
        return _dtensor.call(input, global_shape, local_start, False, torch.is_grad_enabled(),
                             lambda local, _inplace, gs, ls: gaussian_dropout(local, p, training, generator=generator,
                                                                              global_shape=gs, local_start=ls))
    state = _generator_state(generator)
    gb = _args.global_block(global_shape, local_start, tuple(input.shape))  # None for a plain call
    if not training or p == 0.0:
        return input
    _check_tensor(input, "input")
    n = input.numel()
    block: tuple[list[int], list[int]] = ([], [])  # the op's global_shape and local_start: empty for a plain call
    if gb is not None:
        n, block = _math.prod(gb.global_shape), (list(gb.global_shape), list(gb.local_start))
    seed = _draw_seed(state, n)
    if torch.compiler.is_compiling():  # the custom op itself (Dynamo does not trace a custom jvp)
        return _gaussian_dropout_fwd(input, p, seed, *block)
    return _apply(_GaussianDropoutFn, _gaussian_dropout_fwd, (input, seed), input, p, seed, *block)


class GaussianDropout(torch.nn.Module):
    """Keras's ``GaussianDropout`` layer for PyTorch: :func:`gaussian_dropout` in train mode, the identity in
    eval mode.

    Parameters
    ----------
    p : float, default 0.5
        ``0 <= p < 1``: the noise's variance is ``p / (1 - p)`` (Keras's ``rate``).
    generator : regdrop_fast.Generator, optional
        Where to draw the noise from; None draws every call's seed from torch's RNG.

    Attributes
    ----------
    p : float
    generator : regdrop_fast.Generator or None
    training : bool
        Train mode; in eval mode forward returns its input.

    Raises
    ------
    TypeError
        p is not a real number, generator is not a regdrop_fast.Generator.
    ValueError
        p outside [0, 1).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> m = rft.GaussianDropout(0.2, generator=rf.Generator(1))
    >>> m
    GaussianDropout(p=0.2, generator=regdrop_fast.Generator(seed=1, offset=0))
    >>> m(torch.ones(3)).shape
    torch.Size([3])
    >>> x = torch.ones(3)
    >>> m.eval()(x) is x
    True
    """

    def __init__(self, p: float = 0.5, *, generator: Generator | None = None) -> None:
        super().__init__()
        self.p = _gaussian_probability(p)
        _generator_state(generator)
        self.generator = generator

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return gaussian_dropout(input, self.p, self.training, generator=self.generator)

    def extra_repr(self) -> str:
        extra = f"p={self.p}"
        if self.generator is not None:
            extra += f", generator={self.generator!r}"
        return extra


# ---------------------------------------------------------------------------------------------------------
# Weight penalties
#
# Each helper is one custom op over a list of tensors, which is one native call over NumPy views of their
# memory. A tensor that is modified in place and not contiguous is worked on in a contiguous copy that is
# copied back. CUDA tensors go to the CUDA penalty kernels as they are (regdrop_fast routes torch CUDA
# tensors there); their values and counts stay on the device, so nothing waits for the GPU.


def _tensor_list(tensors: _Tensors, name: str) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    if isinstance(tensors, (str, bytes)):
        raise TypeError(f"{name}: expected a tensor or an iterable of tensors, got {type(tensors).__name__}")
    try:
        items = list(tensors)
    except TypeError:
        raise TypeError(
            f"{name}: expected a tensor or an iterable of tensors, got {type(tensors).__name__}"
        ) from None
    for i, t in enumerate(items):
        _check_tensor(t, f"{name}[{i}]")
    return items


def _penalty_device(tensors: _Sequence[torch.Tensor], what: str) -> torch.device:
    """The one device of all tensors (CPU or CUDA; meta under tracing). Checked before the custom op is
    called, because torch dispatches the op (and its fake under tracing) by its tensors' devices: a mix must
    not reach dispatch. It is the package's one-device rule (_lists, _arrays) on torch devices."""
    device = tensors[0].device
    for t in tensors:
        if t.device != device:
            raise ValueError(f"{what}: tensors on {device} and {t.device}; all must be on one device")
    return device


def _coefficients(value: _Coefficient, count: int, name: str, upper: float | None = None) -> list[float]:
    """One float per tensor (the custom ops' float[]), checked by the package's one coefficient rule (plain
    Python for numbers and lists, so torch.compile traces it; the values are then constants of the graph)."""
    if isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a number or a sequence of numbers, got {type(value).__name__}")
    return _args.as_list(_args.coefficients(value, count, name, upper), count)


def _kernel_array(t: torch.Tensor) -> _Any:
    """What the regdrop_fast functions take for a tensor: a NumPy view on the CPU, the tensor on CUDA."""
    if t.device.type == "cpu":
        return _np(t)
    if t.device.type == "cuda":
        return t
    raise _unsupported_device(t, "penalty")


def _layout(t: torch.Tensor) -> tuple[int, tuple[int, ...], tuple[int, ...], int, bool]:
    """A tensor's memory as the package's strided rules take it (_arrays.strided_span)."""
    return t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.element_size(), t.is_contiguous()


def _check_written(params: _Sequence[torch.Tensor], grads: _Sequence[torch.Tensor] | None) -> None:
    """The list rules on the tensors as they are, before _Writable's contiguous copies hide them from the
    native checks (grads None: the params are written). When every written tensor is contiguous the kernels
    get their own memory and the package checks it as it is (_lists), so only the rest is looked at here."""
    written = params if grads is None else grads
    if all(t.is_contiguous() for t in written):
        return
    refusal = _lists.strided_refusal([_layout(t) for t in params],
                                     None if grads is None else [_layout(g) for g in grads],
                                     written_params=grads is None)
    if refusal:
        raise _lists.refusal_error(refusal, params, grads)


class _Writable:
    """Arrays of tensors to modify in place (see _kernel_array): contiguous ones and CPU tensors of any
    layout directly (the host kernels write strided arrays where they are), other CUDA tensors through a
    contiguous copy that ``write_back`` copies into the tensor afterwards."""

    def __init__(self, tensors: _Iterable[torch.Tensor]) -> None:
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.arrays: list[_Any] = []
        for t in tensors:
            work = t if t.is_contiguous() or t.device.type == "cpu" else t.contiguous()
            if work is not t:
                self.pairs.append((t, work))
            self.arrays.append(_kernel_array(work))

    def write_back(self) -> None:
        for t, work in self.pairs:
            t.copy_(work)


def _value_dtype(params: _Iterable[torch.Tensor]) -> torch.dtype:
    """dtype of a penalty value: float64 if any parameter is float64, else float32 (the value is summed in
    float64 either way), so that ``loss + penalty(...)`` keeps a float32 loss float32."""
    return torch.float64 if any(w.dtype == torch.float64 for w in params) else torch.float32


def _readable(tensors: _Iterable[torch.Tensor]) -> list[_Any]:
    return [_kernel_array(t) for t in tensors]


def _as_tensor(result: float | torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A 0-d result of a regdrop_fast call as a tensor of `dtype`: CUDA results are already 0-d device
    tensors (converted on the device, no sync); CPU results are Python numbers."""
    if isinstance(result, torch.Tensor):
        return result.to(dtype)
    return torch.tensor(result, dtype=dtype, device=device)


@torch.library.custom_op(
    "regdrop_fast::add_penalty_grad_", mutates_args=("grads",),
    schema="(Tensor[] params, Tensor(a!)[] grads, float[] l1, float[] l2, float[] group, int[] axis) -> Tensor",
)
def _add_penalty_grad_(
    params: list[torch.Tensor], grads: list[torch.Tensor], l1: list[float], l2: list[float],
    group: list[float], axis: list[int],
) -> torch.Tensor:
    _check_written(params, grads)
    g = _Writable(grads)
    value = _rf.penalty_grad(_readable(params), g.arrays, l1=_numpy.asarray(l1), l2=_numpy.asarray(l2),
                             **_group_kwargs(group, axis))
    g.write_back()
    return _as_tensor(value, _value_dtype(params), params[0].device)


@_add_penalty_grad_.register_fake
def _(params: list[torch.Tensor], grads: list[torch.Tensor], l1: list[float], l2: list[float],
      group: list[float], axis: list[int]) -> torch.Tensor:
    return params[0].new_empty((), dtype=_value_dtype(params))


def _group_args(group_l1: _Coefficient, axis: object, count: int) -> tuple[list[float], list[int]]:
    """group_l1 and axis as the custom ops take them: ([], []) without a group term (every coefficient 0), else
    one float per tensor and the axes as a list of ints (their range is checked per tensor by the package)."""
    group = _coefficients(group_l1, count, "group_l1")
    if not any(group):
        if axis is not None:
            _args.axis_items(axis)
        return [], []
    if axis is None:
        raise ValueError("axis: required with a nonzero group_l1 (the axes each group's norm is taken over)")
    _args.axis_items(axis)
    return group, [int(a) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]


def _group_kwargs(group: _Sequence[float], axis: _Sequence[int]) -> dict[str, _Any]:
    """The package's group_l1 / axis keywords from the custom ops' lists (none when group is empty)."""
    return {"group_l1": _numpy.asarray(group, dtype=_numpy.float64), "axis": tuple(axis)} if len(group) else {}


def add_penalty_grad_(params: _Tensors, l1: _Coefficient = 0.0, l2: _Coefficient = 0.0, *,
                      group_l1: _Coefficient = 0.0, axis: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """After ``loss.backward()``: ``p.grad += l1*sign(p) + l2*p`` for every parameter that has a grad, in one
    native call; returns the penalty value ``l1*sum|p| + (l2/2)*sum p^2`` over those parameters as a 0-d
    tensor (summed in float64; float64 if a parameter is float64, else float32). ``group_l1`` with ``axis``
    adds the group-Lasso term ``group_l1*sum_g ||p_g||_2`` and its gradient ``group_l1*p_g/||p_g||`` (nothing on
    an all-zero group) over the groups ``axis`` defines, as ``regdrop_fast.penalty_grad`` (the reduced axes, as
    ``torch.linalg.vector_norm``'s ``dim``).

    ``SGD(weight_decay=wd)`` equals plain SGD after ``add_penalty_grad_(params, l2=wd)``. l1, l2: a number
    >= 0 or one per parameter (of all params given, including those without a grad); a zero coefficient
    omits its term for that parameter. Runs under ``torch.no_grad()``; CUDA values stay on the device.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
        The parameters (e.g. ``model.parameters()``), all on one device; those whose ``.grad`` is None
        are skipped.
    l1, l2 : float or sequence of float, default 0.0
        Coefficients >= 0, one for all parameters or one per parameter.
    group_l1 : float or sequence of float, default 0.0
        The group term's coefficient >= 0, one for all parameters or one per parameter.
    axis : int or tuple of int, optional
        The axes each group's norm is taken over; required with a nonzero group_l1.

    Returns
    -------
    Tensor
        0-d: the penalty value over the parameters that have a grad (0 when none has).

    Raises
    ------
    TypeError
        params is not a tensor or an iterable of tensors, a tensor or grad of an unsupported dtype,
        non-numeric coefficients.
    ValueError
        Negative coefficients, a coefficient list of the wrong length, tensors on more than one device,
        a non-strided layout, overlapping grads. Nothing is written.
    NotImplementedError
        Tensors on a device other than the CPU or CUDA.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> w = torch.nn.Parameter(torch.tensor([2.0, -2.0]))
    >>> w.grad = torch.zeros(2)
    >>> rft.add_penalty_grad_([w], l1=0.5, l2=0.25)  # 0.5 * 4 + 0.125 * 8
    tensor(3.)
    >>> w.grad  # 0.5 * sign(w) + 0.25 * w
    tensor([ 1., -1.])
    """
    params = _tensor_list(params, "params")
    c1 = _coefficients(l1, len(params), "l1")
    c2 = _coefficients(l2, len(params), "l2")
    group, axes = _group_args(group_l1, axis, len(params))
    keep = [i for i, w in enumerate(params) if w.grad is not None]
    if not keep:
        return torch.zeros((), dtype=_value_dtype(params), device=params[0].device if params else None)
    ws = [params[i] for i in keep]
    gs = [_check_tensor(params[i].grad, f"params[{i}].grad") for i in keep]  # checked in order, as tensors
    _penalty_device(ws + gs, "add_penalty_grad_")
    args = ([c1[i] for i in keep], [c2[i] for i in keep], [group[i] for i in keep] if group else [], axes)
    with torch.no_grad():
        if _tangent_may_reach(ws + gs):
            return _helper_with_tangents("add_penalty_grad_", args, gs, read=ws)
        return _add_penalty_grad_(ws, gs, *args)


@torch.library.custom_op(
    "regdrop_fast::penalty", mutates_args=(),
    schema="(Tensor[] params, float[] l1, float[] l2, float[] group, int[] axis) -> Tensor"
)
def _penalty(params: list[torch.Tensor], l1: list[float], l2: list[float], group: list[float],
             axis: list[int]) -> torch.Tensor:
    value = _rf.penalty(_readable(params), l1=_numpy.asarray(l1), l2=_numpy.asarray(l2), **_group_kwargs(group, axis))
    return _as_tensor(value, _value_dtype(params), params[0].device)


@_penalty.register_fake
def _(params: list[torch.Tensor], l1: list[float], l2: list[float], group: list[float],
      axis: list[int]) -> torch.Tensor:
    return params[0].new_empty((), dtype=_value_dtype(params))


@torch.library.custom_op(
    "regdrop_fast::penalty_backward", mutates_args=(),
    schema="(Tensor grad, Tensor[] params, float[] l1, float[] l2, float[] group, int[] axis) -> Tensor[]",
)
def _penalty_backward(
    grad: torch.Tensor, params: list[torch.Tensor], l1: list[float], l2: list[float], group: list[float],
    axis: list[int],
) -> list[torch.Tensor]:
    """grad * (l1*sign(w) + l2*w (+ group*w_g/||w_g||)) for every w, each C-contiguous in w's dtype."""
    out = [torch.zeros(w.shape, dtype=w.dtype, device=w.device) for w in params]
    _rf.penalty_grad(_readable(params), [_kernel_array(g) for g in out],
                     l1=_numpy.asarray(l1), l2=_numpy.asarray(l2), **_group_kwargs(group, axis))
    # On the CPU skip the pass when grad is 1 (a CPU scalar: reading it costs nothing); on CUDA always
    # multiply (multiplying by 1 changes no bits, and reading the scalar would wait for the GPU).
    if grad.device.type != "cpu" or grad.item() != 1.0:
        for g in out:
            g.mul_(grad)
    return out


@_penalty_backward.register_fake
def _(grad: torch.Tensor, params: list[torch.Tensor], l1: list[float], l2: list[float], group: list[float],
      axis: list[int]) -> list[torch.Tensor]:
    return [w.new_empty(w.shape) for w in params]


def _penalty_setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: torch.Tensor) -> None:
    params, l1, l2, group, axis = inputs
    ctx.save_for_backward(*params)
    ctx.l1, ctx.l2, ctx.group, ctx.axis = l1, l2, group, axis


def _penalty_grad_fn(ctx: _Any, grad: torch.Tensor) -> tuple[_Any, ...]:
    grads = _penalty_backward(grad, list(ctx.saved_tensors), ctx.l1, ctx.l2, ctx.group, ctx.axis)
    # No gradient for the coefficient lists; an empty one (no group term) is answered in kind, since the
    # autograd check compares the structure of the inputs with that of the returned gradients.
    return (grads, None, None, *([] if len(a) == 0 else None for a in (ctx.group, ctx.axis)))


_penalty.register_autograd(_penalty_grad_fn, setup_context=_penalty_setup_context)


def _group_coefficient(group: _Sequence[float], i: int) -> float:
    """params[i]'s group_l1 coefficient in the custom ops' list (empty: no group term)."""
    return float(group[i]) if len(group) else 0.0


def _group_direction(w: torch.Tensor, axis: _Sequence[int]) -> torch.Tensor:
    """w_g / ||w_g|| per group (norms over `axis`), in float64; 0 on an all-zero group (the op's
    subgradient there)."""
    a = w.double()
    n = torch.linalg.vector_norm(a, dim=list(axis), keepdim=True)
    return torch.where(n > 0, a / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(a))


def _group_direction_tangent(w: torch.Tensor, dw: torch.Tensor, axis: _Sequence[int]) -> torch.Tensor:
    """The derivative of _group_direction at w along dw: dw/n - w <w, dw>/n^3 per group, in float64; 0 on an
    all-zero group (where the direction has no derivative; the op keeps its subgradient 0 there)."""
    a, da = w.double(), dw.double()
    n = torch.linalg.vector_norm(a, dim=list(axis), keepdim=True)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    inner = (a * da).sum(dim=list(axis), keepdim=True)
    return torch.where(n > 0, da / safe - a * inner / safe**3, torch.zeros_like(a))


def _penalty_slope(w: torch.Tensor, c1: float, c2: float, cg: float, axis: _Sequence[int]) -> torch.Tensor:
    """The penalty's gradient at w in float64: l1*sign(w) + l2*w (+ group_l1 * w_g/||w_g||)."""
    slope = c1 * torch.sign(w.double()) + c2 * w.double()
    return slope if cg == 0.0 else slope + cg * _group_direction(w, axis)


def _penalty_slope_tangent(w: torch.Tensor, dw: torch.Tensor, c2: float, cg: float,
                           axis: _Sequence[int]) -> torch.Tensor:
    """The derivative of _penalty_slope at w along dw, in float64 (sign has derivative 0 wherever it has
    one)."""
    t = c2 * dw.double()
    return t if cg == 0.0 else t + cg * _group_direction_tangent(w, dw, axis)


def _penalty_backward_setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: _Any) -> None:
    grad, params, l1, l2, group, axis = inputs
    ctx.save_for_backward(grad, *params)
    ctx.l1, ctx.l2, ctx.group, ctx.axis = l1, l2, group, axis


def _penalty_backward_grad_fn(ctx: _Any, g_out: list[torch.Tensor | None]) -> tuple[_Any, ...]:
    """penalty_backward's own derivative (double backward, torch.func.grad under vmap): its outputs are
    grad * slope(w) (_penalty_slope), linear in grad."""
    grad, *params = ctx.saved_tensors
    d_grad = torch.zeros((), dtype=torch.float64, device=grad.device)
    d_params: list[torch.Tensor | None] = []
    for i, (w, g) in enumerate(zip(params, g_out)):
        if g is None:
            d_params.append(None)
            continue
        c1, c2, cg = ctx.l1[i], ctx.l2[i], _group_coefficient(ctx.group, i)
        d_grad = d_grad + (g.double() * _penalty_slope(w, c1, c2, cg, ctx.axis)).sum()
        d_params.append((grad.double() * _penalty_slope_tangent(w, g, c2, cg, ctx.axis)).to(w.dtype))
    # as _penalty_grad_fn: an empty coefficient list is answered in kind
    return (d_grad.to(grad.dtype), d_params, None, None,
            *([] if len(a) == 0 else None for a in (ctx.group, ctx.axis)))


_penalty_backward.register_autograd(_penalty_backward_grad_fn, setup_context=_penalty_backward_setup_context)


@_signature_kept
class _PenaltyBackwardFn(torch.autograd.Function):
    """penalty_backward with its derivative, as a Function: what torch.func.grad needs to differentiate the
    penalty's backward (per-sample gradients under vmap, double backward)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad: torch.Tensor, l1: list[float], l2: list[float], group: list[float], axis: list[int],
                *params: torch.Tensor) -> _Any:
        return tuple(_penalty_backward(grad, list(params), l1, l2, group, axis))

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: _Any) -> None:
        grad, l1, l2, group, axis, *params = inputs
        _penalty_backward_setup_context(ctx, (grad, params, l1, l2, group, axis), output)
        ctx.save_for_forward(grad, *params)

    @staticmethod
    def backward(ctx: _Any, *g_out: torch.Tensor | None) -> tuple[_Any, ...]:
        d_grad, d_params, *_ = _penalty_backward_grad_fn(ctx, list(g_out))
        return (d_grad, None, None, None, None, *d_params)

    @staticmethod
    def jvp(ctx: _Any, d_grad: torch.Tensor | None, _l1: _Any, _l2: _Any, _group: _Any, _axis: _Any,
            *d_params: torch.Tensor | None) -> _Any:
        grad, *params = ctx.saved_tensors
        out = []
        for i, (w, dw) in enumerate(zip(params, d_params)):
            c1, c2, cg = ctx.l1[i], ctx.l2[i], _group_coefficient(ctx.group, i)
            t = torch.zeros(w.shape, dtype=torch.float64, device=w.device)
            if d_grad is not None:
                t = t + d_grad.double() * _penalty_slope(w, c1, c2, cg, ctx.axis)
            if dw is not None:
                t = t + grad.double() * _penalty_slope_tangent(w, dw, c2, cg, ctx.axis)
            out.append(t.to(w.dtype))
        return tuple(out)


@_signature_kept
class _PenaltyFn(torch.autograd.Function):
    """The penalty op with its backward and its jvp: sum(l1*sign(w)*dw + l2*w*dw) over the params (the
    slopes from penalty_backward, the sum in float64)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(l1: list[float], l2: list[float], group: list[float], axis: list[int], *params: torch.Tensor) -> _Any:
        return _penalty(list(params), l1, l2, group, axis)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: torch.Tensor) -> None:
        l1, l2, group, axis, *params = inputs
        ctx.save_for_backward(*params)
        ctx.save_for_forward(*params)
        ctx.l1, ctx.l2, ctx.group, ctx.axis, ctx.dtype = l1, l2, group, axis, output.dtype

    @staticmethod
    def backward(ctx: _Any, grad: torch.Tensor) -> tuple[_Any, ...]:
        return (None, None, None, None,
                *_PenaltyBackwardFn.apply(grad, ctx.l1, ctx.l2, ctx.group, ctx.axis, *ctx.saved_tensors))

    @staticmethod
    def jvp(ctx: _Any, _l1: _Any, _l2: _Any, _group: _Any, _axis: _Any, *tangents: torch.Tensor | None) -> _Any:
        params = list(ctx.saved_tensors)
        one = torch.ones((), dtype=ctx.dtype)
        slopes = _penalty_backward(one, params, ctx.l1, ctx.l2, ctx.group, ctx.axis)
        total = torch.zeros((), dtype=torch.float64, device=params[0].device)
        for slope, dw in zip(slopes, tangents):
            if dw is not None:
                total = total + (slope.double() * dw.double()).sum()
        return total.to(ctx.dtype)


def penalty(params: _Tensors, l1: _Coefficient = 0.0, l2: _Coefficient = 0.0, *, group_l1: _Coefficient = 0.0,
            axis: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """The differentiable penalty ``l1*sum|w| + (l2/2)*sum w^2`` over params, a 0-d tensor to add to a loss
    (dtype as for ``add_penalty_grad_``; its gradient is ``l1*sign(w) + l2*w``, first order only). l1, l2 as in
    ``add_penalty_grad_``.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
        The weights w, all on one device.
    l1, l2 : float or sequence of float, default 0.0
        Coefficients >= 0, one for all tensors or one per tensor.
    group_l1 : float or sequence of float, default 0.0
        The group-Lasso term ``group_l1*sum_g ||w_g||_2`` over the groups ``axis`` defines (gradient
        ``group_l1*w_g/||w_g||``, 0 on an all-zero group, as torch's own ``vector_norm`` backward), >= 0, one for
        all tensors or one per tensor.
    axis : int or tuple of int, optional
        The axes each group's norm is taken over (``vector_norm``'s ``dim``); required with a nonzero group_l1.

    Returns
    -------
    Tensor
        0-d, summed in float64 and returned as float64 if a parameter is float64, else float32 (float32 0
        for an empty params); differentiable with respect to params.

    Raises
    ------
    TypeError
        params is not a tensor or an iterable of tensors, a tensor of an unsupported dtype, non-numeric
        coefficients.
    ValueError
        Negative coefficients, a coefficient list of the wrong length, tensors on more than one device.
    NotImplementedError
        Tensors on a device other than the CPU or CUDA.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> w = torch.tensor([3.0, -4.0], requires_grad=True)
    >>> value = rft.penalty(w, l1=1.0, l2=2.0)  # 7 + 25
    >>> value.item()
    32.0
    >>> value.backward()
    >>> w.grad  # sign(w) + 2 * w
    tensor([ 7., -9.])
    """
    params = _tensor_list(params, "params")
    c1 = _coefficients(l1, len(params), "l1")
    c2 = _coefficients(l2, len(params), "l2")
    group, axes = _group_args(group_l1, axis, len(params))
    if not params:
        return torch.zeros((), dtype=torch.float32)
    _penalty_device(params, "penalty")
    if torch.compiler.is_compiling():  # the custom op itself (Dynamo does not trace a custom jvp)
        return _penalty(params, c1, c2, group, axes)
    return _PenaltyFn.apply(c1, c2, group, axes, *params)


@torch.library.custom_op(
    "regdrop_fast::prox_l1_", mutates_args=("params",), schema="(Tensor(a!)[] params, float[] threshold) -> Tensor"
)
def _prox_l1_(params: list[torch.Tensor], threshold: list[float]) -> torch.Tensor:
    _check_written(params, None)
    w = _Writable(params)
    zeros = _rf.prox_l1(w.arrays, _numpy.asarray(threshold))
    w.write_back()
    return _as_tensor(zeros, torch.int64, params[0].device)


@_prox_l1_.register_fake
def _(params: list[torch.Tensor], threshold: list[float]) -> torch.Tensor:
    return params[0].new_empty((), dtype=torch.int64)


def prox_l1_(params: _Tensors, threshold: _Coefficient) -> torch.Tensor:
    """Soft-thresholding in place under ``torch.no_grad()``: ``w = sign(w) * max(|w| - threshold, 0)``
    (proximal step of an L1 penalty: threshold = lr * l1). Returns the number of elements that are exactly
    zero afterwards, over all params, as a 0-d int64 tensor.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
        Updated in place, all on one device (a non-contiguous tensor through a contiguous copy).
    threshold : float or sequence of float
        >= 0, one for all tensors or one per tensor.

    Returns
    -------
    Tensor
        0-d int64: the number of exact zeros after the update (0 for an empty params); on the params'
        device.

    Raises
    ------
    TypeError
        params is not a tensor or an iterable of tensors, a tensor of an unsupported dtype, a non-numeric
        threshold.
    ValueError
        A negative threshold, a list of the wrong length, tensors on more than one device, overlapping
        tensors. Nothing is written.
    NotImplementedError
        Tensors on a device other than the CPU or CUDA.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> w = torch.tensor([0.5, -2.0, 0.1])
    >>> rft.prox_l1_(w, 0.25)
    tensor(1)
    >>> w
    tensor([ 0.2500, -1.7500,  0.0000])
    """
    params = _tensor_list(params, "params")
    t = _coefficients(threshold, len(params), "threshold")
    if not params:
        return torch.zeros((), dtype=torch.int64)
    _penalty_device(params, "prox_l1_")
    with torch.no_grad():
        if _tangent_may_reach(params):
            return _helper_with_tangents("prox_l1_", (t,), params)
        return _prox_l1_(params, t)


@torch.library.custom_op(
    "regdrop_fast::decay_", mutates_args=("params",), schema="(Tensor(a!)[] params, float[] factor) -> ()"
)
def _decay_(params: list[torch.Tensor], factor: list[float]) -> None:
    _check_written(params, None)
    w = _Writable(params)
    _rf.decay(w.arrays, _numpy.asarray(factor))
    w.write_back()


@_decay_.register_fake
def _(params: list[torch.Tensor], factor: list[float]) -> None:
    return None


def decay_(params: _Tensors, factor: _Coefficient) -> None:
    """Decoupled weight decay in place under ``torch.no_grad()``: ``w *= 1 - factor`` (AdamW's
    lr * weight_decay). factor: a number in [0, 1] or one per parameter.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
        Updated in place, all on one device (a non-contiguous tensor through a contiguous copy).
    factor : float or sequence of float
        In [0, 1], one for all tensors or one per tensor; 0 leaves a tensor alone.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        params is not a tensor or an iterable of tensors, a tensor of an unsupported dtype, a non-numeric
        factor.
    ValueError
        A factor outside [0, 1], a list of the wrong length, tensors on more than one device, overlapping
        tensors. Nothing is written.
    NotImplementedError
        Tensors on a device other than the CPU or CUDA.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> w = torch.tensor([1.0, -2.0])
    >>> rft.decay_(w, 0.5)
    >>> w
    tensor([ 0.5000, -1.0000])
    """
    params = _tensor_list(params, "params")
    f = _coefficients(factor, len(params), "factor", upper=1.0)
    if not params:
        return
    _penalty_device(params, "decay_")
    with torch.no_grad():
        if _tangent_may_reach(params):
            _helper_with_tangents("decay_", (f,), params)
        else:
            _decay_(params, f)


@torch.library.custom_op(
    "regdrop_fast::max_norm_", mutates_args=("w",), schema="(Tensor(a!) w, float max_value, int dim) -> Tensor"
)
def _max_norm_(w: torch.Tensor, max_value: float, dim: int) -> torch.Tensor:
    if not w.is_contiguous():
        _arrays.written_strided(_layout(w), "w")
    work = _Writable([w])
    a = work.arrays[0]
    if a.ndim == 1:  # each slice along dim 0 is one element: its norm is |w_i|
        a = a.reshape(-1, 1)
    axes = tuple(k for k in range(a.ndim) if k != dim)
    rescaled = _rf.max_norm(a, max_value, axis=axes)
    work.write_back()
    return _as_tensor(rescaled, torch.int64, w.device)


@_max_norm_.register_fake
def _(w: torch.Tensor, max_value: float, dim: int) -> torch.Tensor:
    return w.new_empty((), dtype=torch.int64)


def max_norm_(w: torch.Tensor, max_value: float, dim: int) -> torch.Tensor:
    """Max-norm constraint in place under ``torch.no_grad()``, ``torch.renorm``'s convention: every slice
    ``w.select(dim, i)`` whose L2 norm exceeds max_value is rescaled to norm max_value; the others stay bit
    for bit. (dim=0 for an ``nn.Linear`` weight constrains each unit's incoming weights.) Unlike
    torch.renorm no 1e-7 is added to the norm. Returns the number of slices rescaled as a 0-d int64 tensor.

    Parameters
    ----------
    w : Tensor
        At least 1-d, updated in place (a non-contiguous tensor through a contiguous copy); for a 1-d w
        each slice is one element.
    max_value : float
        The bound, finite and > 0.
    dim : int
        The dimension whose index selects a slice, ``-w.dim() <= dim < w.dim()``.

    Returns
    -------
    Tensor
        0-d int64 on w's device: the number of slices rescaled.

    Raises
    ------
    TypeError
        w is not a tensor or of an unsupported dtype, dim is not an int, max_value is not a number.
    ValueError
        A 0-d w, dim out of range, max_value not finite or <= 0, a non-strided layout or a non-contiguous
        w whose elements overlap.
    NotImplementedError
        w on a device other than the CPU or CUDA.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> w = torch.tensor([[3.0, 4.0], [0.1, 0.1]])  # row 0 has norm 5, row 1 is within the bound
    >>> rft.max_norm_(w, 1.0, dim=0)
    tensor(1)
    >>> w
    tensor([[0.6000, 0.8000],
            [0.1000, 0.1000]])
    """
    _check_tensor(w, "w")
    if isinstance(dim, bool) or not isinstance(dim, _numbers.Integral):
        raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
    if w.dim() == 0:
        raise ValueError("w: expected at least one dimension")
    if not -w.dim() <= dim < w.dim():
        raise ValueError(f"dim: {int(dim)} is out of range for a tensor of {w.dim()} dimension(s)")
    max_value = _args.max_value(max_value)
    with torch.no_grad():
        if _tangent_may_reach([w]):
            return _helper_with_tangents("max_norm_", (max_value, int(dim) % w.dim()), [w])
        return _max_norm_(w, max_value, int(dim) % w.dim())


# ---------------------------------------------------------------------------------------------------------
# Keras's weight constraints on parameter lists: norm_constraint_ (MinMaxNorm), unit_norm_ (UnitNorm),
# non_neg_ (NonNeg)


@torch.library.custom_op(
    "regdrop_fast::non_neg_", mutates_args=("params",), schema="(Tensor(a!)[] params) -> Tensor"
)
def _non_neg_(params: list[torch.Tensor]) -> torch.Tensor:
    _check_written(params, None)
    w = _Writable(params)
    negatives = _rf.non_neg(w.arrays)
    w.write_back()
    return _as_tensor(negatives, torch.int64, params[0].device)


@_non_neg_.register_fake
def _(params: list[torch.Tensor]) -> torch.Tensor:
    return params[0].new_empty((), dtype=torch.int64)


def non_neg_(params: _Tensors) -> torch.Tensor:
    """Keras NonNeg in place under ``torch.no_grad()``: every negative element becomes +0 (see
    ``regdrop_fast.non_neg``). Returns the number of elements that were negative, over all params, as a
    0-d int64 tensor.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
        Updated in place, all on one device (a non-contiguous CUDA tensor through a contiguous copy).

    Returns
    -------
    Tensor
        0-d int64 on the params' device (0 for an empty params).

    Raises
    ------
    TypeError
        params is not a tensor or an iterable of tensors, a tensor of an unsupported dtype.
    ValueError
        Tensors on more than one device, overlapping tensors. Nothing is written.
    NotImplementedError
        Tensors on a device other than the CPU or CUDA.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> w = torch.tensor([-1.0, 0.5, -2.0])
    >>> rft.non_neg_(w)
    tensor(2)
    >>> w
    tensor([0.0000, 0.5000, 0.0000])
    """
    params = _tensor_list(params, "params")
    if not params:
        return torch.zeros((), dtype=torch.int64)
    _penalty_device(params, "non_neg_")
    with torch.no_grad():
        if _tangent_may_reach(params):
            return _helper_with_tangents("non_neg_", (), params)
        return _non_neg_(params)


@torch.library.custom_op(
    "regdrop_fast::norm_constraint_", mutates_args=("params",),
    schema="(Tensor(a!)[] params, float min_value, float max_value, float rate, int dim) -> Tensor",
)
def _norm_constraint_(params: list[torch.Tensor], min_value: float, max_value: float, rate: float,
                      dim: int) -> torch.Tensor:
    _check_written(params, None)
    total = torch.zeros((), dtype=torch.int64, device=params[0].device)
    for w in params:
        work = _Writable([w])
        a = work.arrays[0]
        if a.ndim == 1:  # each slice along dim 0 is one element: its norm is |w_i|
            a = a.reshape(-1, 1)
        d = dim % w.dim()
        axes = tuple(k for k in range(a.ndim) if k != d)
        rescaled = _rf.norm_constraint(a, min_value=min_value, max_value=max_value, rate=rate, axis=axes)
        work.write_back()
        total += _as_tensor(rescaled, torch.int64, w.device)
    return total


@_norm_constraint_.register_fake
def _(params: list[torch.Tensor], min_value: float, max_value: float, rate: float, dim: int) -> torch.Tensor:
    return params[0].new_empty((), dtype=torch.int64)


def _constraint_dim(params: list[torch.Tensor], dim: object) -> int:
    """dim of norm_constraint_ / unit_norm_: an int in range for every tensor (each at least 1-d)."""
    if isinstance(dim, bool) or not isinstance(dim, _numbers.Integral):
        raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
    d = int(dim)
    for i, w in enumerate(params):
        _check_tensor(w, f"params[{i}]")
        if w.dim() == 0:
            raise ValueError(f"params[{i}]: expected at least one dimension")
        if not -w.dim() <= d < w.dim():
            raise ValueError(f"dim: {d} is out of range for params[{i}] of {w.dim()} dimension(s)")
    return d


def norm_constraint_(params: _Tensors, *, min_value: float = 0.0, max_value: float = float("inf"),
                     rate: float = 1.0, dim: int) -> torch.Tensor:
    """Keras MinMaxNorm in place under ``torch.no_grad()``, on every tensor of params, with
    ``torch.renorm``'s convention for the slices (as in ``max_norm_``): every slice ``w.select(dim, i)`` whose L2
    norm lies outside ``[min_value, max_value]`` is rescaled to norm
    ``rate * clip(norm, min_value, max_value) + (1 - rate) * norm`` (see ``regdrop_fast.norm_constraint``:
    slices within the bounds and of norm 0 stay bit for bit). Returns the number of slices rescaled, over
    all params, as a 0-d int64 tensor.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
        Each at least 1-d (a 1-d tensor's slices are its elements), updated in place, all on one device.
    min_value : float, default 0.0
        Finite, >= 0.
    max_value : float, default inf
        > 0 and >= min_value.
    rate : float, default 1.0
        In [0, 1].
    dim : int
        The dimension whose index selects a slice (0 for ``nn.Linear`` and ``nn.Conv2d`` weights: one slice
        per output unit or filter), in range for every tensor.

    Returns
    -------
    Tensor
        0-d int64 on the params' device.

    Raises
    ------
    TypeError
        A non-tensor or a tensor of an unsupported dtype, a non-int dim, non-numeric bounds.
    ValueError
        Bounds out of range, a 0-d tensor, dim out of range, tensors on more than one device. Nothing is
        written.
    NotImplementedError
        Tensors on a device other than the CPU or CUDA.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> w = torch.tensor([[3.0, 4.0], [0.1, 0.1]])  # row norms 5 and 0.14
    >>> rft.norm_constraint_(w, min_value=1.0, max_value=2.0, dim=0)
    tensor(2)
    >>> w.norm(dim=1)
    tensor([2.0000, 1.0000])
    """
    params = _tensor_list(params, "params")
    d = _constraint_dim(params, dim)
    lo, hi, r = _args.norm_bounds(min_value, max_value, rate)
    if not params:
        return torch.zeros((), dtype=torch.int64)
    _penalty_device(params, "norm_constraint_")
    with torch.no_grad():
        if _tangent_may_reach(params):
            return _helper_with_tangents("norm_constraint_", (lo, hi, r, d), params)
        return _norm_constraint_(params, lo, hi, r, d)


def unit_norm_(params: _Tensors, *, dim: int) -> torch.Tensor:
    """Keras UnitNorm in place under ``torch.no_grad()``: ``norm_constraint_(params, min_value=1,
    max_value=1, dim=dim)``, every slice ``w.select(dim, i)`` rescaled to L2 norm 1 (slices of norm 0
    stay 0). Returns the number of slices rescaled, over all params, as a 0-d int64 tensor.

    Parameters
    ----------
    params : Tensor or iterable of Tensor
        Each at least 1-d, updated in place, all on one device.
    dim : int
        The dimension whose index selects a slice, in range for every tensor.

    Returns
    -------
    Tensor
        0-d int64 on the params' device.

    Raises
    ------
    TypeError
        A non-tensor or a tensor of an unsupported dtype, a non-int dim.
    ValueError
        A 0-d tensor, dim out of range, tensors on more than one device. Nothing is written.
    NotImplementedError
        Tensors on a device other than the CPU or CUDA.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> w = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    >>> rft.unit_norm_(w, dim=0)
    tensor(1)
    >>> w
    tensor([[0.6000, 0.8000],
            [0.0000, 0.0000]])
    """
    return norm_constraint_(params, min_value=1.0, max_value=1.0, rate=1.0, dim=dim)


# ---------------------------------------------------------------------------------------------------------
# Mask-based dropout variants: channel (feature) dropout, drop_path, alpha and feature alpha dropout
#
# One pair of custom ops for all of them: dropout_variant_fwd(x, p, seed, keep_bits, dims, kind) and
# dropout_variant_bwd, pure functions of their inputs and the [seed, offset] tensor as dropout_fwd is. dims
# are the broadcast axes (one decision per slice along the others; the bits are at the reduced shape), kind
# the value policy: _SCALED (dropout: x / (1 - p)), _UNSCALED (drop_path with scale_by_keep=False), _ALPHA
# (alpha dropout). Each forward is linear in x up to a constant (alpha's b), with derivative the backward op,
# so the backward, its own backward and the jvp are all dropout_variant_bwd with the forward's mask.

_SCALED, _UNSCALED, _ALPHA = 0, 1, 2


def _reduced_numel(shape: _Sequence[_Any], dims: _Sequence[int]) -> _Any:
    """Decisions of a variant call: the product of the sizes of the axes that are not broadcast."""
    m: _Any = 1
    for d, n in enumerate(shape):
        if d not in dims:
            m = m * n
    return m


def _variant_host(x: _Any, p: float, s: int, o: int, out: _Any, store: str, dims: tuple[int, ...],
                  kind: int, block: dict[str, _Any]) -> tuple[_Any, _Mask]:
    if kind == _ALPHA:
        return _rf.alpha_dropout(x, p, broadcast_dims=dims, seed=s, offset=o, out=out, store=store, **block)
    if kind == _UNSCALED:  # drop_path(scale_by_keep=False): dims are every axis but 0
        return _rf.drop_path(x, p, scale_by_keep=False, seed=s, offset=o, out=out, store=store, **block)
    return _rf.dropout(x, p, broadcast_dims=dims, seed=s, offset=o, out=out, store=store, **block)


@_custom_op(
    "regdrop_fast::dropout_variant_fwd",
    schema="(Tensor x, float p, Tensor seed, bool keep_bits, int[] dims, int kind, int[] global_shape=[], "
           "int[] local_start=[]) -> (Tensor, Tensor)",
)
def _dropout_variant_fwd(
    x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, dims: list[int], kind: int,
    global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, bits): y in x's memory format; bits uint8 of ceil(m/8) bytes for the m decisions of the reduced
    shape (docs/rng.md, "Broadcast axes"), or empty without keep_bits. A global block (both lists
    non-empty): the whole call's decisions at the block's slices."""
    s, o = _seed_offset(seed)
    store = "bits" if keep_bits else "seed"
    block = _block_kwargs(global_shape, local_start)
    if x.device.type == "cpu":
        y = _new_like(x)
        _, mask = _variant_host(_np(x), p, s, o, _out_view(y), store, tuple(dims), kind, block)
        bits = torch.from_numpy(mask.bits) if keep_bits else torch.empty(0, dtype=torch.uint8)
        return y, bits
    if x.device.type == "cuda":
        y, mask = _variant_host(x, p, s, o, None, store, tuple(dims), kind, block)
        bits = mask.bits if keep_bits else torch.empty(0, dtype=torch.uint8, device=x.device)
        return y, bits
    raise _unsupported_device(x, "dropout variants")


@_dropout_variant_fwd.register_fake
def _(x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, dims: list[int], kind: int,
      global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    nbytes = (_reduced_numel(x.shape, dims) + 7) // 8 if keep_bits else 0
    return _new_like(x), x.new_empty((nbytes,), dtype=torch.uint8)


@_custom_op(
    "regdrop_fast::dropout_variant_bwd",
    schema="(Tensor grad, Tensor bits, Tensor seed, float p, bool from_bits, int[] dims, int kind, "
           "int[] global_shape=[], int[] local_start=[]) -> Tensor",
)
def _dropout_variant_bwd(
    grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float, from_bits: bool, dims: list[int],
    kind: int, global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> torch.Tensor:
    """The derivative of dropout_variant_fwd applied to grad: grad times the kept value's factor (1 / (1 - p),
    1, or alpha's a) where the forward at this seed kept the slice, 0 elsewhere; in grad's memory format."""
    s, o = _seed_offset(seed)
    shape = tuple(grad.shape)
    from_bits = from_bits or bits.numel() > 0  # bits kept by a vmap rule for a store="seed" call
    backward = _rf.alpha_dropout_backward if kind == _ALPHA else _rf.dropout_backward
    block = _mask_block(global_shape, local_start, shape)
    if grad.device.type == "cpu":
        mask = _Mask._trusted(shape, p, s, o, _np(bits) if from_bits else None, tuple(dims), kind != _UNSCALED, block)
        dx = _new_like(grad)
        backward(_np(grad), mask, out=_out_view(dx))
        return dx
    if grad.device.type == "cuda":
        mask = _Mask._trusted(shape, p, s, o, bits if from_bits else None, tuple(dims), kind != _UNSCALED, block)
        return backward(grad, mask)
    raise _unsupported_device(grad, "dropout variants")


@_dropout_variant_bwd.register_fake
def _(grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float, from_bits: bool, dims: list[int],
      kind: int, global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> torch.Tensor:
    return _new_like(grad)


def _variant_setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, p, seed, keep_bits, dims, kind, global_shape, local_start = inputs
    ctx.save_for_backward(output[1], seed)
    ctx.p, ctx.from_bits, ctx.dims, ctx.kind = p, keep_bits, dims, kind
    ctx.block = (list(global_shape), list(local_start))
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def _variant_backward(ctx: _Any, grad_y: torch.Tensor | None, _grad_bits: _Any) -> tuple[_Any, ...]:
    if grad_y is None:
        return (None,) * 8
    bits, seed = ctx.saved_tensors
    return (_dropout_variant_bwd(grad_y, bits, seed, ctx.p, ctx.from_bits, ctx.dims, ctx.kind, *ctx.block),
            *(None,) * 7)


_dropout_variant_fwd.register_autograd(_variant_backward, setup_context=_variant_setup_context)


def _variant_bwd_setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: torch.Tensor) -> None:
    _, bits, seed, p, from_bits, dims, kind, global_shape, local_start = inputs
    ctx.save_for_backward(bits, seed)
    ctx.p, ctx.from_bits, ctx.dims, ctx.kind = p, from_bits, dims, kind
    ctx.block = (list(global_shape), list(local_start))


def _variant_bwd_backward(ctx: _Any, grad_dx: torch.Tensor) -> tuple[_Any, ...]:
    bits, seed = ctx.saved_tensors  # linear in grad with the same mask: its derivative is itself
    return (_dropout_variant_bwd(grad_dx, bits, seed, ctx.p, ctx.from_bits, ctx.dims, ctx.kind, *ctx.block),
            *(None,) * 8)


_dropout_variant_bwd.register_autograd(_variant_bwd_backward, setup_context=_variant_bwd_setup_context)


def _variant_fwd_vmap(
    info: _Any, in_dims: tuple[_Any, ...], x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool,
    dims: list[int], kind: int, global_shape: _Sequence[int] = (), local_start: _Sequence[int] = (),
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[int, int]]:
    """One call per sample (dims are a sample's axes), seeds by vmap's randomness option as for dropout
    (_sample_seeds, a sample's stream range being its m decisions); the bits are kept when the samples
    share one unbatched seed, which the backward could not tell apart."""
    _no_vmap_block(global_shape)
    x_dim, _, seed_dim = in_dims[:3]
    sample_shape = x.shape if x_dim is None else x.select(x_dim, 0).shape
    m = _reduced_numel(sample_shape, dims)
    if seed_dim is None and info.randomness == "different":
        keep_bits = True
    seeds = _sample_seeds(info, seed, seed_dim, m)
    outs = [_dropout_variant_fwd(_sample(x, x_dim, b), p, s, keep_bits, dims, kind) for b, s in enumerate(seeds)]
    return (torch.stack([y for y, _ in outs]), torch.stack([bits for _, bits in outs])), (0, 0)


_dropout_variant_fwd.register_vmap(_variant_fwd_vmap)


def _variant_bwd_vmap(
    info: _Any, in_dims: tuple[_Any, ...], grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float,
    from_bits: bool, dims: list[int], kind: int, global_shape: _Sequence[int] = (),
    local_start: _Sequence[int] = (),
) -> tuple[torch.Tensor, int]:
    _no_vmap_block(global_shape)
    g_dim, b_dim, s_dim = in_dims[:3]
    return torch.stack([
        _dropout_variant_bwd(_sample(grad, g_dim, b), _sample(bits, b_dim, b), _sample(seed, s_dim, b), p,
                             from_bits, dims, kind)
        for b in range(info.batch_size)
    ]), 0


_dropout_variant_bwd.register_vmap(_variant_bwd_vmap)


@_signature_kept
class _VariantBwdFn(torch.autograd.Function):
    """dropout_variant_bwd as a Function: differentiable again, with its jvp (itself)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad: torch.Tensor, bits: torch.Tensor, seed: torch.Tensor, p: float, from_bits: bool,
                dims: list[int], kind: int, global_shape: _Sequence[int] = (),
                local_start: _Sequence[int] = ()) -> _Any:
        return _in_eager(_dropout_variant_bwd, grad, bits, seed)(grad, bits, seed, p, from_bits, dims, kind,
                                                                 global_shape, local_start)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: _Any) -> None:
        _, bits, seed, p, from_bits, dims, kind, *block = inputs
        _save_variant(ctx, p, bits, seed, from_bits, dims, kind, *block)

    @staticmethod
    def backward(ctx: _Any, grad_dx: torch.Tensor) -> tuple[_Any, ...]:
        bits, seed = ctx.saved_tensors
        return (_VariantBwdFn.apply(grad_dx, bits, seed, ctx.p, ctx.from_bits, ctx.dims, ctx.kind, *ctx.block),
                *(None,) * 8)

    @staticmethod
    def jvp(ctx: _Any, d_grad: torch.Tensor | None, *_: _Any) -> _Any:
        return None if d_grad is None else _through_variant(ctx, d_grad)


def _save_variant(ctx: _Any, p: float, bits: torch.Tensor, seed: torch.Tensor, from_bits: bool, dims: list[int],
                  kind: int, global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> None:
    ctx.save_for_backward(bits, seed)
    ctx.save_for_forward(bits, seed)
    ctx.p, ctx.from_bits, ctx.dims, ctx.kind = p, from_bits, dims, kind
    ctx.block = (list(global_shape), list(local_start))


def _through_variant(ctx: _Any, t: torch.Tensor) -> torch.Tensor:
    bits, seed = ctx.saved_tensors
    return _dropout_variant_bwd(t, bits, seed, ctx.p, ctx.from_bits, ctx.dims, ctx.kind, *ctx.block)


@_signature_kept
class _VariantFn(torch.autograd.Function):
    """dropout_variant_fwd with its backward and its jvp (the tangent through the same mask and factor)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, p: float, seed: torch.Tensor, keep_bits: bool, dims: list[int], kind: int,
                global_shape: _Sequence[int] = (), local_start: _Sequence[int] = ()) -> _Any:
        return _in_eager(_dropout_variant_fwd, x, seed)(x, p, seed, keep_bits, dims, kind, global_shape, local_start)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        _, p, seed, keep_bits, dims, kind, *block = inputs
        _save_variant(ctx, p, output[1], seed, keep_bits, dims, kind, *block)
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: _Any, grad_y: torch.Tensor | None, _grad_bits: _Any) -> tuple[_Any, ...]:
        if grad_y is None:
            return (None,) * 8
        bits, seed = ctx.saved_tensors
        return (_apply(_VariantBwdFn, _dropout_variant_bwd, (grad_y, bits, seed), grad_y, bits, seed, ctx.p,
                       ctx.from_bits, ctx.dims, ctx.kind, *ctx.block),
                *(None,) * 7)

    @staticmethod
    def jvp(ctx: _Any, dx: torch.Tensor | None, *_: _Any) -> tuple[_Any, None]:
        return (None if dx is None else _through_variant(ctx, dx)), None


_FEATURE_DIMS_ERROR = "Feature dropout requires at least 2 dimensions in the input"


def _variant(input: torch.Tensor, p: float, training: bool, inplace: bool, dims: tuple[int, ...], kind: int,
             keep_bits: bool, state: torch.Tensor | None, global_shape: _Sequence[int] | None = None,
             local_start: _Sequence[int] | None = None) -> torch.Tensor:
    """The variant of input (already checked: a tensor, p, store, generator; dims non-negative, sorted),
    as torch's dropout functions: input itself in eval mode, for p = 0 or no elements; inplace writes the
    result into input (out of place first, so autograd sees the write). A global block (global_shape,
    local_start) is checked here, even in eval mode; a Generator then advances by the global tensor's
    decision count, the same on every rank. A DTensor runs on its shard as the block it is."""
    if _dtensor.is_dtensor(input):
        return _dtensor.call(input, global_shape, local_start, inplace, torch.is_grad_enabled(),
                             lambda local, inplace_, gs, ls: _variant(local, p, training, inplace_, dims, kind,
                                                                      keep_bits, state, gs, ls))
    gb = _args.global_block(global_shape, local_start, tuple(input.shape))  # None for a plain call
    if not training or p == 0.0 or input.numel() == 0:
        return input
    m = _reduced_numel(input.shape, dims)
    block: tuple[list[int], list[int]] = ([], [])
    if gb is not None:
        m, block = _reduced_numel(gb.global_shape, dims), (list(gb.global_shape), list(gb.local_start))
    seed = _draw_seed(state, m)
    d = list(dims)
    if torch.compiler.is_compiling():  # the custom ops themselves (Dynamo does not trace a custom jvp)
        y = _dropout_variant_fwd(input, p, seed, keep_bits, d, kind, *block)[0]
    else:
        y = _apply(_VariantFn, _dropout_variant_fwd, (input, seed), input, p, seed, keep_bits, d, kind, *block)[0]
    return input.copy_(y) if inplace else y


def _variant_args(input: object, p: float, store: str, generator: object) -> tuple[float, bool, torch.Tensor | None]:
    """The checks every variant function makes first, in torch's order: p (torch's message), then the input
    tensor, store and generator."""
    p = _dropout_probability(p)
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input: expected a torch.Tensor, got {type(input).__name__}")
    keep_bits = _keep_bits(store)
    state = _generator_state(generator)
    _check_tensor(input, "input")
    return p, keep_bits, state


def _feature_dims(input: torch.Tensor) -> tuple[int, ...]:
    """torch's feature dropout: one decision per (sample, channel), the axes from 2 on broadcast."""
    if input.dim() < 2:
        raise RuntimeError(_FEATURE_DIMS_ERROR)
    return tuple(range(2, input.dim()))


def dropout_shared(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *,
    broadcast_dims: int | _Sequence[int] = (), store: str = "bits", generator: Generator | None = None,
    global_shape: _Sequence[int] | None = None, local_start: _Sequence[int] | None = None,
) -> torch.Tensor:
    """Dropout with broadcast (shared) axes: one decision per slice along the other axes, the whole slice
    kept (scaled by 1 / (1 - p)) or zeroed: ``regdrop_fast.dropout(..., broadcast_dims=)`` on tensors.

    Channel dropout of NCHW is ``broadcast_dims=(2, 3)``; time-shared (variational) RNN dropout of a
    (T, N, H) sequence is ``broadcast_dims=0``. The mask kept for backward is one bit per decision
    (N*C bits for NCHW with ``store="bits"``; nothing with ``store="seed"``); a Generator advances by
    the number of decisions. Differentiable (backward, double backward, forward AD), vmap and
    torch.compile (fullgraph) as :func:`dropout`.

    Parameters
    ----------
    input : Tensor
        float32, float64, float16 or bfloat16, dense (strided), CPU or CUDA.
    p : float, default 0.5
        Drop probability of a slice.
    training : bool, default True
        False returns input unchanged.
    inplace : bool, default False
        Write the result into input and return it.
    broadcast_dims : int or sequence of int, default ()
        The shared axes (negative ones count from the end).
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from; default torch's RNG.
    global_shape, local_start : sequence of int, optional
        input is the block at local_start (default zeros) of a global tensor of shape global_shape: the
        decisions are those of one call on the whole tensor at the block's slices (as in :func:`dropout`;
        docs/rng.md, "Global addressing"). Not under ``torch.func.vmap``.

    Returns
    -------
    Tensor

    Raises
    ------
    TypeError
        Wrong types (input, p, store, generator, a non-int axis).
    ValueError
        p outside [0, 1], a broadcast axis out of range or repeated, a bad store.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.dropout_shared(torch.ones(2, 3, 4), 0.5, broadcast_dims=2, generator=rf.Generator(1))
    >>> bool(((y == 0).all(2) | (y == 2).all(2)).all())
    True
    """
    p, keep_bits, state = _variant_args(input, p, store, generator)
    dims = _args.broadcast_dims(broadcast_dims, input.dim())
    return _variant(input, p, training, inplace, dims, _SCALED, keep_bits, state, global_shape, local_start)


def dropout1d(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, store: str = "bits",
    generator: Generator | None = None,
) -> torch.Tensor:
    """Drop-in ``torch.nn.functional.dropout1d``: whole channels of (N, C, L) or (C, L) input zeroed.

    torch's rank rules and errors: 2-D input is unbatched (C, L), 3-D is (N, C, L), any other rank raises
    RuntimeError. The mask is one bit per channel (``broadcast_dims`` = the length axis: docs/rng.md).
    ``store`` and ``generator`` as in :func:`dropout`.

    Parameters
    ----------
    input : Tensor
        (N, C, L) or (C, L).
    p : float, default 0.5
        Drop probability of a channel.
    training : bool, default True
        False returns input unchanged.
    inplace : bool, default False
        Write the result into input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message).
    RuntimeError
        input not 2-D or 3-D (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.dropout1d(torch.ones(2, 4, 5), 0.5, generator=rf.Generator(0))
    >>> bool(((y == 0).all(2) | (y == 2).all(2)).all())
    True
    """
    p, keep_bits, state = _variant_args(input, p, store, generator)
    inp_dim = input.dim()
    if inp_dim not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received a {inp_dim}D input. "
            "Note that dropout1d exists to provide channel-wise dropout on inputs with 1 "
            "spatial dimension, a channel dimension, and an optional batch dimension "
            "(i.e. 2D or 3D inputs)."
        )
    return _variant(input, p, training, inplace, (inp_dim - 1,), _SCALED, keep_bits, state)


def dropout2d(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, store: str = "bits",
    generator: Generator | None = None,
) -> torch.Tensor:
    """Drop-in ``torch.nn.functional.dropout2d``: whole feature maps of (N, C, H, W) input zeroed.

    torch's rank rules and warnings: axes from 2 on are shared (torch's feature dropout), so 3-D input is
    taken as (N, C, L) with torch's warning, ranks other than 3 and 4 warn as torch does, below 2 raise
    RuntimeError. The mask is one bit per (sample, channel): N*C bits, where torch's Dropout2d keeps a
    full-size mask. ``store`` and ``generator`` as in :func:`dropout`.

    Parameters
    ----------
    input : Tensor
        (N, C, H, W) (or (N, C, L), with torch's warning).
    p : float, default 0.5
        Drop probability of a feature map.
    training : bool, default True
        False returns input unchanged.
    inplace : bool, default False
        Write the result into input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message).
    RuntimeError
        input of fewer than 2 dimensions.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.dropout2d(torch.ones(2, 3, 4, 4), 0.5, generator=rf.Generator(0))
    >>> bool(((y == 0).all(3).all(2) | (y == 2).all(3).all(2)).all())
    True
    """
    p, keep_bits, state = _variant_args(input, p, store, generator)
    inp_dim = input.dim()
    if inp_dim not in (3, 4):
        _warnings.warn(
            f"dropout2d: Received a {inp_dim}-D input to dropout2d, which is deprecated "
            "and will result in an error in a future release. To retain the behavior "
            "and silence this warning, please use dropout instead. Note that dropout2d "
            "exists to provide channel-wise dropout on inputs with 2 spatial dimensions, "
            "a channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs).",
            stacklevel=2,
        )
    if inp_dim == 3:
        _warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
            "1D dropout behavior is desired - input is interpreted as shape (N, C, L), where C "
            "is the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2,
        )
    if not training or p == 0.0 or input.numel() == 0:
        return input
    return _variant(input, p, training, inplace, _feature_dims(input), _SCALED, keep_bits, state)


def dropout3d(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *, store: str = "bits",
    generator: Generator | None = None,
) -> torch.Tensor:
    """Drop-in ``torch.nn.functional.dropout3d``: whole volumes of (N, C, D, H, W) or (C, D, H, W) input
    zeroed.

    torch's rank rules and warnings: 5-D input is batched, any other rank is taken as one unbatched
    sample (axes from 1 on shared), ranks other than 4 and 5 with torch's warning. The mask is one bit
    per (sample, channel). ``store`` and ``generator`` as in :func:`dropout`.

    Parameters
    ----------
    input : Tensor
        (N, C, D, H, W) or (C, D, H, W).
    p : float, default 0.5
        Drop probability of a volume.
    training : bool, default True
        False returns input unchanged.
    inplace : bool, default False
        Write the result into input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.dropout3d(torch.ones(3, 2, 2, 2), 0.5, generator=rf.Generator(0))
    >>> bool(((y == 0).flatten(1).all(1) | (y == 2).flatten(1).all(1)).all())
    True
    """
    p, keep_bits, state = _variant_args(input, p, store, generator)
    inp_dim = input.dim()
    if inp_dim not in (4, 5):
        _warnings.warn(
            f"dropout3d: Received a {inp_dim}-D input to dropout3d, which is deprecated "
            "and will result in an error in a future release. To retain the behavior "
            "and silence this warning, please use dropout instead. Note that dropout3d "
            "exists to provide channel-wise dropout on inputs with 3 spatial dimensions, "
            "a channel dimension, and an optional batch dimension (i.e. 4D or 5D inputs).",
            stacklevel=2,
        )
    if inp_dim == 0 and training and p != 0.0:  # unsqueezed to 1-D, which feature dropout refuses
        raise RuntimeError(_FEATURE_DIMS_ERROR)
    dims = tuple(range(2, inp_dim)) if inp_dim == 5 else tuple(range(1, inp_dim))
    return _variant(input, p, training, inplace, dims, _SCALED, keep_bits, state)


def alpha_dropout(
    input: torch.Tensor, p: float = 0.5, training: bool = False, inplace: bool = False, *, store: str = "bits",
    generator: Generator | None = None, global_shape: _Sequence[int] | None = None,
    local_start: _Sequence[int] | None = None,
) -> torch.Tensor:
    """Drop-in ``torch.nn.functional.alpha_dropout`` (note torch's default ``training=False``).

    ``regdrop_fast.alpha_dropout`` on tensors: a dropped unit takes SELU's saturation value, then
    ``y = a * v + b`` keeps zero mean and unit variance (the constants in its docstring); the decisions
    are :func:`dropout`'s for the same seed. p = 1 gives zeros. ``store`` and ``generator`` as in
    :func:`dropout`.

    Parameters
    ----------
    input : Tensor
        Any shape.
    p : float, default 0.5
        Drop probability.
    training : bool, default False
        False returns input unchanged.
    inplace : bool, default False
        Write the result into input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from.
    global_shape, local_start : sequence of int, optional
        input is the block at local_start (default zeros) of a global tensor of shape global_shape: the
        decisions are those of one call on the whole tensor at the block's slices (as in :func:`dropout`;
        docs/rng.md, "Global addressing"). Not under ``torch.func.vmap``.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> x = torch.randn(10000, generator=torch.Generator().manual_seed(0))
    >>> y = rft.alpha_dropout(x, 0.5, training=True, generator=rf.Generator(0))
    >>> abs(float(y.mean())) < 0.05, abs(float(y.std()) - 1) < 0.05
    (True, True)
    """
    p, keep_bits, state = _variant_args(input, p, store, generator)
    return _variant(input, p, training, inplace, (), _ALPHA, keep_bits, state, global_shape, local_start)


def feature_alpha_dropout(
    input: torch.Tensor, p: float = 0.5, training: bool = False, inplace: bool = False, *, store: str = "bits",
    generator: Generator | None = None,
) -> torch.Tensor:
    """Drop-in ``torch.nn.functional.feature_alpha_dropout``: alpha dropout of whole channels (axes from 2
    on shared, as torch's feature dropout; fewer than 2 dimensions raise RuntimeError). The mask is one bit
    per (sample, channel). ``store`` and ``generator`` as in :func:`dropout`.

    Parameters
    ----------
    input : Tensor
        (N, C, ...).
    p : float, default 0.5
        Drop probability of a channel.
    training : bool, default False
        False returns input unchanged.
    inplace : bool, default False
        Write the result into input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from.

    Returns
    -------
    Tensor

    Raises
    ------
    ValueError
        p outside [0, 1] (torch's message).
    RuntimeError
        input of fewer than 2 dimensions.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.feature_alpha_dropout(torch.zeros(2, 3, 4), 0.5, training=True, generator=rf.Generator(0))
    >>> bool((y == y[:, :, :1]).all())  # one value per channel
    True
    """
    p, keep_bits, state = _variant_args(input, p, store, generator)
    if not training or p == 0.0 or input.numel() == 0:
        return input
    return _variant(input, p, training, inplace, _feature_dims(input), _ALPHA, keep_bits, state)


def drop_path(
    input: torch.Tensor, p: float = 0.0, training: bool = False, scale_by_keep: bool = True, *,
    store: str = "bits", generator: Generator | None = None, global_shape: _Sequence[int] | None = None,
    local_start: _Sequence[int] | None = None,
) -> torch.Tensor:
    """Stochastic depth: timm's ``drop_path(x, drop_prob, training, scale_by_keep)`` and torchvision's
    ``stochastic_depth(x, p, "row", training)`` on the regdrop_fast kernels.

    One decision per sample (axis 0): a kept sample is scaled by ``1 / (1 - p)`` (unscaled with
    ``scale_by_keep=False``), a dropped one zeroed. One mask bit per sample. As timm's, ``training``
    defaults to False (eval: input returned). ``store`` and ``generator`` as in :func:`dropout`.

    Parameters
    ----------
    input : Tensor
        At least one dimension (the samples).
    p : float, default 0.0
        Drop probability of a sample.
    training : bool, default False
        False returns input unchanged.
    scale_by_keep : bool, default True
        Scale kept samples by ``1 / (1 - p)``.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from.
    global_shape, local_start : sequence of int, optional
        input is the block at local_start (default zeros) of a global tensor of shape global_shape: the
        decisions are those of one call on the whole tensor at the block's slices (as in :func:`dropout`;
        docs/rng.md, "Global addressing"). Not under ``torch.func.vmap``.

    Returns
    -------
    Tensor

    Raises
    ------
    TypeError
        Wrong types (input, p, scale_by_keep, store, generator).
    ValueError
        p outside [0, 1], a 0-d input.

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.drop_path(torch.ones(4, 3), 0.5, training=True, generator=rf.Generator(7))
    >>> y
    tensor([[2., 2., 2.],
            [2., 2., 2.],
            [0., 0., 0.],
            [0., 0., 0.]])
    """
    p, keep_bits, state = _variant_args(input, p, store, generator)
    scale_by_keep = _args.flag(scale_by_keep, "scale_by_keep")
    if input.dim() == 0:
        raise ValueError("input: is 0-d; drop_path takes one decision per sample along axis 0, so input needs one")
    dims = tuple(range(1, input.dim()))
    return _variant(input, p, training, False, dims, _SCALED if scale_by_keep else _UNSCALED, keep_bits, state,
                    global_shape, local_start)


# ---------------------------------------------------------------------------------------------------------
# Modules of the dropout variants
#
# Each is a drop-in for its torch (or timm) class: a subclass of torch's own where torch has one (the same
# constructor checks, attributes, repr and isinstance), whose forward is the functional variant above with
# the module's p and mode, plus the keyword-only extras store= and generator= of Dropout.


class _VariantExtras:
    """store= and generator= of the variant modules: checked once at construction, shown in the repr when
    not the defaults."""

    store: str
    generator: Generator | None

    def _set_extras(self, p: float, store: str, generator: Generator | None) -> None:
        _dropout_probability(p)  # what torch's own check lets through: NaN, bool
        _keep_bits(store)
        _generator_state(generator)
        self.store = store
        self.generator = generator

    def _extras_repr(self, base: str) -> str:
        if self.store != "bits":
            base += f", store={self.store!r}"
        if self.generator is not None:
            base += f", generator={self.generator!r}"
        return base


class Dropout1d(_VariantExtras, torch.nn.Dropout1d):
    """Drop-in ``torch.nn.Dropout1d``: whole channels of (N, C, L) or (C, L) input zeroed, one mask bit per
    channel. torch's rank rules and errors (:func:`dropout1d`); an instance of torch.nn.Dropout1d.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability of a channel, ``0 <= p <= 1``.
    inplace : bool, default False
        Write the result into the input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps: one bit per channel, or only the seed.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from (its offset advances by the number of channels); None draws every call's
        seed from torch's RNG.

    Attributes
    ----------
    p : float
        The drop probability, as given.
    inplace : bool
        As given.
    store : str
        As given: "bits" or "seed".
    generator : regdrop_fast.Generator or None
        As given.
    training : bool
        Train mode (``train()`` / ``eval()``); in eval mode forward returns its input.

    Raises
    ------
    TypeError
        p is not a real number, store is not a str, generator is not a regdrop_fast.Generator.
    ValueError
        p outside [0, 1] (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> m = rft.Dropout1d(0.5, generator=rf.Generator(0))
    >>> m
    Dropout1d(p=0.5, inplace=False, generator=regdrop_fast.Generator(seed=0, offset=0))
    >>> isinstance(m, torch.nn.Dropout1d), m(torch.ones(2, 3, 4)).shape
    (True, torch.Size([2, 3, 4]))
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, store: str = "bits",
                 generator: Generator | None = None) -> None:
        super().__init__(p, inplace)
        self._set_extras(p, store, generator)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dropout1d(input, self.p, self.training, self.inplace, store=self.store, generator=self.generator)

    def extra_repr(self) -> str:
        return self._extras_repr(super().extra_repr())


class Dropout2d(_VariantExtras, torch.nn.Dropout2d):
    """Drop-in ``torch.nn.Dropout2d``: whole feature maps of (N, C, H, W) or (C, H, W) input zeroed, one mask
    bit per channel; torch's warnings for other ranks, and its historical channel-wise 1D behaviour (with its
    warning) for 3-D input (:func:`dropout2d`). An instance of torch.nn.Dropout2d.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability of a channel, ``0 <= p <= 1``.
    inplace : bool, default False
        Write the result into the input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps: one bit per channel, or only the seed (torch's Dropout2d keeps a mask of the
        input's full size).
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from; None draws every call's seed from torch's RNG.

    Attributes
    ----------
    p : float
        The drop probability, as given.
    inplace : bool
        As given.
    store : str
        As given: "bits" or "seed".
    generator : regdrop_fast.Generator or None
        As given.
    training : bool
        Train mode (``train()`` / ``eval()``); in eval mode forward returns its input.

    Raises
    ------
    TypeError
        p is not a real number, store is not a str, generator is not a regdrop_fast.Generator.
    ValueError
        p outside [0, 1] (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.Dropout2d(0.5, generator=rf.Generator(3))(torch.ones(1, 4, 2, 2))
    >>> [int(y[0, c].count_nonzero()) for c in range(4)]  # each map all kept (x2) or all zero
    [4, 0, 4, 4]
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, store: str = "bits",
                 generator: Generator | None = None) -> None:
        super().__init__(p, inplace)
        self._set_extras(p, store, generator)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dropout2d(input, self.p, self.training, self.inplace, store=self.store, generator=self.generator)

    def extra_repr(self) -> str:
        return self._extras_repr(super().extra_repr())


class Dropout3d(_VariantExtras, torch.nn.Dropout3d):
    """Drop-in ``torch.nn.Dropout3d``: whole volumes of (N, C, D, H, W) or (C, D, H, W) input zeroed, one mask
    bit per channel; torch's warnings for other ranks (:func:`dropout3d`). An instance of torch.nn.Dropout3d.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability of a channel, ``0 <= p <= 1``.
    inplace : bool, default False
        Write the result into the input.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from; None draws every call's seed from torch's RNG.

    Attributes
    ----------
    p : float
        The drop probability, as given.
    inplace : bool
        As given.
    store : str
        As given: "bits" or "seed".
    generator : regdrop_fast.Generator or None
        As given.
    training : bool
        Train mode (``train()`` / ``eval()``); in eval mode forward returns its input.

    Raises
    ------
    TypeError
        p is not a real number, store is not a str, generator is not a regdrop_fast.Generator.
    ValueError
        p outside [0, 1] (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> rft.Dropout3d(0.25, store="seed")
    Dropout3d(p=0.25, inplace=False, store='seed')
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, store: str = "bits",
                 generator: Generator | None = None) -> None:
        super().__init__(p, inplace)
        self._set_extras(p, store, generator)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return dropout3d(input, self.p, self.training, self.inplace, store=self.store, generator=self.generator)

    def extra_repr(self) -> str:
        return self._extras_repr(super().extra_repr())


class AlphaDropout(_VariantExtras, torch.nn.AlphaDropout):
    """Drop-in ``torch.nn.AlphaDropout`` (SELU networks): dropped units take SELU's saturation value, then the
    affine correction keeps mean 0 and variance 1 (:func:`alpha_dropout`). As torch's, forward ignores
    ``inplace`` (torch's AlphaDropout.forward does not pass it on). An instance of torch.nn.AlphaDropout.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability, ``0 <= p <= 1``.
    inplace : bool, default False
        Kept for torch's signature (unused by forward, as in torch).
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from; None draws every call's seed from torch's RNG.

    Attributes
    ----------
    p : float
        The drop probability, as given.
    inplace : bool
        As given.
    store : str
        As given: "bits" or "seed".
    generator : regdrop_fast.Generator or None
        As given.
    training : bool
        Train mode (``train()`` / ``eval()``); in eval mode forward returns its input.

    Raises
    ------
    TypeError
        p is not a real number, store is not a str, generator is not a regdrop_fast.Generator.
    ValueError
        p outside [0, 1] (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> y = rft.AlphaDropout(0.2, generator=rf.Generator(5))(torch.randn(5000, generator=torch.Generator().manual_seed(0)))
    >>> abs(y.mean().item()) < 0.1, abs(y.std().item() - 1) < 0.1
    (True, True)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, store: str = "bits",
                 generator: Generator | None = None) -> None:
        super().__init__(p, inplace)
        self._set_extras(p, store, generator)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return alpha_dropout(input, self.p, self.training, store=self.store, generator=self.generator)

    def extra_repr(self) -> str:
        return self._extras_repr(super().extra_repr())


class FeatureAlphaDropout(_VariantExtras, torch.nn.FeatureAlphaDropout):
    """Drop-in ``torch.nn.FeatureAlphaDropout``: alpha dropout of whole channels (axes 2 and after shared, one
    mask bit per (sample, channel); :func:`feature_alpha_dropout`). As torch's, forward ignores ``inplace``.
    An instance of torch.nn.FeatureAlphaDropout.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability of a channel, ``0 <= p <= 1``.
    inplace : bool, default False
        Kept for torch's signature (unused by forward, as in torch).
    store : {"bits", "seed"}, default "bits"
        What the backward keeps.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from; None draws every call's seed from torch's RNG.

    Attributes
    ----------
    p : float
        The drop probability, as given.
    inplace : bool
        As given.
    store : str
        As given: "bits" or "seed".
    generator : regdrop_fast.Generator or None
        As given.
    training : bool
        Train mode (``train()`` / ``eval()``); in eval mode forward returns its input.

    Raises
    ------
    TypeError
        p is not a real number, store is not a str, generator is not a regdrop_fast.Generator.
    ValueError
        p outside [0, 1] (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> rft.FeatureAlphaDropout(0.1)
    FeatureAlphaDropout(p=0.1, inplace=False)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, store: str = "bits",
                 generator: Generator | None = None) -> None:
        super().__init__(p, inplace)
        self._set_extras(p, store, generator)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return feature_alpha_dropout(input, self.p, self.training, store=self.store, generator=self.generator)

    def extra_repr(self) -> str:
        return self._extras_repr(super().extra_repr())


class DropPath(_VariantExtras, torch.nn.Module):
    """timm's ``DropPath`` (stochastic depth per sample; torchvision's ``StochasticDepth(p, "row")``): in
    train mode :func:`drop_path` with ``drop_prob`` and ``scale_by_keep``, the identity in eval mode.

    Parameters
    ----------
    drop_prob : float, default 0.0
        Drop probability of a sample, ``0 <= drop_prob <= 1``.
    scale_by_keep : bool, default True
        Scale kept samples by ``1 / (1 - drop_prob)``.
    store : {"bits", "seed"}, default "bits"
        What the backward keeps: one bit per sample, or only the seed.
    generator : regdrop_fast.Generator, optional
        Where to draw the masks from (its offset advances by the number of samples); None draws every call's
        seed from torch's RNG.

    Attributes
    ----------
    drop_prob : float
        The drop probability, as given.
    scale_by_keep : bool
        As given.
    store : str
        As given: "bits" or "seed".
    generator : regdrop_fast.Generator or None
        As given.
    training : bool
        Train mode (``train()`` / ``eval()``); in eval mode forward returns its input.

    Raises
    ------
    TypeError
        drop_prob is not a real number, scale_by_keep is not a bool, store is not a str, generator is not a
        regdrop_fast.Generator.
    ValueError
        drop_prob outside [0, 1] (torch's message).

    Examples
    --------
    >>> import torch
    >>> import regdrop_fast.torch as rft
    >>> m = rft.DropPath(0.5, generator=rf.Generator(42))
    >>> m
    DropPath(drop_prob=0.500, generator=regdrop_fast.Generator(seed=42, offset=0))
    >>> m(torch.ones(4, 2))
    tensor([[2., 2.],
            [0., 0.],
            [0., 0.],
            [0., 0.]])
    >>> x = torch.ones(4, 2)
    >>> m.eval()(x) is x
    True
    """

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True, *, store: str = "bits",
                 generator: Generator | None = None) -> None:
        super().__init__()
        self.drop_prob = _dropout_probability(drop_prob)
        self.scale_by_keep = _args.flag(scale_by_keep, "scale_by_keep")
        self._set_extras(drop_prob, store, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep, store=self.store,
                         generator=self.generator)

    def extra_repr(self) -> str:
        extra = f"drop_prob={round(self.drop_prob, 3):0.3f}"  # timm's repr
        if not self.scale_by_keep:
            extra += ", scale_by_keep=False"
        return self._extras_repr(extra)


# Forward-mode AD and vmap of the penalty helpers
#
# vmap: every penalty custom op has a batching rule that runs it once per sample on that sample's slices
# (views: the host kernels take any strided layout), so a batched parameter (torch.func.stack_module_state,
# per-sample gradients through `penalty`) gets per-sample values. A tensor that is not batched is one tensor
# for the whole batch: an in-place op writes it once, and its value counts in every sample.
#
# Forward-mode AD: the in-place helpers run under torch.no_grad(), which does not stop forward-mode AD, and a
# custom op has no forward formula, so a dual parameter would keep its tangent unchanged (a wrong answer, no
# error). When a tangent can reach the tensors (an open forward_ad dual level with a dual tensor, or any
# torch.func transform) a helper runs out of place through _InplaceHelperFn, whose jvp is the helper's
# derivative, and copies the result into the tensor: copy_ carries the tangent, as for torch's own in-place
# ops. Derivatives, per element or per slice (n = the slice's L2 norm):
#   decay_: (1 - factor) dw;  prox_l1_: dw where the result is nonzero (softshrink's, 0 at |w| = threshold);
#   non_neg_: dw where w >= 0 (clamp_min's);  norm_constraint_ / unit_norm_ / max_norm_: a rescaled slice is
#   w s(n) with s = rate b / n + 1 - rate (b the bound it was clipped to), so dw s - rate b <w, dw> w / n^3;
#   a slice left alone passes dw;  add_penalty_grad_: the grad's tangent gains l2 dw (with group_l1, also
#   group_l1 (dw_g / n - w_g <w_g, dw_g> / n^3) per group, 0 on an all-zero group), the value's tangent is
#   sum((l1 sign(w) + l2 w + group_l1 w_g / n) dw).  The counts the helpers return have no tangent.


def _tangent_may_reach(tensors: _Sequence[torch.Tensor]) -> bool:
    """Whether forward-mode AD can see these tensors: a torch.func transform is active (its tangents are
    not visible from here), or a forward_ad dual level is open and one of them is dual."""
    if torch._C._are_functorch_transforms_active():
        return True
    if _forward_ad._current_level < 0:  # no dual level open: nothing is dual
        return False
    return any(_forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def _rescaled_tangent(w: torch.Tensor, dw: torch.Tensor, lo: float, hi: float, rate: float,
                      dim: int) -> torch.Tensor:
    """The tangent of norm_constraint_'s map at w (see the section comment), slices along ``dim``; computed in
    float32 at least (float64 for float64 w), returned in w's dtype."""
    wide = torch.float64 if w.dtype == torch.float64 else torch.float32
    a, da = w.to(wide), dw.to(wide)
    if a.dim() == 1:  # each slice is one element, as in the op
        a, da = a.unsqueeze(1), da.unsqueeze(1)
    d = dim % a.dim()
    axes = [k for k in range(a.dim()) if k != d]
    n = torch.linalg.vector_norm(a, dim=axes, keepdim=True)
    bound = torch.where(n > hi, torch.full_like(n, hi), torch.full_like(n, lo))
    moved = (n > 0) & torch.isfinite(n) & ((n > hi) | (n < lo)) & (rate > 0)
    safe = torch.where(moved, n, torch.ones_like(n))
    s = rate * bound / safe + (1.0 - rate)
    inner = (a * da).sum(dim=axes, keepdim=True)
    out = torch.where(moved, da * s - (rate * bound * inner / safe**3) * a, da)
    return out.reshape(dw.shape).to(w.dtype)


@_signature_kept
class _InplaceHelperFn(torch.autograd.Function):
    """One in-place penalty helper applied out of place (the tensors are copied, the custom op runs on the
    copies), with its jvp. Inputs: the helper's name, its non-tensor arguments, the count of tensors that
    are read only (add_penalty_grad_'s params), then the tensors; outputs: the helper's 0-d result, then one
    new tensor per written tensor."""

    generate_vmap_rule = True

    @staticmethod
    def forward(name: str, args: tuple[_Any, ...], n_read: int, *tensors: torch.Tensor) -> _Any:
        read, written = list(tensors[:n_read]), [t.clone() for t in tensors[n_read:]]
        if name == "add_penalty_grad_":
            result = _add_penalty_grad_(read, written, *args)
        elif name == "prox_l1_":
            result = _prox_l1_(written, *args)
        elif name == "decay_":
            _decay_(written, *args)
            result = written[0].new_zeros((), dtype=torch.int64)  # decay_ returns nothing
        elif name == "non_neg_":
            result = _non_neg_(written)
        elif name == "norm_constraint_":
            result = _norm_constraint_(written, *args)
        else:  # max_norm_
            result = _max_norm_(written[0], *args)
        return (result, *written)

    @staticmethod
    def setup_context(ctx: _Any, inputs: tuple[_Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        name, args, n_read, *tensors = inputs
        ctx.save_for_forward(*tensors, *output[1:])
        ctx.name, ctx.args, ctx.n_read, ctx.n = name, args, n_read, len(tensors)
        if name != "add_penalty_grad_":
            ctx.mark_non_differentiable(output[0])

    @staticmethod
    def backward(ctx: _Any, *grads: _Any) -> _Any:
        raise RuntimeError(f"regdrop_fast.torch.{ctx.name} has no reverse-mode derivative: it runs under "
                           "torch.no_grad()")

    @staticmethod
    def jvp(ctx: _Any, _name: _Any, _args: _Any, _n_read: _Any, *tangents: torch.Tensor | None) -> _Any:
        saved = ctx.saved_tensors
        inputs, results, name, args = saved[:ctx.n], saved[ctx.n:], ctx.name, ctx.args
        if name == "add_penalty_grad_":
            k = ctx.n_read
            l1, l2, group, axis = args
            value = None
            new = []
            for i, (w, dw, dg) in enumerate(zip(inputs[:k], tangents[:k], tangents[k:])):
                cg = _group_coefficient(group, i)
                term = None if dw is None else _penalty_slope_tangent(w, dw, l2[i], cg, axis).to(w.dtype)
                new.append(dg if term is None else (term if dg is None else dg + term))
                if dw is not None:
                    part = (_penalty_slope(w, l1[i], l2[i], cg, axis) * dw.double()).sum()
                    value = part if value is None else value + part
            dtype = torch.float64 if any(w.dtype == torch.float64 for w in inputs[:k]) else torch.float32
            return (None if value is None else value.to(dtype), *new)
        out: list[torch.Tensor | None] = []
        for i, (w, y, dw) in enumerate(zip(inputs, results, tangents)):
            if dw is None:
                out.append(None)
            elif name == "decay_":
                out.append(dw * (1.0 - args[0][i]))
            elif name == "prox_l1_":
                out.append(dw * (y != 0))
            elif name == "non_neg_":
                out.append(dw * (w >= 0))
            elif name == "norm_constraint_":
                lo, hi, rate, dim = args
                out.append(_rescaled_tangent(w, dw, lo, hi, rate, dim))
            else:  # max_norm_
                max_value, dim = args
                out.append(_rescaled_tangent(w, dw, 0.0, max_value, 1.0, dim))
        return (None, *out)


def _helper_with_tangents(name: str, args: tuple[_Any, ...], written: list[torch.Tensor],
                          read: _Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """Run an in-place helper so that forward-mode AD sees it: out of place through _InplaceHelperFn, then
    each result copied into its tensor (the copy carries the tangent)."""
    result, *new = _InplaceHelperFn.apply(name, args, len(read), *read, *written)
    for t, y in zip(written, new):
        t.copy_(y)
    return result


def _per_sample(info: _Any, dims: _Sequence[int | None], tensors: _Sequence[torch.Tensor],
                run: _Any) -> torch.Tensor | None:
    """The batching rule of a list op that writes its tensors: run(indices, tensors, b) once over the
    unbatched tensors (b None: written once for the whole batch) and once per sample b over the batched
    tensors' slices; the 0-d results per sample (the unbatched one added to each), or None for an op without
    a result."""
    fixed = [i for i, d in enumerate(dims) if d is None]
    moving = [(i, d) for i, d in enumerate(dims) if d is not None]
    base = run(fixed, [tensors[i] for i in fixed], None) if fixed else None
    per: list[_Any] = [base] * info.batch_size
    if moving:
        idx = [i for i, _ in moving]
        per = [run(idx, [tensors[i].select(d, b) for i, d in moving], b) for b in range(info.batch_size)]
        if base is not None:
            per = [r + base for r in per]
    return None if per[0] is None else torch.stack(per)


def _pick(values: _Sequence[float], indices: _Sequence[int]) -> list[float]:
    return [values[i] for i in indices]


def _prox_l1_vmap(info: _Any, in_dims: _Any, params: list[torch.Tensor], threshold: list[float]) -> _Any:
    out = _per_sample(info, in_dims[0], params, lambda idx, ts, _b: _prox_l1_(ts, _pick(threshold, idx)))
    return out, 0


def _decay_vmap(info: _Any, in_dims: _Any, params: list[torch.Tensor], factor: list[float]) -> _Any:
    _per_sample(info, in_dims[0], params, lambda idx, ts, _b: _decay_(ts, _pick(factor, idx)))
    return None, None


def _non_neg_vmap(info: _Any, in_dims: _Any, params: list[torch.Tensor]) -> _Any:
    return _per_sample(info, in_dims[0], params, lambda idx, ts, _b: _non_neg_(ts)), 0


def _norm_constraint_vmap(info: _Any, in_dims: _Any, params: list[torch.Tensor], min_value: float,
                          max_value: float, rate: float, dim: int) -> _Any:
    out = _per_sample(info, in_dims[0], params,
                      lambda idx, ts, _b: _norm_constraint_(ts, min_value, max_value, rate, dim))
    return out, 0


def _max_norm_vmap(info: _Any, in_dims: _Any, w: torch.Tensor, max_value: float, dim: int) -> _Any:
    return _per_sample(info, [in_dims[0]], [w], lambda idx, ts, _b: _max_norm_(ts[0], max_value, dim)), 0


def _add_penalty_grad_vmap(info: _Any, in_dims: _Any, params: list[torch.Tensor], grads: list[torch.Tensor],
                           l1: list[float], l2: list[float], group: list[float], axis: list[int]) -> _Any:
    w_dims, g_dims = in_dims[0], in_dims[1]
    for i, (dw, dg) in enumerate(zip(w_dims, g_dims)):
        if dw is not None and dg is None:
            raise ValueError(f"add_penalty_grad_ under vmap: params[{i}] is batched but its grad is not, so "
                             "every sample would write the same grad")

    def run(idx: list[int], gs: list[torch.Tensor], b: int | None) -> torch.Tensor:
        # b None: the unbatched grads, whose params are unbatched too (checked above)
        ws = [params[i] if w_dims[i] is None or b is None else params[i].select(w_dims[i], b) for i in idx]
        return _add_penalty_grad_(ws, gs, _pick(l1, idx), _pick(l2, idx), _pick(group, idx) if group else [], axis)

    return _per_sample(info, g_dims, grads, run), 0


def _sample_list(tensors: _Sequence[torch.Tensor], dims: _Sequence[int | None], b: int) -> list[torch.Tensor]:
    return [t if d is None else t.select(d, b) for t, d in zip(tensors, dims)]


def _penalty_vmap(info: _Any, in_dims: _Any, params: list[torch.Tensor], l1: list[float], l2: list[float],
                  group: list[float], axis: list[int]) -> _Any:
    per = [_penalty(_sample_list(params, in_dims[0], b), l1, l2, group, axis) for b in range(info.batch_size)]
    return torch.stack(per), 0


def _penalty_backward_vmap(info: _Any, in_dims: _Any, grad: torch.Tensor, params: list[torch.Tensor],
                           l1: list[float], l2: list[float], group: list[float], axis: list[int]) -> _Any:
    per = [_penalty_backward(grad if in_dims[0] is None else grad.select(in_dims[0], b),
                             _sample_list(params, in_dims[1], b), l1, l2, group, axis)
           for b in range(info.batch_size)]
    return [torch.stack([sample[i] for sample in per]) for i in range(len(params))], [0] * len(params)


_prox_l1_.register_vmap(_prox_l1_vmap)
_decay_.register_vmap(_decay_vmap)
_non_neg_.register_vmap(_non_neg_vmap)
_norm_constraint_.register_vmap(_norm_constraint_vmap)
_max_norm_.register_vmap(_max_norm_vmap)
_add_penalty_grad_.register_vmap(_add_penalty_grad_vmap)
_penalty.register_vmap(_penalty_vmap)
_penalty_backward.register_vmap(_penalty_backward_vmap)
