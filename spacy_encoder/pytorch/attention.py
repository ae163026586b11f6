"""Multi-head self-attention with one boolean keep-mask convention.

The mask is built in one place (`keep_mask`): True = this key may be attended to.
A row whose sequence has no real token (an empty doc) would mask every key, and a
softmax over nothing but masked logits is NaN in every dtype; such rows keep key 0
instead. Their outputs are padding and are discarded, but they stay finite, so no NaN
can reach the weight gradients (also in fp16).
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.jit import Final


def keep_mask(lengths: Tensor, seq_len: int) -> Tensor:
    """The attention keep-mask of a padded batch.

    :param lengths: (B,) number of real tokens per row.
    :param seq_len: padded length T.
    :return: (B, 1, 1, T) bool, True where the key is a real token (and key 0 of an
        empty row, see the module docstring).
    """
    positions = torch.arange(seq_len, device=lengths.device)  # (T,)
    keep = positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    empty_row_guard = (lengths == 0).unsqueeze(1) & (positions == 0).unsqueeze(0)  # (B, T)
    return (keep | empty_row_guard).unsqueeze(1).unsqueeze(2)  # (B, 1, 1, T)


ATTENTION_SCALES: Tuple[str, ...] = ("sqrt", "learned", "none")


class SelfAttention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention`.

    :param width: model width D.
    :param n_heads: number of heads H; D must be divisible by H.
    :param rotary: a module whose `rotate(q, k)` applies rotary positions (or is a no-op).
    :param scale: the factor on the attention logits: "sqrt", 1/sqrt(D/H) (the
        Transformer's); "learned", one factor per head, learned, starting at
        1/sqrt(D/H); "none", 1 (un-scaled, as TENER for NER: sharper attention).
    """

    __constants__ = ["n_heads", "head_width"]
    learned_scale: Final[bool]
    logit_scale: Final[float]

    def __init__(self, width: int, n_heads: int, rotary: nn.Module, scale: str = "sqrt") -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_width = width // n_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.output = nn.Linear(width, width)
        self.rotary = rotary
        self.scale = scale
        self.learned_scale = scale == "learned"
        # What the logits are multiplied by after the learned factor (if any) is in q.
        self.logit_scale = 1.0 / math.sqrt(self.head_width) if scale == "sqrt" else 1.0
        if self.learned_scale:
            # Only then: the released modules keep their state_dict keys.
            start = math.log(1.0 / math.sqrt(self.head_width))
            self.log_scale = nn.Parameter(torch.full((n_heads, 1, 1), start))  # (H, 1, 1)

    def _heads(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        batch, seq_len, width = x.shape
        qkv = self.qkv(x).view(batch, seq_len, 3, self.n_heads, self.head_width)  # (B, T, 3, H, Dh)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
        q, k = self.rotary.rotate(qkv[0], qkv[1])
        if self.learned_scale:
            q = q * self.log_scale.exp()  # (B, H, T, Dh), each head's factor
        return q, k, qkv[2]

    def _merge(self, y: Tensor) -> Tensor:
        batch, _, seq_len, _ = y.shape
        y = y.transpose(1, 2).reshape(batch, seq_len, self.n_heads * self.head_width)  # (B, T, D)
        return self.output(y)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        """:param x: (B, T, D). :param keep: (B, 1, 1, T) bool. :return: (B, T, D)."""
        q, k, v = self._heads(x)
        # No dropout on the attention weights: with dropout_p > 0 the CPU falls back to
        # the unfused math kernel and samples a (B, H, T, T) mask, several times slower.
        if self.scale == "sqrt":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # (B, H, T, Dh)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=self.logit_scale)
        return self._merge(y)

    def forward_with_weights(self, x: Tensor, keep: Tensor) -> Tuple[Tensor, Tensor]:
        """The same computation with explicit attention weights, for inspection.

        `scaled_dot_product_attention` never materialises the weights, so this path
        computes them by hand (no dropout); tests pin it to `forward`.

        :param x: (B, T, D). :param keep: (B, 1, 1, T) bool.
        :return: output (B, T, D) and weights (B, H, T, T); rows sum to 1 over kept keys.
        """
        q, k, v = self._heads(x)
        # float32 for inspection; TorchScript has no torch.finfo, hence the literal
        # (torch.finfo(torch.float32).min).
        logits = (q @ k.transpose(-1, -2)).float()  # (B, H, T, T)
        logits = logits / math.sqrt(self.head_width) if self.scale == "sqrt" else logits * self.logit_scale
        logits = logits.masked_fill(~keep, -3.4028234663852886e38)
        weights = logits.softmax(dim=-1)
        return self._merge(weights.to(v.dtype) @ v), weights



class AdditiveMaskAttention(SelfAttention):
    """`SelfAttention` with its softmax written out over an additive mask, for graph
    export: the same function (float results agree to about 1e-6) in the ops ONNX
    Runtime runs fastest. `scaled_dot_product_attention` with a boolean mask exports
    with a guard against all-masked rows (a test for NaN and a select over every
    (B, H, T, T) weight); `keep_mask` never masks a whole row, so the guard has nothing
    to do, and without it the encoder's graph ran up to 18% faster on long batches
    (docs/tried.md).
    Made from a trained `SelfAttention` by `from_attention`; never trained itself.
    """

    # Repeated: TorchScript reads a class's own annotations.
    learned_scale: Final[bool]
    logit_scale: Final[float]

    @classmethod
    def from_attention(cls, attention: SelfAttention) -> "AdditiveMaskAttention":
        """The same function as `attention` (eval mode), sharing its rotary module."""
        module = cls(attention.n_heads * attention.head_width, attention.n_heads, attention.rotary, attention.scale)
        module.load_state_dict(attention.state_dict())
        return module.to(attention.qkv.weight.device).eval()

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        """:param x: (B, T, D). :param keep: (B, 1, 1, T) bool. :return: (B, T, D)."""
        q, k, v = self._heads(x)
        # -inf on masked keys; every row keeps a key (keep_mask), so no row is all -inf.
        bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill(~keep, float("-inf"))
        logits = (q @ k.transpose(-1, -2)) * self.logit_scale + bias  # (B, H, T, T)
        return self._merge(logits.softmax(dim=-1) @ v)
