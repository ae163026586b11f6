"""Long sequences as overlapping windows, and a one-doc module that stitches them.

The window rule lives here, in TorchScript-compatible Python, so that the Thinc layer
and a standalone exported module cut and stitch long docs identically.
"""
from typing import List, Tuple

import torch
from torch import Tensor, nn

from .encoder import Tok2VecEncoder


def doc_windows(n_tokens: int, max_length: int, stride: int) -> List[Tuple[int, int, int, int]]:
    """Split a doc of `n_tokens` into windows of at most `max_length` tokens starting
    every `stride` tokens (the last one aligned to the end).

    :return: (start, length, own_start, own_end) per window, relative to the doc. Each
        token takes its vector from the window that owns it; the owned ranges partition
        [0, n_tokens) and hand over in the middle of each overlap, so a token keeps about
        (max_length - stride) / 2 tokens of context on both sides wherever the doc allows.
    """
    windows: List[Tuple[int, int, int, int]] = []
    if n_tokens == 0:
        return windows
    if n_tokens <= max_length:
        windows.append((0, n_tokens, 0, n_tokens))
        return windows
    starts: List[int] = []
    start = 0
    while start + max_length < n_tokens:
        starts.append(start)
        start += stride
    starts.append(n_tokens - max_length)
    own_start = 0
    for i in range(len(starts)):
        if i == len(starts) - 1:
            own_end = n_tokens
        else:
            own_end = (starts[i + 1] + starts[i] + max_length) // 2
        windows.append((starts[i], max_length, own_start, own_end))
        own_start = own_end
    return windows


class DocEncoder(nn.Module):
    """A trained `Tok2VecEncoder` for one doc at a time: windows and stitching inside,
    so a standalone (TorchScript) file needs nothing but the feature ids.

    :param encoder: the trained module. :param max_length: window length.
    :param window_stride: distance between window starts.
    """

    max_length: int
    window_stride: int

    def __init__(self, encoder: Tok2VecEncoder, max_length: int, window_stride: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.max_length = max_length
        self.window_stride = window_stride

    def forward(self, ids: Tensor) -> Tensor:
        """:param ids: (n, F) int64 spaCy attribute ids of one doc (uint64 viewed as int64).
        :return: (n, D) token vectors.
        """
        n_tokens = ids.size(0)
        windows = doc_windows(n_tokens, self.max_length, self.window_stride)
        if len(windows) == 0:
            width = self.encoder.embed.mix.out_features
            return torch.zeros((0, width), dtype=torch.float32, device=ids.device)
        rows = window_rows(ids, windows)  # (W, T, F), all T equal
        lengths = torch.full((len(windows),), rows.size(1), dtype=torch.int64, device=ids.device)
        return stitch(self.encoder(rows, lengths), windows)  # (n, D)


class VectorsDocEncoder(DocEncoder):
    """`DocEncoder` for a `VectorsTok2VecEncoder`: the doc's static vectors go in beside
    its feature ids (the file holds no vector table; see `forward`).

    :param encoder: the trained `VectorsTok2VecEncoder`. :param max_length: window
        length. :param window_stride: distance between window starts.
    """

    def forward(self, ids: Tensor, vectors: Tensor) -> Tensor:  # type: ignore[override]
        """:param ids: (n, F) int64 spaCy attribute ids of one doc (uint64 viewed as int64).
        :param vectors: (n, V) float32, each token's row of the pipeline's
            `vocab.vectors` (zeros for tokens the table has no row for).
        :return: (n, D) token vectors.
        """
        n_tokens = ids.size(0)
        windows = doc_windows(n_tokens, self.max_length, self.window_stride)
        if len(windows) == 0:
            width = self.encoder.embed.mix.out_features
            return torch.zeros((0, width), dtype=torch.float32, device=ids.device)
        rows = window_rows(ids, windows)  # (W, T, F)
        vector_rows = window_rows(vectors, windows)  # (W, T, V)
        lengths = torch.full((len(windows),), rows.size(1), dtype=torch.int64, device=ids.device)
        return stitch(self.encoder(rows, vector_rows, lengths), windows)  # (n, D)


def window_rows(x: Tensor, windows: List[Tuple[int, int, int, int]]) -> Tensor:
    """:param x: (n, ...) one row per token. :return: (W, T, ...), one row per window."""
    return torch.stack([x[w[0] : w[0] + w[1]] for w in windows])


def stitch(hidden: Tensor, windows: List[Tuple[int, int, int, int]]) -> Tensor:
    """:param hidden: (W, T, D) per window. :return: (n, D), each token from its owner."""
    parts = [hidden[i, w[2] - w[0] : w[3] - w[0]] for i, w in enumerate(windows)]
    return torch.cat(parts)
