"""Windows and length buckets: a batch of docs' tokens in padded batches for the torch
layer, and its outputs back to one row per token.

    (sum n_i, ...) one row per token -> windows of <= max_length tokens
      -> length-sorted buckets, each padded batch-first (B, T, ...) + lengths (B,)
      -> torch layer -> (B, T, D) per bucket -> (sum n_i, D)

Docs longer than `max_length` are cut into windows that start every `window_stride`
tokens (`windowing.doc_windows`); each token takes its vector from the window in
which it sits most centrally, so every token keeps at least
(max_length - window_stride) / 2 tokens of context on both sides wherever the doc
allows. Nothing is truncated.
"""
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy
from thinc.api import Model
from thinc.types import Floats2d

from .windowing import doc_windows

# Buckets: a new padded batch is started when the current one would hold more than
# BUCKET_TOKENS positions, or when it holds more than MIN_BUCKET_TOKENS and more than
# MAX_PADDING of it would be padding. Every bucket is one forward call, whose fixed
# cost on CPU (about a hundred torch ops, each waking the OpenMP threads) is worth a
# few hundred tokens of compute; padding costs compute per position. Measured on
# CoNLL-03 test with nlp.pipe(batch_size=64) (docs/tried.md, bucket sizes), these give 1.3-1.5x
# the words/s of the earlier 4096 / 128 / 0.05 for 1- and 10-sentence docs. Outputs do
# not depend on the bucketing (padding invariance; tests pin it).
BUCKET_TOKENS = 8192
MIN_BUCKET_TOKENS = 2048
MAX_PADDING = 0.15


@dataclass
class WindowPlan:
    """Where each window comes from and where each token's vector comes from.

    starts/lengths: per window, the offset of its first token in the flat token array,
        and its length. Windows appear in bucket order (longest first).
    buckets: (first window, end window, padded length) per bucket.
    gather: for each token of the flat token array, its row in the concatenation of
        all buckets' outputs flattened to (sum B*T, D).
    source: for each padded position of all buckets, in the same flat order, the token
        it holds, or -1 for padding.
    """

    starts: numpy.ndarray
    lengths: numpy.ndarray
    buckets: List[Tuple[int, int, int]]
    gather: numpy.ndarray
    source: numpy.ndarray


def plan_windows(doc_lengths: Sequence[int], max_length: int, stride: int) -> WindowPlan:
    """Plan windows and length buckets for a batch of docs (see `WindowPlan`)."""
    offsets = numpy.concatenate([[0], numpy.cumsum(doc_lengths, dtype="int64")])
    windows = []  # (flat start, length, flat own start, flat own end)
    for offset, n in zip(offsets[:-1].tolist(), doc_lengths):
        for start, length, own_start, own_end in doc_windows(n, max_length, stride):
            windows.append((offset + start, length, offset + own_start, offset + own_end))
    # Longest first; stable, so equal lengths keep document order.
    windows.sort(key=lambda w: -w[1])
    buckets: List[Tuple[int, int, int]] = []
    first = 0
    real = 0
    for i, (_, length, _, _) in enumerate(windows):
        if i > first:
            padded = windows[first][1] * (i - first + 1)
            waste = padded - (real + length)
            if padded > BUCKET_TOKENS or (padded > MIN_BUCKET_TOKENS and waste > MAX_PADDING * padded):
                buckets.append((first, i, windows[first][1]))
                first, real = i, 0
        real += length
    if windows:
        buckets.append((first, len(windows), windows[first][1]))
    n_tokens = int(offsets[-1])
    gather = numpy.zeros((n_tokens,), dtype="int64")
    sources = []
    base = 0
    for first, end, width in buckets:
        for row, (start, length, own_start, own_end) in enumerate(windows[first:end]):
            row_base = base + row * width
            gather[own_start:own_end] = row_base + numpy.arange(own_start - start, own_end - start)
            row_source = numpy.full((width,), -1, dtype="int64")
            row_source[:length] = numpy.arange(start, start + length)
            sources.append(row_source)
        base += (end - first) * width
    source = numpy.concatenate(sources) if sources else numpy.zeros((0,), dtype="int64")
    return WindowPlan(
        starts=numpy.asarray([w[0] for w in windows], dtype="int64"),
        lengths=numpy.asarray([w[1] for w in windows], dtype="int64"),
        buckets=buckets,
        gather=gather,
        source=source,
    )


def run_windows(
    model: Model,
    torch_layer: Model,
    X: Any,
    doc_lengths: List[int],
    is_train: bool,
    *,
    pad_value: Any,
    static: Optional[Any] = None,
) -> Tuple[Floats2d, Callable[[Floats2d], Optional[Any]]]:
    """Run `torch_layer` over the windows and buckets of a flat token array.

    X: (sum n_i, ...) one row per token (feature ids or vectors).
    static: (sum n_i, V) static vectors per token, or None. Padded with zeros and
        passed to the torch layer after X; they get no gradient.
    Returns (sum n_i, D) and a backprop callback giving the gradient of X (or None
    when X holds ids).
    """
    ops = model.ops
    plan = plan_windows(doc_lengths, model.attrs["max_length"], model.attrs["window_stride"])
    width = model.get_dim("nO")
    n_tokens = X.shape[0]
    if n_tokens == 0:
        return ops.alloc2f(0, width), lambda dY: None
    # One fancy-index copy pads every bucket: (sum B*T, ...) then a view per bucket.
    pad_row = ops.xp.full((1,) + X.shape[1:], pad_value, dtype=X.dtype)
    X_padded = ops.xp.concatenate([X, pad_row])[ops.asarray(plan.source)]  # (sum B*T, ...)
    if static is not None:
        zero_row = ops.xp.zeros((1, static.shape[1]), dtype=static.dtype)
        S_padded = ops.xp.concatenate([static, zero_row])[ops.asarray(plan.source)]  # (sum B*T, V)
    outputs = []
    callbacks = []
    row = 0
    for first, end, seq_len in plan.buckets:
        n_rows = end - first
        Xb = X_padded[row : row + n_rows * seq_len].reshape((n_rows, seq_len) + X.shape[1:])  # (B, T, ...)
        lengths = plan.lengths[first:end]  # (B,)
        if static is None:
            inputs: Tuple[Any, ...] = (Xb, lengths)
        else:
            Sb = S_padded[row : row + n_rows * seq_len].reshape((n_rows, seq_len, static.shape[1]))  # (B, T, V)
            inputs = (Xb, Sb, lengths)
        Yb, backprop_b = torch_layer(inputs, is_train)  # (B, T, D)
        outputs.append(Yb.reshape((-1, width)))
        callbacks.append(backprop_b)
        row += n_rows * seq_len
    Y_padded = ops.xp.concatenate(outputs) if len(outputs) > 1 else outputs[0]  # (sum B*T, D)
    gather = ops.asarray(plan.gather)
    Y = Y_padded[gather]  # (sum n_i, D)

    def backprop(dY: Floats2d) -> Optional[Any]:
        dY_padded = ops.alloc2f(*Y_padded.shape)
        dY_padded[gather] = dY  # each token sits at exactly one padded position
        dX_parts = []
        start = 0
        for (first, end, seq_len), callback in zip(plan.buckets, callbacks):
            n_rows = end - first
            dYb = dY_padded[start : start + n_rows * seq_len].reshape((n_rows, seq_len, width))
            dX_parts.append(callback(dYb))
            start += n_rows * seq_len
        if dX_parts[0] is None:
            return None
        # Overlapping windows see a token more than once: sum its gradients.
        dX_padded = ops.xp.concatenate([d.reshape((-1,) + X.shape[1:]) for d in dX_parts])
        real = plan.source >= 0
        dX = ops.alloc((n_tokens,) + X.shape[1:], dtype=dX_padded.dtype)
        ops.scatter_add(dX, ops.asarray(plan.source[real]), dX_padded[ops.asarray(real)])
        return dX

    return Y, backprop

