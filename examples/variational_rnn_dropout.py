"""Variational (time-shared) dropout in a small recurrent language model, trained by hand-written NumPy BPTT.

Gal & Ghahramani's variational RNN dropout draws one mask per sequence and feature and uses it at every time
step, on the inputs, on the recurrent state and on the outputs, where ordinary dropout would draw a fresh mask
per step. With regdrop_fast that is ``dropout(x, p, broadcast_dims=0)`` on a (time, batch, feature) array:
one decision per (batch, feature), shared along the time axis, stored as batch * feature bits (not
time * batch * feature). The recurrent state, computed one step at a time, is dropped with one (batch,
feature) Mask applied at every step (``dropout_backward`` applies a mask's decisions and scale to any array
of its shape). Each training step takes the next stretch of one seeded stream, so the run is reproducible.

The model: an Elman RNN (tanh) over token embeddings, predicting the next token of synthetic sequences whose
next token is the previous one plus 3 (mod the vocabulary) most of the time. The script checks that the mask
is identical at every time step, checks the hand-written backward against finite differences, and trains a
few dozen steps until the loss has fallen well below its starting value.
"""

from __future__ import annotations

import numpy as np

import regdrop_fast as rdf

T, B, H, V = 12, 16, 32, 16  # time steps, batch, hidden units, vocabulary
P = 0.25  # drop probability of every variational mask
SEED = 2024


def batch(rng: np.random.Generator) -> np.ndarray:
    """(T + 1, B) tokens: each next token is the previous + 3 (mod V), or a random one with probability 0.1."""
    tokens = np.empty((T + 1, B), np.int64)
    tokens[0] = rng.integers(0, V, B)
    for t in range(1, T + 1):
        jump = rng.random(B) < 0.1
        tokens[t] = np.where(jump, rng.integers(0, V, B), (tokens[t - 1] + 3) % V)
    return tokens


class VariationalRNN:
    def __init__(self, rng: np.random.Generator) -> None:
        scale = 1 / np.sqrt(H)
        self.params = {
            "E": rng.standard_normal((V, H)) * 0.5,
            "W_xh": rng.standard_normal((H, H)) * scale,
            "W_hh": rng.standard_normal((H, H)) * scale,
            "b": np.zeros(H),
            "W_out": rng.standard_normal((H, V)) * scale,
        }
        self.offset = 0  # position in the dropout stream: advanced by every mask's decisions

    def masks(self) -> tuple[rdf.Mask, rdf.Mask, rdf.Mask]:
        """This step's three variational masks: inputs and outputs (T, B, H) shared over time (axis 0), and
        the recurrent state's (B, H), used at every step."""
        made = []
        for shape, dims in (((T, B, H), (0,)), ((B, H), ()), ((T, B, H), (0,))):
            mask = rdf.dropout_mask(shape, P, seed=SEED, offset=self.offset, broadcast_dims=dims)
            self.offset += mask.reduced_size
            made.append(mask)
        return made[0], made[1], made[2]

    def loss_and_grads(self, tokens: np.ndarray, masks: tuple[rdf.Mask, rdf.Mask, rdf.Mask],
                       ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """Mean next-token cross-entropy, its gradients (BPTT), and the dropped-out inputs (for the checks)."""
        p = self.params
        m_in, m_rec, m_out = masks
        inputs, targets = tokens[:-1], tokens[1:]
        e = p["E"][inputs]                              # (T, B, H)
        e_d = rdf.dropout_backward(e, m_in)             # the input mask, the same at every t
        hs = np.zeros((T + 1, B, H))                    # hs[t + 1] = h_t; hs[0] = 0
        hd = np.zeros((T, B, H))                        # the dropped recurrent input of each step
        for t in range(T):
            hd[t] = rdf.dropout_backward(hs[t], m_rec)  # one (B, H) mask at every step
            hs[t + 1] = np.tanh(e_d[t] @ p["W_xh"] + hd[t] @ p["W_hh"] + p["b"])
        o_d = rdf.dropout_backward(hs[1:], m_out)       # the output mask, the same at every t
        logits = o_d @ p["W_out"]                       # (T, B, V)
        logits -= logits.max(axis=-1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=-1, keepdims=True)
        n = T * B
        rows = np.arange(T)[:, None], np.arange(B)[None, :]
        loss = float(-np.log(prob[rows[0], rows[1], targets]).sum() / n)

        dlogits = prob
        dlogits[rows[0], rows[1], targets] -= 1
        dlogits /= n
        g = {k: np.zeros_like(v) for k, v in p.items()}
        g["W_out"] = np.einsum("tbh,tbv->hv", o_d, dlogits)
        dh_all = rdf.dropout_backward(dlogits @ p["W_out"].T, m_out)
        de_d = np.zeros_like(e_d)
        dh_next = np.zeros((B, H))
        for t in reversed(range(T)):
            da = (dh_all[t] + dh_next) * (1 - hs[t + 1] ** 2)
            g["W_xh"] += e_d[t].T @ da
            g["W_hh"] += hd[t].T @ da
            g["b"] += da.sum(axis=0)
            de_d[t] = da @ p["W_xh"].T
            dh_next = rdf.dropout_backward(da @ p["W_hh"].T, m_rec)
        np.add.at(g["E"], inputs, rdf.dropout_backward(de_d, m_in))
        return loss, g, e_d


rng = np.random.default_rng(0)
model = VariationalRNN(rng)
tokens = batch(rng)
masks = model.masks()

# The mask is shared over time: every step zeroes the same (batch, feature) entries of the inputs.
first_loss, grads, e_dropped = model.loss_and_grads(tokens, masks)
zero = e_dropped == 0
assert all(np.array_equal(zero[t], ~masks[0].to_bool()[0]) for t in range(T)), "the input mask differs between steps"
assert masks[0].to_bool().shape == (1, B, H) and masks[0].bits is not None and masks[0].bits.size == B * H // 8
print(f"input mask: {masks[0].reduced_size} decisions ({masks[0].bits.size} bytes) for {T * B * H} activations, "
      f"dropped fraction {zero[0].mean():.2f}, identical at all {T} time steps")

# The hand-written backward against central finite differences (the masks held fixed).
for name, index in (("W_hh", (3, 5)), ("W_xh", (0, 7)), ("E", (tokens[0, 0], 2)), ("W_out", (4, 1)), ("b", (6,))):
    w = model.params[name]
    saved = w[index]
    w[index] = saved + 1e-6
    up = model.loss_and_grads(tokens, masks)[0]
    w[index] = saved - 1e-6
    down = model.loss_and_grads(tokens, masks)[0]
    w[index] = saved
    numeric = (up - down) / 2e-6
    assert abs(numeric - grads[name][index]) <= 1e-6 + 1e-4 * abs(numeric), (name, numeric, grads[name][index])
print("backward matches finite differences")

# Training: plain SGD, a fresh batch and fresh masks (the next stretch of the stream) every step.
losses = []
for step in range(60):
    loss, step_grads, _ = model.loss_and_grads(batch(rng), model.masks())
    for k, v in model.params.items():
        v -= 1.0 * step_grads[k]
    losses.append(loss)
print(f"loss {losses[0]:.3f} -> {np.mean(losses[-5:]):.3f} over {len(losses)} steps "
      f"(uniform guessing: {np.log(V):.3f})")
assert np.mean(losses[-5:]) < 0.6 * losses[0], "the model did not learn"
