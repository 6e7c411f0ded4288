"""regdrop_fast.torch's eager shortcut (torch.py: _in_eager, _apply): in plain eager use the autograd Functions
call the custom ops' implementations directly, and calls that need no gradient skip the Function. Checked
here: the shortcut is taken where it should be, never where something else must see the op (a dispatch mode,
a fake tensor, a batched tensor), and every result and gradient is the same bits either way."""

from __future__ import annotations

import pytest

import regdrop_fast as rf

torch = pytest.importorskip("torch")
import regdrop_fast.torch as rt  # noqa: E402  only importable with torch
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402


class Recorder(TorchDispatchMode):
    """Passes every op through unchanged and records the names of the regdrop_fast ops it saw."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name.startswith("regdrop_fast."):
            self.ops.append(name.split(".")[1])
        return func(*args, **(kwargs or {}))


def _bias_dropout_add(x, g):
    bias = torch.linspace(-1, 1, x.shape[-1], dtype=x.dtype)
    return rt.bias_dropout_add(x, bias, torch.ones_like(x), 0.4, generator=g)


# (name, call(x, generator) -> y): each of the Functions the shortcut covers, forward and backward
CALLS = [
    ("dropout", lambda x, g: rt.dropout(x, 0.4, generator=g)),
    ("dropout seed", lambda x, g: rt.dropout(x, 0.4, store="seed", generator=g)),
    ("bias_dropout_add", _bias_dropout_add),
    ("dropout_add", lambda x, g: rt.bias_dropout_add(x, None, x * 2, 0.4, generator=g)),
    ("gaussian_dropout", lambda x, g: rt.gaussian_dropout(x, 0.3, generator=g)),
    ("dropout2d", lambda x, g: rt.dropout2d(x, 0.4, generator=g)),
    ("drop_path", lambda x, g: rt.drop_path(x, 0.4, True, generator=g)),
    ("alpha_dropout", lambda x, g: rt.alpha_dropout(x, 0.4, True, generator=g)),
]
IDS = [c[0] for c in CALLS]


def _forward_backward(call, x0, grad_enabled=True):
    """(y, x.grad) of call on a fresh leaf copy of x0, with Generator(5); x.grad None without grad."""
    x = x0.clone().requires_grad_(grad_enabled)
    y = call(x, rf.Generator(5))
    if not grad_enabled:
        return y, None
    y.backward(torch.linspace(-2, 3, y.numel(), dtype=y.dtype).reshape(y.shape))
    return y, x.grad


@pytest.fixture
def x0():
    return torch.randn(3, 4, 5, 6, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("name,call", CALLS, ids=IDS)
def test_same_bits_with_and_without_the_shortcut(name, call, x0):
    """Plain eager (shortcut) against the same calls under a pass-through dispatch mode (every op through
    the dispatcher): outputs and gradients bit for bit, with and without grad."""
    for grad_enabled in (True, False):
        y, gx = _forward_backward(call, x0, grad_enabled)
        with Recorder() as rec:
            y_op, gx_op = _forward_backward(call, x0, grad_enabled)
        assert rec.ops, "the mode saw no regdrop_fast op: the shortcut ignored it"
        assert torch.equal(y, y_op), name
        assert (gx is None) == (gx_op is None) and (gx is None or torch.equal(gx, gx_op)), name


def test_plain_eager_calls_run_the_implementations_directly(x0, monkeypatch):
    """The shortcut is taken: forward without grad (no Function), forward with grad (inside the Function)
    and the backward each call an implementation directly, not through the dispatcher."""
    seen = []
    for op, impl in list(rt._OP_IMPL.items()):
        monkeypatch.setitem(rt._OP_IMPL, op, lambda *a, _impl=impl, _op=op: seen.append(_op) or _impl(*a))
    rt.dropout(x0, 0.4, generator=rf.Generator(1))
    assert seen == [rt._dropout_fwd]
    seen.clear()
    x = x0.clone().requires_grad_()
    y = rt.dropout(x, 0.4, generator=rf.Generator(1))
    assert seen == [rt._dropout_fwd]
    y.sum().backward()
    assert seen == [rt._dropout_fwd, rt._dropout_bwd]
    seen.clear()
    with Recorder() as rec:
        rt.dropout(x0, 0.4, generator=rf.Generator(1))
    assert seen == [] and rec.ops == ["generator_next_", "dropout_fwd"]


@pytest.mark.parametrize("name,call", CALLS, ids=IDS)
def test_every_covered_call_takes_the_shortcut(name, call, x0, monkeypatch):
    """So that the same-bits test above compares two different paths for every call: in plain eager each
    call's forward (grad off and on) and backward run an implementation directly."""
    seen = []
    for op, impl in list(rt._OP_IMPL.items()):
        monkeypatch.setitem(rt._OP_IMPL, op, lambda *a, _impl=impl, _op=op: seen.append(_op) or _impl(*a))
    call(x0, rf.Generator(5))
    assert len(seen) == 1, name
    x = x0.clone().requires_grad_()
    y = call(x, rf.Generator(5))
    assert len(seen) == 2, name
    y.sum().backward()
    assert len(seen) == 3, name


def test_fake_and_meta_tensors_go_through_the_ops():
    """A fake tensor (FakeTensorMode, as torch.export and make_fx trace) and a meta tensor reach the ops'
    fake kernels: shapes come back, no kernel runs."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(4, 6, requires_grad=True)
        y = rt.dropout(x, 0.5, generator=rf.Generator(1))
        y.sum().backward()
        assert y.shape == (4, 6) and x.grad.shape == (4, 6)
    y = rt.dropout(torch.empty(4, 6, device="meta"), 0.5, generator=rf.Generator(1))
    assert y.device.type == "meta" and y.shape == (4, 6)


def test_the_default_draw_under_modes_and_traces():
    """The default [seed, offset] draw keeps its [-1, -4] mask between plain eager calls (never written to)
    and builds it inside under a dispatch mode, fake tensors and make_fx: the same draw everywhere."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx

    torch.manual_seed(7)
    plain = rt._draw_seed(None, 10)
    torch.manual_seed(7)
    with Recorder():
        moded = rt._draw_seed(None, 10)
    assert torch.equal(plain, moded) and plain[1] % 4 == 0
    assert torch.equal(rt._SEED_OFFSET_MASK, torch.tensor([-1, -4]))
    with FakeTensorMode():
        y = rt.dropout(torch.empty(4, 6), 0.5)
    assert y.shape == (4, 6)
    graph = make_fx(lambda t: rt.dropout(t, 0.5), tracing_mode="fake")(torch.ones(4, 6))
    assert "randint" in graph.code and "bitwise_and" in graph.code
    # a default device (a torch function mode) leaves the draw, and the CPU call, on the CPU
    x = torch.ones(64)
    torch.manual_seed(7)
    expected = rt.dropout(x, 0.5)
    torch.manual_seed(7)
    with torch.device("meta"):
        y = rt.dropout(x, 0.5)
    assert y.device.type == "cpu" and torch.equal(y, expected)


def test_forward_ad_still_goes_through_the_function(x0):
    """With a forward-AD level open the no-grad shortcut is not taken: the tangent goes through the mask."""
    import torch.autograd.forward_ad as fwAD

    t = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), fwAD.dual_level():
        y = rt.dropout(fwAD.make_dual(x0, t), 0.4, generator=rf.Generator(5))
        primal, tangent = fwAD.unpack_dual(y)
    expected = rt.dropout(x0, 0.4, generator=rf.Generator(5))
    assert torch.equal(primal, expected)
    assert tangent is not None and torch.equal(tangent, rt.dropout(t, 0.4, generator=rf.Generator(5)))


def test_a_torch_function_mode_sees_the_op(x0):
    """Under a TorchFunctionMode (as FlopCounterMode and function-level tracers use) the op is called, not
    its implementation."""
    from torch.overrides import TorchFunctionMode

    class Names(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.append(str(func))
            return func(*args, **(kwargs or {}))

    with Names() as mode:
        y = rt.dropout(x0, 0.4, generator=rf.Generator(5))
    assert any("dropout_fwd" in n for n in mode.names), mode.names
    assert torch.equal(y, rt.dropout(x0, 0.4, generator=rf.Generator(5)))


@pytest.mark.parametrize("name,call", CALLS, ids=IDS)
def test_jit_trace_records_the_ops(name, call, x0):
    """torch.jit.trace (and the TorchScript ONNX export that traces) must see the ops: the kernels write
    through NumPy, so a trace of the direct call would replay only the empty output's allocation."""
    import warnings

    def f(x):
        return call(x, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings about Python values
        torch.manual_seed(0)
        traced = torch.jit.trace(f, (x0,), check_trace=False)
    torch.manual_seed(0)
    expected = f(x0)
    torch.manual_seed(0)
    assert torch.equal(traced(x0.clone()), expected), name
    assert "regdrop_fast" in str(traced.graph) or "PythonOp" in str(traced.graph)


def test_the_profiler_names_the_ops(x0):
    import warnings

    with warnings.catch_warnings():
        # torch 2.11's profiler warns on entry that it clears events per cycle
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.profiler")
        with torch.profiler.profile() as prof:
            rt.dropout(x0, 0.4, generator=rf.Generator(1))
    assert any("regdrop_fast::dropout_fwd" in e.name for e in prof.events())


def test_imported_under_inference_mode_or_a_default_device_still_takes_the_shortcut():
    """The plain CPU key set is an ordinary CPU tensor's, whatever the importer's context."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "with torch.inference_mode(), torch.device('meta'):\n"
        "    import regdrop_fast.torch as rt\n"
        "assert rt._PLAIN_CPU_KEYS == torch._C._dispatch_keys(torch.empty(0)).raw_repr()\n"
        "assert rt._SEED_OFFSET_MASK.device.type == 'cpu' and not rt._SEED_OFFSET_MASK.is_inference()\n"
        "op = rt._dropout_fwd\n"
        "assert rt._in_eager(op, torch.ones(3), torch.zeros(2, dtype=torch.int64)) is rt._OP_IMPL[op]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
