"""bench/gpu_check.sh without a GPU: its dry run builds the package with CUDA, collects the GPU tests, checks
the test ids its sanitizer stages name, skips every device stage and writes at most 8 files; and the warning
filters it gives pytest (bench/gpu_check_warnings.py) ignore third-party deprecations only."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench/gpu_check.sh"
DEVICE_STAGES = ("tests", "slow", "torch", "bench", "memcheck", "racecheck", "ncu")


@pytest.mark.long(cpu_s=200)  # a build from scratch, CUDA included
@pytest.mark.skipif(shutil.which("nvcc") is None and not os.path.exists("/usr/local/cuda/bin/nvcc"),
                    reason="needs nvcc (the dry run builds the CUDA module)")
def test_dry_run_builds_skips_device_stages_and_writes_few_files(tmp_path):
    pytest.importorskip("scikit_build_core")
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable,
               # kept between runs (build/ is ignored by git): a rerun rebuilds only what changed
               GPU_CHECK_BUILD_DIR=str(ROOT / "build/gpu-check-dry"),
               # A build from scratch on 2 cores, beside another pytest-xdist worker, took 245 s: over the
               # 240 s the GPU machine's build gets. Here the limits only guard against a hang.
               GPU_CHECK_BUILD_S="900", GPU_CHECK_BUDGET_S="1200")
    env.pop("GPU_CHECK_DRY", None)
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=1500)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert 2 <= len(files) <= 8, files
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)  # at most 2 folders down
    summary = (out / "summary.txt").read_text()
    for stage in DEVICE_STAGES:
        assert f"=== {stage}: skipped: no GPU" in proc.stdout
        assert any(line.startswith(stage) and "skipped: no GPU" in line for line in summary.splitlines()), stage
    for stage in ("build", "probe", "collect"):
        assert any(line.split()[:2] == [stage, "ok"] for line in summary.splitlines()), (stage, summary)
    assert "all passed" in summary
    check_log = (out / "check.log").read_text()
    assert "==================== build" in check_log and "==================== collect" in check_log


def test_bad_argument_exits_2(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--no-such-option"], capture_output=True, text=True,
                          env=dict(os.environ, OUT=str(tmp_path)), timeout=60)
    assert proc.returncode == 2 and "unknown argument" in proc.stderr


def test_warning_filters_ignore_third_party_deprecations_only(tmp_path):
    test = tmp_path / "test_warns.py"
    test.write_text(textwrap.dedent("""
        import warnings

        import pytest


        @pytest.mark.parametrize("module", ["torch", "torch.cuda", "cupy", "cupy._core.core", "cupyx.scipy"])
        @pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning, PendingDeprecationWarning])
        def test_third_party_deprecation_ignored(module, category):
            warnings.warn_explicit("old API", category, "x.py", 1, module=module)


        @pytest.mark.parametrize("module,category", [
            ("regdrop_fast", DeprecationWarning), ("regdrop_fast._backend_cuda", FutureWarning),
            ("test_warns", DeprecationWarning), ("torch", UserWarning), ("torchish", DeprecationWarning),
            ("cupy", RuntimeWarning),
        ])
        def test_other_warnings_fail(module, category):
            warnings.warn_explicit("ours", category, "x.py", 1, module=module)
    """))
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "gpu_check_warnings", str(test)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert "15 passed" in proc.stdout and "6 failed" in proc.stdout, proc.stdout[-3000:]


# Which test file (and test) runs each CUDA entry point of csrc/cuda/entry_points.h; memcheck must name one
# of each, so a kernel added later fails here until the GPU check covers it.
MEMCHECK_COVERS = {
    "dropout_forward": "tests/test_dropout.py::test_forward_and_backward",
    "dropout_backward": "tests/test_dropout.py::test_backward_matches_cpu",
    "dropout_global": "tests/test_dropout_global.py::test_block_is_the_slice_of_the_whole_call",
    "bias_dropout_add_forward": "tests/test_bias_dropout_add.py::test_matches_cpu_and_reference",
    "bias_dropout_add_backward": "tests/test_bias_dropout_add.py::test_backward_out",
    "philox4x32": "tests/test_philox.py::",
    "penalty_grad": "tests/test_penalty_grad.py::",
    "prox_l1": "tests/test_prox_l1.py::",
    "decay": "tests/test_decay.py::",
    "max_norm": "tests/test_max_norm.py::",
    "norm_constraint": "tests/test_constraints.py::test_norm_constraint",
    "non_neg": "tests/test_constraints.py::test_non_neg",
    "dropout_broadcast": "tests/test_dropout_variants.py::test_matches_reference",
    "gaussian_dropout": "tests/test_gaussian_dropout.py::test_matches_cpu_and_reference",
    "gaussian_dropout_global": "tests/test_gaussian_dropout_global.py::test_block_is_the_slice_of_the_whole_call",
    "penalty_group": "tests/test_penalty_group.py::test_matches_cpu_and_reference",
    "walk_update": "tests/test_strided_device.py::test_list_ops_in_any_layout",
    "walk_penalty": "tests/test_strided_device.py::test_penalty_grad_grads_in_any_layout",
}
# Not kernels, or not reachable from Python: dropout_mask (masks are drawn on the host; the GPU's mask
# kernel path is the slow stage's 2^31-element test).
NOT_KERNELS = {"device_count", "device_name", "pointer_device", "dropout_mask"}


def _script_list(name: str) -> list[str]:
    text = SCRIPT.read_text()
    body = text.split(f"{name}=(\n", 1)[1].split("\n)\n", 1)[0]
    return [line.strip().strip('"') for line in body.splitlines() if line.strip().startswith('"')]


def test_sanitizer_stages_cover_every_cuda_kernel():
    import re

    entries = set(re.findall(r"^(?:void|int|std::string) (\w+)\(", (ROOT / "csrc/cuda/entry_points.h").read_text(),
                             re.M))
    assert entries - NOT_KERNELS == set(MEMCHECK_COVERS), "map each new CUDA entry point to its GPU test"
    memcheck = _script_list("memcheck_tests")
    for entry, prefix in MEMCHECK_COVERS.items():
        assert any(t.startswith(prefix) for t in memcheck), f"memcheck runs no test of {entry}"
    # the strided (channels_last) and in-place dropout paths are kernels of their own
    assert any(t.startswith("tests/test_dropout_layout.py::") for t in memcheck)
    assert any("in_place" in t for t in memcheck)
    racecheck = _script_list("racecheck_tests")
    shared = {"penalty_grad", "prox_l1", "non_neg", "max_norm", "norm_constraint"}  # __shared__ block sums
    for entry in shared:
        assert any(t.startswith(MEMCHECK_COVERS[entry]) for t in racecheck), f"racecheck runs no test of {entry}"
