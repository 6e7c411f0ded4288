#!/usr/bin/env bash
# The GPU check of regdrop_fast, one command on a machine with an NVIDIA GPU and no network:
#
#   bash bench/gpu_check.sh
#
# 1. prints the machine (nvidia-smi, driver, CUDA, Python and library versions, git commit);
# 2. builds the package with CUDA into a fresh virtual environment that sees the system's packages
#    (pip --no-build-isolation --no-deps --no-index: PyTorch, CuPy, pybind11, scikit-build-core, CMake,
#    ninja, nvcc and ml_dtypes must already be installed; nothing is downloaded);
# 3. runs the GPU tests (marker cuda: the "cuda" backend of tests/test_<op>.py), without and then with the
#    slow 2^28-element mask test, and the CUDA tests of the PyTorch integration, tests/test_torch.py -k cuda);
# 4. runs the GPU benchmark (`regdrop-fast bench --device cuda`: dropout at 2^28 elements, penalty_grad over
#    ResNet-50, against PyTorch);
# 5. runs a subset of the GPU tests under `compute-sanitizer --tool memcheck` (every CUDA kernel at least
#    once, aligned and misaligned), with PyTorch's caching allocator off so every array is its own allocation;
# 6. prints the benchmark table and, last, a table of the stages.
#
# Every stage runs even when an earlier one failed (those needing the build are skipped if it failed); the
# exit code is 1 if any stage failed. The whole run keeps to GPU_CHECK_BUDGET_S seconds (default 465, under
# 8 minutes on one H100): each stage gets at most what is left. Results and logs go to
# $OUT when it is set (else ./gpu-check-out): env.txt, build.log, tests.log, slow.log, torch.log, bench.log,
# memcheck.log, bench/results.json, bench/table.txt, summary.txt.
set -euo pipefail

start_s=$(date +%s)
budget_s=${GPU_CHECK_BUDGET_S:-465}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
results=${OUT:-$root/gpu-check-out}
mkdir -p "$results"
work=$(mktemp -d /tmp/regdrop-gpu-check.XXXXXX)
python=${PYTHON:-python3}

names=()
statuses=()
seconds=()
failed=0

left() { echo $((budget_s - ($(date +%s) - start_s))); }

record() {  # name status seconds
  names+=("$1")
  statuses+=("$2")
  seconds+=("$3")
  case "$2" in ok | skipped*) ;; *) failed=1 ;; esac
}

# run_stage NAME LIMIT_S LOG COMMAND...: runs COMMAND with its output to the terminal and LOG (LOG only, and
# its tail on failure, when QUIET=1), stopped after min(LIMIT_S, time left - 5) seconds.
run_stage() {
  local name=$1 limit=$2 log=$3
  shift 3
  local avail
  avail=$(($(left) - 5))
  if [ "$avail" -lt "$limit" ]; then limit=$avail; fi
  if [ "$limit" -lt 10 ]; then
    echo "=== $name: skipped, the time budget is spent"
    record "$name" "FAILED (no time left)" 0
    return
  fi
  echo "=== $name (at most ${limit}s): $*"
  local t0 rc
  t0=$(date +%s)
  set +e
  if [ "${QUIET:-0}" = 1 ]; then
    timeout --kill-after=15 "$limit" "$@" >"$log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || tail -n 60 "$log"
  else
    timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  fi
  set -e
  local dt=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ]; then
    record "$name" ok "$dt"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    record "$name" "FAILED (timed out after ${limit}s)" "$dt"
  else
    record "$name" "FAILED (exit $rc)" "$dt"
  fi
}

finish() {
  {
    echo
    echo "regdrop_fast GPU check: stages"
    printf '%-10s  %-36s  %s\n' "stage" "status" "seconds"
    printf '%-10s  %-36s  %s\n' "----------" "------------------------------------" "-------"
    for i in "${!names[@]}"; do
      printf '%-10s  %-36s  %7s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}"
    done
    echo "total: $(($(date +%s) - start_s))s; results and logs in $results"
  } | tee "$results/summary.txt"
  rm -rf "$work"
  exit "$failed"
}

# ---------------------------------------------------------------------------------------------------------
# 1. the machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo 'not a git checkout')"
  if git -C "$root" rev-parse HEAD >/dev/null 2>&1; then
    echo "uncommitted changes: $(git -C "$root" status --porcelain 2>/dev/null | wc -l) files"
  fi
  echo "--- nvidia-smi"
  nvidia-smi || echo "nvidia-smi failed"
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || true
  echo "--- nvcc"
  if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
  nvcc --version 2>/dev/null | tail -2 || echo "nvcc not found"
  echo "--- tools: cmake $(cmake --version 2>/dev/null | head -1 | awk '{print $3}')," \
       "ninja $(ninja --version 2>/dev/null), compute-sanitizer:" \
       "$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo none)"
  echo "--- python"
  "$python" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ("numpy", "ml_dtypes", "torch", "cupy", "pybind11", "scikit_build_core", "pytest"):
    try:
        mod = importlib.import_module(name)
        print(f"{name} {getattr(mod, '__version__', '?')}")
    except Exception as exc:
        print(f"{name}: not importable ({type(exc).__name__})")
try:
    import torch
    print("torch CUDA", torch.version.cuda, "available", torch.cuda.is_available(),
          "devices", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
except Exception as exc:
    print("torch CUDA: unavailable", exc)
EOF
} 2>&1 | tee "$results/env.txt" || true
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi

# ---------------------------------------------------------------------------------------------------------
# 2. prerequisites and the build
missing=""
for mod in numpy ml_dtypes pybind11 scikit_build_core pytest torch; do
  "$python" -c "import $mod" 2>/dev/null || missing="$missing $mod"
done
if [[ " $missing " == *" ml_dtypes "* ]]; then
  echo "ml_dtypes is not installed, and regdrop_fast needs it (bfloat16); nothing can be downloaded here."
  echo "Install a wheel copied to this machine without its dependencies, then rerun:"
  echo "    $python -m pip install --no-deps ml_dtypes-*.whl"
fi
if [ -n "$missing" ]; then
  echo "missing Python packages:$missing"
  record prereqs "FAILED (missing:$missing)" 0
  finish
fi
if ! command -v nvcc >/dev/null; then
  echo "nvcc not found (PATH, /usr/local/cuda/bin)"
  record prereqs "FAILED (no nvcc)" 0
  finish
fi
record prereqs ok 0

arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)
arch_flag=()
if [[ "$arch" =~ ^[0-9]+$ ]]; then
  arch_flag=("-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=$arch")  # this GPU only: half the device compile time
fi
echo "building for CUDA architecture ${arch:-default (80;90)}; pip runs with --no-deps --no-index: numpy and"
echo "ml_dtypes come from the system's packages"
# A virtual environment on top of the system's packages keeps the install out of them; where that
# environment cannot see them (python itself a venv) or cannot be made, the package goes into python's own.
if "$python" -m venv --system-site-packages "$work/venv" >/dev/null 2>&1 &&
  "$work/venv/bin/python" -c "import numpy, ml_dtypes, pybind11, scikit_build_core, pytest, torch" 2>/dev/null; then
  venv_python=$work/venv/bin/python
else
  echo "installing into $python's environment (a virtual environment on top of it would not see its packages)"
  venv_python=$python
  export PIP_BREAK_SYSTEM_PACKAGES=1
fi
QUIET=1 run_stage build 240 "$results/build.log" env CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$venv_python" -m pip install --no-build-isolation --no-deps --no-index -v \
  -Cbuild-dir="$work/build" -Ccmake.define.REGDROP_CUDA=ON ${arch_flag[@]+"${arch_flag[@]}"} "$root"
built=0
if [ "${statuses[-1]}" = ok ]; then
  # Without a usable GPU every GPU test would skip and pass: that is a failed check.
  why=$(cd "$work" && "$venv_python" -c '
import regdrop_fast as rf, torch
from regdrop_fast import cuda
if not rf.backend_info()["cuda_compiled"]:
    print("built without the CUDA backend")
elif not cuda.is_available():
    print("no CUDA device visible to regdrop_fast")
elif not torch.cuda.is_available():
    print("torch cannot use the GPU")
') || why="the installed package does not import"
  if [ -z "$why" ]; then
    built=1
  else
    echo "build: $why"
    statuses[-1]="FAILED ($why)"
    failed=1
  fi
fi

# ---------------------------------------------------------------------------------------------------------
# 3.-5. tests, benchmark, memcheck (from the repository root: the installed package is imported, since the
# sources live under python/)
pytest_args=(-q -p no:cacheprovider)
if [ "$built" -eq 1 ]; then
  run_stage tests 150 "$results/tests.log" "$venv_python" -m pytest "${pytest_args[@]}" tests -m "cuda and not slow"
  run_stage slow 60 "$results/slow.log" "$venv_python" -m pytest "${pytest_args[@]}" tests -m "cuda and slow"
  run_stage torch 90 "$results/torch.log" "$venv_python" -m pytest "${pytest_args[@]}" tests/test_torch.py -k cuda
  run_stage bench 150 "$results/bench.log" "$venv_python" -m regdrop_fast bench --device cuda --no-progress \
    --out "$results/bench"
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$sanitizer" ]; then
    memcheck_tests=(
      "tests/test_dropout.py::test_forward_and_backward_match_cpu_and_reference[cuda-1025-3-float32]"
      "tests/test_dropout.py::test_forward_and_backward_match_cpu_and_reference[cuda-1025-3-bfloat16]"
      "tests/test_dropout.py::test_backward_matches_cpu[cuda-seed-float32]"
      "tests/test_dropout.py::test_backward_matches_cpu[cuda-bits-bfloat16]"
      "tests/test_dropout.py::test_misaligned_and_overlapping_views[cuda-1]"
      "tests/test_dropout.py::test_overlapping_out_view_reads_the_original_values[cuda]"
      "tests/test_penalty_grad.py::test_penalty_grad_matches_cpu_and_reference[l1+l2-cuda-65537-float32]"
      "tests/test_penalty_grad.py::test_penalty_grad_matches_cpu_and_reference[l1+l2-cuda-65537-bfloat16]"
      "tests/test_penalty_grad.py::test_penalty_list_mixing_dtypes_sizes_and_terms[cuda-49]"
      "tests/test_penalty_grad.py::test_penalty_misaligned_views_write_nothing_outside[cuda-both-1-float32]"
      "tests/test_penalty_grad.py::test_penalty_misaligned_views_write_nothing_outside[cuda-grads-3-float32]"
      "tests/test_prox_l1.py::test_prox_l1_matches_cpu_and_reference[cuda-0.5-float16]"
      "tests/test_decay.py::test_decay_matches_cpu_and_reference[cuda-0.5-float64]"
      "tests/test_prox_l1.py::test_prox_l1_misaligned_views_write_nothing_outside[cuda-1-float16]"
      "tests/test_decay.py::test_decay_misaligned_views_write_nothing_outside[cuda-1-float16]"
      "tests/test_max_norm.py::test_max_norm_matches_cpu_and_reference[cuda-(300, 70)-0-float32]"
      "tests/test_max_norm.py::test_max_norm_matches_cpu_and_reference[cuda-(300, 70)-1-float32]"
      "tests/test_max_norm.py::test_max_norm_matches_cpu_and_reference[cuda-(5, 6, 7, 8)-(0, 2)-float32]"
      "tests/test_max_norm.py::test_max_norm_matches_cpu_and_reference[cuda-(1000, 1000)-0-float32]"
      "tests/test_max_norm.py::test_max_norm_matches_cpu_and_reference[cuda-(2, 300001)-1-float32]"
    )
    run_stage memcheck 150 "$results/memcheck.log" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
      "$sanitizer" --tool memcheck --error-exitcode 99 --print-limit 30 \
      "$venv_python" -m pytest "${pytest_args[@]}" "${memcheck_tests[@]}"
  else
    echo "=== memcheck: compute-sanitizer not found"
    record memcheck "skipped (no compute-sanitizer)" 0
  fi
else
  for stage in tests slow torch bench memcheck; do record "$stage" "FAILED (not built)" 0; done
fi

# ---------------------------------------------------------------------------------------------------------
# 6. the benchmark table, then the stages
if [ -f "$results/bench/table.txt" ]; then
  echo
  cat "$results/bench/table.txt"
fi
finish
