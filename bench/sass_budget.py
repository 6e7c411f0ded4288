#!/usr/bin/env python3
"""Instruction budget of the CUDA kernels, read from their machine code (SASS) without a GPU.

    python bench/sass_budget.py [--arch sm_90] [--json FILE] [--keep DIR]

What it does:
1. Builds csrc/cuda/dropout_kernels.cu, bias_dropout_add_kernels.cu, gaussian_dropout_kernels.cu and a probe file that instantiates the penalty kernels' per-chunk
   loops once per dtype (the list kernels read the dtype at run time, so in their own machine code the
   loops of all dtypes sit side by side), into cubins with the project's flags (-O3 --fmad=false,
   -std=c++17) for one architecture, with `-Xptxas -v`: registers, stack frame and spill bytes per kernel.
2. Disassembles them (`cuobjdump -sass`; cuobjdump needs nvdisasm beside it or on PATH; both are in the CUDA
   toolkit or the pip packages nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm, which this script also finds).
3. Per kernel finds the main loop and counts it.

How it counts:
- A loop is a backward branch: a `BRA` whose target address is not above its own. Its body is every
  instruction from the target to the branch, inclusive.
- The main loop is the loop with the most 128-bit global loads (`LDG.E.128`); ties go to the larger span.
  Kernels with no 128-bit load (mask generation only) use the outermost (largest) loop.
- Instructions are counted statically: every instruction of the body except NOPs (scheduling padding),
  minus the bodies of loops nested inside it (an element-by-element fallback the vector path never runs).
  Both sides of a uniform branch inside the body (e.g. "write the mask bits or not") are counted, so the
  figure is an upper bound of what one iteration issues.
- Elements per iteration = 128-bit loads of the body x (16 / sizeof(T)) / arrays read per element
  (1 for dropout, Gaussian dropout and the penalty value; 2 for penalty_grad, w and g, and for
  bias_dropout_add, x and residual). Mask-only kernels (no load) take
  the element count the kernel declares (`kThreadElems` in dropout_kernels.cu; 8 when absent).
- Instructions per element = counted body / elements per iteration.

The limits checked by tests/test_sass_budget.py: no stack frame and no spills in any kernel.

dropout_global_kernel and gaussian_dropout_global_kernel (a block of a global tensor) are reported for their
registers, stack and spills only: their per-row pieces are a loop nested in the main loop, so the count above
leaves their Philox work out and their "instructions per element" is not comparable with the contiguous
kernels'.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZEOF = {"float": 4, "double": 8, "rdf::half_t": 2, "rdf::bfloat16_t": 2}
DTYPE_NAME = {"float": "float32", "double": "float64", "rdf::half_t": "float16", "rdf::bfloat16_t": "bfloat16"}
SOURCE_NAME = {"0": "bits", "1": "none", "2": "all", "3": "stream"}
# arrays each element reads with 128-bit loads (the default 1: dropout, Gaussian dropout, the penalty value)
READS = {"penalty_grad_l2": 2, "bias_dropout_add": 2}  # w and g; x and residual (the bias is per column)

# The penalty loops, one kernel per (op, dtype): the chunk functions of penalty_kernels.cu, called as the
# list kernels call them. Included into the same translation unit so the anonymous-namespace helpers are
# visible.
PENALTY_PROBE = r"""
#include "cuda/penalty_kernels.cu"
namespace rdf {
namespace cuda {
template <class T>
__global__ void sass_probe_penalty_grad_l2(const T* w, T* g, int count, double* out) {
  double s1 = 0, s2 = 0;
  penalty_chunk<PenaltyTerms::kL2, true, T>(w, g, count, 0.0, 1e-4, s1, s2);
  out[threadIdx.x] = s1 + s2;
}
template <class T>
__global__ void sass_probe_penalty_value_l2(const T* w, int count, double* out) {
  double s1 = 0, s2 = 0;
  penalty_chunk<PenaltyTerms::kL2, false, T>(w, nullptr, count, 0.0, 1e-4, s1, s2);
  out[threadIdx.x] = s1 + s2;
}
template <class T>
__global__ void sass_probe_decay(T* w, int count, double factor) {
  const auto m = static_cast<compute_t<T>>(decay_multiplier(factor));
  update_chunk(w, count, [&](T& x) { decay_element(x, m); });
}
#define RDF_PROBE(T)                                                                          \
  template __global__ void sass_probe_penalty_grad_l2<T>(const T*, T*, int, double*);        \
  template __global__ void sass_probe_penalty_value_l2<T>(const T*, int, double*);           \
  template __global__ void sass_probe_decay<T>(T*, int, double);
RDF_PROBE(float)
RDF_PROBE(double)
RDF_PROBE(half_t)
RDF_PROBE(bfloat16_t)
}  // namespace cuda
}  // namespace rdf
"""

INSTR = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
TARGET = re.compile(r"0x([0-9a-f]+)\s*$")


def _tool(name: str) -> str | None:
    """name on PATH, in the CUDA toolkit, or in the nvidia-cuda-* pip packages of this interpreter."""
    found = shutil.which(name)
    if found:
        return found
    dirs = [pathlib.Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin"]
    dirs += sorted(pathlib.Path("/usr/local").glob("cuda*/bin"))
    site = pathlib.Path(sysconfig.get_paths()["purelib"]) / "nvidia"
    dirs += sorted(site.glob("*/bin")) + sorted(site.glob("*/*/bin"))
    for d in dirs:
        if (d / name).is_file():
            return str(d / name)
    return None


def tools() -> dict[str, str | None]:
    return {name: _tool(name) for name in ("nvcc", "cuobjdump", "nvdisasm", "c++filt")}


def missing_tools() -> list[str]:
    return [name for name, path in tools().items() if path is None]


def _compile(nvcc: str, src: pathlib.Path, cubin: pathlib.Path, arch: str) -> str:
    cmd = [nvcc, "-cubin", f"-arch={arch}", "-O3", "--fmad=false", "-std=c++17", "-Xptxas", "-v",
           f"-I{ROOT / 'csrc'}", f"-I{ROOT / 'csrc/cuda'}", str(src), "-o", str(cubin)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed on {src.name}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def _ptxas_usage(log: str) -> dict[str, dict[str, int]]:
    """Mangled kernel name -> registers, stack frame bytes, spill store / load bytes (from -Xptxas -v)."""
    usage: dict[str, dict[str, int]] = {}
    name = None
    for line in log.splitlines():
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            name = m[1]
            usage.setdefault(name, {})
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and name:
            usage[name].update(stack=int(m[1]), spill_stores=int(m[2]), spill_loads=int(m[3]))
            continue
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            name = m[1]
            usage.setdefault(name, {})
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and name:
            usage[name]["registers"] = int(m[1])
    return usage


def _sass_functions(cuobjdump: str, nvdisasm: str, cubin: pathlib.Path) -> dict[str, list[tuple[int, str]]]:
    """Mangled kernel name -> [(address, instruction text)] from cuobjdump -sass."""
    env = dict(os.environ, PATH=f"{pathlib.Path(nvdisasm).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    text = subprocess.run([cuobjdump, "-sass", str(cubin)], capture_output=True, text=True, check=True,
                          env=env).stdout
    funcs: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in text.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            current = funcs.setdefault(m[1], [])
            continue
        m = INSTR.search(line)
        if m and current is not None:
            current.append((int(m[1], 16), m[2].strip()))
    return funcs


def _opcode(text: str) -> str:
    parts = text.split()
    if parts and parts[0].startswith("@"):
        parts = parts[1:]
    return parts[0] if parts else ""


def loops(instrs: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """(target, branch address) of every backward branch."""
    out = []
    for addr, text in instrs:
        if _opcode(text).startswith("BRA"):
            m = TARGET.search(text)
            if m and int(m[1], 16) <= addr:
                out.append((int(m[1], 16), addr))
    return out


def count_main_loop(instrs: list[tuple[int, str]]) -> dict[str, int] | None:
    """The main loop (see the module's docstring) and its static instruction count."""
    spans = loops(instrs)
    if not spans:
        return None

    def body(span):
        return [(a, t) for a, t in instrs if span[0] <= a <= span[1]]

    def loads128(span):
        return sum(1 for _, t in body(span) if _opcode(t).startswith("LDG") and ".128" in _opcode(t))

    main = max(spans, key=lambda s: (loads128(s), s[1] - s[0]))
    nested = [s for s in spans if s != main and main[0] <= s[0] and s[1] <= main[1]]
    counted = [
        (a, t) for a, t in body(main)
        if _opcode(t) != "NOP" and not any(s[0] <= a <= s[1] for s in nested)
    ]
    return {"start": main[0], "end": main[1], "instructions": len(counted), "loads128": loads128(main),
            "nested_loops": len(nested)}


def _demangle(cxxfilt: str, names: list[str]) -> dict[str, str]:
    out = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.splitlines()))


def _thread_elems() -> int:
    m = re.search(r"constexpr int kThreadElems = (\d+);", (ROOT / "csrc/cuda/dropout_groups.cuh").read_text())
    return int(m[1]) if m else 8


def _describe(demangled: str) -> dict[str, str] | None:
    """kernel kind, dtype, keep source and other template arguments of a kernel we report."""
    m = re.search(r"\b(dropout_kernel|dropout_global_kernel|bias_dropout_add_kernel|gaussian_dropout_kernel"
                  r"|gaussian_dropout_global_kernel|sass_probe_(\w+))<([^,>]+)(?:, ([^>]*))?>", demangled)
    if not m:
        return None
    dtype = m[3].strip()
    if dtype not in SIZEOF:
        return None
    rest = [a.strip() for a in (m[4] or "").split(",") if a.strip()]
    if not m[2]:  # dropout_kernel, the global kernels, bias_dropout_add_kernel, gaussian_dropout_kernel
        src = re.search(r"\(rdf::KeepSource\)(\d)", m[4] or "")
        source = SOURCE_NAME[src[1]] if src else ""
        extra = ", ".join(a for a in rest if "KeepSource" not in a)
        return {"kernel": m[1].removesuffix("_kernel"), "dtype": dtype, "source": source, "args": extra}
    return {"kernel": m[2], "dtype": dtype, "source": "", "args": ""}


def budget(arch: str = "sm_90", keep: pathlib.Path | None = None) -> list[dict]:
    """One row per reported kernel: what it is, its main loop's count, registers, stack and spills."""
    t = tools()
    absent = [k for k, v in t.items() if v is None]
    if absent:
        raise RuntimeError(f"missing tools: {', '.join(absent)}")
    work = keep or pathlib.Path(tempfile.mkdtemp(prefix="sass_budget_"))
    work.mkdir(parents=True, exist_ok=True)
    probe = work / "penalty_probe.cu"
    probe.write_text(PENALTY_PROBE)
    jobs = [(ROOT / "csrc/cuda/dropout_kernels.cu", work / "dropout.cubin"), (probe, work / "penalty.cubin"),
            (ROOT / "csrc/cuda/bias_dropout_add_kernels.cu", work / "bias_dropout_add.cubin"),
            (ROOT / "csrc/cuda/gaussian_dropout_kernels.cu", work / "gaussian_dropout.cubin")]
    with ThreadPoolExecutor(len(jobs)) as pool:
        logs = list(pool.map(lambda j: _compile(t["nvcc"], j[0], j[1], arch), jobs))
    usage: dict[str, dict[str, int]] = {}
    for log in logs:
        usage.update(_ptxas_usage(log))
    funcs: dict[str, list[tuple[int, str]]] = {}
    for _, cubin in jobs:
        funcs.update(_sass_functions(t["cuobjdump"], t["nvdisasm"], cubin))
    names = _demangle(t["c++filt"], sorted(funcs))
    rows = []
    for mangled, instrs in funcs.items():
        desc = _describe(names[mangled])
        if desc is None:
            continue
        loop = count_main_loop(instrs)
        inputs = READS.get(desc["kernel"], 1)
        if loop and loop["loads128"]:
            elems = loop["loads128"] * (16 // SIZEOF[desc["dtype"]]) // inputs
        else:
            elems = _thread_elems()
        row = {**desc, "dtype": DTYPE_NAME[desc["dtype"]], "name": mangled, **usage.get(mangled, {}),
               "total_instructions": sum(1 for _, x in instrs if _opcode(x) != "NOP")}
        if loop:
            row.update(loop_instructions=loop["instructions"], elems_per_iter=elems,
                       per_element=round(loop["instructions"] / elems, 2), nested_loops=loop["nested_loops"],
                       loads128=loop["loads128"])
        rows.append(row)
    order = {"dropout": 0, "bias_dropout_add": 1, "gaussian_dropout": 2, "penalty_grad_l2": 3,
             "penalty_value_l2": 4, "decay": 5}
    dorder = {"float32": 0, "bfloat16": 1, "float16": 2, "float64": 3}
    rows.sort(key=lambda r: (order.get(r["kernel"], 9), r["source"] != "stream", r["source"], r["args"],
                             dorder[r["dtype"]]))
    return rows


def table(rows: list[dict]) -> str:
    head = ("kernel", "keep", "template args", "dtype", "loop instr", "elems/iter", "instr/elem", "regs",
            "stack", "spills")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        spills = r.get("spill_stores", "?"), r.get("spill_loads", "?")
        lines.append(" | ".join(str(x) for x in (
            r["kernel"], r["source"] or "-", r["args"] or "-", r["dtype"], r.get("loop_instructions", "-"),
            r.get("elems_per_iter", "-"), r.get("per_element", "-"), r.get("registers", "?"),
            r.get("stack", "?"), f"{spills[0]}/{spills[1]}")))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--json", type=pathlib.Path, help="also write the rows as JSON")
    ap.add_argument("--keep", type=pathlib.Path, help="build into this folder and keep the cubins")
    args = ap.parse_args(argv)
    absent = missing_tools()
    if absent:
        print(f"sass_budget: missing {', '.join(absent)} (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)",
              file=sys.stderr)
        return 2
    rows = budget(args.arch, args.keep)
    print(f"CUDA instruction budget ({args.arch}): main loop per kernel, static count (bench/sass_budget.py)")
    print(table(rows))
    bad = [r["name"] for r in rows if r.get("stack", 0) or r.get("spill_stores", 0) or r.get("spill_loads", 0)]
    if bad:
        print(f"kernels with a stack frame or spills: {len(bad)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
