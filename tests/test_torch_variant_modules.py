"""The torch modules of the dropout variants (Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout, DropPath):
each forward is its functional variant with the module's settings (the same bits at the same Generator
position), drop-in for torch's class (isinstance, constructor, repr, eval mode), timm's DropPath semantics,
the store=/generator= extras, and torch.compile fullgraph of a model using them."""

from __future__ import annotations

import pickle

import pytest
from conftest import same_bits

import regdrop_fast as rf

torch = pytest.importorskip("torch")
import regdrop_fast.torch as rt  # noqa: E402  (only importable with torch)

# (module, the functional variant as the module calls it, torch's class or None, an input shape)
CASES = [
    (rt.Dropout1d, lambda x, p, g: rt.dropout1d(x, p, True, generator=g), torch.nn.Dropout1d, (4, 6, 9)),
    (rt.Dropout2d, lambda x, p, g: rt.dropout2d(x, p, True, generator=g), torch.nn.Dropout2d, (4, 6, 3, 5)),
    (rt.Dropout3d, lambda x, p, g: rt.dropout3d(x, p, True, generator=g), torch.nn.Dropout3d, (2, 6, 3, 2, 5)),
    (rt.AlphaDropout, lambda x, p, g: rt.alpha_dropout(x, p, True, generator=g), torch.nn.AlphaDropout, (40, 9)),
    (rt.FeatureAlphaDropout, lambda x, p, g: rt.feature_alpha_dropout(x, p, True, generator=g),
     torch.nn.FeatureAlphaDropout, (4, 6, 3, 5)),
    (rt.DropPath, lambda x, p, g: rt.drop_path(x, p, True, generator=g), None, (8, 3, 4)),
]
IDS = [c[0].__name__ for c in CASES]


@pytest.mark.parametrize("cls, functional, torch_cls, shape", CASES, ids=IDS)
def test_forward_and_backward_are_the_functional_variant(cls, functional, torch_cls, shape):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    xm, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    ym = cls(0.4, generator=rf.Generator(5, 3))(xm)
    yf = functional(xf, 0.4, rf.Generator(5, 3))
    assert same_bits(ym.detach(), yf.detach())
    g = torch.randn(shape, dtype=torch.float64)
    ym.backward(g)
    yf.backward(g)
    assert same_bits(xm.grad, xf.grad)


@pytest.mark.parametrize("cls, functional, torch_cls, shape", CASES, ids=IDS)
def test_drop_in_for_torch(cls, functional, torch_cls, shape):
    """isinstance of torch's class, the same repr by default, eval mode returns the input itself, the
    Generator advances only in train mode."""
    m = cls(0.3)
    if torch_cls is not None:
        assert isinstance(m, torch_cls)
        assert repr(m) == repr(torch_cls(0.3))
    gen = rf.Generator(1)
    m = cls(0.3, generator=gen)
    x = torch.ones(shape)
    assert m.eval()(x) is x and gen.offset == 0
    m.train()(x)
    assert gen.offset > 0


@pytest.mark.parametrize("cls, functional, torch_cls, shape", CASES, ids=IDS)
def test_store_seed_gives_the_same_values_and_gradients(cls, functional, torch_cls, shape):
    x = torch.randn(shape)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = cls(0.5, generator=rf.Generator(9))(a)
    yb = cls(0.5, store="seed", generator=rf.Generator(9))(b)
    assert torch.equal(ya, yb)
    ya.sum().backward()
    yb.sum().backward()
    assert torch.equal(a.grad, b.grad)
    assert "store='seed'" in repr(cls(0.5, store="seed"))


def test_channel_modules_store_one_bit_per_channel():
    """The mask of Dropout2d holds N * C decisions: the Generator advances by N * C, not N * C * H * W."""
    gen = rf.Generator(0)
    rt.Dropout2d(0.5, generator=gen)(torch.ones(4, 6, 8, 8))
    assert gen.offset == 4 * 6
    rt.Dropout1d(0.5, generator=gen)(torch.ones(6, 8))  # unbatched (C, L)
    assert gen.offset == 24 + 6
    rt.DropPath(0.5, generator=gen)(torch.ones(5, 3, 3))
    assert gen.offset == 30 + 5


def test_drop_path_is_timms():
    """timm's DropPath: per-sample keep, kept samples scaled by 1 / keep_prob (or not, scale_by_keep=False),
    repr drop_prob=%.3f, eval and drop_prob=0 return the input."""
    x = torch.randn(64, 5, 7)
    y = rt.DropPath(0.25, generator=rf.Generator(4))(x)
    keep = rf.dropout_mask((64,), 0.25, seed=4).to_bool()
    scale = torch.ones(1).div_(0.75)  # timm: a kept sample's factor is 1 divided by keep_prob in x's dtype
    for i in range(64):
        assert torch.equal(y[i], x[i] * scale) if keep[i] else bool((y[i] == 0).all())
    y2 = rt.DropPath(0.25, scale_by_keep=False, generator=rf.Generator(4))(x)
    for i in range(64):
        assert torch.equal(y2[i], x[i]) if keep[i] else bool((y2[i] == 0).all())
    assert repr(rt.DropPath(0.1234)) == "DropPath(drop_prob=0.123)"
    assert repr(rt.DropPath(0.5, scale_by_keep=False)) == "DropPath(drop_prob=0.500, scale_by_keep=False)"
    assert rt.DropPath(0.0)(x) is x and rt.DropPath(0.5).eval()(x) is x


def test_alpha_modules_ignore_inplace_as_torch_does():
    """torch's AlphaDropout.forward does not pass inplace on; ours neither: the input is left as it was."""
    x = torch.randn(100)
    before = x.clone()
    rt.AlphaDropout(0.5, inplace=True)(x)
    rt.FeatureAlphaDropout(0.5, inplace=True)(x.reshape(4, 25, 1))
    assert torch.equal(x, before)


def test_inplace_channel_dropout_writes_the_input():
    x = torch.ones(3, 4, 5)
    y = rt.Dropout1d(0.5, inplace=True, generator=rf.Generator(2))(x)
    assert y is x and torch.equal(x, rt.Dropout1d(0.5, generator=rf.Generator(2))(torch.ones(3, 4, 5)))


def test_modules_pickle_and_state_dict():
    m = torch.nn.Sequential(rt.Dropout2d(0.2, store="seed"), rt.DropPath(0.1), rt.AlphaDropout(0.3),
                            rt.GaussianDropout(0.2))
    again = pickle.loads(pickle.dumps(m))
    assert repr(again) == repr(m) and m.state_dict() == {}


# Inductor's CPU codegen touches a deprecated torch.jit API; pytest turns warnings into errors here.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compile_fullgraph_of_a_model_with_every_module():
    torch._dynamo.reset()

    def model(gen_seed):
        return torch.nn.Sequential(rt.Dropout2d(0.2, generator=rf.Generator(gen_seed)),
                                   rt.FeatureAlphaDropout(0.1, generator=rf.Generator(gen_seed + 1)),
                                   rt.DropPath(0.3, generator=rf.Generator(gen_seed + 2)),
                                   rt.GaussianDropout(0.2, generator=rf.Generator(gen_seed + 3)))

    eager, compiled_model = model(10), model(10)
    compiled = torch.compile(compiled_model, fullgraph=True)
    x = torch.randn(6, 4, 5, 5)
    for _ in range(2):
        xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
        ye, yc = eager(xe), compiled(xc)
        ye.sum().backward()
        yc.sum().backward()
        assert same_bits(ye.detach(), yc.detach()) and same_bits(xe.grad, xc.grad)
