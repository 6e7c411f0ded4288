"""Statistical properties of the dropout masks, each with a tolerance derived in its comment.

The masks are a pure function of (seed, offset), so every test here is deterministic: a failure is
reproducible and means the generator or its use is broken, not bad luck. Tolerances are set at 5 standard
deviations of the statistic under the null hypothesis (two-sided tail 5.7e-7 for a normal statistic), so a
correct generator passes every (seed, size, p) combination below with overwhelming probability.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import BFLOAT16, U64_MAX

import regdrop_fast as rdf

Z = 5.0  # standard deviations allowed for every normal-approximated statistic


def keep_of(n: int, p: float, seed: int, offset: int = 0) -> np.ndarray:
    return rdf.dropout_mask((n,), p, seed=seed, offset=offset).to_bool()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long bool arrays, from exact integer counts."""
    n = a.size
    na, nb, nab = int(np.count_nonzero(a)), int(np.count_nonzero(b)), int(np.count_nonzero(a & b))
    denom = math.sqrt(na * (n - na) * nb * (n - nb))
    assert denom > 0, "a constant mask has no correlation"
    return (n * nab - na * nb) / denom


# ----------------------------------------------------------------------------------------------------------
# drop fraction


@pytest.mark.parametrize("p", [0.01, 0.1, 0.3, 0.5, 0.75, 0.9, 0.99])
@pytest.mark.parametrize("n", [1000, 65537, 1_000_003])
def test_drop_fraction(p, n):
    """Dropped count ~ Binomial(n, p'): |dropped - n p| <= 5 sqrt(n p (1 - p)) + 1.

    p' = round(p * 2^32) / 2^32 differs from p by at most 2^-33, i.e. n * 2^-33 < 1 element for these n;
    the + 1 covers it.
    """
    bound = Z * math.sqrt(n * p * (1 - p)) + 1
    for seed in (0, 1, 0xC0FFEE, U64_MAX):
        for offset in (0, 3, U64_MAX - n // 2):
            dropped = n - int(np.count_nonzero(keep_of(n, p, seed, offset)))
            assert abs(dropped - n * p) <= bound, (
                f"seed={seed} offset={offset}: dropped {dropped} of {n}, expected {n * p:.1f} +- {bound:.1f}"
            )


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_fraction_per_philox_word(p):
    """Each of the 4 output words of a Philox block (element index mod 4) drops at rate p on its own.

    n / 4 = 2^20 decisions per word: |dropped - (n/4) p| <= 5 sqrt((n/4) p (1 - p)) + 1, as above.
    """
    n = 1 << 22
    keep = keep_of(n, p, seed=2718, offset=0)
    m = n // 4
    bound = Z * math.sqrt(m * p * (1 - p)) + 1
    for word in range(4):
        dropped = m - int(np.count_nonzero(keep[word::4]))
        assert abs(dropped - m * p) <= bound, f"word {word}: dropped {dropped} of {m}"


# ----------------------------------------------------------------------------------------------------------
# mean preserved (inverted dropout)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, BFLOAT16], ids=["float64", "float32", "bfloat16"])
def test_mean_preserved(p, dtype):
    """E[y | x] = x. Given x, sum(y) - sum(x) = sum x_i (scale * K_i - 1) with K_i ~ Bernoulli(1 - p), so
    Var = sum x_i^2 * scale^2 * p (1 - p) = sum x_i^2 * p / (1 - p), and

        |mean(y) - mean(x)| <= 5 sqrt(sum x_i^2 p / (1 - p)) / n + u * mean(|x| * scale)

    where the last term bounds the storage rounding of each kept value x * scale (relative error at most
    the unit roundoff u of the dtype: 2^-53, 2^-24, 2^-8). Sums are taken in float64.
    """
    n = 1_000_003
    rng = np.random.default_rng(99)
    x = (1.0 + rng.standard_normal(n)).astype(dtype)
    xs = x.astype(np.float64)
    scale = 1.0 / (1.0 - p)
    u = {np.dtype(np.float64): 2.0**-53, np.dtype(np.float32): 2.0**-24, BFLOAT16: 2.0**-8}[np.dtype(dtype)]
    bound = Z * math.sqrt(float(np.sum(xs * xs)) * p / (1 - p)) / n + u * float(np.mean(np.abs(xs))) * scale
    for seed in (0, 5, U64_MAX):
        y, _ = rdf.dropout(x, p, seed=seed)
        diff = float(np.mean(y.astype(np.float64))) - float(np.mean(xs))
        assert abs(diff) <= bound, f"seed={seed}: mean moved by {diff:.3g}, bound {bound:.3g}"


# ----------------------------------------------------------------------------------------------------------
# packed bytes uniform


# Upper 1e-6 quantile of the chi-square distribution with 255 degrees of freedom (scipy.stats.chi2.isf(1e-6,
# 255) = 377.08; Wilson-Hilferty gives 377.2).
CHI2_255_CRITICAL = 377.08


@pytest.mark.parametrize("seed", [0, 1, 0xFEEDFACE, U64_MAX])
def test_packed_bytes_uniform(seed):
    """At p = 0.5 (threshold exactly 2^31: keep iff the word's top bit is set) the 8 decisions of a mask
    byte are independent fair coins, so each of the 256 byte values has probability 1/256. With 2^20 bytes
    (4096 expected per value) Pearson's statistic is chi-square with 255 d.o.f.; reject above 377.08.
    """
    n_bytes = 1 << 20
    bits = rdf.dropout_mask((8 * n_bytes,), 0.5, seed=seed, offset=seed % 8).bits
    counts = np.bincount(bits, minlength=256).astype(np.float64)
    expected = n_bytes / 256
    chi2 = float(np.sum((counts - expected) ** 2) / expected)
    assert chi2 < CHI2_255_CRITICAL, f"chi-square {chi2:.1f} over 255 d.o.f."


# ----------------------------------------------------------------------------------------------------------
# correlations: consecutive decisions, adjacent seeds, adjacent offsets


N_CORR = 1 << 22
# Under independence the sample correlation r of N bool pairs has mean 0 and standard deviation 1/sqrt(N)
# (sqrt(N) r -> N(0, 1)), so |r| <= 5 / sqrt(N) = 0.0024 for N = 2^22.
R_BOUND = Z / math.sqrt(N_CORR)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_no_lag_correlation(p):
    """Decisions i and i + lag are uncorrelated; lags 1-3 share a Philox block, 4 is the same word of the
    next block, 16 and 64 span SIMD vectors of blocks."""
    keep = keep_of(N_CORR + 64, p, seed=31337)
    for lag in (1, 2, 3, 4, 5, 8, 16, 64):
        r = correlation(keep[:N_CORR], keep[lag:lag + N_CORR])
        assert abs(r) <= R_BOUND, f"lag {lag}: r = {r:.4g}, bound {R_BOUND:.4g}"


@pytest.mark.parametrize(
    "seed_a, seed_b",
    [(0, 1), (1, 2), (12345, 12346), (0xFFFFFFFF, 1 << 32), (U64_MAX - 1, U64_MAX), (7, 7 + (1 << 32)),
     (0, 1 << 63)],
    ids=["0-1", "1-2", "12345", "carry-into-key-hi", "top", "key-hi-word", "top-bit"],
)
def test_no_correlation_between_adjacent_seeds(seed_a, seed_b):
    r = correlation(keep_of(N_CORR, 0.5, seed_a), keep_of(N_CORR, 0.5, seed_b))
    assert abs(r) <= R_BOUND, f"seeds {seed_a}, {seed_b}: r = {r:.4g}, bound {R_BOUND:.4g}"


@pytest.mark.parametrize(
    "offset_a, offset_b",
    [(0, 1), (0, 4), (0, N_CORR), (5, 6), (0, 1 << 34), ((1 << 32) - 8, 1 << 32), (U64_MAX - 100, 0)],
    ids=["0-1", "next-block", "next-range", "5-6", "counter-hi-word", "2^32", "wrap"],
)
def test_no_correlation_between_adjacent_offsets(offset_a, offset_b):
    """Calls at nearby offsets, compared element by element (offset + 1: the same stream shifted by one;
    offset + 4: the same word of the next block; 2^34: the counter's high word)."""
    r = correlation(keep_of(N_CORR, 0.5, 2024, offset_a), keep_of(N_CORR, 0.5, 2024, offset_b))
    assert abs(r) <= R_BOUND, f"offsets {offset_a}, {offset_b}: r = {r:.4g}, bound {R_BOUND:.4g}"


def test_correlation_statistic_detects_dependence():
    """The statistic above is not vacuous: a mask against itself, its complement and a half-copied mask."""
    a = keep_of(N_CORR, 0.5, 1)
    b = keep_of(N_CORR, 0.5, 2)
    assert correlation(a, a) == pytest.approx(1.0)
    assert correlation(a, ~a) == pytest.approx(-1.0)
    mixed = np.where(np.arange(N_CORR) % 2 == 0, a, b)
    assert correlation(a, mixed) > 100 * R_BOUND
