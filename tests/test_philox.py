"""Philox4x32-R: Random123 known-answer vectors, broadcasting and argument checks, native and reference.

Also pins the dropout stream layout of docs/rng.md directly on the raw generator, independently of the
reference's dropout code.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from conftest import ALL_SIMD_LEVELS, U64_MAX, assert_same_bits, assert_unchanged, available_simd_levels, snapshot

import regdrop_fast as rdf
from regdrop_fast import reference

KAT_FILE = pathlib.Path(__file__).parent / "data" / "philox_kat.txt"

IMPLS = {"native": rdf.random.philox4x32, "reference": reference.philox4x32}
impl_param = pytest.mark.parametrize("philox", list(IMPLS.values()), ids=list(IMPLS))


def load_kat() -> list[tuple[int, list[int], list[int], list[int]]]:
    """(rounds, counter words, key words, expected words) of every philox4x32 row of the KAT file."""
    rows = []
    for line in KAT_FILE.read_text().splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        assert fields[0] == "philox4x32", f"unexpected generator in {KAT_FILE.name}: {line!r}"
        words = [int(w, 16) for w in fields[2:]]
        assert len(words) == 10, f"malformed KAT row: {line!r}"
        rows.append((int(fields[1]), words[0:4], words[4:6], words[6:10]))
    return rows


KAT = load_kat()


def test_kat_file_is_complete():
    # 3 rows per round count from kat_vectors plus 52 per round count from old_kat_vectors.
    assert len(KAT) == 110
    assert sorted({r for r, *_ in KAT}) == [7, 10]
    assert sum(r == 10 for r, *_ in KAT) == 55


@impl_param
@pytest.mark.parametrize("rounds", [7, 10])
def test_known_answers_one_at_a_time(philox, rounds):
    rows = [row for row in KAT if row[0] == rounds]
    assert rows
    for _, ctr, key, expected in rows:
        got = philox(np.array(ctr, np.uint32), np.array(key, np.uint32), rounds=rounds)
        assert got.dtype == np.uint32 and got.shape == (4,)
        assert got.tolist() == expected, f"counter {ctr} key {key} rounds {rounds}"


@impl_param
@pytest.mark.parametrize("rounds", [7, 10])
def test_known_answers_batched(philox, rounds):
    """All rows in one call: counters (n, 4) with keys (n, 2)."""
    rows = [row for row in KAT if row[0] == rounds]
    ctr = np.array([r[1] for r in rows], np.uint32)
    key = np.array([r[2] for r in rows], np.uint32)
    expected = np.array([r[3] for r in rows], np.uint32)
    assert_same_bits(philox(ctr, key, rounds=rounds), expected, f"rounds={rounds}")


def kat_arrays(rounds):
    """The KAT rows of one round count as (counters (n, 4), keys (n, 2), expected (n, 4)) uint32 arrays."""
    rows = [row for row in KAT if row[0] == rounds]
    return tuple(np.array([r[i] for r in rows], np.uint32) for i in (1, 2, 3))


@pytest.mark.parametrize("level", ALL_SIMD_LEVELS)
@pytest.mark.parametrize("rounds", [7, 10])
def test_known_answers_simd_lanes(level, rounds):
    """The SIMD lane code of each ISA (the Philox of the CPU dropout loops), on every KAT row."""
    if level not in available_simd_levels():
        pytest.skip(f"SIMD level {level} not supported by this CPU or build")
    ctr, key, expected = kat_arrays(rounds)
    for n in (len(ctr), 1, 3):  # lanes filled, and tails shorter than one vector of blocks
        out = np.zeros((n, 4), np.uint32)
        rdf._core.philox4x32_simd(ctr[:n], key[:n], out, n, rounds, ALL_SIMD_LEVELS.index(level))
        assert_same_bits(out, expected[:n], f"{level} rounds={rounds} n={n}")


def test_simd_lanes_all_round_counts_and_unsupported_isa(rng):
    ctr = rng.integers(0, 1 << 32, size=(37, 4), dtype=np.uint32)
    key = rng.integers(0, 1 << 32, size=(37, 2), dtype=np.uint32)
    for level in available_simd_levels():
        for rounds in range(1, 17):
            out = np.zeros_like(ctr)
            rdf._core.philox4x32_simd(ctr, key, out, 37, rounds, ALL_SIMD_LEVELS.index(level))
            assert_same_bits(out, reference.philox4x32(ctr, key, rounds), f"{level} rounds={rounds}")
    for isa in (-1, len(available_simd_levels()), 3):
        with pytest.raises(ValueError, match="not in this build or not supported"):
            rdf._core.philox4x32_simd(ctr, key, np.zeros_like(ctr), 37, 10, isa)


def device_philox(backend, ctr: np.ndarray, key: np.ndarray, rounds: int) -> np.ndarray:
    """Philox blocks from the device generator (csrc/cuda/philox_kernels.cu) of a CUDA backend: under the
    CPU emulation, or on a GPU. The words travel as int32 (torch has no uint32 tensors), same bits."""
    c, k = backend.asarray(ctr.view(np.int32)), backend.asarray(key.view(np.int32))
    out = backend.asarray(np.zeros(ctr.shape, np.int32))
    wrap = rdf._arrays.wrap
    o = wrap(out)
    rdf._native.cuda.philox4x32(wrap(c).ptr, wrap(k).ptr, o.ptr, len(ctr), rounds, o.device, o.stream())
    return backend.to_numpy(out).view(np.uint32)


@pytest.mark.parametrize("rounds", [7, 10])
def test_known_answers_cuda_generator(device_backend, rounds):
    ctr, key, expected = kat_arrays(rounds)
    assert_same_bits(device_philox(device_backend, ctr, key, rounds), expected,
                     f"{device_backend.name} rounds={rounds}")


def test_cuda_generator_all_round_counts(device_backend, rng):
    ctr = rng.integers(0, 1 << 32, size=(300, 4), dtype=np.uint32)
    key = rng.integers(0, 1 << 32, size=(300, 2), dtype=np.uint32)
    for rounds in range(1, 17):
        assert_same_bits(device_philox(device_backend, ctr, key, rounds), reference.philox4x32(ctr, key, rounds),
                         f"{device_backend.name} rounds={rounds}")


@impl_param
def test_default_rounds_is_ten(philox):
    _, ctr, key, expected = next(row for row in KAT if row[0] == 10)
    assert philox(np.array(ctr, np.uint32), np.array(key, np.uint32)).tolist() == expected


@impl_param
def test_accepts_python_ints_and_other_integer_dtypes(philox):
    _, ctr, key, expected = KAT[4]  # the all-ones (0xffffffff) row, rounds 10
    assert KAT[4][0] == 10
    assert philox(ctr, key).tolist() == expected  # lists of Python ints
    assert philox(np.array(ctr, np.uint64), np.array(key, np.int64)).tolist() == expected


@impl_param
def test_inputs_not_modified(philox):
    ctr = np.arange(12, dtype=np.uint32).reshape(3, 4)
    key = np.array([7, 9], np.uint32)
    before = snapshot(ctr, key)
    philox(ctr, key)
    assert_unchanged([ctr, key], before)


def test_native_matches_reference_random_inputs(rng):
    ctr = rng.integers(0, 1 << 32, size=(257, 4), dtype=np.uint32)
    key = rng.integers(0, 1 << 32, size=(257, 2), dtype=np.uint32)
    for rounds in range(1, 17):
        assert_same_bits(rdf.random.philox4x32(ctr, key, rounds), reference.philox4x32(ctr, key, rounds),
                         f"rounds={rounds}")


@impl_param
@pytest.mark.parametrize(
    "ctr_shape, key_shape, out_shape",
    [
        ((4,), (2,), (4,)),
        ((5, 4), (2,), (5, 4)),
        ((4,), (3, 2), (3, 4)),
        ((2, 1, 4), (3, 2), (2, 3, 4)),
        ((1, 3, 4), (2, 1, 2), (2, 3, 4)),
        ((0, 4), (2,), (0, 4)),
        ((0, 4), (1, 2), (0, 4)),
    ],
)
def test_broadcasting_leading_axes(philox, rng, ctr_shape, key_shape, out_shape):
    ctr = rng.integers(0, 1 << 32, size=ctr_shape, dtype=np.uint32)
    key = rng.integers(0, 1 << 32, size=key_shape, dtype=np.uint32)
    out = philox(ctr, key)
    assert out.shape == out_shape and out.dtype == np.uint32
    c = np.broadcast_to(ctr, out_shape)
    k = np.broadcast_to(key, out_shape[:-1] + (2,))
    for idx in np.ndindex(out_shape[:-1]):
        assert out[idx].tolist() == philox(c[idx], k[idx]).tolist(), f"leading index {idx}"


@impl_param
def test_non_contiguous_inputs(philox, rng):
    ctr = rng.integers(0, 1 << 32, size=(6, 8), dtype=np.uint32)
    key = rng.integers(0, 1 << 32, size=(4, 6), dtype=np.uint32)
    c_view, k_view = ctr[:, ::2], key.T[:, 1::2]  # (6, 4) and (6, 2), both strided
    assert not c_view.flags.c_contiguous and not k_view.flags.c_contiguous
    expected = philox(np.ascontiguousarray(c_view), np.ascontiguousarray(k_view))
    assert_same_bits(philox(c_view, k_view), expected)


@impl_param
@pytest.mark.parametrize(
    "ctr_shape, key_shape",
    [((3,), (2,)), ((5,), (2,)), ((4,), (3,)), ((4,), (1,)), ((4, 3), (2,)), ((2, 4), (2, 4)),
     ((), (2,)), ((4,), ())],
)
def test_wrong_trailing_shape(philox, ctr_shape, key_shape):
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., [42]\)"):
        philox(np.zeros(ctr_shape, np.uint32), np.zeros(key_shape, np.uint32))


@impl_param
def test_leading_axes_that_do_not_broadcast(philox):
    with pytest.raises(ValueError, match="do not broadcast"):
        philox(np.zeros((3, 4), np.uint32), np.zeros((2, 2), np.uint32))


@impl_param
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_, np.complex64, "U3"])
def test_bad_dtype(philox, dtype):
    good_key = np.zeros(2, np.uint32)
    with pytest.raises(TypeError, match="expected an unsigned 32-bit integer array"):
        philox(np.zeros(4, dtype), good_key)
    with pytest.raises(TypeError, match="key"):
        philox(np.zeros(4, np.uint32), np.zeros(2, dtype))


@impl_param
def test_object_array_of_non_integers(philox):
    with pytest.raises(TypeError, match="counter"):
        philox(np.array([1, 2, 3, 4.5], dtype=object), [0, 0])


@impl_param
@pytest.mark.parametrize(
    "counter, key",
    [
        ([0, 0, 0, -1], [0, 0]),
        ([0, 0, 0, 1 << 32], [0, 0]),
        ([0, 0, 0, 0], [-1, 0]),
        ([0, 0, 0, 0], [0, 1 << 32]),
        ([0, 0, 0, 1 << 64], [0, 0]),  # too large for int64: an object array
        (np.array([0, 0, 0, -5], np.int8), [0, 0]),
    ],
)
def test_out_of_range_words(philox, counter, key):
    with pytest.raises(ValueError, match=r"values must lie in \[0, 2\*\*32\)"):
        philox(counter, key)


@impl_param
def test_largest_words_accepted(philox):
    out = philox(np.array([U64_MAX >> 32] * 4, np.int64), [0xFFFFFFFF, 0xFFFFFFFF])
    assert out.tolist() == KAT[4][3]


@impl_param
@pytest.mark.parametrize("rounds", [0, -1, 17, 100])
def test_bad_rounds_value(philox, rounds):
    with pytest.raises(ValueError, match="rounds: expected 1..16"):
        philox(np.zeros(4, np.uint32), np.zeros(2, np.uint32), rounds=rounds)


@impl_param
@pytest.mark.parametrize("rounds", [10.0, "10", True, None])
def test_bad_rounds_type(philox, rounds):
    with pytest.raises(TypeError, match="rounds: expected an int"):
        philox(np.zeros(4, np.uint32), np.zeros(2, np.uint32), rounds=rounds)


@pytest.mark.parametrize("rounds", [1, 16, np.int64(10)])
def test_round_count_range_accepted(rounds):
    ctr, key = np.arange(4, dtype=np.uint32), np.array([1, 2], np.uint32)
    assert_same_bits(rdf.random.philox4x32(ctr, key, rounds), reference.philox4x32(ctr, key, rounds))


def test_rounds_change_the_output():
    ctr, key = np.arange(4, dtype=np.uint32), np.array([1, 2], np.uint32)
    outs = {tuple(rdf.random.philox4x32(ctr, key, r).tolist()) for r in range(1, 17)}
    assert len(outs) == 16


# ----------------------------------------------------------------------------------------------------------
# The dropout stream, rebuilt from the raw generator (docs/rng.md): element i of a call at offset o has
# global index g = (o + i) mod 2^64 and uses word (g mod 4) of the block with counter
# (lo32(g // 4), hi32(g // 4), 0, 0) and key (lo32(seed), hi32(seed)); kept iff word >= round(p * 2^32).


def stream_keep(n: int, p: float, seed: int, offset: int) -> np.ndarray:
    g = [(offset + i) % (1 << 64) for i in range(n)]
    ctr = np.array([[(x >> 2) & 0xFFFFFFFF, x >> 34, 0, 0] for x in g], np.uint32).reshape(n, 4)
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], np.uint32)
    words = rdf.random.philox4x32(ctr, key)[np.arange(n), [x & 3 for x in g]]
    return words >= np.uint32(round(p * 2**32))


@pytest.mark.parametrize(
    "seed, offset",
    [(0, 0), (1, 3), (0xDEADBEEF12345678, 1 << 32), (U64_MAX, (1 << 34) - 5), (12345, U64_MAX - 40),
     (2**32 + 1, 2**62 - 2)],
)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.77])
def test_dropout_stream_layout(seed, offset, p):
    n = 101
    expected = stream_keep(n, p, seed, offset)
    for impl in (rdf.dropout_mask, reference.dropout_mask):
        got = impl((n,), p, seed=seed, offset=offset).to_bool()
        assert_same_bits(got, expected, f"{impl.__module__} seed={seed} offset={offset}")
