"""Hashed token-feature embeddings, in the spirit of spaCy's MultiHashEmbed, in torch.

Input is the raw 64-bit attribute ids that spaCy stores on tokens (`Doc.to_array`),
reinterpreted as int64. Each id is hashed `n_hashes` times into its attribute's table
and the rows are summed; the attributes are concatenated and mixed by a linear layer.
Hashing happens here, not on the Thinc side, so an exported TorchScript file maps
feature ids to vectors on its own.
"""
from typing import List, Sequence, Union

import torch
from torch import Tensor, nn
from torch.jit import Final

from .characters import CharEncoder
from .config import feature_dropout_rates

# A Mersenne prime. With a, b, c < P and lo, hi < 2**32 each product stays below
# 2**63, but their sum can wrap around int64 (about 7% of random ids): two's
# complement, the same on every backend, and torch's % takes the divisor's sign, so
# rows stay in range. Released weights depend on it, so it stays (tests pin it).
_PRIME = 2147483647
_LOW_32 = 0xFFFFFFFF


def hash_parameters(n_hashes: int, n_attrs: int, seed: int = 0) -> Tensor:
    """Fixed universal-hash coefficients. :return: (n_hashes, n_attrs, 3) int64."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, _PRIME, (n_hashes, n_attrs, 3), generator=generator, dtype=torch.int64)


class HashEmbed(nn.Module):
    """:param rows: table size for each attribute.
    :param width: output width D.
    :param n_hashes: rows summed per id.
    :param dropout: on the output.
    :param feature_dropout: in training, the chance that one attribute of one token
        is zeroed before mixing (word dropout): one rate for every attribute, or one
        rate per attribute (same order as `rows`).
    :param n_chars: 0, or the bytes per token that a `CharEncoder` reads: then `ids`
        has n_chars more columns after the F attribute ids (`Doc.to_utf8_array`), and
        its output (width `char_width`) is mixed in after the other features.
    :param char_width: the `CharEncoder`'s output width.
    """

    prime: Final[int]
    low_32: Final[int]
    use_feature_dropout: Final[bool]
    n_attrs: Final[int]
    use_chars: Final[bool]

    def __init__(
        self,
        rows: List[int],
        width: int,
        n_hashes: int,
        dropout: float,
        feature_dropout: Union[float, Sequence[float]] = 0.0,
        n_chars: int = 0,
        char_width: int = 0,
    ) -> None:
        super().__init__()
        self.prime = _PRIME
        self.low_32 = _LOW_32
        n_attrs = len(rows)
        self.n_attrs = n_attrs
        self.use_chars = n_chars > 0
        self.char_width = char_width if self.use_chars else 0
        rates = feature_dropout_rates(feature_dropout, n_attrs)
        self.use_feature_dropout = max(rates) > 0.0
        # Not persistent: a training setting, not part of what the weights mean.
        self.register_buffer("feature_dropout", torch.tensor(rates).view(1, 1, n_attrs, 1), persistent=False)
        offsets = torch.tensor([0] + rows[:-1], dtype=torch.int64).cumsum(0)
        # Persistent: the hash coefficients are part of what the weights mean.
        self.register_buffer("hash_params", hash_parameters(n_hashes, n_attrs))
        self.register_buffer("rows", torch.tensor(rows, dtype=torch.int64), persistent=False)
        self.register_buffer("offsets", offsets, persistent=False)
        self.table = nn.Embedding(int(sum(rows)), width)
        nn.init.normal_(self.table.weight, std=0.1)
        if self.use_chars:
            # Only then: the released modules keep their state_dict keys.
            self.chars = CharEncoder(n_chars, char_width)
        self.mix = nn.Linear(n_attrs * width + self.char_width, width)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def row_ids(self, ids: Tensor) -> Tensor:
        """:param ids: (B, T, F) int64 attribute ids. :return: (B, T, K, F) table rows."""
        low = (ids & self.low_32).unsqueeze(2)  # (B, T, 1, F)
        high = ((ids >> 32) & self.low_32).unsqueeze(2)
        a = self.hash_params[:, :, 0]  # (K, F)
        b = self.hash_params[:, :, 1]
        c = self.hash_params[:, :, 2]
        hashed = (low * a + high * b + c) % self.prime  # (B, T, K, F)
        return hashed % self.rows + self.offsets

    def features(self, ids: Tensor) -> Tensor:
        """One vector per attribute, after word dropout.

        :param ids: (B, T, F [+ n_chars]) int64. :return: (B, T, F, D).
        """
        if self.use_chars:
            ids = ids[:, :, : self.n_attrs]
        batch, seq_len, n_attrs = ids.shape
        vectors = self.table(self.row_ids(ids)).sum(dim=2)  # (B, T, F, D)
        if self.training and self.use_feature_dropout:
            # Not rescaled: a dropped attribute looks like an id the table never saw.
            kept = torch.rand(batch, seq_len, n_attrs, 1, device=ids.device) >= self.feature_dropout  # (B, T, F, 1)
            vectors = vectors * kept.to(vectors.dtype)
        return vectors

    def char_features(self, ids: Tensor) -> Tensor:
        """:param ids: (B, T, F + n_chars) int64. :return: (B, T, char_width)."""
        return self.chars(ids[:, :, self.n_attrs :])

    def forward(self, ids: Tensor) -> Tensor:
        """:param ids: (B, T, F [+ n_chars]) int64. :return: (B, T, D)."""
        batch, seq_len, _ = ids.shape
        vectors = self.features(ids).reshape(batch, seq_len, -1)  # (B, T, F*D)
        if self.use_chars:
            vectors = torch.cat([vectors, self.char_features(ids)], dim=-1)  # (B, T, F*D + W)
        return self.dropout(self.norm(self.mix(vectors)))


class HashVectorEmbed(HashEmbed):
    """`HashEmbed` with static word vectors mixed in, as spaCy's `MultiHashEmbed` with
    `include_static_vectors`: each token's vector (a row of the pipeline's
    `vocab.vectors`, zeros where the table has none) is projected to D and mixed with
    the hashed attributes as one more feature.

    The vector table itself is not a parameter of this module: the Thinc layer looks
    the rows up in the vocab (saved once, with the pipeline's vocab) and passes them
    in, so checkpoints hold only the projection.

    :param vectors_width: width V of the static vectors.
    :param vectors_dropout: in training, the chance that one token's vector is zeroed.
    :param mix_pieces: 1: one linear layer mixes the features (as released); more: a
        maxout with that many pieces, as spaCy's `MultiHashEmbed`.
    Other parameters as in `HashEmbed`. The features are mixed in the order hashed
    attributes, projected vector, characters.
    """

    use_vectors_dropout: Final[bool]
    vectors_dropout: Final[float]
    mix_pieces: Final[int]
    # Repeated from HashEmbed: TorchScript reads a class's own annotations, and the
    # constant is what lets it skip the character branch of a module without one.
    n_attrs: Final[int]
    use_chars: Final[bool]

    def __init__(
        self,
        rows: List[int],
        width: int,
        n_hashes: int,
        dropout: float,
        feature_dropout: Union[float, Sequence[float]],
        vectors_width: int,
        vectors_dropout: float,
        mix_pieces: int = 1,
        n_chars: int = 0,
        char_width: int = 0,
    ) -> None:
        super().__init__(rows, width, n_hashes, dropout, feature_dropout, n_chars, char_width)
        self.vectors_dropout = float(vectors_dropout)
        self.use_vectors_dropout = vectors_dropout > 0.0
        self.mix_pieces = int(mix_pieces)
        # No bias: a token without a vector (all zeros) projects to zero, like an
        # unseen hashed id, and the mix learns what that means.
        self.vectors_proj = nn.Linear(vectors_width, width, bias=False)
        # mix_pieces > 1: a maxout over the concatenation, as spaCy's MultiHashEmbed
        # (output unit o is the max of rows o * pieces ... o * pieces + pieces - 1).
        self.mix = nn.Linear((len(rows) + 1) * width + self.char_width, width * self.mix_pieces)

    def forward(self, ids: Tensor, vectors: Tensor) -> Tensor:  # type: ignore[override]
        """:param ids: (B, T, F [+ n_chars]) int64. :param vectors: (B, T, V) static vectors.
        :return: (B, T, D).
        """
        batch, seq_len, _ = ids.shape
        hashed = self.features(ids).reshape(batch, seq_len, -1)  # (B, T, F*D)
        projected = self.vectors_proj(vectors.to(hashed.dtype))  # (B, T, D)
        if self.training and self.use_vectors_dropout:
            kept = torch.rand(batch, seq_len, 1, device=ids.device) >= self.vectors_dropout  # (B, T, 1)
            projected = projected * kept.to(projected.dtype)
        if self.use_chars:
            features = torch.cat([hashed, projected, self.char_features(ids)], dim=-1)  # (B, T, (F+1)*D + W)
        else:
            features = torch.cat([hashed, projected], dim=-1)  # (B, T, (F+1)*D)
        mixed = self.mix(features)  # (B, T, D * pieces)
        if self.mix_pieces > 1:
            mixed = mixed.view(batch, seq_len, -1, self.mix_pieces).amax(dim=-1)  # (B, T, D)
        return self.dropout(self.norm(mixed))
