"""A small GPT-style block trained for a few steps with the fused epilogue, against the unfused torch
composition fed the same masks.

Both sub-blocks (attention, MLP) end with ``residual + dropout(proj(h) + bias)``. The fused model computes
the projection without its bias and hands bias, residual and dropout to ``regdrop_fast.torch.bias_dropout_add``
(one pass forward, one pass backward for dx and dbias). The reference model is plain torch: ``x + bias``,
``torch.where(keep, . * scale, 0)``, ``+ residual``, with the keep masks taken from the same regdrop_fast
Generator position (``regdrop_fast.dropout_mask``), so both see identical masks at every step.

float64 throughout. The forward values agree bit for bit (same operations in the same order); the bias
gradients differ only in summation order (the fused kernel adds 64-row blocks in a fixed order, autograd's
sum has its own), so after the first update the losses agree to rounding, not bit for bit. Run:
``python examples/gpt_block.py``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

import regdrop_fast as rf
import regdrop_fast.torch as rft

P = 0.1
D, HEADS, T, BATCH, VOCAB, STEPS = 64, 4, 16, 8, 50, 8


class Block(nn.Module):
    """Pre-norm attention + MLP; the output projections carry their biases as separate parameters so that
    either epilogue can add them."""

    def __init__(self, fused: bool, generator: rf.Generator) -> None:
        super().__init__()
        self.fused, self.generator = fused, generator
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D, bias=False)
        self.proj_bias = nn.Parameter(torch.zeros(D))
        self.up = nn.Linear(D, 4 * D)
        self.down = nn.Linear(4 * D, D, bias=False)
        self.down_bias = nn.Parameter(torch.zeros(D))

    def epilogue(self, h: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return rft.bias_dropout_add(h, bias, residual, P, self.training, generator=self.generator)
        if not self.training:
            return residual + (h + bias)
        seed, offset = self.generator.next(h.numel())  # the position the fused call would take
        keep = torch.from_numpy(rf.dropout_mask(tuple(h.shape), P, seed=seed, offset=offset).to_bool())
        t = h + bias
        return residual + torch.where(keep, t * (1.0 / (1.0 - P)), torch.zeros((), dtype=t.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (a.view(b, t, HEADS, D // HEADS).transpose(1, 2) for a in (q, k, v))
        att = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = self.epilogue(self.proj(att.transpose(1, 2).reshape(b, t, D)), self.proj_bias, x)
        return self.epilogue(self.down(nn.functional.gelu(self.up(self.ln2(x)))), self.down_bias, x)


class TinyGPT(nn.Module):
    def __init__(self, fused: bool, generator: rf.Generator) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.pos = nn.Parameter(torch.zeros(T, D))
        self.block = Block(fused, generator)
        self.head = nn.Linear(D, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.embed(tokens) + self.pos))


def train(model: TinyGPT, data: torch.Tensor) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for step in range(STEPS):
        tokens = data[step % len(data)]
        logits = model(tokens[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main() -> None:
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    data = torch.randint(0, VOCAB, (4, BATCH, T + 1))
    fused = TinyGPT(True, rf.Generator(2024))
    unfused = copy.deepcopy(fused)  # the same initial weights
    unfused.block.fused, unfused.block.generator = False, rf.Generator(2024)
    with torch.no_grad():  # before any update the two forwards are the same computation
        tokens = data[0][:, :-1]
        assert torch.equal(fused(tokens), unfused(tokens)), "forward values differ"
    lf, lu = train(fused, data), train(unfused, data)
    worst = max(abs(a - b) / abs(b) for a, b in zip(lf, lu))
    for step, (a, b) in enumerate(zip(lf, lu)):
        print(f"step {step}: fused {a:.15f}  unfused {b:.15f}")
    print(f"max relative loss difference {worst:.3e}")
    assert lf[0] == lu[0], "the first loss (no update yet) must be bit-identical"
    assert worst <= 1e-10, worst
    assert lf[-1] < lf[0], "the block did not train"


if __name__ == "__main__":
    main()
