"""The encoder stack and the full token-features-to-vectors module."""
from typing import List, Tuple

import torch
from torch import Tensor, nn
from torch.jit import Final

from .attention import keep_mask
from .block import EncoderLayer, LocalConvolution, NoLocalContext
from .config import EmbedConfig, EncoderConfig
from .embeddings import HashEmbed, HashVectorEmbed
from .positions import LearnedPositions, NoPositions, RotaryPositions, SinusoidalPositions


class TransformerEncoder(nn.Module):
    """Stacked encoder layers over a padded batch.

    :param config: the validated hyper-parameters.
    """

    output_scale: Final[float]
    scaled: Final[bool]

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        config.validate()
        self.output_scale = float(config.output_scale)
        self.scaled = config.output_scale != 1.0
        width = config.width
        head_width = width // config.n_heads
        if config.positions == "sinusoidal":
            self.positions = SinusoidalPositions(width, config.max_length)
        elif config.positions == "learned":
            self.positions = LearnedPositions(width, config.max_length)
        else:
            self.positions = NoPositions()
        rotary = RotaryPositions(head_width, config.max_length) if config.positions == "rotary" else NoPositions()
        if config.local_window > 0:
            self.local = LocalConvolution(width, config.local_window, config.dropout)
        else:
            self.local = NoLocalContext()
        self.layers = nn.ModuleList(
            [
                EncoderLayer(
                    width,
                    config.n_heads,
                    config.ff_width,
                    config.dropout,
                    config.norm_first,
                    rotary,
                    config.local_window,
                    config.attention_scale,
                )
                for _ in range(config.depth)
            ]
        )
        # Pre-norm leaves the residual stream unnormalised: normalise the output once.
        self.final_norm = nn.LayerNorm(width) if config.norm_first else nn.Identity()
        self.apply(_init_weights)

    def _prepare(self, x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        keep = keep_mask(lengths, x.size(1))  # (B, 1, 1, T)
        real = keep[:, 0, 0, :].unsqueeze(-1) & (lengths > 0).view(-1, 1, 1)  # (B, T, 1)
        real = real.to(x.dtype)
        x = self.local(self.positions.add(x), real)
        return x, keep, real

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """:param x: (B, T, D) input vectors. :param lengths: (B,) int64 real lengths.
        :return: (B, T, D) hidden states; padding positions are exactly zero.
        """
        x, keep, real = self._prepare(x, lengths)
        for layer in self.layers:
            x = layer(x, keep, real)
        return self._output(x, real)

    def _output(self, x: Tensor, real: Tensor) -> Tensor:
        if self.scaled:
            return self.final_norm(x) * (real * self.output_scale)
        return self.final_norm(x) * real

    @torch.jit.export
    def forward_with_weights(self, x: Tensor, lengths: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """The stack through the explicit attention path (eval mode).

        :return: the hidden states after the input stage and after each layer
            (depth + 1 tensors of (B, T, D); the last is normalised like `forward`'s
            output), and each layer's attention weights (depth tensors of (B, H, T, T)).
        """
        x, keep, real = self._prepare(x, lengths)
        states: List[Tensor] = [x * real]
        weights: List[Tensor] = []
        for layer in self.layers:
            x, w = layer.forward_with_weights(x, keep, real)
            states.append(x * real)
            weights.append(w)
        states[-1] = self._output(x, real)
        return states, weights


class Tok2VecEncoder(nn.Module):
    """Token feature ids to contextual vectors: `HashEmbed` then `TransformerEncoder`.

    :param embed: embedding hyper-parameters. :param encoder: encoder hyper-parameters.
    """

    def __init__(self, embed: EmbedConfig, encoder: EncoderConfig) -> None:
        super().__init__()
        self.embed = HashEmbed(
            embed.rows, encoder.width, embed.n_hashes, embed.dropout, embed.feature_dropout, embed.chars, embed.char_width
        )
        self.encoder = TransformerEncoder(encoder)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """:param ids: (B, T, F) int64 attribute ids (then `embed.chars` bytes per
        token, if any). :param lengths: (B,) int64.
        :return: (B, T, D); padding positions are zero.
        """
        return self.encoder(self.embed(ids), lengths)

    @torch.jit.export
    def forward_with_weights(self, ids: Tensor, lengths: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """See `TransformerEncoder.forward_with_weights`; states[0] is after embedding."""
        embedded = self.embed(ids)
        states, weights = self.encoder.forward_with_weights(embedded, lengths)
        return [embedded] + states, weights


class VectorsTok2VecEncoder(nn.Module):
    """`Tok2VecEncoder` with static vectors: `HashVectorEmbed` then `TransformerEncoder`.

    :param embed: embedding hyper-parameters (`vectors_width` > 0).
    :param encoder: encoder hyper-parameters.
    """

    def __init__(self, embed: EmbedConfig, encoder: EncoderConfig) -> None:
        super().__init__()
        self.embed = HashVectorEmbed(
            embed.rows,
            encoder.width,
            embed.n_hashes,
            embed.dropout,
            embed.feature_dropout,
            embed.vectors_width,
            embed.vectors_dropout,
            embed.mix_pieces,
            embed.chars,
            embed.char_width,
        )
        self.encoder = TransformerEncoder(encoder)

    def forward(self, ids: Tensor, vectors: Tensor, lengths: Tensor) -> Tensor:
        """:param ids: (B, T, F) int64 attribute ids (then `embed.chars` bytes per
        token, if any). :param vectors: (B, T, V) float
        static vectors (zeros for tokens without one). :param lengths: (B,) int64.
        :return: (B, T, D); padding positions are zero.
        """
        return self.encoder(self.embed(ids, vectors), lengths)

    @torch.jit.export
    def forward_with_weights(
        self, ids: Tensor, vectors: Tensor, lengths: Tensor
    ) -> Tuple[List[Tensor], List[Tensor]]:
        """See `TransformerEncoder.forward_with_weights`; states[0] is after embedding."""
        embedded = self.embed(ids, vectors)
        states, weights = self.encoder.forward_with_weights(embedded, lengths)
        return [embedded] + states, weights


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
