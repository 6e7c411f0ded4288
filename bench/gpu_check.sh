#!/usr/bin/env bash
# The GPU check of regdrop_fast, one command on a machine with an NVIDIA GPU and no network:
#
#   bash bench/gpu_check.sh              # the real check (about 8 minutes at most)
#   bash bench/gpu_check.sh --dry-run    # no GPU needed: builds, skips every device stage (GPU_CHECK_DRY=1)
#
# Stages, each time-boxed with `timeout` (every stage runs even when an earlier one failed; those needing the
# build are skipped when it failed):
#   env        the machine: nvidia-smi, driver, nvcc, Python and library versions, git commit;
#   prereqs    numpy, ml_dtypes, pybind11, scikit-build-core, pytest (and torch) importable, nvcc found;
#   build      the package with CUDA for this GPU's architecture, installed with pip --no-build-isolation
#              --no-deps --no-index --target into a scratch folder (no environment is modified, nothing is
#              downloaded), then imported from there;
#   probe      compute-sanitizer and ncu, each tried on a one-kernel CUDA program: where the device refuses
#              them ("Device not supported", error 999, "LibraryNotLoaded") the sanitizer and ncu stages are
#              recorded "unavailable" and do not fail the check;
#   tests      pytest -m "cuda and not slow" over tests/ (the real "cuda" backend: CuPy or torch arrays);
#   slow       pytest -m "cuda and slow" (the 2^28-element mask tests);
#   torch      tests/test_torch.py -k cuda;
#   bench      regdrop-fast bench --device cuda (dropout at 2^28 elements, penalty_grad over ResNet-50, and the
#              host cost per list call over ResNet-50's 161 arrays, python/regdrop_fast/bench/host_glue.py);
#   memcheck   a subset of the GPU tests (every CUDA kernel at least once, aligned and misaligned) under
#              compute-sanitizer --tool memcheck, the libraries' caching allocators off;
#   racecheck  the GPU tests of the kernels with shared memory (penalty, prox_l1, non_neg, max_norm,
#              norm_constraint) under compute-sanitizer --tool racecheck;
#   ncu        one `ncu --clock-control none` reading of the bfloat16 dropout kernel (achieved DRAM bandwidth,
#              issue-slot utilization);
# then the benchmark table and the summary (the stages, the ncu reading, the files written).
#
# pytest runs with pyproject's filterwarnings = error, plus bench/gpu_check_warnings.py: deprecation warnings
# raised inside torch or CuPy are ignored, every other warning (ours) stays an error.
#
# --dry-run (or GPU_CHECK_DRY=1): no GPU or driver needed. It runs env, prereqs and build as above (for
# GPU_CHECK_ARCH, default 90), checks that the package imports with its CUDA module, compiles the probe
# program, collects the GPU tests and checks that every test the sanitizer stages name exists; every device
# stage prints "skipped: no GPU". tests/test_gpu_check.py runs it, so the script cannot rot.
#
# Settings (environment): OUT (results folder, default ./gpu-check-out), PYTHON (default python3),
# GPU_CHECK_BUDGET_S (default 465: the whole run, under 8 minutes), GPU_CHECK_BUILD_S (default 240: the build
# stage's limit; the GPU machine's 16 cores build in well under it), GPU_CHECK_BUILD_DIR (scikit-build-core's
# build folder: kept and reused between runs when given, else a fresh scratch one), GPU_CHECK_ARCH (CUDA
# architecture when no GPU says it).
#
# Results: at most 8 files under $OUT, no folder below it deeper than one level: check.log (every stage's
# output, one after another), summary.txt, bench/results.json, bench/table.txt. The exit code is 1 if a stage
# failed (a skipped or unavailable stage is no failure), 2 for a bad argument.
set -uo pipefail

dry=${GPU_CHECK_DRY:-0}
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "gpu_check.sh: unknown argument $arg (use --dry-run or --help)" >&2
      exit 2
      ;;
  esac
done
[ "$dry" = 1 ] || dry=0

start_s=$(date +%s)
budget_s=${GPU_CHECK_BUDGET_S:-465}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
results=${OUT:-$root/gpu-check-out}
mkdir -p "$results"
results=$(cd "$results" && pwd)
work=$(mktemp -d /tmp/regdrop-gpu-check.XXXXXX)
logs=$work/logs
mkdir -p "$logs"
site=$work/site
build_dir=${GPU_CHECK_BUILD_DIR:-$work/build}
python=${PYTHON:-python3}
check_log=$results/check.log
: >"$check_log"
max_files=8

if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi

names=()
statuses=()
seconds=()
failed=0

left() { echo $((budget_s - ($(date +%s) - start_s))); }

record() {  # name status seconds
  names+=("$1")
  statuses+=("$2")
  seconds+=("$3")
  case "$2" in ok | skipped* | unavailable*) ;; *) failed=1 ;; esac
}

append_log() {  # name file: the stage's log appended to check.log under a header
  {
    echo
    echo "==================== $1"
    cat "$2" 2>/dev/null
  } >>"$check_log"
}

skip() {  # name reason
  echo "=== $1: skipped: $2" | tee -a "$check_log"
  record "$1" "skipped: $2" 0
}

# run_stage NAME LIMIT_S COMMAND...: runs COMMAND with its output to the terminal and the stage's log (the log
# only, and its tail on failure, when QUIET=1), stopped after min(LIMIT_S, time left - 5) seconds; the log
# goes into check.log. Returns the command's exit code.
run_stage() {
  local name=$1 limit=$2
  shift 2
  local log=$logs/$name.log avail
  avail=$(($(left) - 5))
  if [ "$avail" -lt "$limit" ]; then limit=$avail; fi
  if [ "$limit" -lt 10 ]; then
    echo "=== $name: not run, the time budget is spent" | tee -a "$check_log"
    record "$name" "FAILED (no time left)" 0
    return 124
  fi
  echo "=== $name (at most ${limit}s): $*"
  echo "\$ $*" >"$log"
  local t0 rc
  t0=$(date +%s)
  if [ "${QUIET:-0}" = 1 ]; then
    timeout --kill-after=15 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    [ "$rc" -eq 0 ] || tail -n 60 "$log"
  else
    timeout --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$log"
    rc=${PIPESTATUS[0]}
  fi
  local dt=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ]; then
    record "$name" ok "$dt"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    record "$name" "FAILED (timed out after ${limit}s)" "$dt"
  else
    record "$name" "FAILED (exit $rc)" "$dt"
  fi
  append_log "$name" "$log"
  return "$rc"
}

ncu_reading=""
finish() {
  : >"$results/summary.txt"
  local nfiles
  nfiles=$(find "$results" -type f | wc -l)
  if [ "$nfiles" -gt "$max_files" ]; then
    echo "more than $max_files files under $results:"
    find "$results" -type f
    record files "FAILED ($nfiles files, at most $max_files)" 0
  else
    record files ok 0
  fi
  {
    echo
    echo "regdrop_fast GPU check$([ "$dry" = 1 ] && echo ' (dry run: no GPU)'): stages"
    printf '%-10s  %-52s  %s\n' "stage" "status" "seconds"
    printf '%-10s  %-52s  %s\n' "----------" "----------------------------------------------------" "-------"
    for i in "${!names[@]}"; do
      printf '%-10s  %-52s  %7s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}"
    done
    [ -z "$ncu_reading" ] || printf 'ncu, bfloat16 dropout forward:\n%s\n' "$ncu_reading"
    echo "files under $results: $nfiles (at most $max_files)"
    echo "total: $(($(date +%s) - start_s))s of a ${budget_s}s budget; $([ "$failed" = 0 ] && echo 'all passed' || echo 'SOME STAGES FAILED')"
  } | tee "$results/summary.txt"
  rm -rf "$work"
  exit "$failed"
}

# ---------------------------------------------------------------------------------------------------------
# env: the machine
t0=$(date +%s)
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)$([ "$dry" = 1 ] && echo '  (dry run)')"
  echo "git commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo 'not a git checkout')"
  if git -C "$root" rev-parse HEAD >/dev/null 2>&1; then
    echo "uncommitted changes: $(git -C "$root" status --porcelain 2>/dev/null | wc -l) files"
  fi
  echo "--- nvidia-smi"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi || echo "nvidia-smi failed"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv || true
  else
    echo "nvidia-smi: not found"
  fi
  echo "--- nvcc"
  nvcc --version 2>/dev/null | tail -2 || echo "nvcc not found"
  echo "--- tools: cmake $(cmake --version 2>/dev/null | head -1 | awk '{print $3}')," \
       "ninja $(ninja --version 2>/dev/null), compute-sanitizer:" \
       "$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo none)," \
       "ncu: $(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null || echo none)"
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
} >"$logs/env.log" 2>&1
cat "$logs/env.log"
append_log env "$logs/env.log"
record env ok $(($(date +%s) - t0))

# ---------------------------------------------------------------------------------------------------------
# prereqs
needed="numpy ml_dtypes pybind11 scikit_build_core pytest"
[ "$dry" = 1 ] || needed="$needed torch"
missing=""
for mod in $needed; do
  "$python" -c "import $mod" 2>/dev/null || missing="$missing $mod"
done
if [[ " $missing " == *" ml_dtypes "* ]]; then
  echo "ml_dtypes is not installed, and regdrop_fast needs it (bfloat16); nothing can be downloaded here."
  echo "Install a wheel copied to this machine without its dependencies, then rerun:"
  echo "    $python -m pip install --no-deps ml_dtypes-*.whl"
fi
if [ -n "$missing" ]; then
  echo "missing Python packages:$missing" | tee -a "$check_log"
  record prereqs "FAILED (missing:$missing)" 0
  finish
fi
if ! command -v nvcc >/dev/null; then
  echo "nvcc not found (PATH, /usr/local/cuda/bin)" | tee -a "$check_log"
  record prereqs "FAILED (no nvcc)" 0
  finish
fi
record prereqs ok 0

# ---------------------------------------------------------------------------------------------------------
# build
arch=""
if [ "$dry" = 0 ]; then
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)
fi
[[ "$arch" =~ ^[0-9]+$ ]] || arch=${GPU_CHECK_ARCH:-90}
echo "building for CUDA architecture $arch into $site (build folder $build_dir); numpy and ml_dtypes come"
echo "from $python's packages"
QUIET=1 run_stage build "${GPU_CHECK_BUILD_S:-240}" env CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
  "$python" -m pip install --no-build-isolation --no-deps --no-index --no-compile --target "$site" -v \
  -Cbuild-dir="$build_dir" -Ccmake.define.REGDROP_CUDA=ON -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$arch" "$root"
built=0
if [ "${statuses[-1]}" = ok ]; then
  # Without a usable GPU every GPU test would skip and pass: that is a failed check.
  why=$(cd "$work" && PYTHONPATH="$site" GPU_CHECK_DRY=$dry "$python" -c '
import os
import regdrop_fast as rf
from regdrop_fast import cuda
if not rf.backend_info()["cuda_compiled"]:
    print("built without the CUDA backend")
elif os.environ["GPU_CHECK_DRY"] != "1":
    import torch
    if not cuda.is_available():
        print("no CUDA device visible to regdrop_fast")
    elif not torch.cuda.is_available():
        print("torch cannot use the GPU")
' 2>&1) || why="the installed package does not import: ${why##*$'\n'}"
  if [ -z "$why" ]; then
    built=1
  else
    echo "build: $why" | tee -a "$check_log"
    statuses[-1]="FAILED ($why)"
    failed=1
  fi
fi

# Everything below imports the installed package (PYTHONPATH replaces any the caller had: the sources under
# python/ must not be picked up) and loads the warning filters of bench/gpu_check_warnings.py.
export PYTHONPATH="$site:$root/bench"
export PYTHONUNBUFFERED=1
pytest=("$python" -m pytest -q -p no:cacheprovider -p gpu_check_warnings)

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
  "tests/test_penalty_group.py::test_matches_cpu_and_reference[cuda-(300, 70)-0-float32]"
  "tests/test_penalty_group.py::test_matches_cpu_and_reference[cuda-(8, 3, 3, 3)-(1, 2, 3)-float16]"
  "tests/test_strided_device.py::test_list_ops_in_any_layout[float32-cuda]"
  "tests/test_strided_device.py::test_penalty_grad_grads_in_any_layout[float16-cuda]"
  "tests/test_strided_device.py::test_slice_ops_in_any_layout[float32-cuda]"
  # the kernels added since: in-place dropout, the strided (channels_last) dropout, bias_dropout_add forward
  # and backward (dbias partials and their combine), norm_constraint, non_neg, prox_group_l1, the Philox kernel
  "tests/test_dropout.py::test_in_place_every_dtype[cuda-4097-bfloat16]"
  "tests/test_dropout_layout.py::test_device_layouts_match_the_contiguous_twin[cuda-2x3x5x129-0312]"
  "tests/test_bias_dropout_add.py::test_matches_cpu_and_reference[cuda-(300, 257)-bfloat16]"
  "tests/test_bias_dropout_add.py::test_backward_out[cuda]"
  "tests/test_constraints.py::test_norm_constraint_matches_cpu_and_reference[cuda-(300, 70)-1-float32]"
  "tests/test_constraints.py::test_non_neg_matches_cpu_and_reference[cuda-float16]"
  "tests/test_group_l1.py::test_prox_group_l1_matches_cpu_and_reference[cuda-(5, 6, 7, 8)-(0, 2)-float32]"
  "tests/test_philox.py::test_cuda_generator_all_round_counts[cuda]"
  # the variants: shared-axes (broadcast) dropout, alpha and drop_path on it, Gaussian dropout
  "tests/test_dropout_variants.py::test_matches_reference[cuda-4x5x7x9-2,3-alpha-bfloat16]"
  "tests/test_dropout_variants.py::test_matches_reference[cuda-9x6x33-0-drop_path-float32]"
  "tests/test_gaussian_dropout.py::test_matches_cpu_and_reference[cuda-(17, 2)-float32]"
  "tests/test_gaussian_dropout.py::test_matches_cpu_and_reference[cuda-(7, 3)-bfloat16]"
  # global addressing (a block of a global tensor): rows ending inside groups, the 4-d split, in place
  "tests/test_dropout_global.py::test_block_is_the_slice_of_the_whole_call[cuda-(6, 33)@(1, 7)-bfloat16]"
  "tests/test_dropout_global.py::test_block_is_the_slice_of_the_whole_call[cuda-(3, 4, 5, 7)@(1, 1, 2, 3)-float64]"
  "tests/test_dropout_global.py::test_layouts_out_and_in_place[cuda]"
  # Gaussian dropout and the fused epilogue on a block (rows split mid-group)
  "tests/test_gaussian_dropout_global.py::test_block_is_the_slice_of_the_whole_call[cuda-(8, 12)@(0, 6)-float32]"
  "tests/test_bias_dropout_add_global.py::test_block_is_the_slice_of_the_whole_call[cuda-(5, 40)@(0, 1):(5, 2)-bfloat16]"
)
# racecheck: the kernels that share memory between threads (block sums, max_norm's and norm_constraint's lane
# tiles; bias_dropout_add's dbias partials go through global memory, covered by memcheck)
racecheck_tests=(
  "tests/test_penalty_grad.py::test_penalty_grad_matches_cpu_and_reference[l1+l2-cuda-65537-float32]"
  "tests/test_penalty_grad.py::test_penalty_list_mixing_dtypes_sizes_and_terms[cuda-49]"
  "tests/test_max_norm.py::test_max_norm_matches_cpu_and_reference[cuda-(300, 70)-0-float32]"
  "tests/test_max_norm.py::test_max_norm_matches_cpu_and_reference[cuda-(300, 70)-1-float32]"
  "tests/test_max_norm.py::test_max_norm_matches_cpu_and_reference[cuda-(5, 6, 7, 8)-(0, 2)-float32]"
  "tests/test_penalty_group.py::test_matches_cpu_and_reference[cuda-(300, 70)-0-float32]"
  "tests/test_penalty_group.py::test_matches_cpu_and_reference[cuda-(300, 70)-1-float32]"
  "tests/test_strided_device.py::test_penalty_grad_grads_in_any_layout[float32-cuda]"
  "tests/test_prox_l1.py::test_prox_l1_matches_cpu_and_reference[cuda-0.5-float16]"
  "tests/test_constraints.py::test_non_neg_matches_cpu_and_reference[cuda-float16]"
  "tests/test_constraints.py::test_norm_constraint_matches_cpu_and_reference[cuda-(300, 70)-1-float32]"
)

# The probe: one kernel, one allocation, checked.
cat >"$work/probe.cu" <<'EOF'
#include <cstdio>
__global__ void probe_kernel(int* p) { p[threadIdx.x] = static_cast<int>(threadIdx.x); }
int main() {
  int* p = nullptr;
  cudaError_t e = cudaMalloc(&p, 32 * sizeof(int));
  if (e == cudaSuccess) { probe_kernel<<<1, 32>>>(p); e = cudaDeviceSynchronize(); }
  std::printf("probe: %s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}
EOF
# The ncu driver: bfloat16 dropout forward at 2^26 elements; the second launch is read.
cat >"$work/ncu_dropout.py" <<'EOF'
import torch
import regdrop_fast as rf
x = torch.randn(1 << 26, device="cuda", dtype=torch.bfloat16)
y = torch.empty_like(x)
for seed in range(3):
    rf.dropout(x, 0.5, seed=seed, out=y)
torch.cuda.synchronize()
print("ncu driver: 3 bfloat16 dropout launches of 2^26 elements")
EOF
ncu_metrics=gpu__time_duration.sum,dram__bytes.sum,dram__bytes.sum.per_second
ncu_metrics=$ncu_metrics,dram__throughput.avg.pct_of_peak_sustained_elapsed
ncu_metrics=$ncu_metrics,sm__inst_issued.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active

# ---------------------------------------------------------------------------------------------------------
# dry run: what can be checked without a GPU, then every device stage skipped
if [ "$dry" = 1 ]; then
  if [ "$built" = 1 ]; then
    run_stage probe 120 nvcc -arch=sm_"$arch" -o "$work/probe" "$work/probe.cu" &&
      echo "probe program compiled (not run: no GPU)" | tee -a "$check_log"
    # Collect the GPU tests as the tests stage selects them; every test the sanitizer stages name must exist.
    QUIET=1 run_stage collect 120 "${pytest[@]}" --collect-only -m cuda tests
    collected=$logs/collect.log
    tail -n 1 "$collected"
    if [ "${statuses[-1]}" = ok ]; then
      absent=()
      for id in "${memcheck_tests[@]}" "${racecheck_tests[@]}"; do
        grep -qxF "$id" "$collected" || absent+=("$id")
      done
      if [ "${#absent[@]}" -gt 0 ]; then
        printf 'collect: a sanitizer stage names a test that does not exist: %s\n' "${absent[@]}" |
          tee -a "$check_log"
        statuses[-1]="FAILED (${#absent[@]} sanitizer test ids not found)"
        failed=1
      fi
    fi
    "$python" -m py_compile "$work/ncu_dropout.py" || { record ncu-driver "FAILED (syntax)" 0; }
  fi
  for stage in tests slow torch bench memcheck racecheck ncu; do skip "$stage" "no GPU (dry run)"; done
  finish
fi

# ---------------------------------------------------------------------------------------------------------
# the device stages
if [ "$built" = 0 ]; then
  for stage in probe tests slow torch bench memcheck racecheck ncu; do record "$stage" "FAILED (not built)" 0; done
  finish
fi

sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
sanitizer_ok=0
ncu_ok=0
refused='Device not supported|error 999|LibraryNotLoaded|ERR_NVGPUCTRPERM|Failed to initialize|not supported on this|Unknown Error'
if run_stage probe 60 nvcc -arch=sm_"$arch" -o "$work/probe" "$work/probe.cu" && run_stage probe-run 30 "$work/probe"; then
  if [ -x "$sanitizer" ]; then
    timeout --kill-after=5 60 "$sanitizer" --tool memcheck --error-exitcode 99 "$work/probe" >"$logs/probe-sanitizer.log" 2>&1
    rc=$?
    append_log probe-sanitizer "$logs/probe-sanitizer.log"
    if [ "$rc" -eq 0 ] && ! grep -Eq "$refused" "$logs/probe-sanitizer.log"; then
      sanitizer_ok=1
      record sanitizer "ok (available)" 0
    else
      sanitizer_why=$(grep -Em1 "$refused" "$logs/probe-sanitizer.log" | cut -c1-40)
      record sanitizer "unavailable (exit $rc${sanitizer_why:+: $sanitizer_why})" 0
    fi
  else
    record sanitizer "unavailable (not installed)" 0
  fi
  if [ -x "$ncu" ]; then
    timeout --kill-after=5 90 "$ncu" --clock-control none --metrics gpu__time_duration.sum "$work/probe" \
      >"$logs/probe-ncu.log" 2>&1
    rc=$?
    append_log probe-ncu "$logs/probe-ncu.log"
    if [ "$rc" -eq 0 ] && grep -q "gpu__time_duration" "$logs/probe-ncu.log" && ! grep -Eq "$refused" "$logs/probe-ncu.log"; then
      ncu_ok=1
      record ncu-probe "ok (available)" 0
    else
      ncu_why=$(grep -Em1 "$refused" "$logs/probe-ncu.log" | cut -c1-40)
      record ncu-probe "unavailable (exit $rc${ncu_why:+: $ncu_why})" 0
    fi
  else
    record ncu-probe "unavailable (not installed)" 0
  fi
fi

run_stage tests 150 "${pytest[@]}" tests -m "cuda and not slow"
run_stage slow 60 "${pytest[@]}" tests -m "cuda and slow"
run_stage torch 60 "${pytest[@]}" tests/test_torch.py -k cuda
run_stage bench 150 "$python" -m regdrop_fast bench --device cuda --no-progress --out "$work/bench"
mkdir -p "$results/bench"
for f in results.json table.txt; do
  [ ! -f "$work/bench/$f" ] || cp "$work/bench/$f" "$results/bench/$f"
done
if [ "$sanitizer_ok" = 1 ]; then
  run_stage memcheck 100 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 GPU_CHECK_NO_POOL=1 \
    "$sanitizer" --tool memcheck --error-exitcode 99 --print-limit 30 "${pytest[@]}" "${memcheck_tests[@]}"
  run_stage racecheck 80 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 GPU_CHECK_NO_POOL=1 \
    "$sanitizer" --tool racecheck --error-exitcode 99 --print-limit 30 "${pytest[@]}" "${racecheck_tests[@]}"
else
  record memcheck "unavailable (compute-sanitizer refused)" 0
  record racecheck "unavailable (compute-sanitizer refused)" 0
fi
if [ "$ncu_ok" = 1 ]; then
  run_stage ncu 60 "$ncu" --clock-control none --target-processes all --kernel-name regex:dropout \
    --launch-skip 1 --launch-count 1 --metrics "$ncu_metrics" "$python" "$work/ncu_dropout.py"
  ncu_reading=$(grep -E "gpu__time_duration|dram__|sm__inst_issued|smsp__issue_active" "$logs/ncu.log" | sed 's/^ */  /')
else
  record ncu "unavailable (ncu refused)" 0
fi

if [ -f "$results/bench/table.txt" ]; then
  echo
  cat "$results/bench/table.txt"
fi
finish
