"""A dropout layer in a hand-written training step: forward keeps the mask, backward reuses it.

Each call takes the next stretch of one Philox stream (same seed, offset advanced by the elements drawn),
so every step gets a new mask and the whole run is reproducible from one seed.
"""

import numpy as np

import regdrop_fast as rdf


class Dropout:
    def __init__(self, p: float, seed: int, store: str = "bits") -> None:
        self.p, self.seed, self.offset, self.store = p, seed, 0, store
        self.mask: rdf.Mask | None = None  # set by each training forward()

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        if not training or self.p == 0:
            return x  # inverted dropout: nothing to undo at evaluation time
        y, self.mask = rdf.dropout(x, self.p, seed=self.seed, offset=self.offset, store=self.store)
        self.offset += x.size
        return y

    def backward(self, grad: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("backward() needs the mask of a training forward() first")
        return rdf.dropout_backward(grad, self.mask)  # 1 bit per element kept, or regenerated ("seed")


rng = np.random.default_rng(0)
x = rng.standard_normal((4, 8), dtype=np.float32)
layer = Dropout(0.5, seed=1234)
y = layer.forward(x)
dx = layer.backward(np.ones_like(y))
mask = layer.mask
assert mask is not None and mask.bits is not None  # a training forward() with store="bits" keeps the bits
print("kept fraction", mask.to_bool().mean(), "| mask bytes", mask.bits.nbytes, "for", x.nbytes,
      "bytes of activations")
assert np.array_equal(dx != 0, mask.to_bool())  # the gradient flows exactly where the forward kept
assert np.array_equal(y, np.where(mask.to_bool(), x * np.float32(2.0), 0))

# The same layer storing nothing: backward regenerates the mask from (seed, offset).
again = Dropout(0.5, seed=1234, store="seed")
assert np.array_equal(again.forward(x), y) and np.array_equal(again.backward(np.ones_like(y)), dx)
second = layer.forward(x)  # the next call draws a fresh mask
print("second call differs from the first:", not np.array_equal(second, y))
