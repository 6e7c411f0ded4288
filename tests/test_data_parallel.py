"""DataParallelGenerator and Generator.state_dict in one process: the ranks' calls put together are the
call of one process on the whole batch, bit for bit, and a checkpoint resumes on another world size.
(The multi-process runs are tests/test_distributed_torch.py.)"""

from __future__ import annotations

import copy
import importlib.util
import pickle

import numpy as np
import pytest

import regdrop_fast as rf

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="needs torch")

# Three "layers" per step, of different widths, as a network's activations: (local batch, width).
WIDTHS = (5, 3, 8)


def _steps(gen_for_rank, world, local_batch, steps, rng_seed=0):
    """The dropout outputs of `steps` steps on a global batch split over `world` ranks, put back together."""
    rng = np.random.default_rng(rng_seed)
    out = []
    gens = [gen_for_rank(r) for r in range(world)]
    for _ in range(steps):
        for width in WIDTHS:
            x = rng.standard_normal((world * local_batch, width)).astype(np.float32)
            parts = []
            for r, gen in enumerate(gens):
                local = x[r * local_batch:(r + 1) * local_batch]
                s, o = gen.next(local.size)
                parts.append(rf.dropout(local, 0.3, seed=s, offset=o)[0])
            out.append(np.concatenate(parts))
    return out, gens


@pytest.mark.parametrize("world", [1, 2, 4])
def test_ranks_together_draw_the_whole_batch_masks(world):
    whole, (g1,) = _steps(lambda r: rf.Generator(11), 1, 8, steps=3)
    split, gens = _steps(lambda r: rf.DataParallelGenerator(11, rank=r, world_size=world), world, 8 // world, 3)
    for a, b in zip(whole, split):
        assert a.tobytes() == b.tobytes()
    assert {g.state_dict()["offset"] for g in gens} == {g1.offset}  # every rank at the global position


def test_next_rule_and_wrap():
    g = rf.DataParallelGenerator(2, 2**64 - 3, rank=3, world_size=4)
    assert g.next(2) == (2, (2**64 - 3 + 6) % 2**64)
    assert g.offset == (2**64 - 3 + 8) % 2**64
    assert (g.rank, g.world_size, g.seed) == (3, 4, 2)


def test_copies_keep_the_layout():
    g = rf.DataParallelGenerator(9, 40, rank=1, world_size=3)
    for c in (copy.copy(g), copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert type(c) is rf.DataParallelGenerator and (c.rank, c.world_size, c.get_state()) == (1, 3, (9, 40))
        c.next(5)
        assert g.offset == 40  # its own state
    assert repr(g) == "regdrop_fast.DataParallelGenerator(seed=9, offset=40, rank=1, world_size=3)"


def test_state_dict_round_trip_and_resume_on_another_world_size():
    """Stop after step 2 on 2 ranks, resume on 4: the masks are those of one uninterrupted process."""
    whole, _ = _steps(lambda r: rf.Generator(5), 1, 4, steps=4)
    first, gens = _steps(lambda r: rf.DataParallelGenerator(5, rank=r, world_size=2), 2, 2, steps=2)
    saved = pickle.loads(pickle.dumps(gens[0].state_dict()))  # as a checkpoint would hold it
    assert saved == {"seed": 5, "offset": 2 * 4 * sum(WIDTHS)}

    def resumed(r):
        g = rf.DataParallelGenerator(0, rank=r, world_size=4)
        g.load_state_dict(saved)
        return g

    # Steps 3 and 4 on 4 ranks of one sample each, on the data the uninterrupted run had (the same rng).
    second = []
    gens4 = [resumed(r) for r in range(4)]
    rng = np.random.default_rng(0)
    for step in range(4):
        for width in WIDTHS:
            x = rng.standard_normal((4, width)).astype(np.float32)
            if step < 2:
                continue
            parts = [rf.dropout(x[r:r + 1], 0.3, seed=s, offset=o)[0]
                     for r, (s, o) in enumerate(g.next(width) for g in gens4)]
            second.append(np.concatenate(parts))
    for a, b in zip(whole, first + second, strict=True):
        assert a.tobytes() == b.tobytes()


def test_plain_generator_state_dict():
    g = rf.Generator(3, 17)
    assert g.state_dict() == {"seed": 3, "offset": 17}
    h = rf.Generator(0)
    h.load_state_dict(g.state_dict())
    assert h.next(4) == g.next(4)


@needs_torch
def test_torch_ops_take_a_data_parallel_generator():
    import torch

    import regdrop_fast.torch as rt

    torch.manual_seed(0)
    x = torch.randn(8, 6)
    maps = torch.randn(8, 3, 2, 2)
    bias, residual = torch.randn(6), torch.randn(8, 6)
    ref = rf.Generator(21)
    whole = [rt.dropout(x, 0.4, generator=ref), rt.dropout2d(maps, 0.5, generator=ref),
             rt.drop_path(maps, 0.5, generator=ref), rt.Dropout(0.2, generator=ref)(x),
             rt.bias_dropout_add(x, bias, residual, 0.3, generator=ref),
             rt.gaussian_dropout(x[:, :5], 0.3, generator=ref)]  # odd widths: Box-Muller pairs span ranks
    for world in (2, 4):
        b = 8 // world
        parts: list[list[torch.Tensor]] = [[] for _ in whole]
        for r in range(world):
            g = rt.DataParallelGenerator(21, rank=r, world_size=world)
            rows = slice(r * b, (r + 1) * b)
            parts[0].append(rt.dropout(x[rows], 0.4, generator=g))
            parts[1].append(rt.dropout2d(maps[rows], 0.5, generator=g))
            parts[2].append(rt.drop_path(maps[rows], 0.5, generator=g))
            parts[3].append(rt.Dropout(0.2, generator=g)(x[rows]))
            parts[4].append(rt.bias_dropout_add(x[rows], bias, residual[rows], 0.3, generator=g))
            parts[5].append(rt.gaussian_dropout(x[rows, :5], 0.3, generator=g))
            assert g.offset == ref.offset
        for a, p in zip(whole, parts):
            assert torch.equal(a, torch.cat(p))


@needs_torch
def test_compiled_model_with_a_data_parallel_generator():
    """torch.compile(fullgraph=True) traces the advance (the custom op reads the layout from the state
    tensor): the compiled ranks draw the eager whole batch's masks, forward and backward, step after step."""
    import torch

    import regdrop_fast.torch as rt

    def model(gen):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 6), rt.Dropout(0.5, generator=gen), torch.nn.Linear(6, 2),
                                   rt.Dropout(0.3, generator=gen, store="seed"))

    x = torch.randn(8, 4)
    whole_model = model(rf.Generator(8))
    for world in (2, 4):
        b = 8 // world
        gens = [rt.DataParallelGenerator(8, rank=r, world_size=world) for r in range(world)]
        compiled = [torch.compile(model(g), fullgraph=True, backend="aot_eager") for g in gens]
        ref = rf.Generator(8)
        whole_model[1].generator = whole_model[3].generator = ref
        for _ in range(2):
            want = whole_model(x.requires_grad_())
            (want_grad,) = torch.autograd.grad(want.sum(), x)
            outs, grads = [], []
            for r, m in enumerate(compiled):
                xr = x[r * b:(r + 1) * b].detach().requires_grad_()
                out = m(xr)
                outs.append(out.detach())
                grads.append(torch.autograd.grad(out.sum(), xr)[0])
            # The masks exactly; the values to rounding (a matmul on 2 rows may round unlike one on 8).
            assert torch.equal(torch.cat(outs) == 0, want.detach() == 0)
            torch.testing.assert_close(torch.cat(outs), want.detach(), rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(torch.cat(grads), want_grad, rtol=1e-6, atol=1e-6)
            assert {g.offset for g in gens} == {ref.offset}
