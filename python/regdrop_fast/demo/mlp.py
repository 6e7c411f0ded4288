"""Part 2: a two-layer MLP with dropout, trained by hand-written NumPy backpropagation on digits.

Network: 64 inputs -> 512 ReLU units -> 10 softmax outputs, cross-entropy loss, mini-batch SGD with
momentum. Four runs from the same initial weights and the same batch order:

  no regularization    the plain network
  L2                   regdrop_fast.penalty_grad adds l2 * W into both weight gradients
  dropout              regdrop_fast.dropout on the inputs (p=0.2) and the hidden units (p=0.5);
                       regdrop_fast.dropout_backward routes the gradient through the kept units only
  dropout + max-norm   as dropout, then regdrop_fast.max_norm(W, 3.0, axis=0) after every step bounds
                       each unit's incoming weight vector (Srivastava et al., JMLR 2014)

Every dropout call takes the next stretch of one Philox stream (same seed, offset advanced by the number
of elements drawn), so every mask is new, every run is reproducible, and nothing but (seed, offset) decides
a mask. Inverted dropout scales kept units by 1/(1-p) during training, so evaluation uses the plain network.
The losses recorded per epoch are the data (cross-entropy) losses on the whole training and test sets in
evaluation mode: their gap is the overfitting the regularizers fight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike

import numpy as np
from numpy.typing import DTypeLike

import regdrop_fast as rdf

HIDDEN = 512
EPOCHS = 100
BATCH = 64
LEARNING_RATE = 0.05
MOMENTUM = 0.9
TEST_FRACTION = 0.3
SPLIT_SEED = 0
INIT_SEED = 1
DROPOUT_SEED = 2
ACCURACY_BAR = 0.97  # dropout + max-norm must reach this test accuracy


@dataclass(frozen=True)
class Config:
    name: str
    l2: float = 0.0
    p_input: float = 0.0
    p_hidden: float = 0.0
    max_norm: float | None = None


CONFIGS = (
    Config("no regularization"),
    Config("L2", l2=1e-3),
    Config("dropout", p_input=0.2, p_hidden=0.5),
    Config("dropout + max-norm", p_input=0.2, p_hidden=0.5, max_norm=3.0),
)


@dataclass
class History:
    config: Config
    train_loss: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data() -> Data:
    """scikit-learn's bundled 8x8 digits, pixels scaled to [0, 1], a stratified 70/30 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED,
                                              stratify=y)
    return Data(x_tr, y_tr, x_te, y_te)


def _softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and the softmax probabilities (computed from max-shifted logits)."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    loss = float(np.mean(log_norm - z[np.arange(len(labels)), labels]))
    return loss, np.exp(z - log_norm[:, None])


class MLP:
    """Weights (W1, b1, W2, b2); W has shape (fan_in, fan_out), so axis=0 of max_norm is a unit's input."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, seed: int, dtype: DTypeLike = np.float32) -> None:
        rng = np.random.default_rng(seed)  # He initialisation, drawn once: these weights are then trained
        self.w1 = (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2.0 / n_in)).astype(dtype)
        self.b1 = np.zeros(n_hidden, dtype)
        self.w2 = (rng.standard_normal((n_hidden, n_out)) * np.sqrt(2.0 / n_hidden)).astype(dtype)
        self.b2 = np.zeros(n_out, dtype)

    @property
    def params(self) -> list[np.ndarray]:
        return [self.w1, self.b1, self.w2, self.b2]

    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(cross-entropy, accuracy) of the plain network (evaluation mode: no dropout)."""
        logits = np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2
        loss, prob = _softmax_cross_entropy(logits, labels)
        return loss, float(np.mean(prob.argmax(axis=1) == labels))


class Stream:
    """Successive dropout calls read consecutive stretches of one Philox stream: (seed, offset)."""

    def __init__(self, seed: int) -> None:
        self.seed, self.offset = seed, 0

    def dropout(self, a: np.ndarray, p: float) -> tuple[np.ndarray, rdf.Mask]:
        y, mask = rdf.dropout(a, p, seed=self.seed, offset=self.offset)
        self.offset += a.size
        return y, mask


def loss_and_gradients(net: MLP, x: np.ndarray, labels: np.ndarray, cfg: Config, stream: Stream
                       ) -> tuple[float, list[np.ndarray]]:
    """Training loss of one batch (cross-entropy + penalty) and its gradients for net.params, by hand.

    The dropout masks come from `stream`; dropout_backward applies the very mask its forward drew.
    """
    # forward
    x_in, _ = stream.dropout(x, cfg.p_input) if cfg.p_input else (x, None)
    pre = x_in @ net.w1 + net.b1
    hidden = np.maximum(pre, 0.0)
    h_out, h_mask = stream.dropout(hidden, cfg.p_hidden) if cfg.p_hidden else (hidden, None)
    loss, prob = _softmax_cross_entropy(h_out @ net.w2 + net.b2, labels)
    # backward: d(mean cross-entropy)/d(logits) = (softmax - onehot) / batch
    d_logits = prob
    d_logits[np.arange(len(labels)), labels] -= 1.0
    d_logits /= len(labels)
    g_w2 = h_out.T @ d_logits
    g_b2 = d_logits.sum(axis=0)
    d_hidden = d_logits @ net.w2.T
    if h_mask is not None:
        d_hidden = rdf.dropout_backward(d_hidden, h_mask)  # the kept units only, times 1/(1-p)
    d_pre = d_hidden * (pre > 0)
    g_w1 = x_in.T @ d_pre
    g_b1 = d_pre.sum(axis=0)
    if cfg.l2:  # weights only, not the biases; the value joins the loss it is the gradient of
        loss += rdf.penalty_grad([net.w1, net.w2], [g_w1, g_w2], l2=cfg.l2)
    return loss, [g_w1, g_b1, g_w2, g_b2]


def train_step(net: MLP, x: np.ndarray, labels: np.ndarray, cfg: Config, stream: Stream,
               velocity: list[np.ndarray]) -> float:
    """One SGD-with-momentum step on a batch, then the max-norm projection; returns the batch loss."""
    loss, grads = loss_and_gradients(net, x, labels, cfg, stream)
    for param, grad, vel in zip(net.params, grads, velocity):
        vel *= MOMENTUM
        vel -= LEARNING_RATE * grad
        param += vel
    if cfg.max_norm is not None:
        rdf.max_norm(net.w1, cfg.max_norm, axis=0)
        rdf.max_norm(net.w2, cfg.max_norm, axis=0)
    return loss


def train(cfg: Config, data: Data, epochs: int = EPOCHS) -> History:
    net = MLP(data.x_train.shape[1], HIDDEN, 10, INIT_SEED)
    velocity = [np.zeros_like(p) for p in net.params]
    stream = Stream(DROPOUT_SEED)
    order = np.random.default_rng(SPLIT_SEED)  # the same batch order for every configuration
    history = History(cfg)
    n = len(data.y_train)
    for _ in range(epochs):
        perm = order.permutation(n)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            train_step(net, data.x_train[idx], data.y_train[idx], cfg, stream, velocity)
        loss, acc = net.evaluate(data.x_train, data.y_train)
        history.train_loss.append(loss)
        history.train_acc.append(acc)
        loss, acc = net.evaluate(data.x_test, data.y_test)
        history.test_loss.append(loss)
        history.test_acc.append(acc)
    return history


def train_all(epochs: int = EPOCHS) -> list[History]:
    data = load_data()
    # The products here are at most 1257 x 512: BLAS threads cost more than they save at that size (and
    # ten times more on a busy machine), so the training runs with one BLAS thread. Results are the same.
    try:
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    except ImportError:
        return [train(cfg, data, epochs) for cfg in CONFIGS]
    with threadpool_limits(limits=1, user_api="blas"):
        return [train(cfg, data, epochs) for cfg in CONFIGS]


def format_histories(histories: list[History]) -> str:
    head = (f"{'configuration':20s} {'train acc':>9s} {'test acc':>8s} {'train loss':>10s} "
            f"{'test loss':>9s} {'gap':>7s} {'best test loss (epoch)':>22s}")
    lines = [head, "-" * len(head)]
    for h in histories:
        best = int(np.argmin(h.test_loss))
        lines.append(
            f"{h.config.name:20s} {h.train_acc[-1]:9.2%} {h.test_acc[-1]:8.2%} {h.train_loss[-1]:10.4f} "
            f"{h.test_loss[-1]:9.4f} {h.test_loss[-1] - h.train_loss[-1]:7.4f} "
            f"{f'{h.test_loss[best]:.4f} ({best + 1})':>22s}"
        )
    return "\n".join(lines)


def plot_losses(histories: list[History], path: str | PathLike[str]) -> None:
    """Train vs test loss per epoch, one panel per configuration, same log axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True, sharey=True)
    for ax, h in zip(axes.flat, histories):
        epochs = np.arange(1, len(h.train_loss) + 1)
        ax.plot(epochs, h.train_loss, label="train loss")
        ax.plot(epochs, h.test_loss, label="test loss")
        ax.fill_between(epochs, h.train_loss, h.test_loss, alpha=0.15, label="overfitting gap")
        ax.set_yscale("log")
        ax.set_title(f"{h.config.name}: test accuracy {h.test_acc[-1]:.2%}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel("cross-entropy (evaluation mode)")
    fig.suptitle("Two-layer MLP on scikit-learn digits: train vs test loss", fontsize=11)
    fig.savefig(path, dpi=110)
