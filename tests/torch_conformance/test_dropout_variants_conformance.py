"""torch's own tests of the channel and alpha dropout modules, ported mechanically with regdrop_fast.torch's
Dropout1d, Dropout2d, Dropout3d, AlphaDropout and FeatureAlphaDropout substituted for torch.nn's; the
assertions are upstream's, unchanged. Keras's expectations of the same layers follow as tests of their own.

Upstream source (PyTorch, not installed with the wheel; ported from what it asserts):
test/nn/test_dropout.py: TestDropoutNN ``test_AlphaDropout``, ``test_FeatureAlphaDropout`` (via
``_test_alpha_dropout``), ``test_invalid_dropout_p``; TestDropoutNNDeviceType ``test_Dropout1d``,
``test_Dropout2d``, ``test_Dropout3d`` (via ``_test_dropout``, ``_test_dropout_discontiguous``,
``_test_dropoutNd_no_batch``, ``_test_dropoutNd_channel_zero``), on the CPU device.

Upstream draws its sizes with ``random.randint``; here a fixed ``random.Random`` draws them, so every run
tests the same sizes. ``freeze_rng_state`` is upstream's helper for the CPU generator: torch's RNG state
restored after the block, which our modules' default seeding draws from.

Keras (keras/src/layers/regularization/*_test.py): SpatialDropout1D/2D/3D zero whole feature maps;
AlphaDropout keeps the mean and the std of standard-normal input within 0.1 for rates 0.2, 0.5, 0.8.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from itertools import product

import pytest

import regdrop_fast as rf

torch = pytest.importorskip("torch")
import regdrop_fast.torch as rt  # noqa: E402  (only importable with torch)

F = torch.nn.functional
RANDOM = random.Random(20240607)


@contextlib.contextmanager
def freeze_rng_state():
    """Upstream's freeze_rng_state (CPU): the block runs on the current state, which is restored after it."""
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)


@contextlib.contextmanager
def set_default_dtype(dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


# ----------------------------------------------------------------------------------------------------------
# TestDropoutNN


def _test_alpha_dropout(cls, input):
    """Upstream ``_test_alpha_dropout``."""
    mean = input.mean()
    std = input.std()

    for p in [0.2, 0.5, 0.8]:
        module = cls(p)
        input_var = input.detach().clone().requires_grad_()
        output = module(input_var)
        # output mean should be close to input mean
        assert abs(output.data.mean() - mean) < 0.1
        # output std should be close to input std
        assert abs(output.data.std() - std) < 0.1
        output.backward(input)


def test_AlphaDropout():
    """Upstream ``test_AlphaDropout``."""
    torch.manual_seed(0)
    # generate random tensor with zero mean and unit std
    input = torch.randn(5000)
    _test_alpha_dropout(rt.AlphaDropout, input)


def test_FeatureAlphaDropout():
    """Upstream ``test_FeatureAlphaDropout``."""
    torch.manual_seed(0)
    b = RANDOM.randint(1, 5)
    w = RANDOM.randint(1, 5)
    h = RANDOM.randint(1, 5)
    d = RANDOM.randint(1, 2)
    num_features = 1000
    input = torch.randn(num_features, b, d, w, h)
    _test_alpha_dropout(rt.FeatureAlphaDropout, input)

    # no batch dims
    input = torch.randn(50, 20, 64, 64)
    _test_alpha_dropout(rt.FeatureAlphaDropout, input)


def test_invalid_dropout_p():
    """Upstream ``test_invalid_dropout_p``, every line with our module or function."""
    v = torch.ones(1)
    for make in (lambda: rt.Dropout(-0.1), lambda: rt.Dropout(1.1), lambda: rt.Dropout1d(-0.1),
                 lambda: rt.Dropout1d(1.1), lambda: rt.Dropout2d(-0.1), lambda: rt.Dropout2d(1.1),
                 lambda: rt.Dropout3d(-0.1), lambda: rt.Dropout3d(1.1), lambda: rt.dropout(v, -0.1),
                 lambda: rt.dropout(v, 1.1)):
        with pytest.raises(ValueError):
            make()


def test_invalid_dropout_p_of_the_other_variants():
    """The same check for the modules upstream's test does not list (torch raises ValueError for them too)."""
    v = torch.ones(2, 2)
    for make in (lambda: rt.AlphaDropout(-0.1), lambda: rt.AlphaDropout(1.1), lambda: rt.FeatureAlphaDropout(-0.1),
                 lambda: rt.FeatureAlphaDropout(1.1), lambda: rt.dropout2d(v, 1.1), lambda: rt.alpha_dropout(v, -0.1),
                 lambda: rt.GaussianDropout(1.1), lambda: rt.DropPath(-0.1)):
        with pytest.raises(ValueError):
            make()
    for make in (lambda: torch.nn.AlphaDropout(-0.1), lambda: torch.nn.FeatureAlphaDropout(1.1)):
        with pytest.raises(ValueError):
            make()


# ----------------------------------------------------------------------------------------------------------
# TestDropoutNNDeviceType (device "cpu")


def _test_dropout(cls, input, memory_format=torch.contiguous_format):
    """Upstream ``_test_dropout``."""
    p = 0.2
    input = input.fill_(1 - p)

    module = cls(p)
    input_var = input.clone(memory_format=memory_format).requires_grad_()
    output = module(input_var)
    assert output.is_contiguous(memory_format=memory_format)
    assert abs(output.data.mean() - (1 - p)) < 0.05
    output.backward(input)
    assert input_var.grad.is_contiguous(memory_format=memory_format)
    assert abs(input_var.grad.data.mean() - (1 - p)) < 0.05

    module = cls(p, True)
    input_var = input.clone(memory_format=memory_format).requires_grad_()
    output = module(input_var + 0)
    assert output.is_contiguous(memory_format=memory_format)
    assert abs(output.data.mean() - (1 - p)) < 0.05
    output.backward(input)
    assert input_var.grad.is_contiguous(memory_format=memory_format)
    assert abs(input_var.grad.data.mean() - (1 - p)) < 0.05

    # check eval mode doesn't change anything
    for inplace in [True, False]:
        module = cls(p, inplace).eval()
        assert torch.equal(input, module(input))

    # Check that these don't raise errors
    module.__repr__()
    str(module)


def _test_dropout_discontiguous(cls, memory_format=torch.contiguous_format):
    """Upstream ``_test_dropout_discontiguous``: layout and values kept for p = 0 and p close to 0."""
    close_to_zero_p = 1e-10  # Should be almost zero but not zero, as for p=0 different path is taken
    for p in [0, close_to_zero_p]:
        inp = torch.ones(2, 3, 3, 3)
        inp_discontiguous = torch.empty(2, 3, 3, 6, memory_format=memory_format)[..., ::2]
        inp_discontiguous.copy_(inp)
        mod = cls(p=p)
        out = mod(inp_discontiguous)
        if p != 0:  # Zero will keep strides as is based on input.
            # When prob == 0, input stride (54, 18, 6, 2) -> output stride (54, 18, 6, 2)
            # When prob != 0, input stride (54, 18, 6, 2) -> output stride (27, 9, 3, 1)
            assert out.is_contiguous(memory_format=memory_format)
        assert torch.equal(inp_discontiguous, out)


def _test_dropoutNd_no_batch(dropout, input):
    """Upstream ``_test_dropoutNd_no_batch``."""
    input_clone = input.clone()
    with freeze_rng_state():
        res_no_batch = dropout(input)

    with freeze_rng_state():
        res_batched = dropout(input_clone.unsqueeze(0)).squeeze(0)

    assert torch.equal(res_no_batch, res_batched)


def _test_dropoutNd_channel_zero(dropout, input):
    """Upstream ``_test_dropoutNd_channel_zero``: each channel has 0 or all its elements nonzero."""
    shape = input.shape
    B = shape[0]
    C = shape[1]
    channel_numel = torch.tensor(shape[2:]).prod()
    result = dropout(input)

    for b, c in product(range(B), range(C)):
        assert result[b, c].count_nonzero() in (0, channel_numel)


def test_Dropout1d():
    """Upstream ``test_Dropout1d``."""
    with set_default_dtype(torch.double):
        N, C, L = RANDOM.randint(10, 15), RANDOM.randint(10, 15), RANDOM.randint(10, 15)
        input = torch.empty(N, C, L)
        _test_dropout(rt.Dropout1d, input)

        with pytest.raises(RuntimeError, match="Expected 2D or 3D input, but received a 4D input"):
            rt.Dropout1d(p=0.5)(torch.rand(1, 2, 2, 2))

        with pytest.raises(RuntimeError, match="Expected 2D or 3D input, but received a 1D input"):
            rt.Dropout1d(p=0.5)(torch.rand(2))

        # no batch dims
        input = torch.rand(50, 2)
        _test_dropoutNd_no_batch(rt.Dropout1d(p=0.5), input)
        _test_dropoutNd_no_batch(rt.Dropout1d(p=0.5, inplace=True), input)

        # check that complete channels are dropped
        input = torch.ones(10, 4, 2)
        _test_dropoutNd_channel_zero(rt.Dropout1d(p=0.5), input)
        _test_dropoutNd_channel_zero(rt.Dropout1d(p=0.5, inplace=True), input)


def test_Dropout2d():
    """Upstream ``test_Dropout2d``."""
    b = RANDOM.randint(1, 5)
    w = RANDOM.randint(1, 5)
    h = RANDOM.randint(1, 5)
    num_features = 1000
    input = torch.empty(num_features, b, w, h)
    _test_dropout(rt.Dropout2d, input)
    _test_dropout(rt.Dropout2d, input, memory_format=torch.channels_last)

    _test_dropout_discontiguous(rt.Dropout2d)
    _test_dropout_discontiguous(rt.Dropout2d, memory_format=torch.channels_last)

    with pytest.warns(UserWarning, match="Received a 5-D input to dropout2d"):
        rt.Dropout2d(p=0.5)(torch.rand(1, 2, 2, 2, 2))

    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d"):
        rt.Dropout2d(p=0.5)(torch.rand(1, 2))

    with pytest.warns(UserWarning, match="assuming that channel-wise 1D dropout behavior is desired"):
        rt.Dropout2d(p=0.5)(torch.rand(1, 2, 2))

    # check that complete channels are dropped
    input = torch.ones(10, 4, 2, 2)
    _test_dropoutNd_channel_zero(rt.Dropout2d(p=0.5), input)
    _test_dropoutNd_channel_zero(rt.Dropout2d(p=0.5, inplace=True), input)


def test_Dropout3d():
    """Upstream ``test_Dropout3d``."""
    b = RANDOM.randint(1, 5)
    w = RANDOM.randint(1, 5)
    h = RANDOM.randint(1, 5)
    d = RANDOM.randint(1, 2)
    num_features = 1000
    input = torch.empty(num_features, b, d, w, h)
    _test_dropout(rt.Dropout3d, input)

    _test_dropout_discontiguous(rt.Dropout3d)
    _test_dropout_discontiguous(rt.Dropout3d, memory_format=torch.channels_last)

    with pytest.warns(UserWarning, match="Received a 6-D input to dropout3d"):
        rt.Dropout3d(p=0.5)(torch.rand(1, 2, 2, 2, 2, 2))

    with pytest.warns(UserWarning, match="Received a 3-D input to dropout3d"):
        rt.Dropout3d(p=0.5)(torch.rand(1, 2, 2))

    # no batch dims
    input = torch.rand(50, 2, 2, 2)
    _test_dropoutNd_no_batch(rt.Dropout3d(p=0.5), input)
    _test_dropoutNd_no_batch(rt.Dropout3d(p=0.5, inplace=True), input)

    # check that complete channels are dropped
    input = torch.ones(10, 4, 2, 2, 2)
    _test_dropoutNd_channel_zero(rt.Dropout3d(p=0.5), input)
    _test_dropoutNd_channel_zero(rt.Dropout3d(p=0.5, inplace=True), input)


@pytest.mark.parametrize("cls, shape", [(torch.nn.Dropout1d, (4, 3, 5)), (torch.nn.Dropout2d, (1, 2, 2)),
                                        (torch.nn.Dropout2d, (2, 3, 4, 5)), (torch.nn.Dropout3d, (2, 3, 2, 2)),
                                        (torch.nn.Dropout2d, (1, 2, 2, 2, 2)), (torch.nn.Dropout3d, (1, 2, 2))])
def test_same_warnings_as_torch(cls, shape):
    """Our module warns exactly when torch's does, with torch's message."""
    ours = getattr(rt, cls.__name__)
    x = torch.rand(shape)
    with warnings.catch_warnings(record=True) as theirs_w:
        warnings.simplefilter("always")
        cls(p=0.5)(x)
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        ours(p=0.5)(x)
    assert [str(w.message) for w in ours_w] == [str(w.message) for w in theirs_w]
    assert [w.category for w in ours_w] == [w.category for w in theirs_w]


# ----------------------------------------------------------------------------------------------------------
# Keras's expectations


@pytest.mark.parametrize("cls, shape", [(rt.Dropout1d, (8, 16, 50)), (rt.Dropout2d, (8, 16, 10, 10)),
                                        (rt.Dropout3d, (8, 16, 4, 5, 5))])
def test_keras_spatial_dropout_zeroes_whole_feature_maps(cls, shape):
    """Keras's SpatialDropout1D/2D/3D tests: every feature map (sample, channel) of the output on ones is all
    zero or all 1 / (1 - rate), and some of each occur."""
    y = cls(0.5, generator=rf.Generator(7))(torch.ones(shape))
    maps = y.reshape(shape[0] * shape[1], -1)
    zero = (maps == 0).all(dim=1)
    kept = (maps == 2.0).all(dim=1)
    assert bool((zero | kept).all()) and 0 < int(zero.sum()) < maps.shape[0]


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("cls", [rt.AlphaDropout, rt.FeatureAlphaDropout])
def test_keras_alpha_dropout_keeps_mean_and_std(cls, p):
    """Keras's AlphaDropout test: on standard-normal input the output's mean and std stay within 0.1 of the
    input's, for rates 0.2, 0.5, 0.8 (feature alpha dropout over (N, C, H, W) with many channels)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4000, 16, generator=g) if cls is rt.AlphaDropout else torch.randn(64, 256, 4, 4, generator=g)
    y = cls(p, generator=rf.Generator(3))(x)
    assert abs(y.mean().item() - x.mean().item()) < 0.1
    assert abs(y.std().item() - x.std().item()) < 0.1
