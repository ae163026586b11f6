"""One encoder layer: self-attention and feed-forward, each in a residual block,
with LayerNorm before (pre-norm) or after (post-norm) the residual addition."""
from typing import Tuple

import torch
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


class ConvolutionAsLinear(nn.Module):
    """A trained `LocalConvolution` rewritten around one Linear layer `proj`: the same
    LayerNorm, the kernel and bias laid out by the subclass's `load_kernel`."""

    @classmethod
    def from_convolution(cls, local: LocalConvolution):
        """The same function as `local` (eval mode: no dropout)."""
        weight = local.conv.weight.detach()  # (D_out, D_in, K)
        module = cls(weight.size(0), weight.size(2))
        module.norm.load_state_dict(local.norm.state_dict())
        with torch.no_grad():
            module.load_kernel(weight, local.conv.bias.detach())
        return module.to(weight.device).eval()


class LinearLocalConvolution(ConvolutionAsLinear):
    """`LocalConvolution` computed as one Linear layer over its K taps, for int8
    inference: dynamic quantization reaches `nn.Linear` only, and the convolutions are
    the largest float op left in a quantized encoder.

    One matmul maps every (zero-padded) position to its K tap products, (B, T+K-1, K*D),
    and output t sums tap j of position t+j: the convolution's sum, in another order
    (float results agree to about 1e-6). Made from a trained `LocalConvolution` by
    `from_convolution`; never trained itself.
    """

    taps: Final[int]
    width: Final[int]

    def __init__(self, width: int, window: int) -> None:
        super().__init__()
        self.taps = window
        self.width = width
        self.norm = nn.LayerNorm(width)
        # Row block j (of K) holds tap j's weights; the bias sits in block 0 only, so
        # each output gets it once.
        self.proj = nn.Linear(width, window * width)

    def load_kernel(self, weight: Tensor, bias: Tensor) -> None:
        width, window = weight.size(0), weight.size(2)
        self.proj.weight.copy_(weight.permute(2, 0, 1).reshape(window * width, width))
        self.proj.bias.zero_()
        self.proj.bias[:width].copy_(bias)

    def forward(self, x: Tensor, real: Tensor) -> Tensor:
        """:param x: (B, T, D). :param real: (B, T, 1), 1.0 on real tokens. :return: (B, T, D)."""
        seq_len = x.size(1)
        half = self.taps // 2
        h = F.pad(self.norm(x) * real, (0, 0, half, half))  # (B, T+K-1, D)
        z = self.proj(h)  # (B, T+K-1, K*D)
        y = z[:, 0:seq_len, 0 : self.width]
        for j in range(1, self.taps):
            y = y + z[:, j : j + seq_len, j * self.width : (j + 1) * self.width]
        return x + F.gelu(y)


class UnfoldedLocalConvolution(ConvolutionAsLinear):
    """`LocalConvolution` as one Linear layer over each token's K neighbours laid side
    by side (B, T, K*D), for graph export: ONNX Runtime runs it as one MatMul instead
    of a Conv between two transposes (faster on short and long batches), and its
    dynamic int8 quantization reaches MatMul but leaves Conv in float. The same sum as
    the convolution, in another order (float results agree to about 1e-6). Made from a
    trained `LocalConvolution` by `from_convolution`; never trained itself.
    """

    taps: Final[int]

    def __init__(self, width: int, window: int) -> None:
        super().__init__()
        self.taps = window
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(window * width, width)

    def load_kernel(self, weight: Tensor, bias: Tensor) -> None:
        # Column block j (of K) holds tap j's weights: input j of the unfolded row.
        width, window = weight.size(0), weight.size(2)
        self.proj.weight.copy_(weight.permute(0, 2, 1).reshape(width, window * width))
        self.proj.bias.copy_(bias)

    def forward(self, x: Tensor, real: Tensor) -> Tensor:
        """:param x: (B, T, D). :param real: (B, T, 1), 1.0 on real tokens. :return: (B, T, D)."""
        seq_len = x.size(1)
        half = self.taps // 2
        h = F.pad(self.norm(x) * real, (0, 0, half, half))  # (B, T+K-1, D), padding zeroed
        unfolded = torch.cat([h[:, j : j + seq_len] for j in range(self.taps)], dim=-1)  # (B, T, K*D)
        return x + F.gelu(self.proj(unfolded))


def linear_convolutions(module: nn.Module) -> nn.Module:
    """Swap every `LocalConvolution` inside `module` (in place) for its
    `LinearLocalConvolution`; returns `module`."""
    for name, child in list(module.named_children()):
        if isinstance(child, LocalConvolution):
            setattr(module, name, LinearLocalConvolution.from_convolution(child))
        else:
            linear_convolutions(child)
    return module


class EncoderLayer(nn.Module):
    """:param width: D. :param n_heads: H. :param ff_width: feed-forward hidden size.
    :param dropout: on both residual branches and the feed-forward hidden layer.
    :param norm_first: pre-norm if True, else post-norm (the original Transformer).
    :param rotary: the rotary position module shared by the stack (or a no-op).
    :param local_window: kernel size of a residual convolution run first in the layer
        (0: none). Attention alone sees word order only through positions; the
        convolution gives every layer the local n-gram features a CNN tok2vec has.
    :param attention_scale: see `SelfAttention`.
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
        attention_scale: str = "sqrt",
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.local = LocalConvolution(width, local_window, dropout) if local_window > 0 else NoLocalContext()
        self.attention = SelfAttention(width, n_heads, rotary, attention_scale)
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
