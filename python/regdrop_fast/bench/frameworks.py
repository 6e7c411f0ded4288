"""The peers regdrop_fast is compared with, each written the way its own users write it.

An adapter turns prepared NumPy data into zero-argument callables that do one whole operation
(including any synchronisation), or returns None when the framework has no such operation here. A
framework is used only when it can be imported; nothing is ever installed. All callables of one case see
the same values: the adapters wrap (torch, zero-copy) or copy (JAX, TensorFlow) the case's NumPy arrays.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import ml_dtypes
import numpy as np

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

Op = Callable[[], object]


class Framework:
    """Base adapter: every operation is missing unless a subclass provides it."""

    name = ""
    forward_label = ""
    backward_label = ""
    penalty_label = ""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    @property
    def version(self) -> str:
        return str(getattr(self.module, "__version__", "unknown"))

    def set_threads(self, n: int) -> None:
        """Ask the framework to use n threads for its operators (best effort)."""

    def threads(self) -> int | str | None:
        return None

    def dropout_forward(self, x: np.ndarray, p: float, seed: int) -> Op | None:
        return None

    def dropout_backward(self, x: np.ndarray, grad: np.ndarray, p: float, seed: int) -> Op | None:
        return None

    def penalty_l2(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], l2: float) -> Op | None:
        return None


class NumpyFramework(Framework):
    """The textbook NumPy dropout: a uniform draw compared with p, a multiply, a divide."""

    name = "numpy"
    forward_label = "numpy naive"
    backward_label = "numpy naive"
    penalty_label = "numpy loop"

    def dropout_forward(self, x: np.ndarray, p: float, seed: int) -> Op:
        rng = np.random.default_rng(seed)

        def forward() -> np.ndarray:
            return (x * (rng.random(x.shape) >= p) / (1 - p)).astype(x.dtype, copy=False)

        return forward

    def dropout_backward(self, x: np.ndarray, grad: np.ndarray, p: float, seed: int) -> Op:
        keep = np.random.default_rng(seed).random(x.shape) >= p  # the bool mask the forward kept

        def backward() -> np.ndarray:
            return (grad * keep / (1 - p)).astype(grad.dtype, copy=False)

        return backward

    def penalty_l2(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], l2: float) -> Op:
        def step() -> float:
            total = 0.0
            for w, g in zip(params, grads):
                g += l2 * w
                total += (w * w).sum()
            return 0.5 * l2 * float(total)

        return step


class TorchFramework(Framework):
    """torch.nn.functional.dropout, its autograd backward, and foreach weight decay plus the value loop."""

    name = "torch"
    forward_label = "torch F.dropout"
    backward_label = "torch autograd"
    penalty_label = "torch _foreach_add_ + value loop"

    def set_threads(self, n: int) -> None:
        self.module.set_num_threads(n)

    def threads(self) -> int:
        return self.module.get_num_threads()

    def _tensor(self, a: np.ndarray) -> Any:
        torch = self.module
        if a.dtype == BFLOAT16:  # torch does not know ml_dtypes: reinterpret the same bytes
            return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16)
        return torch.from_numpy(a)

    def dropout_forward(self, x: np.ndarray, p: float, seed: int) -> Op:
        torch = self.module
        torch.manual_seed(seed)
        xt = self._tensor(x)
        dropout = torch.nn.functional.dropout

        def forward() -> Any:
            return dropout(xt, p, training=True)

        return forward

    def dropout_backward(self, x: np.ndarray, grad: np.ndarray, p: float, seed: int) -> Op:
        torch = self.module
        torch.manual_seed(seed)
        xt = self._tensor(x).detach().requires_grad_(True)
        gt = self._tensor(grad)
        yt = torch.nn.functional.dropout(xt, p, training=True)

        def backward() -> Any:
            return torch.autograd.grad(yt, xt, gt, retain_graph=True)[0]

        return backward

    def penalty_l2(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], l2: float) -> Op:
        torch = self.module
        tp = [torch.from_numpy(w) for w in params]
        tg = [torch.from_numpy(g) for g in grads]

        def step() -> float:
            torch._foreach_add_(tg, tp, alpha=l2)
            return float(0.5 * l2 * sum((w * w).sum() for w in tp))

        return step


class JaxFramework(Framework):
    """jax.random.bernoulli + jnp.where under jax.jit (backward through jax.vjp), block_until_ready."""

    name = "jax"
    forward_label = "jax bernoulli+where (jit)"
    backward_label = "jax vjp (jit)"
    # No penalty row: issue 3 compares with NumPy and torch, and jitting a function of 1,000 arrays
    # costs seconds of compilation per parameter list.

    def threads(self) -> str:
        return "XLA CPU pool (not settable here)"

    def _dropout_fn(self, p: float) -> Callable[[Any, Any], Any]:
        jax, jnp = self.module, importlib.import_module("jax.numpy")

        def dropout(key: Any, x: Any) -> Any:
            keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
            return jnp.where(keep, x / (1.0 - p), 0)

        return dropout

    def dropout_forward(self, x: np.ndarray, p: float, seed: int) -> Op:
        jax = self.module
        key = jax.random.key(seed)
        xj = jax.device_put(x)
        forward = jax.jit(self._dropout_fn(p))
        return lambda: forward(key, xj).block_until_ready()

    def dropout_backward(self, x: np.ndarray, grad: np.ndarray, p: float, seed: int) -> Op:
        jax = self.module
        dropout = self._dropout_fn(p)
        key = jax.random.key(seed)
        xj, gj = jax.device_put(x), jax.device_put(grad)

        @jax.jit
        def backward(key: Any, x: Any, g: Any) -> Any:
            _, vjp = jax.vjp(lambda v: dropout(key, v), x)
            return vjp(g)[0]

        return lambda: backward(key, xj, gj).block_until_ready()


class TensorflowFramework(Framework):
    """tf.nn.dropout in eager mode (forward only: its backward needs a tape around the forward)."""

    name = "tensorflow"
    forward_label = "tf.nn.dropout"

    def set_threads(self, n: int) -> None:
        try:  # only possible before TensorFlow's runtime has started
            self.module.config.threading.set_intra_op_parallelism_threads(n)
        except RuntimeError:
            pass

    def threads(self) -> int | str:
        n = self.module.config.threading.get_intra_op_parallelism_threads()
        return n if n else "all cores (TensorFlow default)"

    def dropout_forward(self, x: np.ndarray, p: float, seed: int) -> Op:
        tf = self.module
        tf.random.set_seed(seed)
        xt = tf.constant(x)
        return lambda: tf.nn.dropout(xt, rate=p)


ADAPTERS: dict[str, type[Framework]] = {
    "numpy": NumpyFramework,
    "torch": TorchFramework,
    "jax": JaxFramework,
    "tensorflow": TensorflowFramework,
}
PEER_NAMES = tuple(ADAPTERS)


def installed(name: str) -> bool:
    """Whether the framework's top-level module can be found (without importing it)."""
    return importlib.util.find_spec(name) is not None


def load(name: str) -> Framework:
    """Import the framework and wrap it; ImportError (or whatever its import raises) propagates."""
    if name == "tensorflow":  # keep TensorFlow's start-up log lines out of the tables
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return ADAPTERS[name](importlib.import_module(name))
