"""DTensor inputs of regdrop_fast.torch's dropout functions: each rank runs the op on its local shard as the
block of the global tensor that the shard is (global addressing, docs/rng.md), so the shards' masks put
together are one call's mask on the full tensor, with no communication (docs/distributed.md).

Nothing here imports torch.distributed: a DTensor can only exist once torch.distributed.tensor has been
imported, so `is_dtensor` looks the class up in sys.modules (one dict lookup per call).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

_DTENSOR_MODULE = "torch.distributed.tensor"


def is_dtensor(t: object) -> bool:
    mod = sys.modules.get(_DTENSOR_MODULE)
    return mod is not None and isinstance(t, mod.DTensor)


def shard_block(t: Any, local: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(global shape, start of this rank's shard) of a DTensor with Shard / Replicate placements.

    A tensor axis sharded on mesh dimension i of size k is cut as torch.chunk cuts it (DTensor's rule):
    pieces of ceil(n / k), the last ones shorter or empty; an axis sharded on several mesh dimensions is
    cut again inside the piece, in mesh-dimension order. The shard's shape that follows must be the local
    tensor's: a DTensor built by from_local with other local shapes is not a block we can place.
    """
    mod = sys.modules[_DTENSOR_MODULE]
    shape = tuple(int(n) for n in t.shape)
    mesh, placements = t.device_mesh, t.placements
    coordinate = mesh.get_coordinate()
    if coordinate is None:
        raise ValueError("input: this rank is not in the DTensor's device mesh (it holds no shard)")
    start, size = [0] * len(shape), list(shape)
    for i, placement in enumerate(placements):
        if type(placement) is mod.Replicate:
            continue
        if type(placement) is not mod.Shard:  # Partial, and Shard's subclasses (strided shards) included
            raise ValueError(f"input: DTensor placement {placement!r} is not supported; Shard(dim) and Replicate() "
                             "are (redistribute the tensor first)")
        d = placement.dim % len(shape)
        piece = -(-size[d] // mesh.size(i))
        lo = min(coordinate[i] * piece, size[d])
        start[d] += lo
        size[d] = min(piece, size[d] - lo)
    if tuple(local.shape) != tuple(size):
        raise ValueError(f"input: the DTensor's local shard has shape {tuple(local.shape)}, but its placements "
                         f"cut a shard of shape {tuple(size)} from the global {shape} here (built by from_local "
                         "with other shapes?)")
    return shape, tuple(start)


def call(t: Any, global_shape: object, local_start: object, inplace: bool, grad_enabled: bool,
         op: Callable[[Any, bool, tuple[int, ...], tuple[int, ...]], Any]) -> Any:
    """op(local, inplace, global_shape, local_start) on t's local shard, the result as a DTensor of t's mesh,
    placements, shape and strides. op returning its input (eval mode, p = 0) returns t itself.

    In place with autograd recording runs out of place and copies into t (to_local's result is a view made
    inside an autograd Function, which autograd does not let one write); otherwise it writes t's shard."""
    if global_shape is not None or local_start is not None:
        raise ValueError("global_shape/local_start: a DTensor carries its own global shape and shard "
                         "position; pass them only with a plain (local) tensor")
    import torch

    if inplace and not (grad_enabled and t.requires_grad):
        with torch.no_grad():  # to_local is then the shard itself, not a view made by an autograd Function
            local = t.to_local()
        shape, start = shard_block(t, local)
        op(local, True, shape, start)
        return t
    local = t.to_local()
    shape, start = shard_block(t, local)
    y = op(local, False, shape, start)
    if y is local:
        return t
    out = type(t).from_local(y, t.device_mesh, t.placements, run_check=False, shape=t.shape, stride=t.stride())
    return t.copy_(out) if inplace else out
