"""bench/sass_budget.py: the counting on a made-up listing (anywhere), and on the CUDA kernels' machine code
for sm_90 when nvcc and cuobjdump are there: no kernel has a stack frame or spills, and the dropout kernels
stay within their instruction budget (BENCHMARKS.md, "CUDA instruction budget")."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil

import pytest
from conftest import built_once

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("sass_budget", ROOT / "bench/sass_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sass_budget = _load()


def _listing(lines):
    return [(i * 16, text) for i, text in enumerate(lines)]


def test_main_loop_is_the_one_with_the_vector_loads_and_nested_loops_are_left_out():
    instrs = _listing([
        "S2R R0, SR_TID.X",         # 0x00
        "LDG.E.128 R4, desc[UR4][R2.64]",  # 0x10  main loop starts here
        "IMAD.WIDE.U32 R8, R4, 0x3, RZ",  # 0x20
        "NOP",                       # 0x30  padding, not counted
        "LDG.E R9, desc[UR4][R2.64]",  # 0x40  nested fallback loop
        "@P1 BRA 0x40",              # 0x50
        "STG.E.128 desc[UR4][R2.64], R4",  # 0x60
        "@!P0 BRA 0x10",             # 0x70  back edge of the main loop
        "LDG.E R1, desc[UR4][R2.64]",  # 0x80  a scalar tail loop
        "@P2 BRA 0x80",              # 0x90
        "EXIT",
    ])
    assert sass_budget.loops(instrs) == [(0x40, 0x50), (0x10, 0x70), (0x80, 0x90)]
    loop = sass_budget.count_main_loop(instrs)
    assert (loop["start"], loop["end"]) == (0x10, 0x70)
    assert loop["instructions"] == 4  # LDG.128, IMAD, STG.128, BRA
    assert loop["loads128"] == 1 and loop["nested_loops"] == 1


def test_ptxas_usage_is_read_per_kernel():
    log = """ptxas info    : Compiling entry function '_Z1kv' for 'sm_90'
ptxas info    : Function properties for _Z1kv
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 0 barriers"""
    assert sass_budget._ptxas_usage(log) == {
        "_Z1kv": {"stack": 16, "spill_stores": 8, "spill_loads": 4, "registers": 40}}


@pytest.fixture(scope="session")
def rows(tmp_path_factory):
    if shutil.which("nvcc") is None and sass_budget.tools()["nvcc"] is None:
        pytest.skip("needs nvcc")
    absent = sass_budget.missing_tools()
    if absent:
        pytest.skip(f"needs {', '.join(absent)} (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    # Counted once per session (~50 s of nvcc): pytest-xdist workers that run tests of this file share it.
    with built_once(tmp_path_factory, "sass_budget") as (folder, done):
        if not done:
            (folder / "rows.json").write_text(json.dumps(sass_budget.budget("sm_90", folder / "cubins")))
        return json.loads((folder / "rows.json").read_text())


# Known exception (issue 13's note): Gaussian dropout in float64 keeps a group of 16 doubles, its Philox words
# and 18 normals live across the out-of-line slow path of IEEE float32 division (a CALL, whose ABI fixes the
# registers), and ptxas spills 4-12 bytes for some offset alignments. Only these, no more bytes than measured.
SPILL_EXCEPTIONS = {("gaussian_dropout", "float64"): 16}  # (kernel, dtype): the largest stack frame allowed


@pytest.mark.long(cpu_s=60)  # the first to ask for `rows`, which compiles the kernels
def test_no_kernel_has_a_stack_frame_or_spills(rows):
    assert rows
    for r in rows:
        allowed = SPILL_EXCEPTIONS.get((r["kernel"], r["dtype"]), 0)
        assert r["stack"] <= allowed and r["spill_stores"] <= allowed and r["spill_loads"] <= allowed, r["name"]
        if not allowed:
            assert (r["stack"], r["spill_stores"], r["spill_loads"]) == (0, 0, 0), r["name"]


def test_every_dropout_and_penalty_dtype_is_reported(rows):
    kinds = {(r["kernel"], r["dtype"]) for r in rows}
    for kernel in ("dropout", "bias_dropout_add", "gaussian_dropout", "penalty_grad_l2", "penalty_value_l2",
                   "decay"):
        for dtype in ("float32", "float64", "float16", "bfloat16"):
            assert (kernel, dtype) in kinds


def test_dropout_stream_kernels_meet_the_instruction_target(rows):
    """Issue 19's target: <= 24 instructions per element in the aligned (16-byte vector I/O) stream kernel,
    the one dropout forward and mask-free backward run, for float32 and bfloat16 and every offset & 3
    (template args "SKIP, VEC"). float16 is held to the same figure since it converts in hardware."""
    stream = [r for r in rows if r["kernel"] == "dropout" and r["source"] == "stream"
              and r["args"].endswith("true") and r["dtype"] in ("float32", "bfloat16", "float16")]
    assert len(stream) == 12, [r["args"] for r in stream]
    over = [(r["dtype"], r["args"], r["per_element"]) for r in stream if r["per_element"] > 24]
    assert not over, over
