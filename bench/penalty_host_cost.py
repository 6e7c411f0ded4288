"""The host cost of one CUDA penalty_grad / prox_l1 call over ResNet-50's 161 parameter arrays, on any machine:
regdrop_fast.bench.host_glue with its stand-in CuPy arrays and stub kernels (see there), plus a profile.

    PYTHONPATH=python python bench/penalty_host_cost.py [--profile] [--calls N]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys

import regdrop_fast as rf
from regdrop_fast.bench import host_glue


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    with host_glue.stand_in() as (params, grads):
        print(host_glue.format_rows(host_glue.rows(params, grads, args.calls), "stand-in"))
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.calls):
                rf.penalty_grad(params, grads, l2=host_glue.L2)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
