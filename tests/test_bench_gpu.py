"""The GPU benchmark's host-side parts (bench/gpu.py), on any machine: the timing loop on the host clock,
the rows, the table and the target check. The GPU cases themselves run in bench/gpu_check.sh."""

from __future__ import annotations

import pytest

from regdrop_fast.bench import gpu
from regdrop_fast.bench.cases import Case, Impl
from regdrop_fast.bench.timing import Timing


class StepClock(gpu.WallClock):
    """A clock that only the timed functions move (each call advances it by its own fixed step)."""

    def __init__(self):
        self.now = 0.0
        self.syncs = 0

    def record(self, event):
        event[0] = self.now

    def synchronize(self):
        self.syncs += 1

    def elapsed_s(self, start, end):
        return end[0] - start[0]


def test_measure_warms_up_calibrates_and_interleaves():
    clock = StepClock()
    order = []

    def step(name, seconds):
        def fn():
            order.append(name)
            clock.now += seconds

        return fn

    t = gpu.measure({"slow": step("slow", 2e-3), "fast": step("fast", 5e-4)}, clock, repeats=4,
                    min_sample_s=4e-3, warmup=2)
    assert set(t) == {"slow", "fast"}
    assert t["slow"].median == pytest.approx(2e-3) and t["fast"].median == pytest.approx(5e-4)
    assert (t["slow"].calls, t["fast"].calls) == (2, 8)  # samples of at least 4 ms
    assert t["slow"].repeats == 4 and t["slow"].min == pytest.approx(t["slow"].q3)
    assert order[:4] == ["slow", "slow", "fast", "fast"]  # warm-up first, then one calibration call each
    assert order[4:6] == ["slow", "fast"]
    # each repeat runs both, in an order rotated from repeat to repeat
    starts = [order[6 + r * 10] for r in range(4)]
    assert starts == ["slow", "fast", "slow", "fast"]
    assert len(order) == 6 + 4 * 10
    assert clock.syncs >= 2 * 4 + 2  # the device is idle at every sample's start
    with pytest.raises(ValueError, match="repeats"):
        gpu.measure({"a": lambda: None}, clock, repeats=0, min_sample_s=1e-3)


def _case_rows(section, op, dtype, size, times, extra):
    """Rows of a synthetic case: times maps (name, framework, bytes) to seconds per call."""
    impls = [Impl(name, fw, lambda: None, nbytes) for name, fw, nbytes in times]
    timings = {name: Timing(median=s, q1=s, q3=s, min=s, calls=1, repeats=1)
               for (name, _, _), s in times.items()}
    case = Case(section, op, dtype, size, f"{section} {op}", lambda: impls, extra=extra)
    return gpu.make_rows(case, impls, timings)


def synthetic_rows():
    n = 1 << 28
    data, mask = 2 * n * 2, n // 8
    rows = _case_rows("dropout", "forward", "bfloat16", n, {
        ("copy (same bytes)", "copy", data + mask): 1.0e-3,
        ("regdrop_fast bits", "regdrop_fast", data + mask): 1.05e-3,
        ("regdrop_fast seed", "regdrop_fast", data): 0.95e-3,
        ("torch F.dropout", "torch F.dropout", data + mask): 1.5e-3,
        ("torch.native_dropout", "torch native_dropout", data + mask): 1.4e-3,
    }, {"torch_actual_bytes": data + n})
    rows += _case_rows("dropout", "backward", "bfloat16", n, {
        ("copy (same bytes)", "copy", data + mask): 1.0e-3,
        ("regdrop_fast bits", "regdrop_fast", data + mask): 1.0e-3,
        ("regdrop_fast seed", "regdrop_fast", data): 1.1e-3,
        ("torch native_dropout_backward", "torch backward", data + mask): 1.2e-3,
    }, {"torch_actual_bytes": data + n})
    rows += _case_rows("penalty", "ResNet-50 (161)", "float32", 25557032, {
        ("copy (same bytes)", "copy", 12 * 25557032): 1e-4,
        ("regdrop_fast penalty_grad l2", "regdrop_fast", 12 * 25557032): 5e-4,
        ("torch _foreach_add_ + value loop", "torch foreach+loop", 12 * 25557032): 2.5e-3,
    }, {"arrays": 161})
    return rows


def test_rows_table_and_targets():
    rows = synthetic_rows()
    fwd = {r["impl"]: r for r in rows if r["op"] == "forward"}
    assert fwd["regdrop_fast bits"]["speedup"] == pytest.approx({"torch F.dropout": 1.5 / 1.05,
                                                                  "torch native_dropout": 1.4 / 1.05})
    assert fwd["torch.native_dropout"]["actual_bytes"] == 2 * 2 * (1 << 28) + (1 << 28)
    assert "actual_bytes" not in fwd["regdrop_fast bits"]
    text = gpu.format_table(rows)
    assert "dropout forward, bfloat16, n=2^28, p=0.5" in text and "penalty_grad over ResNet-50 (161)" in text
    assert "vs torch native_dropout" in text and "vs torch backward" in text and "vs torch foreach+loop" in text
    assert "1.33x" in text  # 1.4 / 1.05 (native_dropout over regdrop_fast bits)
    targets = {(t["target"], t["dtype"]): t for t in gpu.check_targets(rows)}
    assert targets[("dropout forward, bits, x copy", "bfloat16")]["ratio"] == pytest.approx(1 / 1.05)
    assert targets[("dropout forward, bits, x copy", "bfloat16")]["met"]
    assert targets[("dropout forward, bits, vs torch.native_dropout", "bfloat16")]["met"]
    assert not targets[("dropout backward, seed, vs torch backward", "bfloat16")]["met"]  # 1.09x < 1.2x
    assert targets[("penalty_grad ResNet-50, vs torch", "float32")]["ratio"] == pytest.approx(5.0)
    assert ("dropout forward, bits, x copy", "float32") not in targets  # not measured: not reported
    summary = gpu.format_targets(list(targets.values()))
    assert summary.startswith("targets") and "NO" in summary and "yes" in summary
