"""regdrop_fast.torch.Dropout against torch.nn.Dropout as a layer: one forward + backward, as in training.

Each callable does what a training step does with the layer: a fresh leaf view of the input, the module's
forward, ``backward`` with a fixed upstream gradient (so x.grad is the layer's backward output), and on CUDA a
synchronize. Both modules run in their default configuration (seeds from torch's RNG); the regdrop_fast rows
keep the mask as bits (``store="bits"``) or regenerate it (``store="seed"``).

    from regdrop_fast.bench.torch_layer import layer_impls
    from regdrop_fast.bench.timing import measure
    timings = measure(layer_impls(1 << 24), repeats=9, min_sample_s=0.2)   # name -> Timing (s per call)

or from a shell: ``python -m regdrop_fast.bench.torch_layer --log2n 24 [--device cuda] [--dtype bfloat16]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

TORCH = "torch.nn.Dropout"
OURS = "regdrop_fast.torch.Dropout"
OURS_SEED = "regdrop_fast.torch.Dropout(store='seed')"


def layer_impls(n: int, p: float = 0.5, dtype: str = "float32", device: str = "cpu",
                seed: int = 20240607) -> dict[str, Callable[[], object]]:
    """{name: forward+backward callable} for torch.nn.Dropout and regdrop_fast.torch.Dropout on n elements."""
    import torch

    import regdrop_fast.torch as rt

    gen = torch.Generator().manual_seed(seed)
    tdtype = getattr(torch, dtype)
    x0 = torch.randn(n, generator=gen).to(device=device, dtype=tdtype)
    grad = torch.randn(n, generator=gen).to(device=device, dtype=tdtype)
    sync = torch.cuda.synchronize if x0.is_cuda else (lambda: None)

    def step(module: Callable[[Any], Any]) -> Callable[[], object]:
        def run() -> Any:
            x = x0.detach().requires_grad_()
            module(x).backward(grad)
            sync()
            return x.grad

        return run

    return {
        TORCH: step(torch.nn.Dropout(p)),
        OURS: step(rt.Dropout(p)),
        OURS_SEED: step(rt.Dropout(p, store="seed")),
    }


def layer_bytes(n: int, itemsize: int, store: str) -> int:
    """Bytes a fused forward + backward must move: read x, write y, read grad, write dx (4 n items), plus the
    packed mask written and read back (2 * n/8) with store='bits'."""
    return 4 * n * itemsize + (2 * ((n + 7) // 8) if store == "bits" else 0)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from .timing import measure

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=24)
    ap.add_argument("--p", type=float, default=0.5)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--min-sample-s", type=float, default=0.2)
    args = ap.parse_args(argv)
    n = 1 << args.log2n
    timings = measure(layer_impls(n, args.p, args.dtype, args.device), repeats=args.repeats,
                      min_sample_s=args.min_sample_s)
    itemsize = torch.empty((), dtype=getattr(torch, args.dtype)).element_size()
    base = timings[TORCH].median
    print(f"dropout layer forward+backward, n=2^{args.log2n} {args.dtype} on {args.device}, p={args.p}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch threads; medians of {args.repeats} "
          "interleaved repeats")
    for name, t in timings.items():
        store = "seed" if name == OURS_SEED else "bits"
        gbs = layer_bytes(n, itemsize, store) / t.median / 1e9
        print(f"  {name:42s} {t.median * 1e3:9.2f} ms  (q1 {t.q1 * 1e3:.2f}, q3 {t.q3 * 1e3:.2f})  "
              f"{gbs:6.2f} GB/s  x{base / t.median:5.2f} vs torch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
