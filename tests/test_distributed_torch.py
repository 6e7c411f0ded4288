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

Then the tensor-parallel cases (row-parallel, sequence-parallel, column-parallel with global addressing) and
DTensor inputs of regdrop_fast.torch's dropout functions, at the end.
"""

from __future__ import annotations

import os
import pathlib
import sys
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
        end_rank()


def end_rank() -> None:
    """Ends a spawned rank that has written its results, after destroy_process_group, without interpreter
    finalization. gloo's worker threads can outlive destroy_process_group (after DDP they do: the group stays
    referenced) and may drop the last reference to a tensor handed to a collective (here `total`, `y`, DTensor
    shards) a little after the call returned. If that lands while the interpreter finalizes, CPython ends the
    worker with pthread_exit inside a tensor destructor: SIGABRT, "terminate called without an active
    exception" (seen once in CI; reproduced with torch alone by holding the GIL until exit). os._exit ends
    the process with those threads as they are; a rank that raised still ends through spawn's error path."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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
        # In this process: train() sets both libraries' thread counts and torch's seed, as each rank does;
        # the rest of the suite must not inherit them (a module fixture runs outside the per-test restore).
        settings = torch.get_num_threads(), rf.get_num_threads(), torch.get_rng_state()
        try:
            train(0, 0, "", first, last, ckpt_in, ckpt_out, str(results), False)
        finally:
            torch.set_num_threads(settings[0])
            rf.set_num_threads(settings[1])
            torch.set_rng_state(settings[2])
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
# Tensor parallelism without global addressing: a row-parallel Linear's output is replicated
# after its all-reduce (every rank draws the whole mask from a Generator of the same seed), and with sequence
# parallelism it is then split along the leading sequence axis (each rank's part a contiguous run, drawn with
# DataParallelGenerator by the tensor-parallel rank).

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
    end_rank()


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


# Column parallelism: each rank's shard of the last axis is a block of the global tensor, drawn with the core's
# global addressing (regdrop_fast.torch.dropout(..., global_shape=, local_start=)).
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
    end_rank()


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


# DTensor: regdrop_fast.torch's dropout functions take a DTensor and return the DTensor whose full tensor is
# the same call on the full tensor, bit for bit (values and gradients: the scale is applied elementwise, so
# nothing is summed across ranks). One spawn of 4 ranks checks every placement below on a 1-d mesh of 4 and
# a 2 x 2 mesh; a rank's failed assertion fails the test with its traceback.

P_DT = 0.3


def dtensor_checks(rank: int, world: int, init: str) -> None:
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor, init_device_mesh

    torch.set_num_threads(1)
    rf.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    line, square = init_device_mesh("cpu", (4,)), init_device_mesh("cpu", (2, 2))
    g = torch.Generator().manual_seed(11)
    placements = [
        (line, [Shard(0)]), (line, [Shard(1)]), (line, [Replicate()]),
        (square, [Shard(0), Shard(1)]), (square, [Shard(1), Shard(0)]), (square, [Shard(0), Shard(0)]),
        (square, [Replicate(), Shard(1)]), (square, [Shard(-1), Replicate()]),
    ]
    # (7, 10): uneven pieces (7 rows over 4: 2, 2, 2, 1); (5, 3): 3 columns over 4 ranks leave one empty shard
    for shape, dtype in [((7, 10), torch.float64), ((5, 3), torch.float32), ((6, 9), torch.bfloat16)]:
        x = torch.randn(shape, generator=g).to(dtype)
        for store in ("bits", "seed"):
            xw = x.detach().requires_grad_()
            want = rt.dropout(xw, P_DT, store=store, generator=rt.Generator(SEED))
            weight = torch.randn(shape, generator=g).to(dtype)
            (want * weight).sum().backward()
            for mesh, pl in placements:
                d = distribute_tensor(x, mesh, pl).requires_grad_()
                gen = rt.Generator(SEED)
                y = rt.dropout(d, P_DT, store=store, generator=gen)
                assert isinstance(y, DTensor) and y.placements == d.placements, (pl, type(y))
                assert gen.offset == x.numel(), (pl, gen.offset)  # the global count, on every rank
                full = y.full_tensor()
                assert torch.equal(full, want), (shape, dtype, store, pl)
                (full * weight).sum().backward()
                assert torch.equal(d.grad.full_tensor(), xw.grad), (shape, dtype, store, pl, "grad")

    # the variants: channel dropout, drop_path, alpha dropout, shared axes; a module; 4-d NCHW
    x4 = torch.randn(4, 6, 5, 3, generator=g)
    variants = {
        "dropout2d": lambda t: rt.dropout2d(t, P_DT, generator=rt.Generator(SEED)),
        "drop_path": lambda t: rt.drop_path(t, P_DT, generator=rt.Generator(SEED)),
        "alpha_dropout": lambda t: rt.alpha_dropout(t, P_DT, generator=rt.Generator(SEED)),
        "dropout_shared": lambda t: rt.dropout_shared(t, P_DT, broadcast_dims=(1, 3), generator=rt.Generator(SEED)),
        "Dropout module": rt.Dropout(P_DT, generator=rt.Generator(SEED)),
    }
    for name, fn in variants.items():
        if isinstance(fn, torch.nn.Module):
            fn.generator = rt.Generator(SEED)
        want = fn(x4)
        for mesh, pl in [(line, [Shard(1)]), (square, [Shard(0), Shard(2)]), (square, [Shard(3), Shard(1)])]:
            if isinstance(fn, torch.nn.Module):
                fn.generator = rt.Generator(SEED)
            got = fn(distribute_tensor(x4, mesh, pl)).full_tensor()
            assert torch.equal(got, want), (name, pl)

    # in place (the shard itself is written; with autograd, out of place then copied), eval mode, errors
    x = torch.randn(7, 10, generator=g)
    want = rt.dropout(x, P_DT, generator=rt.Generator(SEED))
    d = distribute_tensor(x, square, [Shard(0), Shard(1)])
    assert rt.dropout(d, P_DT, inplace=True, generator=rt.Generator(SEED)) is d
    assert torch.equal(d.full_tensor(), want)
    leaf = distribute_tensor(x, square, [Shard(1), Shard(0)]).requires_grad_()
    d = leaf * 1.0
    assert rt.dropout(d, P_DT, inplace=True, generator=rt.Generator(SEED)) is d
    d.full_tensor().sum().backward()
    assert torch.equal(d.full_tensor(), want) and torch.equal(leaf.grad.full_tensor(), (want != 0) / (1 - P_DT))
    d = distribute_tensor(x, line, [Shard(0)])
    assert rt.dropout(d, P_DT, training=False) is d and rt.Dropout(P_DT).eval()(d) is d
    for bad, match in [
        (lambda: rt.dropout(distribute_tensor(x, line, [Shard(0)]), P_DT, global_shape=(7, 10)),
         "a DTensor carries its own global shape"),
        (lambda: rt.dropout(DTensor.from_local(torch.ones(2, 10), line, [Partial()]), P_DT), "Partial"),
        (lambda: rt.dropout(DTensor.from_local(torch.ones(rank + 5, 10), line, [Shard(0)], run_check=False,
                                               shape=(10, 10), stride=(10, 1)), P_DT),
         "local shard has shape"),
    ]:
        with pytest.raises(ValueError, match=match):
            bad()

    # gaussian_dropout: each shard takes the full call's normals at its slice (values and gradients, every
    # placement), the Generator advances by the global count, eval mode returns the DTensor itself
    xg = torch.randn(7, 10, generator=g, dtype=torch.float64)
    xw = xg.detach().requires_grad_()
    want = rt.gaussian_dropout(xw, P_DT, generator=rt.Generator(SEED))
    weight = torch.randn(7, 10, generator=g, dtype=torch.float64)
    (want * weight).sum().backward()
    for mesh, pl in placements:
        d = distribute_tensor(xg, mesh, pl).requires_grad_()
        gen = rt.Generator(SEED)
        y = rt.gaussian_dropout(d, P_DT, generator=gen)
        assert isinstance(y, DTensor) and y.placements == d.placements, ("gaussian", pl, type(y))
        assert gen.offset == xg.numel(), ("gaussian", pl, gen.offset)
        full = y.full_tensor()
        assert torch.equal(full, want), ("gaussian", pl)
        (full * weight).sum().backward()
        assert torch.equal(d.grad.full_tensor(), xw.grad), ("gaussian", pl, "grad")
    d = distribute_tensor(xg, line, [Shard(1)])
    assert rt.gaussian_dropout(d, P_DT, training=False) is d
    with pytest.raises(ValueError, match="a DTensor carries its own global shape"):
        rt.gaussian_dropout(d, P_DT, local_start=(0, 0))
    dist.destroy_process_group()
    end_rank()


def test_dtensor_dropout_is_the_full_tensors_call(tmp_path):
    pytest.importorskip("torch.distributed.tensor")
    spawn(dtensor_checks, 4, (4, f"file://{tmp_path / 'store'}"))
