"""Side-by-side timing: warm up, calibrate calls per sample, interleave implementations, take medians.

Every implementation of one case is timed in the same process on the same data. Within each repeat the
implementations run one after another, in an order rotated from repeat to repeat, so slow drifts (clock
changes, other load, the memory controller warming up) fall on all of them alike. The reported figure is
the median of the per-call times of the repeats; the quartiles and the minimum come along in the JSON.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

MAX_CALLS_PER_SAMPLE = 1 << 20
NOISY_SPREAD = 0.25  # (max - min) / median of the repeats above which a row is flagged as noisy


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one implementation: median, quartiles and minimum over the repeats."""

    median: float
    q1: float
    q3: float
    min: float
    calls: int  # calls per timed sample
    repeats: int
    max: float = math.nan  # slowest repeat (nan when built by hand without it)

    @property
    def spread(self) -> float:
        """Repeat spread: (slowest - fastest repeat) / median. Above NOISY_SPREAD the row is flagged."""
        return (self.max - self.min) / self.median if self.median > 0 else math.nan

    def as_dict(self) -> dict:
        return {**asdict(self), "spread": self.spread}


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted list (numpy's default method)."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _sample(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call over `calls` back-to-back calls."""
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) * 1e-9 / calls


def calibrate(fn: Callable[[], object], min_sample_s: float) -> int:
    """Calls per sample so that one sample lasts at least min_sample_s (1 for calls slower than that)."""
    calls = 1
    while calls < MAX_CALLS_PER_SAMPLE:
        per_call = _sample(fn, calls)
        if per_call * calls >= min_sample_s:
            break
        # Aim straight at the target from the measured rate, but never grow more than 100x per step so a
        # first call that hit a cold cache cannot produce an absurd count.
        wanted = math.ceil(min_sample_s / max(per_call, 1e-9) * 1.1)
        calls = min(max(calls * 2, min(wanted, calls * 100)), MAX_CALLS_PER_SAMPLE)
    return calls


def measure(
    impls: Mapping[str, Callable[[], object]], *, repeats: int, min_sample_s: float
) -> dict[str, Timing]:
    """Time every implementation `repeats` times, interleaved; returns name -> Timing (seconds per call).

    Each callable must do the whole operation including any device synchronisation (e.g. JAX's
    block_until_ready), and must be safe to call any number of times.
    """
    if repeats < 1:
        raise ValueError(f"repeats: expected at least 1, got {repeats}")
    names = list(impls)
    for name in names:  # warm-up: first-call costs (JIT compilation, page faults, lazy imports)
        impls[name]()
    calls = {name: calibrate(impls[name], min_sample_s) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one sample would charge one implementation for everyone's garbage
    try:
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                samples[name].append(_sample(impls[name], calls[name]))
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    result = {}
    for name in names:
        s = sorted(samples[name])
        result[name] = Timing(
            median=_quantile(s, 0.5), q1=_quantile(s, 0.25), q3=_quantile(s, 0.75), min=s[0],
            calls=calls[name], repeats=repeats, max=s[-1],
        )
    return result
