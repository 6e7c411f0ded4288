"""The four storage dtypes of the kernels and their codes (csrc/common/dtypes.h: DType). Imports nothing of
the package, so every other module may import it."""

from __future__ import annotations

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

# dtype -> code understood by the native modules, in csrc/common/dtypes.h's order.
CODES: dict[np.dtype, int] = {
    np.dtype(np.float32): 0,
    np.dtype(np.float64): 1,
    np.dtype(np.float16): 2,
    BFLOAT16: 3,
}
SUPPORTED = "float32, float64, float16 or bfloat16"

# NumPy type numbers in code order: the native list reader compares them with each array's descriptor
# (bfloat16's number is assigned when ml_dtypes registers the type, so it is only known at run time).
TYPE_NUMS: tuple[int, ...] = tuple(dt.num for dt in sorted(CODES, key=CODES.__getitem__))


def unsupported(name: str, dtype) -> TypeError:
    """The one message for a dtype the kernels do not take."""
    return TypeError(f"{name}: dtype {dtype} is not supported; expected {SUPPORTED}")
