"""The portable (generic) kernel built for aarch64 gives the same bits as the x86 build.

Cross-compiles csrc/cpu/dropout_loop.cpp with tests/native/dropout_generic_main.cpp for aarch64 and runs it
under qemu-user; skipped where aarch64-linux-gnu-g++ or qemu-aarch64 are not installed
(``apt-get install g++-aarch64-linux-gnu qemu-user``).
"""

import subprocess

import numpy as np
import pytest
from conftest import (
    AARCH64_CXX,
    BFLOAT16,
    DTYPE_CODES,
    QEMU_AARCH64,
    build_generic_aarch64,
    keep_scale,
    keep_threshold,
)

import regdrop_fast as rf

pytestmark = pytest.mark.skipif(not (AARCH64_CXX and QEMU_AARCH64),
                                reason="needs aarch64-linux-gnu-g++ and qemu-aarch64")

DTYPES = [np.float32, np.float64, np.float16, BFLOAT16]


@pytest.fixture(scope="module")
def generic_aarch64(tmp_path_factory):
    return build_generic_aarch64(tmp_path_factory.mktemp("aarch64"), "dropout_generic_main.cpp", "dropout_loop.cpp")


def xorshift_input(n: int, dtype) -> np.ndarray:
    """The input dropout_generic_main.cpp builds: xorshift32 bytes, top byte of each value masked."""
    width = np.dtype(dtype).itemsize
    out = np.empty(n * width, np.uint8)
    state = 2463534242
    for i in range(out.size):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out[i] = state & 0xFF
        if i % width == width - 1:
            out[i] &= 0x3F
    return out.view(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, offset", [(1, 0), (77, 3), (4099, (1 << 64) - 9), (20000, 1 << 32)])
def test_aarch64_generic_matches_x86(generic_aarch64, dtype, n, offset):
    p, seed = 0.3, 987654321
    code = DTYPE_CODES[np.dtype(dtype)]
    threshold, scale = keep_threshold(p), keep_scale(p)
    run = subprocess.run(
        [QEMU_AARCH64, str(generic_aarch64), str(code), str(n), str(seed), str(offset), str(threshold), repr(scale)],
        check=True, capture_output=True, text=True,
    )
    bits_hex, y_hex = run.stdout.split("\n")[:2]
    y, mask = rf.dropout(xorshift_input(n, dtype), p, seed=seed, offset=offset)
    assert bytes.fromhex(bits_hex) == mask.bits.tobytes()
    assert bytes.fromhex(y_hex) == y.tobytes()
