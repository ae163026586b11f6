"""Each token's characters to one vector: a small CNN over its first and last bytes.

The input is what spaCy's `Doc.to_utf8_array(nr_char=C)` gives for each token: C UTF-8
bytes, the first ones at even slots and the last ones (from the end backwards) at odd
slots, 255 where the token is shorter (255 never occurs in UTF-8). A word of up to C
bytes appears whole; a longer one keeps its first and last C/2 bytes, where prefixes,
suffixes and capitals are. The module puts the slots back in reading order, embeds each
byte, runs one convolution over neighbouring bytes and max-pools over the real ones
(after Ma and Hovy's character CNN for NER; TENER uses the same pooling).

Hashed PREFIX and SUFFIX ids see one fixed affix each, and an affix the table never
trained is as unknown as the word; the byte n-grams here are shared by every word that
contains them, so an unseen name is still read from its pieces.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.jit import Final

# The byte `Doc.to_utf8_array` writes where a token has no more characters.
NO_CHAR = 255


def reading_order(n_chars: int) -> List[int]:
    """The slots of `Doc.to_utf8_array(nr_char=n_chars)` (n_chars even) in reading
    order: the first bytes (even slots), then the last bytes (odd slots, reversed). A
    short word reads as itself, with the unused slots between its halves."""
    return list(range(0, n_chars, 2)) + list(range(n_chars - 1, 0, -2))


class CharEncoder(nn.Module):
    """:param n_chars: C, bytes per token (even). :param width: output width W; each
    byte is embedded at W // 2. :param window: the convolution's kernel (odd).

    forward: (B, T, C) int64 bytes (0-255) -> (B, T, W), each token on its own (so
    padding and batching cannot change a token's vector).
    """

    no_char: Final[int]

    def __init__(self, n_chars: int, width: int, window: int = 3) -> None:
        super().__init__()
        self.no_char = NO_CHAR
        self.register_buffer("order", torch.tensor(reading_order(n_chars), dtype=torch.int64), persistent=False)
        self.embed = nn.Embedding(NO_CHAR + 1, max(width // 2, 1))
        nn.init.normal_(self.embed.weight, std=0.1)
        self.conv = nn.Conv1d(max(width // 2, 1), width, window, padding=window // 2)

    def forward(self, chars: Tensor) -> Tensor:
        """:param chars: (B, T, C) int64. :return: (B, T, W)."""
        batch, seq_len, n_chars = chars.shape
        chars = chars.index_select(2, self.order).clamp(0, self.no_char)  # (B, T, C), reading order
        real = (chars != self.no_char).unsqueeze(-1)  # (B, T, C, 1)
        x = self.embed(chars) * real.to(self.embed.weight.dtype)  # (B, T, C, E), no-char slots zero
        h = self.conv(x.reshape(batch * seq_len, n_chars, -1).transpose(1, 2))  # (B*T, W, C)
        h = F.relu(h).transpose(1, 2).reshape(batch, seq_len, n_chars, -1)  # (B, T, C, W)
        # ReLU is >= 0, so zeroing the no-char slots keeps them out of the max (a token
        # with no bytes at all pools to zero).
        return (h * real.to(h.dtype)).amax(dim=2)  # (B, T, W)
