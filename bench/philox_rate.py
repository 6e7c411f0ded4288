"""Philox4x32-10 words per second on one thread, per SIMD level (issue 18's generation target).

    PYTHONPATH=python python bench/philox_rate.py [--rounds 21] [--json FILE]

Builds bench/philox_rate.cpp once per SIMD level this CPU has, with the compile flags CMakeLists.txt gives
that level's kernels (read from its rdf_add_isa lines, so the two cannot drift apart), and runs it: the
dropout stream's words generated tile by tile into L1 (`generate`) and the same with the keep decisions
packed as mask bits (`decide`). Beside them, the extension's mask-only call (regdrop_fast.bench.limits)
on one thread at 2^24 elements: `decide` plus the thread pool, the call and the mask's memory traffic.
The gap between the three says where the time of a random-number-bound row goes.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np

import regdrop_fast as rdf
from regdrop_fast._info import SIMD_LEVELS
from regdrop_fast.bench import limits

ROOT = pathlib.Path(__file__).resolve().parents[1]


def isa_flags() -> dict[str, tuple[int, list[str]]]:
    """{level: (vector bytes, flags)} from CMakeLists.txt: the strict floating-point flags of the GCC/Clang
    branch, then each rdf_add_isa call's own."""
    text = (ROOT / "CMakeLists.txt").read_text()
    strict = re.search(r"set\(RDF_STRICT_FP_FLAGS (-[^)]*)\)", text)
    if strict is None:
        raise SystemExit("CMakeLists.txt: no RDF_STRICT_FP_FLAGS with flags")
    out = {}
    for name, vec_bytes, flags in re.findall(r"rdf_add_isa\((\w+) (\d+)([^)]*)\)", text):
        out[name] = (int(vec_bytes), strict.group(1).split() + flags.split())
    return out


def build(level: str, vec_bytes: int, flags: list[str], folder: str) -> str:
    exe = os.path.join(folder, f"philox_rate_{level}")
    cxx = os.environ.get("CXX") or shutil.which("c++") or "g++"
    cmd = [cxx, "-std=c++17", *flags, f"-DRDF_ISA={level}", f"-DRDF_VEC_BYTES={vec_bytes}",
           f"-I{ROOT / 'csrc'}", str(ROOT / "bench/philox_rate.cpp"), "-o", exe]
    subprocess.run(cmd, check=True)
    return exe


def extension_mask_only(level: str, rounds: int) -> float:
    """Words per second of the extension's mask-only call on one thread at 2^24 elements (median)."""
    n = 1 << 24
    bits = np.empty((n + 7) // 8, np.uint8)
    simd_before, threads_before = rdf.backend_info()["simd"], rdf.get_num_threads()
    rdf.set_simd(level)
    rdf.set_num_threads(1)
    try:
        limits.mask_only(bits, n, 0.1, 7)  # warm up
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            limits.mask_only(bits, n, 0.1, 7)
            times.append(time.perf_counter() - t0)
    finally:
        rdf.set_simd(simd_before)
        rdf.set_num_threads(threads_before)
    return n / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    best = rdf.backend_info()["simd_best"]
    levels = SIMD_LEVELS[: SIMD_LEVELS.index(best) + 1]
    flags = isa_flags()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for level in levels:
            exe = build(level, *flags[level], folder)
            run = subprocess.run([exe, str(args.rounds)], check=True, capture_output=True, text=True)
            rates = json.loads(run.stdout)
            rates["mask_only_words_per_s"] = extension_mask_only(level, max(5, args.rounds // 3))
            results.append({"simd": level, **rates})
    # The same words and decisions on every level: a level whose checksum differs measured something else.
    if len({r["checksum"] for r in results}) != 1:
        raise SystemExit(f"the SIMD levels' checksums differ: {[(r['simd'], r['checksum']) for r in results]}")
    print("| simd | generate (G words/s) | decide (G words/s) | extension mask-only, 1 thread, 2^24 (G words/s) |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['simd']} | {r['generate_words_per_s'] / 1e9:.2f} | {r['decide_words_per_s'] / 1e9:.2f} "
              f"| {r['mask_only_words_per_s'] / 1e9:.2f} |")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
