"""The portable (generic) penalty kernels built for aarch64 give the same bits as the x86 extension.

Cross-compiles csrc/cpu/penalty_loop.cpp with tests/native/penalty_generic_main.cpp for aarch64 and runs it
under qemu-user on arrays with every special value; skipped where aarch64-linux-gnu-g++ or qemu-aarch64 are
not installed (``apt-get install g++-aarch64-linux-gnu qemu-user``).

One difference is the hardware's, not the code's: a NaN created by an invalid operation (inf * 0, as when
max_norm rescales a slice holding an inf) is x86's default NaN, sign bit set, and AArch64's, sign bit
clear. So NaNs are compared by position, every other value bit for bit.
"""

import subprocess

import numpy as np
import pytest
from conftest import (
    AARCH64_CXX,
    DTYPE_CODES,
    DTYPE_IDS,
    DTYPES,
    QEMU_AARCH64,
    build_generic_aarch64,
    special_values,
)

import regdrop_fast as rf

pytestmark = pytest.mark.skipif(not (AARCH64_CXX and QEMU_AARCH64),
                                reason="needs aarch64-linux-gnu-g++ and qemu-aarch64")


@pytest.fixture(scope="module")
def generic_aarch64(tmp_path_factory):
    return build_generic_aarch64(tmp_path_factory.mktemp("aarch64"), "penalty_generic_main.cpp", "penalty_loop.cpp")


def assert_same_values(hex_line, expected):
    actual = np.frombuffer(bytes.fromhex(hex_line), dtype=expected.dtype)
    nan = np.isnan(expected.astype(np.float64)).reshape(-1)
    np.testing.assert_array_equal(np.isnan(actual.astype(np.float64)), nan)
    assert actual[~nan].tobytes() == expected.reshape(-1)[~nan].tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("rows,cols", [(1, 1), (37, 5), (129, 31)])
def test_aarch64_generic_matches_x86(generic_aarch64, rng, dtype, rows, cols):
    n = rows * cols
    w = (3.0 * rng.standard_normal(n)).astype(dtype)
    sv = special_values(dtype)[: max(0, n - 1)]
    w[1:1 + sv.size] = sv
    g = rng.standard_normal(n).astype(dtype)
    l1, l2, threshold, factor, max_value = 0.03, 0.2, 0.5, 0.01, 2.0
    run = subprocess.run(
        [QEMU_AARCH64, str(generic_aarch64), str(DTYPE_CODES[np.dtype(dtype)]), str(n), repr(l1), repr(l2),
         repr(threshold), repr(factor), repr(max_value), str(rows)],
        input=w.tobytes() + g.tobytes(), check=True, capture_output=True,
    )
    lines = run.stdout.decode().split("\n")

    value = rf.penalty_grad(w, g, l1=l1, l2=l2)
    assert_same_values(lines[0], g)
    assert lines[1] == np.float64(value).view(np.uint64).tobytes()[::-1].hex()
    zeros = rf.prox_l1(w, threshold)
    assert_same_values(lines[2], w)
    assert int(lines[3]) == zeros
    rf.decay(w, factor)
    assert_same_values(lines[4], w)
    rescaled = rf.max_norm(w.reshape(rows, cols), max_value, axis=0)
    assert_same_values(lines[5], w)
    assert int(lines[6]) == rescaled
