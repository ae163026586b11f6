"""One encoder layer: self-attention and feed-forward, each in a residual block,
with LayerNorm before (pre-norm) or after (post-norm) the residual addition."""
from typing import Tuple

import torch.nn.functional as F
from torch import Tensor, nn
from torch.jit import Final

from .attention import SelfAttention


class FeedForward(nn.Module):
    """:param width: D. :param ff_width: hidden size. :param dropout: on the hidden layer."""

    def __init__(self, width: int, ff_width: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(width, ff_width)
        self.output = nn.Linear(ff_width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: (B, T, D). :return: (B, T, D)."""
        return self.output(self.dropout(F.gelu(self.hidden(x))))


class NoLocalContext(nn.Module):
    def forward(self, x: Tensor, real: Tensor) -> Tensor:
        return x


class LocalConvolution(nn.Module):
    """A pre-norm residual convolution over neighbouring tokens, run once before the
    attention layers: cheap local context (what spaCy's CNN is built from).

    :param width: D. :param window: odd kernel size. :param dropout: on the branch.
    """

    def __init__(self, width: int, window: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.conv = nn.Conv1d(width, width, window, padding=window // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, real: Tensor) -> Tensor:
        """:param x: (B, T, D). :param real: (B, T, 1), 1.0 on real tokens. :return: (B, T, D)."""
        # Zero the padding first: otherwise the kernel would read it into the last
        # real tokens and a doc's vectors would depend on its batch.
        h = (self.norm(x) * real).transpose(1, 2)  # (B, D, T)
        h = F.gelu(self.conv(h)).transpose(1, 2)  # (B, T, D)
        return x + self.dropout(h)


class EncoderLayer(nn.Module):
    """:param width: D. :param n_heads: H. :param ff_width: feed-forward hidden size.
    :param dropout: on both residual branches and the feed-forward hidden layer.
    :param norm_first: pre-norm if True, else post-norm (the original Transformer).
    :param rotary: the rotary position module shared by the stack (or a no-op).
    :param local_window: kernel size of a residual convolution run first in the layer
        (0: none). Attention alone sees word order only through positions; the
        convolution gives every layer the local n-gram features a CNN tok2vec has.
    """

    norm_first: Final[bool]

    def __init__(
        self,
        width: int,
        n_heads: int,
        ff_width: int,
        dropout: float,
        norm_first: bool,
        rotary: nn.Module,
        local_window: int = 0,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.local = LocalConvolution(width, local_window, dropout) if local_window > 0 else NoLocalContext()
        self.attention = SelfAttention(width, n_heads, rotary)
        self.feed_forward = FeedForward(width, ff_width, dropout)
        self.attention_norm = nn.LayerNorm(width)
        self.ff_norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor, real: Tensor) -> Tensor:
        """:param x: (B, T, D). :param keep: (B, 1, 1, T) bool.
        :param real: (B, T, 1), 1.0 on real tokens. :return: (B, T, D)."""
        x = self.local(x, real)
        if self.norm_first:
            x = x + self.dropout(self.attention(self.attention_norm(x), keep))
            x = x + self.dropout(self.feed_forward(self.ff_norm(x)))
        else:
            x = self.attention_norm(x + self.dropout(self.attention(x, keep)))
            x = self.ff_norm(x + self.dropout(self.feed_forward(x)))
        return x

    def forward_with_weights(self, x: Tensor, keep: Tensor, real: Tensor) -> Tuple[Tensor, Tensor]:
        """`forward` through the explicit attention path (eval only).

        :return: output (B, T, D) and attention weights (B, H, T, T).
        """
        x = self.local(x, real)
        if self.norm_first:
            attended, weights = self.attention.forward_with_weights(self.attention_norm(x), keep)
            x = x + attended
            x = x + self.feed_forward(self.ff_norm(x))
        else:
            attended, weights = self.attention.forward_with_weights(x, keep)
            x = self.attention_norm(x + attended)
            x = self.ff_norm(x + self.feed_forward(x))
        return x, weights
