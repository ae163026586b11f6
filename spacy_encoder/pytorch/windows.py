"""Long sequences as overlapping windows, and a one-doc module that stitches them.

The window rule (`spacy_encoder.windowing.doc_windows`, TorchScript-compatible Python
with no imports) is shared with the Thinc layer and the ONNX layer, so that all of them
and a standalone exported module cut and stitch long docs identically.
"""
from typing import List, Tuple

import torch
from torch import Tensor, nn

from ..windowing import doc_windows
from .encoder import Tok2VecEncoder


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
