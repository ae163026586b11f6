"""The window rule and the settings it rests on, in plain Python with no imports: how
a long doc is cut into overlapping windows. Shared by the torch modules
(`pytorch.windows.DocEncoder`, TorchScript-compatible), the thinc glue (`buckets`) and
the ONNX layer, which runs without torch, so that all of them cut and stitch long docs
identically.
"""
from typing import List, Tuple


class EncoderConfigError(ValueError):
    """A hyper-parameter of the encoder has a value it cannot be built with.

    `field` names the argument (as written in a config), `why` says what is expected.
    """

    def __init__(self, field: str, value: object, why: str) -> None:
        self.field = field
        self.value = value
        self.why = why
        super().__init__(f"Invalid value for '{field}': {value!r}. {why}")


def check_windows(max_length: int, window_stride: int) -> None:
    """The window settings, also checked alone where a saved graph replaces the config."""
    if max_length < 2:
        raise EncoderConfigError("max_length", max_length, "Expected at least 2.")
    if not 1 <= window_stride <= max_length:
        raise EncoderConfigError(
            "window_stride",
            window_stride,
            f"Expected 1 <= window_stride <= max_length ({max_length}); "
            "windows of a long doc must overlap or touch.",
        )


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
