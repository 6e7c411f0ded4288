"""The `regdrop-fast` command line (bench, demo, info), its benchmark harness and its demo.

The command is run as users run it, in a subprocess (``python -m regdrop_fast``); the harness's pieces
(timing, byte counting, size parsing, the ResNet-50 list) and the demo's numerics are also checked in
process. Benchmark figures are never asserted: speed is shown by the benchmark, not by tests.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import regdrop_fast as rdf
from conftest import built_once
from regdrop_fast.bench import cases, report, run, shapes, timing

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="the demo needs scikit-learn")


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m regdrop_fast ARGS` in cwd; returns the finished process (text output)."""
    env = dict(os.environ)
    env.pop("REGDROP_SIMD", None)
    return subprocess.run([sys.executable, "-m", "regdrop_fast", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# ----------------------------------------------------------------------------------------------------------
# help, version, info


@pytest.mark.parametrize("args", [[], ["bench"], ["demo"], ["info"]], ids=["top", "bench", "demo", "info"])
def test_help_of_every_subcommand(args, tmp_path):
    proc = cli(*args, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: regdrop-fast")
    assert proc.stderr == ""
    if args == ["bench"]:
        for option in ("--quick", "--out", "--device", "--threads", "--sizes", "--frameworks", "--repeats"):
            assert option in proc.stdout
        assert "--tiny" not in proc.stdout  # test-only, hidden


def test_version(tmp_path):
    proc = cli("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"regdrop_fast {rdf.__version__}"


def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).parent / "regdrop-fast"
    if not script.exists():
        pytest.skip("no regdrop-fast script beside this interpreter (package not installed by pip here)")
    proc = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and rdf.__version__ in proc.stdout


def test_info_is_a_table_of_backend_info(tmp_path):
    proc = cli("info", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = rdf.backend_info()
    lines = proc.stdout.splitlines()
    table = {line[:line.index("  ")].strip(): line[line.index("  "):].strip() for line in lines}
    assert table["regdrop_fast version"] == info["version"]
    assert table["SIMD path in use"] == info["simd"]
    assert table["threads in use"] == str(info["num_threads"])
    assert table["CUDA backend compiled"] == ("yes" if info["cuda_compiled"] else "no")
    assert table["numpy"] == np.__version__


def test_info_json_is_backend_info(tmp_path):
    proc = cli("info", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(json.dumps(rdf.backend_info(), default=str))


# ----------------------------------------------------------------------------------------------------------
# bad arguments: exit code 2, one line on stderr, no traceback


def _blocked_dir(tmp_path: Path) -> str:
    """A path no one can create: its parent is a regular file (chmod would not stop root)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    return str(blocker / "out")


BAD_ARGUMENTS = {
    "unknown-device": ["bench", "--device", "tpu"],
    "negative-size": ["bench", "--sizes", "-5"],
    "zero-size": ["bench", "--sizes", "1024,0"],
    "size-not-a-number": ["bench", "--sizes", "2^x"],
    "negative-power": ["bench", "--sizes", "2^-3"],
    "zero-threads": ["bench", "--threads", "0"],
    "negative-repeats": ["bench", "--repeats", "-1"],
    "unknown-case": ["bench", "--cases", "dropout,conv"],
    "unknown-framework": ["bench", "--frameworks", "numpy,mxnet"],
    "unknown-dtype": ["bench", "--dtypes", "float8"],
    "unwritable-bench-out": ["bench", "--out", "BLOCKED"],
    "zero-epochs": ["demo", "--epochs", "0"],
    "unknown-part": ["demo", "--only", "svm"],
    "unwritable-demo-out": ["demo", "--out", "BLOCKED"],
    "unknown-subcommand": ["train"],
    "no-subcommand": [],
    "unknown-option": ["info", "--verbose"],
}


@pytest.mark.parametrize("name", sorted(BAD_ARGUMENTS))
def test_bad_argument_is_one_line_and_exit_2(name, tmp_path):
    args = [_blocked_dir(tmp_path) if a == "BLOCKED" else a for a in BAD_ARGUMENTS[name]]
    proc = cli(*args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("regdrop-fast")
    assert "error:" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "bench-out").exists() and not (tmp_path / "demo-out").exists()


def test_unwritable_out_names_the_path(tmp_path):
    blocked = _blocked_dir(tmp_path)
    proc = cli("bench", "--out", blocked, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert blocked in proc.stderr and "cannot write" in proc.stderr


def test_out_naming_a_file_says_it_is_not_a_directory(tmp_path):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    proc = cli("bench", "--out", str(existing), cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert str(existing) in proc.stderr and "not a directory" in proc.stderr
    assert existing.read_text() == "keep me"


def test_too_many_threads_warn_and_report_the_threads_used(tmp_path):
    proc = cli("bench", "--quick", "--tiny", "--cases", "latency", "--frameworks", "numpy", "--threads", "1000",
               "--no-progress", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp_path / "o" / "results.json").read_text())["meta"]
    used = meta["threads"]["regdrop_fast"]
    assert meta["threads_requested"] == 1000 and used < 1000  # capped at max(4 x CPUs, 256)
    assert f"using {used} threads" in proc.stderr and f"threads={used}" in proc.stdout
    assert any(f"using {used} threads" in n for n in meta["notes"])


def test_cuda_device_without_a_gpu_is_refused_clearly(tmp_path):
    if rdf.backend_info().get("cuda_devices"):
        pytest.skip("a CUDA device is present")
    proc = cli("bench", "--device", "cuda", "--out", str(tmp_path / "o"), cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "--device cuda" in proc.stderr
    assert not (tmp_path / "o" / "results.json").exists()


# ----------------------------------------------------------------------------------------------------------
# bench: a tiny end-to-end run


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory):
    """`bench --quick` shrunk to two sizes, three repeats and small penalty lists (hidden --tiny): run once per
    session (~25 s), also when pytest-xdist spreads the tests that read it over several workers."""
    with built_once(tmp_path_factory, "bench") as (out, done):
        if not done:
            proc = cli("bench", "--quick", "--tiny", "--sizes", "2^10,4100", "--repeats", "3", "--out",
                       str(out / "res"), cwd=out)
            (out / "proc.json").write_text(json.dumps([proc.args, proc.returncode, proc.stdout, proc.stderr]))
        args, returncode, stdout, stderr = json.loads((out / "proc.json").read_text())
    return subprocess.CompletedProcess(args, returncode, stdout, stderr), out / "res"


@pytest.mark.long(cpu_s=25)  # its fixture runs the benchmark
def test_bench_runs_and_writes_its_files(tiny_bench):
    proc, out = tiny_bench
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    table = (out / "table.txt").read_text().strip()
    assert table in proc.stdout  # the printed tables, saved
    for title in ("dropout forward, float32", "dropout backward, bfloat16", "penalty_grad over list a:",
                  "penalty_grad over list c:", "latency: dropout forward, 1024 elements",
                  "dropout forward on a channels_last array vs its C-contiguous twin, float32",
                  "dropout forward+backward on a channels_last array vs its C-contiguous twin, float32"):
        assert title in table
    if HAVE_MATPLOTLIB:
        png = (out / "bench.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    else:
        assert not (out / "bench.png").exists()
        assert "matplotlib is not installed" in proc.stdout
    # stderr is not a terminal here: no bar, one plain line per case
    assert "[1/" in proc.stderr and "dropout forward float32" in proc.stderr and "penalty_grad" in proc.stderr
    assert "%|" not in proc.stderr and "\r" not in proc.stderr
    # which peers were compared, at the top and at the bottom, with the commands that add the missing ones
    summary = [line for line in proc.stdout.splitlines() if line.startswith("peers compared: ")]
    assert len(summary) == 3  # before the run, in the table header, at the end
    assert proc.stdout.startswith("peers compared: ") and proc.stdout.rstrip().splitlines()[-1].startswith(
        ("peers compared: ", "    ")
    )
    for name, command in run.PEER_INSTALL.items():
        assert (command in proc.stdout) == (importlib.util.find_spec(name) is None)
    # the layer section (regdrop_fast.torch.Dropout vs torch.nn.Dropout) runs when torch is importable
    if importlib.util.find_spec("torch") is not None:
        assert "torch layer forward+backward, float32, n=4100" in table
        assert "regdrop_fast.torch.Dropout(store='seed')" in table
    else:
        assert "layer: regdrop_fast.torch.Dropout vs torch.nn.Dropout needs torch" in proc.stdout


def test_bench_results_json_records_the_run(tiny_bench):
    proc, out = tiny_bench
    data = json.loads((out / "results.json").read_text())
    meta = data["meta"]
    assert meta["command"].startswith("regdrop-fast bench --quick --tiny")
    for key in ("date", "cpu_model", "usable_cpus", "platform", "python", "git", "build", "backend_info", "load_average_end",
                "load_average_start", "cpu_busy_before_start", "notes"):
        assert key in meta
    assert meta["versions"]["numpy"] == np.__version__
    assert meta["versions"]["regdrop_fast"] == rdf.__version__
    assert meta["threads"]["regdrop_fast"] == rdf.get_num_threads()
    assert meta["settings"]["sizes"] == [1024, 4100] and meta["settings"]["repeats"] == 3
    copy = meta["copy_reference"]  # measured before and after the cases
    assert copy["start"]["gbps"] > 0 and copy["end"]["gbps"] > 0
    assert copy["change"] == pytest.approx(copy["end"]["gbps"] / copy["start"]["gbps"] - 1)
    assert meta["noise"]["noisy_above"] == timing.NOISY_SPREAD
    assert copy["start"]["kernel"] == "regdrop_fast.bench.limits.copy"
    rng = meta["rng_ceiling"]  # mask-only words per second, from the largest dropout case
    assert rng["size"] == 4100 and rng["threads"] == meta["threads"]["regdrop_fast"]
    assert rng["words_per_s_per_thread"] == pytest.approx(rng["words_per_s"] / rng["threads"])
    rows = data["rows"]
    assert meta["noise"]["noisy_rows"] == sum(r["noisy"] for r in rows)
    for r in rows:
        assert r["spread"] == pytest.approx((r["seconds_max"] - r["seconds_min"]) / r["seconds"])
        assert r["noisy"] == (r["spread"] > timing.NOISY_SPREAD)
    table = (out / "table.txt").read_text()
    assert (report.NOISY_LEGEND in table) == any(r["noisy"] for r in rows)
    for name in ("torch", "jax", "tensorflow"):
        compared = name in meta["versions"]
        assert compared == (name in meta["settings"]["peers"])
        if importlib.util.find_spec(name) is None:
            assert not compared


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["rows"]


def test_bench_epilogue_rows(tiny_bench):
    """The epilogue section: both ops and dtypes at --tiny's shape, the bytes each op must move, ratios
    against every compared peer (torch.compile is left out with --tiny)."""
    from regdrop_fast.bench import epilogue

    _, out = tiny_bench
    rows = [r for r in _rows(out) if r["section"] == "epilogue"]
    peers = json.loads((out / "results.json").read_text())["meta"]["settings"]["peers"]
    table = (out / "table.txt").read_text()
    h, w = epilogue.TINY_SHAPE
    for op in epilogue.OPS:
        for dtype, itemsize in (("float32", 4), ("bfloat16", 2)):
            assert f"epilogue residual + dropout(x + bias) {op}, {dtype}, {h}x{w}" in table
            group = {r["impl"]: r for r in rows if (r["op"], r["dtype"]) == (op, dtype)}
            ours = [r for r in group.values() if r["framework"] == "regdrop_fast"]
            assert len(ours) == 2
            bits = next(r for r in ours if r["impl"].endswith("bits"))
            assert bits["bytes"] == epilogue.epilogue_bytes((h, w), itemsize, op)
            assert bits["bytes"] == (3 * h * w * itemsize + w * itemsize + h * w // 8 if op == "forward" else
                                     5 * h * w * itemsize + 2 * w * itemsize + 2 * (h * w // 8))
            assert set(bits["speedup"]) == {p_ for p_ in peers if p_ in ("numpy", "torch")}
            for r in ours:  # every regdrop_fast row draws the stream: the mask-only ceiling applies
                assert r["rng_seconds"] is not None and r["memory_seconds"] is not None, r["impl"]
                assert r["limit_seconds"] == max(r["memory_seconds"], r["rng_seconds"])


def test_bench_dropout_rows(tiny_bench):
    _, out = tiny_bench
    rows = [r for r in _rows(out) if r["section"] == "dropout"]
    peers = json.loads((out / "results.json").read_text())["meta"]["settings"]["peers"]
    for op in ("forward", "backward"):
        for dtype, itemsize in (("float32", 4), ("bfloat16", 2)):
            for n in (1024, 4100):
                group = {r["impl"]: r for r in rows if (r["op"], r["dtype"], r["size"]) == (op, dtype, n)}
                data_bytes = 2 * n * itemsize
                assert group["regdrop_fast bits"]["bytes"] == data_bytes + (n + 7) // 8
                assert group["regdrop_fast seed"]["bytes"] == data_bytes
                copy = group[cases.COPY_NAME]
                assert abs(copy["bytes"] - (data_bytes + (n + 7) // 8)) <= 1
                # the limits: the same bytes copied on the same threads, and the mask-only stream
                limit_bits, limit_seed = group["limit: copy (bits bytes)"], group["limit: copy (seed bytes)"]
                assert abs(limit_bits["bytes"] - (data_bytes + (n + 7) // 8)) <= 1
                assert limit_seed["bytes"] == data_bytes
                rng = group["limit: mask only (RNG)"]
                assert rng["ceiling"] == "rng" and rng["words_per_s"] == pytest.approx(n / rng["seconds"])
                for name, r in group.items():
                    if r["framework"] == "limit":
                        assert r["limit_fraction"] is None
                        continue
                    draws = r["framework"] == "regdrop_fast" and (op == "forward" or name.endswith("seed"))
                    assert (r["rng_seconds"] is not None) == draws, name
                    if draws:
                        assert r["limit_seconds"] == max(r["memory_seconds"], r["rng_seconds"])
                        assert r["bound"] == ("memory" if r["memory_seconds"] >= r["rng_seconds"] else "rng")
                    else:
                        assert r["bound"] == "memory" and r["limit_seconds"] == r["memory_seconds"]
                    assert r["limit_fraction"] == pytest.approx(r["limit_seconds"] / r["seconds"])
                assert group["regdrop_fast seed"]["memory_seconds"] == pytest.approx(limit_seed["seconds"])
                frameworks = {r["framework"] for r in group.values()}
                assert "numpy" in frameworks
                if "torch" in peers:
                    assert "torch" in frameworks
                for r in group.values():
                    assert r["seconds"] > 0 and math.isfinite(r["gbps"]) and r["repeats"] == 3
                    assert r["seconds_min"] <= r["seconds"] and r["seconds_q1"] <= r["seconds"] <= r["seconds_q3"]
                ours = group["regdrop_fast bits"]
                for peer in (r for r in group.values() if r["framework"] in peers):
                    assert ours["speedup"][peer["framework"]] == pytest.approx(peer["seconds"] / ours["seconds"])


def test_bench_penalty_and_latency_rows(tiny_bench):
    _, out = tiny_bench
    rows = _rows(out)
    penalty = [r for r in rows if r["section"] == "penalty"]
    lists = {r["op"]: r for r in penalty if r["impl"] == "regdrop_fast penalty_grad l2"}
    assert len(lists) == 3
    for plist in shapes.penalty_lists(tiny=True):
        row = lists[plist.label]
        assert row["arrays"] == len(plist.shapes) and row["size"] == plist.values
        assert row["bytes"] == 12 * plist.values
    assert {r["framework"] for r in penalty} >= {"regdrop_fast", "numpy", "copy", "limit"}
    for r in penalty:
        if r["framework"] == "limit":
            assert r["impl"] == "limit: read-modify-write" and abs(r["bytes"] - 12 * r["size"]) <= 2
        else:
            assert r["bound"] == "memory" and r["limit_fraction"] == pytest.approx(r["limit_seconds"] / r["seconds"])
    latency = [r for r in rows if r["section"] == "latency"]
    assert {r["size"] for r in latency} == {1024}
    assert any(r["impl"].startswith("regdrop_fast dropout(") for r in latency)
    if any(r["framework"] == "torch" for r in latency):  # the torch layer's rows come with torch's own
        layer = [r for r in latency if r["impl"].startswith("regdrop_fast.torch")]
        assert len(layer) == 2 and all("torch" in r["speedup"] for r in layer)


def test_bench_constraint_rows(tiny_bench):
    """The constraints section: prox_group_l1 and norm_constraint over (the first few, --tiny) ResNet-50 conv
    filters, with the limit (same-bytes copy), NumPy and (when importable) torch rows, bytes read w + write w."""
    from regdrop_fast.bench import constraints

    _, out = tiny_bench
    rows = [r for r in _rows(out) if r["section"] == "constraints"]
    n = sum(math.prod(s) for s in constraints.conv_filters(tiny=True))
    for op in ("prox_group_l1", "norm_constraint", "non_neg"):
        group = [r for r in rows if r["op"] == op]
        frameworks = {r["framework"] for r in group}
        assert frameworks >= {"regdrop_fast", "numpy", "limit"}
        assert all(r["limit_fraction"] > 0 for r in group if r["framework"] != "limit"), "x limit on every row"
        assert ("torch" in frameworks) == (importlib.util.find_spec("torch") is not None)
        assert all(r["size"] == n and r["bytes"] in (8 * n, 8 * n + 1) for r in group)
        assert f"{op} over ResNet-50's conv filters" in (out / "table.txt").read_text()


def test_bench_constraint_implementations_agree_and_keep_the_weights():
    """Every implementation of a constraints case does the same thing, and repeated calls see the same data:
    the weights stay as they were (the factors are exactly 1)."""
    from regdrop_fast.bench import constraints, frameworks

    peers = [frameworks.load("torch")] if frameworks.installed("torch") else []
    for case in constraints.constraint_cases(peers, [], tiny=True):
        for impl in case.build():  # each runs (twice: what the timer does, on the same arrays)
            impl.fn()
            impl.fn()
    rng = np.random.default_rng(cases.SEED)
    original = [rng.standard_normal(s, dtype=np.float32) for s in constraints.conv_filters(tiny=True)]
    # the compositions against regdrop_fast on real thresholds (not the benchmark's no-op ones)
    w = [a * 0.1 for a in original]
    ours, numpy_ = [a.copy() for a in w], [a.copy() for a in w]
    rdf.prox_group_l1(ours, 0.5, axis=constraints.AXES)
    constraints._numpy_prox(numpy_, 0.5)
    for a, b in zip(ours, numpy_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ours, numpy_ = [a.copy() for a in w], [a.copy() for a in w]
    for a in ours:
        rdf.norm_constraint(a, min_value=2.0, max_value=3.0, rate=0.5, axis=constraints.AXES)
    constraints._numpy_norm_constraint(numpy_, 2.0, 3.0, 0.5)
    for a, b in zip(ours, numpy_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the benchmark's arguments leave the weights bit for bit unchanged
    for a in original:
        before = a.copy()
        rdf.prox_group_l1(a, constraints.THRESHOLD, axis=constraints.AXES)
        rdf.norm_constraint(a, min_value=constraints.MIN_VALUE, rate=constraints.RATE, axis=constraints.AXES)
        constraints._numpy_prox([a], constraints.THRESHOLD)
        constraints._numpy_norm_constraint([a], constraints.MIN_VALUE, np.inf, constraints.RATE)
        assert a.tobytes() == before.tobytes()


def test_bench_group_penalty_rows_and_implementations_agree(tiny_bench):
    """The constraints section's penalty_grad(group_l1=) case: limit (read-modify-write), regdrop_fast, NumPy and
    (when importable) torch rows over 12 bytes per value; every implementation adds the same gradient."""
    from regdrop_fast.bench import constraints, frameworks

    _, out = tiny_bench
    n = sum(math.prod(s) for s in constraints.conv_filters(tiny=True))
    group = [r for r in _rows(out) if r["section"] == "constraints" and r["op"] == "penalty_group_l1"]
    assert {r["framework"] for r in group} >= {"regdrop_fast", "numpy", "limit"}
    assert all(r["size"] == n and r["bytes"] == 12 * n for r in group)
    assert all(r["limit_fraction"] > 0 for r in group if r["framework"] != "limit")
    rng = np.random.default_rng(cases.SEED)
    ws = [rng.standard_normal(s, dtype=np.float32) for s in constraints.conv_filters(tiny=True)]
    ours, numpy_ = [np.zeros_like(w) for w in ws], [np.zeros_like(w) for w in ws]
    rdf.penalty_grad(ws, ours, group_l1=constraints.GROUP_L1, axis=constraints.AXES)
    constraints.numpy_group_penalty(ws, numpy_)
    others = [numpy_]
    if frameworks.installed("torch"):
        torch_ = [np.zeros_like(w) for w in ws]
        constraints.torch_group_penalty(frameworks.load("torch").module, ws, torch_)()
        others.append(torch_)
    for other in others:
        for a, b in zip(ours, other):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# bench harness pieces, in process


def test_parse_size():
    assert cases.parse_size("2^10") == 1024
    assert cases.parse_size(" 65536 ") == 65536
    for bad in ("0", "-1", "2^-1", "3^4", "x", "", "2^40"):
        with pytest.raises(ValueError):
            cases.parse_size(bad)
    assert cases.size_label(1 << 20) == "2^20" and cases.size_label(1000) == "1000"
    assert cases.default_sizes(False) == [1 << e for e in range(10, 25, 2)]
    assert max(cases.default_sizes(True)) < 1 << 24


def test_resnet50_list_is_the_architecture():
    """161 arrays, 25,557,032 values, and the same list as rebuilt from the block structure."""
    names = [name for name, _ in shapes.RESNET50_PARAMETERS]
    assert len(names) == 161 and len(set(names)) == 161
    assert sum(math.prod(s) for _, s in shapes.RESNET50_PARAMETERS) == 25_557_032
    rebuilt = [("conv1.weight", (64, 3, 7, 7)), ("bn1.weight", (64,)), ("bn1.bias", (64,))]
    inplanes = 64
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for b in range(blocks):
            pre = f"layer{stage}.{b}."
            for conv, shape in (("1", (width, inplanes, 1, 1)), ("2", (width, width, 3, 3)),
                                ("3", (4 * width, width, 1, 1))):
                rebuilt += [(f"{pre}conv{conv}.weight", shape), (f"{pre}bn{conv}.weight", shape[:1]),
                            (f"{pre}bn{conv}.bias", shape[:1])]
            if b == 0:
                rebuilt += [(f"{pre}downsample.0.weight", (4 * width, inplanes, 1, 1)),
                            (f"{pre}downsample.1.weight", (4 * width,)), (f"{pre}downsample.1.bias", (4 * width,))]
            inplanes = 4 * width
    rebuilt += [("fc.weight", (1000, 2048)), ("fc.bias", (1000,))]
    assert list(shapes.RESNET50_PARAMETERS) == rebuilt
    lists = shapes.penalty_lists()
    assert [(len(p.shapes), p.values) for p in lists] == [(200, 200 * 65536), (161, 25_557_032), (1000, 64_000)]


def test_resnet50_list_matches_torchvision():
    tv = pytest.importorskip("torchvision")
    model = tv.models.resnet50()
    assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == list(shapes.RESNET50_PARAMETERS)


def test_measure_interleaves_and_reports_medians():
    calls = {"a": 0, "b": 0}
    order = []

    def make(name):
        def fn():
            calls[name] += 1
            order.append(name)
        return fn

    result = timing.measure({"a": make("a"), "b": make("b")}, repeats=4, min_sample_s=1e-4)
    assert set(result) == {"a", "b"}
    for name, t in result.items():
        assert t.repeats == 4 and t.calls >= 1
        assert 0 < t.min <= t.q1 <= t.median <= t.q3
        assert calls[name] >= 1 + 4 * t.calls  # warm-up + the timed samples (+ calibration)
    # the timed samples alternate between the two, starting with a different one each repeat
    per_repeat = result["a"].calls + result["b"].calls
    timed = order[-4 * per_repeat:]
    assert timed[::per_repeat] == ["a", "b", "a", "b"]
    with pytest.raises(ValueError):
        timing.measure({"a": make("a")}, repeats=0, min_sample_s=1e-4)


def test_make_rows_counts_bytes_and_speedups():
    case = cases.Case("dropout", "forward", "float32", 1000, "x", build=lambda: [])
    impls = [cases.Impl(cases.COPY_NAME, "copy", lambda: None, 8000),
             cases.Impl("limit: copy (bits bytes)", "limit", lambda: None, 8126, ceiling="memory"),
             cases.Impl("limit: copy (seed bytes)", "limit", lambda: None, 8000, ceiling="memory"),
             cases.Impl("limit: mask only (RNG)", "limit", lambda: None, 125, ceiling="rng", elements=1000),
             cases.Impl("regdrop_fast bits", "regdrop_fast", lambda: None, 8125, draws=True),
             cases.Impl("regdrop_fast seed", "regdrop_fast", lambda: None, 8000, draws=True),
             cases.Impl("numpy naive", "numpy", lambda: None, 8125),
             cases.Impl("torch F.dropout", "torch", lambda: None, 8125)]

    def t(median):
        return timing.Timing(median=median, q1=median, q3=median, min=median, calls=1, repeats=1)

    rows = report.make_rows(case, impls, {cases.COPY_NAME: t(1e-6), "limit: copy (bits bytes)": t(1.6e-6),
                                          "limit: copy (seed bytes)": t(0.8e-6),
                                          "limit: mask only (RNG)": t(1.0e-6),
                                          "regdrop_fast bits": t(2e-6), "regdrop_fast seed": t(1.25e-6),
                                          "numpy naive": t(10e-6), "torch F.dropout": t(50e-6)})
    by = {r["impl"]: r for r in rows}
    assert by[cases.COPY_NAME]["gbps"] == pytest.approx(8.0)
    bits, seed = by["regdrop_fast bits"], by["regdrop_fast seed"]
    assert bits["gbps"] == pytest.approx(8125 / 2e-6 / 1e9)
    # bits: memory limit 1.6 us scaled to 8125 of 8126 bytes, slower than the mask-only 1.0 us: memory binds
    assert bits["memory_seconds"] == pytest.approx(1.6e-6 * 8125 / 8126)
    assert bits["bound"] == "memory" and bits["bound_margin"] == pytest.approx(1.6 * 8125 / 8126)
    assert bits["limit_fraction"] == pytest.approx(1.6e-6 * 8125 / 8126 / 2e-6)
    # seed: memory 0.8 us (its own bytes), mask-only 1.0 us: the stream binds, by 1.25x
    assert seed["bound"] == "rng" and seed["bound_margin"] == pytest.approx(1.25)
    assert seed["limit_fraction"] == pytest.approx(1.0 / 1.25)
    # peers: the memory limit of their bytes only
    assert by["numpy naive"]["bound"] == "memory" and by["numpy naive"]["rng_seconds"] is None
    assert by["limit: mask only (RNG)"]["words_per_s"] == pytest.approx(1e9)
    assert by["limit: copy (bits bytes)"]["limit_fraction"] is None
    assert bits["speedup"] == pytest.approx({"numpy": 5.0, "torch": 25.0})  # copy and limits are not peers
    assert "speedup" not in by["numpy naive"]
    text = report.format_tables(rows, 0.5)
    assert "5.00x" in text and "25.00x" in text and "vs torch" in text
    assert "x limit" in text and "rng 1.25x" in text and "1.00 Gw/s" in text and report.LIMIT_LEGEND in text


# ----------------------------------------------------------------------------------------------------------
# demo


@needs_sklearn
def test_regression_reaches_sklearn():
    from regdrop_fast.demo import regression

    fits = regression.fit_all()
    assert [f.name.split("(")[0] for f in fits] == ["Ridge", "Lasso", "ElasticNet"]
    for fit in fits:
        assert fit.max_rel_diff <= 1e-6, fit.name
        assert np.array_equal(fit.ours == 0, fit.sklearn == 0), fit.name
        assert fit.zeros == int(np.sum(fit.ours == 0))
    assert fits[1].zeros > 0  # the Lasso fit has exact zeros, found by prox_l1


@needs_sklearn
@pytest.mark.parametrize("cfg_index", [1, 3], ids=["l2", "dropout+max-norm"])
def test_mlp_gradients_match_finite_differences(cfg_index):
    """The demo's hand-written backprop (dropout_backward, penalty_grad) is the derivative of its loss."""
    from regdrop_fast.demo import mlp

    cfg = mlp.CONFIGS[cfg_index]
    if cfg.l2 == 0:
        cfg = mlp.Config(cfg.name, l2=0.01, p_input=cfg.p_input, p_hidden=cfg.p_hidden)
    rng = np.random.default_rng(5)
    x = rng.random((8, 6))
    labels = rng.integers(0, 4, 8)
    net = mlp.MLP(6, 7, 4, seed=3, dtype=np.float64)
    net.b1 += 0.1  # keep units away from the ReLU kink

    def loss_at():
        return mlp.loss_and_gradients(net, x, labels, cfg, mlp.Stream(11))[0]  # same masks every time

    _, grads = mlp.loss_and_gradients(net, x, labels, cfg, mlp.Stream(11))
    eps = 1e-6
    for param, grad in zip(net.params, grads):
        numeric = np.zeros_like(param)
        for i in np.ndindex(param.shape):
            keep = param[i]
            param[i] = keep + eps
            up = loss_at()
            param[i] = keep - eps
            down = loss_at()
            param[i] = keep
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@needs_sklearn
def test_demo_real_settings(tmp_path):
    """The demo exactly as users run it: sklearn match and the >= 97% bar, files written, exit 0."""
    proc = cli("demo", "--out", str(tmp_path / "d"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    results = json.loads((tmp_path / "d" / "results.json").read_text())
    assert len(results["regression"]) == 3
    for fit in results["regression"]:
        assert fit["max_rel_diff"] <= 1e-6 and fit["same_zeros"] and fit["ok"]
    runs = {r["config"]: r for r in results["mlp"]["runs"]}
    assert list(runs) == ["no regularization", "L2", "dropout", "dropout + max-norm"]
    assert results["mlp"]["epochs"] == 100
    assert runs["dropout + max-norm"]["test_acc"][-1] >= 0.97
    plain = runs["no regularization"]
    assert plain["train_loss"][-1] < plain["test_loss"][-1]  # the overfitting gap the plot shows
    assert "np.dot(theta, 2 * theta)" in proc.stdout  # the article's mistakes are explained
    if HAVE_MATPLOTLIB:
        assert (tmp_path / "d" / "mlp_loss.png").read_bytes().startswith(PNG_SIGNATURE)


@needs_sklearn
def test_demo_output_is_reproducible(tmp_path):
    first = cli("demo", "--only", "mlp", "--epochs", "2", "--out", "o", cwd=tmp_path)
    second = cli("demo", "--only", "mlp", "--epochs", "2", "--out", "o", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert "dropout + max-norm" in first.stdout
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["mlp"]["epochs"] == 2 and "regression" not in results


# ----------------------------------------------------------------------------------------------------------
# examples/

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["dropout_layer.py", "lasso_prox_l1.py", "gpt_block.py",
                                    "variational_rnn_dropout.py",
                                    pytest.param("ddp_world_size_invariance.py", marks=pytest.mark.distributed)])
def test_example_runs(script, tmp_path):
    path = EXAMPLES / script
    if not path.exists():
        pytest.skip("no examples/ beside the tests")
    if script == "lasso_prox_l1.py" and not HAVE_SKLEARN:
        pytest.skip("needs scikit-learn")
    if script in ("gpt_block.py", "ddp_world_size_invariance.py") and importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch")
    if script == "ddp_world_size_invariance.py":
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_gloo_available()):
            pytest.skip("needs torch.distributed with gloo")
    # The DDP example spawns 2 + 4 processes that each import torch: allow for a busy 2-core machine.
    timeout = 300 if script == "ddp_world_size_invariance.py" else 120
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    if script == "lasso_prox_l1.py":
        rel = float(proc.stdout.rsplit("max relative difference", 1)[1])
        assert rel <= 1e-6
    if script == "ddp_world_size_invariance.py":
        assert "world size 4" in proc.stdout
        rel = float(proc.stdout.rsplit("max relative difference from world size 1:", 1)[1])
        assert rel < 1e-5


def test_bench_variants_rows(tiny_bench):
    """The variants section: Dropout2d, DropPath and alpha dropout forward+backward for both dtypes, the bytes
    each must move (4 n items + the mask twice), the mask each keeps for the backward, the limits (the
    mask-only ceiling of the case's decisions) and ratios against torch when it is compared; Gaussian dropout
    forward and forward+backward (float32, no mask), its bytes, both limits, ratios against torch and NumPy."""
    from regdrop_fast.bench import variants

    _, out = tiny_bench
    rows = [r for r in _rows(out) if r["section"] == "variants"]
    peers = json.loads((out / "results.json").read_text())["meta"]["settings"]["peers"]
    table = (out / "table.txt").read_text()
    n = 4100
    for op, shape, decisions in (("dropout2d", variants.nchw(n), variants.nchw(n)[0] * variants.nchw(n)[1]),
                                 ("drop_path", variants.rows_of(n), variants.rows_of(n)[0]),
                                 ("alpha_dropout", variants.rows_of(n), int(np.prod(variants.rows_of(n))))):
        size = int(np.prod(shape))
        for dtype, itemsize in (("float32", 4), ("bfloat16", 2)):
            assert f"variants {op} forward+backward, {dtype}, {'x'.join(map(str, shape))}, {decisions:,} decisions" in table
            group = {r["impl"]: r for r in rows if (r["op"], r["dtype"]) == (op, dtype)}
            bits = group[f"regdrop_fast {op} + backward bits"]
            seed = group[f"regdrop_fast {op} + backward seed"]
            assert bits["bytes"] == 4 * size * itemsize + 2 * ((decisions + 7) // 8)
            assert seed["bytes"] == 4 * size * itemsize
            assert bits["mask_kept"][bits["impl"]] == (decisions + 7) // 8 and seed["mask_kept"][seed["impl"]] == 0
            limit = group["limit: mask only (RNG)"]
            assert limit["words_per_s"] == pytest.approx(decisions / limit["seconds"])
            for r in (bits, seed):
                assert r["rng_seconds"] is not None and r["limit_seconds"] == max(r["memory_seconds"], r["rng_seconds"])
            assert set(bits["speedup"]) == {p_ for p_ in peers if p_ == "torch"}
            if "torch" in peers:
                torch_row = next(r for r in group.values() if r["framework"] == "torch")
                assert torch_row["mask_kept"][torch_row["impl"]] > 0
    for op in variants.GAUSSIAN_OPS:
        assert f"variants {op}, float32, n={n}, p={variants.GAUSSIAN_P}" in table
        group = [r for r in rows if r["op"] == op]
        ours = [r for r in group if r["framework"] == "regdrop_fast"]
        assert len(ours) == 1
        assert ours[0]["bytes"] == variants.gaussian_bytes(n, 4, op) == (2 if op.endswith(" forward") else 4) * n * 4
        assert ours[0]["rng_seconds"] is not None and ours[0]["memory_seconds"] is not None
        assert ours[0]["limit_seconds"] == max(ours[0]["memory_seconds"], ours[0]["rng_seconds"])
        assert set(ours[0]["speedup"]) == {p_ for p_ in peers if p_ in ("numpy", "torch")}
    assert table.count("targets") >= 3 * 2 + len(variants.GAUSSIAN_OPS)


def test_bench_global_rows(tiny_bench):
    """The global section (issue 16): a Shard(1) block against a contiguous call of the same size, forward and
    forward+backward, with the speed ratio and its target line."""
    _, out = tiny_bench
    rows = [r for r in _rows(out) if r["section"] == "global"]
    assert sorted({r["op"] for r in rows}) == ["dropout forward", "dropout forward+backward"]
    for r in rows:
        assert r["size"] == 2 * 2048 and r["shape"] == [2, 2048] and r["global_shape"] == [2, 4096]
        assert r["framework"] in ("regdrop_fast", "contiguous")
        if r["framework"] == "regdrop_fast":
            assert r["speedup"]["contiguous"] > 0
    table = (out / "table.txt").read_text()
    assert "dropout forward of a Shard(1) block (local 2x2048 at column 2048 of 2x4096)" in table
    assert table.count(f"(>= {cases.GLOBAL_TARGET:g}: ") == 2
