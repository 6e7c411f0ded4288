"""`regdrop-fast bench --device cuda`: regdrop_fast's CUDA kernels against PyTorch on one GPU.

Cases (PyTorch CUDA tensors; p = 0.5):

- dropout forward, float32 and bfloat16, 2^28 elements: ``rf.dropout(x, p, out=y)`` with ``store="bits"`` and
  ``store="seed"``, ``torch.nn.functional.dropout`` and ``torch.native_dropout`` (both write y and a 1-byte
  bool mask), and a device-to-device copy of the same bytes;
- dropout backward: ``rf.dropout_backward`` from the bits and regenerated from the seed, against
  ``torch.ops.aten.native_dropout_backward(grad, mask, scale)`` (what autograd runs for native_dropout);
- penalty_grad over the ResNet-50 parameter list (float32, shapes.py): ``rf.penalty_grad(params, grads,
  l2=...)`` (value returned as a 0-d device tensor, no host sync) against ``torch._foreach_add_(grads, params,
  alpha=l2)`` plus the value loop ``sum((p * p).sum() for p in params)``; and the host's CPU time per
  penalty_grad / prox_l1 call over that list (host_glue.py, target under 100 us).

Timing: CUDA events around a sample of back-to-back calls; every implementation is warmed up, the calls per
sample are calibrated so a sample lasts about 10 ms, the device is idle when a sample starts (so host-bound
calls are charged their host time), the implementations of a case run interleaved in an order rotated from
repeat to repeat, and the median per-call time is reported.

Bytes follow the CPU benchmark's rule: counted once per case as the bytes the operation must move (read x,
write y, write the packed mask of n/8 bytes; backward reads grad and the mask, writes dx; ``store="seed"``
rows move no mask bytes; penalty_grad reads w and g and writes g), the same for every implementation of the
case, so GB/s and "x copy" compare times. torch's own traffic (its mask is 1 byte per element) is given per
row as ``actual_bytes`` in the JSON. The copy row copies half the case's bytes (reading and writing the same
total) with ``dst.copy_(src)``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from . import environment, host_glue, report
from .cases import Case, Impl, size_label
from .shapes import RESNET50_PARAMETERS
from .timing import Timing, _quantile

P = 0.5
SEED = 20240607
L1, L2 = 1e-5, 1e-4
DEFAULT_SIZE = 1 << 28
SECTIONS = ("dropout", "penalty")
TARGETS = (  # (what, case op, dtype, implementation, "copy" or a peer's framework name, at least)
    ("dropout forward, bits, x copy", "forward", "bfloat16", "regdrop_fast bits", "copy", 0.9),
    ("dropout forward, bits, x copy", "forward", "float32", "regdrop_fast bits", "copy", 0.9),
    ("dropout forward, bits, vs torch.native_dropout", "forward", "bfloat16", "regdrop_fast bits",
     "torch native_dropout", 1.15),
    ("dropout backward, seed, vs torch backward", "backward", "bfloat16", "regdrop_fast seed", "torch backward",
     1.2),
    # float32: torch moves 9 B per element (grad, its 1-byte mask, dx), we move 8: the ceiling is 1.125x
    ("dropout backward, seed, vs torch backward", "backward", "float32", "regdrop_fast seed", "torch backward",
     1.05),
    ("penalty_grad ResNet-50, vs torch", "ResNet-50 (161)", "float32", "regdrop_fast penalty_grad l2",
     "torch foreach+loop", 1.5),
)


@dataclass
class GpuConfig:
    out: Path
    sizes: list[int] = field(default_factory=lambda: [DEFAULT_SIZE])
    dtypes: list[str] = field(default_factory=lambda: ["float32", "bfloat16"])
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    repeats: int = 11
    min_sample_s: float = 1e-2
    warmup: int = 3
    tiny: bool = False  # the first 12 ResNet-50 shapes only (for quick checks of the harness)
    progress: bool = True
    command: str = ""


# ----------------------------------------------------------------------------------------------------------
# timing


class Clock(Protocol):
    """What measure needs of a clock: events to record, a device synchronize, the seconds between events."""

    def event(self) -> Any: ...

    def record(self, event: Any) -> None: ...

    def synchronize(self) -> None: ...

    def elapsed_s(self, start: Any, end: Any) -> float: ...


class CudaClock:
    """CUDA events on torch's current stream."""

    def __init__(self, torch: ModuleType) -> None:
        self.torch = torch

    def event(self) -> Any:  # a torch.cuda.Event
        return self.torch.cuda.Event(enable_timing=True)

    def record(self, event: Any) -> None:
        event.record()

    def synchronize(self) -> None:
        self.torch.cuda.synchronize()

    def elapsed_s(self, start: Any, end: Any) -> float:
        return start.elapsed_time(end) * 1e-3


class WallClock:
    """The same interface on the host clock (for code that runs no device work, and for tests)."""

    def event(self) -> list[int]:
        return [0]

    def record(self, event: list[int]) -> None:
        event[0] = time.perf_counter_ns()

    def synchronize(self) -> None:
        pass

    def elapsed_s(self, start: list[int], end: list[int]) -> float:
        return (end[0] - start[0]) * 1e-9


def measure(impls: Mapping[str, Callable[[], object]], clock: Clock, *, repeats: int, min_sample_s: float,
            warmup: int = 3, max_calls: int = 1000) -> dict[str, Timing]:
    """Seconds per call of every implementation: warm-up, calibration, `repeats` interleaved samples."""
    if repeats < 1:
        raise ValueError(f"repeats: expected at least 1, got {repeats}")
    names = list(impls)

    def sample(name: str, calls: int) -> tuple[Any, Any]:
        clock.synchronize()  # start from an idle device: a host-bound call is charged its host time
        start, end = clock.event(), clock.event()
        clock.record(start)
        for _ in range(calls):
            impls[name]()
        clock.record(end)
        return start, end

    for name in names:
        for _ in range(warmup):
            impls[name]()
    calls = {}
    for name in names:
        start, end = sample(name, 1)
        clock.synchronize()
        per_call = max(clock.elapsed_s(start, end), 1e-7)
        calls[name] = int(min(max_calls, max(1, math.ceil(min_sample_s / per_call))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        marks = [(name, *sample(name, calls[name])) for name in names[k:] + names[:k]]
        clock.synchronize()
        for name, start, end in marks:
            samples[name].append(clock.elapsed_s(start, end) / calls[name])
    result = {}
    for name in names:
        s = sorted(samples[name])
        result[name] = Timing(median=_quantile(s, 0.5), q1=_quantile(s, 0.25), q3=_quantile(s, 0.75), min=s[0],
                              calls=calls[name], repeats=repeats)
    return result


# ----------------------------------------------------------------------------------------------------------
# cases


def _copy_impl(torch: ModuleType, total_bytes: int) -> Impl:
    half = (total_bytes + 1) // 2
    src = torch.full((half,), 0x5A, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    return Impl("copy (same bytes)", "copy", lambda: dst.copy_(src), 2 * half)


def _torch_dtype(torch: ModuleType, name: str) -> Any:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def dropout_case(torch: ModuleType, op: str, dtype_name: str, n: int) -> Case:
    import regdrop_fast as rf

    dtype = _torch_dtype(torch, dtype_name)
    itemsize = torch.empty((), dtype=dtype).element_size()
    data_bytes, mask_bytes = 2 * n * itemsize, (n + 7) // 8
    torch_bytes = data_bytes + n  # torch's bool mask: 1 byte per element

    def build() -> list[Impl]:
        gen = torch.Generator(device="cuda").manual_seed(SEED)
        x = torch.randn(n, device="cuda", dtype=dtype, generator=gen)
        out = torch.empty_like(x)
        impls = [_copy_impl(torch, data_bytes + mask_bytes)]
        if op == "forward":
            impls += [
                Impl("regdrop_fast bits", "regdrop_fast", lambda: rf.dropout(x, P, seed=SEED, out=out),
                     data_bytes + mask_bytes),
                Impl("regdrop_fast seed", "regdrop_fast",
                     lambda: rf.dropout(x, P, seed=SEED, out=out, store="seed"), data_bytes),
                # An offset that is not a multiple of 4 runs the SKIP != 0 kernels: 5 Philox blocks per 16
                # elements instead of 4 (regdrop_fast.torch draws multiples of 4; a user's offset may not be).
                Impl("regdrop_fast bits offset 1", "regdrop_fast",
                     lambda: rf.dropout(x, P, seed=SEED, offset=1, out=out), data_bytes + mask_bytes),
                Impl("torch F.dropout", "torch F.dropout",
                     lambda: torch.nn.functional.dropout(x, P, training=True), data_bytes + mask_bytes),
                Impl("torch.native_dropout", "torch native_dropout", lambda: torch.native_dropout(x, P, True),
                     data_bytes + mask_bytes),
            ]
        else:
            grad = torch.randn(n, device="cuda", dtype=dtype, generator=gen)
            _, bits_mask = rf.dropout(x, P, seed=SEED)
            _, seed_mask = rf.dropout(x, P, seed=SEED, store="seed")
            _, torch_mask = torch.native_dropout(x, P, True)
            scale = 1.0 / (1.0 - P)
            backward = torch.ops.aten.native_dropout_backward
            impls += [
                Impl("regdrop_fast bits", "regdrop_fast",
                     lambda: rf.dropout_backward(grad, bits_mask, out=out), data_bytes + mask_bytes),
                Impl("regdrop_fast seed", "regdrop_fast",
                     lambda: rf.dropout_backward(grad, seed_mask, out=out), data_bytes),
                Impl("torch native_dropout_backward", "torch backward",
                     lambda: backward(grad, torch_mask, scale), data_bytes + mask_bytes),
            ]
        return impls

    return Case("dropout", op, dtype_name, n, f"dropout {op} {dtype_name} n={size_label(n)}", build,
                extra={"torch_actual_bytes": torch_bytes})


def penalty_case(torch: ModuleType, tiny: bool) -> Case:
    import regdrop_fast as rf

    shapes = [s for _, s in RESNET50_PARAMETERS][: 12 if tiny else None]
    label = f"ResNet-50 ({len(shapes)})"
    n = sum(math.prod(s) for s in shapes)
    nbytes = 3 * 4 * n  # float32: read w, read g, write g

    def build() -> list[Impl]:
        gen = torch.Generator(device="cuda").manual_seed(SEED)
        params = [torch.randn(s, device="cuda", generator=gen) for s in shapes]
        grads = [torch.randn(s, device="cuda", generator=gen) for s in shapes]

        def torch_step() -> Any:
            torch._foreach_add_(grads, params, alpha=L2)
            return sum((p * p).sum() for p in params)

        return [
            _copy_impl(torch, nbytes),
            Impl("regdrop_fast penalty_grad l2", "regdrop_fast", lambda: rf.penalty_grad(params, grads, l2=L2),
                 nbytes),
            Impl("regdrop_fast penalty_grad l1+l2", "regdrop_fast",
                 lambda: rf.penalty_grad(params, grads, l1=L1, l2=L2), nbytes),
            Impl("torch _foreach_add_ + value loop", "torch foreach+loop", torch_step, nbytes),
        ]

    return Case("penalty", label, "float32", n, f"penalty_grad {label}", build, extra={"arrays": len(shapes)})


def build_cases(torch: ModuleType, config: GpuConfig) -> list[Case]:
    cases: list[Case] = []
    if "dropout" in config.sections:
        for op in ("forward", "backward"):
            for dtype in config.dtypes:
                for n in config.sizes:
                    cases.append(dropout_case(torch, op, dtype, n))
    if "penalty" in config.sections:
        cases.append(penalty_case(torch, config.tiny))
    return cases


# ----------------------------------------------------------------------------------------------------------
# report


def make_rows(case: Case, impls: Sequence[Impl], timings: Mapping[str, Timing]) -> list[dict[str, Any]]:
    """report.make_rows plus "x copy": on the GPU the copy row is torch's device copy of the same bytes,
    which uses the whole device as the kernels do, so it is already the same-resources limit the CPU rows
    measure with regdrop_fast.bench.limits (issue 18)."""
    rows = report.make_rows(case, impls, timings)
    copy_gbps = next((r["gbps"] for r in rows if r["framework"] == report.COPY), None)
    for row in rows:
        row["copy_fraction"] = row["gbps"] / copy_gbps if copy_gbps else None
        if case.section == "dropout" and row["framework"].startswith("torch"):
            row["actual_bytes"] = case.extra["torch_actual_bytes"]
    return rows


def _peers(rows: Sequence[dict]) -> list[str]:
    return [r["framework"] for r in rows if r["framework"] not in (report.OURS, report.COPY)]


def format_table(rows: Sequence[dict]) -> str:
    """One small table per case: time, GB/s (the case's bytes), x copy, and speedup over each torch row."""
    out: list[str] = []
    cases: dict[tuple, list[dict]] = {}
    for row in rows:
        cases.setdefault((row["section"], row["op"], row["dtype"], row["size"]), []).append(row)
    for (section, op, dtype, size), group in cases.items():
        if section == "dropout":
            title = f"dropout {op}, {dtype}, n={size_label(size)}, p={P}"
        else:
            title = f"penalty_grad over {op}, {dtype}, {size:,} values"
        peers = _peers(group)
        body = []
        for row in group:
            sp = row.get("speedup", {})
            body.append([row["impl"], report.format_time(row["seconds"]), f"{row['gbps']:.0f}",
                         f"{row['copy_fraction']:.2f}" if row["copy_fraction"] is not None else ""]
                        + [f"{sp[p]:.2f}x" if p in sp else "" for p in peers])
        headers = ["implementation", "time", "GB/s", "x copy"] + [f"vs {p}" for p in peers]
        out.append(title)
        out += report._table(headers, body, 1)
        out.append("")
    return "\n".join(out)


def check_targets(rows: Sequence[dict]) -> list[dict]:
    """The issue's targets that these rows measure: each with its measured ratio and whether it is met."""
    results = []
    for what, op, dtype, impl, against, at_least in TARGETS:
        row = next((r for r in rows if r["op"] == op and r["dtype"] == dtype and r["impl"] == impl), None)
        if row is None:
            continue
        ratio = row["copy_fraction"] if against == "copy" else row.get("speedup", {}).get(against)
        if ratio is None:
            continue
        results.append({"target": what, "dtype": dtype, "size": row["size"], "ratio": ratio,
                        "at_least": at_least, "met": ratio >= at_least})
    return results


def format_targets(targets: Sequence[dict]) -> str:
    body = [[t["target"], t["dtype"], f"{t['ratio']:.2f}", f">= {t['at_least']:.2f}", "yes" if t["met"] else "NO"]
            for t in targets]
    return "\n".join(["targets"] + report._table(["target", "dtype", "measured", "wanted", "met"], body, 2))


def device_meta(torch: ModuleType) -> dict[str, Any]:
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "gpu": props.name,
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "sm_count": props.multi_processor_count,
        "compute_capability": f"{props.major}.{props.minor}",
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }


def run(config: GpuConfig) -> int:
    """Run the GPU benchmark; prints the tables and writes results.json and table.txt into config.out."""
    import torch

    import regdrop_fast as rf

    clock = CudaClock(torch)
    rows: list[dict] = []
    cases = build_cases(torch, config)
    for i, case in enumerate(cases):
        if config.progress:
            print(f"[{i + 1}/{len(cases)}] {case.label}", file=sys.stderr, flush=True)
        impls = case.build()
        timings = measure({impl.name: impl.fn for impl in impls}, clock, repeats=config.repeats,
                          min_sample_s=config.min_sample_s, warmup=config.warmup)
        rows += make_rows(case, impls, timings)
        del impls
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    targets = check_targets(rows)
    # The host cost of a list call (issue 19: under host_glue.HOST_TARGET_US for ResNet-50's 161 arrays).
    host = host_glue.cuda_rows(torch) if "penalty" in config.sections and not config.tiny else []
    dev = device_meta(torch)
    meta = {
        "command": config.command,
        "device": dev,
        "git": environment.git_commit(),
        "backend_info": rf.backend_info(),
        "versions": {"regdrop_fast": rf.__version__, "torch": torch.__version__},
        "settings": {"sizes": config.sizes, "dtypes": config.dtypes, "sections": config.sections,
                     "repeats": config.repeats, "min_sample_s": config.min_sample_s, "warmup": config.warmup,
                     "p": P, "l1": L1, "l2": L2, "tiny": config.tiny},
        "timing": "CUDA events; calls per sample calibrated to min_sample_s; device idle at each sample's "
                  "start; implementations interleaved, order rotated per repeat; medians",
    }
    header = (f"regdrop_fast {rf.__version__} CUDA benchmark on {dev['gpu']} (torch {dev['torch']}, CUDA "
              f"{dev['torch_cuda']}); medians of {config.repeats} interleaved repeats, CUDA events")
    text = header + "\n\n" + format_table(rows) + "\n" + format_targets(targets)
    if host:
        text += "\n\n" + host_glue.format_rows(host, "PyTorch CUDA tensors, the kernels queued")
    print(text)
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "results.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "targets": targets, "host_glue": host}, indent=1, default=str)
        + "\n")
    (config.out / "table.txt").write_text(text + "\n")
    print(f"wrote {config.out / 'results.json'}, {config.out / 'table.txt'}")
    return 0
