"""The `regdrop-fast` command (also `python -m regdrop_fast`): bench, demo, info.

Every bad argument ends the process with exit code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

PROG = "regdrop-fast"


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _size_list(text: str) -> list[int]:
    from .bench.cases import parse_size

    try:
        sizes = [parse_size(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not sizes:
        raise argparse.ArgumentTypeError("expected at least one size")
    return sorted(set(sizes))


def _choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"{', '.join(bad) or repr(text)} not among {', '.join(choices)}")
        return list(dict.fromkeys(items))

    return parse


def _writable_dir(parser: argparse.ArgumentParser, path: Path) -> Path:
    """Create path if needed and prove a file can be written there, before any long work starts."""
    if path.exists() and not path.is_dir():
        parser.error(f"--out {path}: is an existing file, not a directory (name a directory; it is created "
                     "if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".regdrop-fast-probe-"):
            pass
    except OSError as exc:
        parser.error(f"--out {path}: cannot write there ({exc.strerror or exc})")
    return path


def _cuda_problem() -> str | None:
    """Why `bench --device cuda` cannot run here, as one sentence; None when it can."""
    from . import backend_info

    if not backend_info().get("cuda_compiled"):
        return ("--device cuda: this regdrop_fast build has no CUDA backend (backend_info()['cuda_compiled'] is "
                "False); install it with nvcc present to build one")
    try:
        from . import cuda

        devices = cuda.device_count()
    except Exception as exc:  # a driver problem is reported, not raised
        return f"--device cuda: the CUDA backend cannot be used ({type(exc).__name__}: {exc})"
    if devices < 1:
        return "--device cuda: no CUDA device is visible to this process"
    try:
        import torch
    except ImportError:
        return "--device cuda: the CUDA benchmark compares with PyTorch and needs it installed with CUDA support"
    if not torch.cuda.is_available():
        return f"--device cuda: PyTorch {torch.__version__} cannot use the GPU (torch.cuda.is_available() is False)"
    return None


def _add_bench(sub: argparse._SubParsersAction[_Parser]) -> None:
    from .bench import frameworks
    from .bench.run import SECTIONS

    p = sub.add_parser(
        "bench", help="benchmark dropout and penalties against NumPy / PyTorch / JAX / TensorFlow",
        description="Time regdrop_fast's dropout forward/backward (float32, bfloat16) over a size sweep, "
        "penalty_grad over three parameter lists, a 1,024-element call, (with torch) the dropout layer's "
        "forward+backward, the constraints over ResNet-50's conv filters, channels_last against "
        "C-contiguous dropout, the fused bias + dropout + residual epilogue and a Shard(1) block against a contiguous call "
        "(global addressing), next to their limits (the same bytes copied or updated in place on the same "
        "threads; the mask-only time of the random stream), np.copyto of the same bytes and every "
        "importable framework, interleaved, medians. Prints tables and writes results.json, "
        "table.txt and bench.png (when matplotlib is installed) into --out.",
    )
    p.add_argument("--quick", action="store_true", help="fewer sizes and repeats (under a minute on 2 cores)")
    p.add_argument("--out", type=Path, default=Path("bench-out"), metavar="DIR",
                   help="directory for results.json, table.txt, bench.png (default: ./bench-out)")
    p.add_argument("--device", default="cpu", metavar="{cpu,cuda}",
                   help="where to run (default: cpu; cuda: the GPU cases against PyTorch, see bench/README.md)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="threads for regdrop_fast and torch (default: the CPUs this process may use)")
    p.add_argument("--sizes", type=_size_list, metavar="LIST",
                   help="dropout sizes in elements, comma-separated, each an integer or 2^K "
                   "(default: 2^10,2^12,...,2^24; --quick: 2^10,2^14,2^18,2^22)")
    p.add_argument("--dtypes", type=_choice_list(("float32", "bfloat16")), default=["float32", "bfloat16"],
                   metavar="LIST", help="dropout dtypes: float32,bfloat16 (default: both)")
    p.add_argument("--cases", type=_choice_list(SECTIONS), default=list(SECTIONS), metavar="LIST",
                   help="what to run: dropout,penalty,latency,layer,constraints,layout,epilogue,variants,global (default: all; "
                   "layer needs torch)")
    p.add_argument("--frameworks", type=_choice_list(frameworks.PEER_NAMES), metavar="LIST",
                   help="peers to compare with: numpy,torch,jax,tensorflow (default: every importable one)")
    p.add_argument("--repeats", type=_positive_int, metavar="N",
                   help="interleaved repeats per case; the median is reported (default: 11; --quick: 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    # Test-only: shrinks the penalty lists and the sample time so a full pass takes about a second.
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=_run_bench, parser=p)


def _run_bench(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .bench import frameworks
    from .bench.cases import default_sizes
    from .bench.run import BenchConfig, run

    parser = args.parser
    if args.device not in ("cpu", "cuda"):
        parser.error(f"--device: unknown device {args.device!r}; expected cpu or cuda")
    if args.device == "cuda":
        problem = _cuda_problem()
        if problem:
            parser.error(problem)
        return _run_gpu_bench(args, argv, _writable_dir(parser, args.out))
    out = _writable_dir(parser, args.out)

    skipped = {}
    if args.frameworks is None:  # every installed peer
        peers = [n for n in frameworks.PEER_NAMES if n == "numpy" or frameworks.installed(n)]
        skipped = {n: "not installed" for n in frameworks.PEER_NAMES if n not in peers}
    else:
        peers = args.frameworks
        missing = [n for n in peers if not frameworks.installed(n)]
        if missing:
            parser.error(f"--frameworks: {', '.join(missing)} not installed")
    for name in list(peers):
        try:
            frameworks.load(name)
        except Exception as exc:  # installed but broken: compare with the rest
            if args.frameworks is not None:
                parser.error(f"--frameworks: {name} cannot be imported ({type(exc).__name__}: {exc})")
            peers.remove(name)
            skipped[name] = f"import failed: {type(exc).__name__}: {exc}"

    if args.tiny:
        repeats, min_sample = args.repeats or 3, 2e-4
    elif args.quick:
        repeats, min_sample = args.repeats or 5, 2e-3
    else:
        repeats, min_sample = args.repeats or 11, 1e-2
    config = BenchConfig(
        out=out, sizes=args.sizes or default_sizes(args.quick), dtypes=args.dtypes, sections=args.cases,
        peers=peers, repeats=repeats, min_sample_s=min_sample, threads=args.threads, tiny=args.tiny,
        progress=not args.no_progress, command=shlex.join([PROG, *argv]), quick=args.quick,
        skipped_peers=skipped,
    )
    return run(config)


def _run_gpu_bench(args: argparse.Namespace, argv: Sequence[str], out: Path) -> int:
    """`bench --device cuda`: the GPU cases of bench/gpu.py (dropout at 2^28 elements and penalty_grad over
    ResNet-50 against PyTorch); --sizes, --dtypes, --cases, --repeats, --quick and --tiny apply."""
    from .bench import gpu

    sections = [c for c in args.cases if c in gpu.SECTIONS]
    if not sections:
        args.parser.error("--cases: --device cuda runs dropout and penalty (latency is a CPU case)")
    if args.tiny:
        sizes, repeats, min_sample = args.sizes or [1 << 20], args.repeats or 3, 1e-3
    elif args.quick:
        sizes, repeats, min_sample = args.sizes or [gpu.DEFAULT_SIZE], args.repeats or 5, 5e-3
    else:
        sizes, repeats, min_sample = args.sizes or [gpu.DEFAULT_SIZE], args.repeats or 11, 1e-2
    config = gpu.GpuConfig(out=out, sizes=sizes, dtypes=args.dtypes, sections=sections, repeats=repeats,
                           min_sample_s=min_sample, tiny=args.tiny, progress=not args.no_progress,
                           command=shlex.join([PROG, *argv]))
    return gpu.run(config)


def _add_demo(sub: argparse._SubParsersAction[_Parser]) -> None:
    from .demo.mlp import EPOCHS

    p = sub.add_parser(
        "demo", help="the article's two examples done right (penalized regression, dropout MLP)",
        description="(1) Ridge, Lasso and elastic net on scikit-learn's diabetes data by gradient descent "
        "with penalty_grad / prox_l1, compared with scikit-learn; (2) a two-layer NumPy MLP on the digits "
        "data trained with dropout / dropout_backward, penalty_grad and max_norm. Needs scikit-learn; "
        "plots need matplotlib.",
    )
    p.add_argument("--out", type=Path, default=Path("demo-out"), metavar="DIR",
                   help="directory for the plots (default: ./demo-out)")
    p.add_argument("--only", choices=("regression", "mlp"), help="run one part only")
    p.add_argument("--epochs", type=_positive_int, metavar="N",
                   help=f"MLP training epochs (default: {EPOCHS}, the setting the 97%% bar is for)")
    p.set_defaults(handler=_run_demo, parser=p)


def _run_demo(args: argparse.Namespace, argv: Sequence[str]) -> int:
    parser = args.parser
    try:
        import sklearn  # noqa: F401
    except ImportError:
        parser.error("the demo needs scikit-learn: pip install 'regdrop_fast[demo]'")
    out = _writable_dir(parser, args.out)
    from .demo import run

    return run(out, only=args.only, epochs=args.epochs)


def _add_info(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("info", help="backend_info() as a table: version, SIMD path, threads, CUDA",
                       description="Show what regdrop_fast runs on: backend_info() as a table.")
    p.add_argument("--json", action="store_true", help="print backend_info() as JSON instead")
    p.set_defaults(handler=_run_info, parser=p)


_INFO_LABELS = {
    "version": "regdrop_fast version",
    "simd": "SIMD path in use",
    "simd_best": "best SIMD path of this CPU",
    "num_threads": "threads in use",
    "default_num_threads": "default threads",
    "cuda_compiled": "CUDA backend compiled",
    "cuda_devices": "CUDA devices",
}


def _run_info(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import ml_dtypes
    import numpy as np

    from . import backend_info
    from .bench.environment import cpu_model, usable_cpus

    info = backend_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    rows = []
    for key, value in info.items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) or "none"
        rows.append((_INFO_LABELS.get(key, key), str(value)))
    rows += [("CPU", cpu_model()), ("usable CPUs", str(usable_cpus())),
             ("Python", sys.version.split()[0]), ("numpy", np.__version__), ("ml_dtypes", ml_dtypes.__version__)]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog=PROG, description="Fused, reproducible dropout and weight penalties: "
                     "benchmark, demo and backend information.")
    parser.add_argument("--version", action="version", version=f"regdrop_fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{bench,demo,info}", required=True)
    _add_bench(sub)
    _add_demo(sub)
    _add_info(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, argv)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which has exited
        return 0
    except MemoryError:
        print(f"{PROG}: out of memory (smaller --sizes need less)", file=sys.stderr)
        return 1
