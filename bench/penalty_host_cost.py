"""The host (Python) cost of one CUDA penalty_grad call over ResNet-50's 161 parameter arrays, on any machine.

    PYTHONPATH=python python bench/penalty_host_cost.py [--profile]

The arrays are tests/fake_cupy.py's stand-in CuPy arrays (host memory; their pointer, shape and flags read
from plain attributes, as cheap as CuPy's own) and the kernel module is a stub whose entry points do nothing,
so the time is regdrop_fast's Python glue alone: validation, wrapping, scratch allocation and the call into
the bindings' argument conversion (the stub takes the same arguments). Prints microseconds per call (median
of 7 samples of 200 calls); --profile adds a cProfile listing.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pathlib
import pstats
import statistics
import sys
import time
import types

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import fake_cupy  # noqa: E402

import regdrop_fast as rf  # noqa: E402
from regdrop_fast import _native  # noqa: E402
from regdrop_fast.bench.shapes import RESNET50_PARAMETERS  # noqa: E402

CHUNK_ELEMS = 1 << 14  # csrc/cuda/list_plan.h


class Array(fake_cupy.ndarray):
    """fake_cupy's array with its attributes stored, not computed per access (as CuPy's are)."""

    __module__ = "cupy"
    data = shape = strides = dtype = size = flags = __cuda_array_interface__ = None

    def __init__(self, host):
        super().__init__(host)
        self.data = types.SimpleNamespace(ptr=host.__array_interface__["data"][0])
        self.shape, self.strides, self.dtype, self.size = host.shape, host.strides, host.dtype, host.size
        self.flags = types.SimpleNamespace(c_contiguous=True)
        self.__cuda_array_interface__ = {"shape": host.shape, "data": (self.data.ptr, False), "version": 3}


def stub_kernels():
    """A kernel module with the bindings' entry points, doing nothing."""
    def penalty_grad(dtype, n, params, grads, l1, l2, slots, slot_capacity, out, device, stream):
        return None

    return types.SimpleNamespace(penalty_grad=penalty_grad, CHUNK_ELEMS=CHUNK_ELEMS, MAX_NORM_SLOTS=1024,
                                 device_count=lambda: 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    sys.modules["cupy"] = fake_cupy.fake_cupy()
    _native.cuda = stub_kernels()
    shapes = [shape for _, shape in RESNET50_PARAMETERS]
    params = [Array(np.zeros(math.prod(s), np.float32).reshape(s)) for s in shapes]
    grads = [Array(np.zeros(math.prod(s), np.float32).reshape(s)) for s in shapes]

    def call():
        return rf.penalty_grad(params, grads, l2=1e-4)

    for _ in range(20):
        call()
    samples = []
    for _ in range(7):
        t0 = time.thread_time()
        for _ in range(args.calls):
            call()
        samples.append((time.thread_time() - t0) / args.calls)
    print(f"penalty_grad over {len(params)} arrays (ResNet-50), Python glue: "
          f"{statistics.median(samples) * 1e6:.1f} us per call (median of 7 x {args.calls} calls)")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.calls):
            call()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
