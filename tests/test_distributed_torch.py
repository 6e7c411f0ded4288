"""World-size invariance on real torch.distributed runs (gloo over loopback, one process per rank).

A small float64 MLP with two regdrop_fast dropout layers driven by a DataParallelGenerator is trained 20
steps under DistributedDataParallel on 2 and 4 ranks, with the global batch of 8 samples split evenly, and
compared with one process on the whole batch:

- every dropout mask, put together from the ranks, is that process's mask bit for bit (the decisions do
  not depend on the values, so this is exact even though the weights differ in the last bits);
- the global loss at every step, the all-reduced gradient and the final weights agree within a relative
  1e-10 (float64): DDP's all-reduce sums the ranks' gradients in another order than one process's
  backward sums the samples, so only float rounding differs;
- a run stopped after 10 steps on 2 ranks and resumed from a checkpoint (weights + the generator's
  state_dict) on 4 ranks continues with the same masks and losses.

And the tensor-parallel cases that need no global addressing (row-parallel, sequence-parallel), at the end.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402

import regdrop_fast as rf  # noqa: E402
import regdrop_fast.torch as rt  # noqa: E402

pytestmark = pytest.mark.distributed

GLOBAL_BATCH, STEPS, SEED = 8, 20, 1234
RTOL = 1e-10  # float64; the all-reduce's summation order is the only difference between world sizes


class MLP(torch.nn.Module):
    """6 -> 16 -> 16 -> 1 with dropout after each hidden layer; records each dropout layer's keep mask."""

    def __init__(self, generator: rf.Generator) -> None:
        super().__init__()
        torch.manual_seed(0)  # the same initial weights in every process
        self.fc1 = torch.nn.Linear(6, 16, dtype=torch.float64)
        self.fc2 = torch.nn.Linear(16, 16, dtype=torch.float64)
        self.out = torch.nn.Linear(16, 1, dtype=torch.float64)
        self.drop1 = rt.Dropout(0.3, generator=generator)
        self.drop2 = rt.Dropout(0.2, generator=generator, store="seed")
        self.masks: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop1(torch.tanh(self.fc1(x)))
        self.masks.append(h != 0)  # tanh of a float64 affine map is never exactly 0 here
        h = self.drop2(torch.tanh(self.fc2(h)))
        self.masks.append(h != 0)
        return self.out(h)


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of a step: the same in every process, whatever the world size."""
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, 6, generator=g, dtype=torch.float64)
    return x, x.sum(1, keepdim=True).sin()


def train(rank: int, world: int, init: str, first: int, last: int, ckpt_in: str, ckpt_out: str,
          results: str, per_rank_generator: bool) -> None:
    """Steps first..last-1 on this rank (world == 0: one process without torch.distributed).
    per_rank_generator: each rank a plain Generator on the same seed, as without DataParallelGenerator."""
    torch.set_num_threads(1)
    rf.set_num_threads(1)
    distributed = world > 0
    if distributed:
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
        gen: rf.Generator = (rt.Generator(SEED) if per_rank_generator
                             else rt.DataParallelGenerator(SEED, rank=rank, world_size=world))
    else:
        gen, world = rt.Generator(SEED), 1
    model = MLP(gen)
    if ckpt_in:
        ckpt = torch.load(ckpt_in, weights_only=True)
        model.load_state_dict(ckpt["model"])
        gen.load_state_dict(ckpt["generator"])
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    b = GLOBAL_BATCH // world
    losses, grads = [], []
    for step in range(first, last):
        x, y = batch(step)
        x, y = x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b]
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)  # the local mean: DDP averages, giving the global mean
        loss.backward()
        opt.step()
        total = loss.detach().clone()
        if distributed:
            dist.all_reduce(total)
        losses.append(float(total) / world)
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    torch.save({"losses": losses, "grads": grads, "masks": model.masks,
                "weights": [p.detach() for p in model.parameters()]}, os.path.join(results, f"rank{rank}.pt"))
    if ckpt_out and rank == 0:
        torch.save({"model": model.state_dict(), "generator": gen.state_dict()}, ckpt_out)
    if distributed:
        dist.destroy_process_group()


def spawn(fn, world: int, args: tuple) -> None:
    """fn(rank, *args) on `world` spawned processes; a rank's exception is raised here, a hang fails after 150 s."""
    ctx = mp.start_processes(fn, args=args, nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + 150
    while not ctx.join(timeout=1):  # raises if a rank failed
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail(f"world size {world}: the ranks did not finish in 150 s")


def run(tmp: pathlib.Path, world: int, first: int = 0, last: int = STEPS, ckpt_in: str = "",
        ckpt_out: str = "", per_rank_generator: bool = False) -> dict:
    """Run `train` on `world` spawned ranks (0: in this process); returns the ranks' results put together."""
    results = tmp / f"w{world}-{first}-{last}"
    results.mkdir()
    if world == 0:
        train(0, 0, "", first, last, ckpt_in, ckpt_out, str(results), False)
        ranks = 1
    else:
        init = f"file://{tmp / f'store-{world}-{first}'}"  # a fresh file per process group
        spawn(train, world, (world, init, first, last, ckpt_in, ckpt_out, str(results), per_rank_generator))
        ranks = world
    parts = [torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(ranks)]
    steps = last - first
    return {
        "losses": np.array(parts[0]["losses"]),
        "grads": [parts[0]["grads"][k] for k in range(steps)],
        # one mask per dropout call: the ranks' rows, in rank order, make the global batch's rows
        "masks": [torch.cat([p["masks"][k] for p in parts]) for k in range(2 * steps)],
        "weights": parts[0]["weights"],
        "per_rank_losses": [p["losses"] for p in parts],
        "per_rank_weights": [p["weights"] for p in parts],
    }


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return run(tmp_path_factory.mktemp("single"), 0)


def assert_same_training(a: dict, b: dict) -> None:
    assert len(a["masks"]) == len(b["masks"])
    for k, (ma, mb) in enumerate(zip(a["masks"], b["masks"])):
        assert torch.equal(ma, mb), f"dropout call {k}: masks differ"
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=RTOL, atol=0)
    for ga, gb in zip(a["grads"], b["grads"]):
        torch.testing.assert_close(ga, gb, rtol=RTOL, atol=1e-14)
    for wa, wb in zip(a["weights"], b["weights"]):
        torch.testing.assert_close(wa, wb, rtol=RTOL, atol=1e-14)


@pytest.mark.parametrize("world", [2, 4])
def test_ddp_trains_as_one_process_on_the_whole_batch(world, one_process, tmp_path):
    ddp = run(tmp_path, world)
    assert_same_training(one_process, ddp)
    for r in range(1, world):  # DDP keeps the replicas in step: the same weights on every rank
        for wa, wb in zip(ddp["per_rank_weights"][0], ddp["per_rank_weights"][r]):
            assert torch.equal(wa, wb)
    assert len({m.sum().item() for m in ddp["masks"]}) > 1  # the masks do change from call to call


def test_per_rank_generators_are_caught(one_process, tmp_path):
    """Without the helper (each rank a Generator on the same seed, every rank drawing the first rows' masks)
    the comparison fails: it does look at the masks."""
    wrong = run(tmp_path, 2, per_rank_generator=True)
    with pytest.raises(AssertionError, match="masks differ"):
        assert_same_training(one_process, wrong)


def test_resume_on_another_world_size(one_process, tmp_path):
    ckpt = str(tmp_path / "step10.pt")
    first = run(tmp_path, 2, 0, 10, ckpt_out=ckpt)
    second = run(tmp_path, 4, 10, STEPS, ckpt_in=ckpt)
    joined = {key: (np.concatenate([first[key], second[key]]) if key == "losses" else first[key] + second[key])
              for key in ("losses", "grads", "masks")}
    joined["weights"] = second["weights"]
    assert_same_training(one_process, joined)


# ----------------------------------------------------------------------------------------------------------
# Tensor parallelism, the parts that need no global addressing: a row-parallel Linear's output is replicated
# after its all-reduce (every rank draws the whole mask from a Generator of the same seed), and with sequence
# parallelism it is then split along the leading sequence axis (each rank's part a contiguous run, drawn with
# DataParallelGenerator by the tensor-parallel rank). A column-parallel output, split along its last axis,
# needs the core's global addressing and is not tested here.

S, B, H_IN, H_OUT = 8, 3, 8, 5


def row_parallel(rank: int, world: int, init: str, results: str) -> None:
    torch.set_num_threads(1)
    rf.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(S, B, H_IN, generator=g, dtype=torch.float64)
    w = torch.randn(H_OUT, H_IN, generator=g, dtype=torch.float64)
    k = H_IN // world  # this rank's input features: the row-parallel split of w (columns of w, rows of w.T)
    y = x[..., rank * k:(rank + 1) * k] @ w[:, rank * k:(rank + 1) * k].T
    dist.all_reduce(y)  # the row-parallel output, replicated
    replicated = rt.dropout(y, 0.4, generator=rt.Generator(SEED))
    s = S // world  # sequence parallel: this rank's run of the sequence axis (what a reduce-scatter gives)
    shard = rt.dropout(y[rank * s:(rank + 1) * s], 0.4, generator=rt.DataParallelGenerator(SEED, rank=rank,
                                                                                          world_size=world))
    torch.save({"replicated": replicated, "shard": shard}, os.path.join(results, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 4])
def test_row_parallel_and_sequence_parallel_dropout_is_the_unsharded_layers(world, tmp_path):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(S, B, H_IN, generator=g, dtype=torch.float64)
    w = torch.randn(H_OUT, H_IN, generator=g, dtype=torch.float64)
    want = rt.dropout(x @ w.T, 0.4, generator=rt.Generator(SEED))
    spawn(row_parallel, world, (world, f"file://{tmp_path / 'store'}", str(tmp_path)))
    parts = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
    shards = torch.cat([p["shard"] for p in parts])
    for got in [p["replicated"] for p in parts] + [shards]:
        assert torch.equal(got == 0, want == 0)  # the unsharded layer's mask, exactly
        # the values to the all-reduce's rounding (it sums the ranks' partial products in its own order)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


# Column parallelism needs the core's global addressing (regdrop_fast.torch.dropout(..., global_shape=,
# local_start=)): these run once the core has it and are skipped before.
HAVE_GLOBAL_ADDRESSING = "global_shape" in inspect.signature(rt.dropout).parameters
needs_global_addressing = pytest.mark.skipif(not HAVE_GLOBAL_ADDRESSING,
                                             reason="needs global addressing in regdrop_fast.torch.dropout")
BC, HC_IN, HC_OUT = 4, 6, 8


def column_parallel(rank: int, world: int, init: str, results: str) -> None:
    """Each rank's output columns of a column-parallel Linear, then dropout of that shard (forward, backward).
    With world 4 also a 2-d mesh: 2 data-parallel x 2 tensor-parallel ranks."""
    torch.set_num_threads(1)
    rf.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(BC, HC_IN, generator=g, dtype=torch.float64)
    w = torch.randn(HC_OUT, HC_IN, generator=g, dtype=torch.float64)
    h = HC_OUT // world
    y = (x @ w[rank * h:(rank + 1) * h].T).requires_grad_()  # this rank's columns of x @ w.T
    out = rt.dropout(y, 0.4, generator=rt.Generator(SEED), global_shape=(BC, HC_OUT), local_start=(0, rank * h))
    out.backward(torch.ones_like(out))
    saved = {"shard": out.detach(), "grad": y.grad}
    if world == 4:
        dp, tp = divmod(rank, 2)
        rows, cols = slice(dp * 2, dp * 2 + 2), slice(tp * 4, tp * 4 + 4)
        local = x[rows] @ w[cols].T
        gen = rt.DataParallelGenerator(SEED, rank=dp, world_size=2)  # the data-parallel rank and size
        saved["mesh"] = rt.dropout(local, 0.4, generator=gen, global_shape=(2, HC_OUT), local_start=(0, tp * 4))
    torch.save(saved, os.path.join(results, f"rank{rank}.pt"))
    dist.destroy_process_group()


@needs_global_addressing
@pytest.mark.parametrize("world", [2, 4])
def test_column_parallel_dropout_is_the_unsharded_layers(world, tmp_path):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(BC, HC_IN, generator=g, dtype=torch.float64)
    w = torch.randn(HC_OUT, HC_IN, generator=g, dtype=torch.float64)
    y = (x @ w.T).requires_grad_()
    want = rt.dropout(y, 0.4, generator=rt.Generator(SEED))
    want.backward(torch.ones_like(want))
    spawn(column_parallel, world, (world, f"file://{tmp_path / 'store'}", str(tmp_path)))
    parts = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
    shards, grads = torch.cat([p["shard"] for p in parts], dim=1), torch.cat([p["grad"] for p in parts], dim=1)
    assert torch.equal(shards == 0, want == 0) and torch.equal(grads, y.grad)  # the masks, exactly
    torch.testing.assert_close(shards, want.detach(), rtol=1e-12, atol=1e-12)
    if world == 4:  # rows: the data-parallel ranks' batches; columns: the tensor-parallel shards
        mesh = torch.cat([torch.cat([parts[2 * dp + tp]["mesh"] for tp in range(2)], dim=1) for dp in range(2)])
        assert torch.equal(mesh == 0, want == 0)
        torch.testing.assert_close(mesh, want.detach(), rtol=1e-12, atol=1e-12)
