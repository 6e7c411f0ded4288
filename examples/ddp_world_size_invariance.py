"""DDP on 1, 2 and 4 processes draws the same dropout masks and trains to the same losses.

A small MLP with regdrop_fast dropout is trained with torch.distributed's DistributedDataParallel (gloo, on
this machine's loopback) on a global batch of 16 samples split evenly over the ranks. Each rank's dropout
layers draw from a ``DataParallelGenerator``: a call on the rank's n local elements uses the stream from
``offset + rank * n`` and every rank moves the shared offset on by ``world_size * n``, so the ranks together
draw exactly the masks of one process on the whole batch, with no communication. The printed losses (the
mean over the global batch, all-reduced) agree across world sizes to float32 rounding: only the order in
which the all-reduce sums the ranks' gradients differs. World size 1 runs in this process, the others spawn
one process per rank. (Stopping on one world size and resuming on another from ``generator.state_dict()``:
docs/distributed.md and tests/test_distributed_torch.py.)

Run: ``python examples/ddp_world_size_invariance.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import regdrop_fast as rf
import regdrop_fast.torch as rft

GLOBAL_BATCH, STEPS, SEED = 16, 12, 2024


def make_model(generator: rf.Generator) -> torch.nn.Module:
    torch.manual_seed(0)  # identical initial weights on every rank and world size
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.GELU(), rft.Dropout(0.25, generator=generator),
        torch.nn.Linear(32, 32), torch.nn.GELU(), rft.Dropout(0.25, generator=generator),
        torch.nn.Linear(32, 1),
    )


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(GLOBAL_BATCH, 8, generator=g)
    return x, (x[:, :4].sum(1, keepdim=True)).tanh()


def train(rank: int, world: int, store: str, out: str) -> None:
    """STEPS steps on this rank of world; rank 0 saves the global losses to out."""
    torch.set_num_threads(1)
    rf.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    gen = rft.DataParallelGenerator(SEED, rank=rank, world_size=world)
    model = make_model(gen)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    b = GLOBAL_BATCH // world
    losses = []
    for step in range(STEPS):
        x, y = global_batch(step)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(ddp(x[rank * b:(rank + 1) * b]), y[rank * b:(rank + 1) * b])
        loss.backward()
        opt.step()
        total = loss.detach().clone()
        dist.all_reduce(total)
        losses.append(total.item() / world)
    if rank == 0:
        torch.save(losses, out)
    dist.destroy_process_group()


def spawned_rank(rank: int, world: int, store: str, out: str) -> None:
    """train() in a spawned process, which then ends without interpreter finalization. After DDP, gloo's
    worker threads outlive destroy_process_group and may drop the last reference to a tensor handed to a
    collective a little after the call returned; if that happens while the interpreter finalizes, CPython
    ends the thread inside the tensor's destructor and the process aborts ("terminate called without an
    active exception": torch alone, seen in this project's CI). The results are written by then, so the
    process ends at once (a rank that raised still ends through spawn's error path)."""
    train(rank, world, store, out)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run(world: int, workdir: str) -> list[float]:
    out, store = os.path.join(workdir, f"losses-{world}.pt"), os.path.join(workdir, f"store-{world}")
    if world == 1:
        train(0, 1, store, out)
    else:
        mp.start_processes(spawned_rank, args=(world, store, out), nprocs=world, join=True, start_method="spawn")
    losses: list[float] = torch.load(out, weights_only=True)
    return losses


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        runs = {f"world size {w}": run(w, workdir) for w in (1, 2, 4)}
    print("step  " + "  ".join(f"{name:>19}" for name in runs))
    for step in range(STEPS):
        print(f"{step:4d}  " + "  ".join(f"{losses[step]:19.9f}" for losses in runs.values()))
    base = runs["world size 1"]
    worst = max(abs(a - b) / abs(b) for losses in runs.values() for a, b in zip(losses, base))
    print(f"max relative difference from world size 1: {worst:.2e}")
    assert worst < 1e-5, "float32 rounding of the all-reduce is far below this"


if __name__ == "__main__":
    main()
