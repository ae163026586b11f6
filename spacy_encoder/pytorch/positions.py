"""Positional information: absolute (added to the input) or rotary (applied to q and k).

Every kind exposes the same two methods so that an encoder can hold any of them and
still compile with TorchScript (which types each submodule by its concrete class):
`add(x)` for absolute encodings and `rotate(q, k)` for rotary ones; the other is a no-op.
"""
import math
from typing import Tuple

import torch
from torch import Tensor, nn


class NoPositions(nn.Module):
    """Adds nothing; attention sees positions only through the local convolution (if any)."""

    def add(self, x: Tensor) -> Tensor:
        return x

    def rotate(self, q: Tensor, k: Tensor) -> Tuple[Tensor, Tensor]:
        return q, k


class SinusoidalPositions(nn.Module):
    """Fixed sine/cosine encodings (Vaswani et al. 2017), added to the input.

    :param width: model width.
    :param max_length: longest sequence; the table is a non-persistent buffer so it is
        neither saved nor loaded, and follows `.to(device)`.
    """

    def __init__(self, width: int, max_length: int) -> None:
        super().__init__()
        position = torch.arange(max_length, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
        table = torch.zeros(max_length, width)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div[: width // 2])
        self.register_buffer("table", table, persistent=False)  # (T_max, D)

    def add(self, x: Tensor) -> Tensor:
        """:param x: (B, T, D). :return: (B, T, D)."""
        return x + self.table[: x.size(1)].to(x.dtype)

    def rotate(self, q: Tensor, k: Tensor) -> Tuple[Tensor, Tensor]:
        return q, k


class LearnedPositions(nn.Module):
    """A trained embedding per position, added to the input.

    :param width: model width.
    :param max_length: number of positions (windows never exceed it).
    """

    def __init__(self, width: int, max_length: int) -> None:
        super().__init__()
        self.table = nn.Embedding(max_length, width)
        nn.init.normal_(self.table.weight, std=0.02)

    def add(self, x: Tensor) -> Tensor:
        """:param x: (B, T, D). :return: (B, T, D)."""
        return x + self.table.weight[: x.size(1)].to(x.dtype)

    def rotate(self, q: Tensor, k: Tensor) -> Tuple[Tensor, Tensor]:
        return q, k


class RotaryPositions(nn.Module):
    """Rotary position embeddings (Su et al. 2021): q and k are rotated by an angle
    proportional to their position, so q.k depends on the relative distance only.

    :param head_width: width of one attention head (even).
    :param max_length: longest sequence.
    """

    def __init__(self, head_width: int, max_length: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_width, 2, dtype=torch.float32) / head_width))
        angles = torch.arange(max_length, dtype=torch.float32).unsqueeze(1) * inv_freq  # (T_max, Dh/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T_max, Dh)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def add(self, x: Tensor) -> Tensor:
        return x

    def rotate(self, q: Tensor, k: Tensor) -> Tuple[Tensor, Tensor]:
        """:param q: (B, H, T, Dh). :param k: (B, H, T, Dh). :return: both rotated:
        x * cos + rotate_half(x) * sin, where rotate_half(x) = cat(-x[Dh/2:], x[:Dh/2]).

        Computed as x * cos + roll(x, Dh/2) * sin_signed, with the sign moved onto the
        first half of sin (the same numbers, to the bit), on q and k stacked: one roll
        and three element-wise ops for both, instead of a cat, a neg and three ops each.
        """
        seq_len = q.size(2)
        half = q.size(-1) // 2
        cos = self.cos[:seq_len].to(q.dtype)  # (T, Dh)
        sin = self.sin[:seq_len].to(q.dtype)
        sin_signed = torch.cat([-sin[:, :half], sin[:, half:]], dim=-1)  # (T, Dh), small
        qk = torch.stack([q, k])  # (2, B, H, T, Dh)
        rotated = qk * cos + qk.roll(half, -1) * sin_signed
        return rotated[0], rotated[1]
